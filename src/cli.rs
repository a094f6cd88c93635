//! Command line: subcommands and their flags, with environment fallbacks, turned into the
//! plain settings each mode takes (`OperatorConfig`, `StandaloneConfig`, `CheckConfig`,
//! `EngineConfig`). Defaults are the constants those modules export, so a test's default
//! config and the flags' defaults are the same values.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::{
    api::{
        LabelGate,
        duration::{MAX_DURATION, fmt_go, parse_duration},
        parse_quantity,
    },
    controller::{AdvertiseAddress, Sharding, config as operator},
    engine,
    logging::LogFormat,
    report::Format,
    runner::{DEFAULT_AUDIT_INTERVAL, DEFAULT_PROBER_ERROR_STREAK, DEFAULT_STALL_GRACE},
    standalone,
};

mod convert;
mod discover;

pub use discover::{CrdArgs, DiscoverArgs};

/// Canary: health checks for HTTP, TCP, TLS, DNS and gRPC endpoints, from a Kubernetes operator
/// or files.
#[derive(Debug, Parser)]
#[command(name = "canary", version, about, next_display_order = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format.
    #[arg(
        long,
        global = true,
        help_heading = "Logging",
        env = "CANARY_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace), or a tracing filter such as
    /// `info,canary_operator::controller=debug`; RUST_LOG, when set, takes precedence.
    #[arg(
        long,
        global = true,
        help_heading = "Logging",
        env = "CANARY_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: String,
    /// Log lines queued for stderr before new ones are dropped (counted in
    /// `canary_log_lines_dropped_total`): a stderr that stops draining never blocks probing.
    #[arg(long, global = true, help_heading = "Logging", env = "CANARY_LOG_QUEUE_LINES", default_value_t = 16_384,
          value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub log_queue_lines: u32,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run HealthChecks from YAML files once and report (exit 0 all pass, 1 any fails, 2 invalid input).
    Check(CheckArgs),
    /// Run HealthChecks from YAML files continuously, serving /metrics, /healthz, /readyz and the
    /// status page.
    // Boxed, like the operator's: its flags make it large.
    Standalone(Box<StandaloneArgs>),
    /// Run the Kubernetes operator: watch HealthChecks, probe them, write status and Events.
    // Boxed: its flags make it by far the largest variant.
    Operator(Box<OperatorArgs>),
    /// Print a CustomResourceDefinition as YAML (HealthCheck by default, or CheckDiscovery).
    Crd(CrdArgs),
    /// Print (or run) the HealthChecks CheckDiscoveries would generate from manifests in files.
    Discover(DiscoverArgs),
    /// Check an installed Canary (the chart's `helm test`): its /readyz and the HealthCheck API.
    Selftest(SelftestArgs),
    /// Run a command and report it to a heartbeat check: /start, then its exit code with the
    /// last KiB of its output; exits with the command's code.
    Ping(PingArgs),
}

/// Flags of `canary ping`.
#[derive(Debug, Args)]
#[command(next_display_order = None)]
pub struct PingArgs {
    /// The check's ping URL: http://HOST:PORT/api/v1/ping/NAMESPACE/NAME.
    #[arg(long, env = "CANARY_PING_URL")]
    pub url: url::Url,
    /// A file holding the check's token (its Secret mounted as a volume).
    #[arg(long, env = "CANARY_PING_TOKEN_FILE")]
    pub token_file: PathBuf,
    /// A run id sent with both pings (at most 64 characters), e.g. the Job's name.
    #[arg(long, env = "CANARY_PING_RID")]
    pub rid: Option<String>,
    /// How long the final ping is retried while the listener cannot be reached or is busy.
    #[arg(long, env = "CANARY_PING_DEADLINE", default_value_t = DurationFlag(crate::heartbeat::ping::FINISH_DEADLINE))]
    pub deadline: DurationFlag,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
}

impl From<PingArgs> for crate::heartbeat::ping::PingConfig {
    fn from(args: PingArgs) -> Self {
        Self {
            url: args.url,
            token_file: args.token_file,
            run_id: args.rid,
            deadline: args.deadline.0,
            command: args.command,
        }
    }
}

