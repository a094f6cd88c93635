//! The Event publisher: one FIFO per object, at most one publish in flight per object and a
//! few across objects, so one Event the API server rejects or a slow object never holds up
//! the others. Rejections (4xx) are logged once and dropped; server errors and timeouts are
//! retried with backoff until the Event is too old to matter; the queue is bounded and every
//! drop is counted in `canary_events_total{result}`.

use super::sleep_until;
use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder};
use tokio::{sync::mpsc, task::JoinSet, time::Instant};

use crate::metrics::Metrics;

/// Events queued at most, across objects.
pub const QUEUE: usize = 1024;
/// Publishes in flight at once, across objects.
const CONCURRENCY: usize = 8;
/// Deadline of one publish.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// Retry delays after a failed publish.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// An Event older than this is dropped rather than published late.
const GIVE_UP_AFTER: Duration = Duration::from_secs(15 * 60);

/// How one Event ended (the `result` label of `canary_events_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    Success,
    /// The API server refused it (4xx): retrying cannot help.
    Rejected,
    /// Still failing after [`GIVE_UP_AFTER`].
    Expired,
    /// The queue was full.
    Dropped,
}

impl Published {
    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Dropped => "dropped",
        }
    }
}

/// Why one publish failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// A 4xx answer other than 429.
    #[error("rejected by the API server: {0}")]
    Rejected(String),
    /// A server error, a throttle, a transport error or a timeout.
    #[error("{0}")]
    Retryable(String),
}

/// Where Events go (the API server through kube's recorder, or a test double).
pub trait EventApi: Send + Sync + 'static {
    fn publish(&self, item: Arc<Item>) -> BoxFuture<'_, Result<(), PublishError>>;
}

/// An Event and the object it is about.
pub type Item = (Event, ObjectReference);

impl EventApi for Recorder {
    fn publish(&self, item: Arc<Item>) -> BoxFuture<'_, Result<(), PublishError>> {
        Box::pin(async move {
            let (event, reference) = &*item;
            let publish = Recorder::publish(self, event, reference);
            match tokio::time::timeout(PUBLISH_TIMEOUT, publish).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(kube::Error::Api(status)))
                    if (400..500).contains(&status.code) && status.code != 429 =>
                {
                    Err(PublishError::Rejected(status.message))
                }
                Ok(Err(error)) => Err(PublishError::Retryable(super::api_error::describe(&error))),
                Err(_) => Err(PublishError::Retryable("timed out".into())),
            }
        })
    }
}

/// One Event waiting for its turn.
struct Pending {
    item: Arc<Item>,
    queued: Instant,
    retries: u32,
    not_before: Instant,
}

/// The publisher's state: per-object FIFOs and which objects have a publish in flight.
struct Queues {
    by_object: HashMap<String, VecDeque<Pending>>,
    in_flight: HashSet<String>,
    total: usize,
}

/// Runs until every sender is gone and the queues are empty.
pub async fn run(
    api: Arc<dyn EventApi>,
    mut receiver: mpsc::Receiver<(Event, ObjectReference)>,
    metrics: Arc<Metrics>,
) {
    let mut queues = Queues {
        by_object: HashMap::new(),
        in_flight: HashSet::new(),
        total: 0,
    };
    let mut tasks: JoinSet<(String, Result<(), PublishError>)> = JoinSet::new();
    let mut open = true;
    loop {
        queues.start_ready(&api, &mut tasks);
        if !open && tasks.is_empty() && queues.total == 0 {
            return;
        }
        let wake = queues.next_wake();
        tokio::select! {
            message = receiver.recv(), if open => match message {
                Some((event, reference)) => {
                    if let Some(result) = queues.push(event, reference) {
                        count(&metrics, result);
                    }
                }
                None => open = false,
            },
            Some(done) = tasks.join_next() => {
                if let Ok((object, result)) = done
                    && let Some(published) = queues.finish(&object, result)
                {
                    count(&metrics, published);
                }
            }
            _ = sleep_until(wake) => {}
        }
    }
}

fn count(metrics: &Metrics, result: Published) {
    metrics
        .operator
        .events
        .with_label_values(&[result.label()])
        .inc();
}

fn object_key(reference: &ObjectReference) -> String {
    match &reference.uid {
        Some(uid) => uid.clone(),
        None => format!(
            "{}/{}",
            reference.namespace.as_deref().unwrap_or_default(),
            reference.name.as_deref().unwrap_or_default()
        ),
    }
}

impl Queues {
    /// Queues an Event; `Dropped` when the queue is full.
    fn push(&mut self, event: Event, reference: ObjectReference) -> Option<Published> {
        if self.total >= QUEUE {
            tracing::warn!(reason = %event.reason, "Event queue full; a transition Event was dropped");
            return Some(Published::Dropped);
        }
        let now = Instant::now();
        let object = object_key(&reference);
        let pending = Pending {
            item: Arc::new((event, reference)),
            queued: now,
            retries: 0,
            not_before: now,
        };
        self.by_object.entry(object).or_default().push_back(pending);
        self.total += 1;
        None
    }

