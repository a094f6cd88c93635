//! Standalone mode: HealthChecks from YAML files run continuously on the engine. Files (and
//! referenced Secret/ConfigMap folders) are re-read when they change; an invalid edit is
//! reported and the last good spec keeps running.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use crate::{
    api::{HealthCheck, validate},
    engine::{Engine, EngineConfig, EngineError},
    files::{self, DirReferences, LoadError, Loaded},
    lock,
    probe::{ProbeContext, ProbePolicy},
    runner::{
        CheckKey, Expectations, Expected, Origin, PackedSpec, Plan, RunnerSpec, Scheduler, audit,
        stable_hash,
    },
    supervisor::{Supervisor, TaskEnded},
};

/// Default `--reload-interval`.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Standalone mode's settings.
#[derive(Debug, Clone)]
pub struct StandaloneConfig {
    /// HealthCheck YAML files or directories.
    pub files: Vec<PathBuf>,
    /// How often to look for changed files (and rotated references).
    pub reload_interval: Duration,
    /// Where referenced Secrets and ConfigMaps are read from.
    pub references: DirReferences,
    /// The deny list and the body buffer budget.
    pub policy: ProbePolicy,
    pub engine: EngineConfig,
}

/// Why standalone mode stopped.
#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("waiting for signals: {0}")]
    Signals(#[source] std::io::Error),
    #[error(transparent)]
    TaskEnded(#[from] TaskEnded),
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(config: StandaloneConfig) -> Result<(), StandaloneError> {
    let shutdown = crate::engine::shutdown_signal().map_err(StandaloneError::Signals)?;
    tokio::pin!(shutdown);
    let mut engine = Engine::start(&config.engine, Vec::new())?;
    let mut supervisor = Supervisor::default();
    engine.supervise(&mut supervisor);
    let source = FileSource {
        files: config.files.clone(),
        refs: config.references.clone(),
        ctx: Arc::new(ProbeContext::with_policy(&config.policy)),
        fingerprint: 0,
        loaded: BTreeMap::new(),
    };
    let files = Arc::new(Files {
        source: Mutex::new(source),
        scheduler: engine.scheduler.clone(),
        owned: engine.metrics.operator.shard_owned.clone(),
    });
    // Standalone probes every check it loads: it is its own leader and owns them all, so the
    // shipped alerts (CanaryNoLeader, CanarySchedulerStalled) read it as they read an operator.
    engine.metrics.operator.leader.set(1);
    let count = files.sync()?;
    tracing::info!(checks = count, "loaded HealthChecks");
    engine.audit.attach(files.clone());
    engine.ready.store(true, Ordering::SeqCst);
    let mut reload = tokio::time::interval(config.reload_interval);
    reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let result = loop {
        tokio::select! {
            _ = reload.tick() => files.reload_if_changed(),
            ended = supervisor.ended() => {
                tracing::error!(task = ended.task, cause = %ended.cause, "a supervised task ended; exiting");
                break Err(StandaloneError::TaskEnded(ended));
            }
            _ = &mut shutdown => break Ok(()),
        }
    };
    tracing::info!("shutting down");
    engine.ready.store(false, Ordering::SeqCst);
    engine.scheduler.clear();
    supervisor.abort_all();
    result
}

/// The files as the scheduler's spec source, and the audit's.
struct Files {
    source: Mutex<FileSource>,
    scheduler: Scheduler,
    /// `canary_shard_owned_checks`: every check loaded.
    owned: prometheus::IntGauge,
}

impl Files {
    fn sync(&self) -> Result<usize, LoadError> {
        let count = lock(&self.source).sync(&self.scheduler)?;
        self.owned.set(count as i64);
        Ok(count)
    }

    fn reload_if_changed(&self) {
        let mut source = lock(&self.source);
        if source.current_fingerprint() == source.fingerprint {
            return;
        }
        match source.sync(&self.scheduler) {
            Ok(count) => {
                self.owned.set(count as i64);
                tracing::info!(checks = count, "reloaded HealthChecks")
            }
            Err(error) => {
                tracing::error!(%error, "invalid edit ignored; the last good specs keep running")
            }
        }
    }
}

impl Expectations for Files {
    fn with_expected(&self, judge: &mut dyn FnMut(&[Expected])) {
        let source = lock(&self.source);
        let expected: Vec<Expected> = (source.loaded.iter())
            .map(|(key, kept)| Expected {
                key: key.clone(),
                probes: kept.probes,
            })
            .collect();
        judge(&expected);
    }

    fn pending(&self, _key: &CheckKey) -> bool {
        false
    }

    fn restore(&self, key: &CheckKey) {
        let source = lock(&self.source);
        if let Some(item) = source.loaded.get(key).and_then(Kept::loaded) {
            source.upsert(&self.scheduler, &item);
        }
    }
}

struct FileSource {
    files: Vec<PathBuf>,
    refs: DirReferences,
    ctx: Arc<ProbeContext>,
    /// Digest of every file read last time, to notice edits cheaply.
    fingerprint: u64,
    /// The HealthChecks of the last good load.
    loaded: BTreeMap<CheckKey, Kept>,
}

/// A loaded HealthCheck as kept between loads: its metadata and spec as JSON (the spec's
/// shared with its runner's page copy), parsed again only when the audit restores its runner
/// (the runner holds what it runs; a parsed copy per check cost about 1.8 KiB, docs/perf), and
/// what the audit reads at every pass.
struct Kept {
    metadata: Box<[u8]>,
    spec: Option<PackedSpec>,
    path: PathBuf,
    document: usize,
    /// Whether the check should probe ([`audit::probes`]), decided once per load.
    probes: bool,
}

impl Kept {
    /// `spec`: the runner's copy when one was built, else made here.
    fn of(item: &Loaded, spec: Option<PackedSpec>) -> Self {
        let metadata = serde_json::to_vec(&item.resource.metadata).unwrap_or_default();
        Self {
            metadata: metadata.into_boxed_slice(),
            spec: spec.or_else(|| PackedSpec::of(&item.resource.spec)),
            path: item.path.clone(),
            document: item.document,
            probes: audit::probes(&item.resource.spec),
        }
    }

    /// The HealthCheck again (it was serialised from one: it parses back).
    fn loaded(&self) -> Option<Loaded> {
        let resource = HealthCheck {
            metadata: serde_json::from_slice(&self.metadata).ok()?,
            spec: self.spec.as_ref()?.parse()?,
            status: None,
        };
        Some(Loaded {
            resource,
            path: self.path.clone(),
            document: self.document,
        })
    }
}

impl FileSource {
    /// Digest of the spec files and the reference folders (so rotations are picked up).
    fn current_fingerprint(&self) -> u64 {
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut roots: Vec<&Path> = self.files.iter().map(PathBuf::as_path).collect();
        roots.extend(self.refs.secrets_dir.as_deref());
        roots.extend(self.refs.config_maps_dir.as_deref());
        for root in roots {
            collect(root, 0, &mut parts);
        }
        let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        stable_hash(&slices)
    }

    /// Loads every file and brings the scheduler in line; a load error changes nothing.
    fn sync(&mut self, scheduler: &Scheduler) -> Result<usize, LoadError> {
        self.fingerprint = self.current_fingerprint();
        let loaded = files::load(&self.files)?;
        let count = loaded.len();
        self.loaded = (loaded.into_iter())
            .map(|item| {
                let spec = self.upsert(scheduler, &item);
                (item.key(), Kept::of(&item, spec))
            })
            .collect();
        for key in scheduler.keys() {
            if !self.loaded.contains_key(&key) {
                scheduler.remove(&key);
            }
        }
        Ok(count)
    }

    /// Builds and upserts the runner of `item`; returns the spec copy its runner keeps.
    fn upsert(&self, scheduler: &Scheduler, item: &Loaded) -> Option<PackedSpec> {
        let spec = &item.resource.spec;
        let origin = Origin {
            key: item.key(),
            labels: (item.resource.metadata.labels.clone()).unwrap_or_default(),
            annotations: (item.resource.metadata.annotations.clone()).unwrap_or_default(),
            ..Origin::default()
        };
        let valid = validate(spec);
        let runner = RunnerSpec::build(origin, spec, &valid, &self.refs, &self.ctx);
        let key = &runner.key;
        if let Plan::Blocked { message, .. } = &runner.plan {
            // The line of the first field to blame, as `canary check` names it.
            let field = valid.as_ref().err().and_then(|fields| fields.first());
            let origin = field.map_or_else(|| item.origin(), |f| item.origin_of(&f.field));
            if scheduler.status(key).is_some() {
                tracing::error!(check = %key, %origin, error = %message, "invalid edit ignored; the last good spec keeps running");
                return None;
            }
            tracing::error!(check = %key, %origin, error = %message, "HealthCheck cannot run");
        }
        let key = key.clone();
        scheduler.upsert(runner);
        // The running runner's copy: the one just built, or an unchanged runner's own.
        let mut spec = None;
        scheduler.visit_one(&key, |runner, _| spec.clone_from(&runner.info.spec));
        spec
    }
}

/// Reads files below `path` (bounded depth) into `parts`, path first, for fingerprints.
fn collect(path: &Path, depth: usize, parts: &mut Vec<Vec<u8>>) {
    parts.push(path.to_string_lossy().as_bytes().to_vec());
    if path.is_dir() && depth < 3 {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        entries.sort();
        for entry in entries {
            collect(&entry, depth + 1, parts);
        }
    } else if let Ok(bytes) = std::fs::read(path) {
        parts.push(bytes);
    }
}
