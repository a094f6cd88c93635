//! Command line: subcommands and their flags, with environment fallbacks.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

use crate::{api::validate::duration_flag, controller::LabelGate, report::Format};

/// Canary: health checks for HTTP, TCP, TLS, DNS and gRPC endpoints, from a Kubernetes operator
/// or files.
#[derive(Debug, Parser)]
#[command(name = "canary", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format.
    #[arg(long, global = true, env = "CANARY_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace), or a tracing filter such as
    /// `info,canary_operator::controller=debug`; RUST_LOG, when set, takes precedence.
    #[arg(long, global = true, env = "CANARY_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log lines queued for stderr before new ones are dropped (counted in
    /// `canary_log_lines_dropped_total`): a stderr that stops draining never blocks probing.
    #[arg(long, global = true, env = "CANARY_LOG_QUEUE_LINES", default_value_t = 16_384,
          value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub log_queue_lines: u32,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run HealthChecks from YAML files once and report (exit 0 all pass, 1 any fails, 2 invalid input).
    Check(CheckArgs),
    /// Run HealthChecks from YAML files continuously, serving /metrics, /healthz and /readyz.
    Standalone(StandaloneArgs),
    /// Run the Kubernetes operator: watch HealthChecks, probe them, write status and Events.
    Operator(OperatorArgs),
    /// Print the HealthCheck CustomResourceDefinition as YAML.
    Crd,
    /// Check an installed Canary (the chart's `helm test`): its /readyz and the HealthCheck API.
    Selftest(SelftestArgs),
}

/// Flags of `canary operator` (cluster access comes from in-cluster config or KUBECONFIG).
#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// Namespaces to watch (comma-separated); all namespaces when empty.
    #[arg(long, env = "CANARY_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Status writes per second to the API server, across all HealthChecks of this replica
    /// (with `--sharding shards`, N replicas write up to N times this).
    #[arg(long, env = "CANARY_STATUS_WRITE_QPS", default_value_t = 10)]
    pub status_write_qps: u32,
    /// Status writes allowed in a burst above the rate.
    #[arg(long, env = "CANARY_STATUS_WRITE_BURST", default_value_t = 50)]
    pub status_write_burst: u32,
    /// A separate budget, per second, for the first status write of a HealthCheck or of a new
    /// generation (someone just applied it and waits), so 1,000 new checks show Ready in
    /// seconds; steady-state writes stay under --status-write-qps.
    #[arg(long, env = "CANARY_STATUS_FIRST_WRITE_QPS", default_value_t = 100)]
    pub status_first_write_qps: u32,
    /// Burst of that separate budget.
    #[arg(long, env = "CANARY_STATUS_FIRST_WRITE_BURST", default_value_t = 200)]
    pub status_first_write_burst: u32,
    /// Write status at least this often even when only timestamps changed.
    #[arg(long, env = "CANARY_STATUS_HEARTBEAT", default_value = "5m", value_parser = duration_flag)]
    pub status_heartbeat: std::time::Duration,
    /// Referenced Secrets and ConfigMaps are cached this long, and every HealthCheck is
    /// re-resolved this often, so a rotation is picked up within it.
    #[arg(long, env = "CANARY_REFERENCE_TTL", default_value = "30s", value_parser = duration_flag)]
    pub reference_ttl: std::time::Duration,
    /// Only Secrets carrying this label (`key=value`, or `key` for any value) may be
    /// referenced by HealthChecks; unset: any Secret but service-account tokens.
    #[arg(long, env = "CANARY_SECRET_REFERENCE_LABEL")]
    pub secret_reference_label: Option<LabelGate>,
    /// /healthz fails when status writes are pending and none succeeded for this long.
    #[arg(long, env = "CANARY_WRITER_STALL", default_value = "5m", value_parser = duration_flag)]
    pub writer_stall: std::time::Duration,
    /// /healthz and /readyz fail when the HealthCheck watch has kept failing for this long.
    #[arg(long, env = "CANARY_WATCH_STALL", default_value = "5m", value_parser = duration_flag)]
    pub watch_stall: std::time::Duration,
    #[command(flatten)]
    pub leader: LeaderArgs,
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// What every long-running mode shares: probing policy, engine and admin endpoints.
#[derive(Debug, Args, Clone)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// How replicas share the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Sharding {
    /// Every replica probes every check (run one replica).
    Off,
    /// The holder of one Lease probes everything, the others stand by (`--leader-elect`).
    Leader,
    /// Every replica probes its share; membership through a Lease per replica.
    Shards,
}

