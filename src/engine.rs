//! The engine shared by standalone mode and the operator: metrics, the scheduler with its
//! ticker, transition logs, and the admin endpoints on their own thread.

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use crate::{
    admin::{self, Admin, AdminError, AdminState},
    api::ReadyStatus,
    heartbeat,
    metrics::{Metrics, MetricsError},
    runner::{
        Audit, CheckKey, DEFAULT_AUDIT_INTERVAL, DEFAULT_PROBER_ERROR_STREAK, DEFAULT_STALL_GRACE,
        RunReport, Scheduler, SchedulerConfig, Sink, Vital, WatchdogConfig, default_slots,
    },
    supervisor::{Supervisor, watch_thread},
    ui::{self, PromConfig, Ui, UiError, model::Source},
};

/// How often the scheduler loop proves it is alive.
const TICK: Duration = Duration::from_millis(500);

/// Default `--metrics-bind-address`, `--health-probe-bind-address` and `--ui-bind-address`.
pub const METRICS_BIND_ADDRESS: SocketAddr = all_interfaces(8080);
pub const HEALTH_PROBE_BIND_ADDRESS: SocketAddr = all_interfaces(8081);
pub const UI_BIND_ADDRESS: SocketAddr = all_interfaces(8082);

const fn all_interfaces(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
}

/// The engine's settings (the flags standalone mode and the operator share).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Probes in flight at once; `None`: [`default_slots`].
    pub max_concurrent_probes: Option<usize>,
    /// A check is stalled when it has not completed a run for interval + timeout + this.
    pub stall_grace: Duration,
    /// How often the self-audit compares what should run with the runners.
    pub audit_interval: Duration,
    /// `/healthz` fails when this many runs in a row end in ProberError.
    pub prober_error_streak: usize,
    /// HealthCheck labels copied into `canary_check_info`.
    pub metrics_label_allowlist: Vec<String>,
    /// `--location`: a constant `location` label on every metric.
    pub location: Option<String>,
    pub admin: AdminConfig,
}

/// Where the endpoints listen.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub metrics_bind_address: SocketAddr,
    pub health_probe_bind_address: SocketAddr,
    /// The status page; `None`: off.
    pub ui_bind_address: Option<SocketAddr>,
    /// Hide targets, messages, certificate names and specs on the status page (and the
    /// messages of heartbeat pings).
    pub ui_redact: bool,
    /// The heartbeat listener; `None`: off.
    pub heartbeat_bind_address: Option<SocketAddr>,
    /// `--prometheus-url` and its files: the page's uptime windows from there; `None`: off.
    pub prometheus: Option<PromConfig>,
}

impl Default for EngineConfig {
    /// What the flags default to.
    fn default() -> Self {
        Self {
            max_concurrent_probes: None,
            stall_grace: DEFAULT_STALL_GRACE,
            audit_interval: DEFAULT_AUDIT_INTERVAL,
            prober_error_streak: DEFAULT_PROBER_ERROR_STREAK,
            metrics_label_allowlist: Vec::new(),
            location: None,
            admin: AdminConfig {
                metrics_bind_address: METRICS_BIND_ADDRESS,
                health_probe_bind_address: HEALTH_PROBE_BIND_ADDRESS,
                ui_bind_address: Some(UI_BIND_ADDRESS),
                ui_redact: false,
                heartbeat_bind_address: None,
                prometheus: None,
            },
        }
    }
}

impl EngineConfig {
    /// The defaults with every listener on loopback, on a port the system picks (tests).
    pub fn test() -> Self {
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Self {
            admin: AdminConfig {
                metrics_bind_address: loopback,
                health_probe_bind_address: loopback,
                ui_bind_address: Some(loopback),
                ui_redact: false,
                heartbeat_bind_address: None,
                prometheus: None,
            },
            ..Self::default()
        }
    }
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A listener could not bind: the message names the flag that moves it.
    #[error("cannot listen on {addr} for {what}: {source}; {hint}")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
        hint: String,
    },
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Ui(UiError),
    #[error(transparent)]
    Prometheus(#[from] ui::PromError),
}

impl EngineError {
    /// A bind error of `flag`'s listener, with what to do about it.
    fn listen(what: &'static str, flag: &str, addr: SocketAddr, source: std::io::Error) -> Self {
        let hint = match source.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "another program (another Canary?) uses port {}: stop it, or pass {flag} with \
                 a free HOST:PORT (e.g. {flag} 127.0.0.1:{})",
                addr.port(),
                addr.port().saturating_add(1000)
            ),
            _ => format!("pass {flag} with another HOST:PORT"),
        };
        Self::Listen {
            what,
            addr,
            source,
            hint,
        }
    }

    /// Names the flag of the admin listener that failed to bind.
    fn admin(error: AdminError, config: &AdminConfig) -> Self {
        let AdminError::Bind { addr, source } = error else {
            return Self::Admin(error);
        };
        let (metrics, health) = (
            config.metrics_bind_address,
            config.health_probe_bind_address,
        );
        let (what, flag) = match addr {
            _ if metrics == health => (
                "/metrics, /healthz and /readyz",
                "--metrics-bind-address (and --health-probe-bind-address)",
            ),
            _ if addr == metrics => ("/metrics", "--metrics-bind-address"),
            _ => ("/healthz and /readyz", "--health-probe-bind-address"),
        };
        Self::listen(what, flag, addr, source)
    }
}

