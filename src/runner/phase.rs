//! Runs on wall-clock slots, for replicas that hand checks over to each other (`--sharding
//! shards`): a check runs at `k × interval + offset` (Unix time), `offset` being its
//! deterministic jitter (hash of its uid), so every replica agrees when each run is due
//! without telling each other.
//!
//! A replica that gains a check from another learns only when the previous owner promised to
//! have stopped (`quiet_after`): the first slot after that promise is the first the new owner
//! may run. The previous owner ran at most the slot before it, so two runs are never closer
//! than one interval, and the run after a move comes one interval after the last one unless
//! the handover itself took longer (a missed slot is then run at once). Node clocks skewed by
//! Δ shift this spacing by Δ; ownership never depends on them (see `controller/shard`).

use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;

/// A check's wall-clock slots: every `interval` from `offset`, in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    interval: i64,
    offset: i64,
}

impl Slots {
    /// Slots every `interval` (at least 1 ms) shifted by `offset` (taken modulo the interval).
    pub fn new(interval: Duration, offset: Duration) -> Self {
        let interval = i64::try_from(interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let offset = i64::try_from(offset.as_millis()).unwrap_or(0) % interval;
        Self { interval, offset }
    }

    /// The first slot strictly after `at_ms`.
    pub fn after(&self, at_ms: i64) -> i64 {
        let k = (at_ms - self.offset).div_euclid(self.interval) + 1;
        k.saturating_mul(self.interval).saturating_add(self.offset)
    }

    /// The last slot at or before `at_ms`.
    pub fn at_or_before(&self, at_ms: i64) -> i64 {
        self.after(at_ms).saturating_sub(self.interval)
    }

    /// The slot nearest to `at_ms` (ties to the later one).
    pub fn nearest(&self, at_ms: i64) -> i64 {
        let k = (at_ms - self.offset + self.interval / 2).div_euclid(self.interval);
        k.saturating_mul(self.interval).saturating_add(self.offset)
    }

    /// Whether a previous owner's promise (`quiet_after`) still constrains a check with no
    /// recorded run at `now`: it may have run the check on a slot up to the promise, so until
    /// an interval has passed since, a run at any moment could come too close to that one.
    pub fn binds(&self, now: i64, quiet_after: Option<i64>) -> bool {
        quiet_after.is_some_and(|at| now < at.saturating_add(self.interval))
    }

    /// When a check resumed from another replica (or after a restart) first runs, in Unix ms:
    /// the first slot after both the previous owner's promise (`quiet_after`) and half an
    /// interval past its recorded last run; a slot missed by less than an interval (the
    /// handover took that long) runs at once (`now`), an older one is given up for the next.
    /// A last run in the future (a previous owner's fast clock, an odd status) counts as now,
    /// so it cannot postpone a check; promises come capped by the peer table.
    pub fn resume(&self, now: i64, last_run: Option<i64>, quiet_after: Option<i64>) -> i64 {
        let last_run = last_run.map(|at| at.min(now));
        let floor = [
            last_run.map(|at| at.saturating_add(self.interval / 2)),
            quiet_after,
        ]
        .into_iter()
        .flatten()
        .max();
        let Some(floor) = floor else {
            return self.after(now - 1);
        };
        let slot = self.after(floor);
        if slot >= now {
            slot
        } else if now - slot <= self.interval {
            now
        } else {
            self.after(now - 1)
        }
    }
}

/// The slot (Unix ms) of a run of a check that started at `at_ms`, its slots falling every
/// `interval` from `offset` ([`super::slot_offset`]): the last at or before it, since a run never
/// starts before its slot. Exact while runs start less than an interval late.
pub fn slot_of(at_ms: i64, interval: Duration, offset: Duration) -> i64 {
    Slots::new(interval, offset).at_or_before(at_ms)
}

/// The monotonic and wall clocks now (Unix ms), the wall clock read first: a slot converted
/// against them ([`instant_of`]) is never early. Read the other way, a pause between the two
/// reads (a preempted thread on busy cores) would move every such run that much before its slot.
pub fn clocks() -> (Instant, i64) {
    let wall = unix_ms(Timestamp::now());
    (Instant::now(), wall)
}

/// Unix milliseconds of `at`.
pub fn unix_ms(at: Timestamp) -> i64 {
    at.as_millisecond()
}

/// The monotonic instant of wall-clock `at_ms`, read against the clocks now (never before now).
pub fn instant_of(at_ms: i64, now: Instant, wall_now_ms: i64) -> Instant {
    let ahead = u64::try_from(at_ms.saturating_sub(wall_now_ms)).unwrap_or(0);
    now + Duration::from_millis(ahead)
}

/// The wall-clock Unix milliseconds of instant `at`, read against the clocks now.
pub fn wall_of(at: Instant, now: Instant, wall_now_ms: i64) -> i64 {
    let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    match at.checked_duration_since(now) {
        Some(ahead) => wall_now_ms.saturating_add(millis(ahead)),
        None => wall_now_ms.saturating_sub(millis(now.duration_since(at))),
    }
}

/// The next due time after a run due at `due` (`next`, already past `now`, as the free-running
/// schedule computes it), moved to the nearest slot so the runs stay on the wall clock.
pub fn snap(slots: &Slots, next: Instant, now: Instant, wall_now_ms: i64) -> Instant {
    let slot = slots.nearest(wall_of(next, now, wall_now_ms));
    let slot = if slot <= wall_now_ms {
        slots.after(wall_now_ms)
    } else {
        slot
    };
    instant_of(slot, now, wall_now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1000;

    fn slots() -> Slots {
        Slots::new(Duration::from_secs(10), Duration::from_millis(2_500))
    }

    #[test]
    fn slots_fall_every_interval_from_the_offset() {
        let s = slots();
        assert_eq!(s.after(0), 2_500);
        assert_eq!(s.after(2_500), 12_500, "strictly after");
        assert_eq!(s.after(-1), 2_500);
        assert_eq!(s.after(-8_000), -7_500);
        assert_eq!(s.nearest(11_000), 12_500);
        assert_eq!(s.nearest(7_000), 2_500);
        assert_eq!(s.at_or_before(12_499), 2_500);
        assert_eq!(
            s.at_or_before(12_500),
            12_500,
            "a run on its slot is that slot's"
        );
        assert_eq!(s.at_or_before(-1), -7_500);
        let offset = Duration::from_millis(2_500);
        assert_eq!(slot_of(21_000, Duration::from_secs(10), offset), 12_500);
        let wide = Slots::new(Duration::from_secs(10), Duration::from_secs(25));
        assert_eq!(
            wide.after(0),
            5_000,
            "the offset is taken within the interval"
        );
    }

    #[test]
    fn a_moved_check_runs_one_interval_after_the_previous_owners_last_slot() {
        let s = slots();
        // The old owner ran the 102.5s slot and promised to stop at 110s; the handover is done
        // at 105s: the new owner runs 112.5s, one interval after the old owner's last run.
        assert_eq!(s.resume(105 * SEC, None, Some(110 * SEC)), 112_500);
        // Status says the last run was at 102.5s (written by the old owner): same slot.
        assert_eq!(s.resume(105 * SEC, Some(102_500), Some(104 * SEC)), 112_500);
    }

    #[test]
    fn a_slot_the_handover_missed_runs_at_once_and_an_older_one_is_given_up() {
        let s = slots();
        // Promise at 110s, handover done at 113s: the 112.5s slot is run now, 0.5s late.
        assert_eq!(s.resume(113 * SEC, None, Some(110 * SEC)), 113 * SEC);
        // A previous owner that died long ago: the next slot from now, no burst.
        assert_eq!(s.resume(200 * SEC, None, Some(100 * SEC)), 202_500);
        // Nothing known: the next slot from now.
        assert_eq!(s.resume(200 * SEC, None, None), 202_500);
        assert_eq!(s.resume(202_500, None, None), 202_500, "a slot now is now");
    }

    #[test]
    fn a_promise_binds_a_check_without_recorded_runs_for_one_interval() {
        let s = slots();
        assert!(!s.binds(100 * SEC, None), "nobody promised anything");
        assert!(
            s.binds(105 * SEC, Some(110 * SEC)),
            "the old owner may still run it"
        );
        assert!(
            s.binds(115 * SEC, Some(110 * SEC)),
            "it may have run it at 110s"
        );
        assert!(
            !s.binds(120 * SEC, Some(110 * SEC)),
            "an interval since: run at will"
        );
        // Bound: the first slot after the promise, as for a check with a recorded run.
        assert_eq!(s.resume(105 * SEC, None, Some(110 * SEC)), 112_500);
    }

    #[test]
    fn a_resumed_run_never_comes_within_half_an_interval_of_the_recorded_last_run() {
        let s = slots();
        // Last run at 112.5s recorded, asked at 113s: 122.5s, not now.
        assert_eq!(s.resume(113 * SEC, Some(112_500), None), 122_500);
    }

    #[test]
    fn a_last_run_in_the_future_does_not_postpone_a_resumed_check() {
        let s = slots();
        let year_9999 = 253_402_300_799 * SEC;
        // A last run "in the future" counts as now: half an interval later, on a slot.
        assert_eq!(s.resume(105 * SEC, Some(year_9999), None), 112_500);
        assert_eq!(s.resume(105 * SEC, Some(i64::MAX), None), 112_500);
    }

    #[test]
    fn snapping_keeps_runs_on_their_slots_and_in_the_future() {
        let s = slots();
        let now = Instant::now();
        let wall = 100 * SEC;
        // A free-running next due 9.7s from now (109.7s, drifted): the nearest slot is 112.5s.
        let next = now + Duration::from_millis(9_700);
        assert_eq!(
            snap(&s, next, now, wall),
            now + Duration::from_millis(12_500)
        );
        // At 95s, a next due 1ms away is nearest the 92.5s slot, in the past: 102.5s instead.
        let next = now + Duration::from_millis(1);
        let at_95 = 95 * SEC;
        assert_eq!(
            snap(&s, next, now, at_95),
            now + Duration::from_millis(7_500)
        );
        assert_eq!(wall_of(now - Duration::from_secs(1), now, wall), 99 * SEC);
        assert_eq!(instant_of(90 * SEC, now, wall), now, "never before now");
    }
}