/// Flags of `canary operator` (cluster access comes from in-cluster config or KUBECONFIG). In
/// `--help`, each group of flags under its heading, in alphabetical order.
#[derive(Debug, Args)]
#[command(next_display_order = None)]
pub struct OperatorArgs {
    /// Namespaces to watch (comma-separated); all namespaces when empty.
    #[arg(long, env = "CANARY_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Status writes per second to the API server, across all HealthChecks of this replica
    /// (with `--sharding shards`, N replicas write up to N times this).
    #[arg(long, env = "CANARY_STATUS_WRITE_QPS", default_value_t = operator::STATUS_WRITE_QPS)]
    pub status_write_qps: u32,
    /// Status writes allowed in a burst above the rate.
    #[arg(long, env = "CANARY_STATUS_WRITE_BURST", default_value_t = operator::STATUS_WRITE_BURST)]
    pub status_write_burst: u32,
    /// A separate budget, per second, for the first status write of a HealthCheck or of a new
    /// generation (someone just applied it and waits) and for the write of a run-now, so 1,000
    /// new checks show Ready in seconds; steady-state writes stay under --status-write-qps.
    #[arg(long, env = "CANARY_STATUS_FIRST_WRITE_QPS", default_value_t = operator::STATUS_FIRST_WRITE_QPS)]
    pub status_first_write_qps: u32,
    /// Burst of that separate budget.
    #[arg(long, env = "CANARY_STATUS_FIRST_WRITE_BURST", default_value_t = operator::STATUS_FIRST_WRITE_BURST)]
    pub status_first_write_burst: u32,
    /// Write status at least this often even when only timestamps changed.
    #[arg(long, env = "CANARY_STATUS_HEARTBEAT", default_value_t = DurationFlag(operator::STATUS_HEARTBEAT))]
    pub status_heartbeat: DurationFlag,
    /// Store the hourly uptime history in `status.history` at most this often (riding on a
    /// write that happens anyway), so a restart or a shard move resumes it.
    #[arg(long, env = "CANARY_STATUS_HISTORY_INTERVAL", default_value_t = DurationFlag(operator::STATUS_HISTORY_INTERVAL))]
    pub status_history_interval: DurationFlag,
    /// Referenced Secrets and ConfigMaps are cached this long, and every HealthCheck is
    /// re-resolved this often, so a rotation is picked up within it.
    #[arg(long, env = "CANARY_REFERENCE_TTL", default_value_t = DurationFlag(operator::REFERENCE_TTL))]
    pub reference_ttl: DurationFlag,
    /// Only Secrets carrying this label (`key=value`, or `key` for any value) may be
    /// referenced by HealthChecks; unset: any Secret but service-account tokens.
    #[arg(long, env = "CANARY_SECRET_REFERENCE_LABEL")]
    pub secret_reference_label: Option<LabelGate>,
    /// /healthz fails when status writes are pending and none succeeded for this long.
    #[arg(long, env = "CANARY_WRITER_STALL", default_value_t = DurationFlag(operator::WRITER_STALL))]
    pub writer_stall: DurationFlag,
    /// /healthz and /readyz fail when the HealthCheck watch has kept failing for this long.
    #[arg(long, env = "CANARY_WATCH_STALL", default_value_t = DurationFlag(operator::WATCH_STALL))]
    pub watch_stall: DurationFlag,
    /// Run the discovery controller: CheckDiscoveries generate HealthChecks from the
    /// Ingresses, Gateway API routes and Services of their namespace (needs the CheckDiscovery
    /// CRD and RBAC to list and watch the sources; chart value discovery.enabled).
    #[arg(long, env = "CANARY_DISCOVERY")]
    pub discovery: bool,
    /// Completes the Service names discovery generates: `<name>.<namespace>.svc.<cluster domain>`.
    #[arg(long, env = "CANARY_CLUSTER_DOMAIN", default_value = crate::discovery::DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,
    /// Also run as a spoke of the hub cluster this kubeconfig file reaches (needs --location):
    /// probe the hub's HealthChecks whose spec.locations names this location and write one
    /// CheckReport per check into the hub (chart value locations.spoke.hubKubeconfigSecret).
    #[arg(long, env = "CANARY_HUB_KUBECONFIG")]
    pub hub_kubeconfig: Option<std::path::PathBuf>,
    /// Aggregate the CheckReports spokes write for HealthChecks with spec.locations that this
    /// replica owns (needs the CheckReport CRD and RBAC to list and watch CheckReports; chart
    /// value locations.enabled). Such checks are never probed here either way.
    #[arg(long, env = "CANARY_LOCATIONS_HUB")]
    pub locations_hub: bool,
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

/// Leader election or sharding with coordination.k8s.io Leases.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Leader election and sharding")]
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
        default_value = operator::LEASE_NAME
    )]
    pub leader_election_lease_name: String,
    /// Namespace of the Lease(s).
    #[arg(long, env = "POD_NAMESPACE", default_value = operator::LEASE_NAMESPACE)]
    pub leader_election_namespace: String,
    /// How long a Lease stays valid without renewal; a standby (or a peer) takes over after it.
    #[arg(long, env = "CANARY_LEADER_ELECTION_LEASE_DURATION", default_value_t = DurationFlag(operator::LEASE_DURATION))]
    pub leader_election_lease_duration: DurationFlag,
    /// This replica's identity in the Lease (default: host name and process id); also its
    /// Events' `reportingInstance` and `status.probedBy`, so at most 128 bytes.
    #[arg(long, env = "POD_NAME", value_parser = identity)]
    pub leader_election_identity: Option<String>,
    /// Where peers reach this replica's status page (IP, or IP:PORT; the port defaults to the
    /// page's): published on its member Lease so that, with shards, a replica forwards a check's
    /// page, history and badges to the replica probing it. Default: the page's bind address
    /// when it names one, else none (the chart passes the pod IP).
    #[arg(long, env = "CANARY_UI_ADVERTISE_ADDRESS")]
    pub ui_advertise_address: Option<AdvertiseAddress>,
    /// With shards, forward a request for a check another replica probes (its page, API
    /// record, badges) to that replica's page. Off by default: the address comes from a Lease,
    /// so forwarded replies must be sealed with --ui-forward-key-file (without it forwarding
    /// stays off); when off, the page names the replica that probes the check.
    #[arg(long, env = "CANARY_UI_FORWARD")]
    pub ui_forward: bool,
    /// File holding the key (at least 32 bytes, e.g. a mounted Secret) the replicas seal
    /// forwarded replies with (HMAC-SHA256); every replica needs the same key.
    #[arg(long, env = "CANARY_UI_FORWARD_KEY_FILE")]
    pub ui_forward_key_file: Option<PathBuf>,
    /// Networks a peer's published page address must be in to be forwarded to (the pod
    /// network); the deny list (--deny-cidrs) applies as well.
    #[arg(
        long = "ui-forward-cidrs",
        env = "CANARY_UI_FORWARD_CIDRS",
        value_delimiter = ',',
        default_value = crate::ui::forward::DEFAULT_FORWARD_CIDRS
    )]
    pub ui_forward_cidrs: Vec<IpNet>,
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
#[command(next_display_order = None)]
pub struct StandaloneArgs {
    /// HealthCheck YAML files or directories; reloaded when they change.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// How often to look for changed files (and rotated references).
    #[arg(long, env = "CANARY_RELOAD_INTERVAL", default_value_t = DurationFlag(standalone::RELOAD_INTERVAL))]
    pub reload_interval: DurationFlag,
    #[command(flatten)]
    pub references: ReferenceArgs,
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// Scheduler and watchdog settings.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Scheduler and watchdog")]
pub struct EngineArgs {
    /// Probes in flight at once across all checks, shared fairly across namespaces (default:
    /// a quarter of the descriptor limit, between 16 and 4096).
    #[arg(long, env = "CANARY_MAX_CONCURRENT_PROBES")]
    pub max_concurrent_probes: Option<usize>,
    /// How far past its limit a check is stalled: /healthz fails when a run outlives its timeout
    /// by this much, or the probe-slot queue stops moving for the longest timeout plus this (a
    /// check waiting while the queue moves is late, not stalled); a check this far past its due
    /// time and not queued is overdue and restarted by the self-audit.
    #[arg(long, env = "CANARY_STALL_GRACE", default_value_t = DurationFlag(DEFAULT_STALL_GRACE))]
    pub stall_grace: DurationFlag,
    /// How often the self-audit compares the checks this replica should be probing with its
    /// runners: one without a runner, or not advancing, is restarted and counted
    /// (`canary_checks_recovered_total`); found again at the next audit, /healthz fails.
    #[arg(long, env = "CANARY_AUDIT_INTERVAL", default_value_t = DurationFlag(DEFAULT_AUDIT_INTERVAL))]
    pub audit_interval: DurationFlag,
    /// /healthz fails when this many runs in a row (across checks) end in ProberError.
    #[arg(long, env = "CANARY_PROBER_ERROR_STREAK", default_value_t = DEFAULT_PROBER_ERROR_STREAK)]
    pub prober_error_streak: usize,
    /// HealthCheck labels copied into `canary_check_info` (comma-separated, e.g. team,severity),
    /// so alerts can route by them.
    #[arg(long, env = "CANARY_METRICS_LABEL_ALLOWLIST", value_delimiter = ',')]
    pub metrics_label_allowlist: Vec<String>,
    /// Where this Canary probes from (a cluster, a region or a zone: `eu-west`): every metric
    /// carries it as a constant `location` label, so Thanos or Mimir can compare locations.
    #[arg(long, env = "CANARY_LOCATION", value_parser = location)]
    pub location: Option<String>,
}

/// Where the admin endpoints listen (names as in kubebuilder operators).
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Endpoints")]
pub struct AdminArgs {
    /// Address of /metrics.
    #[arg(long, env = "CANARY_METRICS_BIND_ADDRESS", default_value_t = engine::METRICS_BIND_ADDRESS)]
    pub metrics_bind_address: SocketAddr,
    /// Address of /healthz and /readyz.
    #[arg(long, env = "CANARY_HEALTH_PROBE_BIND_ADDRESS", default_value_t = engine::HEALTH_PROBE_BIND_ADDRESS)]
    pub health_probe_bind_address: SocketAddr,
    /// Address of the status page (overview, check pages, JSON API, badges); empty: off.
    /// Read-only and without authentication: put an authenticating proxy in front of it.
    #[arg(
        long,
        env = "CANARY_UI_BIND_ADDRESS",
        default_value_t = OptionalAddress(Some(engine::UI_BIND_ADDRESS)),
        value_parser = optional_address
    )]
    pub ui_bind_address: OptionalAddress,
    /// Hide targets, error messages, certificate names and serials, DNS answers, gRPC statuses,
    /// specs, `probedBy` and other replicas' names and addresses on the status page.
    #[arg(long, env = "CANARY_UI_REDACT")]
    pub ui_redact: bool,
    /// Prometheus (or Thanos, Mimir: the URL below which `/api/v1/query` answers) that scrapes
    /// this Canary: the status page and its JSON API read uptime over 24h/7d/30d from Canary's
    /// own metrics there, falling back to the runners' history when it does not answer.
    #[arg(long, env = "CANARY_PROMETHEUS_URL", value_parser = prometheus_url)]
    pub prometheus_url: Option<Box<url::Url>>,
    /// A file holding the bearer token sent to --prometheus-url (re-read for every query, so
    /// a rotated token is used).
    #[arg(
        long,
        env = "CANARY_PROMETHEUS_BEARER_TOKEN_FILE",
        requires = "prometheus_url"
    )]
    pub prometheus_bearer_token_file: Option<PathBuf>,
    /// PEM certificates trusted for an https --prometheus-url, besides the system's.
    #[arg(long, env = "CANARY_PROMETHEUS_CA_FILE", requires = "prometheus_url")]
    pub prometheus_ca_file: Option<PathBuf>,
    /// How long the page uses Prometheus's answers before asking again (a page of 100 checks
    /// costs 4 queries per this period).
    #[arg(long, env = "CANARY_PROMETHEUS_CACHE_TTL", default_value_t = DurationFlag(crate::ui::prometheus::FRESH_FOR))]
    pub prometheus_cache_ttl: DurationFlag,
    /// Address of the heartbeat listener (`/api/v1/ping/{namespace}/{name}`, for heartbeat
    /// checks); empty: off. Pings need the check's token; messages are redacted with
    /// --ui-redact.
    #[arg(
        long,
        env = "CANARY_HEARTBEAT_BIND_ADDRESS",
        default_value_t = OptionalAddress(None),
        value_parser = optional_address
    )]
    pub heartbeat_bind_address: OptionalAddress,
}