impl From<UiError> for EngineError {
    fn from(error: UiError) -> Self {
        match error {
            UiError::Bind { addr, source } => {
                Self::listen("the status page", "--ui-bind-address", addr, source)
            }
            other => Self::Ui(other),
        }
    }
}

/// A running engine.
pub struct Engine {
    pub scheduler: Scheduler,
    pub metrics: Arc<Metrics>,
    /// Set by the spec source once it has synced.
    pub ready: Arc<AtomicBool>,
    pub admin: Admin,
    pub ticker: tokio::task::JoinHandle<()>,
    /// Where the status page listens, when it is on.
    pub ui_addr: Option<SocketAddr>,
    /// Where the heartbeat listener listens, when it is on.
    pub heartbeat_addr: Option<SocketAddr>,
    /// The heartbeat listener's task, until the supervisor takes it.
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    /// The page's thread (see [`ui::Serving`]), until the supervisor takes it.
    ui_serving: Option<ui::Serving>,
    /// Set while this replica is a standby under leader election (the page says so).
    pub standby: Arc<AtomicBool>,
    /// The self-audit; the spec source attaches itself ([`Audit::attach`]).
    pub audit: Arc<Audit>,
    audit_interval: std::time::Duration,
}

/// What a spec source adds to the engine.
#[derive(Default)]
pub struct Extensions {
    /// Receive every run besides metrics and logs.
    pub sinks: Vec<Arc<dyn Sink>>,
    /// Report on parts `/healthz` and `/readyz` must also judge.
    pub vitals: Vec<Arc<dyn Vital>>,
    /// Runs on wall-clock slots (replicas that hand checks over, `--sharding shards`).
    pub aligned: bool,
    /// This replica, for `status.probedBy`.
    pub probed_by: Option<String>,
    /// How often runners hand their hourly buckets to status (`None`: never, no status).
    pub history_every: Option<Duration>,
    /// The shard ring, for the status page to forward other replicas' checks.
    pub owners: Option<Arc<dyn ui::Owners>>,
    /// `--ui-forward` with its key (shards only); `None`: the page names the owner instead.
    pub forwarding: Option<Arc<ui::Forwarding>>,
    /// Where heartbeat pings go (the operator: the API server); `None`: this engine's runners.
    pub heartbeat: Option<Arc<dyn heartbeat::Backend>>,
    /// The reads CronJob checks need (the operator: the API server); `None`: they cannot run.
    pub cronjobs: Option<Arc<dyn crate::runner::CronJobSource>>,
    /// The checks with `spec.locations` the hub aggregates, for the status page.
    pub located: Option<Arc<ui::Located>>,
}

impl Engine {
    /// Starts metrics, the scheduler (sending runs to metrics, logs and `sinks`) and the
    /// endpoints. Must be called inside the main runtime.
    pub fn start(config: &EngineConfig, sinks: Vec<Arc<dyn Sink>>) -> Result<Self, EngineError> {
        let extensions = Extensions {
            sinks,
            ..Extensions::default()
        };
        let location = config.location.as_deref();
        let metrics = Metrics::with_labels(&config.metrics_label_allowlist, location)?;
        Self::start_with_metrics(config, Arc::new(metrics), extensions)
    }

