//! Scheduling on tokio's paused clock with a fake prober: jitter, intervals, overruns, the
//! concurrency bound and fairness, upsert and remove.

use std::{
    num::NonZeroU32,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use canary_operator::{
    api::{GoDuration, MaintenanceWindow, MaintenanceWindows, Reason},
    metrics::Metrics,
    probe::Outcome,
    runner::{
        CheckKey, CheckState, Plan, Prober, Registration, RunReport, RunnerSpec, Schedule,
        Scheduler, SchedulerConfig, Sink, WatchdogConfig, jitter,
    },
    ui::model::Source,
};
use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::time::Instant;

/// A prober that takes `busy` and records when each run started.
struct Fake {
    busy: Duration,
    starts: Mutex<Vec<Instant>>,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Fake {
    fn new(busy: Duration, in_flight: Arc<AtomicUsize>, peak: Arc<AtomicUsize>) -> Arc<Self> {
        Arc::new(Self {
            busy,
            starts: Mutex::new(Vec::new()),
            in_flight,
            peak,
        })
    }

    fn alone(busy: Duration) -> Arc<Self> {
        Self::new(busy, Arc::default(), Arc::default())
    }

    fn starts(&self) -> Vec<Instant> {
        self.starts.lock().unwrap().clone()
    }
}

impl Prober for Fake {
    fn probe(&self) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            self.starts.lock().unwrap().push(Instant::now());
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.busy).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            Outcome::not_run(Reason::Succeeded, "fake")
        })
    }
}

#[derive(Default)]
struct Recorder {
    runs: Mutex<Vec<(CheckKey, Duration, u64)>>,
    removed: Mutex<Vec<CheckKey>>,
    started: Mutex<Vec<CheckKey>>,
}

impl Sink for Recorder {
    fn on_run(&self, report: &RunReport<'_>) {
        self.runs
            .lock()
            .unwrap()
            .push((report.key.clone(), report.lag, report.skipped));
    }

    fn on_remove(&self, key: &CheckKey) {
        self.removed.lock().unwrap().push(key.clone());
    }

    fn on_start(
        &self,
        spec: &RunnerSpec,
        _resumed: &canary_operator::api::HealthCheckStatus,
        _registration: &Registration,
    ) {
        self.started.lock().unwrap().push(spec.key.clone());
    }
}

fn key(name: &str) -> CheckKey {
    CheckKey {
        namespace: "test".into(),
        name: name.into(),
    }
}

fn runner(name: &str, interval: Duration, prober: Arc<dyn Prober>, revision: u64) -> RunnerSpec {
    let schedule = Schedule::every(interval, interval / 2);
    RunnerSpec {
        generation: Some(1),
        revision,
        ..RunnerSpec::new(key(name), schedule, Plan::Run(prober))
    }
}

fn scheduler(max_concurrent: usize) -> (Scheduler, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let config = SchedulerConfig {
        max_concurrent,
        ..SchedulerConfig::default()
    };
    (Scheduler::new(config, vec![recorder.clone()]), recorder)
}

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

/// A runner resumed after a restart: its status says it ran before.
fn resumed(name: &str, interval: Duration, prober: Arc<dyn Prober>) -> RunnerSpec {
    let mut spec = runner(name, interval, prober, 1);
    spec.status = Some(Box::new(canary_operator::api::HealthCheckStatus {
        last_run_time: Some(Time(jiff::Timestamp::now())),
        ..Default::default()
    }));
    spec
}

