//! Events: one store seen through two APIs, as in kube-apiserver, where core/v1 and
//! events.k8s.io/v1 Events share one storage (kube's internal type is core's) and each API
//! converts on the way in and out (`pkg/apis/events/v1/conversion.go`).
//!
//! Here Events are stored in core/v1 shape. A request through events.k8s.io/v1 converts its
//! body before storage and every answer (get, list, watch, writes) is converted back, so an
//! Event written through either API is listed, got, watched, patched and deleted through the
//! other, with one resourceVersion. Field selectors use kube's registered field labels for each
//! API; the values come from the stored Event as kube's `ToSelectableFields` computes them.

use crate::error::ApiError;
use crate::registry::ResourceType;
use crate::state::Target;
use serde_json::{Map, Value, json};

/// `apiVersion` of events.k8s.io/v1.
pub const EVENTS_V1: &str = "events.k8s.io/v1";

/// Top-level fields whose names differ: (core/v1, events.k8s.io/v1). All others have the same
/// name and shape in both: `reason`, `type`, `action`, `related`, `eventTime`, `series`
/// (`count`, `lastObservedTime`), `reportingInstance` and `metadata`.
pub const RENAMED: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// Field labels of core/v1 Events (`pkg/apis/core/v1/conversion.go`).
const CORE_LABELS: [&str; 13] = [
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// Whether `rt` is one of the two Event APIs (core/v1 or events.k8s.io/v1).
pub fn is_event(rt: &ResourceType) -> bool {
    rt.crd.is_none()
        && rt.plural == "events"
        && (rt.group.is_empty() || rt.group == "events.k8s.io")
}

/// Whether `rt` is events.k8s.io/v1 Events (stored as core/v1 Events).
pub fn is_events_v1(rt: &ResourceType) -> bool {
    rt.crd.is_none() && rt.plural == "events" && rt.group == "events.k8s.io"
}

/// Renames the top-level keys of `map` (each prefixed with `prefix`, such as `f:` in field sets)
/// from one API's names to the other's. A key already named in the target vocabulary is an
/// unknown field of the source API and is dropped, as kube drops unknown fields of built-ins.
fn rename(map: &mut Map<String, Value>, prefix: &str, to_events_v1: bool) {
    for (core, events) in RENAMED {
        let (from, to) = if to_events_v1 {
            (core, events)
        } else {
            (events, core)
        };
        let value = map.remove(&format!("{prefix}{from}"));
        map.remove(&format!("{prefix}{to}"));
        if let Some(value) = value {
            map.insert(format!("{prefix}{to}"), value);
        }
    }
}

/// Rewrites the field sets of `event`'s managedFields entries: an entry is written in
/// events.k8s.io/v1 names when `in_events_v1(entry apiVersion)` holds, else in core/v1 names;
/// `from_events_v1` says which names the entries use now.
fn convert_managed_fields(
    event: &mut Value,
    from_events_v1: bool,
    in_events_v1: impl Fn(&str) -> bool,
) {
    let entries = event
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut);
    for entry in entries.into_iter().flatten() {
        let to_events_v1 = in_events_v1(entry["apiVersion"].as_str().unwrap_or_default());
        if to_events_v1 == from_events_v1 {
            continue;
        }
        if let Some(fields) = entry.get_mut("fieldsV1").and_then(Value::as_object_mut) {
            rename(fields, "f:", to_events_v1);
        }
    }
}

/// A core/v1 Event in events.k8s.io/v1 shape (managedFields untouched).
pub fn core_to_events_v1(mut event: Value) -> Value {
    if let Some(map) = event.as_object_mut() {
        rename(map, "", true);
        map.insert("apiVersion".into(), json!(EVENTS_V1));
        map.insert("kind".into(), json!("Event"));
    }
    event
}

/// An events.k8s.io/v1 Event in core/v1 shape (managedFields untouched).
pub fn events_v1_to_core(mut event: Value) -> Value {
    if let Some(map) = event.as_object_mut() {
        rename(map, "", false);
        map.insert("apiVersion".into(), json!("v1"));
        map.insert("kind".into(), json!("Event"));
    }
    event
}

