//! Writes: create, update (PUT), patch and the common commit step.

use crate::apply;
use crate::error::ApiError;
use crate::meta;
use crate::state::Target;
use crate::store::Store;
use serde_json::{Value, json};

/// Per-request options for writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    /// Field manager recorded in managedFields.
    pub manager: String,
    /// Whether `force` was set (server-side apply).
    pub force: bool,
    /// Whether custom resources are validated.
    pub validate: bool,
}

/// Patch content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// RFC 6902.
    Json,
    /// RFC 7386.
    Merge,
    /// Strategic merge patch.
    Strategic,
    /// Server-side apply.
    Apply,
}

impl PatchKind {
    /// From the request's Content-Type.
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Self::Apply),
            other => Err(ApiError::unsupported_media(other)),
        }
    }
}

fn check_namespace(store: &Store, t: &Target) -> Result<(), ApiError> {
    if t.rt.namespaced && store.get("namespaces", "", &t.namespace).is_none() {
        return Err(ApiError::not_found("", "namespaces", &t.namespace));
    }
    Ok(())
}

/// Sets kind, apiVersion, name and namespace, rejecting a body that names another namespace.
fn normalize(t: &Target, object: &mut Value) -> Result<(), ApiError> {
    if !object.is_object() {
        return Err(ApiError::bad_request("the body of the request must be a JSON object"));
    }
    object["apiVersion"] = json!(t.api_version());
    object["kind"] = json!(t.rt.kind);
    let md = meta::metadata_mut(object);
    if t.rt.namespaced {
        match md.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != t.namespace => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                md.insert("namespace".into(), json!(t.namespace));
            }
        }
    } else {
        md.remove("namespace");
    }
    Ok(())
}

