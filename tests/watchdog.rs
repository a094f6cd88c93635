//! The watchdog on tokio's paused clock: waiting for a probe slot is not a stall while the
//! queue moves (an outage must not restart the monitor; nor do slots kept free as another
//! namespace's headroom); a run outliving its deadline, a queue that stops moving (for any
//! waiting namespace, even while others' slots come free), or a runner that does not wake is.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use canary_operator::{
    api::{CheckKey, Reason},
    probe::Outcome,
    runner::{
        Plan, Prober, RunReport, RunnerSpec, Schedule, Scheduler, SchedulerConfig, Sink,
        WatchdogConfig,
    },
};
use futures::future::BoxFuture;
use tokio::time::Instant;

/// Takes `busy` per probe, like a target that times out at the probe's deadline.
struct Slow {
    busy: Duration,
}

impl Prober for Slow {
    fn probe(&self) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            tokio::time::sleep(self.busy).await;
            Outcome::not_run(Reason::Timeout, "no answer")
        })
    }
}

/// Records (namespace, slot wait) of every run.
#[derive(Default)]
struct Waits(Mutex<Vec<(String, Duration)>>);

impl Sink for Waits {
    fn on_run(&self, report: &RunReport<'_>) {
        let entry = (report.key.namespace.clone(), report.slot_wait);
        self.0.lock().unwrap().push(entry);
    }

    fn on_remove(&self, _: &CheckKey) {}
}

fn runner(namespace: &str, i: usize, schedule: &Schedule, busy: Duration) -> RunnerSpec {
    let schedule = schedule.clone();
    let key = CheckKey {
        namespace: namespace.into(),
        name: format!("c{i}"),
    };
    let plan = Plan::Run(Arc::new(Slow { busy }));
    RunnerSpec {
        generation: Some(1),
        revision: 1,
        ..RunnerSpec::new(key, schedule, plan)
    }
}

fn scheduler(slots: usize, grace: Duration) -> (Scheduler, Arc<Waits>) {
    let waits = Arc::new(Waits::default());
    let config = SchedulerConfig {
        max_concurrent: slots,
        stall_grace: grace,
        prober_error_streak: 5,
        ..SchedulerConfig::default()
    };
    (Scheduler::new(config, vec![waits.clone()]), waits)
}

fn watchdog() -> WatchdogConfig {
    WatchdogConfig {
        tick_threshold: Duration::from_secs(3600),
    }
}

