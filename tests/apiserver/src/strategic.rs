//! A subset of strategic merge patch: maps merge, `null` deletes, well-known lists merge by key,
//! `$patch: replace|delete` directives, `$deleteFromPrimitiveList/…`; `$setElementOrder/…` and
//! `$retainKeys` are accepted and ignored.

use serde_json::{Map, Value};

/// A malformed strategic merge patch.
#[derive(Debug, thiserror::Error)]
pub enum StrategicError {
    /// The patch is not a JSON object.
    #[error("strategic merge patch must be a JSON object")]
    NotAnObject,
}

/// The merge key of a list field, by field name and the shape of its items.
pub fn merge_key(field: &str, sample: Option<&Value>) -> Option<&'static str> {
    let has = |k: &str| sample.is_some_and(|s| s.get(k).is_some());
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" | "volumeDevices" => Some("mountPath"),
        "ports" if has("containerPort") => Some("containerPort"),
        "ports" => Some("port"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        _ => None,
    }
}

/// Lists of scalars merged as sets.
fn is_set_list(field: &str) -> bool {
    field == "finalizers"
}

/// Applies a strategic merge patch to `target`.
pub fn apply(target: &mut Value, patch: &Value) -> Result<(), StrategicError> {
    let patch = patch.as_object().ok_or(StrategicError::NotAnObject)?;
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Some(map) = target.as_object_mut() {
        merge_map(map, patch);
    }
    Ok(())
}

fn merge_map(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = patch.clone();
        target.remove("$patch");
        return;
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(remove)) =
                (target.get_mut(field), value.as_array())
            {
                items.retain(|i| !remove.contains(i));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(p) => match target.get_mut(key) {
                Some(Value::Object(t)) => merge_map(t, p),
                _ => {
                    let mut fresh = Map::new();
                    merge_map(&mut fresh, p);
                    target.insert(key.clone(), Value::Object(fresh));
                }
            },
            Value::Array(items) => merge_list_field(target, key, items),
            scalar => {
                target.insert(key.clone(), scalar.clone());
            }
        }
    }
}

fn merge_list_field(target: &mut Map<String, Value>, key: &str, items: &[Value]) {
    let existing = match target.get_mut(key) {
        Some(Value::Array(existing)) => existing,
        _ => {
            let cleaned: Vec<Value> = items
                .iter()
                .filter(|i| !is_directive(i))
                .cloned()
                .map(strip_directives)
                .collect();
            target.insert(key.to_string(), Value::Array(cleaned));
            return;
        }
    };
    if is_set_list(key) {
        for item in items {
            if !existing.contains(item) {
                existing.push(item.clone());
            }
        }
        return;
    }
    let Some(merge_key) = merge_key(key, items.first().or(existing.first())) else {
        *existing = items.to_vec();
        return;
    };
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *existing = items.iter().filter(|i| !is_directive(i)).cloned().collect();
        return;
    }
    for item in items {
        merge_list_item(existing, merge_key, item);
    }
}

fn is_directive(item: &Value) -> bool {
    item.get("$patch").is_some()
}

fn strip_directives(item: Value) -> Value {
    match item {
        Value::Object(mut m) => {
            m.retain(|k, _| !k.starts_with('$'));
            Value::Object(m)
        }
        other => other,
    }
}

fn merge_list_item(existing: &mut Vec<Value>, merge_key: &str, item: &Value) {
    let Some(key_value) = item.get(merge_key) else {
        existing.push(item.clone());
        return;
    };
    let pos = existing
        .iter()
        .position(|e| e.get(merge_key) == Some(key_value));
    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
    match (pos, delete) {
        (Some(i), true) => {
            existing.remove(i);
        }
        (None, true) => {}
        (Some(i), false) => {
            if let (Some(t), Some(p)) = (existing[i].as_object_mut(), item.as_object()) {
                merge_map(t, p);
            }
        }
        (None, false) => existing.push(strip_directives(item.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name_and_env_by_name() {
        let mut dep = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]}]}}}});
        apply(&mut dep, &patch).expect("patch");
        let containers = &dep["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "a:2");
        assert_eq!(containers[0]["env"].as_array().map(Vec::len), Some(2));
        assert_eq!(containers[1]["image"], "b:1");
    }

    #[test]
    fn null_deletes_and_patch_delete_removes_items() {
        let mut obj = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]},
            "spec": {"ports": [{"port": 80}, {"port": 81}]}});
        let patch = json!({"metadata": {"labels": {"a": null}, "$deleteFromPrimitiveList/finalizers": ["x"]},
            "spec": {"ports": [{"port": 81, "$patch": "delete"}]}});
        apply(&mut obj, &patch).expect("patch");
        assert_eq!(obj["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(obj["metadata"]["finalizers"], json!(["y"]));
        assert_eq!(obj["spec"]["ports"], json!([{"port": 80}]));
    }

    #[test]
    fn lists_without_key_are_replaced() {
        let mut obj = json!({"spec": {"args": ["a", "b"]}});
        apply(&mut obj, &json!({"spec": {"args": ["c"]}})).expect("patch");
        assert_eq!(obj["spec"]["args"], json!(["c"]));
    }
}
