//! The status writer's queue: one pending write per object in first-reported order, a newer
//! status replacing a queued one in place (latest wins, no loss of its turn), urgent writes
//! (a run-now someone waits for) ahead of the others.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use tokio::time::Instant;

use crate::{
    api::HealthCheckStatus,
    runner::{CheckKey, Registration},
};

pub(crate) struct Pending {
    pub(crate) status: HealthCheckStatus,
    /// Counters above this (the larger threshold) are not state worth a write.
    pub(crate) clamp: i64,
    /// Retry not before this instant (after a failure).
    pub(crate) not_before: Option<Instant>,
    pub(crate) failures: u32,
    /// When a write for this object was first queued and not yet done.
    pub(crate) since: Instant,
    /// The reporting check's registration: a write of a check removed (or moved to another
    /// replica) while it waited for the rate limiter, or for a retry, is dropped.
    pub(crate) registration: Arc<Registration>,
    /// It carries a run-now not written yet: it goes ahead of the queue.
    pub(crate) urgent: bool,
}

/// Pending writes in first-reported order; a newer status replaces a queued one in place
/// (latest wins, no loss of its turn).
#[derive(Default)]
pub(crate) struct Queue {
    order: VecDeque<CheckKey>,
    pub(crate) items: HashMap<CheckKey, Pending>,
}

impl Queue {
    pub(crate) fn put(
        &mut self,
        key: &CheckKey,
        status: HealthCheckStatus,
        clamp: i64,
        registration: &Arc<Registration>,
        urgent: bool,
    ) {
        let jumps = match self.items.get_mut(key) {
            Some(queued) => {
                let jumps = urgent && !queued.urgent;
                queued.status = status;
                queued.clamp = clamp;
                queued.registration = registration.clone();
                queued.urgent |= urgent;
                jumps
            }
            None => {
                let pending = Pending {
                    status,
                    clamp,
                    not_before: None,
                    failures: 0,
                    since: Instant::now(),
                    registration: registration.clone(),
                    urgent,
                };
                self.items.insert(key.clone(), pending);
                self.order.push_back(key.clone());
                urgent
            }
        };
        // Urgent writes go first, in the order they came.
        if jumps {
            self.order.retain(|k| k != key);
            let behind = (self.order.iter())
                .position(|k| self.items.get(k).is_none_or(|p| !p.urgent))
                .unwrap_or(self.order.len());
            self.order.insert(behind, key.clone());
        }
    }

    /// The first write whose backoff (if any) has passed.
    pub(crate) fn pop_ready(&mut self, now: Instant) -> Option<(CheckKey, Pending)> {
        let position = (self.order.iter()).position(|k| {
            self.items
                .get(k)
                .is_some_and(|p| p.not_before.is_none_or(|at| at <= now))
        })?;
        let key = self.order.remove(position)?;
        let pending = self.items.remove(&key)?;
        Some((key, pending))
    }

    pub(crate) fn next_retry(&self) -> Option<Instant> {
        self.items.values().filter_map(|p| p.not_before).min()
    }

    /// When the oldest write still pending was first queued.
    pub(crate) fn oldest(&self) -> Option<Instant> {
        self.items.values().map(|p| p.since).min()
    }

    pub(crate) fn remove(&mut self, key: &CheckKey) -> Option<Pending> {
        self.order.retain(|k| k != key);
        self.items.remove(key)
    }

    pub(crate) fn clear(&mut self) {
        self.order.clear();
        self.items.clear();
    }
}

/// The next write due in `queue`; else waits for `notified` (a push, created before the queue
/// was read so none is missed) or the next retry, and returns `None` (ask again).
pub(crate) async fn next_due(
    queue: &std::sync::Mutex<Queue>,
    notified: tokio::sync::futures::Notified<'_>,
) -> Option<(CheckKey, Pending)> {
    let next = crate::lock(queue).pop_ready(Instant::now());
    if next.is_none() {
        let retry = crate::lock(queue).next_retry();
        match retry {
            Some(at) => {
                let _ = tokio::time::timeout_at(at, notified).await;
            }
            None => notified.await,
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{LastResult, Reason};
    use std::time::Duration;

    fn status(successes: i64, duration: &str, reason: Reason) -> HealthCheckStatus {
        HealthCheckStatus {
            consecutive_successes: successes,
            last_result: Some(Box::new(LastResult {
                http_status: Some(200),
                ..LastResult::new(
                    reason == Reason::Succeeded,
                    reason,
                    format!("answered in {duration}"),
                    duration.into(),
                )
            })),
            ..HealthCheckStatus::default()
        }
    }

    fn key(name: &str) -> CheckKey {
        CheckKey {
            namespace: "n".into(),
            name: name.into(),
        }
    }

    #[test]
    fn queue_is_first_come_first_served_and_latest_status_wins_in_place() {
        let mut queue = Queue::default();
        let registered = Arc::default();
        queue.put(
            &key("a"),
            status(1, "0.1s", Reason::Succeeded),
            1,
            &registered,
            false,
        );
        queue.put(
            &key("b"),
            status(1, "0.1s", Reason::Succeeded),
            1,
            &registered,
            false,
        );
        queue.put(
            &key("a"),
            status(0, "0.2s", Reason::Timeout),
            1,
            &registered,
            false,
        );
        let now = Instant::now();
        let (first, pending) = queue.pop_ready(now).unwrap();
        assert_eq!(first, key("a"));
        assert_eq!(pending.status.last_result.unwrap().reason, Reason::Timeout);
        queue.items.get_mut(&key("b")).unwrap().not_before = Some(now + Duration::from_secs(1));
        assert!(queue.pop_ready(now).is_none(), "b is backing off");
        assert_eq!(queue.next_retry(), Some(now + Duration::from_secs(1)));
        assert_eq!(
            queue.pop_ready(now + Duration::from_secs(2)).unwrap().0,
            key("b")
        );
    }

    #[test]
    fn an_urgent_write_goes_ahead_of_waiting_ones_in_its_own_order() {
        let mut queue = Queue::default();
        let registered = Arc::default();
        let ok = || status(1, "0.1s", Reason::Succeeded);
        for name in ["a", "b", "c", "d"] {
            queue.put(&key(name), ok(), 1, &registered, false);
        }
        queue.put(&key("c"), ok(), 1, &registered, true);
        queue.put(&key("e"), ok(), 1, &registered, true);
        queue.put(&key("c"), ok(), 1, &registered, false);
        let now = Instant::now();
        let order: Vec<String> = std::iter::from_fn(|| queue.pop_ready(now))
            .map(|(k, p)| format!("{}{}", k.name, if p.urgent { "!" } else { "" }))
            .collect();
        assert_eq!(order, ["c!", "e!", "a", "b", "d"]);
    }
}
