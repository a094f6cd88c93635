//! Server-side apply and `managedFields` bookkeeping, modelled on structured-merge-diff.
//!
//! Ownership: a manager owns the members of its field set (see [`fields`]): scalars, atomic
//! lists, empty maps and the items of list-maps and sets, so two managers can own different
//! items (or different fields of one item) of `status.conditions`. Applying takes ownership of
//! the applied members; a member another manager owns with a different live value is a conflict
//! unless `force`. A member the applier owned before and omits now is removed (a list item with
//! all its fields) unless another *applier* still applies it; owners by update do not keep it
//! (smd's `prune`). Other writes (create/update/patch) give their manager an `Update` entry for
//! the members they added or changed.
//!
//! Before merging, the body is checked as kube's field manager checks it: its apiVersion and
//! kind must be the URL's, it may not carry `managedFields`, and (custom resources) every field
//! must be declared in the CRD's schema ([`typed`]).

mod fields;
mod merge;
mod shape;
mod typed;

use crate::error::ApiError;
use crate::state::Target;
use fields::{Member, Path, field_set, value_at};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

use fields::remove_at;
use shape::Shape;

/// Server-side apply failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Other managers own fields with different values: (manager, apiVersion, field) triples.
    #[error("apply conflicts: {0:?}")]
    Conflicts(Vec<(String, String, String)>),
}

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: String,
    fields: BTreeSet<Path>,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

/// The shape (list types) of the objects `t` addresses.
pub fn shape_of(t: &Target) -> Shape<'_> {
    let schema =
        (t.rt.crd.as_deref()).and_then(|crd| crate::schema::version_schema(crd, &t.version));
    Shape::new(schema)
}

/// kube's checks of an apply body before it is merged: apiVersion and kind of the URL (400),
/// no `managedFields` (400), and for custom resources (when validating) every field declared in
/// the schema (500, as kube answers it: an error that is not a `Status`).
pub fn check_body(t: &Target, body: &Value, validate: bool) -> Result<(), ApiError> {
    let api_version = body["apiVersion"].as_str().unwrap_or_default();
    let kind = body["kind"].as_str().unwrap_or_default();
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) if !v.contains('/') => (g, v),
        Some(_) => ("", ""),
        None => ("", api_version),
    };
    // Go's GroupVersionKind.String().
    let gvk = format!("{group}/{version}, Kind={kind}");
    if (group, version, kind) != (t.rt.group.as_str(), t.version.as_str(), t.rt.kind.as_str()) {
        return Err(ApiError::bad_request(format!("invalid object type: {gvk}")));
    }
    if !body["metadata"]["managedFields"].is_null() {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    let Some(schema) = shape_of(t).schema().filter(|_| validate) else {
        return Ok(());
    };
    let errors = typed::errors(schema, body);
    if errors.is_empty() {
        return Ok(());
    }
    // `objectGVKNN` of the body: its namespace and name (often empty in a status apply).
    let meta = &body["metadata"];
    let (ns, name) = (meta["namespace"].as_str(), meta["name"].as_str());
    Err(ApiError::internal(format!(
        "failed to create typed patch object ({}/{}; {gvk}): {}",
        ns.unwrap_or_default(),
        name.unwrap_or_default(),
        typed::message(&errors),
    )))
}

fn read_entries(object: &Value) -> Vec<Entry> {
    let Some(list) = object["metadata"]["managedFields"].as_array() else {
        return vec![];
    };
    let text = |e: &Value, k: &str, default: &str| e[k].as_str().unwrap_or(default).to_string();
    list.iter()
        .map(|e| Entry {
            manager: text(e, "manager", ""),
            operation: text(e, "operation", "Update"),
            api_version: text(e, "apiVersion", ""),
            time: text(e, "time", ""),
            subresource: text(e, "subresource", ""),
            fields: fields::from_json(&e["fieldsV1"]),
        })
        .collect()
}

fn write_entries(object: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = (entries.into_iter())
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut entry = json!({"manager": e.manager, "operation": e.operation,
                "apiVersion": e.api_version, "time": e.time, "fieldsType": "FieldsV1",
                "fieldsV1": fields::to_json(&e.fields)});
            if !e.subresource.is_empty() {
                entry["subresource"] = json!(e.subresource);
            }
            entry
        })
        .collect();
    let md = crate::meta::metadata_mut(object);
    if list.is_empty() {
        md.remove("managedFields");
    } else {
        md.insert("managedFields".into(), Value::Array(list));
    }
}

/// Who writes: the manager, the apiVersion it writes in and the subresource (`status` or "").
#[derive(Debug, Clone)]
pub struct Writer {
    manager: String,
    api_version: String,
    subresource: String,
}

impl Writer {
    /// `manager` writing through `t`.
    pub fn new(t: &Target, manager: &str) -> Self {
        Self {
            manager: manager.to_string(),
            api_version: t.api_version(),
            subresource: t.sub.clone().unwrap_or_default(),
        }
    }
}

fn entry_index(entries: &mut Vec<Entry>, who: &Writer, operation: &str) -> usize {
    let found = (entries.iter()).position(|e| e.is(&who.manager, operation, &who.subresource));
    let idx = found.unwrap_or_else(|| {
        entries.push(Entry {
            manager: who.manager.clone(),
            operation: operation.into(),
            api_version: String::new(),
            time: String::new(),
            subresource: who.subresource.clone(),
            fields: BTreeSet::new(),
        });
        entries.len() - 1
    });
    entries[idx].time = crate::meta::now();
    entries[idx].api_version = who.api_version.clone();
    idx
}

