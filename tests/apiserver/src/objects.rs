//! Writes: create, update (PUT) and the common commit step (validation, defaults, metadata, storage).

use crate::apply;
use crate::error::{ApiError, FieldError};
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
    /// Whether updates of custom resources ratchet validation (kube 1.30+).
    pub ratcheting: bool,
    /// Handling of unknown fields.
    pub field_validation: FieldValidation,
    /// `dryRun=All`: validate and answer, but store nothing.
    pub dry_run: bool,
    /// Warnings for the response's `Warning` headers.
    pub warnings: std::cell::RefCell<Vec<String>>,
}

/// The `fieldValidation` query parameter: what to do with unknown fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and answer with `Warning` headers (the server default).
    #[default]
    Warn,
    /// Reject the request with 400 BadRequest.
    Strict,
}

impl FieldValidation {
    /// From the query parameter.
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("Strict") => Self::Strict,
            Some("Ignore") => Self::Ignore,
            _ => Self::Warn,
        }
    }
}

/// Longest field manager name kube accepts (`FieldManagerMaxLength`).
const FIELD_MANAGER_MAX: usize = 128;

/// kube's `ValidatePatchOptions` (and the create/update variants, `apply: None`): a field
/// manager for apply, of at most 128 bytes of printable characters; `force` for apply only; a
/// known `fieldValidation`.
pub fn option_errors(
    apply: Option<bool>,
    manager: &str,
    force: bool,
    field_validation: Option<&str>,
) -> Vec<FieldError> {
    let mut errs = vec![];
    match apply {
        Some(true) if manager.is_empty() => errs.push(FieldError::new(
            "fieldManager",
            "Required value",
            "Required value: is required for apply patch".into(),
        )),
        Some(false) if force => errs.push(FieldError::new(
            "force",
            "Forbidden",
            "Forbidden: may not be specified for non-apply patch".into(),
        )),
        _ => {}
    }
    if manager.len() > FIELD_MANAGER_MAX {
        let body = format!("Too long: may not be more than {FIELD_MANAGER_MAX} bytes");
        errs.push(FieldError::new("fieldManager", "Too long", body));
    }
    if let Some((i, c)) = manager.char_indices().find(|(_, c)| c.is_control()) {
        let detail = format!("invalid character U+{:04X} (at position {i})", c as u32);
        errs.push(FieldError::invalid(
            "fieldManager",
            &json!(manager),
            &detail,
        ));
    }
    if let Some(v) = field_validation.filter(|v| !["", "Ignore", "Strict", "Warn"].contains(v)) {
        let body = format!(
            "Unsupported value: {}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
            json!(v)
        );
        errs.push(FieldError::new(
            "fieldValidation",
            "Unsupported value",
            body,
        ));
    }
    errs
}

pub(crate) fn check_namespace(store: &Store, t: &Target) -> Result<(), ApiError> {
    if t.rt.namespaced && store.get("namespaces", "", &t.namespace).is_none() {
        return Err(ApiError::not_found("", "namespaces", &t.namespace));
    }
    Ok(())
}

/// Sets kind, apiVersion, name and namespace, rejecting a body that names another namespace.
fn normalize(t: &Target, object: &mut Value) -> Result<(), ApiError> {
    if !object.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    object["apiVersion"] = json!(t.storage_api_version());
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

/// The name of `new`, which must be set and (for creates) an RFC 1123 subdomain.
fn checked_name(t: &Target, old: Option<&Value>, new: &Value) -> Result<String, ApiError> {
    let name = meta::name_of(new).to_string();
    let err = if name.is_empty() {
        crate::error::FieldError::required("metadata.name")
    } else if old.is_none() && !meta::is_dns_subdomain(&name) {
        crate::error::FieldError::invalid(
            "metadata.name",
            &json!(name),
            meta::DNS_SUBDOMAIN_MESSAGE,
        )
    } else {
        return Ok(name);
    };
    Err(ApiError::invalid(&t.rt.group, &t.rt.kind, &name, &[err]))
}

/// Server-owned metadata: kept from `old` (uid, timestamps) or assigned; generation.
fn stamp_metadata(t: &Target, old: Option<&Value>, new: &mut Value) {
    let md = meta::metadata_mut(new);
    for key in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match old.and_then(|o| o["metadata"].get(key)) {
            Some(v) => md.insert(key.into(), v.clone()),
            None => md.remove(key),
        };
    }
    md.entry("uid").or_insert_with(|| json!(meta::new_uid()));
    md.entry("creationTimestamp")
        .or_insert_with(|| json!(meta::now()));
    if t.rt.status_subresource || t.rt.crd.is_some() {
        // A `/status` write never changes generation (kube's status strategies keep it), even
        // when defaulting fills in a spec stored without defaults.
        let generation = match old {
            Some(old) if t.is_status() => old["metadata"]["generation"].as_i64().unwrap_or(1),
            _ => meta::next_generation(old, new, t.rt.status_subresource),
        };
        meta::metadata_mut(new).insert("generation".into(), json!(generation));
    }
}

