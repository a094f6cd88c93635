//! The structural schema walk: defaulting, pruning, type and value checks, CEL rules.

use super::{cel, checks};
use crate::error::FieldError;
use serde_json::{Map, Value, json};

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn invalid(path: &str, value: &Value, detail: String) -> FieldError {
    FieldError::invalid(path, value, &detail)
}

/// Marks a pruned unknown field among the errors; split out by [`validate_root`].
const PRUNED: &str = "unknown field";

/// A valid object: defaulted and pruned, with the paths of the unknown fields that were pruned.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// The defaulted, pruned object.
    pub object: Value,
    /// Paths of pruned unknown fields, e.g. `spec.bogus`.
    pub unknown_fields: Vec<String>,
}

/// Validates the root of a custom resource; `apiVersion`, `kind` and `metadata` are kept as they
/// are. `old` (on updates) enables transition rules that use `oldSelf`.
pub fn validate_root(
    schema: &Value,
    object: &Value,
    old: Option<&Value>,
    ratcheting: bool,
) -> Result<Validated, Vec<FieldError>> {
    let mut obj = object.clone();
    let mut errs = vec![];
    if let Some(map) = obj.as_object_mut() {
        walk_object(schema, map, old, "", &mut errs);
    }
    check_rules(schema, &obj, old, "", &mut errs);
    let (pruned, mut errs): (Vec<FieldError>, Vec<FieldError>) =
        errs.into_iter().partition(|e| e.kind == PRUNED);
    if let Some(old) = old.filter(|_| ratcheting) {
        errs.retain(|e| !ratcheted(e, old, object));
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Validated {
        object: obj,
        unknown_fields: pruned.into_iter().map(|e| e.field).collect(),
    })
}

/// Validation ratcheting (`CRDValidationRatcheting`, on by default since kube 1.30): on an update, an error on a
/// field whose value did not change is not reported, so writes that leave an invalid stored
/// field alone (e.g. a `/status` write) succeed. Missing required fields and errors on the root
/// are never ratcheted.
fn ratcheted(err: &FieldError, old: &Value, new: &Value) -> bool {
    if err.kind == "Required value" {
        return false;
    }
    match (lookup(old, &err.field), lookup(new, &err.field)) {
        (Some(before), Some(after)) => before == after,
        _ => false,
    }
}

/// The value at a kube field path such as `spec.http.headers[0].name` (`None` when the path
/// does not resolve or is the root, `<nil>`).
fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() || path == "<nil>" {
        return None;
    }
    let mut at = root;
    for segment in path.split('.') {
        let (name, indexes) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !name.is_empty() {
            at = at.get(name)?;
        }
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            let index = index.strip_suffix(']')?;
            at = match index.parse::<usize>() {
                Ok(n) if at.is_array() => at.get(n)?,
                _ => at.get(index)?,
            };
        }
    }
    Some(at)
}

fn type_ok(want: &str, v: &Value) -> bool {
    match (want, type_name(v)) {
        ("number", "integer") => true,
        (want, got) => want == got,
    }
}

fn walk(
    schema: &Value,
    value: &mut Value,
    old: Option<&Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if value.is_null() && schema["nullable"] == json!(true) {
        return;
    }
    // An int-or-string has no `type`; its value validations and rules apply as to any value.
    if schema["x-kubernetes-int-or-string"] == json!(true) {
        if !value.is_string() && type_name(value) != "integer" {
            let got = type_name(value);
            errs.push(invalid(
                path,
                &json!(got),
                format!("{path} in body must be of type integer-or-string: \"{got}\""),
            ));
            return;
        }
    } else if let Some(want) = schema["type"].as_str()
        && !type_ok(want, value)
    {
        let got = type_name(value);
        errs.push(invalid(
            path,
            &json!(got),
            format!("{path} in body must be of type {want}: \"{got}\""),
        ));
        return;
    }
    match value {
        Value::Object(map) => walk_object(schema, map, old, path, errs),
        Value::Array(items) => walk_array(schema, items, old, path, errs),
        _ => check_scalar(schema, value, path, errs),
    }
    check_any_of(schema, value, path, errs);
    check_rules(schema, value, old, path, errs);
}

/// A string's or a number's value validations (pattern, lengths, bounds, enum).
fn check_scalar(schema: &Value, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match value {
        Value::String(s) => checks::check_string(schema, s, path, errs),
        Value::Number(n) => {
            let number = n.as_f64().unwrap_or_default();
            checks::check_number(schema, number, value.clone(), path, errs)
        }
        _ => {}
    }
    checks::check_enum(schema, value, path, errs);
}

/// `anyOf` of value validations (what a structural schema allows, e.g. on an int-or-string): a
/// scalar must pass at least one branch, or it gets each branch's errors and go-openapi's
/// "must validate at least one schema (anyOf)".
fn check_any_of(schema: &Value, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(branches) = schema["anyOf"].as_array() else {
        return;
    };
    if value.is_object() || value.is_array() {
        return;
    }
    let mut failures = Vec::new();
    for branch in branches {
        let mut branch_errors = Vec::new();
        check_scalar(branch, value, path, &mut branch_errors);
        if branch_errors.is_empty() {
            return;
        }
        failures.extend(branch_errors);
    }
    errs.extend(failures);
    let detail = format!("{path} must validate at least one schema (anyOf)");
    errs.push(invalid(path, value, detail));
}