/// Validates, stamps metadata and stores `new`, which replaces `old`. Returns the stored object.
pub fn commit(store: &mut Store, t: &Target, old: Option<&Value>, mut new: Value, opts: &WriteOpts, record: bool) -> Result<Value, ApiError> {
    normalize(t, &mut new)?;
    let name = meta::name_of(&new).to_string();
    if name.is_empty() {
        let err = crate::error::FieldError::required("metadata.name");
        return Err(ApiError::invalid(&t.rt.group, &t.rt.kind, "", &[err]));
    }
    new = crate::crd::prepare(store, t, old, new, opts.validate)?;
    let md = meta::metadata_mut(&mut new);
    let keep = ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"];
    for key in keep {
        match old.and_then(|o| o["metadata"].get(key)) {
            Some(v) => md.insert(key.into(), v.clone()),
            None => md.remove(key),
        };
    }
    md.entry("uid").or_insert_with(|| json!(meta::new_uid()));
    md.entry("creationTimestamp").or_insert_with(|| json!(meta::now()));
    if t.rt.status_subresource || t.rt.crd.is_some() {
        let generation = meta::next_generation(old, &new, t.rt.status_subresource);
        meta::metadata_mut(&mut new).insert("generation".into(), json!(generation));
    }
    if record {
        apply::record_update(old, &mut new, &opts.manager, &t.api_version());
    }
    let rv = store.next_rv();
    meta::metadata_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
    let finalizers_done = new["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty);
    if new["metadata"]["deletionTimestamp"].is_string() && finalizers_done {
        crate::delete::remove_now(store, &t.rt, new.clone(), rv);
    } else {
        store.put(&t.rt.id(), &t.namespace, &name, new.clone(), rv);
        crate::crd::after_write(store, t, &new);
    }
    Ok(new)
}

/// Keeps the parts a write may not change: `.status` for the main resource, all but `.status` for `/status`.
fn split_status(t: &Target, old: Option<&Value>, mut new: Value) -> Value {
    if !t.rt.status_subresource {
        return new;
    }
    if t.is_status() {
        let mut base = old.cloned().unwrap_or_default();
        base["status"] = new.get("status").cloned().unwrap_or(Value::Null);
        if let (Some(rv), Some(md)) = (new["metadata"].get("resourceVersion").cloned(), base["metadata"].as_object_mut()) {
            md.insert("resourceVersion".into(), rv);
        }
        return base;
    }
    let map = new.as_object_mut();
    match (old.and_then(|o| o.get("status")), map) {
        (Some(status), Some(map)) => {
            map.insert("status".into(), status.clone());
        }
        (None, Some(map)) => {
            map.remove("status");
        }
        _ => {}
    }
    new
}

/// POST to a collection.
pub fn create(store: &mut Store, t: &Target, mut body: Value, opts: &WriteOpts) -> Result<Value, ApiError> {
    check_namespace(store, t)?;
    let md = meta::metadata_mut(&mut body);
    if md.get("name").and_then(Value::as_str).is_none_or(str::is_empty)
        && let Some(prefix) = md.get("generateName").and_then(Value::as_str)
    {
        let name = format!("{prefix}{}", meta::name_suffix());
        md.insert("name".into(), json!(name));
    }
    for key in ["resourceVersion", "uid", "creationTimestamp", "deletionTimestamp", "generation"] {
        md.remove(key);
    }
    let name = meta::name_of(&body).to_string();
    if store.get(&t.rt.id(), &t.namespace, &name).is_some() {
        return Err(ApiError::already_exists(&t.rt.group, &t.rt.plural, &name));
    }
    let body = split_status(t, None, body);
    commit(store, t, None, body, opts, true)
}

/// PUT to an object or its status.
pub fn update(store: &mut Store, t: &Target, body: Value, opts: &WriteOpts) -> Result<Value, ApiError> {
    let name = t.name()?.to_string();
    if meta::name_of(&body) != name {
        return Err(ApiError::bad_request("the name of the object does not match the name on the URL"));
    }
    let old = store.get(&t.rt.id(), &t.namespace, &name).cloned().ok_or_else(|| t.not_found(&name))?;
    if let Some(rv) = meta::rv_of(&body)
        && Some(rv) != meta::rv_of(&old)
    {
        let why = "the object has been modified; please apply your changes to the latest version and try again";
        return Err(ApiError::conflict(&t.rt.group, &t.rt.plural, &name, why));
    }
    let new = split_status(t, Some(&old), body);
    commit(store, t, Some(&old), new, opts, true)
}

fn parse_body(kind: PatchKind, body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(e) if kind != PatchKind::Apply => Err(ApiError::bad_request(format!("invalid JSON patch: {e}"))),
        Err(_) => {
            let text = std::str::from_utf8(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            serde_saphyr::from_str(text).map_err(|e| ApiError::bad_request(format!("invalid YAML: {e}")))
        }
    }
}

fn patched(t: &Target, kind: PatchKind, old: &Value, patch: &Value, opts: &WriteOpts) -> Result<Value, ApiError> {
    let mut doc = old.clone();
    match kind {
        PatchKind::Merge => json_patch::merge(&mut doc, patch),
        PatchKind::Json => {
            let ops: json_patch::Patch =
                serde_json::from_value(patch.clone()).map_err(|e| ApiError::bad_request(e.to_string()))?;
            json_patch::patch(&mut doc, &ops).map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
        PatchKind::Strategic if t.rt.crd.is_some() => {
            return Err(ApiError::unsupported_media("application/strategic-merge-patch+json"));
        }
        PatchKind::Strategic => {
            crate::strategic::apply(&mut doc, patch).map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
        PatchKind::Apply => {
            doc = apply::server_side_apply(old, patch, &opts.manager, opts.force, &t.api_version())
                .map_err(|apply::ApplyError::Conflicts(c)| ApiError::apply_conflict(&c))?;
        }
    }
    Ok(doc)
}

/// PATCH to an object or its status; server-side apply creates missing objects.
pub fn patch(store: &mut Store, t: &Target, kind: PatchKind, body: &[u8], opts: &WriteOpts) -> Result<Value, ApiError> {
    let name = t.name()?.to_string();
    let patch = parse_body(kind, body)?;
    let old = store.get(&t.rt.id(), &t.namespace, &name).cloned();
    let Some(old) = old else {
        if kind != PatchKind::Apply || t.is_status() {
            return Err(t.not_found(&name));
        }
        check_namespace(store, t)?;
        let mut new = patched(t, kind, &json!({}), &patch, opts)?;
        meta::metadata_mut(&mut new).insert("name".into(), json!(name));
        let new = split_status(t, None, new);
        return commit(store, t, None, new, opts, false);
    };
    let mut new = patched(t, kind, &old, &patch, opts)?;
    if let Some(rv) = meta::rv_of(&patch)
        && Some(rv) != meta::rv_of(&old)
    {
        let why = "the object has been modified; please apply your changes to the latest version and try again";
        return Err(ApiError::conflict(&t.rt.group, &t.rt.plural, &name, why));
    }
    meta::metadata_mut(&mut new).insert("name".into(), json!(name));
    let new = split_status(t, Some(&old), new);
    commit(store, t, Some(&old), new, opts, kind != PatchKind::Apply)
}
