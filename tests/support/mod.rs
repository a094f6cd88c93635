//! Shared helpers for integration tests: test PKI, loopback servers, and running a spec.
#![allow(dead_code)]

pub mod pki;
pub mod server;

use std::collections::HashMap;

use canary_operator::{
    api::{HealthCheckSpec, ReferenceKind, ValueRef, validate},
    probe::{self, Outcome, Probe, ProbeContext, ReferenceError, ReferenceSource},
};

/// Secrets and ConfigMaps held in memory, keyed by (name, key).
#[derive(Default, Clone)]
pub struct MapRefs {
    pub secrets: HashMap<(String, String), Vec<u8>>,
    pub config_maps: HashMap<(String, String), Vec<u8>>,
}

impl MapRefs {
    pub fn secret(mut self, name: &str, key: &str, value: impl Into<Vec<u8>>) -> Self {
        self.secrets.insert((name.into(), key.into()), value.into());
        self
    }

    pub fn config_map(mut self, name: &str, key: &str, value: impl Into<Vec<u8>>) -> Self {
        self.config_maps
            .insert((name.into(), key.into()), value.into());
        self
    }
}

impl ReferenceSource for MapRefs {
    fn read(&self, value: &ValueRef) -> Result<Vec<u8>, ReferenceError> {
        let map = match value.object.kind {
            ReferenceKind::Secret => &self.secrets,
            ReferenceKind::ConfigMap => &self.config_maps,
        };
        map.get(&(value.object.name.clone(), value.key.clone()))
            .cloned()
            .ok_or_else(|| ReferenceError::missing(value, false))
    }
}

/// A spec from JSON (the same shape users write in YAML).
pub fn spec(json: serde_json::Value) -> HealthCheckSpec {
    serde_json::from_value(json).expect("test spec must deserialize")
}

/// Validates and builds `spec`, which a test expects to be valid.
pub fn build(spec: &HealthCheckSpec, refs: &dyn ReferenceSource) -> Probe {
    let valid = validate(spec).expect("test spec must be valid");
    probe::build(&valid, refs).expect("test spec must build")
}

/// Builds and runs `spec` once with the default probing policy.
pub async fn probe_once(spec: &HealthCheckSpec, refs: &MapRefs) -> Outcome {
    probe::run(&build(spec, refs), &ProbeContext::default()).await
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Waits (bounded) until the open descriptor count drops to `target`, returning the last count.
pub async fn settle_fds(target: usize, deadline: std::time::Duration) -> usize {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let now = open_fds();
        if now <= target || tokio::time::Instant::now() >= until {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A TLS 1.3 server config for `localhost` signed by a fresh CA named `ca_name`.
pub fn localhost_tls(ca_name: &str) -> (pki::Ca, std::sync::Arc<rustls::ServerConfig>) {
    let ca = pki::Ca::root(ca_name);
    let leaf = ca.leaf(
        &["localhost"],
        time::Duration::days(-1),
        time::Duration::days(90),
    );
    let config = server::tls_config(
        vec![leaf.der.clone()],
        leaf.key(),
        &[&rustls::version::TLS13],
        None,
    );
    (ca, config)
}

/// User + system CPU seconds of a process (`"self"` or a pid); USER_HZ is 100 on Linux.
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(") ")
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A memory field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`) in MiB.
pub fn memory_mib(pid: &str, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    (status.lines().find(|l| l.starts_with(&format!("{field}:"))))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}