/// Stores `new` under a new resourceVersion, or removes it when its finalizers are done.
fn persist(store: &mut Store, t: &Target, name: &str, mut new: Value) -> Value {
    let rv = store.next_rv();
    meta::metadata_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
    let finalizers_done = new["metadata"]["finalizers"]
        .as_array()
        .is_none_or(Vec::is_empty);
    if new["metadata"]["deletionTimestamp"].is_string() && finalizers_done {
        crate::delete::remove_now(store, &t.rt, new.clone(), rv);
    } else {
        store.put(&t.rt.storage_id(), &t.namespace, name, new.clone(), rv);
        crate::crd::after_write(store, t, &new);
    }
    new
}

/// Validates, defaults, stamps metadata and stores `new`, which replaces `old` (both in stored
/// form, see [`crate::events::to_storage`]). Returns the stored object.
pub fn commit(
    store: &mut Store,
    t: &Target,
    old: Option<&Value>,
    mut new: Value,
    opts: &WriteOpts,
    record: bool,
) -> Result<Value, ApiError> {
    normalize(t, &mut new)?;
    let name = checked_name(t, old, &new)?;
    new = crate::crd::prepare(t, old, new, opts)?;
    let errs = crate::builtins::validate(t, old, &new);
    if !errs.is_empty() {
        return Err(ApiError::invalid(&t.rt.group, &t.rt.kind, &name, &errs));
    }
    if t.rt.group.is_empty() || t.rt.group == "apps" {
        if let Some(old) = old {
            crate::defaults::carry_over(&t.rt.plural, old, &mut new);
        }
        crate::defaults::apply(&t.rt.plural, &mut new, store.rv);
    }
    stamp_metadata(t, old, &mut new);
    if record {
        apply::record_update(t, old, &mut new, &apply::Writer::new(t, &opts.manager));
    }
    match old {
        Some(old) if unchanged(old, &new) => Ok(old.clone()),
        _ if opts.dry_run => Ok(new),
        _ => Ok(persist(store, t, &name, new)),
    }
}

/// Whether a write changes nothing but bookkeeping (kube then skips it: no new resourceVersion, no event).
fn unchanged(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        let md = meta::metadata_mut(&mut v);
        md.remove("resourceVersion");
        if let Some(Value::Array(entries)) = md.get_mut("managedFields") {
            entries
                .iter_mut()
                .filter_map(Value::as_object_mut)
                .for_each(|e| drop(e.remove("time")));
        }
        v
    };
    strip(old) == strip(new)
}

/// Keeps the parts a write may not change: `.status` for the main resource, all but `.status` for `/status`.
pub(crate) fn split_status(t: &Target, old: Option<&Value>, mut new: Value) -> Value {
    if !t.rt.status_subresource {
        return new;
    }
    if t.is_status() {
        let mut base = old.cloned().unwrap_or_default();
        base["status"] = new.get("status").cloned().unwrap_or(Value::Null);
        // The precondition and the field ownership of a status write still count.
        for key in ["resourceVersion", "managedFields"] {
            if let (Some(v), Some(md)) = (
                new["metadata"].get(key).cloned(),
                base["metadata"].as_object_mut(),
            ) {
                md.insert(key.into(), v);
            }
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
pub fn create(
    store: &mut Store,
    t: &Target,
    body: Value,
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    check_namespace(store, t)?;
    let mut body = crate::events::to_storage(t, body);
    let md = meta::metadata_mut(&mut body);
    if md
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
        && let Some(prefix) = md.get("generateName").and_then(Value::as_str)
    {
        let name = format!("{prefix}{}", meta::name_suffix());
        md.insert("name".into(), json!(name));
    }
    for key in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "generation",
    ] {
        md.remove(key);
    }
    let name = meta::name_of(&body).to_string();
    if store.get(&t.rt.storage_id(), &t.namespace, &name).is_some() {
        return Err(ApiError::already_exists(&t.rt.group, &t.rt.plural, &name));
    }
    let body = split_status(t, None, body);
    commit(store, t, None, body, opts, true)
}

/// PUT to an object or its status.
pub fn update(
    store: &mut Store,
    t: &Target,
    body: Value,
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    let name = t.name()?.to_string();
    let body = crate::events::to_storage(t, body);
    if meta::name_of(&body) != name {
        return Err(ApiError::bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    let old = store
        .get(&t.rt.storage_id(), &t.namespace, &name)
        .cloned()
        .ok_or_else(|| t.not_found(&name))?;
    if let Some(rv) = meta::rv_of(&body)
        && Some(rv) != meta::rv_of(&old)
    {
        let why = "the object has been modified; please apply your changes to the latest version and try again";
        return Err(ApiError::conflict(&t.rt.group, &t.rt.plural, &name, why));
    }
    if meta::rv_of(&body).is_none() && crate::builtins::requires_resource_version(&t.rt) {
        // kube's store, for types whose strategy refuses unconditional updates.
        let body = "Invalid value: 0x0: must be specified for an update".to_string();
        let err = FieldError::new("metadata.resourceVersion", "Invalid value", body);
        return Err(ApiError::invalid(&t.rt.group, &t.rt.plural, &name, &[err]));
    }
    let new = split_status(t, Some(&old), body);
    commit(store, t, Some(&old), new, opts, true)
}
