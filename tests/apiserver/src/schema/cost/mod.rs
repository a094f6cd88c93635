//! The static cost limits kube-apiserver puts on the CEL expressions of a CRD when it is created
//! or updated (apiextensions `validation.go` and `cel_validation.go`): every rule and
//! messageExpression gets a worst-case cost estimate ([`estimate_expression`], a port of cel-go's
//! estimator with kube's sizes); a rule's estimate is multiplied by how many times it can run
//! in one object (the product of the `maxItems`/`maxProperties` of the lists and maps around
//! it, or what fits into a request when one is unbounded). Each must stay under
//! [`PER_EXPRESSION_LIMIT`] and their total under [`PER_CRD_LIMIT`], or the CRD is refused.

mod calls;
mod decl;
mod estimate;
mod overloads;
mod range;
mod scope;
#[cfg(test)]
mod tests;
mod types;

use crate::error::FieldError;
pub use decl::MAX_REQUEST_SIZE_BYTES;

/// Whether a property name is a CEL reserved word, which kube escapes as `__name__`.
pub fn is_reserved(name: &str) -> bool {
    decl::RESERVED.contains(&name)
}
use decl::decl_of;
use serde_json::{Value, json};

/// kube's `StaticEstimatedCostLimit`: the most one expression may cost.
pub const PER_EXPRESSION_LIMIT: u64 = 10_000_000;
/// kube's `StaticEstimatedCRDCostLimit`: the most all expressions of a schema may cost.
pub const PER_CRD_LIMIT: u64 = 100_000_000;

/// An expression that could not be estimated.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// The expression does not parse (its rule is refused for that instead).
    #[error("expression does not parse: {0}")]
    Parse(String),
    /// The schema node has no CEL type (no `type`, or an array without `items`).
    #[error("schema node has no CEL type")]
    Untyped,
}

/// Whether an expression is a rule or a rule's messageExpression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpressionKind {
    Rule,
    MessageExpression,
}

/// The estimate of one expression of a CRD.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpressionCost {
    /// Field path, e.g. `spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule`.
    pub field: String,
    pub kind: ExpressionKind,
    pub expression: String,
    /// Worst-case cost of one evaluation.
    pub cost: u64,
    /// How many times the rule can run per object (1 for a messageExpression, which kube
    /// does not multiply).
    pub cardinality: u64,
    /// `cost × cardinality`: what kube compares with [`PER_EXPRESSION_LIMIT`] and adds up.
    pub total: u64,
}

/// The estimates of the expressions of one schema of a CRD.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaCost {
    /// `spec.validation.openAPIV3Schema`, or `spec.versions[i].schema.openAPIV3Schema` when the
    /// versions' schemas differ.
    pub field: String,
    pub expressions: Vec<ExpressionCost>,
}

impl SchemaCost {
    /// The total kube compares with [`PER_CRD_LIMIT`].
    pub fn total(&self) -> u64 {
        (self.expressions.iter()).fold(0, |sum, e| sum.saturating_add(e.total))
    }
}

/// The worst-case cost of one evaluation of `expression` on the node `schema` (not the root of
/// a resource), as kube's `MaxCost`.
pub fn estimate_expression(schema: &Value, expression: &str) -> Result<u64, CostError> {
    let decl = decl_of(schema, false).ok_or(CostError::Untyped)?;
    estimate_text(expression, &decl)
}

fn estimate_text(expression: &str, decl: &decl::Decl) -> Result<u64, CostError> {
    let program = cel::Program::compile(expression).map_err(|e| CostError::Parse(e.to_string()))?;
    Ok(estimate::estimate(program.expression(), decl))
}

/// The estimates of every expression of `crd`, schema by schema, in kube's order (children
/// before their parent).
pub fn estimate_crd(crd: &Value) -> Vec<SchemaCost> {
    super::crd_schemas(crd)
        .into_iter()
        .map(|(field, schema)| {
            let mut expressions = vec![];
            walk(schema, &field, Some(1), true, &mut expressions);
            SchemaCost { field, expressions }
        })
        .collect()
}

/// kube's errors for expressions of `crd` over the limits (none when all are within).
pub fn check_crd(crd: &Value) -> Vec<FieldError> {
    estimate_crd(crd).iter().flat_map(schema_errors).collect()
}

fn forbidden(field: &str, message: &str) -> FieldError {
    FieldError::new(field, "Forbidden", format!("Forbidden: {message}"))
}

