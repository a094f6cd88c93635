//! The scheduler: one runner task per check, first runs spread by a deterministic jitter, a
//! global fair (FIFO) bound on probes in flight, outcomes sent to sinks, and progress tracked
//! for the watchdog. It knows nothing of the API server: specs come from a source (the
//! controller or YAML files), results go to sinks (metrics, status writer, logs).

pub mod audit;
mod cronjob;
mod fault;
pub mod heartbeat;
pub mod history;
mod phase;
mod pings;
mod run_now;
mod sink;
mod slots;
mod spec;
mod state;
mod task;
mod watchdog;

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::future::BoxFuture;
use tokio::{sync::Notify, task::JoinHandle, time::Instant};

use crate::{
    api::{HealthCheckStatus, ReadyStatus, Reason},
    lock,
    probe::{self, Outcome, Probe, ProbeContext},
};

pub use crate::api::CheckKey;
pub use audit::{Audit, AuditMetrics, Expectations, Expected};
pub use cronjob::{CronJobPlan, CronJobSource, Judged, MAX_PAST, Runs, Unreadable};
pub use history::History;
pub use phase::slot_of;
pub use pings::{HeartbeatPlan, INBOX};
pub use run_now::{RUN_NOW_WINDOW, RunNow};
pub use sink::{Registration, RunReport, Sink, Summary};
pub use slots::{SlotPermit, SlotUsage, Slots, default_slots};
pub use spec::{
    CheckInfo, GROUP_LABEL, Origin, PackedSpec, Plan, RunnerSpec, STATUS_PAGE_ANNOTATION, Schedule,
    jitter, quick_jitter, slot_offset, stable_hash,
};
pub use state::{CheckState, StateCounts};
pub use watchdog::{Health, Vital, WatchdogConfig};

/// Runs one probe of one check.
pub trait Prober: Send + Sync {
    fn probe(&self) -> BoxFuture<'_, Outcome>;
}

/// The real prober: a built probe under the operator-wide policy.
pub struct CheckProber {
    pub probe: Probe,
    pub ctx: Arc<ProbeContext>,
}

impl Prober for CheckProber {
    fn probe(&self) -> BoxFuture<'_, Outcome> {
        Box::pin(probe::run(&self.probe, &self.ctx))
    }
}

/// Default `--stall-grace`, `--prober-error-streak` and `--audit-interval`.
pub const DEFAULT_STALL_GRACE: Duration = Duration::from_secs(30);
pub const DEFAULT_PROBER_ERROR_STREAK: usize = 5;
pub const DEFAULT_AUDIT_INTERVAL: Duration = Duration::from_secs(30);

/// A check due for longer than this without starting counts as late.
pub const LATE_AFTER: Duration = Duration::from_secs(1);

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Probes in flight at once, across all checks (shared fairly across namespaces).
    pub max_concurrent: usize,
    /// How far past its due time, its timeout or the queue's last move a check may be before
    /// the watchdog calls the engine stalled.
    pub stall_grace: Duration,
    /// Consecutive ProberError runs (across checks) that make /healthz fail.
    pub prober_error_streak: usize,
    /// Run every check on its wall-clock slots (see [`phase`]), so replicas handing checks to
    /// each other agree on when each run is due (`--sharding shards`).
    pub aligned: bool,
    /// This replica, written into every status it reports (`status.probedBy`).
    pub probed_by: Option<String>,
    /// The reads CronJob checks need (the operator's); `None`: they cannot run here.
    pub cronjobs: Option<Arc<dyn CronJobSource>>,
    /// How often a runner puts its hourly buckets into `status.history` (`None`: never).
    pub history_every: Option<Duration>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_concurrent: default_slots(),
            stall_grace: DEFAULT_STALL_GRACE,
            prober_error_streak: DEFAULT_PROBER_ERROR_STREAK,
            aligned: false,
            probed_by: None,
            cronjobs: None,
            history_every: None,
        }
    }
}

/// A check's state as [`Scheduler::visit`] shows it.
pub struct RunnerView<'a> {
    pub status: &'a HealthCheckStatus,
    pub history: &'a History,
    pub state: CheckState,
}

impl<'a> RunnerView<'a> {
    fn of(state: &'a RunnerState) -> Self {
        Self {
            status: &state.status,
            history: &state.history,
            state: state.check_state(),
        }
    }
}

/// Where a runner is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunPhase {
    /// Sleeping until `next_due`.
    Idle,
    /// Due, waiting for a probe slot since then.
    Queued { since: Instant },
    /// Probing since then.
    Running { since: Instant },
}

