//! What a runner runs: a [`RunnerSpec`] built from a HealthCheck spec by the one function every
//! source uses (the controller and standalone mode), so validation, reference reading, the
//! revision and the schedule are decided in one place.

use std::{cell::RefCell, collections::BTreeMap, num::NonZeroU32, sync::Arc, time::Duration};

use sha2::{Digest, Sha256};

use super::{
    CheckProber, Prober,
    heartbeat::{DEFAULT_SETTLE, Rules},
};
use crate::{
    api::{
        CheckKey, FieldError, HealthCheckSpec, HealthCheckStatus, MaintenanceWindows, ProbeKind,
        Reason, ValidHeartbeat, ValidSpec, ValueRef,
    },
    probe::{self, BuildError, ProbeContext, ReferenceError, ReferenceSource},
};

/// What a runner does.
#[derive(Clone)]
pub enum Plan {
    /// Probe every interval.
    Run(Arc<dyn Prober>),
    /// Judge pushed pings (a heartbeat check): no probe.
    Heartbeat(Arc<super::HeartbeatPlan>),
    /// Judge a CronJob's scheduled runs: no probe.
    CronJob(Arc<super::CronJobPlan>),
    /// The spec cannot run (InvalidSpec, ReferenceNotFound): report once, then wait for a change.
    Blocked { reason: Reason, message: String },
}

impl Plan {
    /// Why the spec cannot run, if it cannot.
    pub fn blocked_reason(&self) -> Option<Reason> {
        match self {
            Self::Run(_) | Self::Heartbeat(_) | Self::CronJob(_) => None,
            Self::Blocked { reason, .. } => Some(*reason),
        }
    }

    /// Whether the check is judged here (probed, or its pings judged).
    pub fn runs(&self) -> bool {
        matches!(self, Self::Run(_) | Self::Heartbeat(_) | Self::CronJob(_))
    }

    fn blocked(error: &BuildError) -> Self {
        Self::Blocked {
            reason: error.reason(),
            message: error.to_string(),
        }
    }
}

/// When and how strictly a check runs.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub interval: Duration,
    pub timeout: Duration,
    pub suspend: bool,
    pub failure_threshold: NonZeroU32,
    pub success_threshold: NonZeroU32,
    pub maintenance: Arc<MaintenanceWindows>,
}

impl Schedule {
    /// The schedule a valid spec asks for.
    pub fn of(spec: &ValidSpec) -> Self {
        Self {
            interval: spec.interval,
            timeout: spec.timeout,
            suspend: spec.suspend,
            failure_threshold: spec.failure_threshold,
            success_threshold: spec.success_threshold,
            maintenance: Arc::new(spec.maintenance.clone()),
        }
    }

    /// Probe every `interval` with `timeout`, thresholds 1.
    pub fn every(interval: Duration, timeout: Duration) -> Self {
        Self {
            interval,
            timeout,
            suspend: false,
            failure_threshold: NonZeroU32::MIN,
            success_threshold: NonZeroU32::MIN,
            maintenance: Arc::default(),
        }
    }
}

/// Where a HealthCheck came from and what it already holds.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub key: CheckKey,
    /// The object's uid (operator) used for jitter, so a recreated object gets a new slot.
    pub uid: Option<String>,
    pub generation: Option<i64>,
    /// Status to resume from (restart-safe thresholds and transitions).
    pub status: HealthCheckStatus,
    /// The object's labels (some are copied into `canary_check_info`).
    pub labels: BTreeMap<String, String>,
    /// The object's annotations (`canary.dev/status-page`).
    pub annotations: BTreeMap<String, String>,
    /// Taken over from another replica that promised to have stopped probing by then: the
    /// first run comes on the first wall-clock slot after it (`--sharding shards`).
    pub resume_after: Option<jiff::Timestamp>,
    /// The object's creation: a heartbeat check never pinged is Pending until its first
    /// deadline after it (`None`: the runner's start).
    pub created: Option<jiff::Timestamp>,
}

/// Annotation that keeps a check off the status page (value `hidden`).
pub const STATUS_PAGE_ANNOTATION: &str = "canary.dev/status-page";
/// Label that groups checks on the status page.
pub const GROUP_LABEL: &str = "canary.dev/group";

