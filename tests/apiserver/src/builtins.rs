//! kube's validation of the built-in types Canary writes besides its own: Leases
//! (`pkg/apis/coordination/validation`) and Events (`pkg/apis/core/validation/events.go`).
//! Events are checked in their stored core/v1 shape, so errors name kube's internal fields
//! (`message`, `reportingController`, `firstTimestamp`) whichever API was used, as kube's do.

use crate::error::{FieldError, go_value};
use crate::registry::ResourceType;
use crate::state::Target;
use serde_json::{Value, json};

/// Longest `reportingInstance`, `action` and `reason` of an Event, and longest note (message).
const INSTANCE_MAX: usize = 128;
const ACTION_MAX: usize = 128;
const REASON_MAX: usize = 128;
const NOTE_MAX: usize = 1024;

/// Whether kube refuses a PUT without `metadata.resourceVersion` (`AllowUnconditionalUpdate`
/// is false for Leases and custom resources).
pub fn requires_resource_version(rt: &ResourceType) -> bool {
    rt.crd.is_some() || (rt.group == "coordination.k8s.io" && rt.plural == "leases")
}

/// The field errors of `new` written through `t` (a create when `old` is `None`).
pub fn validate(t: &Target, old: Option<&Value>, new: &Value) -> Vec<FieldError> {
    match (t.rt.group.as_str(), t.rt.plural.as_str()) {
        ("coordination.k8s.io", "leases") if t.rt.crd.is_none() => lease(new),
        (_, "events") if crate::events::is_event(&t.rt) => {
            let mut errs = legacy_event(new);
            if crate::events::is_events_v1(&t.rt) {
                errs.extend(match old {
                    None => strict_event_create(new),
                    Some(old) => strict_event_update(old, new),
                });
            }
            errs
        }
        _ => vec![],
    }
}

fn lease(lease: &Value) -> Vec<FieldError> {
    let spec = &lease["spec"];
    let mut errs = vec![];
    if let Some(n) = spec["leaseDurationSeconds"].as_i64().filter(|n| *n <= 0) {
        let path = "spec.leaseDurationSeconds";
        errs.push(FieldError::invalid(
            path,
            &json!(n),
            "must be greater than 0",
        ));
    }
    if let Some(n) = spec["leaseTransitions"].as_i64().filter(|n| *n < 0) {
        let path = "spec.leaseTransitions";
        errs.push(FieldError::invalid(
            path,
            &json!(n),
            "must be greater than or equal to 0",
        ));
    }
    let set = |k: &str| spec[k].as_str().is_some_and(|s| !s.is_empty());
    if set("preferredHolder") && !set("strategy") {
        let body = "Forbidden: may only be specified if `strategy` is defined".to_string();
        errs.push(FieldError::new("spec.preferredHolder", "Forbidden", body));
    }
    errs
}

fn text<'a>(event: &'a Value, field: &str) -> &'a str {
    (field.split('.').try_fold(event, |v, k| v.get(k)))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// An `Invalid value: ""` error, as kube reports these Event fields (with an empty value).
fn invalid_empty(field: &str, detail: &str) -> FieldError {
    FieldError::invalid(field, &json!(""), detail)
}

fn too_long(field: &str, value: &str, max: usize) -> Option<FieldError> {
    let detail = format!("can have at most {max} characters");
    (value.len() > max).then(|| invalid_empty(field, &detail))
}

/// `legacyValidateEvent`: what every Event passes, through either API.
fn legacy_event(event: &Value) -> Vec<FieldError> {
    let mut errs = vec![];
    let ns = text(event, "metadata.namespace");
    let involved_ns = text(event, "involvedObject.namespace");
    let mismatch = || {
        let v = json!(involved_ns);
        FieldError::invalid(
            "involvedObject.namespace",
            &v,
            "does not match event.namespace",
        )
    };
    if text(event, "eventTime").is_empty() {
        let agrees = match involved_ns {
            "" => ns.is_empty() || ns == "default",
            other => ns == other,
        };
        if !agrees {
            errs.push(mismatch());
        }
        return errs;
    }
    if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
        errs.push(mismatch());
    }
    let controller = text(event, "reportingComponent");
    if controller.is_empty() {
        errs.push(FieldError::required("reportingController"));
    } else if let Some(why) = qualified_name_error(controller) {
        errs.push(FieldError::invalid(
            "reportingController",
            &json!(controller),
            &why,
        ));
    }
    for (field, stored, max) in [
        ("reportingInstance", "reportingInstance", INSTANCE_MAX),
        ("action", "action", ACTION_MAX),
        ("reason", "reason", REASON_MAX),
    ] {
        let value = text(event, stored);
        if value.is_empty() {
            errs.push(FieldError::required(field));
        }
        errs.extend(too_long(field, value, max));
    }
    errs.extend(too_long("message", text(event, "message"), NOTE_MAX));
    errs
}

/// `IsQualifiedName` (`[prefix/]name`, the name at most 63 characters), kube's messages.
fn qualified_name_error(value: &str) -> Option<String> {
    let name = value.rsplit_once('/').map_or(value, |(_, n)| n);
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    let valid =
        name.chars().all(ok_char) && ends_ok(name.chars().next()) && ends_ok(name.chars().last());
    (!valid).then(|| {
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and \
         end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex \
         used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
            .to_string()
    })
}

