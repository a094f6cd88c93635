//! From the flags to the plain settings each mode takes.

use super::{
    AdminArgs, CheckArgs, EngineArgs, OperatorArgs, PolicyArgs, ReferenceArgs, StandaloneArgs,
};
use crate::{
    check::CheckConfig,
    controller::{LeaderConfig, OperatorConfig, writer::WriterConfig},
    engine::{AdminConfig, EngineConfig},
    files::DirReferences,
    probe::ProbePolicy,
    standalone::StandaloneConfig,
    ui::PromConfig,
};

impl OperatorArgs {
    /// The operator's settings; fails when `--sharding` and `--leader-elect` disagree.
    pub fn into_config(self) -> Result<OperatorConfig, String> {
        let leader = self.leader;
        let service = self.service;
        if self.hub_kubeconfig.is_some() && service.engine.location.is_none() {
            return Err(
                "--hub-kubeconfig needs --location: a spoke probes the hub's checks that list its location"
                    .into(),
            );
        }
        Ok(OperatorConfig {
            namespaces: self.namespaces,
            writer: WriterConfig {
                qps: self.status_write_qps,
                burst: self.status_write_burst,
                first_qps: self.status_first_write_qps,
                first_burst: self.status_first_write_burst,
                heartbeat: self.status_heartbeat.0,
                history: self.status_history_interval.0,
                stall: self.writer_stall.0,
            },
            reference_ttl: self.reference_ttl.0,
            secret_reference_label: self.secret_reference_label,
            watch_stall: self.watch_stall.0,
            leader: LeaderConfig {
                sharding: leader.mode()?,
                leader_election_lease_name: leader.leader_election_lease_name,
                leader_election_namespace: leader.leader_election_namespace,
                leader_election_lease_duration: leader.leader_election_lease_duration.0,
                leader_election_identity: leader.leader_election_identity,
                ui_advertise_address: leader.ui_advertise_address,
                ui_forward: leader.ui_forward,
                ui_forward_key: forward_key(leader.ui_forward, leader.ui_forward_key_file)?,
                ui_forward_cidrs: leader.ui_forward_cidrs,
            },
            policy: service.policy.into(),
            engine: EngineConfig::from((service.engine, service.admin)),
            discovery: self.discovery,
            cluster_domain: self.cluster_domain,
            hub_kubeconfig: self.hub_kubeconfig,
            locations_hub: self.locations_hub,
        })
    }
}

