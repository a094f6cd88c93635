//! Probe slots: the global bound on probes in flight, shared fairly across namespaces.
//!
//! Rule: when a slot frees and checks wait, it goes to the waiting namespace that holds the
//! fewest slots (ties: the namespace whose first waiter has waited longest); within a
//! namespace, first come first served. So one namespace's slow checks never hold more than an
//! equal share of the slots while other namespaces wait, and an idle system grants at once.
//!
//! A waiter that goes away (its runner was removed) never strands a slot: a grant that cannot
//! be delivered is released again at once.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::oneshot, time::Instant};

use crate::lock;

/// The shared slot pool; cheap to clone.
#[derive(Clone)]
pub struct Slots {
    shared: Arc<Shared>,
}

struct Shared {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    in_use: usize,
    by_namespace: HashMap<Arc<str>, usize>,
    waiting: HashMap<Arc<str>, VecDeque<Waiter>>,
    waiters: usize,
    /// Last time a slot was released: the queue moves while this advances.
    last_release: Option<Instant>,
}

struct Waiter {
    since: Instant,
    grant: oneshot::Sender<SlotPermit>,
}

/// One slot, released when dropped.
pub struct SlotPermit {
    slots: Slots,
    namespace: Arc<str>,
    /// False once the slot has been handed back by other means (an undeliverable grant).
    armed: bool,
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        if self.armed {
            self.slots.release(&self.namespace);
        }
    }
}

/// The queue's state for metrics and the watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotUsage {
    pub capacity: usize,
    pub in_use: usize,
    pub waiting: usize,
    pub last_release: Option<Instant>,
}

/// Fewest and most slots the default gives.
const MIN_DEFAULT: usize = 16;
const MAX_DEFAULT: usize = 4096;

/// The default slot count: a quarter of the soft descriptor limit, between 16 and 4096.
///
/// A probe waiting on a blackholed target holds one descriptor and a few KiB, so the slot
/// count follows the descriptor budget: with the usual container limit (1,048,576) that is
/// 4096 slots, so an outage in which every target times out does not queue at all up to
/// `4096 x interval / timeout` checks (24,576 checks at 60s/10s); three quarters of the
/// descriptors stay for the API client, the admin endpoints and the reserve.
pub fn default_slots() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| parse_open_files_limit(&limits))
        .unwrap_or(1024);
    (soft / 4).clamp(MIN_DEFAULT as u64, MAX_DEFAULT as u64) as usize
}

/// The soft "Max open files" of `/proc/self/limits` ("unlimited" reads as the maximum).
fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

impl Slots {
    pub fn new(capacity: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                capacity: capacity.max(1),
                state: Mutex::new(State {
                    last_release: Some(Instant::now()),
                    ..State::default()
                }),
            }),
        }
    }

    /// Waits for a slot for a check of `namespace`; returns the slot and how long it waited.
    pub async fn acquire(&self, namespace: &str) -> (SlotPermit, Duration) {
        let start = Instant::now();
        let namespace: Arc<str> = Arc::from(namespace);
        let receiver = {
            let mut state = lock(&self.shared.state);
            if state.in_use < self.shared.capacity && state.waiters == 0 {
                state.take(&namespace);
                return (self.permit(namespace), Duration::ZERO);
            }
            let (grant, receiver) = oneshot::channel();
            (state.waiting.entry(namespace.clone()).or_default()).push_back(Waiter {
                since: start,
                grant,
            });
            state.waiters += 1;
            receiver
        };
        match receiver.await {
            Ok(permit) => (permit, start.elapsed()),
            // The pool never drops a waiter's sender without granting: unreachable, but a
            // direct slot is the safe answer.
            Err(_) => {
                lock(&self.shared.state).take(&namespace);
                (self.permit(namespace), start.elapsed())
            }
        }
    }

    pub fn usage(&self) -> SlotUsage {
        let state = lock(&self.shared.state);
        SlotUsage {
            capacity: self.shared.capacity,
            in_use: state.in_use,
            waiting: state.waiters,
            last_release: state.last_release,
        }
    }

    fn permit(&self, namespace: Arc<str>) -> SlotPermit {
        SlotPermit {
            slots: self.clone(),
            namespace,
            armed: true,
        }
    }

    /// Frees a slot of `namespace` and hands it to the next waiter, if any.
    fn release(&self, namespace: &Arc<str>) {
        let mut freed = namespace.clone();
        loop {
            let next = {
                let mut state = lock(&self.shared.state);
                state.give_back(&freed);
                state.next_waiter()
            };
            let Some((namespace, waiter)) = next else {
                return;
            };
            // Send outside the lock: a permit dropped on failure releases through here again.
            match waiter.grant.send(self.permit(namespace)) {
                Ok(()) => return,
                Err(mut undelivered) => {
                    undelivered.armed = false;
                    freed = undelivered.namespace.clone();
                }
            }
        }
    }
}

