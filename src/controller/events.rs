//! Kubernetes Events on transitions only (became failing, recovered), published by
//! kube-runtime's recorder (events.k8s.io, deduplicated into series) from the publisher task
//! in [`super::event_queue`], so the scheduler never waits on the API server.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Client, Resource,
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use tokio::sync::mpsc;

use super::event_queue::{self, Published};
use crate::{
    api::{HealthCheck, ReadyStatus, Reason},
    metrics::Metrics,
    readiness::Transition,
    runner::{CheckKey, RunReport, Sink},
};

/// Longest Event note the API server accepts, in bytes.
const MAX_NOTE_BYTES: usize = 1024;

/// The scheduler sink that turns Ready transitions into Events.
#[derive(Clone)]
pub struct EventSink {
    queue: mpsc::Sender<(Event, ObjectReference)>,
    metrics: Arc<Metrics>,
}

impl EventSink {
    /// Creates the sink and the task that publishes its Events (to be spawned).
    pub fn new(
        client: Client,
        instance: String,
        metrics: Arc<Metrics>,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (queue, receiver) = mpsc::channel(event_queue::QUEUE);
        let reporter = Reporter {
            controller: crate::controller::writer::FIELD_MANAGER.into(),
            instance: Some(instance),
        };
        let recorder = Arc::new(Recorder::new(client, reporter));
        let publisher = event_queue::run(recorder, receiver, metrics.clone());
        (Self { queue, metrics }, publisher)
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

/// Event notes are limited to 1 KiB by the API server: cut at a character boundary.
fn truncate(message: &str) -> String {
    if message.len() <= MAX_NOTE_BYTES {
        return message.to_string();
    }
    let mut end = MAX_NOTE_BYTES - '…'.len_utf8();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

impl EventSink {
    /// Queues the Event `transition` deserves, if any (runs, and the hub's aggregates).
    pub fn publish(&self, key: &CheckKey, uid: Option<String>, transition: &Transition) {
        let Some(event) = transition_event(transition) else {
            return;
        };
        let reference = ObjectReference {
            api_version: Some(HealthCheck::api_version(&()).into_owned()),
            kind: Some(HealthCheck::kind(&()).into_owned()),
            namespace: Some(key.namespace.clone()),
            name: Some(key.name.clone()),
            uid,
            ..Default::default()
        };
        if self.queue.try_send((event, reference)).is_err() {
            tracing::warn!(check = %key, "Event queue full; a transition Event was dropped");
            (self.metrics.operator.events)
                .with_label_values(&[Published::Dropped.label()])
                .inc();
        }
    }
}

impl Sink for EventSink {
    fn on_run(&self, report: &RunReport<'_>) {
        if !report.registration.live() {
            return;
        }
        if let Some(transition) = report.transition {
            self.publish(report.key, report.spec.uid.clone(), transition);
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

    /// kube refuses an events.k8s.io/v1 Event whose action or reason passes 128 bytes, or whose
    /// reportingController is no qualified name (`pkg/apis/core/validation/events.go`).
    #[test]
    fn every_event_field_canary_sets_fits_kubes_limits() {
        for reason in Reason::ALL {
            assert!(reason.as_str().len() <= 128, "{reason:?}");
        }
        let transition = Transition {
            from: Some(ReadyStatus::True),
            to: ReadyStatus::False,
            reason: Reason::Timeout,
            message: "m".into(),
        };
        let event = transition_event(&transition).expect("an Event");
        assert!(!event.action.is_empty() && event.action.len() <= 128);
        let controller = crate::controller::writer::FIELD_MANAGER;
        assert!(controller.len() <= 63);
        assert!(
            controller
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        );
    }

    #[test]
    fn notes_are_cut_to_the_api_limit_in_bytes_at_a_character_boundary() {
        let long = "é".repeat(1000);
        let note = truncate(&long);
        assert!(note.len() <= MAX_NOTE_BYTES, "{}", note.len());
        assert!(note.ends_with('…'));
        assert_eq!(truncate("short"), "short");
    }
}