/// The stored (core/v1) form of an object written through `t`, every managedFields entry in
/// core/v1 names. Objects of other types are returned as they are.
pub fn to_storage(t: &Target, object: Value) -> Value {
    if !is_events_v1(&t.rt) {
        return object;
    }
    let mut event = events_v1_to_core(object);
    convert_managed_fields(&mut event, true, |_| false);
    event
}

/// The object a patch through `t` applies to: the stored object in `t`'s shape with every
/// managedFields entry in `t`'s names (server-side apply compares them with the object).
pub fn for_patch(t: &Target, stored: Value) -> Value {
    if !is_events_v1(&t.rt) {
        return stored;
    }
    let mut event = core_to_events_v1(stored);
    convert_managed_fields(&mut event, false, |_| true);
    event
}

/// A stored object as answered through `t`: Events in the request's shape, each managedFields
/// entry in the names of its own `apiVersion` (kube keeps each entry in its manager's version).
pub fn for_answer(t: &Target, stored: Value) -> Value {
    if !is_event(&t.rt) {
        return stored;
    }
    let mut event = if is_events_v1(&t.rt) {
        core_to_events_v1(stored)
    } else {
        stored
    };
    convert_managed_fields(&mut event, false, |v| v == EVENTS_V1);
    event
}

/// A field label of `rt`'s API mapped to the core/v1 selectable field it reads, or kube's 400
/// for a label the API does not register.
pub fn field_label(rt: &ResourceType, label: &str) -> Result<&'static str, ApiError> {
    let core = if is_events_v1(rt) {
        match label {
            "reportingController" => Some("reportingComponent"),
            "reportingComponent" => None,
            other => match other.strip_prefix("regarding.") {
                Some(rest) => CORE_LABELS
                    .into_iter()
                    .find(|l| l.strip_prefix("involvedObject.") == Some(rest)),
                None if other.starts_with("involvedObject.") => None,
                None => CORE_LABELS.into_iter().find(|l| *l == other),
            },
        }
    } else {
        CORE_LABELS.into_iter().find(|l| *l == label)
    };
    core.ok_or_else(|| ApiError::bad_request(format!("field label not supported: {label}")))
}

/// The value of a selectable field (a core/v1 label) of a stored Event, as kube's
/// `ToSelectableFields` computes it: "" when unset; `source` is `source.component`, or the
/// reporting controller when that is empty.
pub fn selectable_field(stored: &Value, label: &str) -> String {
    let text = |path: &str| {
        path.split('.')
            .try_fold(stored, |cur, part| cur.get(part))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match label {
        "source" => Some(text("source.component"))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| text("reportingComponent")),
        other => text(other),
    }
}