/// A listen address, or none (an empty value turns the listener off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalAddress(pub Option<SocketAddr>);

impl fmt::Display for OptionalAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => Ok(()),
        }
    }
}

fn optional_address(value: &str) -> Result<OptionalAddress, String> {
    if value.trim().is_empty() {
        return Ok(OptionalAddress(None));
    }
    (value.parse())
        .map(|addr| OptionalAddress(Some(addr)))
        .map_err(|e| format!("{e} (HOST:PORT, or empty to turn it off)"))
}

/// `--prometheus-url`: http or https with a host (boxed: a URL is large, and so would be every
/// command's arguments).
fn prometheus_url(value: &str) -> Result<Box<url::Url>, String> {
    let url: url::Url = value.parse().map_err(|e| format!("{e}"))?;
    match (url.scheme(), url.host_str()) {
        ("http" | "https", Some(host)) if !host.is_empty() => Ok(Box::new(url)),
        _ => Err("an http or https URL with a host, e.g. http://prometheus.monitoring:9090".into()),
    }
}

/// `--location`: a DNS label (lower-case letters, digits and `-`, at most 63), so it is a valid
/// label value everywhere it will go (metrics now; object names and label values later).
fn location(value: &str) -> Result<String, String> {
    let valid = (1..=63).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if valid {
        Ok(value.to_owned())
    } else {
        Err("must be a DNS label: 1-63 lower-case letters, digits or '-', not starting or ending with '-' (e.g. eu-west)".into())
    }
}

