//! Structural schema validation, defaulting and pruning of custom resources, as a pure API.

pub mod cel;
mod checks;
pub mod cost;
mod structural;
mod validate;

pub use crate::error::FieldError;
use serde_json::{Value, json};
pub use structural::check_crd_schemas;
pub use validate::Validated;

/// The schemas kube validates a CRD's rules in, with their field paths: one at
/// `spec.validation.openAPIV3Schema` when all versions have the same schema (kube's conversion to
/// its internal version then moves it to the top level), else one per version.
pub(crate) fn crd_schemas(crd: &Value) -> Vec<(String, &Value)> {
    let versions = crd["spec"]["versions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let schemas: Vec<Option<&Value>> = (versions.iter())
        .map(|v| v["schema"].get("openAPIV3Schema"))
        .collect();
    if let [Some(first), rest @ ..] = schemas.as_slice()
        && rest.iter().all(|s| *s == Some(*first))
    {
        return vec![("spec.validation.openAPIV3Schema".to_string(), *first)];
    }
    (schemas.into_iter().enumerate())
        .filter_map(|(i, s)| Some((format!("spec.versions[{i}].schema.openAPIV3Schema"), s?)))
        .collect()
}

/// The `openAPIV3Schema` of a CRD version, or of the storage version when `version` is not served.
pub(crate) fn version_schema<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    let versions = crd["spec"]["versions"].as_array()?;
    let chosen = versions
        .iter()
        .find(|v| v["name"] == json!(version))
        .or_else(|| versions.iter().find(|v| v["storage"] == json!(true)))?;
    chosen["schema"].get("openAPIV3Schema")
}

/// Validates a create (`old` is `None`) or an update of `object` against the CRD's schema for
/// `version`; transition rules (`oldSelf`) run on updates only.
pub fn validate_version(
    crd: &Value,
    version: &str,
    object: &Value,
    old: Option<&Value>,
) -> Result<Validated, Vec<FieldError>> {
    validate_version_with(crd, version, object, old, true)
}

/// [`validate_version`], with validation ratcheting on updates (kube 1.30+) or without it
/// (1.28/1.29: every error counts, also on fields the update leaves alone).
pub fn validate_version_with(
    crd: &Value,
    version: &str,
    object: &Value,
    old: Option<&Value>,
    ratcheting: bool,
) -> Result<Validated, Vec<FieldError>> {
    let Some(schema) = version_schema(crd, version) else {
        return Ok(Validated {
            object: object.clone(),
            unknown_fields: vec![],
        });
    };
    validate::validate_root(schema, object, old, ratcheting)
}

/// Validates `object` against the CRD's schema for `version`, returning it defaulted and pruned.
pub fn validate_custom_resource_version(
    crd: &Value,
    version: &str,
    object: &Value,
) -> Result<Value, Vec<FieldError>> {
    validate_version(crd, version, object, None).map(|v| v.object)
}