/// Mutable state of one runner, shared with the watchdog (std locks: readable from any thread).
#[derive(Debug, Clone)]
pub(crate) struct RunnerState {
    pub status: HealthCheckStatus,
    pub next_due: Instant,
    pub phase: RunPhase,
    pub active: bool,
    /// Why the spec cannot run (InvalidSpec, ReferenceNotFound, ReferenceForbidden).
    pub blocked: Option<Reason>,
    pub suspended: bool,
    pub interval: Duration,
    pub timeout: Duration,
    /// The last run that was not the prober's own fault ended then (or the runner started).
    pub last_progress: Instant,
    /// The last cycle ended then: a run completed, or a slot deliberately skipped (or the
    /// runner started). The audit's measure of a runner that stopped advancing.
    pub last_cycle: Instant,
    /// The last run ended in ProberError.
    pub prober_failing: bool,
    pub runs: u64,
    /// Ready before a spec change, while Ready says Reconciling.
    pub settled: Option<ReadyStatus>,
    /// The last run fell in a maintenance window.
    pub in_maintenance: bool,
    /// Run-now requests and their rate limit.
    pub run_now: run_now::RunNowGate,
    /// Recent results, transitions and hourly uptime, for the status page.
    pub history: History,
    /// Pings delivered to a heartbeat runner and not yet judged.
    pub inbox: Vec<heartbeat::Ping>,
}

impl RunnerState {
    /// The state of a new runner of `spec`, resuming `status` and `history`.
    fn new(
        spec: &RunnerSpec,
        status: HealthCheckStatus,
        next_due: Instant,
        history: History,
        now: Instant,
    ) -> Self {
        let schedule = &spec.schedule;
        Self {
            status,
            next_due,
            phase: RunPhase::Idle,
            active: !schedule.suspend && matches!(spec.plan, Plan::Run(_)),
            blocked: spec.plan.blocked_reason(),
            suspended: schedule.suspend,
            interval: schedule.interval,
            timeout: schedule.timeout,
            last_progress: now,
            last_cycle: now,
            prober_failing: false,
            runs: 0,
            settled: None,
            in_maintenance: false,
            run_now: run_now::RunNowGate::default(),
            history,
            inbox: Vec::new(),
        }
    }
}

struct RunnerHandle {
    revision: u64,
    generation: Option<i64>,
    spec: Arc<RunnerSpec>,
    state: Arc<Mutex<RunnerState>>,
    registration: Arc<Registration>,
    task: JoinHandle<()>,
    /// Wakes the runner when its next_due moves earlier (run now).
    wake: Arc<Notify>,
}

pub(crate) struct Shared {
    config: SchedulerConfig,
    slots: Slots,
    sinks: Vec<Arc<dyn Sink>>,
    runners: Mutex<HashMap<CheckKey, RunnerHandle>>,
    /// Whether each of the last runs ended in ProberError, newest last.
    recent: Mutex<VecDeque<bool>>,
    last_tick: Mutex<Instant>,
    /// Unix ms after which no run starts (a replica handing its checks over, see
    /// [`Scheduler::retire`]).
    retire_after: Mutex<Option<i64>>,
    /// No probe starts at or after this moment (a shard member whose Lease renewal is overdue;
    /// see [`Scheduler::probe_until`]).
    probe_until: Mutex<Option<Instant>>,
    /// Injected faults (`CANARY_FAULT_INJECT_*`), for the audit's tests.
    faults: fault::Faults,
}

/// The scheduler handle; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    shared: Arc<Shared>,
}

impl Scheduler {
    /// A scheduler sending every run to `sinks`. Call [`Scheduler::run_ticker`] on the same runtime.
    pub fn new(config: SchedulerConfig, sinks: Vec<Arc<dyn Sink>>) -> Self {
        Self {
            shared: Arc::new(Shared {
                slots: Slots::new(config.max_concurrent),
                config,
                sinks,
                runners: Mutex::new(HashMap::new()),
                recent: Mutex::new(VecDeque::new()),
                last_tick: Mutex::new(Instant::now()),
                retire_after: Mutex::new(None),
                probe_until: Mutex::new(None),
                faults: fault::Faults::from_env(),
            }),
        }
    }

