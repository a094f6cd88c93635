//! `meta.k8s.io/v1` Table output for kubectl: CRD printer columns, sensible built-in columns, AGE.

use crate::jsonpath;
use crate::meta;
use crate::state::Target;
use serde_json::{Value, json};

struct Column {
    name: String,
    kind: String,
    path: String,
    priority: i64,
}

fn col(name: &str, kind: &str, path: &str) -> Column {
    Column {
        name: name.into(),
        kind: kind.into(),
        path: path.into(),
        priority: 0,
    }
}

fn builtin_columns(plural: &str) -> Vec<Column> {
    match plural {
        "pods" => vec![
            col("Status", "string", ".status.phase"),
            col("IP", "string", ".status.podIP"),
        ],
        "deployments" => vec![
            col("Ready", "string", "ready"),
            col("Up-to-date", "integer", ".status.updatedReplicas"),
            col("Available", "integer", ".status.availableReplicas"),
        ],
        "services" => vec![
            col("Type", "string", ".spec.type"),
            col("Cluster-IP", "string", ".spec.clusterIP"),
        ],
        "namespaces" => vec![col("Status", "string", ".status.phase")],
        "secrets" => vec![
            col("Type", "string", ".type"),
            col("Data", "integer", "count:data"),
        ],
        "configmaps" => vec![col("Data", "integer", "count:data")],
        _ => vec![],
    }
}

fn crd_columns(crd: &Value, version: &str) -> Vec<Column> {
    let v = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == json!(version));
    let Some(cols) = v.and_then(|v| v["additionalPrinterColumns"].as_array()) else {
        return vec![col("Age", "date", ".metadata.creationTimestamp")];
    };
    cols.iter()
        .map(|c| Column {
            name: c["name"].as_str().unwrap_or_default().to_string(),
            kind: c["type"].as_str().unwrap_or("string").to_string(),
            path: c["jsonPath"].as_str().unwrap_or_default().to_string(),
            priority: c["priority"].as_i64().unwrap_or(0),
        })
        .collect()
}

fn columns(t: &Target) -> Vec<Column> {
    let mut cols = vec![col("Name", "string", ".metadata.name")];
    match &t.rt.crd {
        Some(crd) => cols.extend(crd_columns(crd, &t.version)),
        None => {
            cols.extend(builtin_columns(&t.rt.plural));
            cols.push(col("Age", "date", ".metadata.creationTimestamp"));
        }
    }
    cols
}

fn cell(obj: &Value, c: &Column) -> Value {
    if c.path == "ready" {
        let ready = obj["status"]["readyReplicas"].as_i64().unwrap_or(0);
        return json!(format!(
            "{ready}/{}",
            obj["spec"]["replicas"].as_i64().unwrap_or(1)
        ));
    }
    if let Some(field) = c.path.strip_prefix("count:") {
        return json!(obj[field].as_object().map_or(0, |m| m.len()));
    }
    let found = jsonpath::select(obj, &c.path)
        .ok()
        .and_then(|v| v.into_iter().next());
    match (c.kind.as_str(), found) {
        (_, None | Some(Value::Null)) => Value::Null,
        ("date", Some(Value::String(ts))) => json!(meta::age(&ts)),
        ("string", Some(v)) if !v.is_string() => json!(v.to_string()),
        (_, Some(v)) => v,
    }
}

fn row(obj: &Value, cols: &[Column]) -> Value {
    let cells: Vec<Value> = cols.iter().map(|c| cell(obj, c)).collect();
    let mut metadata = obj["metadata"].clone();
    if let Some(m) = metadata.as_object_mut() {
        m.remove("managedFields");
    }
    json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}})
}

/// Converts an object or a list into a Table.
pub fn to_table(t: &Target, v: &Value) -> Value {
    let cols = columns(t);
    let definitions: Vec<Value> = cols
        .iter()
        .map(|c| {
            let format = if c.name == "Name" { "name" } else { "" };
            let kind = if c.kind == "date" { "string" } else { c.kind.as_str() };
            json!({"name": c.name, "type": kind, "format": format, "description": "", "priority": c.priority})
        })
        .collect();
    let (rows, rv) = match v["items"].as_array() {
        Some(items) => (
            items.iter().map(|o| row(o, &cols)).collect(),
            v["metadata"].clone(),
        ),
        None => (
            vec![row(v, &cols)],
            json!({"resourceVersion": v["metadata"]["resourceVersion"]}),
        ),
    };
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": rv, "columnDefinitions": definitions, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn target(crd: Option<Value>, plural: &str) -> Target {
        let rt = match crd {
            Some(crd) => crate::crd::resource_type(&crd),
            None => {
                let reg = crate::registry::Registry::default();
                let found = reg.lookup("", "v1", plural).expect("builtin");
                (*found).clone()
            }
        };
        Target {
            rt: Arc::new(rt),
            version: "v1alpha1".into(),
            namespace: "default".into(),
            name: None,
            sub: None,
        }
    }

    #[test]
    fn crd_printer_columns_and_builtin_columns() {
        let crd: Value =
            serde_saphyr::from_str(include_str!("../tests/fixtures/healthcheck-crd.yaml"))
                .expect("fixture");
        let obj = json!({"metadata": {"name": "web", "creationTimestamp": meta::now()},
            "spec": {"kind": "HTTP", "interval": "30s"},
            "status": {"consecutiveFailures": 2, "conditions": [{"type": "Ready", "status": "True"}]}});
        let table = to_table(
            &target(Some(crd), ""),
            &json!({"metadata": {}, "items": [obj]}),
        );
        let names: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .expect("cols")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(
            names,
            ["Name", "Kind", "Interval", "Ready", "Failures", "Age"]
        );
        assert_eq!(
            table["rows"][0]["cells"],
            json!(["web", "HTTP", "30s", "True", 2, "0s"])
        );
        let cm = json!({"metadata": {"name": "c", "resourceVersion": "3"}, "data": {"a": "1", "b": "2"}});
        let table = to_table(&target(None, "configmaps"), &cm);
        assert_eq!(table["rows"][0]["cells"], json!(["c", 2, null]));
    }
}