#[tokio::test(start_paused = true)]
async fn checks_that_never_ran_start_within_five_seconds_spread_out() {
    let interval = Duration::from_secs(60);
    let (scheduler, _) = scheduler(1000);
    let start = Instant::now();
    let probers: Vec<Arc<Fake>> = (0..100).map(|_| Fake::alone(Duration::ZERO)).collect();
    for (i, prober) in probers.iter().enumerate() {
        scheduler.upsert(runner(&format!("c{i}"), interval, prober.clone(), 1));
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut per_second = [0usize; 5];
    for prober in &probers {
        let first = prober.starts()[0].duration_since(start);
        per_second[first.as_secs() as usize] += 1;
    }
    assert!(
        per_second.iter().all(|n| (8..=35).contains(n)),
        "new checks spread over 5s: {per_second:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_resumed_first_runs_over_the_interval() {
    let interval = Duration::from_secs(10);
    let (scheduler, _) = scheduler(1000);
    let start = Instant::now();
    let probers: Vec<Arc<Fake>> = (0..200).map(|_| Fake::alone(Duration::ZERO)).collect();
    for (i, prober) in probers.iter().enumerate() {
        scheduler.upsert(resumed(&format!("c{i}"), interval, prober.clone()));
    }
    tokio::time::sleep(interval).await;
    let mut per_second = [0usize; 10];
    for prober in &probers {
        let first = prober.starts()[0].duration_since(start);
        assert!(first < interval);
        per_second[first.as_secs() as usize] += 1;
    }
    assert!(
        per_second.iter().all(|n| (5..=40).contains(n)),
        "uneven spread: {per_second:?}"
    );
    let spec = runner("c0", interval, probers[0].clone(), 1);
    assert_eq!(jitter(&spec), jitter(&spec), "jitter is deterministic");
}

/// Starts of one check at a 1s interval whose runs take `busy`, over `span` of paused time,
/// and what the sinks were told.
async fn starts_of_one_check(busy: Duration, span: Duration) -> (Vec<Instant>, Arc<Recorder>) {
    let (scheduler, recorder) = scheduler(10);
    let prober = Fake::alone(busy);
    scheduler.upsert(runner("one", SECOND, prober.clone(), 1));
    tokio::time::sleep(span).await;
    (prober.starts(), recorder)
}

#[tokio::test(start_paused = true)]
async fn interval_is_honoured_over_many_ticks() {
    let (starts, _) =
        starts_of_one_check(Duration::from_millis(100), Duration::from_secs(101)).await;
    assert!(starts.len() >= 100, "{} runs", starts.len());
    for pair in starts.windows(2) {
        assert_eq!(pair[1] - pair[0], SECOND);
    }
}

#[tokio::test(start_paused = true)]
async fn an_overrunning_run_skips_ticks_instead_of_stacking() {
    let (starts, recorder) =
        starts_of_one_check(Duration::from_millis(2500), Duration::from_secs(20)).await;
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        assert_eq!(
            gap,
            Duration::from_secs(3),
            "next run on the next whole tick"
        );
    }
    let skipped: u64 = recorder.runs.lock().unwrap().iter().map(|r| r.2).sum();
    assert!(
        skipped >= 2 * (starts.len() as u64 - 1),
        "skipped ticks are counted: {skipped}"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrency_bound_is_never_exceeded_and_slow_targets_do_not_starve_others() {
    let (in_flight, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (scheduler, recorder) = scheduler(4);
    let slow = Fake::new(Duration::from_secs(5), in_flight.clone(), peak.clone());
    scheduler.upsert(runner("slow", Duration::from_secs(10), slow, 1));
    let fast: Vec<Arc<Fake>> = (0..40)
        .map(|_| Fake::new(Duration::from_millis(50), in_flight.clone(), peak.clone()))
        .collect();
    for (i, prober) in fast.iter().enumerate() {
        scheduler.upsert(runner(
            &format!("fast{i}"),
            Duration::from_secs(2),
            prober.clone(),
            1,
        ));
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        peak.load(Ordering::SeqCst),
        4,
        "the bound is reached but never exceeded"
    );
    let runs = recorder.runs.lock().unwrap();
    let worst_fast_lag = runs
        .iter()
        .filter(|r| r.0.name.starts_with("fast"))
        .map(|r| r.1)
        .max()
        .unwrap();
    // 40 checks of 50 ms on 3 free slots: a queue of at most ~0.7 s, never the slow check's 5 s.
    assert!(
        worst_fast_lag < Duration::from_secs(1),
        "fast checks waited {worst_fast_lag:?}"
    );
    assert!(
        fast.iter().all(|f| f.starts().len() >= 28),
        "every fast check keeps running"
    );
}

#[tokio::test(start_paused = true)]
async fn upsert_unchanged_keeps_the_runner_and_changed_swaps_without_a_double_run() {
    let (scheduler, _) = scheduler(10);
    let first = Fake::alone(Duration::ZERO);
    assert!(scheduler.upsert(runner("c", Duration::from_secs(10), first.clone(), 1)));
    tokio::time::sleep(Duration::from_secs(25)).await;
    let runs_before = first.starts().len();
    assert!(
        !scheduler.upsert(runner(
            "c",
            Duration::from_secs(10),
            Fake::alone(Duration::ZERO),
            1
        )),
        "same revision"
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        first.starts().len(),
        runs_before + 1,
        "the original runner kept its schedule"
    );
    let last = *first.starts().last().unwrap();
    let second = Fake::alone(Duration::ZERO);
    assert!(scheduler.upsert(runner("c", Duration::from_secs(10), second.clone(), 2)));
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(
        first.starts().len(),
        runs_before + 1,
        "the old runner stopped"
    );
    let starts = second.starts();
    assert_eq!(
        starts[0],
        last + Duration::from_secs(10),
        "the new runner takes over the next due time, no extra run"
    );
    for pair in starts.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            Duration::from_secs(10),
            "no double run after the swap"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn remove_stops_runs_and_tells_sinks() {
    let (scheduler, recorder) = scheduler(10);
    let prober = Fake::alone(Duration::ZERO);
    scheduler.upsert(runner("gone", SECOND, prober.clone(), 1));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(scheduler.remove(&key("gone")));
    let runs = prober.starts().len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(prober.starts().len(), runs);
    assert_eq!(*recorder.removed.lock().unwrap(), [key("gone")]);
    assert!(scheduler.keys().is_empty());
}

/// Sinks hear once, before its first run, of a check that starts running here (to show its last
/// state from status); not of a replaced runner, a suspended check, or one that cannot run.
#[tokio::test(start_paused = true)]
async fn sinks_hear_when_a_check_starts_running_here_and_only_then() {
    let (scheduler, recorder) = scheduler(10);
    let prober = Fake::alone(Duration::ZERO);
    scheduler.upsert(runner("new", SECOND, prober.clone(), 1));
    assert_eq!(*recorder.started.lock().unwrap(), [key("new")]);
    assert!(
        recorder.runs.lock().unwrap().is_empty(),
        "told before any run"
    );
    scheduler.upsert(runner("new", SECOND, prober.clone(), 2));
    let mut suspended = runner("suspended", SECOND, prober.clone(), 1);
    suspended.schedule.suspend = true;
    scheduler.upsert(suspended);
    let blocked = Plan::Blocked {
        reason: Reason::InvalidSpec,
        message: String::new(),
    };
    let schedule = Schedule::every(SECOND, Duration::ZERO);
    scheduler.upsert(RunnerSpec::new(key("blocked"), schedule, blocked));
    assert_eq!(*recorder.started.lock().unwrap(), [key("new")]);
    scheduler.remove(&key("new"));
    scheduler.upsert(runner("new", SECOND, prober, 3));
    assert_eq!(*recorder.started.lock().unwrap(), [key("new"), key("new")]);
}

#[tokio::test(start_paused = true)]
async fn suspended_and_blocked_checks_report_once_and_do_not_probe() {
    let (scheduler, recorder) = scheduler(10);
    let prober = Fake::alone(Duration::ZERO);
    let mut suspended = runner("paused", SECOND, prober.clone(), 1);
    suspended.schedule.suspend = true;
    scheduler.upsert(suspended);
    let mut blocked = runner("broken", SECOND, prober.clone(), 1);
    blocked.plan = Plan::Blocked {
        reason: Reason::InvalidSpec,
        message: "spec.timeout: too long".into(),
    };
    scheduler.upsert(blocked);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(prober.starts().is_empty());
    assert_eq!(recorder.runs.lock().unwrap().len(), 2);
    let status = scheduler.status(&key("broken")).unwrap();
    assert_eq!(status.conditions[0].reason, "InvalidSpec");
    assert_eq!(
        scheduler.status(&key("paused")).unwrap().conditions[0].reason,
        "Suspended"
    );
    let summary = scheduler.summary(Instant::now());
    let states = summary.states;
    assert_eq!(
        (
            states.get(CheckState::Suspended),
            states.get(CheckState::Invalid)
        ),
        (1, 1)
    );
    assert_eq!(summary.overdue, 0);
}

/// A prober that answers at once with `reason`.
struct Answers(Reason);

impl Prober for Answers {
    fn probe(&self) -> BoxFuture<'_, Outcome> {
        Box::pin(async move { Outcome::not_run(self.0, "answered") })
    }
}

/// The value of `canary_checks{state="<state>"}` in an exposition.
fn checks_in_state(exposition: &str, state: CheckState) -> Option<f64> {
    let series = format!("canary_checks{{state=\"{}\"}} ", state.name());
    let line = exposition.lines().find(|l| l.starts_with(&series))?;
    line[series.len()..].parse().ok()
}

/// One combination: a blocked plan, suspend, a maintenance window, and what runs answer.
#[derive(Debug, Clone, Copy)]
struct Case {
    blocked: Option<Reason>,
    suspend: bool,
    maintenance: bool,
    answer: Reason,
    failure_threshold: u32,
}

impl Case {
    /// The state `CheckState` should decide for this case.
    fn expected(&self) -> CheckState {
        match (self.blocked, self.suspend, self.maintenance) {
            (Some(Reason::InvalidSpec), ..) => CheckState::Invalid,
            (Some(_), ..) => CheckState::Blocked,
            (None, true, _) => CheckState::Suspended,
            (None, false, true) => CheckState::Maintenance,
            _ if self.failure_threshold > 1 => CheckState::Pending,
            _ if self.answer == Reason::Succeeded => CheckState::Ready,
            _ => CheckState::Failing,
        }
    }

    /// Runs the case's check alone for 10 s and returns the state the page shows, after
    /// checking that the Summary, `/healthz` and `canary_checks{state}` count it the same.
    async fn page_state(&self, always: &Arc<MaintenanceWindows>) -> CheckState {
        let metrics = Arc::new(Metrics::with_label_allowlist(&[]).unwrap());
        let scheduler = Scheduler::new(SchedulerConfig::default(), vec![metrics.clone()]);
        // One run in the 10 s below: the first comes within 5 s, the next a minute later.
        let mut spec = runner("c", MINUTE, Arc::new(Answers(self.answer)), 1);
        spec.schedule.suspend = self.suspend;
        spec.schedule.failure_threshold = NonZeroU32::new(self.failure_threshold).unwrap();
        if self.maintenance {
            spec.schedule.maintenance = always.clone();
        }
        if let Some(reason) = self.blocked {
            let message = "cannot run".into();
            spec.plan = Plan::Blocked { reason, message };
        }
        scheduler.upsert(spec);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let source = Source {
            scheduler: scheduler.clone(),
            redact: false,
            located: None,
        };
        let page = source.checks(0)[0].state;
        let summary = scheduler.summary(Instant::now());
        metrics.on_tick(&summary);
        let exposition = metrics.render().unwrap();
        let watchdog = WatchdogConfig {
            tick_threshold: Duration::from_secs(3600),
        };
        let healthz = scheduler.health(Instant::now(), &watchdog).states;
        for state in CheckState::ALL {
            let expected = usize::from(state == page);
            assert_eq!(
                summary.states.get(state),
                expected,
                "{self:?}: Summary {state}"
            );
            assert_eq!(healthz.get(state), expected, "{self:?}: /healthz {state}");
            let metric = checks_in_state(&exposition, state);
            assert_eq!(
                metric,
                Some(expected as f64),
                "{self:?}: canary_checks {state}"
            );
        }
        page
    }
}

/// One check per combination of a blocked plan (invalid spec, missing reference), suspend, a
/// maintenance window and what its runs decided (ready, failing, pending between thresholds):
/// the status page, `canary_checks{state}`, the scheduler's Summary and `/healthz` name the
/// same state, and it is the one `CheckState` decides.
#[tokio::test(start_paused = true)]
async fn page_metrics_summary_and_healthz_agree_on_every_combination() {
    let window = MaintenanceWindow {
        schedule: "* * * * *".into(),
        duration: GoDuration::new("1h"),
        timezone: None,
    };
    let always = Arc::new(MaintenanceWindows::parse(&[window]).unwrap());
    let blockers = [
        None,
        Some(Reason::InvalidSpec),
        Some(Reason::ReferenceNotFound),
    ];
    // (what each run answers, failureThreshold): ready, failing, pending.
    let runs = [
        (Reason::Succeeded, 1),
        (Reason::ConnectionRefused, 1),
        (Reason::ConnectionRefused, 3),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for blocked in blockers {
        for suspend in [false, true] {
            for maintenance in [false, true] {
                for (answer, failure_threshold) in runs {
                    let case = Case {
                        blocked,
                        suspend,
                        maintenance,
                        answer,
                        failure_threshold,
                    };
                    let page = case.page_state(&always).await;
                    assert_eq!(page, case.expected(), "{case:?}");
                    seen.insert(page);
                }
            }
        }
    }
    assert_eq!(
        seen.len(),
        CheckState::ALL.len(),
        "every state arises: {seen:?}"
    );
}
