//! The estimator against kube's own expectations ([`table`]), then the CRD-level limits: how
//! often a rule counts, kube's errors and their paths.

mod table;

use super::*;
use serde_json::{Value, json};

/// A CRD whose versions have these `spec` schemas.
fn crd_with_specs(specs: &[Value]) -> Value {
    let versions: Vec<Value> = (specs.iter().enumerate())
        .map(|(i, spec)| {
            let schema = json!({"type": "object", "properties": {"spec": spec}});
            json!({"name": format!("v{}", i + 1), "served": true, "storage": i == 0,
                "schema": {"openAPIV3Schema": schema}})
        })
        .collect();
    json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com",
        "scope": "Namespaced", "versions": versions}})
}

fn errors(crd: &Value) -> Vec<String> {
    check_crd(crd).iter().map(ToString::to_string).collect()
}

const HINT: &str = "(try simplifying the rule, or adding maxItems, maxProperties, and maxLength \
    where arrays, maps, and strings are declared)";
const CONTRIBUTED: &str = "Forbidden: contributed to estimated rule cost total exceeding cost \
    limit for entire OpenAPIv3 schema";

#[test]
fn rules_cost_as_often_as_their_node_can_occur() {
    let item = |rule: &str| {
        json!({"type": "object", "properties": {"s": {"type": "string", "maxLength": 10}},
            "x-kubernetes-validations": [{"rule": rule}]})
    };
    let spec = json!({"type": "object", "properties": {
        "bounded": {"type": "array", "maxItems": 5, "items": item("self.s.matches('x')")},
        "unbounded": {"type": "array", "items": item("self.s.matches('x')")},
        "grid": {"type": "array", "maxItems": 5, "items": {"type": "object", "maxProperties": 4,
            "additionalProperties": item("has(self.s)")}},
    }});
    let [schema] = estimate_crd(&crd_with_specs(&[spec]))
        .try_into()
        .expect("one schema");
    let found: Vec<(&str, u64, u64, u64)> = (schema.expressions.iter())
        .map(|e| (e.field.as_str(), e.cost, e.cardinality, e.total))
        .collect();
    let root = "spec.validation.openAPIV3Schema.properties[spec].properties";
    assert_eq!(
        found,
        [
            (
                &*format!("{root}[bounded].items.x-kubernetes-validations[0].rule"),
                7,
                5,
                35
            ),
            (
                &*format!(
                    "{root}[grid].items.additionalProperties.x-kubernetes-validations[0].rule"
                ),
                1,
                20,
                20
            ),
            // `{}` is the smallest item: 3 MiB / 3 of them fit into a request
            (
                &*format!("{root}[unbounded].items.x-kubernetes-validations[0].rule"),
                7,
                1_048_576,
                7_340_032
            ),
        ]
    );
    assert_eq!(schema.total(), 7_340_087);
}

#[test]
fn a_crd_over_the_limits_gets_kubes_three_errors() {
    let tags = |bounds: Value| {
        let mut tags = json!({"type": "array", "items": {"type": "string"},
            "x-kubernetes-validations": [{"rule": "self.all(x, x.contains('gpu'))"}]});
        for (k, v) in bounds.as_object().into_iter().flatten() {
            tags[k] = v.clone();
        }
        json!({"type": "object", "properties": {"tags": tags}})
    };
    let rule = "spec.validation.openAPIV3Schema.properties[spec].properties[tags].x-kubernetes-validations[0].rule";
    assert_eq!(
        errors(&crd_with_specs(&[tags(json!({}))])),
        [
            format!(
                "{rule}: Forbidden: estimated rule cost exceeds budget by factor of more than 100x {HINT}"
            ),
            format!("{rule}: {CONTRIBUTED}"),
            format!(
                "spec.validation.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of more than 100x {HINT}"
            ),
        ]
    );
    let bounded = json!({"maxItems": 10, "items": {"type": "string", "maxLength": 16}});
    assert_eq!(
        errors(&crd_with_specs(&[tags(bounded)])),
        Vec::<String>::new()
    );
}

/// kubernetes#124234: `string(int)` has no size bound, so neither has the concatenation; a
/// messageExpression is not multiplied by its node's cardinality but counts towards the total.
#[test]
fn a_message_expression_concatenating_string_of_an_int_is_refused() {
    let spec = json!({"type": "object", "properties": {"config": {"type": "object",
        "properties": {"attempts": {"type": "integer", "minimum": -5, "maximum": 5}},
        "x-kubernetes-validations": [{"rule": "self.attempts >= 0",
            "messageExpression": "'invalid attempts: ' + string(self.attempts)"}]}}});
    let field = "spec.validation.openAPIV3Schema.properties[spec].properties[config].x-kubernetes-validations[0].messageExpression";
    assert_eq!(
        errors(&crd_with_specs(&[spec])),
        [
            format!(
                "{field}: Forbidden: estimated messageExpression cost exceeds budget by factor of more than 100x {HINT}"
            ),
            format!("{field}: {CONTRIBUTED}"),
            format!(
                "spec.validation.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of more than 100x {HINT}"
            ),
        ]
    );
}

#[test]
fn versions_with_different_schemas_are_checked_apart() {
    let costly = json!({"type": "string", "x-kubernetes-validations": [{"rule": "self.all(x, self.all(y, true))"}]});
    let list = json!({"type": "array", "items": {"type": "number"}});
    let mut v2 = json!({"type": "object", "properties": {"l": list}});
    v2["properties"]["l"]["x-kubernetes-validations"] = costly["x-kubernetes-validations"].clone();
    let crd = crd_with_specs(&[json!({"type": "object"}), v2]);
    let fields: Vec<String> = check_crd(&crd).into_iter().map(|e| e.field).collect();
    let rule = "spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[l].x-kubernetes-validations[0].rule";
    assert_eq!(
        fields,
        [rule, rule, "spec.versions[1].schema.openAPIV3Schema"]
    );
}

#[test]
fn budget_factors_are_formatted_like_kube() {
    let factor = |cost| {
        let message = budget_message("estimated rule cost", cost, PER_EXPRESSION_LIMIT);
        let rest = message.split("factor of ").nth(1).unwrap_or_default();
        rest.split(" (").next().unwrap_or_default().to_string()
    };
    assert_eq!(factor(10_485_760), "1.048576x");
    assert_eq!(factor(161_061_634), "16.1x");
    assert_eq!(factor(1_000_000_000), "100.0x");
    assert_eq!(factor(1_000_000_001), "more than 100x");
}

#[test]
fn string_functions_are_priced_by_the_size_of_what_they_traverse() {
    let schema = json!({"type": "string", "maxLength": 100});
    let cost = |rule| estimate_expression(&schema, rule).expect("estimate");
    // `format` traverses its format string (2 characters), not its arguments
    assert_eq!(cost("'%s'.format([self]) == ''"), 1 + 10 + 1);
    // 400 bytes traversed at 0.1 per byte, then compared with a 1-character string
    assert_eq!(cost("self.upperAscii() == 'A'"), 40 + 1 + 1);
    // global `matches` is not special-cased by cel-go: 1
    assert_eq!(cost("matches(self, 'a+')"), 2);
    // (400 + 1) × 0.1 for the string, ⌈2 × 0.25⌉ for the regex, 1 for `self`
    assert_eq!(cost("self.matches('a+')"), 41 + 1);
}