/// Drops `null`s of non-nullable properties, then fills in defaults of missing ones.
fn apply_defaults(schema: &Value, map: &mut Map<String, Value>) {
    for (key, prop) in schema["properties"].as_object().into_iter().flatten() {
        if map.get(key).is_some_and(Value::is_null) && prop["nullable"] != json!(true) {
            map.remove(key);
        }
        if !map.contains_key(key)
            && let Some(default) = prop.get("default")
        {
            map.insert(key.clone(), default.clone());
        }
    }
}

fn walk_object(
    schema: &Value,
    map: &mut Map<String, Value>,
    old: Option<&Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let props = schema["properties"].as_object();
    let root = path.is_empty();
    apply_defaults(schema, map);
    for req in schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(req) {
            errs.push(FieldError::required(&child(path, req)));
        }
    }
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == json!(true);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let sub = props.and_then(|p| p.get(&key)).or(additional);
        match (sub, map.get_mut(&key)) {
            (Some(sub), Some(v)) => walk(
                sub,
                v,
                old.and_then(|o| o.get(&key)),
                &child(path, &key),
                errs,
            ),
            (None, _) if !preserve && additional.is_none() => {
                map.remove(&key);
                errs.push(FieldError::new(&child(path, &key), PRUNED, String::new()));
            }
            _ => {}
        }
    }
    let n = map.len() as f64;
    let bound = |k: &str| schema[k].as_f64();
    if bound("maxProperties").is_some_and(|m| n > m) {
        let body = format!(
            "Too many: {n}: must have at most {} items",
            schema["maxProperties"]
        );
        errs.push(FieldError::new(path, "Too many", body));
    }
}

/// The old element matching `item` in a list-map (by its keys), for transition rules.
fn old_item<'a>(schema: &Value, item: &Value, old: Option<&'a Value>) -> Option<&'a Value> {
    let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    old?.as_array()?
        .iter()
        .find(|o| keys.iter().all(|k| o.get(*k) == item.get(*k)))
}

fn walk_array(
    schema: &Value,
    items: &mut [Value],
    old: Option<&Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter_mut().enumerate() {
            let prev = old_item(schema, item, old);
            walk(item_schema, item, prev, &format!("{path}[{i}]"), errs);
        }
    }
    let n = items.len();
    if let Some(max) = schema["maxItems"].as_u64()
        && n as u64 > max
    {
        errs.push(FieldError::new(
            path,
            "Too many",
            format!("Too many: {n}: must have at most {max} items"),
        ));
    }
    if let Some(min) = schema["minItems"].as_u64()
        && (n as u64) < min
    {
        errs.push(invalid(
            path,
            &json!(n),
            format!("{path} in body should have at least {min} items"),
        ));
    }
    checks::check_list_type(schema, items, path, errs);
}

fn rule_error(rule: &Value, value: &Value, schema_type: &str, path: &str) -> FieldError {
    let text = rule["rule"].as_str().unwrap_or_default();
    let message = match (rule["messageExpression"].as_str(), rule["message"].as_str()) {
        (Some(expr), fallback) => cel::eval_message(expr, value)
            .ok()
            .or(fallback.map(str::to_string)),
        (None, m) => m.map(str::to_string),
    }
    .unwrap_or_else(|| format!("failed rule: {text}"));
    let field = match rule["fieldPath"].as_str() {
        Some(fp) => format!("{path}{fp}").trim_start_matches('.').to_string(),
        None if path.is_empty() => "<nil>".to_string(),
        None => path.to_string(),
    };
    match rule["reason"].as_str() {
        Some("FieldValueRequired") => FieldError::new(
            &field,
            "Required value",
            format!("Required value: {message}"),
        ),
        Some("FieldValueForbidden") => {
            FieldError::new(&field, "Forbidden", format!("Forbidden: {message}"))
        }
        Some("FieldValueDuplicate") => FieldError::new(
            &field,
            "Duplicate value",
            format!("Duplicate value: {message}"),
        ),
        _ => FieldError::invalid(&field, &json!(schema_type), &message),
    }
}

fn check_rules(
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    // kube names the schema's type in rule errors: none for an int-or-string
    let int_or_string = schema["x-kubernetes-int-or-string"] == json!(true);
    let schema_type =
        (schema["type"].as_str()).unwrap_or(if int_or_string { "" } else { "object" });
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let text = rule["rule"].as_str().unwrap_or_default();
        let old_self = if cel::is_transition_rule(text) {
            // Transition rules only run on updates where the old value exists, as in kube.
            let Some(old) = old else { continue };
            Some(old)
        } else {
            None
        };
        match cel::eval_rule(text, value, old_self) {
            Ok(true) => {}
            Ok(false) => errs.push(rule_error(rule, value, schema_type, path)),
            Err(e) => {
                let field = if path.is_empty() { "<nil>" } else { path };
                errs.push(FieldError::new(
                    field,
                    "Internal error",
                    format!("Internal error: rule {text:?}: {e}"),
                ));
            }
        }
    }
}
