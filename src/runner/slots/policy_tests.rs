//! The slot policy, with time passed in: fair shares, headroom for namespaces with recent
//! demand, its expiry, and the invariants that keep the queue moving.

use std::{sync::Arc, time::Duration};

use proptest::prelude::*;
use tokio::time::Instant;

use super::Pool;

const SECOND: Duration = Duration::from_secs(1);

fn ns(name: &str) -> Arc<str> {
    Arc::from(name)
}

/// Queues `count` waiters of `namespace` (interval `interval`) and grants what the rule allows;
/// returns how many of all granted belong to `namespace`.
fn arrive(
    pool: &mut Pool<usize>,
    name: &str,
    interval: Duration,
    count: usize,
    now: Instant,
) -> usize {
    let namespace = ns(name);
    for i in 0..count {
        pool.arrive(&namespace, interval, i, now);
    }
    let grants = pool.grants(now);
    grants.iter().filter(|(n, _)| &**n == name).count()
}

/// Releases one slot of `name` and grants; returns the namespaces granted.
fn release(pool: &mut Pool<usize>, name: &str, now: Instant) -> Vec<String> {
    pool.release(name, now);
    let grants = pool.grants(now);
    grants.into_iter().map(|(n, _)| n.to_string()).collect()
}

#[test]
fn one_namespace_may_use_every_slot() {
    let now = Instant::now();
    let mut pool = Pool::new(16, now);
    assert_eq!(arrive(&mut pool, "noisy", 5 * SECOND, 300, now), 16);
    assert_eq!((pool.in_use(), pool.waiting()), (16, 284));
    // Each freed slot goes straight back: nobody else has asked.
    assert_eq!(release(&mut pool, "noisy", now + SECOND), ["noisy"]);
}

#[test]
fn a_busy_namespace_leaves_the_headroom_another_needed_recently() {
    let t0 = Instant::now();
    let mut pool = Pool::new(16, t0);
    // "quiet" ran one check a moment ago (peak demand 1).
    assert_eq!(arrive(&mut pool, "quiet", SECOND, 1, t0), 1);
    release(&mut pool, "quiet", t0);
    // "noisy" wants 300 and gets all but the one slot "quiet" may need.
    assert_eq!(arrive(&mut pool, "noisy", 5 * SECOND, 300, t0), 15);
    // Freed noisy slots go back to noisy, never the reserved one.
    assert_eq!(release(&mut pool, "noisy", t0), ["noisy"]);
    assert_eq!(pool.in_use(), 15);
    // quiet's next run takes the free slot at once, and gives it back.
    let t1 = t0 + SECOND;
    assert_eq!(arrive(&mut pool, "quiet", SECOND, 1, t1), 1);
    assert_eq!(release(&mut pool, "quiet", t1), Vec::<String>::new());
}

#[test]
fn a_namespace_with_more_demand_than_its_headroom_gets_freed_slots_first() {
    let t0 = Instant::now();
    let mut pool = Pool::new(16, t0);
    assert_eq!(arrive(&mut pool, "quiet", SECOND, 1, t0), 1);
    release(&mut pool, "quiet", t0);
    assert_eq!(arrive(&mut pool, "noisy", 5 * SECOND, 300, t0), 15);
    // quiet asks for 3 at once: one at once, then every freed slot until it has them.
    assert_eq!(arrive(&mut pool, "quiet", SECOND, 3, t0), 1);
    assert_eq!(release(&mut pool, "noisy", t0), ["quiet"]);
    assert_eq!(release(&mut pool, "noisy", t0), ["quiet"]);
    // Its peak is now 3: noisy leaves three slots while quiet is idle.
    for _ in 0..3 {
        release(&mut pool, "quiet", t0);
    }
    assert_eq!((pool.held("noisy"), pool.in_use()), (13, 13));
    assert_eq!(release(&mut pool, "noisy", t0), ["noisy"]);
    assert_eq!(pool.in_use(), 13);
}

