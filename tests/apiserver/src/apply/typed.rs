//! What structured-merge-diff reports when kube converts a server-side apply body to a typed
//! object (`typeConverter.ObjectToTyped`, before any pruning): a field the schema does not
//! declare is `.status.probedBy: field not declared in schema`, and kube answers the apply with
//! HTTP 500 (kubernetes#139253). smd stops looking in a map at its first undeclared field (in
//! Go's random map order; here in name order).

use serde_json::{Value, json};

/// `ObjectMeta`'s fields, which every kind's schema declares.
const OBJECT_META: [&str; 16] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "clusterName",
];

/// smd's errors for `body` against a CRD's `schema`, in smd's notation
/// (`.spec.targets[name="a"].weight: field not declared in schema`).
pub fn errors(schema: &Value, body: &Value) -> Vec<String> {
    let mut out = vec![];
    let Some(map) = body.as_object() else {
        return out;
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let path = format!(".{key}");
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => metadata(&map[key], &mut out),
            _ => match child(schema, key) {
                Some(node) => walk(node, &map[key], &path, &mut out),
                None => {
                    out.push(undeclared(&path));
                    break;
                }
            },
        }
    }
    out
}

fn undeclared(path: &str) -> String {
    format!("{path}: field not declared in schema")
}

fn metadata(meta: &Value, out: &mut Vec<String>) {
    let mut keys: Vec<&String> = meta
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .collect();
    keys.sort();
    if let Some(bad) = keys
        .into_iter()
        .find(|k| !OBJECT_META.contains(&k.as_str()))
    {
        out.push(undeclared(&format!(".metadata.{bad}")));
    }
}

/// The schema of field `key` of an object node; `Some(&true)` for anything it accepts.
fn child<'a>(node: &'a Value, key: &str) -> Option<&'a Value> {
    static ANY: Value = Value::Bool(true);
    if let Some(prop) = node["properties"].get(key) {
        return Some(prop);
    }
    match node.get("additionalProperties") {
        Some(extra @ Value::Object(_)) => Some(extra),
        Some(Value::Bool(true)) => Some(&ANY),
        _ if node["x-kubernetes-preserve-unknown-fields"] == json!(true) => Some(&ANY),
        _ if node["x-kubernetes-embedded-resource"] == json!(true)
            && matches!(key, "apiVersion" | "kind" | "metadata") =>
        {
            Some(&ANY)
        }
        _ => None,
    }
}

fn walk(node: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    if !node.is_object() || node["x-kubernetes-int-or-string"] == json!(true) {
        return;
    }
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for key in keys {
                let at = format!("{path}.{key}");
                match child(node, key) {
                    Some(sub) => walk(sub, &map[key], &at, out),
                    None => return out.push(undeclared(&at)),
                }
            }
        }
        Value::Array(items) => list(node, items, path, out),
        _ => {}
    }
}

fn list(node: &Value, items: &[Value], path: &str, out: &mut Vec<String>) {
    let Some(item_node) = node.get("items") else {
        return;
    };
    let keys: Vec<&str> = (node["x-kubernetes-list-map-keys"]
        .as_array()
        .into_iter()
        .flatten())
    .filter_map(Value::as_str)
    .collect();
    let mut seen = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let element = match node["x-kubernetes-list-type"].as_str() {
            Some("map") => match key_element(item, &keys) {
                Ok(element) => element,
                Err(why) => return out.push(format!("{path}: element {i}: {why}")),
            },
            Some("set") => format!("[={item}]"),
            _ => format!("[{i}]"),
        };
        if seen.contains(&element) {
            out.push(format!("{path}: duplicate entries for key {element}"));
        }
        walk(item_node, item, &format!("{path}{element}"), out);
        seen.push(element);
    }
}

/// smd's path element of a list-map item: `[type="Ready"]`, keys in the declared order.
fn key_element(item: &Value, keys: &[&str]) -> Result<String, String> {
    if !item.is_object() {
        return Err("associative list with keys may not have non-map elements".into());
    }
    let mut parts = vec![];
    for key in keys {
        match item.get(*key) {
            Some(v) => parts.push(format!("{key}={v}")),
            None => {
                return Err(format!(
                    "associative list with keys has an element that omits key field {key}"
                ));
            }
        }
    }
    Ok(format!("[{}]", parts.join(",")))
}

/// smd's `ValidationErrors` text: one error as it is, several as an indented list.
pub fn message(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("errors:\n  {}", many.join("\n  ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "targets": {"type": "array", "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "port": {"x-kubernetes-int-or-string": true}}},
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}})
    }

    #[test]
    fn undeclared_fields_are_named_in_smd_notation() {
        let body = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"labels": {"any": "x"}, "extra": {"free": {"deep": 1}}, "port": 80,
                "targets": [{"name": "a", "weight": 1}]},
            "status": {"ready": true, "probedBy": "me"}});
        assert_eq!(
            errors(&schema(), &body),
            vec![
                ".spec.targets[name=\"a\"].weight: field not declared in schema",
                ".status.probedBy: field not declared in schema",
            ]
        );
        let many = message(&errors(&schema(), &body));
        assert!(many.starts_with("errors:\n  .spec.targets"), "{many}");
        assert_eq!(
            errors(&schema(), &json!({"metadata": {"bogus": 1}, "other": {}})),
            vec![
                ".metadata.bogus: field not declared in schema",
                ".other: field not declared in schema"
            ]
        );
    }

    #[test]
    fn list_maps_need_their_keys() {
        let body = json!({"spec": {"targets": [{"name": "a"}, {"weight": 2}]}});
        assert_eq!(
            errors(&schema(), &body),
            vec![
                ".spec.targets: element 1: associative list with keys has an element that omits key field name"
            ]
        );
        let dup = json!({"spec": {"targets": [{"name": "a"}, {"name": "a"}]}});
        assert_eq!(
            errors(&schema(), &dup),
            vec![".spec.targets: duplicate entries for key [name=\"a\"]"]
        );
    }
}
