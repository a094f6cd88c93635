//! Deletion: finalizers, namespace contents, CRD contents and ownerReference garbage collection.

use crate::error::ApiError;
use crate::meta;
use crate::registry::ResourceType;
use crate::state::Target;
use crate::store::Store;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;

/// DeleteOptions that matter here.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    /// `Orphan` keeps dependents (dropping their ownerReference); anything else deletes them.
    pub orphan: bool,
    /// Precondition on uid.
    pub uid: Option<String>,
    /// Precondition on resourceVersion.
    pub resource_version: Option<String>,
    /// `dryRun=All`: check, answer, change nothing.
    pub dry_run: bool,
}

impl DeleteOpts {
    /// From a DeleteOptions body (may be empty) and the query's `propagationPolicy`.
    pub fn parse(body: &[u8], query_policy: Option<&str>) -> Self {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let policy = v["propagationPolicy"]
            .as_str()
            .or(query_policy)
            .map(str::to_string);
        let orphan = policy.as_deref() == Some("Orphan") || v["orphanDependents"] == json!(true);
        let pre = &v["preconditions"];
        Self {
            orphan,
            uid: pre["uid"].as_str().map(str::to_string),
            resource_version: pre["resourceVersion"].as_str().map(str::to_string),
            dry_run: false,
        }
    }
}

/// DELETE of one object: marks it when it has finalizers, removes it otherwise.
pub fn delete(store: &mut Store, t: &Target, opts: &DeleteOpts) -> Result<Value, ApiError> {
    let name = t.name()?.to_string();
    let mut obj = store
        .get(&t.rt.storage_id(), &t.namespace, &name)
        .cloned()
        .ok_or_else(|| t.not_found(&name))?;
    let md = &obj["metadata"];
    let uid_mismatch = opts
        .uid
        .as_deref()
        .is_some_and(|u| md["uid"].as_str() != Some(u));
    let rv_mismatch = opts
        .resource_version
        .as_deref()
        .is_some_and(|r| md["resourceVersion"].as_str() != Some(r));
    if uid_mismatch || rv_mismatch {
        let why = "the object has been modified; please apply your changes to the latest version and try again";
        return Err(ApiError::conflict(&t.rt.group, &t.rt.plural, &name, why));
    }
    if opts.dry_run {
        return Ok(obj);
    }
    let rv = store.next_rv();
    meta::metadata_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
    let has_finalizers = obj["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if has_finalizers {
        if !obj["metadata"]["deletionTimestamp"].is_string() {
            let m = meta::metadata_mut(&mut obj);
            m.insert("deletionTimestamp".into(), json!(meta::now()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        store.put(&t.rt.storage_id(), &t.namespace, &name, obj.clone(), rv);
        return Ok(obj);
    }
    if t.rt.plural == "namespaces" {
        obj["status"] = json!({"phase": "Terminating"});
    }
    remove_now_with(store, &t.rt, obj.clone(), rv, opts.orphan);
    Ok(obj)
}

/// Removes an object whose finalizers are done, then its dependents.
pub fn remove_now(store: &mut Store, rt: &Arc<ResourceType>, obj: Value, rv: u64) {
    remove_now_with(store, rt, obj, rv, false);
}

fn remove_now_with(store: &mut Store, rt: &Arc<ResourceType>, obj: Value, rv: u64, orphan: bool) {
    let (ns, name) = (
        meta::namespace_of(&obj).to_string(),
        meta::name_of(&obj).to_string(),
    );
    store.remove(&rt.storage_id(), &ns, &name, obj.clone(), rv);
    if rt.plural == "namespaces" {
        delete_namespace_contents(store, &name);
    }
    if rt.crd.is_none() && rt.plural == "customresourcedefinitions" {
        crate::crd::after_delete(store, &obj);
    }
    let uid = obj["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    collect_garbage(store, &uid, orphan);
}

fn delete_namespace_contents(store: &mut Store, namespace: &str) {
    let victims: Vec<(String, Value)> = store
        .all_objects()
        .into_iter()
        .filter(|(_, o)| meta::namespace_of(o) == namespace)
        .collect();
    for (id, obj) in victims {
        let Some(rt) = store.registry.by_id(&id) else {
            continue;
        };
        let t = Target {
            rt,
            version: String::new(),
            namespace: namespace.to_string(),
            name: Some(meta::name_of(&obj).to_string()),
            sub: None,
        };
        // Objects with finalizers stay, marked for deletion, like under a terminating namespace.
        let _ = delete(store, &t, &DeleteOpts::default());
    }
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str().map(str::to_string))
        .collect()
}

/// Background GC: dependents of `gone_uid` whose owners are all gone are deleted (or orphaned).
fn collect_garbage(store: &mut Store, gone_uid: &str, orphan: bool) {
    let all = store.all_objects();
    let live: HashSet<String> = all
        .iter()
        .filter_map(|(_, o)| o["metadata"]["uid"].as_str().map(str::to_string))
        .collect();
    for (id, obj) in all {
        let owners = owner_uids(&obj);
        if !owners.iter().any(|u| u == gone_uid) {
            continue;
        }
        let Some(rt) = store.registry.by_id(&id) else {
            continue;
        };
        let t = Target {
            rt,
            version: String::new(),
            namespace: meta::namespace_of(&obj).to_string(),
            name: Some(meta::name_of(&obj).to_string()),
            sub: None,
        };
        if orphan {
            let mut new = obj.clone();
            if let Some(refs) = new["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"].as_str() != Some(gone_uid));
            }
            let rv = store.next_rv();
            meta::metadata_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
            store.put(
                &t.rt.storage_id(),
                &t.namespace,
                meta::name_of(&obj),
                new,
                rv,
            );
        } else if owners.iter().all(|u| !live.contains(u)) {
            let _ = delete(store, &t, &DeleteOpts::default());
        }
    }
}

/// DELETE on a collection: deletes every listed object, returns them as a list.
pub fn delete_collection(store: &mut Store, t: &Target, items: Vec<Value>) -> Value {
    let mut deleted = vec![];
    for obj in items {
        let mut one = t.clone();
        one.namespace = meta::namespace_of(&obj).to_string();
        one.name = Some(meta::name_of(&obj).to_string());
        if let Ok(v) = delete(store, &one, &DeleteOpts::default()) {
            deleted.push(crate::list_watch::present(t, v));
        }
    }
    json!({"apiVersion": t.api_version(), "kind": format!("{}List", t.rt.kind),
        "metadata": {"resourceVersion": store.rv.to_string()}, "items": deleted})
}