/// The core/v1 shape of an Event answered through `t` (for computing table cells).
pub fn as_core(t: &Target, answered: &Value) -> Value {
    if is_events_v1(&t.rt) {
        events_v1_to_core(answered.clone())
    } else {
        answered.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core_event() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "shop", "resourceVersion": "7"},
            "involvedObject": {"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
                "name": "web", "namespace": "shop", "uid": "u-1"},
            "related": {"kind": "Secret", "name": "token"},
            "reason": "UnexpectedStatus", "message": "HTTP 500", "type": "Warning",
            "action": "Probe", "eventTime": "2025-01-02T03:04:05.000006Z",
            "series": {"count": 2, "lastObservedTime": "2025-01-02T03:05:05.000006Z"},
            "reportingComponent": "canary-operator", "reportingInstance": "canary-0",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2025-01-02T03:04:05Z", "lastTimestamp": "2025-01-02T03:05:05Z",
            "count": 2,
        })
    }

    fn events_v1_event() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "shop", "resourceVersion": "7"},
            "regarding": {"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
                "name": "web", "namespace": "shop", "uid": "u-1"},
            "related": {"kind": "Secret", "name": "token"},
            "reason": "UnexpectedStatus", "note": "HTTP 500", "type": "Warning",
            "action": "Probe", "eventTime": "2025-01-02T03:04:05.000006Z",
            "series": {"count": 2, "lastObservedTime": "2025-01-02T03:05:05.000006Z"},
            "reportingController": "canary-operator", "reportingInstance": "canary-0",
            "deprecatedSource": {"component": "kubelet", "host": "node-1"},
            "deprecatedFirstTimestamp": "2025-01-02T03:04:05Z",
            "deprecatedLastTimestamp": "2025-01-02T03:05:05Z",
            "deprecatedCount": 2,
        })
    }

    #[test]
    fn core_events_convert_to_events_v1_field_by_field() {
        assert_eq!(core_to_events_v1(core_event()), events_v1_event());
    }

    #[test]
    fn events_v1_events_convert_to_core_field_by_field() {
        assert_eq!(events_v1_to_core(events_v1_event()), core_event());
    }

    #[test]
    fn conversions_round_trip_and_drop_the_other_apis_names() {
        let core = core_event();
        assert_eq!(events_v1_to_core(core_to_events_v1(core.clone())), core);
        let v1 = events_v1_event();
        assert_eq!(core_to_events_v1(events_v1_to_core(v1.clone())), v1);
        let mut stray = json!({"message": "m", "note": "unknown in core/v1"});
        stray = core_to_events_v1(stray);
        assert_eq!(stray["note"], "m");
        let sparse = json!({"note": "only a note", "involvedObject": {"name": "ignored"}});
        assert_eq!(
            events_v1_to_core(sparse),
            json!({"apiVersion": "v1", "kind": "Event", "message": "only a note"})
        );
    }

    fn target(group: &str) -> Target {
        let reg = crate::registry::Registry::default();
        Target {
            rt: reg
                .lookup(group, "v1", "events")
                .expect("events are served"),
            version: "v1".into(),
            namespace: "shop".into(),
            name: None,
            sub: None,
        }
    }

    #[test]
    fn managed_fields_keep_the_names_of_their_own_api_version() {
        let entry = |api: &str, field: &str| {
            json!({"manager": api, "apiVersion": api, "operation": "Update",
                "fieldsV1": {field: {}, "f:reason": {}}})
        };
        let mut stored = core_event();
        stored["metadata"]["managedFields"] =
            json!([entry("v1", "f:message"), entry(EVENTS_V1, "f:message"),]);
        for group in ["", "events.k8s.io"] {
            let answer = for_answer(&target(group), stored.clone());
            let entries = &answer["metadata"]["managedFields"];
            assert!(entries[0]["fieldsV1"]["f:message"].is_object(), "{answer}");
            assert!(entries[1]["fieldsV1"]["f:note"].is_object(), "{answer}");
        }
        let v1 = target("events.k8s.io");
        let patchable = for_patch(&v1, stored.clone());
        let entries = &patchable["metadata"]["managedFields"];
        assert!(entries[0]["fieldsV1"]["f:note"].is_object(), "{patchable}");
        assert_eq!(to_storage(&v1, patchable), stored);
    }

    #[test]
    fn field_labels_are_those_kube_registers_for_each_api() {
        let (core, v1) = (target(""), target("events.k8s.io"));
        assert_eq!(
            field_label(&core.rt, "involvedObject.uid").ok(),
            Some("involvedObject.uid")
        );
        assert_eq!(
            field_label(&v1.rt, "regarding.uid").ok(),
            Some("involvedObject.uid")
        );
        assert_eq!(
            field_label(&v1.rt, "reportingController").ok(),
            Some("reportingComponent")
        );
        assert_eq!(field_label(&v1.rt, "source").ok(), Some("source"));
        for (rt, label) in [
            (&core.rt, "regarding.name"),
            (&core.rt, "message"),
            (&v1.rt, "involvedObject.name"),
            (&v1.rt, "reportingComponent"),
            (&v1.rt, "note"),
        ] {
            let err = field_label(rt, label).expect_err(label);
            assert_eq!(err.code, 400);
            assert_eq!(err.message, format!("field label not supported: {label}"));
        }
    }

    #[test]
    fn selectable_fields_default_to_empty_and_source_falls_back() {
        let mut stored = core_event();
        assert_eq!(selectable_field(&stored, "involvedObject.uid"), "u-1");
        assert_eq!(selectable_field(&stored, "involvedObject.fieldPath"), "");
        assert_eq!(selectable_field(&stored, "source"), "kubelet");
        stored["source"] = json!({});
        assert_eq!(selectable_field(&stored, "source"), "canary-operator");
    }
}
