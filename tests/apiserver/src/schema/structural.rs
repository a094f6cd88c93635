//! Checks kube-apiserver applies to a CRD's schemas before accepting it: a (simplified)
//! structural-schema rule (every specified field has a `type`), CEL rules and
//! messageExpressions that compile, and the CEL cost limits (see [`super::cost`]).

use crate::error::FieldError;
use serde_json::{Value, json};

fn type_required(schema: &Value) -> bool {
    let flag = |k: &str| schema[k] == json!(true);
    schema["type"].as_str().is_none_or(str::is_empty)
        && !flag("x-kubernetes-int-or-string")
        && !flag("x-kubernetes-preserve-unknown-fields")
}

fn compile_error(field: &str, text: &str, what: &str) -> Option<FieldError> {
    let err = cel::Program::compile(text).err()?;
    let detail = format!("{what}compilation failed: {err}");
    Some(FieldError::invalid(field, &json!(text), &detail))
}

fn check_rules(schema: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let rules = schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten();
    for (i, rule) in rules.enumerate() {
        let text = rule["rule"].as_str().unwrap_or_default();
        let field = format!("{path}.x-kubernetes-validations[{i}]");
        if text.is_empty() {
            errs.push(FieldError::required(&format!("{field}.rule")));
            continue;
        }
        if let Some(err) = compile_error(&format!("{field}.rule"), text, "") {
            errs.push(err);
        } else if let Some(message) = rule["messageExpression"].as_str()
            && let Some(err) = compile_error(
                &format!("{field}.messageExpression"),
                message,
                "messageExpression ",
            )
        {
            errs.push(err);
        }
    }
}

fn walk(schema: &Value, path: &str, what: &str, errs: &mut Vec<FieldError>) {
    if type_required(schema) {
        let detail = format!("Required value: must not be empty for specified {what}");
        errs.push(FieldError::new(
            &format!("{path}.type"),
            "Required value",
            detail,
        ));
    }
    check_rules(schema, path, errs);
    for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
        walk(
            prop,
            &format!("{path}.properties[{name}]"),
            "object fields",
            errs,
        );
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        walk(items, &format!("{path}.items"), "array items", errs);
    }
    if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        walk(
            extra,
            &format!("{path}.additionalProperties"),
            "object fields",
            errs,
        );
    }
}

/// Errors in the schemas of `crd`, with kube-apiserver's field paths; the cost limits are
/// checked when the schemas are otherwise structural, as kube does.
pub fn check_crd_schemas(crd: &Value) -> Vec<FieldError> {
    let mut errs = vec![];
    for (path, schema) in super::crd_schemas(crd) {
        walk(schema, &path, "object fields", &mut errs);
    }
    if !errs.iter().any(|e| e.field.ends_with(".type")) {
        errs.extend(super::cost::check_crd(crd));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(spec_schema: Value) -> Value {
        json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {"type": "object",
            "properties": {"spec": spec_schema}}}}]}})
    }

    #[test]
    fn fixture_crd_is_structural_and_compiles() {
        let fixture: Value =
            serde_saphyr::from_str(include_str!("../../tests/fixtures/healthcheck-crd.yaml"))
                .expect("fixture");
        assert_eq!(check_crd_schemas(&fixture), vec![]);
    }

    #[test]
    fn untyped_fields_and_broken_rules_are_rejected() {
        let bad = crd(
            json!({"type": "object", "properties": {"a": {"description": "no type"},
            "b": {"x-kubernetes-int-or-string": true}}, "x-kubernetes-validations": [{"rule": "self.("}]}),
        );
        let errs: Vec<String> = check_crd_schemas(&bad)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: \"self.(\": compilation failed"), "{errs:?}");
        assert_eq!(
            errs[1],
            "spec.validation.openAPIV3Schema.properties[spec].properties[a].type: Required value: must not be empty for specified object fields"
        );
    }
}