#[test]
fn headroom_is_capped_at_the_fair_share() {
    let t0 = Instant::now();
    let mut pool = Pool::new(16, t0);
    // "burst" once wanted 12 at once; with two active namespaces its share is 8.
    assert_eq!(arrive(&mut pool, "burst", SECOND, 12, t0), 12);
    for _ in 0..12 {
        release(&mut pool, "burst", t0);
    }
    assert_eq!(arrive(&mut pool, "noisy", 5 * SECOND, 300, t0), 8);
}

#[test]
fn headroom_ends_when_a_namespace_has_been_idle_for_two_intervals() {
    let t0 = Instant::now();
    let mut pool = Pool::new(16, t0);
    assert_eq!(arrive(&mut pool, "quiet", SECOND, 1, t0), 1);
    release(&mut pool, "quiet", t0);
    assert_eq!(arrive(&mut pool, "noisy", 5 * SECOND, 300, t0), 15);
    // Still active just before two intervals: the free slot stays free.
    assert_eq!(
        release(&mut pool, "noisy", t0 + 1999 * SECOND / 1000),
        ["noisy"]
    );
    assert_eq!(pool.in_use(), 15);
    // quiet's checks are gone; after two intervals noisy may use every slot.
    assert_eq!(
        release(&mut pool, "noisy", t0 + 2 * SECOND),
        ["noisy", "noisy"]
    );
    assert_eq!(pool.in_use(), 16);
}

#[test]
fn a_past_peak_is_forgotten_after_two_to_four_intervals() {
    let t0 = Instant::now();
    let mut pool = Pool::new(16, t0);
    assert_eq!(arrive(&mut pool, "burst", 10 * SECOND, 6, t0), 6);
    for _ in 0..6 {
        release(&mut pool, "burst", t0);
    }
    assert_eq!(arrive(&mut pool, "noisy", 60 * SECOND, 300, t0), 10);
    // burst keeps running one check every 10 s; its peak of 6 is forgotten within 40 s.
    let mut now = t0;
    for _ in 0..4 {
        now += 10 * SECOND;
        assert_eq!(arrive(&mut pool, "burst", 10 * SECOND, 1, now), 1);
        release(&mut pool, "burst", now);
        release(&mut pool, "noisy", now);
    }
    assert_eq!(
        pool.held("noisy"),
        15,
        "noisy leaves one slot for burst's one check"
    );
}

#[test]
fn with_more_namespaces_than_slots_a_freed_slot_goes_to_the_one_holding_fewest() {
    let t0 = Instant::now();
    let mut pool = Pool::new(2, t0);
    assert_eq!(arrive(&mut pool, "a", SECOND, 2, t0), 2);
    assert_eq!(arrive(&mut pool, "b", SECOND, 5, t0 + SECOND / 10), 0);
    assert_eq!(arrive(&mut pool, "c", SECOND, 5, t0 + SECOND / 5), 0);
    // Share 0: no headroom; the slot goes to the namespace holding fewest, longest waiting.
    assert_eq!(release(&mut pool, "a", t0 + SECOND / 2), ["b"]);
    assert_eq!(release(&mut pool, "a", t0 + SECOND / 2), ["c"]);
    assert_eq!(release(&mut pool, "b", t0 + SECOND / 2), ["b"]);
}

#[test]
fn a_freed_slot_goes_to_a_namespace_below_its_share_before_one_above() {
    let t0 = Instant::now();
    let mut pool = Pool::new(4, t0);
    assert_eq!(arrive(&mut pool, "slow", 10 * SECOND, 14, t0), 4);
    assert_eq!(arrive(&mut pool, "quick", 10 * SECOND, 10, t0 + SECOND), 0);
    // Every freed slot goes to quick until it holds its share (2 of 4)...
    assert_eq!(release(&mut pool, "slow", t0 + 2 * SECOND), ["quick"]);
    assert_eq!(release(&mut pool, "slow", t0 + 2 * SECOND), ["quick"]);
    // ...then slow, now below its share, gets its own back: 2 and 2.
    assert_eq!(release(&mut pool, "slow", t0 + 2 * SECOND), ["slow"]);
    assert_eq!((pool.held("quick"), pool.held("slow")), (2, 2));
}

