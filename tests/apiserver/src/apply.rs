//! Simplified server-side apply and `managedFields` bookkeeping.
//!
//! Ownership model: a manager owns *leaf paths* (maps are recursed into; lists, scalars and empty
//! maps are leaves, so lists are atomic). Applying takes ownership of the applied leaves; a leaf
//! owned by another manager with a different live value is a conflict unless `force`. Leaves a
//! manager applied before but omits now are removed unless someone else owns them. Other writes
//! (create/update/patch) give their manager an `Update` entry for the leaves they changed.

use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// A leaf path: field names from the root.
pub type Path = Vec<String>;

/// Server-side apply failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Other managers own fields with different values: (manager, field) pairs.
    #[error("apply conflicts: {0:?}")]
    Conflicts(Vec<(String, String, String)>),
}

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    fields: BTreeSet<Path>,
}

fn is_tracked(path: &[String]) -> bool {
    match path {
        [] => false,
        [top, ..] if top == "apiVersion" || top == "kind" => false,
        [top, rest @ ..] if top == "metadata" => {
            matches!(
                rest.first().map(String::as_str),
                Some("labels" | "annotations" | "finalizers" | "ownerReferences")
            )
        }
        _ => true,
    }
}

/// Leaf paths with their values.
pub fn leaves(object: &Value) -> BTreeMap<Path, Value> {
    fn walk(v: &Value, path: &mut Path, out: &mut BTreeMap<Path, Value>) {
        match v {
            Value::Object(map) if !map.is_empty() => {
                for (k, child) in map {
                    path.push(k.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            other => {
                if is_tracked(path) {
                    out.insert(path.clone(), other.clone());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(object, &mut vec![], &mut out);
    out
}

fn fields_to_json(fields: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut cur = &mut root;
        for part in path {
            let next = cur.entry(format!("f:{part}")).or_insert_with(|| json!({}));
            match next.as_object_mut() {
                Some(m) => cur = m,
                None => break,
            }
        }
    }
    Value::Object(root)
}

fn fields_from_json(v: &Value) -> BTreeSet<Path> {
    fn walk(v: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
        let Some(map) = v.as_object() else { return };
        if map.is_empty() && !path.is_empty() {
            out.insert(path.clone());
        }
        for (k, child) in map {
            if let Some(name) = k.strip_prefix("f:") {
                path.push(name.to_string());
                walk(child, path, out);
                path.pop();
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut vec![], &mut out);
    out
}

fn read_entries(object: &Value) -> Vec<Entry> {
    let Some(list) = object["metadata"]["managedFields"].as_array() else {
        return vec![];
    };
    list.iter()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or_default().to_string(),
            operation: e["operation"].as_str().unwrap_or("Update").to_string(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
            time: e["time"].as_str().unwrap_or_default().to_string(),
            fields: fields_from_json(&e["fieldsV1"]),
        })
        .collect()
}

fn write_entries(object: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            json!({"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": fields_to_json(&e.fields)})
        })
        .collect();
    let md = crate::meta::metadata_mut(object);
    if list.is_empty() {
        md.remove("managedFields");
    } else {
        md.insert("managedFields".into(), Value::Array(list));
    }
}

fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(object, |cur, part| cur.get(part))
}

fn remove_at(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let parent = parents
        .iter()
        .try_fold(&mut *object, |cur, part| cur.get_mut(part));
    if let Some(Value::Object(map)) = parent {
        map.remove(last);
    }
}

fn entry_index(
    entries: &mut Vec<Entry>,
    manager: &str,
    operation: &str,
    api_version: &str,
) -> usize {
    let found = entries
        .iter()
        .position(|e| e.manager == manager && e.operation == operation);
    let idx = found.unwrap_or_else(|| {
        entries.push(Entry {
            manager: manager.into(),
            operation: operation.into(),
            api_version: api_version.into(),
            time: String::new(),
            fields: BTreeSet::new(),
        });
        entries.len() - 1
    });
    entries[idx].time = crate::meta::now();
    entries[idx].api_version = api_version.to_string();
    idx
}

/// Applies `applied` on top of `live` (empty object for a create) as `manager`.
pub fn server_side_apply(
    live: &Value,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
) -> Result<Value, ApplyError> {
    let new_leaves = leaves(applied);
    let mut entries = read_entries(live);
    let mut conflicts = vec![];
    for e in entries
        .iter_mut()
        .filter(|e| !(e.manager == manager && e.operation == "Apply"))
    {
        for (path, value) in &new_leaves {
            if e.fields.contains(path) && value_at(live, path) != Some(value) {
                if force {
                    e.fields.remove(path);
                } else {
                    conflicts.push((
                        e.manager.clone(),
                        e.api_version.clone(),
                        format!(".{}", path.join(".")),
                    ));
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(ApplyError::Conflicts(conflicts));
    }
    let idx = entry_index(&mut entries, manager, "Apply", api_version);
    let previous = std::mem::take(&mut entries[idx].fields);
    let mut merged = live.clone();
    for gone in previous.iter().filter(|p| !new_leaves.contains_key(*p)) {
        if !entries.iter().any(|e| e.fields.contains(gone)) {
            remove_at(&mut merged, gone);
        }
    }
    let mut to_merge = applied.clone();
    if let Some(meta) = to_merge.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.remove("resourceVersion");
    }
    json_patch::merge(&mut merged, &to_merge);
    entries[idx].fields = new_leaves.into_keys().collect();
    write_entries(&mut merged, entries);
    Ok(merged)
}

/// Records a non-apply write by `manager`: it takes ownership of the leaves it changed.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, api_version: &str) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let old_leaves = old.map(leaves).unwrap_or_default();
    let new_leaves = leaves(new);
    let changed: BTreeSet<Path> = new_leaves
        .iter()
        .filter(|(p, v)| old_leaves.get(*p) != Some(*v))
        .map(|(p, _)| p.clone())
        .collect();
    for e in entries.iter_mut() {
        e.fields
            .retain(|p| new_leaves.contains_key(p) && !changed.contains(p));
    }
    if !changed.is_empty() {
        let idx = entry_index(&mut entries, manager, "Update", api_version);
        entries[idx].fields.extend(changed);
    }
    write_entries(new, entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_creates_then_removes_fields_it_no_longer_applies() {
        let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let live = server_side_apply(&json!({}), &first, "me", false, "v1").expect("apply");
        assert_eq!(
            live["metadata"]["managedFields"][0]["fieldsV1"]["f:data"]["f:a"],
            json!({})
        );
        let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "3"}});
        let live = server_side_apply(&live, &second, "me", false, "v1").expect("apply");
        assert_eq!(live["data"], json!({"a": "3"}));
    }

    #[test]
    fn other_manager_conflicts_unless_forced() {
        let applied = json!({"data": {"a": "1"}});
        let live = server_side_apply(&json!({}), &applied, "one", false, "v1").expect("apply");
        let other = json!({"data": {"a": "2"}});
        match server_side_apply(&live, &other, "two", false, "v1") {
            Err(ApplyError::Conflicts(c)) => {
                assert_eq!(
                    c,
                    vec![("one".to_string(), "v1".to_string(), ".data.a".to_string())]
                )
            }
            Ok(_) => panic!("expected a conflict"),
        }
        let forced = server_side_apply(&live, &other, "two", true, "v1").expect("forced");
        assert_eq!(forced["data"]["a"], "2");
        assert_eq!(
            forced["metadata"]["managedFields"].as_array().map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn updates_take_ownership_of_changed_leaves() {
        let old = server_side_apply(&json!({}), &json!({"data": {"a": "1"}}), "one", false, "v1")
            .expect("apply");
        let mut new = old.clone();
        new["data"]["a"] = json!("9");
        record_update(Some(&old), &mut new, "editor", "v1");
        let managers: Vec<&str> = new["metadata"]["managedFields"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|e| e["manager"].as_str())
            .collect();
        assert_eq!(managers, vec!["editor"]);
    }
}
