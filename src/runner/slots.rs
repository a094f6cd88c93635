//! Probe slots: the global bound on probes in flight, shared fairly across namespaces.
//!
//! Rule ([`policy`] has it in full): each namespace active in its last two intervals gets a fair
//! share, `slots / active namespaces`; slots beyond a namespace's share are lent only out of
//! headroom no other active namespace needed recently (its peak demand, up to its share). So a
//! namespace whose slow checks want every slot leaves free what a quiet namespace beside it
//! uses, while one namespace alone (or alone with demand) may use them all. A freed slot goes
//! to the waiting namespace holding the fewest; within a namespace, first come first served.
//!
//! A waiter that goes away (its runner was removed) never strands a slot: a grant that cannot
//! be delivered is released again at once.

mod policy;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::oneshot, time::Instant};

use crate::lock;
use policy::Pool;

/// The shared slot pool; cheap to clone.
#[derive(Clone)]
pub struct Slots {
    pool: Arc<Mutex<Pool<oneshot::Sender<SlotPermit>>>>,
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
            self.slots.settle(vec![self.namespace.clone()]);
        }
    }
}

/// The queue's state for metrics and the watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotUsage {
    pub capacity: usize,
    pub in_use: usize,
    pub waiting: usize,
    /// When the queue last moved for the waiter that has gone longest without (see
    /// `Pool::moved`); `None` when nothing waits.
    pub moved: Option<Instant>,
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
            pool: Arc::new(Mutex::new(Pool::new(capacity, Instant::now()))),
        }
    }

    /// Waits for a slot for a check of `namespace` that runs every `interval`; returns the
    /// slot and how long it waited.
    pub async fn acquire(&self, namespace: &str, interval: Duration) -> (SlotPermit, Duration) {
        let start = Instant::now();
        let namespace: Arc<str> = Arc::from(namespace);
        let (grant, mut receiver) = oneshot::channel();
        lock(&self.pool).arrive(&namespace, interval, grant, start);
        self.settle(Vec::new());
        if let Ok(permit) = receiver.try_recv() {
            return (permit, Duration::ZERO);
        }
        match receiver.await {
            Ok(permit) => (permit, start.elapsed()),
            // The pool drops a waiter's sender only by granting: unreachable, but a direct
            // slot is the safe answer.
            Err(_) => {
                lock(&self.pool).take(&namespace, Instant::now());
                (self.permit(namespace), start.elapsed())
            }
        }
    }

    pub fn usage(&self) -> SlotUsage {
        let pool = lock(&self.pool);
        SlotUsage {
            capacity: pool.capacity(),
            in_use: pool.in_use(),
            waiting: pool.waiting(),
            moved: pool.moved(),
        }
    }

    fn permit(&self, namespace: Arc<str>) -> SlotPermit {
        SlotPermit {
            slots: self.clone(),
            namespace,
            armed: true,
        }
    }

    /// Frees the slots of `freed` and hands out every slot the rule now allows.
    fn settle(&self, mut freed: Vec<Arc<str>>) {
        loop {
            let grants = {
                let mut pool = lock(&self.pool);
                let now = Instant::now();
                for namespace in freed.drain(..) {
                    pool.release(&namespace, now);
                }
                pool.grants(now)
            };
            // Send outside the lock; a waiter gone away gives its slot back.
            for (namespace, waiter) in grants {
                if let Err(mut undelivered) = waiter.send(self.permit(namespace)) {
                    undelivered.armed = false;
                    freed.push(undelivered.namespace.clone());
                }
            }
            if freed.is_empty() {
                return;
            }
        }
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

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn an_idle_pool_grants_at_once_and_a_full_one_queues() {
        let slots = Slots::new(2);
        let (a, waited) = slots.acquire("x", SECOND).await;
        assert_eq!(waited, Duration::ZERO);
        let (_b, _) = slots.acquire("x", SECOND).await;
        let pending = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire("x", SECOND).await }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(slots.usage().waiting, 1);
        drop(a);
        let (_c, waited) = pending.await.unwrap();
        assert_eq!(waited, Duration::from_secs(3));
        assert_eq!(slots.usage().in_use, 2);
    }

    /// Holds a slot of `namespace` for `busy`, `runs` times in a row, every `interval`;
    /// returns the longest wait.
    async fn runs(
        slots: Slots,
        namespace: &'static str,
        interval: Duration,
        busy: Duration,
        runs: usize,
    ) -> Duration {
        let mut worst = Duration::ZERO;
        let mut due = Instant::now();
        for _ in 0..runs {
            tokio::time::sleep_until(due).await;
            let (permit, waited) = slots.acquire(namespace, interval).await;
            worst = worst.max(waited);
            tokio::time::sleep(busy).await;
            drop(permit);
            due += interval;
        }
        worst
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_namespace_never_waits_behind_a_noisy_one() {
        // The finding: 16 slots; "noisy" 300 checks every 5 s that each hold a slot 4 s;
        // "quiet" 5 checks every second, 1 ms each, spread over the second.
        let slots = Slots::new(16);
        let busy = Duration::from_secs(4);
        for i in 0..300u64 {
            let (slots, offset) = (slots.clone(), Duration::from_millis(i * 5_000 / 300));
            tokio::spawn(async move {
                tokio::time::sleep(offset).await;
                runs(slots, "noisy", 5 * SECOND, busy, 1_000).await
            });
        }
        // quiet starts once noisy holds every slot: its first run waits for one to free.
        tokio::time::sleep(SECOND).await;
        assert_eq!(slots.usage().in_use, 16);
        let quiet: Vec<_> = (0..5u64)
            .map(|i| {
                let (slots, offset) = (slots.clone(), Duration::from_millis(i * 200));
                tokio::spawn(async move {
                    tokio::time::sleep(offset).await;
                    let first =
                        runs(slots.clone(), "quiet", SECOND, Duration::from_millis(1), 1).await;
                    let rest = runs(slots, "quiet", SECOND, Duration::from_millis(1), 100).await;
                    (first, rest)
                })
            })
            .collect();
        for handle in quiet {
            let (first, rest) = handle.await.unwrap();
            // The first run of a namespace nobody knew waits at most one noisy run.
            assert!(first <= busy, "first run waited {first:?}");
            // Then quiet's headroom is kept free: it never waits behind noisy again (at most
            // behind its own 1 ms runs).
            assert!(
                rest <= Duration::from_millis(5),
                "later runs waited up to {rest:?}"
            );
        }
        // Noisy kept busy every slot but quiet's headroom (its peak demand, at most 5).
        assert!(slots.usage().in_use >= 11, "{:?}", slots.usage());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_goes_away_strands_no_slot() {
        let slots = Slots::new(1);
        let (held, _) = slots.acquire("x", SECOND).await;
        let gone = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire("x", SECOND).await }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        gone.abort();
        let _ = gone.await;
        drop(held);
        let usage = slots.usage();
        assert_eq!((usage.in_use, usage.waiting), (0, 0));
        let (_again, waited) = slots.acquire("y", SECOND).await;
        assert_eq!(waited, Duration::ZERO);
    }
}