    /// Starts or replaces the runner for `spec.key`; returns false when nothing changed.
    /// A replaced runner hands over its status and next due time, so a change never causes
    /// an extra run, and its late report is dropped (see [`Registration`]).
    /// The spec's resume status moves into the runner's state: a copy kept beside every
    /// runner cost up to 2 KiB per check (its last result, conditions and history).
    pub fn upsert(&self, mut spec: RunnerSpec) -> bool {
        let resumed_status = spec.status.take().map(|status| *status).unwrap_or_default();
        let mut runners = lock(&self.shared.runners);
        let previous = match runners.get(&spec.key) {
            Some(handle) if handle_same(handle, &spec) => return false,
            Some(_) => runners.remove(&spec.key),
            None if self.shared.faults.loses(&spec.key) => return true,
            None => None,
        };
        let now = Instant::now();
        // Sinks hear of a check that starts running here (not of a replaced runner).
        let starts = previous.is_none() && !spec.schedule.suspend && spec.plan.runs();
        let (status, first_due, history, registration, carried) = match previous {
            // A new generation runs within seconds; a rotated reference keeps the schedule.
            Some(handle) => {
                handle.task.abort();
                let old = lock(&handle.state).clone();
                let due = if handle.generation != spec.generation {
                    now + quick_jitter(&spec)
                } else {
                    old.next_due.min(now + spec.schedule.interval)
                };
                let registration = Arc::new(handle.registration.supersede());
                let carried = (old.settled, old.run_now);
                (old.status, due, old.history, registration, Some(carried))
            }
            None => {
                let last_run = resumed_status.last_run_time.as_ref();
                let due = first_due(&spec, last_run, now, self.shared.config.aligned);
                let history = History::resumed(&spec.key, &resumed_status);
                (resumed_status, due, history, Arc::default(), None)
            }
        };
        let mut state = RunnerState::new(&spec, status, first_due, history, now);
        // Ready before an interlude the replaced runner was in (an edit during a window), and
        // the run-now window (an edit must not reset it).
        if let Some((settled, run_now)) = carried {
            (state.settled, state.run_now) = (settled, run_now);
        }
        let resumed = starts.then(|| state.status.clone());
        let spec = Arc::new(spec);
        let handle = self.spawn(spec.clone(), state, registration.clone());
        runners.insert(spec.key.clone(), handle);
        drop(runners);
        if let Some(resumed) = resumed {
            for sink in &self.shared.sinks {
                sink.on_start(&spec, &resumed, &registration);
            }
        }
        true
    }

    /// Starts the task of one runner.
    fn spawn(
        &self,
        spec: Arc<RunnerSpec>,
        state: RunnerState,
        registration: Arc<Registration>,
    ) -> RunnerHandle {
        let state = Arc::new(Mutex::new(state));
        let wake = Arc::new(Notify::new());
        let stall = self.shared.faults.stalls(&spec.key);
        let runner = task::Runner {
            spec: spec.clone(),
            state: state.clone(),
            registration: registration.clone(),
        };
        let task = tokio::spawn(task::run(self.shared.clone(), runner, wake.clone(), stall));
        RunnerHandle {
            revision: spec.revision,
            generation: spec.generation,
            spec,
            state,
            registration,
            task,
            wake,
        }
    }

    /// Restarts the task of `key` with its spec and state (the audit found it not advancing);
    /// it runs at once. False when there is no runner.
    pub fn restart(&self, key: &CheckKey) -> bool {
        let mut runners = lock(&self.shared.runners);
        let Some(old) = runners.remove(key) else {
            return false;
        };
        old.task.abort();
        let mut state = lock(&old.state).clone();
        let now = Instant::now();
        (state.phase, state.next_due, state.last_cycle) = (RunPhase::Idle, now, now);
        let registration = Arc::new(old.registration.supersede());
        let handle = self.spawn(old.spec.clone(), state, registration);
        runners.insert(key.clone(), handle);
        true
    }

    /// Arms an injected fault for `key` (unit tests; processes use the environment).
    #[cfg(test)]
    pub(crate) fn arm_fault(&self, key: &CheckKey, lose: bool, always: bool) {
        self.shared.faults.arm(key, lose, always);
    }

    /// Whether `key` has a runner.
    pub fn contains(&self, key: &CheckKey) -> bool {
        lock(&self.shared.runners).contains_key(key)
    }

    /// Whether the runner of `key` advances (None: there is none; `Err`: why it does not). A
    /// runner advances while it is queued or running (the watchdog judges those), when it
    /// does not probe (blocked, suspended), or when it completed a cycle within interval +
    /// timeout + `grace`.
    pub fn advancing(
        &self,
        key: &CheckKey,
        now: Instant,
        grace: Duration,
    ) -> Option<Result<(), String>> {
        let runners = lock(&self.shared.runners);
        let handle = runners.get(key)?;
        if handle.task.is_finished() {
            return Some(Err("its task ended".to_string()));
        }
        let state = lock(&handle.state);
        let limit = audit::advancing_limit(state.interval, state.timeout, grace);
        let idle = now.saturating_duration_since(state.last_cycle);
        Some(match state.phase {
            RunPhase::Idle if state.active && idle > limit => {
                Err(audit::not_advancing(idle, limit))
            }
            _ => Ok(()),
        })
    }