fn series(event: &Value) -> Vec<FieldError> {
    let series = &event["series"];
    let mut errs = vec![];
    if series.is_object() {
        if series["count"].as_i64().unwrap_or_default() < 2 {
            errs.push(invalid_empty("series.count", "should be at least 2"));
        }
        if text(event, "series.lastObservedTime").is_empty() {
            errs.push(FieldError::required("series.lastObservedTime"));
        }
    }
    errs
}

/// `ValidateEventCreate` through events.k8s.io/v1.
fn strict_event_create(event: &Value) -> Vec<FieldError> {
    let mut errs = series(event);
    if text(event, "eventTime").is_empty() {
        errs.push(FieldError::required("eventTime"));
    }
    let type_ = text(event, "type");
    if type_ != "Normal" && type_ != "Warning" {
        errs.push(invalid_empty(
            "type",
            &format!("has invalid value: {type_}"),
        ));
    }
    for field in ["firstTimestamp", "lastTimestamp"] {
        if !text(event, field).is_empty() {
            errs.push(invalid_empty(field, "needs to be unset"));
        }
    }
    if event["count"].as_i64().unwrap_or_default() != 0 {
        errs.push(invalid_empty("count", "needs to be unset"));
    }
    if !text(event, "source.component").is_empty() || !text(event, "source.host").is_empty() {
        errs.push(invalid_empty("source", "needs to be unset"));
    }
    errs
}

/// `ValidateEventUpdate` through events.k8s.io/v1: a changed series is checked, and what the
/// Event reports may not change.
fn strict_event_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = vec![];
    if old.get("series") != new.get("series") {
        errs.extend(series(new));
    }
    for (field, stored) in [
        ("involvedObject", "involvedObject"),
        ("reason", "reason"),
        ("message", "message"),
        ("source", "source"),
        ("firstTimestamp", "firstTimestamp"),
        ("lastTimestamp", "lastTimestamp"),
        ("count", "count"),
        ("type", "type"),
        ("eventTime", "eventTime"),
        ("action", "action"),
        ("related", "related"),
        ("reportingController", "reportingComponent"),
        ("reportingInstance", "reportingInstance"),
    ] {
        let (before, after) = (old.get(stored), new.get(stored));
        if before != after {
            let value = after.cloned().unwrap_or(Value::Null);
            let body = format!("Invalid value: {}: field is immutable", go_value(&value));
            errs.push(FieldError::new(field, "Invalid value", body));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(group: &str, plural: &str) -> Target {
        let reg = crate::registry::Registry::default();
        let version = "v1";
        Target {
            rt: reg.lookup(group, version, plural).expect("served"),
            version: version.into(),
            namespace: "shop".into(),
            name: None,
            sub: None,
        }
    }

    fn messages(errs: Vec<FieldError>) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    fn event() -> Value {
        json!({"metadata": {"name": "e", "namespace": "shop"},
            "involvedObject": {"kind": "HealthCheck", "namespace": "shop", "name": "web"},
            "reason": "Timeout", "message": "m", "type": "Warning", "action": "Probe",
            "eventTime": "2025-01-02T03:04:05.000006Z", "reportingComponent": "canary-operator",
            "reportingInstance": "canary-0"})
    }

    #[test]
    fn events_through_events_v1_are_validated_strictly() {
        let v1 = target("events.k8s.io", "events");
        assert_eq!(
            messages(validate(&v1, None, &event())),
            Vec::<String>::new()
        );
        let mut bad = event();
        bad["reportingInstance"] = json!("x".repeat(129));
        bad["message"] = json!("n".repeat(1025));
        bad["type"] = json!("Info");
        bad["count"] = json!(3);
        bad.as_object_mut().map(|e| e.remove("action"));
        assert_eq!(
            messages(validate(&v1, None, &bad)),
            vec![
                "reportingInstance: Invalid value: \"\": can have at most 128 characters",
                "action: Required value",
                "message: Invalid value: \"\": can have at most 1024 characters",
                "type: Invalid value: \"\": has invalid value: Info",
                "count: Invalid value: \"\": needs to be unset",
            ]
        );
        let core = target("", "events");
        assert_eq!(
            validate(&core, None, &bad).len(),
            3,
            "core/v1: legacy rules only"
        );
        let mut no_time = event();
        no_time.as_object_mut().map(|e| e.remove("eventTime"));
        assert_eq!(
            messages(validate(&v1, None, &no_time)),
            vec!["eventTime: Required value"]
        );
    }

    #[test]
    fn event_updates_through_events_v1_may_change_only_the_series() {
        let v1 = target("events.k8s.io", "events");
        let old = event();
        let mut new = old.clone();
        new["series"] = json!({"count": 2, "lastObservedTime": "2025-01-02T03:05:05.000006Z"});
        assert!(validate(&v1, Some(&old), &new).is_empty());
        new["message"] = json!("changed");
        new["series"]["count"] = json!(1);
        assert_eq!(
            messages(validate(&v1, Some(&old), &new)),
            vec![
                "series.count: Invalid value: \"\": should be at least 2",
                "message: Invalid value: \"changed\": field is immutable",
            ]
        );
    }

    #[test]
    fn leases_need_a_positive_duration() {
        let leases = target("coordination.k8s.io", "leases");
        let lease = json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 0,
            "leaseTransitions": -1, "preferredHolder": "b"}});
        assert_eq!(
            messages(validate(&leases, None, &lease)),
            vec![
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
                "spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined",
            ]
        );
        assert!(requires_resource_version(&leases.rt));
    }
}