/// The longest `reportingInstance` kube accepts on an Event (`ReportingInstanceLengthLimit`).
pub const MAX_IDENTITY_BYTES: usize = 128;

/// `--leader-election-identity`: it becomes the `reportingInstance` of every Event this replica
/// publishes, which kube refuses (422) when empty or longer than 128 bytes.
fn identity(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > MAX_IDENTITY_BYTES {
        return Err(format!(
            "is {} bytes long, more than the {MAX_IDENTITY_BYTES} Kubernetes allows for an Event's \
             reportingInstance (every Event of this replica would be refused)",
            value.len()
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(format!("must not contain control characters ({c:?})"));
    }
    Ok(value.to_string())
}

/// Flags of `canary selftest` (cluster access from in-cluster config or KUBECONFIG).
#[derive(Debug, Args)]
#[command(next_display_order = None)]
pub struct SelftestArgs {
    /// The operator's /readyz, e.g. http://canary-canary-operator-metrics.canary.svc:8081/readyz.
    #[arg(long, env = "CANARY_READYZ_URL")]
    pub readyz_url: String,
    /// The namespaces the operator watches (comma-separated), where HealthChecks are listed:
    /// with namespaced RBAC (the chart's `watchNamespaces`) a cluster-wide list is forbidden.
    /// All namespaces when empty.
    #[arg(long, env = "CANARY_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// How long the checks are retried before the test fails (an operator still starting, or a
    /// Service whose endpoints lag behind a rollout, is not a failed install).
    #[arg(long, env = "CANARY_SELFTEST_TIMEOUT", default_value_t = DurationFlag(crate::selftest::DEADLINE))]
    pub timeout: DurationFlag,
}

/// Flags of `canary check`.
#[derive(Debug, Args)]
#[command(next_display_order = None)]
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
#[command(next_help_heading = "References")]
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
#[command(next_help_heading = "Probing policy")]
pub struct PolicyArgs {
    /// Networks probes may never connect to (checked on every resolved address and redirect hop).
    #[arg(
        long = "deny-cidrs",
        env = "CANARY_DENY_CIDRS",
        value_delimiter = ',',
        default_value = crate::probe::DEFAULT_DENY_CIDRS
    )]
    pub deny_cidrs: Vec<IpNet>,
    /// Body bytes all probes together may hold in memory (the buffers of `bodyRegex` and
    /// `json`, and parsed JSON trees): a probe whose buffer would pass it fails with
    /// BodyBudgetExceeded (a Kubernetes quantity: 64Mi).
    #[arg(
        long = "body-buffer-budget",
        env = "CANARY_BODY_BUFFER_BUDGET",
        default_value = crate::probe::DEFAULT_BODY_BUFFER_BUDGET_FLAG
    )]
    pub body_buffer_budget: BytesFlag,
}

/// A byte-count flag written as a Kubernetes quantity (`65536`, `64Mi`, `1Gi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BytesFlag(pub u64);

impl FromStr for BytesFlag {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        parse_quantity(value)
            .map(Self)
            .ok_or_else(|| format!("{value:?} is not a byte quantity such as 65536, 64Mi or 1Gi"))
    }
}

/// A duration flag (`30s`, `5m`): parsed and bounded like every spec duration, and shown (as a
/// default in `--help`) the way Go writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationFlag(pub Duration);

impl FromStr for DurationFlag {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        (parse_duration("flag", value, MAX_DURATION).map(Self)).map_err(|e| e.message)
    }
}

impl fmt::Display for DurationFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_go(self.0))
    }
}
