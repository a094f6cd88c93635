//! Prometheus metrics: per-check families ([`check`]) labelled by namespace/name (series
//! removed when a check goes away), operator-level families, `canary_build_info`, and the
//! standard process collector (open and max descriptors, RSS, CPU).

mod check;
mod discovery;
mod family;
mod kinds;
mod locations;

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder, core::Collector,
};

use check::CheckFamilies;
pub use check::metric_label;
pub use discovery::DiscoveryMetrics;
pub use locations::LocationMetrics;

use crate::api::HealthCheckStatus;
use crate::runner::{AuditMetrics, CheckKey, Registration, RunReport, RunnerSpec, Sink, Summary};

/// Scheduler lag buckets: on time is under 10 ms; seconds mean the process is overloaded.
const LAG_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];
/// Slot wait buckets: none at all when capacity suffices, up to minutes in an outage with
/// too few slots.
const SLOT_WAIT_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Why the registry could not be built or rendered.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("registering metric families: {0}")]
    Register(#[from] prometheus::Error),
    #[error("encoding the exposition: {0}")]
    Encode(String),
}

/// Operator-level families: the engine's and the controller's own vital signs.
pub struct OperatorFamilies {
    /// Checks by state ([`CheckState`](crate::runner::CheckState) names: ready, failing, pending, suspended, maintenance,
    /// invalid, blocked).
    pub checks_by_state: IntGaugeVec,
    /// Actual start minus due time of every run.
    pub scheduler_lag: Histogram,
    /// Last time the scheduler ticked or a run completed.
    pub scheduler_progress: Gauge,
    /// Runs skipped because the previous one overran its tick.
    pub skipped_runs: IntCounter,
    /// Active checks the watchdog judges stalled.
    pub checks_overdue: IntGauge,
    /// Checks due for more than a second and not started (waiting for a probe slot).
    pub checks_late: IntGauge,
    /// Time each run waited for a probe slot.
    pub slot_wait: Histogram,
    /// Probe slots in use, and how many there are.
    pub slots_in_use: IntGauge,
    pub slots_max: IntGauge,
    /// Status writes by result (success, conflict, error, timeout, skipped, not_found).
    pub status_writes: IntCounterVec,
    /// Reconciliations by result.
    pub reconciles: IntCounterVec,
    /// Transition Events by result (success, rejected, expired, dropped).
    pub events: IntCounterVec,
    /// 1 while this replica probes and writes (leads, or runs without election), else 0.
    pub leader: IntGauge,
    /// `canary_run_now_requests_total{result}`.
    pub run_now: IntCounterVec,
    /// Heartbeat pings accepted by this replica's listener, by result.
    pub heartbeat_pings: IntCounterVec,
    /// Heartbeat requests refused by this replica's listener, by reason.
    pub heartbeat_rejected: IntCounterVec,
    /// 1 while the HealthCheck watch is failing (since its last success), else 0.
    pub watch_failing: IntGauge,
    /// Status fields the installed CRD does not declare, left out of status writes.
    pub status_fields_dropped: IntGauge,
    /// Members of the shard ring as this replica sees it (0 unless `--sharding shards`).
    pub shard_members: IntGauge,
    /// HealthChecks assigned to this replica (all of them without sharding, none on a standby).
    pub shard_owned: IntGauge,
    /// Ring changes this replica applied (checks moved to or from it).
    pub shard_rebalances: IntCounter,
    /// Peer Leases this replica does not believe, by reason (`canary_shard_excluded_peers`).
    pub shard_excluded: IntGaugeVec,
    /// Checks other ring members own whose status shows no run for too long.
    pub shard_unprobed: IntGauge,
    /// The self-audit's families (`canary_checks_expected`, `canary_checks_unscheduled`,
    /// `canary_checks_recovered_total`).
    pub audit: AuditMetrics,
    /// The discovery controller's (`canary_discovery_*`).
    pub discovery: DiscoveryMetrics,
    /// The hub's, for checks with `spec.locations` (`canary_check_location_*`).
    pub locations: LocationMetrics,
}

