//! Run-now requests (`canary.dev/run-now`), rate limited per check: the first in any
//! [`RUN_NOW_WINDOW`] runs as soon as a probe slot is free, later ones in the window are
//! coalesced into one run at its end (the latest value wins). A flood of annotations thus costs
//! a target at most one probe per window and check, and the status writer one write.

use std::time::Duration;

use tokio::time::Instant;

/// At most one run-now run per check starts in any window this long.
pub const RUN_NOW_WINDOW: Duration = Duration::from_secs(10);

/// What became of one run-now request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunNow {
    /// It runs as soon as a probe slot is free.
    Now,
    /// It joins the run due `at`, the end of the current window; `first`: the first request
    /// coalesced since the burst began (the one worth a log line). A burst lasts while requests
    /// keep coming within a window of the last run-now run.
    Coalesced { first: bool, at: Instant },
    /// The check has no runner here, or does not probe (suspended, or a spec that cannot run).
    Ignored,
}

impl RunNow {
    /// The `result` label of `canary_run_now_requests_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Now => "run",
            Self::Coalesced { .. } => "coalesced",
            Self::Ignored => "ignored",
        }
    }
}

/// One check's run-now requests: when the last run-now run was granted, and the value waiting
/// for its run.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunNowGate {
    /// When the window of the last granted run-now run began.
    last: Option<Instant>,
    /// The latest value asked and not yet handled by a run, and when that run is due.
    pending: Option<(String, Instant)>,
    /// A request of the current burst was coalesced (and logged).
    noted: bool,
}

impl RunNowGate {
    /// Records a request for `value` at `now`: what becomes of it, and when its run is due.
    pub(crate) fn request(&mut self, value: &str, now: Instant) -> (RunNow, Instant) {
        let window_end = self.last.map(|last| last + RUN_NOW_WINDOW);
        let (result, due) = match window_end {
            Some(end) if now < end => {
                let first = !std::mem::replace(&mut self.noted, true);
                // A run already due earlier (not started yet) handles this value too.
                let due = self.due().map_or(end, |due| due.min(end));
                (RunNow::Coalesced { first, at: due }, due)
            }
            _ => {
                (self.last, self.noted) = (Some(now), false);
                (RunNow::Now, now)
            }
        };
        self.pending = Some((value.to_string(), due));
        (result, due)
    }

    /// The value a run starting at `now` handles, if a request waits; its window begins then.
    pub(crate) fn take(&mut self, now: Instant) -> Option<String> {
        let (value, _) = self.pending.take()?;
        self.last = Some(now);
        Some(value)
    }

    /// When the run of a waiting request is due (a request that came while a run was in
    /// flight keeps its turn when that run schedules the next).
    pub(crate) fn due(&self) -> Option<Instant> {
        self.pending.as_ref().map(|(_, due)| *due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn the_first_request_runs_now_later_ones_join_one_run_at_the_windows_end() {
        let mut gate = RunNowGate::default();
        let t0 = Instant::now();
        assert_eq!(gate.request("a", t0), (RunNow::Now, t0));
        assert_eq!(gate.take(t0).as_deref(), Some("a"));
        let end = t0 + RUN_NOW_WINDOW;
        let coalesced = (1..=3000).map(|i| gate.request(&i.to_string(), t0 + SEC));
        let results: Vec<_> = coalesced.collect();
        assert_eq!(
            results[0],
            (
                RunNow::Coalesced {
                    first: true,
                    at: end
                },
                end
            )
        );
        assert!(
            (results[1..].iter()).all(|r| *r
                == (
                    RunNow::Coalesced {
                        first: false,
                        at: end
                    },
                    end
                )),
            "one log line per burst"
        );
        assert_eq!(gate.due(), Some(end));
        assert_eq!(
            gate.take(end).as_deref(),
            Some("3000"),
            "the latest value wins"
        );
        assert_eq!(gate.take(end), None, "one run for the whole burst");
        let soon = end + SEC;
        let (result, due) = gate.request("b", soon);
        assert_eq!(
            result,
            RunNow::Coalesced {
                first: false,
                at: end + RUN_NOW_WINDOW
            },
            "the coalesced run began a window; the burst goes on, unlogged"
        );
        assert_eq!(due, end + RUN_NOW_WINDOW);
        let later = end + RUN_NOW_WINDOW * 2;
        gate.take(end + RUN_NOW_WINDOW);
        assert_eq!(gate.request("c", later), (RunNow::Now, later));
        let next = gate.request("d", later + SEC).0;
        assert!(
            matches!(next, RunNow::Coalesced { first: true, .. }),
            "a new burst is logged again"
        );
    }

    /// A prober that counts its probes and passes.
    #[derive(Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    impl crate::runner::Prober for Counting {
        fn probe(&self) -> futures::future::BoxFuture<'_, crate::probe::Outcome> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let outcome = crate::probe::Outcome::not_run(crate::api::Reason::Succeeded, "ok");
            Box::pin(async move { outcome })
        }
    }

    /// The finding: 3,000 patches in 1.9 s on a 24 h check gave 258 probes. Now one at once
    /// and one at the end of the window, recording the last value asked.
    #[tokio::test(start_paused = true)]
    async fn a_burst_of_3000_requests_on_a_daily_check_probes_twice() {
        use crate::runner::{CheckKey, Plan, RunnerSpec, Schedule, Scheduler, SchedulerConfig};
        let scheduler = Scheduler::new(SchedulerConfig::default(), vec![]);
        let probes = std::sync::Arc::new(Counting::default());
        let key = CheckKey {
            namespace: "n".into(),
            name: "daily".into(),
        };
        let schedule = Schedule::every(Duration::from_secs(86_400), 5 * SEC);
        let mut spec = RunnerSpec::new(key.clone(), schedule, Plan::Run(probes.clone()));
        spec.generation = Some(1);
        scheduler.upsert(spec);
        tokio::time::sleep(6 * SEC).await;
        let probed = || probes.0.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(probed(), 1, "a new check runs within 5 s");
        let mut results = Vec::new();
        for i in 1..=3000 {
            results.push(scheduler.run_now(&key, &i.to_string()));
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(63)).await;
            }
        }
        let now = results.iter().filter(|r| **r == RunNow::Now).count();
        let logged = (results.iter())
            .filter(|r| matches!(r, RunNow::Coalesced { first: true, .. }))
            .count();
        assert_eq!((now, logged), (1, 1), "one run at once, one line per burst");
        tokio::time::sleep(30 * SEC).await;
        assert_eq!(probed(), 1 + 2, "3,000 requests cost two probes");
        let status = scheduler.status(&key).expect("a runner");
        assert_eq!(status.last_handled_run_now.as_deref(), Some("3000"));
    }

    #[test]
    fn a_regular_run_after_a_request_handles_it() {
        let mut gate = RunNowGate::default();
        let t0 = Instant::now();
        gate.request("a", t0);
        gate.take(t0);
        gate.request("b", t0 + SEC);
        assert_eq!(gate.take(t0 + 2 * SEC).as_deref(), Some("b"));
        assert_eq!(gate.due(), None);
    }
}