/// What a check is, for `canary_check_info` and pages: safe to show (no secrets).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckInfo {
    /// `http`, `tcp`, `tls`; empty when the spec is invalid.
    pub kind: &'static str,
    /// The URL without userinfo or query, or `host:port`.
    pub target: String,
    /// The object's labels.
    pub labels: BTreeMap<String, String>,
    /// Left off the status page (`canary.dev/status-page: hidden`).
    pub hidden: bool,
    /// The spec as written, for the status page's detail view.
    pub spec: Option<PackedSpec>,
}

/// A spec kept as its JSON, parsed again only for the status page's detail view of one check:
/// a parsed copy beside every runner cost about 1 KiB per check (docs/perf).
#[derive(Debug, Clone, PartialEq)]
pub struct PackedSpec(Arc<[u8]>);

impl PackedSpec {
    pub fn of(spec: &HealthCheckSpec) -> Option<Self> {
        serde_json::to_vec(spec).ok().map(Self::from_json)
    }

    fn from_json(json: Vec<u8>) -> Self {
        Self(json.into())
    }

    /// The spec again (it was serialised from one: it parses back).
    pub fn parse(&self) -> Option<HealthCheckSpec> {
        serde_json::from_slice(&self.0).ok()
    }
}

impl CheckInfo {
    /// The status page group: the `canary.dev/group` label, else the namespace.
    pub fn group<'a>(&'a self, key: &'a CheckKey) -> &'a str {
        self.labels
            .get(GROUP_LABEL)
            .map_or(key.namespace.as_str(), String::as_str)
    }
}

/// Everything a runner needs, as produced by a spec source.
#[derive(Clone)]
pub struct RunnerSpec {
    pub key: CheckKey,
    pub uid: Option<String>,
    pub generation: Option<i64>,
    /// Changes whenever the spec or a resolved reference changes; equal means "same runner".
    pub revision: u64,
    pub schedule: Schedule,
    pub plan: Plan,
    /// Status to resume from (restart-safe thresholds and transitions); taken by
    /// [`super::Scheduler::upsert`] into the runner's state. Boxed: 344 bytes inline beside
    /// every runner otherwise.
    pub status: Option<Box<HealthCheckStatus>>,
    pub info: Arc<CheckInfo>,
    /// See [`Origin::resume_after`]; not part of the revision.
    pub resume_after: Option<jiff::Timestamp>,
}

impl RunnerSpec {
    /// A runner for `key` following `plan` on `schedule`, with nothing else known (tests,
    /// benchmarks, embedders); sources use [`RunnerSpec::build`].
    pub fn new(key: CheckKey, schedule: Schedule, plan: Plan) -> Self {
        Self {
            key,
            uid: None,
            generation: None,
            revision: 0,
            schedule,
            plan,
            status: None,
            info: Arc::default(),
            resume_after: None,
        }
    }

    /// The runner for `spec`, already validated as `valid`: references are read through
    /// `refs`, and a spec that cannot run becomes a blocked runner that reports why.
    pub fn build(
        origin: Origin,
        spec: &HealthCheckSpec,
        valid: &Result<ValidSpec, Vec<FieldError>>,
        refs: &dyn ReferenceSource,
        ctx: &Arc<ProbeContext>,
    ) -> Self {
        let recording = Recording::new(refs);
        let (schedule, plan) = match valid {
            // A blocked runner never probes; zero durations make a fixed spec run at once.
            Err(errors) => (
                Schedule::every(Duration::ZERO, Duration::ZERO),
                Plan::blocked(&BuildError::Invalid(errors.clone())),
            ),
            Ok(valid) => {
                let plan = match &valid.probe {
                    ProbeKind::Heartbeat(heartbeat) => {
                        heartbeat_plan(heartbeat, &recording, origin.created)
                    }
                    ProbeKind::CronJob(cronjob) => Plan::CronJob(Arc::new(super::CronJobPlan {
                        spec: (**cronjob).clone(),
                        created: origin.created,
                    })),
                    _ => match probe::build(valid, &recording) {
                        Ok(probe) => Plan::Run(Arc::new(CheckProber {
                            probe,
                            ctx: ctx.clone(),
                        })),
                        Err(error) => Plan::blocked(&error),
                    },
                };
                (Schedule::of(valid), plan)
            }
        };
        let spec_json = serde_json::to_vec(spec).unwrap_or_default();
        let generation = origin.generation.unwrap_or_default().to_le_bytes();
        // Labels feed canary_check_info and the page's groups; of the annotations only the
        // page's own matters (run-now and kubectl's last-applied must not replace the runner).
        let hidden =
            (origin.annotations.get(STATUS_PAGE_ANNOTATION)).is_some_and(|v| v == "hidden");
        let labels_json = serde_json::to_vec(&(&origin.labels, hidden)).unwrap_or_default();
        let parts: [&[u8]; 4] = [
            &spec_json,
            &generation,
            &recording.into_bytes(),
            &labels_json,
        ];
        let revision = stable_hash(&parts);
        let info = CheckInfo {
            kind: valid.as_ref().map_or("", |v| v.probe.name()),
            target: valid
                .as_ref()
                .map_or_else(|_| String::new(), |v| v.probe.target()),
            labels: origin.labels,
            hidden,
            spec: (!spec_json.is_empty()).then(|| PackedSpec::from_json(spec_json)),
        };
        Self {
            revision,
            key: origin.key,
            uid: origin.uid,
            generation: origin.generation,
            schedule,
            plan,
            status: Some(Box::new(origin.status)),
            info: Arc::new(info),
            resume_after: origin.resume_after,
        }
    }
}