/// Every metric family Canary exposes.
pub struct Metrics {
    registry: Registry,
    names: Vec<String>,
    check: CheckFamilies,
    /// Operator-level families.
    pub operator: OperatorFamilies,
    /// Bumped whenever a value changes, so a cached exposition is never stale.
    version: AtomicU64,
}

/// Registers families and remembers their names (so tests can list every family).
struct Families {
    registry: Registry,
    names: Vec<String>,
}

impl Families {
    fn add<C: Collector + Clone + 'static>(&mut self, collector: C) -> Result<C, MetricsError> {
        self.names
            .extend(collector.desc().iter().map(|d| d.fq_name.clone()));
        self.registry.register(Box::new(collector.clone()))?;
        Ok(collector)
    }

    /// A labelled family built by `new` (`GaugeVec::new`, `IntCounterVec::new`, ...).
    fn family<C: Collector + Clone + 'static>(
        &mut self,
        new: fn(Opts, &[&str]) -> prometheus::Result<C>,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<C, MetricsError> {
        self.add(new(Opts::new(name, help), labels)?)
    }

    fn int_gauges(
        &mut self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntGaugeVec, MetricsError> {
        self.family(IntGaugeVec::new, name, help, labels)
    }

    fn counters(
        &mut self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, MetricsError> {
        self.family(IntCounterVec::new, name, help, labels)
    }

    fn histogram(
        &mut self,
        name: &str,
        help: &str,
        buckets: &[f64],
    ) -> Result<Histogram, MetricsError> {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.add(Histogram::with_opts(opts)?)
    }
}

impl Metrics {
    /// Builds the registry with every family and the process collector.
    pub fn new() -> Result<Self, MetricsError> {
        Self::with_label_allowlist(&[])
    }

    /// [`Metrics::new`], copying the resource labels in `allowlist` into `canary_check_info`.
    pub fn with_label_allowlist(allowlist: &[String]) -> Result<Self, MetricsError> {
        Self::with_labels(allowlist, None)
    }

    /// [`Metrics::with_label_allowlist`], every metric labelled `location` when given.
    pub fn with_labels(allowlist: &[String], location: Option<&str>) -> Result<Self, MetricsError> {
        let constant = location.map(|l| [("location".to_owned(), l.to_owned())].into());
        let mut f = Families {
            registry: Registry::new_custom(None, constant)?,
            names: Vec::new(),
        };
        f.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let build = f.int_gauges(
            "canary_build_info",
            "Version and source revision of this Canary (value 1).",
            &["version", "revision"],
        )?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), REVISION])
            .set(1);
        f.add(crate::logging::DroppedLines::new()?)?;
        let check = CheckFamilies::new(&mut f, allowlist)?;
        let operator = Self::operator_families(&mut f)?;
        Ok(Self {
            check,
            operator,
            version: AtomicU64::new(0),
            names: f.names,
            registry: f.registry,
        })
    }

    fn operator_families(f: &mut Families) -> Result<OperatorFamilies, MetricsError> {
        let (shard_members, shard_owned, shard_rebalances) = Self::shard_families(f)?;
        Ok(OperatorFamilies {
            checks_by_state: f.int_gauges(
                "canary_checks",
                "Checks by state: ready, failing, pending, suspended, maintenance, invalid (InvalidSpec), blocked (a reference missing or forbidden).",
                &["state"],
            )?,
            scheduler_lag: f.histogram(
                "canary_scheduler_lag_seconds",
                "Actual start of a run minus its due time.",
                LAG_BUCKETS,
            )?,
            scheduler_progress: f.add(Gauge::new(
                "canary_scheduler_last_progress_timestamp_seconds",
                "Unix time the scheduler last ticked or completed a run.",
            )?)?,
            checks_overdue: f.add(IntGauge::new(
                "canary_checks_overdue",
                "Active checks the watchdog judges stalled.",
            )?)?,
            checks_late: f.add(IntGauge::new(
                "canary_checks_late",
                "Checks due for more than a second and not started yet (waiting for a probe slot).",
            )?)?,
            slot_wait: f.histogram(
                "canary_probe_slot_wait_seconds",
                "Time a run waited for one of the --max-concurrent-probes slots.",
                SLOT_WAIT_BUCKETS,
            )?,
            slots_in_use: f.add(IntGauge::new(
                "canary_probe_slots_in_use",
                "Probe slots in use.",
            )?)?,
            slots_max: f.add(IntGauge::new(
                "canary_probe_slots_max",
                "Probe slots (--max-concurrent-probes).",
            )?)?,
            skipped_runs: f.add(IntCounter::new(
                "canary_scheduler_skipped_runs_total",
                "Runs skipped because the previous run of the same check overran its interval.",
            )?)?,
            status_writes: f.counters(
                "canary_status_writes_total",
                "Status writes by result.",
                &["result"],
            )?,
            reconciles: f.counters(
                "canary_reconcile_total",
                "Reconciliations by result.",
                &["result"],
            )?,
            watch_failing: f.add(IntGauge::new(
                "canary_watch_failing",
                "1 while the HealthCheck watch keeps failing (since its last success), else 0.",
            )?)?,
            status_fields_dropped: f.add(IntGauge::new(
                "canary_status_fields_dropped",
                "Status fields the installed HealthCheck CRD does not declare (it is older than the \
                 operator), left out of status writes; 0 when the CRD is current.",
            )?)?,
            leader: f.add(IntGauge::new(
                "canary_leader",
                "1 while this replica probes (it leads, election is off, a shard member, or standalone), else 0.",
            )?)?,
            run_now: f.counters(
                "canary_run_now_requests_total",
                "canary.dev/run-now requests by result: run (at once), coalesced (into one run at the \
                 end of the check's 10s window), ignored (the check does not probe here).",
                &["result"],
            )?,
            heartbeat_pings: f.counters(
                "canary_heartbeat_pings_total",
                "Heartbeat pings this replica's listener accepted, by result (success, start, fail).",
                &["result"],
            )?,
            heartbeat_rejected: f.counters(
                "canary_heartbeat_rejected_total",
                "Heartbeat requests this replica's listener refused, by reason: unauthorized (unknown check or wrong token, alike), too_large, rate_limited, busy (the ping write budget), unavailable (the API server), bad_request, not_found (another path).",
                &["reason"],
            )?,
            events: f.counters(
                "canary_events_total",
                "Transition Events by result.",
                &["result"],
            )?,
            shard_members,
            shard_owned,
            shard_rebalances,
            shard_excluded: f.int_gauges(
                "canary_shard_excluded_peers",
                "Ring Leases this replica does not believe, by reason: unacknowledged (renews, did not acknowledge the ring for a Lease duration: excluded from the ring and handover waits), never_renewed (labelled a member, never seen renewing).",
                &["reason"],
            )?,
            shard_unprobed: f.add(IntGauge::new(
                "canary_shard_peer_checks_unprobed",
                "Checks other ring members own whose status shows no run for two runs and two status heartbeats (plus the time their writes need), at the last self-audit: nobody probes them.",
            )?)?,
            audit: Self::audit_families(f)?,
            discovery: DiscoveryMetrics::new(f)?,
            locations: LocationMetrics::new(f)?,
        })
    }

    fn shard_families(f: &mut Families) -> Result<(IntGauge, IntGauge, IntCounter), MetricsError> {
        Ok((
            f.add(IntGauge::new(
                "canary_shard_members",
                "Members of the shard ring as this replica sees them (0 unless --sharding shards).",
            )?)?,
            f.add(IntGauge::new(
                "canary_shard_owned_checks",
                "HealthChecks assigned to this replica (all without sharding and in standalone, none on a standby).",
            )?)?,
            f.add(IntCounter::new(
                "canary_shard_rebalances_total",
                "Changes of the shard ring this replica applied (checks moved to or from it).",
            )?)?,
        ))
    }

    fn audit_families(f: &mut Families) -> Result<AuditMetrics, MetricsError> {
        Ok(AuditMetrics {
            expected: f.add(IntGauge::new(
                "canary_checks_expected",
                "Checks this replica should be probing (owned, valid, not suspended), at the last self-audit.",
            )?)?,
            unscheduled: f.add(IntGauge::new(
                "canary_checks_unscheduled",
                "Checks the last self-audit found without a working runner (each was recovered).",
            )?)?,
            recovered: f.counters(
                "canary_checks_recovered_total",
                "Checks the self-audit found not running and recovered, by cause (missing_runner, not_advancing, stray_runner).",
                &["cause"],
            )?,
        })
    }

    /// Names of every family Canary registers (not the process collector's).
    pub fn family_names(&self) -> &[String] {
        &self.names
    }

    /// The text exposition of every family.
    pub fn render(&self) -> Result<String, MetricsError> {
        let buffer = self.render_into(0)?;
        String::from_utf8(buffer).map_err(|e| MetricsError::Encode(e.to_string()))
    }

    /// The text exposition in a buffer of `capacity` bytes to start with (the last one's size:
    /// a buffer grown by doubling took up to twice the text).
    pub fn render_into(&self, capacity: usize) -> Result<Vec<u8>, MetricsError> {
        let mut buffer = Vec::with_capacity(capacity);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .map_err(|e| MetricsError::Encode(e.to_string()))?;
        Ok(buffer)
    }

    /// Moves whenever a check's series change or go (a cached exposition is stale then).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// Counts a heartbeat ping accepted (`result`) or refused (`rejected` with its reason).
    pub fn count_heartbeat(&self, accepted: Option<&str>, rejected: Option<&str>) {
        let operator = &self.operator;
        if let Some(result) = accepted {
            operator.heartbeat_pings.with_label_values(&[result]).inc();
        }
        if let Some(reason) = rejected {
            operator
                .heartbeat_rejected
                .with_label_values(&[reason])
                .inc();
        }
        self.changed();
    }

    fn changed(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    /// Removes every series of a check.
    pub fn forget(&self, key: &CheckKey) {
        self.changed();
        self.check.forget(key);
    }
}