#[tokio::test(start_paused = true)]
async fn an_outage_that_fills_every_slot_is_not_a_stall_while_the_queue_moves() {
    // 60 checks at 60s/10s all time out; 4 slots serve 24 probes a minute, so checks queue
    // far longer than interval + timeout + grace. Capacity is short; the engine is fine.
    let (scheduler, waits) = scheduler(4, Duration::from_secs(5));
    let schedule = Schedule::every(Duration::from_secs(60), Duration::from_secs(10));
    for i in 0..60 {
        scheduler.upsert(runner("shop", i, &schedule, Duration::from_secs(10)));
    }
    for _ in 0..36 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let health = scheduler.health(Instant::now(), &watchdog());
        assert!(health.healthy, "{:?}", health.problems);
    }
    let summary = scheduler.summary(Instant::now());
    assert!(summary.late > 0, "capacity shortage shows as late checks");
    assert_eq!(summary.slots_in_use, 4);
    let longest = waits
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(_, w)| *w)
        .max()
        .unwrap();
    assert!(
        longest > Duration::from_secs(75),
        "checks waited {longest:?} at most"
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_outliving_its_timeout_is_a_stall() {
    let (scheduler, _) = scheduler(4, Duration::from_secs(5));
    // A prober that ignores its own deadline (what a wedged probe would look like).
    let schedule = Schedule::every(Duration::from_secs(60), Duration::from_secs(10));
    scheduler.upsert(runner("shop", 0, &schedule, Duration::from_secs(3600)));
    tokio::time::sleep(Duration::from_secs(61 + 16)).await;
    let health = scheduler.health(Instant::now(), &watchdog());
    assert!(!health.healthy);
    assert!(
        health
            .problems
            .iter()
            .any(|p| p.contains("shop/c0") && p.contains("past its timeout")),
        "{:?}",
        health.problems
    );
}

#[tokio::test(start_paused = true)]
async fn a_queue_that_stops_moving_is_a_stall() {
    // One slot held by a run that never ends, a second check queued behind it.
    let (scheduler, _) = scheduler(1, Duration::from_secs(5));
    let schedule = Schedule::every(Duration::from_secs(60), Duration::from_secs(10));
    scheduler.upsert(runner("a", 0, &schedule, Duration::from_secs(3600)));
    scheduler.upsert(runner("b", 1, &schedule, Duration::from_millis(1)));
    tokio::time::sleep(Duration::from_secs(120)).await;
    let health = scheduler.health(Instant::now(), &watchdog());
    assert!(
        health
            .problems
            .iter()
            .any(|p| p.contains("probe-slot queue has not moved")),
        "{:?}",
        health.problems
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_namespace_cannot_take_more_than_its_share_of_slots() {
    // "slow" has 30 checks that each hold a slot for 9 s; "quick" has 3 checks of 10 ms.
    let (scheduler, waits) = scheduler(4, Duration::from_secs(30));
    let schedule = Schedule::every(Duration::from_secs(10), Duration::from_secs(9));
    for i in 0..30 {
        scheduler.upsert(runner("slow", i, &schedule, Duration::from_secs(9)));
    }
    for i in 0..3 {
        scheduler.upsert(runner("quick", i, &schedule, Duration::from_millis(10)));
    }
    tokio::time::sleep(Duration::from_secs(120)).await;
    let waits = waits.0.lock().unwrap().clone();
    let quick: Vec<Duration> = waits
        .iter()
        .filter(|(ns, _)| ns == "quick")
        .map(|(_, w)| *w)
        .collect();
    let worst = quick.iter().max().copied().unwrap_or_default();
    // With an equal share (2 of 4 slots) quick checks wait at most for one slow run to end.
    assert!(
        worst <= Duration::from_secs(9),
        "quick checks waited up to {worst:?}"
    );
    assert!(
        quick.len() >= 3 * 11,
        "quick checks kept their schedule: {} runs",
        quick.len()
    );
}

#[tokio::test(start_paused = true)]
async fn headroom_kept_for_a_quiet_namespace_is_not_a_stall() {
    // "noisy" wants every slot for 9 s at a time; "quiet" runs every second. One slot stays
    // free for quiet while noisy checks wait: capacity, not a stall.
    let (scheduler, waits) = scheduler(4, Duration::from_secs(5));
    let quick = Schedule::every(Duration::from_secs(1), Duration::from_millis(500));
    scheduler.upsert(runner("quiet", 0, &quick, Duration::from_millis(10)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let slow = Schedule::every(Duration::from_secs(10), Duration::from_secs(9));
    for i in 0..30 {
        scheduler.upsert(runner("noisy", i, &slow, Duration::from_secs(9)));
    }
    let mut held_back = false;
    for _ in 0..24 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let health = scheduler.health(Instant::now(), &watchdog());
        assert!(health.healthy, "{:?}", health.problems);
        let usage = scheduler.slots();
        held_back |= usage.waiting > 0 && usage.in_use < usage.capacity;
    }
    assert!(held_back, "noisy waited beside quiet's free slot");
    let waits = waits.0.lock().unwrap();
    let quiet = waits.iter().filter(|(ns, _)| ns == "quiet");
    let worst = quiet.map(|(_, w)| *w).max().unwrap();
    assert!(worst <= Duration::from_millis(10), "quiet waited {worst:?}");
}

#[tokio::test(start_paused = true)]
async fn a_namespace_whose_slots_never_come_back_is_a_stall_while_another_moves() {
    // "stuck" holds 3 of 4 slots with runs that never end; the fourth is quiet's headroom,
    // released every second. Slots come free, yet stuck's queue never moves.
    let (scheduler, _) = scheduler(4, Duration::from_secs(5));
    let quick = Schedule::every(Duration::from_secs(1), Duration::from_millis(500));
    scheduler.upsert(runner("quiet", 0, &quick, Duration::from_millis(10)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let schedule = Schedule::every(Duration::from_secs(60), Duration::from_secs(10));
    for i in 0..10 {
        scheduler.upsert(runner("stuck", i, &schedule, Duration::from_secs(3600)));
    }
    tokio::time::sleep(Duration::from_secs(120)).await;
    let health = scheduler.health(Instant::now(), &watchdog());
    assert!(
        health
            .problems
            .iter()
            .any(|p| p.contains("probe-slot queue has not moved")),
        "{:?}",
        health.problems
    );
}
