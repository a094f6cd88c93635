//! Merging an applied configuration into the live object as structured-merge-diff does: maps
//! field by field, list-maps item by item (matched by their keys), sets by value, and atomic
//! lists and scalars replaced. Live items keep their order and new items follow in applied
//! order (smd's merge order). A `null` in the configuration removes the field.

use super::fields::{Path, field, item_token};
use super::shape::{ListType, Shape};
use serde_json::Value;

/// `config` merged into `live`.
pub fn merge(live: &Value, config: &Value, shape: &Shape) -> Value {
    merge_at(live, config, shape, &mut vec![])
}

fn merge_at(live: &Value, config: &Value, shape: &Shape, path: &mut Path) -> Value {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (k, cv) in c {
                if cv.is_null() {
                    out.remove(k);
                    continue;
                }
                path.push(field(k));
                let merged = match l.get(k) {
                    Some(lv) => merge_at(lv, cv, shape, path),
                    None => without_nulls(cv),
                };
                path.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => match shape.list_type(path) {
            ListType::Atomic => without_nulls(config),
            list => Value::Array(merge_items(l, c, &list, shape, path)),
        },
        _ => without_nulls(config),
    }
}

fn merge_items(
    live: &[Value],
    config: &[Value],
    list: &ListType,
    shape: &Shape,
    path: &mut Path,
) -> Vec<Value> {
    let token = |item: &Value| item_token(item, list);
    let mut out = Vec::with_capacity(live.len().max(config.len()));
    for item in live {
        let Some(t) = token(item) else {
            out.push(item.clone());
            continue;
        };
        match config.iter().find(|c| token(c).as_ref() == Some(&t)) {
            Some(c) if *list != ListType::Set => {
                path.push(t);
                out.push(merge_at(item, c, shape, path));
                path.pop();
            }
            _ => out.push(item.clone()),
        }
    }
    for c in config {
        let t = token(c);
        if t.is_none() || !live.iter().any(|l| token(l) == t) {
            out.push(without_nulls(c));
        }
    }
    out
}

/// A new value as merge patches store it: `null` fields of objects left out.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_maps_merge_per_key_and_atomic_lists_are_replaced() {
        let schema = json!({"properties": {"status": {"properties": {
            "conditions": {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
            "tags": {"x-kubernetes-list-type": "set"}}}}});
        let shape = Shape::new(Some(&schema));
        let live = json!({"status": {
            "conditions": [{"type": "A", "status": "True", "reason": "x"}, {"type": "B", "status": "True"}],
            "tags": ["a", "b"], "plain": [1, 2], "gone": 1}});
        let config = json!({"status": {
            "conditions": [{"type": "C", "status": "False"}, {"type": "A", "status": "False"}],
            "tags": ["c", "a"], "plain": [3], "gone": null}});
        let merged = merge(&live, &config, &shape);
        assert_eq!(
            merged,
            json!({"status": {
                "conditions": [{"type": "A", "status": "False", "reason": "x"},
                    {"type": "B", "status": "True"}, {"type": "C", "status": "False"}],
                "tags": ["a", "b", "c"], "plain": [3]}})
        );
    }
}
