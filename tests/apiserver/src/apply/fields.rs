//! Field sets as structured-merge-diff builds them (`ToFieldSet`) and as `managedFields`
//! stores them (`fieldsV1`): a path is a list of tokens `f:<name>` (a field), `k:{...}` (an
//! item of a list-map, by its keys) and `v:<json>` (an item of a set). Scalars, empty maps,
//! nulls, atomic lists and list items are members; an item that also has members below it is
//! written with a `.` entry.

use super::shape::{ListType, Shape};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// A field path in fieldsV1 tokens, e.g. `["f:status", "f:conditions", "k:{\"type\":\"Ready\"}"]`.
pub type Path = Vec<String>;

/// A member of a field set: its value and whether it is a list item (items are compared by
/// existence only; their fields are members of their own).
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub value: Value,
    pub item: bool,
}

/// The token of field `name`.
pub fn field(name: &str) -> String {
    format!("f:{name}")
}

/// The token of a list-map item: `k:` and its key fields as a JSON object, names sorted.
pub fn key_token(item: &Value, keys: &[String]) -> Option<String> {
    let mut names: Vec<&String> = keys.iter().collect();
    names.sort();
    let mut parts = Vec::with_capacity(names.len());
    for name in names {
        let value = item.get(name.as_str())?;
        parts.push(format!("{}:{value}", Value::String(name.clone())));
    }
    Some(format!("k:{{{}}}", parts.join(",")))
}

/// The token of a set item: `v:` and its JSON value.
pub fn value_token(item: &Value) -> String {
    format!("v:{item}")
}

/// The token of `item` in a list of type `list`, `None` for atomic lists (or an item without
/// its keys).
pub fn item_token(item: &Value, list: &ListType) -> Option<String> {
    match list {
        ListType::Atomic => None,
        ListType::Map(keys) => key_token(item, keys),
        ListType::Set => Some(value_token(item)),
    }
}

/// Whether server-side apply tracks ownership at `path`: not `apiVersion`, `kind` or the
/// metadata kube strips (`StripMetaManager`), only labels, annotations, finalizers and
/// ownerReferences.
fn is_tracked(path: &[String]) -> bool {
    match path {
        [] => false,
        [top, ..] if top == "f:apiVersion" || top == "f:kind" => false,
        [top, rest @ ..] if top == "f:metadata" => matches!(
            rest.first().map(String::as_str),
            Some("f:labels" | "f:annotations" | "f:finalizers" | "f:ownerReferences")
        ),
        _ => true,
    }
}

/// The field set of `object`: every member path with its value.
pub fn field_set(object: &Value, shape: &Shape) -> BTreeMap<Path, Member> {
    let mut out = BTreeMap::new();
    walk(object, shape, &mut vec![], &mut out);
    out
}

fn walk(v: &Value, shape: &Shape, path: &mut Path, out: &mut BTreeMap<Path, Member>) {
    let member = |out: &mut BTreeMap<Path, Member>, path: &Path, item: bool| {
        if is_tracked(path) {
            let value = v.clone();
            out.insert(path.clone(), Member { value, item });
        }
    };
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                path.push(field(k));
                walk(child, shape, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            // An associative list is no member of its own, not even when empty.
            let list = shape.list_type(path);
            if list == ListType::Atomic {
                return member(out, path, false);
            }
            for item in items {
                let Some(token) = item_token(item, &list) else {
                    continue;
                };
                path.push(token);
                if is_tracked(path) {
                    out.insert(
                        path.clone(),
                        Member {
                            value: item.clone(),
                            item: true,
                        },
                    );
                }
                if list != ListType::Set {
                    walk_children(item, shape, path, out);
                }
                path.pop();
            }
        }
        _ => member(out, path, false),
    }
}

/// The members below a list-map item (not the item itself).
fn walk_children(item: &Value, shape: &Shape, path: &mut Path, out: &mut BTreeMap<Path, Member>) {
    for (k, child) in item.as_object().into_iter().flatten() {
        path.push(field(k));
        walk(child, shape, path, out);
        path.pop();
    }
}

/// A field set as `fieldsV1` JSON.
pub fn to_json(fields: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut cur = &mut root;
        for token in path {
            let next = cur.entry(token.clone()).or_insert_with(|| json!({}));
            match next.as_object_mut() {
                Some(m) => cur = m,
                None => break,
            }
        }
    }
    mark_members(&mut root, fields, &mut vec![]);
    Value::Object(root)
}

