//! The probe engine without Kubernetes: specs from JSON, Secrets and ConfigMaps held in memory,
//! and one probe run.

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
    /// With `key` of Secret `name` holding `value`.
    pub fn secret(mut self, name: &str, key: &str, value: impl Into<Vec<u8>>) -> Self {
        self.secrets.insert((name.into(), key.into()), value.into());
        self
    }

    /// With `key` of ConfigMap `name` holding `value`.
    pub fn config_map(mut self, name: &str, key: &str, value: impl Into<Vec<u8>>) -> Self {
        (self.config_maps).insert((name.into(), key.into()), value.into());
        self
    }
}

impl ReferenceSource for MapRefs {
    fn read(&self, value: &ValueRef) -> Result<Vec<u8>, ReferenceError> {
        let map = match value.object.kind {
            ReferenceKind::Secret => &self.secrets,
            ReferenceKind::ConfigMap => &self.config_maps,
        };
        (map.get(&(value.object.name.clone(), value.key.clone()))
            .cloned())
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