/// The plan of a heartbeat check: its token read (and checked), its rules.
fn heartbeat_plan(
    spec: &ValidHeartbeat,
    refs: &dyn ReferenceSource,
    created: Option<jiff::Timestamp>,
) -> Plan {
    match probe::heartbeat_token(spec, refs) {
        Ok(token) => Plan::Heartbeat(Arc::new(super::HeartbeatPlan {
            rules: Rules::of(spec, DEFAULT_SETTLE),
            token: token.into(),
            created,
        })),
        Err(error) => Plan::blocked(&error),
    }
}

/// A stable 64-bit digest (SHA-256 prefix): the same on every build and platform.
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(prefix)
}

/// Deterministic offset of the first run within the interval (hash of uid, else of the key),
/// so restarts and replicas spread checks the same way instead of bursting them.
pub fn jitter(spec: &RunnerSpec) -> Duration {
    let hash = match &spec.uid {
        Some(uid) => stable_hash(&[uid.as_bytes()]),
        None => stable_hash(&[spec.key.namespace.as_bytes(), spec.key.name.as_bytes()]),
    };
    within(hash, spec.schedule.interval)
}

/// The [`jitter`] of the check with `uid` at `interval`: where its wall-clock slots fall within
/// the interval under `--sharding shards` (see [`super::slot_of`]), as every replica computes it.
pub fn slot_offset(uid: &str, interval: Duration) -> Duration {
    within(stable_hash(&[uid.as_bytes()]), interval)
}

/// `hash` as whole milliseconds within `interval`.
fn within(hash: u64, interval: Duration) -> Duration {
    let interval = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(hash % interval)
}

/// Longest delay of a first run (a check that never ran, or a new generation): users who just
/// applied a HealthCheck get its verdict within seconds.
pub const FIRST_RUN_SPREAD: Duration = Duration::from_secs(5);

/// Deterministic offset of a first run within [`FIRST_RUN_SPREAD`] (or the interval, if
/// shorter), so many new checks still do not start at once.
pub fn quick_jitter(spec: &RunnerSpec) -> Duration {
    let spread = FIRST_RUN_SPREAD.min(spec.schedule.interval);
    let millis = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(jitter(spec).as_millis() as u64 % millis)
}

/// Remembers every referenced value read, so a rotation changes the runner's revision.
struct Recording<'a> {
    inner: &'a dyn ReferenceSource,
    read: RefCell<Vec<u8>>,
}

impl<'a> Recording<'a> {
    fn new(inner: &'a dyn ReferenceSource) -> Self {
        Self {
            inner,
            read: RefCell::new(Vec::new()),
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        self.read.into_inner()
    }
}

impl ReferenceSource for Recording<'_> {
    fn read(&self, value: &ValueRef) -> Result<Vec<u8>, ReferenceError> {
        let result = self.inner.read(value);
        if let Ok(bytes) = &result {
            self.read.borrow_mut().extend_from_slice(bytes);
        }
        result
    }
}
