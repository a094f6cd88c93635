//! What `canary operator` is configured with: plain values (the command line builds them in
//! `cli`, tests write them), and the defaults the flags show, written once here.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use super::writer::WriterConfig;
use crate::{api::LabelGate, engine::EngineConfig, probe::ProbePolicy};

/// Default `--status-write-qps` and `--status-write-burst`.
pub const STATUS_WRITE_QPS: u32 = 10;
pub const STATUS_WRITE_BURST: u32 = 50;
/// Default `--status-first-write-qps` and `--status-first-write-burst`.
pub const STATUS_FIRST_WRITE_QPS: u32 = 100;
pub const STATUS_FIRST_WRITE_BURST: u32 = 200;
/// Default `--status-heartbeat`.
pub const STATUS_HEARTBEAT: Duration = Duration::from_secs(300);
/// Default `--writer-stall` and `--watch-stall`.
/// Default `--status-history-interval`.
pub const STATUS_HISTORY_INTERVAL: Duration = Duration::from_secs(3600);
pub const WRITER_STALL: Duration = Duration::from_secs(300);
pub const WATCH_STALL: Duration = Duration::from_secs(300);
/// Default `--reference-ttl`.
pub const REFERENCE_TTL: Duration = Duration::from_secs(30);
/// Default `--leader-election-lease-name`, `--leader-election-namespace` and
/// `--leader-election-lease-duration`.
pub const LEASE_NAME: &str = "canary-operator";
pub const LEASE_NAMESPACE: &str = "default";
pub const LEASE_DURATION: Duration = Duration::from_secs(15);

/// The operator's settings.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// Namespaces to watch; all when empty.
    pub namespaces: Vec<String>,
    /// Status write rates, heartbeat and the writer's stall threshold (`--status-write-*`,
    /// `--status-heartbeat`, `--writer-stall`).
    pub writer: WriterConfig,
    /// How long referenced objects are cached, and how often every check is re-resolved.
    pub reference_ttl: Duration,
    /// The label a referenced Secret must carry; `None`: any but service-account tokens.
    pub secret_reference_label: Option<LabelGate>,
    /// `/healthz` and `/readyz` fail when the watch has kept failing for this long.
    pub watch_stall: Duration,
    pub leader: LeaderConfig,
    /// The deny list and the body buffer budget.
    pub policy: ProbePolicy,
    pub engine: EngineConfig,
    /// Run the discovery controller (`--discovery`): CheckDiscoveries generate HealthChecks.
    pub discovery: bool,
    /// Completes Service names discovery generates (`--cluster-domain`).
    pub cluster_domain: String,
    /// `--hub-kubeconfig`: also run as a spoke of the hub this kubeconfig reaches, probing the
    /// hub's checks that list `--location` (see [`super::spoke`]).
    pub hub_kubeconfig: Option<std::path::PathBuf>,
    /// Aggregate checks with `spec.locations` from their CheckReports (`--locations-hub`).
    pub locations_hub: bool,
}

/// How replicas share the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sharding {
    /// Every replica probes every check (run one replica).
    Off,
    /// The holder of one Lease probes everything, the others stand by (`--leader-elect`).
    Leader,
    /// Every replica probes its share; membership through a Lease per replica.
    Shards,
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

/// Leader election or sharding with coordination.k8s.io Leases.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    pub sharding: Sharding,
    /// The leader's Lease; with shards, the `canary.dev/ring` label of every member's Lease.
    pub leader_election_lease_name: String,
    pub leader_election_namespace: String,
    pub leader_election_lease_duration: Duration,
    /// This replica's identity in the Lease; `None`: host name and process id.
    pub leader_election_identity: Option<String>,
    /// Where peers reach this replica's status page; `None`: its bind address if it names one.
    pub ui_advertise_address: Option<AdvertiseAddress>,
    /// `--ui-forward`: forward other replicas' check pages (needs `ui_forward_key`).
    pub ui_forward: bool,
    /// The replicas' shared key (`--ui-forward-key-file`), loaded at start.
    pub ui_forward_key: Option<crate::ui::seal::Key>,
    /// Networks a peer's page address must be in (`--ui-forward-cidrs`).
    pub ui_forward_cidrs: Vec<ipnet::IpNet>,
}

