//! What to write, decided without I/O: the checks a discovery derived against the HealthChecks
//! that exist in its namespace, under its policy. A check is the discovery's when its
//! controller ownerReference names the discovery's uid; one carrying `canary.dev/managed:
//! "false"` is detached (ownerReference and discovery labels removed) and from then on looks
//! like any check that is not the discovery's: never applied over, never pruned.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{ResourceExt, api::ObjectMeta};

use crate::{
    api::{HealthCheck, SyncPolicy},
    discovery::SOURCE_KIND_LABEL,
};

/// The annotation that detaches a generated check.
pub const MANAGED_ANNOTATION: &str = "canary.dev/managed";

/// What was last applied of a check: the hash of the applied object, and the generation the
/// API server answered (a higher one means someone else changed the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Applied {
    pub hash: u64,
    pub generation: Option<i64>,
}

/// One write.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Action {
    /// Create, or update what changed (server-side apply).
    Apply {
        check: Box<HealthCheck>,
        create: bool,
    },
    /// Prune: the source, host or opt-in is gone (`Sync` only).
    Delete { name: String, uid: String },
    /// `canary.dev/managed: "false"`: keep these ownerReferences, drop the discovery labels.
    Detach {
        name: String,
        owners: Vec<OwnerReference>,
    },
}

/// What one discovery's generated checks need.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Plan {
    pub actions: Vec<Action>,
    /// Desired names held by a check that is not the discovery's (detached, or hand-made).
    pub foreign: Vec<String>,
}

/// What the plan is decided from.
pub(super) struct Given<'a> {
    pub uid: &'a str,
    pub policy: SyncPolicy,
    pub desired: &'a [HealthCheck],
    /// Metadata of every HealthCheck in the namespace.
    pub existing: &'a [&'a ObjectMeta],
    pub applied: &'a HashMap<String, Applied>,
    /// Source kinds whose API is not served: their checks are not pruned.
    pub held: &'a BTreeSet<&'static str>,
}

/// The hash that says whether a check changed since it was last applied.
pub(super) fn hash(check: &HealthCheck) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(check)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// Whether `meta` is the discovery `uid`'s (its controller ownerReference).
pub(super) fn owned_by(meta: &ObjectMeta, uid: &str) -> bool {
    (meta.owner_references.iter().flatten()).any(|o| o.uid == uid && o.controller == Some(true))
}

fn detached(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(MANAGED_ANNOTATION))
        .is_some_and(|v| v == "false")
}

/// The writes that bring the namespace's HealthChecks to what the discovery derived.
pub(super) fn plan(given: &Given<'_>) -> Plan {
    let by_name: HashMap<&str, &ObjectMeta> = (given.existing.iter())
        .filter_map(|m| m.name.as_deref().map(|n| (n, *m)))
        .collect();
    let mut plan = Plan::default();
    let desired: BTreeSet<String> = given.desired.iter().map(ResourceExt::name_any).collect();
    for meta in given.existing.iter().filter(|m| owned_by(m, given.uid)) {
        let name = meta.name.clone().unwrap_or_default();
        if detached(meta) {
            let owners = (meta.owner_references.iter().flatten())
                .filter(|o| o.uid != given.uid)
                .cloned()
                .collect();
            plan.actions.push(Action::Detach { name, owners });
        } else if !desired.contains(&name) && given.policy == SyncPolicy::Sync && !held(meta, given)
        {
            let uid = meta.uid.clone().unwrap_or_default();
            plan.actions.push(Action::Delete { name, uid });
        }
    }
    for check in given.desired {
        let name = check.name_any();
        let Some(meta) = by_name.get(name.as_str()) else {
            let check = Box::new(check.clone());
            plan.actions.push(Action::Apply {
                check,
                create: true,
            });
            continue;
        };
        if !owned_by(meta, given.uid) {
            plan.foreign.push(name);
        } else if !detached(meta)
            && given.policy != SyncPolicy::CreateOnly
            && stale(check, meta, given)
        {
            let check = Box::new(check.clone());
            plan.actions.push(Action::Apply {
                check,
                create: false,
            });
        }
    }
    plan
}

/// Whether the check's source kind is not served now (its checks stay).
fn held(meta: &ObjectMeta, given: &Given<'_>) -> bool {
    let kind = meta.labels.as_ref().and_then(|l| l.get(SOURCE_KIND_LABEL));
    kind.is_some_and(|k| given.held.contains(k.as_str()))
}

/// Whether the check differs from what was last applied, or was changed by someone else since.
fn stale(check: &HealthCheck, meta: &ObjectMeta, given: &Given<'_>) -> bool {
    match given.applied.get(&check.name_any()) {
        None => true,
        Some(last) => {
            last.hash != hash(check)
                || meta
                    .generation
                    .zip(last.generation)
                    .is_some_and(|(now, then)| now > then)
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