    /// Runs `key` for a run-now request of `value` (the `canary.dev/run-now` annotation): at
    /// once, or coalesced into one run at the end of its window (see [`RunNow`]). The run
    /// records `value` in `status.lastHandledRunNow`.
    pub fn run_now(&self, key: &CheckKey, value: &str) -> RunNow {
        let runners = lock(&self.shared.runners);
        let Some(handle) = runners.get(key) else {
            return RunNow::Ignored;
        };
        let mut state = lock(&handle.state);
        if !state.active {
            return RunNow::Ignored;
        }
        let (result, due) = state.run_now.request(value, Instant::now());
        state.next_due = state.next_due.min(due);
        drop(state);
        handle.wake.notify_one();
        result
    }

    /// The token pings to `key` must carry, when `key` is a heartbeat check running here.
    pub fn heartbeat_token(&self, key: &CheckKey) -> Option<Arc<[u8]>> {
        let runners = lock(&self.shared.runners);
        match &runners.get(key)?.spec.plan {
            Plan::Heartbeat(plan) => Some(plan.token.clone()),
            Plan::Run(_) | Plan::CronJob(_) | Plan::Blocked { .. } => None,
        }
    }

    /// Delivers a ping to the heartbeat runner of `key` (received here, or learned from the
    /// check's status); false when `key` has no heartbeat runner here.
    pub fn ping(&self, key: &CheckKey, ping: heartbeat::Ping, run_id: Option<String>) -> bool {
        let runners = lock(&self.shared.runners);
        let Some(handle) = runners.get(key) else {
            return false;
        };
        if !matches!(handle.spec.plan, Plan::Heartbeat(_)) {
            return false;
        }
        pings::deliver(&mut lock(&handle.state), ping, run_id);
        handle.wake.notify_one();
        true
    }

    /// Stops the runner of `key` (cancelling a probe in flight) and removes its series; a run
    /// reporting meanwhile is dropped by the sinks (see [`Registration`]).
    pub fn remove(&self, key: &CheckKey) -> bool {
        let removed = lock(&self.shared.runners).remove(key);
        match removed {
            Some(handle) => {
                handle.registration.end();
                handle.task.abort();
                for sink in &self.shared.sinks {
                    sink.on_remove(key);
                }
                true
            }
            None => false,
        }
    }

    /// Stops every runner (shutdown or lost leadership); series are removed too.
    pub fn clear(&self) {
        let keys: Vec<CheckKey> = lock(&self.shared.runners).keys().cloned().collect();
        for key in keys {
            self.remove(&key);
        }
    }

    /// Starts no run due after `after` (wall clock): a replica that promised its peers to
    /// probe nothing after then keeps its runners until then, and the runs due later are left
    /// to the peers, which take the first slot after the same time.
    pub fn retire(&self, after: jiff::Timestamp) {
        *lock(&self.shared.retire_after) = Some(phase::unix_ms(after));
    }

    /// Lets probes start only before `until` (`None`: always). The shard membership task moves
    /// it with each confirmed renewal, so a replica that cannot renew stops probing at its renew
    /// deadline even while reconcile, which stops its runners, waits on a slow API server.
    pub fn probe_until(&self, until: Option<Instant>) {
        *lock(&self.shared.probe_until) = until;
    }

    /// Whether a run due by the retirement limit (see [`Scheduler::retire`]) has not finished
    /// yet: a replica handing over waits for those before it stops its runners, or a run due
    /// just before its promise but a little late, or still waiting for a slow target, would be
    /// cut and nobody would run that slot (seen on loaded cores: the probe never reached the
    /// target).
    pub fn runs_pending_before_retirement(&self) -> bool {
        let Some(limit) = *lock(&self.shared.retire_after) else {
            return false;
        };
        let runners = lock(&self.shared.runners);
        runners.values().any(|handle| {
            let runs = matches!(handle.spec.plan, Plan::Run(_)) && !handle.spec.schedule.suspend;
            let state = lock(&handle.state);
            let slots = (self.shared.config.aligned)
                .then(|| phase::Slots::new(handle.spec.schedule.interval, jitter(&handle.spec)));
            match state.phase {
                RunPhase::Queued { .. } | RunPhase::Running { .. } => true,
                RunPhase::Idle => {
                    runs && !handle.task.is_finished()
                        && task::due_wall_ms(state.next_due, slots.as_ref()) <= limit
                }
            }
        })
    }