impl LeaderConfig {
    /// The ring's name (the `canary.dev/ring` label of its members' Leases): the lease name,
    /// and with `--location` the location too, so replicas of different locations never share
    /// checks.
    pub fn ring(&self, location: Option<&str>) -> String {
        let name = &self.leader_election_lease_name;
        match location {
            Some(location) => format!("{name}.{location}"),
            None => name.clone(),
        }
    }
}

/// An advertised address: an IP, with or without a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvertiseAddress {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

impl AdvertiseAddress {
    /// The address, with `port` when the flag named none.
    pub fn with_default_port(self, port: u16) -> SocketAddr {
        (self.ip, self.port.unwrap_or(port)).into()
    }
}

impl std::str::FromStr for AdvertiseAddress {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (ip, port) = match value.parse::<SocketAddr>() {
            Ok(addr) => (addr.ip(), Some(addr.port())),
            Err(_) => (value.parse::<IpAddr>())
                .map(|ip| (ip, None))
                .map_err(|e| format!("{e} (an IP address, or IP:PORT)"))?,
        };
        if ip.is_unspecified() {
            return Err("an unspecified address cannot be reached by peers".into());
        }
        Ok(Self { ip, port })
    }
}

impl Default for LeaderConfig {
    fn default() -> Self {
        Self {
            sharding: Sharding::Off,
            leader_election_lease_name: LEASE_NAME.into(),
            leader_election_namespace: LEASE_NAMESPACE.into(),
            leader_election_lease_duration: LEASE_DURATION,
            leader_election_identity: None,
            ui_advertise_address: None,
            ui_forward: false,
            ui_forward_key: None,
            ui_forward_cidrs: crate::ui::forward::default_cidrs(),
        }
    }
}

impl Default for OperatorConfig {
    /// What `canary operator` runs with when no flag is given.
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            writer: WriterConfig {
                qps: STATUS_WRITE_QPS,
                burst: STATUS_WRITE_BURST,
                first_qps: STATUS_FIRST_WRITE_QPS,
                first_burst: STATUS_FIRST_WRITE_BURST,
                heartbeat: STATUS_HEARTBEAT,
                history: STATUS_HISTORY_INTERVAL,
                stall: WRITER_STALL,
            },
            reference_ttl: REFERENCE_TTL,
            secret_reference_label: None,
            watch_stall: WATCH_STALL,
            leader: LeaderConfig::default(),
            policy: ProbePolicy::default(),
            engine: EngineConfig::default(),
            discovery: false,
            cluster_domain: crate::discovery::DEFAULT_CLUSTER_DOMAIN.into(),
            hub_kubeconfig: None,
            locations_hub: false,
        }
    }
}

impl OperatorConfig {
    /// The defaults with every listener on loopback, on a port the system picks (tests).
    pub fn test() -> Self {
        Self {
            engine: EngineConfig::test(),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{AdvertiseAddress, LeaderConfig};

    #[test]
    fn replicas_of_different_locations_never_join_one_ring() {
        let leader = LeaderConfig::default();
        assert_eq!(leader.ring(None), "canary-operator");
        let a = leader.ring(Some("eu-west"));
        assert_eq!(a, "canary-operator.eu-west");
        assert_ne!(a, leader.ring(Some("us-east")));
        let label = crate::controller::shard::label_value(&a);
        assert_eq!(label, a, "a valid label value as it is");
    }

    #[test]
    fn an_advertised_address_is_an_ip_with_an_optional_port() {
        let plain: AdvertiseAddress = "10.0.0.7".parse().unwrap();
        assert_eq!(plain.with_default_port(8082).to_string(), "10.0.0.7:8082");
        let with_port: AdvertiseAddress = "[fd00::7]:9000".parse().unwrap();
        assert_eq!(
            with_port.with_default_port(8082).to_string(),
            "[fd00::7]:9000"
        );
        assert!("0.0.0.0".parse::<AdvertiseAddress>().is_err());
        assert!("pod.local".parse::<AdvertiseAddress>().is_err());
    }
}
