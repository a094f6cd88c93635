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
    runner::{CheckKey, RunReport, Sink},
    status::ready_condition,
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

/// The Event for a change of Ready, if the change deserves one.
pub fn transition_event(report: &RunReport<'_>) -> Option<Event> {
    let before = ready_condition(&report.previous.conditions).map(|c| c.status.as_str());
    let after = ready_condition(&report.status.conditions)?;
    match (before, after.status.as_str()) {
        (Some("False"), "False") => None,
        (_, "False") => Some(Event {
            type_: EventType::Warning,
            reason: after.reason.clone(),
            note: Some(truncate(&after.message)),
            action: "Probe".into(),
            secondary: None,
        }),
        (Some("False"), "True") => Some(Event {
            type_: EventType::Normal,
            reason: "Recovered".into(),
            note: Some(truncate(&after.message)),
            action: "Probe".into(),
            secondary: None,
        }),
        _ => None,
    }
}

/// Event notes are limited to 1 KiB by the API server.
fn truncate(message: &str) -> String {
    message.chars().take(1000).collect()
}

impl Sink for EventSink {
    fn on_run(&self, report: &RunReport<'_>) {
        let Some(event) = transition_event(report) else {
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
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;
    use crate::{
        api::{HealthCheckStatus, Reason},
        probe::Outcome,
        runner::{Plan, RunnerSpec},
    };

    fn with_ready(status: &str, reason: &str) -> HealthCheckStatus {
        HealthCheckStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: status.into(),
                reason: reason.into(),
                message: "m".into(),
                observed_generation: None,
                last_transition_time: Time(jiff::Timestamp::now()),
            }],
            ..HealthCheckStatus::default()
        }
    }

    fn event(
        previous: &HealthCheckStatus,
        status: &HealthCheckStatus,
    ) -> Option<(EventType, String)> {
        let spec = RunnerSpec {
            key: CheckKey {
                namespace: "n".into(),
                name: "c".into(),
            },
            uid: None,
            generation: None,
            revision: 0,
            interval: std::time::Duration::from_secs(1),
            timeout: std::time::Duration::from_millis(500),
            suspend: false,
            failure_threshold: 1,
            success_threshold: 1,
            plan: Plan::Blocked {
                reason: Reason::InvalidSpec,
                message: String::new(),
            },
            status: HealthCheckStatus::default(),
        };
        let outcome = Outcome::not_run(Reason::Succeeded, "");
        let report = RunReport {
            key: &spec.key,
            spec: &spec,
            outcome: &outcome,
            previous,
            status,
            lag: std::time::Duration::ZERO,
            skipped: 0,
        };
        transition_event(&report).map(|e| (e.type_, e.reason))
    }

    #[test]
    fn events_mark_transitions_only() {
        let none = HealthCheckStatus::default();
        let ready = with_ready("True", "Succeeded");
        let expired = with_ready("False", "CertificateExpired");
        let timeout = with_ready("False", "Timeout");
        assert_eq!(event(&none, &ready), None, "first success is not news");
        assert_eq!(event(&ready, &ready), None);
        assert_eq!(
            event(&ready, &expired),
            Some((EventType::Warning, "CertificateExpired".into()))
        );
        assert_eq!(
            event(&none, &expired),
            Some((EventType::Warning, "CertificateExpired".into()))
        );
        assert_eq!(event(&expired, &timeout), None, "still failing: no flood");
        assert_eq!(
            event(&expired, &ready),
            Some((EventType::Normal, "Recovered".into()))
        );
    }
}