#[test]
fn the_queue_moves_for_each_waiting_namespace_not_for_the_pool() {
    let t0 = Instant::now();
    let mut pool = Pool::new(4, t0);
    assert_eq!(pool.moved(), None, "nothing waits");
    assert_eq!(arrive(&mut pool, "quiet", SECOND, 1, t0), 1);
    release(&mut pool, "quiet", t0);
    // "stuck" holds 3 slots that never come back and waits for more; quiet's slot is its
    // headroom, so stuck waits beside it.
    assert_eq!(arrive(&mut pool, "stuck", 60 * SECOND, 10, t0), 3);
    for second in 1..=30 {
        let now = t0 + second * SECOND;
        assert_eq!(arrive(&mut pool, "quiet", SECOND, 1, now), 1);
        release(&mut pool, "quiet", now);
    }
    // Slots come free every second, yet stuck has not moved since t0.
    assert_eq!(pool.moved(), Some(t0));
    // A namespace holding none moves whenever any slot comes free.
    let mut idle = Pool::new(1, t0);
    assert_eq!(arrive(&mut idle, "a", SECOND, 1, t0), 1);
    assert_eq!(arrive(&mut idle, "b", SECOND, 1, t0 + SECOND / 10), 0);
    assert_eq!(arrive(&mut idle, "a", SECOND, 1, t0 + SECOND / 5), 0);
    assert_eq!(release(&mut idle, "a", t0 + SECOND), ["b"]);
    assert_eq!(idle.moved(), Some(t0 + SECOND), "a waits, holding none");
}

/// One step of a random workload.
#[derive(Debug, Clone)]
enum Step {
    Arrive { namespace: usize, interval: u64 },
    Release { namespace: usize },
    Wait { millis: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..5usize, 1..20u64).prop_map(|(namespace, interval)| Step::Arrive {
            namespace,
            interval
        }),
        (0..5usize).prop_map(|namespace| Step::Release { namespace }),
        (0..5_000u64).prop_map(|millis| Step::Wait { millis }),
    ]
}

proptest! {
    /// Whatever the workload: never more slots than the capacity; no idle namespace counted
    /// among the active; never a waiter left while
    /// nothing is held (something is always about to be released, so the watchdog's "queue
    /// has not moved" means a stall); a namespace below its share is never left waiting beside
    /// a free slot.
    #[test]
    fn the_queue_always_moves(capacity in 1..12usize, steps in prop::collection::vec(step(), 1..200)) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut pool = Pool::new(capacity, t0);
        let names: Vec<Arc<str>> = (0..5).map(|i| ns(&format!("ns{i}"))).collect();
        for step in steps {
            match step {
                Step::Arrive { namespace, interval } => {
                    pool.arrive(&names[namespace], Duration::from_secs(interval), 0, now);
                }
                Step::Release { namespace } if pool.held(&names[namespace]) > 0 => {
                    pool.release(&names[namespace], now);
                }
                Step::Release { .. } => {}
                Step::Wait { millis } => now += Duration::from_millis(millis),
            }
            pool.grants(now);
            prop_assert!(pool.in_use() <= capacity);
            // Expiry is checked only when a namespace may have gone idle: never one missed.
            pool.expire(now);
            prop_assert!(pool.tenants.values().all(|t| t.active(now)), "an idle namespace counted");
            prop_assert!(pool.waiting() == 0 || pool.in_use() > 0, "waiters with nothing held");
            let share = pool.fair_share();
            let free = capacity - pool.in_use();
            for tenant in pool.tenants.values() {
                let starved = !tenant.queue.is_empty() && tenant.held < share && free > 0;
                prop_assert!(!starved, "a namespace below its share waits beside a free slot");
            }
        }
    }
}
