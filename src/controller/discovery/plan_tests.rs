use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;

use super::*;
use crate::api::HealthCheck;

const UID: &str = "discovery-uid";

fn desired(name: &str, url: &str) -> HealthCheck {
    let spec = serde_json::from_value(serde_json::json!({"http": {"url": url}})).unwrap();
    let mut check = HealthCheck::new(name, spec);
    check.metadata.namespace = Some("shop".into());
    check
}

fn owner(uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "canary.dev/v1alpha1".into(),
        kind: "CheckDiscovery".into(),
        name: "web".into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

fn existing(name: &str, owners: &[&str], annotations: &[(&str, &str)]) -> ObjectMeta {
    let annotations: BTreeMap<String, String> = (annotations.iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ObjectMeta {
        name: Some(name.into()),
        uid: Some(format!("{name}-uid")),
        generation: Some(1),
        owner_references: Some(owners.iter().map(|u| owner(u)).collect()),
        annotations: Some(annotations),
        labels: Some(BTreeMap::from([(
            SOURCE_KIND_LABEL.to_string(),
            "Ingress".to_string(),
        )])),
        ..ObjectMeta::default()
    }
}

struct Case {
    policy: SyncPolicy,
    desired: Vec<HealthCheck>,
    existing: Vec<ObjectMeta>,
    applied: HashMap<String, Applied>,
    held: BTreeSet<&'static str>,
}

impl Case {
    fn new(policy: SyncPolicy) -> Self {
        Self {
            policy,
            desired: vec![],
            existing: vec![],
            applied: HashMap::new(),
            held: BTreeSet::new(),
        }
    }

    fn plan(&self) -> Plan {
        let existing: Vec<&ObjectMeta> = self.existing.iter().collect();
        plan(&Given {
            uid: UID,
            policy: self.policy,
            desired: &self.desired,
            existing: &existing,
            applied: &self.applied,
            held: &self.held,
        })
    }

    fn names(&self) -> Vec<(&'static str, String)> {
        (self.plan().actions.into_iter())
            .map(|a| match a {
                Action::Apply {
                    check,
                    create: true,
                } => ("create", check.name_any()),
                Action::Apply { check, .. } => ("update", check.name_any()),
                Action::Delete { name, .. } => ("delete", name),
                Action::Detach { name, .. } => ("detach", name),
            })
            .collect()
    }
}

#[test]
fn new_checks_are_created_and_gone_ones_pruned_under_sync_only() {
    for (policy, pruned) in [
        (SyncPolicy::Sync, true),
        (SyncPolicy::CreateUpdate, false),
        (SyncPolicy::CreateOnly, false),
    ] {
        let mut case = Case::new(policy);
        case.desired = vec![desired("ing-new", "http://new.test/")];
        case.existing = vec![existing("ing-old", &[UID], &[])];
        let mut want = vec![];
        if pruned {
            want.push(("delete", "ing-old".to_string()));
        }
        want.push(("create", "ing-new".to_string()));
        assert_eq!(case.names(), want, "{policy:?}");
    }
}

#[test]
fn an_existing_check_is_updated_when_changed_except_under_create_only() {
    let check = desired("ing-a", "http://a.test/");
    for (policy, updated) in [
        (SyncPolicy::Sync, true),
        (SyncPolicy::CreateUpdate, true),
        (SyncPolicy::CreateOnly, false),
    ] {
        let mut case = Case::new(policy);
        case.desired = vec![check.clone()];
        case.existing = vec![existing("ing-a", &[UID], &[])];
        let want: Vec<_> = updated
            .then(|| ("update", "ing-a".to_string()))
            .into_iter()
            .collect();
        assert_eq!(case.names(), want, "{policy:?}");
        // Applied already, unchanged: nothing to write.
        let last = Applied {
            hash: hash(&check),
            generation: Some(1),
        };
        case.applied.insert("ing-a".into(), last);
        assert_eq!(case.names(), [], "{policy:?}");
        // Someone edited the spec (a higher generation): applied again, except CreateOnly.
        case.existing[0].generation = Some(2);
        assert_eq!(case.names(), want, "{policy:?}");
    }
}

#[test]
fn a_check_marked_unmanaged_is_detached_then_never_touched() {
    let mut case = Case::new(SyncPolicy::Sync);
    case.desired = vec![desired("ing-a", "http://a.test/")];
    let mut meta = existing("ing-a", &[UID, "other"], &[(MANAGED_ANNOTATION, "false")]);
    case.existing = vec![meta.clone()];
    let actions = case.plan().actions;
    let Action::Detach { name, owners } = &actions[0] else {
        panic!("{actions:?}");
    };
    assert_eq!((name.as_str(), owners.len()), ("ing-a", 1));
    assert_eq!(owners[0].uid, "other");
    assert_eq!(actions.len(), 1, "{actions:?}");
    // Detached: not ours any more; neither applied over nor pruned, also when not desired.
    meta.owner_references = Some(owners.clone());
    case.existing = vec![meta];
    assert_eq!(case.plan().foreign, ["ing-a"]);
    assert_eq!(case.names(), []);
    case.desired.clear();
    assert_eq!(case.names(), []);
}

#[test]
fn checks_of_a_source_kind_not_served_are_not_pruned() {
    let mut case = Case::new(SyncPolicy::Sync);
    case.existing = vec![existing("hr-a", &[UID], &[])];
    case.existing[0].labels = Some(BTreeMap::from([(
        SOURCE_KIND_LABEL.to_string(),
        "HTTPRoute".to_string(),
    )]));
    case.held.insert("HTTPRoute");
    assert_eq!(case.names(), []);
    case.held.clear();
    assert_eq!(case.names(), [("delete", "hr-a".to_string())]);
}

#[test]
fn checks_of_another_discovery_are_left_alone() {
    let mut case = Case::new(SyncPolicy::Sync);
    case.existing = vec![existing("ing-b", &["another"], &[])];
    assert_eq!(case.names(), []);
}