/// Adds `.` to the nodes that are members and also have members below them.
fn mark_members(node: &mut Map<String, Value>, fields: &BTreeSet<Path>, path: &mut Path) {
    if !path.is_empty() && !node.is_empty() && fields.contains(path) {
        node.insert(".".into(), json!({}));
    }
    for (token, child) in node.iter_mut() {
        if let Some(child) = child.as_object_mut().filter(|_| token != ".") {
            path.push(token.clone());
            mark_members(child, fields, path);
            path.pop();
        }
    }
}

/// The paths of a `fieldsV1` object.
pub fn from_json(v: &Value) -> BTreeSet<Path> {
    fn walk(v: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
        let Some(map) = v.as_object() else { return };
        if !path.is_empty() && (map.is_empty() || map.contains_key(".")) {
            out.insert(path.clone());
        }
        for (token, child) in map.iter().filter(|(t, _)| *t != ".") {
            path.push(token.clone());
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut vec![], &mut out);
    out
}

/// Whether list item `item` is the one `token` names.
pub fn item_matches(item: &Value, token: &str) -> bool {
    if let Some(json) = token.strip_prefix("v:") {
        return serde_json::from_str::<Value>(json).is_ok_and(|v| &v == item);
    }
    let Some(json) = token.strip_prefix("k:") else {
        return false;
    };
    let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(json) else {
        return false;
    };
    keys.iter().all(|(k, v)| item.get(k) == Some(v))
}

/// The value at `path`, if present.
pub fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(object, |cur, token| match token.strip_prefix("f:") {
            Some(name) => cur.get(name),
            None => cur.as_array()?.iter().find(|i| item_matches(i, token)),
        })
}

/// Removes the value at `path` (a field, or a whole list item); a list left empty is removed
/// too, as kube drops a list emptied by server-side apply.
pub fn remove_at(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let Some(parent) =
        parents
            .iter()
            .try_fold(&mut *object, |cur, token| match token.strip_prefix("f:") {
                Some(name) => cur.get_mut(name),
                None => cur
                    .as_array_mut()?
                    .iter_mut()
                    .find(|i| item_matches(i, token)),
            })
    else {
        return;
    };
    match (last.strip_prefix("f:"), parent) {
        (Some(name), Value::Object(map)) => drop(map.remove(name)),
        (None, Value::Array(items)) => {
            items.retain(|i| !item_matches(i, last));
            if items.is_empty()
                && let Some((list, grand)) = parents.split_last()
            {
                remove_at(object, &[grand, std::slice::from_ref(list)].concat());
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conditions_schema() -> Value {
        json!({"properties": {"status": {"properties": {"conditions": {"type": "array",
            "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
            "items": {"type": "object"}}}}}})
    }

    #[test]
    fn list_map_items_are_members_with_their_fields() {
        let schema = conditions_schema();
        let shape = Shape::new(Some(&schema));
        let obj = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}], "n": 1}});
        let set = field_set(&obj, &shape);
        let paths: BTreeSet<Path> = set.keys().cloned().collect();
        let fields = to_json(&paths);
        assert_eq!(
            fields,
            json!({"f:status": {"f:n": {}, "f:conditions": {"k:{\"type\":\"Ready\"}": {
                ".": {}, "f:type": {}, "f:status": {}}}}})
        );
        assert_eq!(from_json(&fields), paths);
        let ready = set.keys().find(|p| p.len() == 3).expect("item path");
        assert_eq!(value_at(&obj, ready), Some(&obj["status"]["conditions"][0]));
    }

    #[test]
    fn removing_the_last_item_removes_the_list() {
        let mut obj = json!({"status": {"conditions": [{"type": "A"}, {"type": "B"}]}});
        let item = |t: &str| {
            vec![
                field("status"),
                field("conditions"),
                key_token(&json!({"type": t}), &["type".into()]).expect("key"),
            ]
        };
        remove_at(&mut obj, &item("A"));
        assert_eq!(obj, json!({"status": {"conditions": [{"type": "B"}]}}));
        remove_at(&mut obj, &item("B"));
        assert_eq!(obj, json!({"status": {}}));
    }
}