/// Validates `object` against the CRD schema of the version named in its `apiVersion`,
/// returning the object defaulted and pruned, or the field errors kube-apiserver would report.
pub fn validate_custom_resource(crd: &Value, object: &Value) -> Result<Value, Vec<FieldError>> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let version = api_version.rsplit('/').next().unwrap_or_default();
    validate_custom_resource_version(crd, version, object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        serde_saphyr::from_str(include_str!("../../tests/fixtures/healthcheck-crd.yaml"))
            .expect("fixture CRD parses")
    }

    fn check(spec: Value) -> Result<Value, Vec<String>> {
        let obj = json!({"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck", "metadata": {"name": "x"}, "spec": spec});
        validate_custom_resource(&crd(), &obj)
            .map_err(|errs| errs.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn defaults_are_applied_and_unknown_fields_pruned() {
        let out = check(json!({"kind": "HTTP", "http": {"url": "http://x"}, "bogus": 1, "extra": {"free": [1]}})).expect("valid");
        assert_eq!(out["spec"]["interval"], "30s");
        assert_eq!(out["spec"]["http"]["expectedStatus"], 200);
        assert!(out["spec"].get("bogus").is_none());
        assert_eq!(out["spec"]["extra"]["free"], json!([1]));
        assert_eq!(out["metadata"]["name"], "x");
    }

    #[test]
    fn errors_name_fields_like_kube_apiserver() {
        let errs = check(json!({"kind": "FTP"})).expect_err("bad enum");
        assert_eq!(
            errs,
            ["spec.kind: Unsupported value: \"FTP\": supported values: \"HTTP\", \"TCP\", \"TLS\""]
        );
        let errs = check(json!({"kind": "HTTP", "http": {}})).expect_err("missing url");
        assert_eq!(errs, ["spec.http.url: Required value"]);
        let errs = check(json!({"kind": "HTTP"})).expect_err("cel");
        assert_eq!(
            errs,
            ["spec: Invalid value: \"object\": http is required when kind is HTTP"]
        );
        let errs = check(json!({"kind": "TCP", "timeout": "1m"})).expect_err("cel fieldPath");
        assert_eq!(
            errs,
            ["spec.timeout: Invalid value: \"object\": timeout must be shorter than interval"]
        );
    }

    #[test]
    fn type_range_pattern_format_and_list_checks() {
        let spec = json!({"kind": "HTTP", "interval": "soon", "http": {"url": "u", "expectedStatus": 99},
            "notAfter": "yesterday", "targets": [{"name": "a"}, {"name": "a"}], "tcp": {"port": 1.5}});
        let errs = check(spec).expect_err("many errors");
        let text = errs.join("\n");
        for want in [
            "spec.interval: Invalid value: \"soon\": spec.interval in body should match",
            "spec.http.expectedStatus: Invalid value: 99: spec.http.expectedStatus in body should be greater than or equal to 100",
            "spec.notAfter: Invalid value: \"yesterday\": spec.notAfter in body must be of type date-time",
            "spec.targets[1]: Duplicate value: {\"name\":\"a\"}",
            "spec.tcp.port: Invalid value: \"number\"",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(
            check(json!({"kind": "TCP", "tcp": {"port": "http"}, "description": null})).is_ok()
        );
        let errs = check(json!({"kind": 3})).expect_err("type");
        assert_eq!(
            errs,
            [
                "spec.kind: Invalid value: \"integer\": spec.kind in body must be of type string: \"integer\""
            ]
        );
    }

    #[test]
    fn any_of_value_validations_need_one_branch_to_pass() {
        // As in go-openapi, a branch whose validations do not apply to the value's type (bounds
        // on a string) passes it.
        let schema = json!({"type": "object", "properties": {
            "s": {"type": "string", "anyOf": [{"pattern": "^a"}, {"maxLength": 2}]},
            "n": {"x-kubernetes-int-or-string": true, "anyOf": [{"maximum": 5}, {"minimum": 10}]}}});
        let errors = |object: Value| {
            validate::validate_root(&schema, &object, None, true)
                .err()
                .unwrap_or_default()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(errors(json!({"s": "abcdef"})), Vec::<String>::new());
        assert_eq!(errors(json!({"s": "xy"})), Vec::<String>::new());
        let refused = errors(json!({"s": "xyz"}));
        assert!(
            refused
                .iter()
                .any(|e| e.contains("must validate at least one schema (anyOf)")),
            "{refused:?}"
        );
        assert!(!errors(json!({"n": 6})).is_empty(), "6 passes no branch");
        assert_eq!(errors(json!({"n": "long"})), Vec::<String>::new());
    }

    #[test]
    fn int_or_string_values_get_value_validations_and_rules() {
        let schema = json!({"type": "object", "properties": {"n": {
            "x-kubernetes-int-or-string": true, "maxLength": 3, "maximum": 10,
            "x-kubernetes-validations": [{"rule": "type(self) == int || self != 'bad'", "message": "not bad"}]}}});
        let errors = |n: Value| {
            validate::validate_root(&schema, &json!({"n": n}), None, true)
                .err()
                .unwrap_or_default()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(errors(json!(5)), Vec::<String>::new());
        assert_eq!(errors(json!("ok")), Vec::<String>::new());
        assert_eq!(
            errors(json!("long")),
            ["n: Too long: may not be more than 3 bytes"]
        );
        assert_eq!(
            errors(json!(11)),
            ["n: Invalid value: 11: n in body should be less than or equal to 10"]
        );
        assert_eq!(errors(json!("bad")), [r#"n: Invalid value: "": not bad"#]);
        assert!(errors(json!(1.5))[0].contains("must be of type integer-or-string"));
    }

    #[test]
    fn updates_ratchet_errors_on_unchanged_fields() {
        let crd = crd();
        let stored = json!({"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
            "metadata": {"name": "x"}, "spec": {"kind": "HTTP", "interval": "soon", "http": {"url": "u"}}});
        let validate = |new: &Value| {
            validate_version(&crd, "v1alpha1", new, Some(&stored))
                .map(|_| ())
                .map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        assert!(
            validate_version(&crd, "v1alpha1", &stored, None).is_err(),
            "invalid on create"
        );
        let mut status_write = stored.clone();
        status_write["status"] = json!({"observedGeneration": 1});
        assert_eq!(validate(&status_write), Ok(()), "unchanged invalid field");
        let strict = validate_version_with(&crd, "v1alpha1", &status_write, Some(&stored), false);
        assert!(strict.is_err(), "without ratcheting (kube 1.28/1.29)");
        let mut edited = stored.clone();
        edited["spec"]["interval"] = json!("later");
        let errs = validate(&edited).expect_err("changed invalid field");
        assert!(errs[0].starts_with("spec.interval"), "{errs:?}");
    }
}