    /// Stops every runner without telling sinks (process shutdown: pending status writes
    /// stay queued so they can be flushed).
    pub fn shutdown(&self) {
        let runners: Vec<RunnerHandle> =
            lock(&self.shared.runners).drain().map(|(_, h)| h).collect();
        for handle in runners {
            handle.task.abort();
        }
    }

    /// Keys of every registered check.
    pub fn keys(&self) -> Vec<CheckKey> {
        let mut keys: Vec<CheckKey> = lock(&self.shared.runners).keys().cloned().collect();
        keys.sort();
        keys
    }

    /// The latest status of a check.
    pub fn status(&self, key: &CheckKey) -> Option<HealthCheckStatus> {
        lock(&self.shared.runners)
            .get(key)
            .map(|h| lock(&h.state).status.clone())
    }

    /// Number of completed runs of a check since its runner started.
    pub fn runs(&self, key: &CheckKey) -> Option<u64> {
        lock(&self.shared.runners)
            .get(key)
            .map(|h| lock(&h.state).runs)
    }

    /// Ticks forever: proves the runtime is alive and refreshes the per-state gauges.
    pub async fn run_ticker(self, every: Duration) {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            interval.tick().await;
            *lock(&self.shared.last_tick) = Instant::now();
            let summary = self.summary(Instant::now());
            for sink in &self.shared.sinks {
                sink.on_tick(&summary);
            }
        }
    }

    /// Counts of checks by state at `now`.
    pub fn summary(&self, now: Instant) -> Summary {
        let grace = self.shared.config.stall_grace;
        let usage = self.shared.slots.usage();
        let runners = lock(&self.shared.runners);
        let mut summary = Summary {
            slots_in_use: usage.in_use,
            slots_max: usage.capacity,
            ..Summary::default()
        };
        for handle in runners.values() {
            let state = lock(&handle.state);
            summary.states.add(state.check_state());
            summary.overdue += usize::from(watchdog::stalled(&state, now, grace).is_some());
            summary.late += usize::from(watchdog::late(&state, now));
        }
        summary
    }

    /// Calls `visit` with every check's spec and state, under the runner's lock (keep it short).
    pub fn visit(&self, mut visit: impl FnMut(&RunnerSpec, &RunnerView<'_>)) {
        let runners = lock(&self.shared.runners);
        for handle in runners.values() {
            let state = lock(&handle.state);
            visit(&handle.spec, &RunnerView::of(&state));
        }
    }

    /// Visits one runner, if there is one for `key`.
    pub fn visit_one(&self, key: &CheckKey, visit: impl FnOnce(&RunnerSpec, &RunnerView<'_>)) {
        let runners = lock(&self.shared.runners);
        if let Some(handle) = runners.get(key) {
            let state = lock(&handle.state);
            visit(&handle.spec, &RunnerView::of(&state));
        }
    }

    /// Probe slots in use, waiting, and when the queue last moved.
    pub fn slots(&self) -> SlotUsage {
        self.shared.slots.usage()
    }

    /// The watchdog's verdict at `now` (readable from any thread, even when the runtime is wedged).
    pub fn health(&self, now: Instant, config: &WatchdogConfig) -> Health {
        watchdog::assess(&self.shared, now, config)
    }
}

/// When a new runner first runs. Never run: feedback within seconds. Resumed after a restart:
/// spread over the interval; on wall-clock slots (aligned), the first slot after both the
/// previous owner's promise to have stopped and the recorded last run (see [`phase`]). A check
/// whose status holds no run yet may still have been probed by its previous owner (status
/// writes are rate-limited): while that owner's promise is recent it waits for a slot too.
fn first_due(
    spec: &RunnerSpec,
    last_run: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    now: Instant,
    aligned: bool,
) -> Instant {
    if !aligned {
        return match last_run {
            None => now + quick_jitter(spec),
            Some(_) => now + jitter(spec),
        };
    }
    let slots = phase::Slots::new(spec.schedule.interval, jitter(spec));
    let (now, wall_now) = phase::clocks();
    let quiet_after = spec.resume_after.map(phase::unix_ms);
    if last_run.is_none() && !slots.binds(wall_now, quiet_after) {
        return now + quick_jitter(spec);
    }
    let last_run = last_run.map(|at| phase::unix_ms(at.0));
    let due = slots.resume(wall_now, last_run, quiet_after);
    phase::instant_of(due, now, wall_now)
}

/// Same revision and still running: nothing to do.
fn handle_same(handle: &RunnerHandle, spec: &RunnerSpec) -> bool {
    handle.revision == spec.revision && !handle.task.is_finished()
}