    /// [`Engine::start`] with a registry created beforehand (for sinks that count into it)
    /// and vitals for the health endpoints.
    pub fn start_with_metrics(
        engine: &EngineConfig,
        metrics: Arc<Metrics>,
        extensions: Extensions,
    ) -> Result<Self, EngineError> {
        let mut all: Vec<Arc<dyn Sink>> = vec![metrics.clone(), Arc::new(TransitionLog)];
        all.extend(extensions.sinks);
        let config = SchedulerConfig {
            max_concurrent: (engine.max_concurrent_probes).unwrap_or_else(default_slots),
            stall_grace: engine.stall_grace,
            prober_error_streak: engine.prober_error_streak,
            aligned: extensions.aligned,
            probed_by: extensions.probed_by,
            cronjobs: extensions.cronjobs,
            history_every: extensions.history_every,
        };
        let scheduler = Scheduler::new(config, all);
        let ticker = tokio::spawn(scheduler.clone().run_ticker(TICK));
        let ready = Arc::new(AtomicBool::new(false));
        let audit_metrics = metrics.operator.audit.clone();
        let audit = Arc::new(Audit::new(
            scheduler.clone(),
            audit_metrics,
            engine.stall_grace,
        ));
        let mut vitals = extensions.vitals;
        vitals.push(audit.clone());
        let state = AdminState {
            scheduler: scheduler.clone(),
            metrics: metrics.clone(),
            ready: ready.clone(),
            watchdog: WatchdogConfig {
                tick_threshold: engine.stall_grace,
            },
            vitals,
        };
        let addresses = &engine.admin;
        let admin = admin::start(
            addresses.metrics_bind_address,
            addresses.health_probe_bind_address,
            state,
        )
        .map_err(|error| EngineError::admin(error, addresses))?;
        let standby = Arc::new(AtomicBool::new(false));
        let (ui_addr, ui_serving) = match addresses.ui_bind_address {
            Some(addr) => {
                let bound = ui::bind(addr)?;
                let ui = Ui {
                    source: Source {
                        scheduler: scheduler.clone(),
                        redact: addresses.ui_redact,
                        located: extensions.located.clone(),
                    },
                    standby: standby.clone(),
                    owners: extensions.owners.clone(),
                    forwarding: extensions.forwarding.clone(),
                    prometheus: (addresses.prometheus.clone())
                        .map(|config| {
                            ui::Prometheus::new(PromConfig {
                                location: engine.location.clone(),
                                redact: addresses.ui_redact,
                                ..config
                            })
                        })
                        .transpose()?,
                };
                (Some(bound.addr), Some(bound.start(ui)?))
            }
            None => (None, None),
        };
        let (heartbeat_addr, heartbeat) = match addresses.heartbeat_bind_address {
            Some(addr) => {
                let bound = heartbeat::bind(addr).map_err(|error| {
                    let heartbeat::HeartbeatError::Bind { addr, source } = error;
                    let flag = "--heartbeat-bind-address";
                    EngineError::listen("heartbeat pings", flag, addr, source)
                })?;
                let bound_addr = bound.addr;
                let backend = (extensions.heartbeat.clone())
                    .unwrap_or_else(|| Arc::new(heartbeat::SchedulerBackend(scheduler.clone())));
                let redact = addresses.ui_redact;
                let serving = bound.serve(backend, metrics.clone(), redact);
                (Some(bound_addr), Some(tokio::spawn(serving)))
            }
            None => (None, None),
        };
        let ui = ui_addr.map_or_else(|| "off".to_string(), |addr| addr.to_string());
        let pings = heartbeat_addr.map_or_else(|| "off".to_string(), |addr| addr.to_string());
        tracing::info!(metrics = %admin.metrics_addr, health = %admin.health_addr, %ui, heartbeat = %pings, "serving /metrics, /healthz, /readyz, the status page and heartbeat pings");
        Ok(Self {
            scheduler,
            metrics,
            ready,
            admin,
            ticker,
            ui_addr,
            ui_serving,
            heartbeat_addr,
            heartbeat,
            standby,
            audit,
            audit_interval: engine.audit_interval,
        })
    }
}

impl Engine {
    /// Puts the ticker, the self-audit, the admin thread and the status page under `supervisor`.
    pub fn supervise(&mut self, supervisor: &mut Supervisor) {
        supervisor.spawn("audit", self.audit.clone().run(self.audit_interval));
        let ticker = std::mem::replace(&mut self.ticker, tokio::spawn(async {}));
        supervisor.adopt("ticker", ticker);
        if let Some(listener) = self.heartbeat.take() {
            supervisor.adopt("heartbeat", listener);
        }
        if let Some(serving) = self.ui_serving.take() {
            supervisor.spawn("ui", serving.watch());
        }
        if let Some(thread) = self.admin.thread.take() {
            supervisor.spawn("admin", watch_thread(thread));
        }
    }
}

/// Resolves on SIGTERM or SIGINT; set up before work starts so no signal is missed.
pub fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// Logs every change of a check's Ready state, once, with its reason.
pub struct TransitionLog;

impl Sink for TransitionLog {
    fn on_run(&self, report: &RunReport<'_>) {
        let Some(transition) = report.transition else {
            return;
        };
        let check = report.key.to_string();
        let reason = transition.reason;
        match transition.to {
            ReadyStatus::True => tracing::info!(%check, %reason, "check is ready"),
            ReadyStatus::False => {
                tracing::warn!(%check, %reason, detail = %transition.message, "check is failing")
            }
            ReadyStatus::Unknown => tracing::info!(%check, %reason, "check state unknown"),
        }
    }

    fn on_remove(&self, key: &CheckKey) {
        tracing::info!(check = %key, "check removed");
    }
}