/// The forwarding key, read at start when forwarding is on: an unreadable or short key file
/// fails start-up (a misconfiguration), a missing flag leaves forwarding off (logged later).
fn forward_key(
    forward: bool,
    file: Option<std::path::PathBuf>,
) -> Result<Option<crate::ui::seal::Key>, String> {
    match file.filter(|_| forward) {
        Some(path) => (crate::ui::seal::Key::load(&path))
            .map(Some)
            .map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

impl From<StandaloneArgs> for StandaloneConfig {
    fn from(args: StandaloneArgs) -> Self {
        let service = args.service;
        Self {
            files: args.files,
            reload_interval: args.reload_interval.0,
            references: args.references.into(),
            policy: service.policy.into(),
            engine: EngineConfig::from((service.engine, service.admin)),
        }
    }
}

impl From<CheckArgs> for CheckConfig {
    fn from(args: CheckArgs) -> Self {
        Self {
            files: args.files,
            references: args.references.into(),
            policy: args.policy.into(),
        }
    }
}

impl From<(EngineArgs, AdminArgs)> for EngineConfig {
    fn from((engine, admin): (EngineArgs, AdminArgs)) -> Self {
        Self {
            max_concurrent_probes: engine.max_concurrent_probes,
            stall_grace: engine.stall_grace.0,
            audit_interval: engine.audit_interval.0,
            prober_error_streak: engine.prober_error_streak,
            metrics_label_allowlist: engine.metrics_label_allowlist,
            location: engine.location,
            admin: AdminConfig {
                metrics_bind_address: admin.metrics_bind_address,
                health_probe_bind_address: admin.health_probe_bind_address,
                ui_bind_address: admin.ui_bind_address.0,
                ui_redact: admin.ui_redact,
                heartbeat_bind_address: admin.heartbeat_bind_address.0,
                prometheus: admin.prometheus_url.map(|url| PromConfig {
                    url: *url,
                    token_file: admin.prometheus_bearer_token_file,
                    ca_file: admin.prometheus_ca_file,
                    cache_ttl: admin.prometheus_cache_ttl.0,
                    // The engine sets --location and --ui-redact.
                    location: None,
                    redact: false,
                }),
            },
        }
    }
}

impl From<PolicyArgs> for ProbePolicy {
    fn from(args: PolicyArgs) -> Self {
        Self {
            deny_cidrs: args.deny_cidrs,
            body_buffer_budget: args.body_buffer_budget.0,
        }
    }
}

impl From<ReferenceArgs> for DirReferences {
    fn from(args: ReferenceArgs) -> Self {
        Self {
            secrets_dir: args.secrets_dir,
            config_maps_dir: args.config_maps_dir,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cli::{Cli, Command, DurationFlag},
        controller::Sharding,
        standalone,
    };
    use clap::Parser;

    fn parse(args: &[&str]) -> Command {
        let argv = ["canary"].iter().chain(args).copied();
        Cli::try_parse_from(argv).unwrap().command
    }

    /// The flags' defaults are the constants the configs' own defaults use.
    #[test]
    fn flag_defaults_are_the_config_defaults() {
        let Command::Operator(args) = parse(&["operator"]) else {
            panic!("not the operator")
        };
        let (parsed, default) = (args.into_config().unwrap(), OperatorConfig::default());
        assert_eq!(format!("{parsed:?}"), format!("{default:?}"));
        let Command::Standalone(args) = parse(&["standalone", "-f", "x.yaml"]) else {
            panic!("not standalone")
        };
        let parsed = StandaloneConfig::from(*args);
        assert_eq!(parsed.reload_interval, standalone::RELOAD_INTERVAL);
        assert_eq!(
            format!("{:?}", parsed.engine),
            format!("{:?}", EngineConfig::default())
        );
    }

    #[test]
    fn a_location_is_a_dns_label() {
        let Command::Standalone(args) = parse(&["standalone", "-f", "x", "--location", "eu-west"])
        else {
            panic!("not standalone")
        };
        let config = StandaloneConfig::from(*args);
        assert_eq!(config.engine.location.as_deref(), Some("eu-west"));
        for bad in ["EU", "eu_west", "-eu", ""] {
            let flag = format!("--location={bad}");
            let argv = ["canary", "standalone", "-f", "x", flag.as_str()];
            let error = Cli::try_parse_from(argv).err().map(|e| e.to_string());
            assert!(error.is_some_and(|e| e.contains("DNS label")), "{bad:?}");
        }
    }

    #[test]
    fn prometheus_flags_reach_the_page_and_need_an_http_url() {
        let argv = [
            "operator",
            "--prometheus-url=https://prom.monitoring:9090/x",
            "--prometheus-bearer-token-file=/t",
            "--prometheus-ca-file=/ca.crt",
            "--prometheus-cache-ttl=1m",
        ];
        let Command::Operator(args) = parse(&argv) else {
            panic!("not the operator")
        };
        let config = args.into_config().unwrap().engine.admin.prometheus.unwrap();
        assert_eq!(config.url.as_str(), "https://prom.monitoring:9090/x");
        assert_eq!(config.token_file, Some("/t".into()));
        assert_eq!(config.ca_file, Some("/ca.crt".into()));
        assert_eq!(config.cache_ttl, std::time::Duration::from_secs(60));
        for bad in [
            &["--prometheus-url=ftp://prom"][..],
            &["--prometheus-url=prom:9090"],
            &["--prometheus-ca-file=/ca.crt"],
        ] {
            let argv = [&["canary", "standalone", "-f", "x"][..], bad].concat();
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sharding_and_leader_elect_must_agree() {
        let Command::Operator(args) = parse(&["operator", "--leader-elect"]) else {
            panic!("not the operator")
        };
        assert_eq!(
            args.into_config().unwrap().leader.sharding,
            Sharding::Leader
        );
        let Command::Operator(args) = parse(&["operator", "--leader-elect", "--sharding=shards"])
        else {
            panic!("not the operator")
        };
        let error = args.into_config().unwrap_err();
        assert!(error.contains("drop one of them"), "{error}");
    }

    #[test]
    fn a_spoke_needs_a_location() {
        let operator = |argv: &[&str]| match parse(argv) {
            Command::Operator(args) => args.into_config(),
            _ => panic!("not the operator"),
        };
        let error = operator(&["operator", "--hub-kubeconfig", "/hub"]).unwrap_err();
        assert!(
            error.contains("--hub-kubeconfig needs --location"),
            "{error}"
        );
        let argv = [
            "operator",
            "--hub-kubeconfig",
            "/hub",
            "--location",
            "eu-west",
        ];
        let config = operator(&argv).unwrap();
        assert_eq!(config.hub_kubeconfig, Some("/hub".into()));
        assert_eq!(operator(&["operator"]).unwrap().hub_kubeconfig, None);
    }

    #[test]
    fn durations_and_addresses_parse_and_print_back() {
        for text in ["500ms", "30s", "5m", "1h30m"] {
            assert_eq!(text.parse::<DurationFlag>().unwrap().to_string(), text);
        }
        assert!("5 minutes".parse::<DurationFlag>().is_err());
        let Command::Operator(args) = parse(&["operator", "--ui-bind-address="]) else {
            panic!("not the operator")
        };
        assert_eq!(
            args.into_config().unwrap().engine.admin.ui_bind_address,
            None
        );
    }

    /// Forwarding is off unless asked; when asked, its key file must hold 32 bytes or more.
    #[test]
    fn ui_forward_is_off_by_default_and_its_key_file_must_be_readable_and_long() {
        let config = |extra: &[&str]| {
            let args = [&["operator", "--sharding=shards"], extra].concat();
            let Command::Operator(args) = parse(&args) else {
                panic!("not the operator")
            };
            args.into_config().map(|c| c.leader)
        };
        let off = config(&[]).unwrap();
        assert!(!off.ui_forward && off.ui_forward_key.is_none());
        let dir = tempfile::tempdir().unwrap();
        let (long, short) = (dir.path().join("long"), dir.path().join("short"));
        std::fs::write(&long, "k".repeat(32)).unwrap();
        std::fs::write(&short, "k".repeat(31)).unwrap();
        let (long, short) = (long.to_str().unwrap(), short.to_str().unwrap());
        let on = config(&["--ui-forward", "--ui-forward-key-file", long]).unwrap();
        assert!(on.ui_forward && on.ui_forward_key.is_some());
        let unasked = config(&["--ui-forward-key-file", long]).unwrap();
        assert!(
            unasked.ui_forward_key.is_none(),
            "a key alone turns nothing on"
        );
        let keyless = config(&["--ui-forward"]).unwrap();
        assert!(keyless.ui_forward && keyless.ui_forward_key.is_none());
        let error = config(&["--ui-forward", "--ui-forward-key-file", short]).unwrap_err();
        assert!(error.contains("fewer than the 32"), "{error}");
        let missing = dir.path().join("missing");
        let error = config(&[
            "--ui-forward",
            "--ui-forward-key-file",
            missing.to_str().unwrap(),
        ]);
        assert!(error.unwrap_err().contains("reading the forwarding key"));
    }
}