fn schema_errors(schema: &SchemaCost) -> Vec<FieldError> {
    let mut errs: Vec<FieldError> = (schema.expressions.iter())
        .filter(|e| e.total > PER_EXPRESSION_LIMIT)
        .map(|e| {
            let name = match e.kind {
                ExpressionKind::Rule => "estimated rule cost",
                ExpressionKind::MessageExpression => "estimated messageExpression cost",
            };
            forbidden(
                &e.field,
                &budget_message(name, e.total, PER_EXPRESSION_LIMIT),
            )
        })
        .collect();
    let total = schema.total();
    if total > PER_CRD_LIMIT {
        // kube names the (at most 4) most expensive of those over 1% of the limit
        let mut expensive: Vec<&ExpressionCost> = (schema.expressions.iter())
            .filter(|e| e.total >= PER_CRD_LIMIT / 100)
            .collect();
        expensive.sort_by_key(|e| std::cmp::Reverse(e.total));
        for e in expensive.iter().take(4) {
            let why = "contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema";
            errs.push(forbidden(&e.field, why));
        }
        let name = "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema";
        errs.push(forbidden(
            &schema.field,
            &budget_message(name, total, PER_CRD_LIMIT),
        ));
    }
    errs
}

/// kube's `getCostErrorMessage`.
pub fn budget_message(name: &str, cost: u64, limit: u64) -> String {
    let factor = cost as f64 / limit as f64;
    let factor = if factor > 100.0 {
        "more than 100x".to_string()
    } else if factor < 1.5 {
        format!("{factor:.6}x")
    } else {
        format!("{factor:.1}x")
    };
    format!(
        "{name} exceeds budget by factor of {factor} (try simplifying the rule, or adding \
         maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )
}

fn embedded(schema: &Value) -> bool {
    schema["x-kubernetes-embedded-resource"] == json!(true)
}

/// kube's `extractMaxElements`: how many times each child of `schema` can occur per occurrence
/// of `schema` (`None`: unbounded).
fn child_factor(schema: &Value) -> Option<u64> {
    let bound = |key: &str| schema[key].as_i64().map(|n| n.max(0).unsigned_abs());
    match schema["type"].as_str() {
        Some("object") if schema.get("additionalProperties").is_some() => bound("maxProperties"),
        Some("array") => bound("maxItems"),
        _ => Some(1),
    }
}

/// Visits the schema like kube's `ValidateCustomResourceDefinitionOpenAPISchema`: children
/// first, then the node's own rules. `cardinality` is `None` under an unbounded list or map.
fn walk(
    schema: &Value,
    field: &str,
    cardinality: Option<u64>,
    resource_root: bool,
    out: &mut Vec<ExpressionCost>,
) {
    let child = cardinality.and_then(|c| child_factor(schema).map(|f| c.saturating_mul(f)));
    if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        let path = format!("{field}.additionalProperties");
        walk(extra, &path, child, embedded(extra), out);
    }
    for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
        let path = format!("{field}.properties[{name}]");
        walk(prop, &path, child, embedded(prop), out);
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        walk(
            items,
            &format!("{field}.items"),
            child,
            embedded(items),
            out,
        );
    }
    rules(schema, field, cardinality, resource_root, out);
}

fn rules(
    schema: &Value,
    field: &str,
    cardinality: Option<u64>,
    resource_root: bool,
    out: &mut Vec<ExpressionCost>,
) {
    let Some(rules) = schema["x-kubernetes-validations"].as_array() else {
        return;
    };
    let Some(decl) = decl_of(schema, resource_root) else {
        return;
    };
    // Under an unbounded list or map, kube assumes as many as fit into a request.
    let cardinality = cardinality.unwrap_or(MAX_REQUEST_SIZE_BYTES / (decl.min_size + 1));
    let text = |v: &Value| {
        v.as_str()
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    for (i, rule) in rules.iter().enumerate() {
        let Some(expression) = text(&rule["rule"]) else {
            continue;
        };
        let Ok(cost) = estimate_text(&expression, &decl) else {
            continue; // refused for not compiling
        };
        let field = format!("{field}.x-kubernetes-validations[{i}]");
        out.push(ExpressionCost {
            field: format!("{field}.rule"),
            kind: ExpressionKind::Rule,
            expression,
            cost,
            cardinality,
            total: cost.saturating_mul(cardinality),
        });
        let Some(expression) = text(&rule["messageExpression"]) else {
            continue;
        };
        if let Ok(cost) = estimate_text(&expression, &decl) {
            out.push(ExpressionCost {
                field: format!("{field}.messageExpression"),
                kind: ExpressionKind::MessageExpression,
                expression,
                cost,
                cardinality: 1,
                total: cost,
            });
        }
    }
}