    /// Starts a publish for every object whose head Event is due, up to the concurrency bound.
    fn start_ready(
        &mut self,
        api: &Arc<dyn EventApi>,
        tasks: &mut JoinSet<(String, Result<(), PublishError>)>,
    ) {
        let now = Instant::now();
        for (object, queue) in &self.by_object {
            if tasks.len() >= CONCURRENCY {
                return;
            }
            let Some(head) = queue.front() else { continue };
            if self.in_flight.contains(object) || head.not_before > now {
                continue;
            }
            self.in_flight.insert(object.clone());
            let (api, object) = (api.clone(), object.clone());
            let item = head.item.clone();
            tasks.spawn(async move { (object, api.publish(item).await) });
        }
    }

    /// Settles the publish of `object`'s head Event; the final result when it is done with.
    fn finish(&mut self, object: &str, result: Result<(), PublishError>) -> Option<Published> {
        self.in_flight.remove(object);
        let queue = self.by_object.get_mut(object)?;
        let head = queue.front_mut()?;
        let published = match result {
            Ok(()) => Published::Success,
            Err(PublishError::Rejected(why)) => {
                tracing::warn!(reason = %head.item.0.reason, %why, "the API server rejected an Event; dropped");
                Published::Rejected
            }
            Err(PublishError::Retryable(why)) if head.queued.elapsed() >= GIVE_UP_AFTER => {
                tracing::error!(reason = %head.item.0.reason, %why, "giving up on an Event after 15 minutes of failures");
                Published::Expired
            }
            Err(PublishError::Retryable(why)) => {
                let delay = (RETRY_FIRST * 2u32.saturating_pow(head.retries.min(8))).min(RETRY_MAX);
                head.retries += 1;
                head.not_before = Instant::now() + delay;
                tracing::debug!(reason = %head.item.0.reason, %why, retry_in = ?delay, "could not publish an Event; retrying");
                return None;
            }
        };
        queue.pop_front();
        if queue.is_empty() {
            self.by_object.remove(object);
        }
        self.total = self.total.saturating_sub(1);
        Some(published)
    }

    /// When the earliest backed-off head Event becomes due.
    fn next_wake(&self) -> Option<Instant> {
        let now = Instant::now();
        (self.by_object.iter())
            .filter(|(object, _)| !self.in_flight.contains(*object))
            .filter_map(|(_, queue)| queue.front().map(|p| p.not_before))
            .filter(|at| *at > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use kube::runtime::events::EventType;

    use super::*;

    /// Rejects Events whose reason is "Bad", fails those of object "down" until told
    /// otherwise, and records what it published.
    #[derive(Default)]
    struct Fake {
        published: Mutex<Vec<String>>,
        down: Mutex<bool>,
    }

    impl EventApi for Fake {
        fn publish(&self, item: Arc<Item>) -> BoxFuture<'_, Result<(), PublishError>> {
            Box::pin(async move {
                let (event, reference) = &*item;
                let name = reference.name.clone().unwrap_or_default();
                if event.reason == "Bad" {
                    return Err(PublishError::Rejected("note too long".into()));
                }
                if name == "down" && *crate::lock(&self.down) {
                    return Err(PublishError::Retryable("503".into()));
                }
                crate::lock(&self.published).push(format!("{name}:{}", event.reason));
                Ok(())
            })
        }
    }

    fn item(name: &str, reason: &str) -> (Event, ObjectReference) {
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: None,
            action: "Probe".into(),
            secondary: None,
        };
        let reference = ObjectReference {
            name: Some(name.into()),
            namespace: Some("n".into()),
            ..Default::default()
        };
        (event, reference)
    }

    fn counted(metrics: &Metrics, result: Published) -> u64 {
        metrics
            .operator
            .events
            .with_label_values(&[result.label()])
            .get()
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_or_failing_event_holds_up_no_other() {
        let api = Arc::new(Fake::default());
        *crate::lock(&api.down) = true;
        let metrics = Arc::new(Metrics::new().unwrap());
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(api.clone(), rx, metrics.clone()));
        for (name, reason) in [
            ("a", "Bad"),
            ("a", "Timeout"),
            ("down", "Timeout"),
            ("b", "Slow"),
        ] {
            tx.send(item(name, reason)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut published = crate::lock(&api.published).clone();
        published.sort();
        assert_eq!(
            published,
            ["a:Timeout", "b:Slow"],
            "order across objects is free"
        );
        assert_eq!(counted(&metrics, Published::Rejected), 1);
        *crate::lock(&api.down) = false;
        tokio::time::sleep(RETRY_MAX).await;
        assert_eq!(crate::lock(&api.published).last().unwrap(), "down:Timeout");
        drop(tx);
        task.await.unwrap();
        assert_eq!(counted(&metrics, Published::Success), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_failing_for_too_long_expires_and_a_full_queue_drops() {
        let api = Arc::new(Fake::default());
        *crate::lock(&api.down) = true;
        let metrics = Arc::new(Metrics::new().unwrap());
        let mut queues = Queues {
            by_object: HashMap::new(),
            in_flight: HashSet::new(),
            total: 0,
        };
        for i in 0..QUEUE {
            assert!(
                queues
                    .push(item(&format!("o{i}"), "X").0, item("o", "X").1)
                    .is_none()
            );
        }
        assert_eq!(
            queues.push(item("x", "X").0, item("x", "X").1),
            Some(Published::Dropped)
        );
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(api.clone(), rx, metrics.clone()));
        tx.send(item("down", "Timeout")).await.unwrap();
        drop(tx);
        tokio::time::sleep(GIVE_UP_AFTER + RETRY_MAX * 2).await;
        task.await.unwrap();
        assert_eq!(counted(&metrics, Published::Expired), 1);
    }
}
