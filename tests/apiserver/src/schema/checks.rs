//! Value checks of the schema walk: strings, numbers, enums and list types.

use crate::error::{FieldError, go_value};
use serde_json::{Value, json};

fn invalid(path: &str, value: &Value, detail: String) -> FieldError {
    FieldError::invalid(path, value, &detail)
}

pub fn check_list_type(schema: &Value, items: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let identity = |item: &Value| -> Value {
        match schema["x-kubernetes-list-type"].as_str() {
            Some("map") => Value::Object(
                keys.iter()
                    .map(|k| (k.to_string(), item[*k].clone()))
                    .collect(),
            ),
            _ => item.clone(),
        }
    };
    if !matches!(
        schema["x-kubernetes-list-type"].as_str(),
        Some("map" | "set")
    ) {
        return;
    }
    let mut seen: Vec<Value> = vec![];
    for (i, item) in items.iter().enumerate() {
        let id = identity(item);
        if seen.contains(&id) {
            let body = format!(
                "Duplicate value: {}",
                if id.is_object() {
                    id.to_string()
                } else {
                    go_value(&id)
                }
            );
            errs.push(FieldError::new(
                &format!("{path}[{i}]"),
                "Duplicate value",
                body,
            ));
        }
        seen.push(id);
    }
}

pub fn check_string(schema: &Value, s: &str, path: &str, errs: &mut Vec<FieldError>) {
    let v = json!(s);
    let len = s.chars().count() as u64;
    if let Some(max) = schema["maxLength"].as_u64()
        && len > max
    {
        errs.push(FieldError::new(
            path,
            "Too long",
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = schema["minLength"].as_u64()
        && len < min
    {
        errs.push(invalid(
            path,
            &v,
            format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = schema["pattern"].as_str() {
        match regex::Regex::new(pattern) {
            Ok(re) if re.is_match(s) => {}
            _ => errs.push(invalid(
                path,
                &v,
                format!("{path} in body should match '{pattern}'"),
            )),
        }
    }
    if schema["format"] == json!("date-time") && s.parse::<jiff::Timestamp>().is_err() {
        errs.push(invalid(
            path,
            &v,
            format!("{path} in body must be of type date-time: {}", go_value(&v)),
        ));
    }
}

pub fn check_number(schema: &Value, n: f64, v: Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(min) = schema["minimum"].as_f64() {
        let exclusive = schema["exclusiveMinimum"] == json!(true);
        if n < min || (exclusive && n == min) {
            let rel = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errs.push(invalid(
                path,
                &v,
                format!("{path} in body should be {rel} {}", schema["minimum"]),
            ));
        }
    }
    if let Some(max) = schema["maximum"].as_f64() {
        let exclusive = schema["exclusiveMaximum"] == json!(true);
        if n > max || (exclusive && n == max) {
            let rel = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            errs.push(invalid(
                path,
                &v,
                format!("{path} in body should be {rel} {}", schema["maximum"]),
            ));
        }
    }
}

pub fn check_enum(schema: &Value, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(allowed) = schema["enum"].as_array() else {
        return;
    };
    if allowed.contains(value) {
        return;
    }
    let list: Vec<String> = allowed.iter().map(go_value).collect();
    let body = format!(
        "Unsupported value: {}: supported values: {}",
        go_value(value),
        list.join(", ")
    );
    errs.push(FieldError::new(path, "Unsupported value", body));
}
