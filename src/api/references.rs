//! The Secrets and ConfigMaps a spec refers to, so the operator can fetch exactly those (by
//! name, in the HealthCheck's namespace) before building the check.

use super::spec::{HealthCheckSpec, ValueSource};

/// Which kind of object a reference points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReferenceKind {
    Secret,
    ConfigMap,
}

/// One object a spec reads, by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    pub kind: ReferenceKind,
    pub name: String,
}

fn from_source(source: &ValueSource) -> Option<Reference> {
    match (&source.secret_key_ref, &source.config_map_key_ref) {
        (Some(r), _) => Some(Reference {
            kind: ReferenceKind::Secret,
            name: r.name.clone(),
        }),
        (None, Some(r)) => Some(Reference {
            kind: ReferenceKind::ConfigMap,
            name: r.name.clone(),
        }),
        (None, None) => None,
    }
}

/// Every object `spec` reads, sorted and without duplicates.
pub fn references(spec: &HealthCheckSpec) -> Vec<Reference> {
    let mut refs: Vec<Reference> = Vec::new();
    if let Some(http) = &spec.http {
        refs.extend(
            http.headers
                .iter()
                .filter_map(|h| h.value_from.as_ref().and_then(from_source)),
        );
    }
    if let Some(policy) = &spec.tls_policy {
        refs.extend(policy.ca_bundle.as_ref().and_then(from_source));
        if let Some(client) = &policy.client_certificate {
            refs.push(Reference {
                kind: ReferenceKind::Secret,
                name: client.secret_name.clone(),
            });
        }
    }
    refs.sort();
    refs.dedup();
    refs
}
