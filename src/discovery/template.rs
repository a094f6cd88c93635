//! Templates: a HealthCheck spec without its target. Overrides merge as a JSON merge patch
//! (RFC 7386: maps merge, lists replace, `null` removes); validation deserialises the template
//! with a placeholder target into the HealthCheck types, so every rule of a HealthCheck applies
//! and errors name the template's own fields.

use serde_json::{Map, Value};

use crate::api::{FieldError, HealthCheckSpec, validate::validate as validate_spec};

/// The spec keys that each hold one probe kind.
const PROBE_KEYS: [&str; 5] = ["http", "tcp", "tls", "dns", "grpc"];
/// Probe kinds discovery never generates, or whose only settings are the target.
const NOT_TEMPLATED: [&str; 3] = ["tcp", "tls", "dns"];

/// Where a template's `tlsPolicy.expectServedFromSecret` switch is (a JSON pointer): it is
/// no HealthCheck field, so it is read and removed before the spec is checked.
pub const SERVED_FLAG: &str = "/tlsPolicy/expectServedFromSecret";

/// Merges `patch` into `base` (RFC 7386).
pub fn merge(base: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *base = patch.clone();
        return;
    };
    if !base.is_object() {
        *base = Value::Object(Map::new());
    }
    if let Value::Object(base) = base {
        for (key, value) in patch {
            if value.is_null() {
                base.remove(key);
            } else {
                merge(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// The template with only the probe section of `kind` (`http`, `grpc` or `tcp`) kept.
pub fn for_kind(template: &Value, kind: &str) -> Value {
    let mut spec = template.clone();
    if let Value::Object(map) = &mut spec {
        map.retain(|key, _| key == kind || !PROBE_KEYS.contains(&key.as_str()));
    }
    spec
}

/// Checks `template` (named `at`, e.g. `spec.template`): an object, no target, no unknown
/// field, and a valid HealthCheck once a target is added, for each kind it may be used with.
pub fn validate(template: &Value, at: &str) -> Result<(), Vec<FieldError>> {
    let error = |field: String, message: &str| FieldError {
        field,
        message: message.into(),
    };
    let Value::Object(map) = template else {
        if template.is_null() {
            return Ok(());
        }
        return Err(vec![error(
            at.into(),
            "must be a map of HealthCheck spec fields",
        )]);
    };
    let mut errors = forbidden(map, at);
    if errors.is_empty() {
        for kind in ["http", "grpc", "tcp"] {
            let placeholder = placeholder(kind);
            if let Err(found) = check(&for_kind(template, kind), &placeholder, at) {
                errors.extend(
                    found
                        .into_iter()
                        .filter(|e| !errors.contains(e))
                        .collect::<Vec<_>>(),
                );
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The fields a template (or an override) may not set: targets, and probe kinds discovery
/// does not template.
pub fn forbidden(template: &Map<String, Value>, at: &str) -> Vec<FieldError> {
    let error = |field: String, message: &str| FieldError {
        field,
        message: message.into(),
    };
    let mut errors = Vec::new();
    for key in NOT_TEMPLATED.iter().filter(|k| template.contains_key(**k)) {
        errors.push(error(
            format!("{at}.{key}"),
            "discovery generates http, grpc and tcp checks; tcp, tls and dns take no template",
        ));
    }
    for (kind, target) in [("http", "url"), ("grpc", "target")] {
        if template.get(kind).and_then(|k| k.get(target)).is_some() {
            errors.push(error(
                format!("{at}.{kind}.{target}"),
                "the target comes from the source object; remove it",
            ));
        }
    }
    if template
        .get("http")
        .and_then(|h| h.get("connectTo"))
        .is_some()
    {
        errors.push(error(
            format!("{at}.http.connectTo"),
            "where checks connect comes from spec.dial (LoadBalancer: the source's status address); remove it",
        ));
    }
    errors
}

/// Removes `tlsPolicy.expectServedFromSecret` (see [`SERVED_FLAG`]), which must be a boolean.
fn take_served_flag(spec: &mut Value, at: &str) -> Result<(), Vec<FieldError>> {
    let policy = spec.get_mut("tlsPolicy").and_then(Value::as_object_mut);
    match policy.and_then(|p| p.remove("expectServedFromSecret")) {
        None | Some(Value::Bool(_)) => Ok(()),
        Some(_) => Err(vec![FieldError {
            field: format!("{at}.tlsPolicy.expectServedFromSecret"),
            message: "must be true or false".into(),
        }]),
    }
}

/// A valid target of each kind, to validate a template with.
fn placeholder(kind: &str) -> Value {
    match kind {
        "http" => serde_json::json!({"http": {"url": "https://template.invalid/"}}),
        "grpc" => serde_json::json!({"grpc": {"target": "template.invalid:443"}}),
        _ => serde_json::json!({"tcp": {"host": "template.invalid", "port": 443}}),
    }
}

/// Deserialises `template` + `target` strictly and validates it; fields are renamed from
/// `spec.` to `at.`.
pub fn check(
    template: &Value,
    target: &Value,
    at: &str,
) -> Result<HealthCheckSpec, Vec<FieldError>> {
    let mut spec = template.clone();
    merge(&mut spec, target);
    take_served_flag(&mut spec, at)?;
    let rename = |field: &str| match field.strip_prefix("spec") {
        Some(rest) => format!("{at}{rest}"),
        None => format!("{at}.{field}"),
    };
    let mut unknown = Vec::new();
    let parsed: Result<HealthCheckSpec, _> = serde_ignored::deserialize(&spec, |path| {
        unknown.push(path.to_string().replace(".?", ""))
    });
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(_) => {
            let (field, message) =
                match serde_path_to_error::deserialize::<_, HealthCheckSpec>(&spec) {
                    Ok(_) => (String::new(), "invalid".to_string()),
                    Err(e) => (
                        format!(".{}", e.path()).replace(".?", ""),
                        e.inner().to_string(),
                    ),
                };
            let field = if field == "." {
                at.to_string()
            } else {
                format!("{at}{field}")
            };
            return Err(vec![FieldError { field, message }]);
        }
    };
    if let Some(field) = unknown.into_iter().next() {
        return Err(vec![FieldError {
            field: format!("{at}.{field}"),
            message: "unknown field".into(),
        }]);
    }
    match validate_spec(&parsed) {
        Ok(_) => Ok(parsed),
        Err(errors) => Err((errors.into_iter())
            .map(|e| FieldError {
                field: rename(&e.field),
                message: e.message,
            })
            .collect()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn maps_merge_lists_replace_and_null_removes() {
        let mut base = json!({"interval": "30s", "http": {"method": "GET", "expect": {"status": [200, 204]}}, "suspend": true});
        merge(
            &mut base,
            &json!({"http": {"expect": {"status": [301]}}, "suspend": null}),
        );
        assert_eq!(
            base,
            json!({"interval": "30s", "http": {"method": "GET", "expect": {"status": [301]}}})
        );
    }

    #[test]
    fn a_template_is_refused_with_its_own_field_paths() {
        let field = |template: Value| {
            validate(&template, "spec.template").unwrap_err()[0]
                .field
                .clone()
        };
        assert_eq!(
            field(json!({"http": {"url": "https://a/"}})),
            "spec.template.http.url"
        );
        assert_eq!(
            field(json!({"tcp": {"host": "a", "port": 1}})),
            "spec.template.tcp"
        );
        assert_eq!(
            field(json!({"interval": "5s", "timeout": "9s"})),
            "spec.template.timeout"
        );
        assert_eq!(
            field(json!({"http": {"expect": {"status": ["7xx"]}}})),
            "spec.template.http.expect.status[0]"
        );
        assert_eq!(field(json!({"intervall": "5s"})), "spec.template.intervall");
        assert_eq!(
            field(json!({"failureThreshold": "x"})),
            "spec.template.failureThreshold"
        );
        assert_eq!(field(json!([1])), "spec.template");
        assert_eq!(
            field(json!({"http": {"connectTo": "10.0.0.1:443"}})),
            "spec.template.http.connectTo"
        );
        assert_eq!(
            field(json!({"tlsPolicy": {"expectServedFromSecret": "yes"}})),
            "spec.template.tlsPolicy.expectServedFromSecret"
        );
        validate(
            &json!({"tlsPolicy": {"expectServedFromSecret": true}}),
            "spec.template",
        )
        .unwrap();
        validate(&json!({"interval": "30s", "http": {"expect": {"status": [200]}}, "grpc": {"service": "x"}}), "spec.template").unwrap();
        validate(&Value::Null, "spec.template").unwrap();
    }
}