impl State {
    fn take(&mut self, namespace: &Arc<str>) {
        self.in_use += 1;
        *self.by_namespace.entry(namespace.clone()).or_default() += 1;
    }

    fn give_back(&mut self, namespace: &Arc<str>) {
        self.in_use = self.in_use.saturating_sub(1);
        if let Some(count) = self.by_namespace.get_mut(namespace) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.by_namespace.remove(namespace);
            }
        }
        self.last_release = Some(Instant::now());
    }

    /// The waiter the fairness rule picks, with its slot already taken.
    fn next_waiter(&mut self) -> Option<(Arc<str>, Waiter)> {
        let namespace = (self.waiting.iter())
            .filter_map(|(ns, queue)| queue.front().map(|w| (ns, w.since)))
            .min_by_key(|(ns, since)| (self.by_namespace.get(*ns).copied().unwrap_or(0), *since))
            .map(|(ns, _)| ns.clone())?;
        let queue = self.waiting.get_mut(&namespace)?;
        let waiter = queue.pop_front()?;
        if queue.is_empty() {
            self.waiting.remove(&namespace);
        }
        self.waiters -= 1;
        self.take(&namespace);
        Some((namespace, waiter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_follows_the_descriptor_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1048576              1048576              files\n";
        assert_eq!(parse_open_files_limit(limits), Some(1_048_576));
        assert_eq!(
            parse_open_files_limit("Max open files  unlimited unlimited files"),
            Some(u64::MAX)
        );
        let slots = default_slots();
        assert!((MIN_DEFAULT..=MAX_DEFAULT).contains(&slots), "{slots}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_pool_grants_at_once_and_a_full_one_queues() {
        let slots = Slots::new(2);
        let (a, waited) = slots.acquire("x").await;
        assert_eq!(waited, Duration::ZERO);
        let (_b, _) = slots.acquire("x").await;
        let pending = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire("x").await }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(slots.usage().waiting, 1);
        drop(a);
        let (_c, waited) = pending.await.unwrap();
        assert_eq!(waited, Duration::from_secs(3));
        assert_eq!(slots.usage().in_use, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_namespace_gets_no_more_than_its_share_while_others_wait() {
        let slots = Slots::new(4);
        // Namespace "slow" holds every slot and queues 10 more; "quick" then queues 10.
        let mut held: Vec<SlotPermit> = Vec::new();
        for _ in 0..4 {
            held.push(slots.acquire("slow").await.0);
        }
        let mut waiters = Vec::new();
        for ns in std::iter::repeat_n("slow", 10).chain(std::iter::repeat_n("quick", 10)) {
            let slots = slots.clone();
            waiters.push(tokio::spawn(async move { (ns, slots.acquire(ns).await.0) }));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Every freed slot goes to "quick" until it holds its equal share (2 of 4).
        held.truncate(1);
        tokio::time::sleep(Duration::from_millis(1)).await;
        let state = slots.usage();
        assert_eq!(state.in_use, 4);
        let quick = lock(&slots.shared.state).by_namespace.get("quick").copied();
        assert_eq!(quick, Some(2), "quick got the freed slots up to half");
        held.clear();
        tokio::time::sleep(Duration::from_millis(1)).await;
        let shares = lock(&slots.shared.state).by_namespace.clone();
        assert_eq!(shares.get("quick"), Some(&2));
        assert_eq!(shares.get("slow"), Some(&2));
        for waiter in waiters {
            waiter.abort();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_goes_away_strands_no_slot() {
        let slots = Slots::new(1);
        let (held, _) = slots.acquire("x").await;
        let gone = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire("x").await }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        gone.abort();
        let _ = gone.await;
        drop(held);
        let usage = slots.usage();
        assert_eq!((usage.in_use, usage.waiting), (0, 0));
        let (_again, waited) = slots.acquire("y").await;
        assert_eq!(waited, Duration::ZERO);
    }
}