/// The source revision this binary was built from (`CANARY_REVISION` at build time).
const REVISION: &str = match option_env!("CANARY_REVISION") {
    Some(revision) => revision,
    None => "unknown",
};

fn unix_now() -> f64 {
    jiff::Timestamp::now().as_millisecond() as f64 / 1000.0
}

impl Sink for Metrics {
    fn on_run(&self, report: &RunReport<'_>) {
        self.changed();
        self.check.record(report);
        let operator = &self.operator;
        operator.scheduler_lag.observe(report.lag.as_secs_f64());
        operator.slot_wait.observe(report.slot_wait.as_secs_f64());
        operator.skipped_runs.inc_by(report.skipped);
        operator.scheduler_progress.set(unix_now());
    }

    fn on_remove(&self, key: &CheckKey) {
        self.forget(key);
    }

    fn on_start(
        &self,
        spec: &RunnerSpec,
        resumed: &HealthCheckStatus,
        registration: &Registration,
    ) {
        self.changed();
        self.check.seed(spec, resumed, registration);
    }

    fn on_tick(&self, summary: &Summary) {
        for (state, count) in summary.states.iter() {
            (self.operator.checks_by_state)
                .with_label_values(&[state.name()])
                .set(count as i64);
        }
        let operator = &self.operator;
        self.changed();
        operator.checks_overdue.set(summary.overdue as i64);
        operator.checks_late.set(summary.late as i64);
        operator.slots_in_use.set(summary.slots_in_use as i64);
        operator.slots_max.set(summary.slots_max as i64);
        operator.scheduler_progress.set(unix_now());
    }
}

#[cfg(test)]
mod tests;
