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

/// kube's Event columns (`printEvent`); the cells are computed by [`event_cell`].
fn event_columns() -> Vec<Column> {
    let wide = |name: &str| Column {
        priority: 1,
        ..col(name, "string", &format!("event:{name}"))
    };
    let normal = |name: &str| col(name, "string", &format!("event:{name}"));
    vec![
        normal("Last Seen"),
        normal("Type"),
        normal("Reason"),
        normal("Object"),
        wide("Subobject"),
        wide("Source"),
        normal("Message"),
        wide("First Seen"),
        wide("Count"),
        wide("Name"),
    ]
}

/// One cell of kube's Event table for a core/v1 Event (`printEvent`: a timestamp that is not
/// set reads `<unknown>`; an Event without `count` or `series` occurred once).
fn event_cell(event: &Value, column: &str) -> Value {
    let text = |path: &str| {
        path.split('.')
            .try_fold(event, |cur, part| cur.get(part))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let since = |path: &str| {
        Some(text(path))
            .filter(|t| !t.is_empty())
            .map(|t| meta::age(&t))
    };
    let first_seen = || since("firstTimestamp").or_else(|| since("eventTime"));
    let unknown = |age: Option<String>| json!(age.unwrap_or_else(|| "<unknown>".into()));
    let first_non_empty = |a: String, b: String| if a.is_empty() { b } else { a };
    match column {
        "Last Seen" if event["series"].is_object() => unknown(since("series.lastObservedTime")),
        "Last Seen" => unknown(since("lastTimestamp").or_else(first_seen)),
        "First Seen" => unknown(first_seen()),
        "Object" => {
            let kind = text("involvedObject.kind").to_lowercase();
            match text("involvedObject.name") {
                name if name.is_empty() => json!(kind),
                name => json!(format!("{kind}/{name}")),
            }
        }
        "Subobject" => json!(text("involvedObject.fieldPath")),
        "Source" => {
            let component = first_non_empty(text("source.component"), text("reportingComponent"));
            match first_non_empty(text("source.host"), text("reportingInstance")) {
                host if host.is_empty() => json!(component),
                host => json!(format!("{component}, {host}")),
            }
        }
        "Message" => json!(text("message").trim()),
        "Count" => {
            let count = (event["series"]["count"].as_i64())
                .or_else(|| event["count"].as_i64().filter(|c| *c != 0))
                .unwrap_or(1);
            json!(count)
        }
        "Name" => json!(text("metadata.name")),
        other => json!(text(&other.to_lowercase())),
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
    if crate::events::is_event(&t.rt) {
        return event_columns();
    }
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
    if let Some(column) = c.path.strip_prefix("event:") {
        return event_cell(obj, column);
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
    // Event cells read the core/v1 shape, whichever API the Events were asked through.
    let row = |o: &Value| row(&crate::events::as_core(t, o), &cols);
    let (rows, rv) = match v["items"].as_array() {
        Some(items) => (items.iter().map(row).collect(), v["metadata"].clone()),
        None => (
            vec![row(v)],
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
    fn events_get_kubes_event_columns_through_either_api() {
        let core = json!({"metadata": {"name": "web.1"}, "type": "Warning",
            "reason": "UnexpectedStatus", "message": " HTTP 500 ",
            "involvedObject": {"kind": "HealthCheck", "name": "web"},
            "reportingComponent": "canary-operator", "reportingInstance": "canary-0"});
        let v1 = crate::events::core_to_events_v1(core.clone());
        for (group, event) in [("", core), ("events.k8s.io", v1)] {
            let reg = crate::registry::Registry::default();
            let t = Target {
                rt: reg.lookup(group, "v1", "events").expect("events"),
                version: "v1".into(),
                namespace: "shop".into(),
                name: None,
                sub: None,
            };
            let table = to_table(&t, &event);
            assert_eq!(
                table["rows"][0]["cells"],
                json!([
                    "<unknown>",
                    "Warning",
                    "UnexpectedStatus",
                    "healthcheck/web",
                    "",
                    "canary-operator, canary-0",
                    "HTTP 500",
                    "<unknown>",
                    1,
                    "web.1"
                ])
            );
            let wide: Vec<&Value> = table["columnDefinitions"]
                .as_array()
                .expect("columns")
                .iter()
                .filter(|c| c["priority"] == 1)
                .map(|c| &c["name"])
                .collect();
            assert_eq!(wide, ["Subobject", "Source", "First Seen", "Count", "Name"]);
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