/// Leader election or sharding with coordination.k8s.io Leases.
#[derive(Debug, Args, Clone)]
pub struct LeaderArgs {
    /// How replicas share the checks: off, leader (one probes, the others stand by) or shards
    /// (each probes its share). Default: leader with --leader-elect, else off.
    #[arg(long, env = "CANARY_SHARDING")]
    pub sharding: Option<Sharding>,
    /// Only the replica holding the Lease probes and writes status (`--sharding leader`).
    #[arg(long, env = "CANARY_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Name of the Lease (leader); with shards, the `canary.dev/ring` label of every member's
    /// Lease.
    #[arg(
        long,
        env = "CANARY_LEADER_ELECTION_LEASE_NAME",
        default_value = "canary-operator"
    )]
    pub leader_election_lease_name: String,
    /// Namespace of the Lease(s).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub leader_election_namespace: String,
    /// How long a Lease stays valid without renewal; a standby (or a peer) takes over after it.
    #[arg(long, env = "CANARY_LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = duration_flag)]
    pub leader_election_lease_duration: std::time::Duration,
    /// This replica's identity in the Lease (default: host name and process id).
    #[arg(long, env = "POD_NAME")]
    pub leader_election_identity: Option<String>,
    /// Where peers reach this replica's status page (IP, or IP:PORT; the port defaults to the
    /// page's): published on its member Lease so that, with shards, a replica forwards a check's
    /// page, history and badges to the replica probing it. Default: the page's bind address
    /// when it names one, else none (the chart passes the pod IP).
    #[arg(long, env = "CANARY_UI_ADVERTISE_ADDRESS", value_parser = advertise_address)]
    pub ui_advertise_address: Option<AdvertiseAddress>,
}

impl Sharding {
    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Leader => "leader",
            Self::Shards => "shards",
        }
    }
}

impl LeaderArgs {
    /// The sharding mode `--sharding` and `--leader-elect` ask for together.
    pub fn mode(&self) -> Result<Sharding, String> {
        match (self.sharding, self.leader_elect) {
            (None, false) => Ok(Sharding::Off),
            (None | Some(Sharding::Leader), true) => Ok(Sharding::Leader),
            (Some(mode), false) => Ok(mode),
            (Some(mode), true) => Err(format!(
                "--leader-elect means --sharding leader, not {}: drop one of them",
                mode.name()
            )),
        }
    }
}

/// Flags of `canary standalone`.
#[derive(Debug, Args)]
pub struct StandaloneArgs {
    /// HealthCheck YAML files or directories; reloaded when they change.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// How often to look for changed files (and rotated references).
    #[arg(long, env = "CANARY_RELOAD_INTERVAL", default_value = "2s", value_parser = duration_flag)]
    pub reload_interval: std::time::Duration,
    #[command(flatten)]
    pub references: ReferenceArgs,
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// Scheduler and watchdog settings.
#[derive(Debug, Args, Clone)]
pub struct EngineArgs {
    /// Probes in flight at once across all checks, shared fairly across namespaces (default:
    /// a quarter of the descriptor limit, between 16 and 4096).
    #[arg(long, env = "CANARY_MAX_CONCURRENT_PROBES")]
    pub max_concurrent_probes: Option<usize>,
    /// A check is stalled (and /healthz fails) when it has not completed a run for
    /// interval + timeout + this grace.
    #[arg(long, env = "CANARY_STALL_GRACE", default_value = "30s", value_parser = duration_flag)]
    pub stall_grace: std::time::Duration,
    /// /healthz fails when this many runs in a row (across checks) end in ProberError.
    #[arg(long, env = "CANARY_PROBER_ERROR_STREAK", default_value_t = 5)]
    pub prober_error_streak: usize,
    /// HealthCheck labels copied into `canary_check_info` (comma-separated, e.g. team,severity),
    /// so alerts can route by them.
    #[arg(long, env = "CANARY_METRICS_LABEL_ALLOWLIST", value_delimiter = ',')]
    pub metrics_label_allowlist: Vec<String>,
}

/// Where the admin endpoints listen (names as in kubebuilder operators).
#[derive(Debug, Args, Clone)]
pub struct AdminArgs {
    /// Address of /metrics.
    #[arg(
        long,
        env = "CANARY_METRICS_BIND_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_bind_address: std::net::SocketAddr,
    /// Address of /healthz and /readyz.
    #[arg(
        long,
        env = "CANARY_HEALTH_PROBE_BIND_ADDRESS",
        default_value = "0.0.0.0:8081"
    )]
    pub health_probe_bind_address: std::net::SocketAddr,
    /// Address of the status page (overview, check pages, JSON API, badges); empty: off.
    /// Read-only and without authentication: put an authenticating proxy in front of it.
    #[arg(
        long,
        env = "CANARY_UI_BIND_ADDRESS",
        default_value = "0.0.0.0:8082",
        value_parser = optional_address
    )]
    pub ui_bind_address: OptionalAddress,
    /// Hide targets, error messages, certificate names and specs on the status page.
    #[arg(long, env = "CANARY_UI_REDACT")]
    pub ui_redact: bool,
}