/// The applied configuration without what the write may not change (kube's reset fields):
/// `status` on the main resource and `spec` on `/status` of a type with a status subresource.
fn configuration(applied: &Value, t: &Target) -> Value {
    let mut config = applied.clone();
    if let Some(meta) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.remove("resourceVersion");
    }
    if t.rt.status_subresource
        && let Some(map) = config.as_object_mut()
    {
        map.remove(if t.is_status() { "spec" } else { "status" });
    }
    config
}

/// Members of `config` that other managers own with another live value: conflicts, or taken
/// from them with `force`.
fn take_or_conflict(
    entries: &mut [Entry],
    live: &Value,
    config: &BTreeMap<Path, Member>,
    who: &Writer,
    force: bool,
) -> Result<(), ApplyError> {
    let mut conflicts = vec![];
    for e in (entries.iter_mut()).filter(|e| !e.is(&who.manager, "Apply", &who.subresource)) {
        for (path, member) in config.iter().filter(|(_, m)| !m.item) {
            if e.fields.contains(path) && value_at(live, path) != Some(&member.value) {
                if force {
                    e.fields.remove(path);
                } else {
                    conflicts.push((e.manager.clone(), e.api_version.clone(), smd_path(path)));
                }
            }
        }
    }
    match conflicts.is_empty() {
        true => Ok(()),
        false => Err(ApplyError::Conflicts(conflicts)),
    }
}

/// A path as kube names it in conflict messages: `.data.a`, `.status.conditions[type="Ready"].status`.
fn smd_path(path: &[String]) -> String {
    path.iter()
        .map(|token| match token.strip_prefix("f:") {
            Some(name) => format!(".{name}"),
            None => match token.strip_prefix("k:") {
                Some(keys) => {
                    let keys: BTreeMap<String, Value> =
                        serde_json::from_str(keys).unwrap_or_default();
                    let parts: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    format!("[{}]", parts.join(","))
                }
                None => format!("[={}]", token.trim_start_matches("v:")),
            },
        })
        .collect()
}

/// Applies `applied` on top of `live` (empty object for a create) as `who`.
pub fn server_side_apply(
    t: &Target,
    live: &Value,
    applied: &Value,
    who: &Writer,
    force: bool,
) -> Result<Value, ApplyError> {
    let shape = shape_of(t);
    let config = configuration(applied, t);
    let config_set = field_set(&config, &shape);
    let mut entries = read_entries(live);
    take_or_conflict(&mut entries, live, &config_set, who, force)?;
    let idx = entry_index(&mut entries, who, "Apply");
    let last = std::mem::take(&mut entries[idx].fields);
    let applied_by_others: BTreeSet<&Path> = (entries.iter())
        .filter(|e| e.operation == "Apply")
        .flat_map(|e| e.fields.iter())
        .collect();
    let mut merged = merge::merge(live, &config, &shape);
    for gone in last.iter().filter(|p| !config_set.contains_key(*p)) {
        if !applied_by_others.contains(gone) {
            remove_at(&mut merged, gone);
        }
    }
    for e in entries.iter_mut() {
        e.fields.retain(|p| value_at(&merged, p).is_some());
    }
    entries[idx].fields = config_set.into_keys().collect();
    write_entries(&mut merged, entries);
    Ok(merged)
}

/// The entries a non-apply write starts from, as kube's `decodeLiveOrNew`: the request's own
/// `managedFields` when it sends some (an empty list resets them), except on a subresource.
fn entries_for_update(old: Option<&Value>, new: &Value, subresource: &str) -> Vec<Entry> {
    let sent = &new["metadata"]["managedFields"];
    let from_old = || old.map(read_entries).unwrap_or_default();
    match sent.as_array() {
        _ if !subresource.is_empty() => from_old(),
        Some(list) if list.is_empty() || (list.len() == 1 && list[0] == json!({})) => vec![],
        Some(_) if sent != &old.map_or(Value::Null, |o| o["metadata"]["managedFields"].clone()) => {
            read_entries(new)
        }
        _ => from_old(),
    }
}

/// Records a non-apply write by `who`: it takes ownership of the members it added or changed.
pub fn record_update(t: &Target, old: Option<&Value>, new: &mut Value, who: &Writer) {
    let shape = shape_of(t);
    let mut entries = entries_for_update(old, new, &who.subresource);
    let before = old.map(|o| field_set(o, &shape)).unwrap_or_default();
    let after = field_set(new, &shape);
    let changed: BTreeSet<Path> = (after.iter())
        .filter(|(p, m)| match before.get(*p) {
            None => true,
            Some(b) => !m.item && b.value != m.value,
        })
        .map(|(p, _)| p.clone())
        .collect();
    for e in entries.iter_mut() {
        e.fields
            .retain(|p| after.contains_key(p) && !changed.contains(p));
    }
    if !changed.is_empty() {
        let idx = entry_index(&mut entries, who, "Update");
        entries[idx].fields.extend(changed);
    }
    write_entries(new, entries);
}

#[cfg(test)]
mod tests;
