//! Kubernetes Events on transitions only (became failing, recovered), published by
//! kube-runtime's recorder (events.k8s.io, deduplicated into series) from a background task
//! so the scheduler never waits on the API server.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Client,
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use tokio::sync::mpsc;

use crate::{
    api::{ReadyStatus, Reason},
    readiness::Transition,
    runner::{CheckKey, RunReport, Sink},
};

/// Events queued at most; transitions are rare, so a full queue means the API server is down
/// and dropping (with a log line) is better than blocking probes.
const QUEUE: usize = 1024;

/// The scheduler sink that turns Ready transitions into Events.
pub struct EventSink {
    queue: mpsc::Sender<(Event, ObjectReference)>,
}

impl EventSink {
    /// Creates the sink and the task that publishes its Events.
    pub fn start(client: Client, instance: String) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, mut receiver) = mpsc::channel::<(Event, ObjectReference)>(QUEUE);
        let reporter = Reporter {
            controller: crate::controller::writer::FIELD_MANAGER.into(),
            instance: Some(instance),
        };
        let recorder = Recorder::new(client, reporter);
        let task = tokio::spawn(async move {
            while let Some((event, reference)) = receiver.recv().await {
                publish_with_retry(&recorder, &event, &reference).await;
            }
        });
        (Self { queue }, task)
    }
}

/// Retry delays after a failed publish; an API server outage must not lose a transition.
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(30);
/// An Event older than this is dropped (with a log line) rather than published late.
const GIVE_UP_AFTER: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Publishes one Event, retrying with exponential backoff while the API server is unreachable.
async fn publish_with_retry(recorder: &Recorder, event: &Event, reference: &ObjectReference) {
    let started = tokio::time::Instant::now();
    let mut delay = RETRY_FIRST;
    loop {
        match recorder.publish(event, reference).await {
            Ok(()) => return,
            Err(error) if started.elapsed() >= GIVE_UP_AFTER => {
                tracing::error!(%error, reason = %event.reason, "giving up on an Event after 15 minutes of failures");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, reason = %event.reason, retry_in = ?delay, "could not publish an Event; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}

/// The Event for a change of Ready, if the change deserves one: Warning when a check starts
/// failing (with its reason), Normal `Recovered` when it passes again; a first success is not
/// news.
pub fn transition_event(transition: &Transition) -> Option<Event> {
    let (type_, reason) = match (transition.from, transition.to) {
        (Some(ReadyStatus::False), ReadyStatus::False) => return None,
        (_, ReadyStatus::False) => (EventType::Warning, transition.reason),
        (Some(ReadyStatus::False), ReadyStatus::True) => (EventType::Normal, Reason::Recovered),
        _ => return None,
    };
    Some(Event {
        type_,
        reason: reason.as_str().into(),
        note: Some(truncate(&transition.message)),
        action: "Probe".into(),
        secondary: None,
    })
}

/// Event notes are limited to 1 KiB by the API server.
fn truncate(message: &str) -> String {
    message.chars().take(1000).collect()
}

impl Sink for EventSink {
    fn on_run(&self, report: &RunReport<'_>) {
        let Some(event) = report.transition.and_then(transition_event) else {
            return;
        };
        let reference = ObjectReference {
            api_version: Some("canary.dev/v1alpha1".into()),
            kind: Some("HealthCheck".into()),
            namespace: Some(report.key.namespace.clone()),
            name: Some(report.key.name.clone()),
            uid: report.spec.uid.clone(),
            ..Default::default()
        };
        if self.queue.try_send((event, reference)).is_err() {
            tracing::warn!(check = %report.key, "Event queue full; a transition Event was dropped");
        }
    }

    fn on_remove(&self, _key: &CheckKey) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        from: Option<ReadyStatus>,
        to: ReadyStatus,
        reason: Reason,
    ) -> Option<(EventType, String)> {
        let transition = Transition {
            from,
            to,
            reason,
            message: "m".into(),
        };
        transition_event(&transition).map(|e| (e.type_, e.reason))
    }

    #[test]
    fn events_mark_transitions_only() {
        use ReadyStatus::{False, True, Unknown};
        assert_eq!(
            event(None, True, Reason::Succeeded),
            None,
            "first success is not news"
        );
        assert_eq!(event(Some(Unknown), True, Reason::Succeeded), None);
        assert_eq!(
            event(Some(True), False, Reason::CertificateExpired),
            Some((EventType::Warning, "CertificateExpired".into()))
        );
        assert_eq!(
            event(None, False, Reason::CertificateExpired),
            Some((EventType::Warning, "CertificateExpired".into()))
        );
        assert_eq!(
            event(Some(False), False, Reason::Timeout),
            None,
            "still failing: no flood"
        );
        assert_eq!(
            event(Some(False), True, Reason::Succeeded),
            Some((EventType::Normal, "Recovered".into()))
        );
    }
}