/// A listen address, or none (an empty value turns the listener off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalAddress(pub Option<std::net::SocketAddr>);

fn optional_address(value: &str) -> Result<OptionalAddress, String> {
    if value.trim().is_empty() {
        return Ok(OptionalAddress(None));
    }
    (value.parse())
        .map(|addr| OptionalAddress(Some(addr)))
        .map_err(|e| format!("{e} (HOST:PORT, or empty to turn it off)"))
}

/// An advertised address: an IP, with or without a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvertiseAddress {
    pub ip: std::net::IpAddr,
    pub port: Option<u16>,
}

impl AdvertiseAddress {
    /// The address, with `port` when the flag named none.
    pub fn with_default_port(self, port: u16) -> std::net::SocketAddr {
        (self.ip, self.port.unwrap_or(port)).into()
    }
}

fn advertise_address(value: &str) -> Result<AdvertiseAddress, String> {
    let (ip, port) = match value.parse::<std::net::SocketAddr>() {
        Ok(addr) => (addr.ip(), Some(addr.port())),
        Err(_) => (value.parse::<std::net::IpAddr>())
            .map(|ip| (ip, None))
            .map_err(|e| format!("{e} (an IP address, or IP:PORT)"))?,
    };
    if ip.is_unspecified() {
        return Err("an unspecified address cannot be reached by peers".into());
    }
    Ok(AdvertiseAddress { ip, port })
}

/// Flags of `canary selftest` (cluster access from in-cluster config or KUBECONFIG).
#[derive(Debug, Args)]
pub struct SelftestArgs {
    /// The operator's /readyz, e.g. http://canary-canary-operator-metrics.canary.svc:8081/readyz.
    #[arg(long, env = "CANARY_READYZ_URL")]
    pub readyz_url: String,
    /// The namespaces the operator watches (comma-separated), where HealthChecks are listed:
    /// with namespaced RBAC (the chart's `watchNamespaces`) a cluster-wide list is forbidden.
    /// All namespaces when empty.
    #[arg(long, env = "CANARY_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
}

/// Flags of `canary check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// HealthCheck YAML files or directories (multi-document files allowed).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Output: a table, or the HealthChecks with the status the operator would write.
    #[arg(short, long, default_value = "table")]
    pub output: Format,
    #[command(flatten)]
    pub references: ReferenceArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// Where referenced Secrets and ConfigMaps are read from outside a cluster.
#[derive(Debug, Args, Clone)]
pub struct ReferenceArgs {
    /// Folder holding Secrets as DIR/<name>/<key> (the layout of a mounted Secret volume).
    #[arg(long, env = "CANARY_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Folder holding ConfigMaps as DIR/<name>/<key>.
    #[arg(long = "configmaps-dir", env = "CANARY_CONFIGMAPS_DIR")]
    pub config_maps_dir: Option<PathBuf>,
}

/// Operator-wide probing policy.
#[derive(Debug, Args, Clone)]
pub struct PolicyArgs {
    /// Networks probes may never connect to (checked on every resolved address and redirect hop).
    #[arg(
        long = "deny-cidrs",
        env = "CANARY_DENY_CIDRS",
        value_delimiter = ',',
        default_value = crate::probe::DEFAULT_DENY_CIDRS
    )]
    pub deny_cidrs: Vec<IpNet>,
}
