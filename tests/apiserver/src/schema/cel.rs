//! CEL evaluation of `x-kubernetes-validations` rules with the `cel` crate, plus the kube
//! library functions it lacks (`isURL`).

use cel::{Context, Program, Value as CelValue};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// A rule that could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum CelError {
    /// The expression does not parse.
    #[error("compilation failed: {0}")]
    Compile(String),
    /// Evaluation failed (missing field without `has()`, bad types, ...).
    #[error("{0}")]
    Execution(String),
    /// The rule did not return the expected type.
    #[error("rule returned {0}, expected {1}")]
    WrongType(String, &'static str),
}

/// JSON to CEL, with integers as `int` and maps keyed by string, as kube does. A key that is a
/// CEL reserved word (`in`, `namespace`, ...) is also given under kube's escaped name
/// (`__in__`), the only name a rule can select it by.
pub fn to_cel(v: &Value) -> CelValue {
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => CelValue::Int(i),
            None => CelValue::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => {
            let mut m: HashMap<String, CelValue> =
                map.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            for (key, value) in map {
                if super::cost::is_reserved(key) {
                    m.insert(format!("__{key}__"), to_cel(value));
                }
            }
            m.into()
        }
    }
}

fn is_url(s: Arc<String>) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
}

fn run(expr: &str, self_value: &Value, old_self: Option<&Value>) -> Result<CelValue, CelError> {
    let program = Program::compile(expr).map_err(|e| CelError::Compile(e.to_string()))?;
    let mut ctx = Context::default();
    ctx.add_variable_from_value("self", to_cel(self_value));
    if let Some(old) = old_self {
        ctx.add_variable_from_value("oldSelf", to_cel(old));
    }
    ctx.add_function("isURL", is_url)
        .map_err(|e| CelError::Compile(e.to_string()))?;
    program
        .execute(&ctx)
        .map_err(|e| CelError::Execution(e.to_string()))
}

/// Evaluates a validation rule: true means valid.
pub fn eval_rule(
    rule: &str,
    self_value: &Value,
    old_self: Option<&Value>,
) -> Result<bool, CelError> {
    match run(rule, self_value, old_self)? {
        CelValue::Bool(b) => Ok(b),
        other => Err(CelError::WrongType(format!("{other:?}"), "bool")),
    }
}

/// Evaluates a `messageExpression`.
pub fn eval_message(expr: &str, self_value: &Value) -> Result<String, CelError> {
    match run(expr, self_value, None)? {
        CelValue::String(s) => Ok(s.to_string()),
        other => Err(CelError::WrongType(format!("{other:?}"), "string")),
    }
}

/// Whether a rule refers to `oldSelf` (a transition rule, only checked on updates).
pub fn is_transition_rule(rule: &str) -> bool {
    rule.contains("oldSelf")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(rule: &str, v: Value) -> bool {
        eval_rule(rule, &v, None).unwrap_or_else(|e| panic!("{rule}: {e}"))
    }

    #[test]
    fn reserved_words_are_selected_by_their_escaped_names() {
        assert!(ok(
            "has(self.__in__) && self.__in__ == [1]",
            json!({"in": [1]})
        ));
        assert!(ok("!has(self.__in__)", json!({"inn": 1})));
    }

    #[test]
    fn kube_style_rules_evaluate() {
        let spec = json!({"interval": "1m30s", "timeout": "10s", "targets": [{"port": 80}, {"port": 443}], "kind": "HTTP"});
        assert!(ok(
            "duration(self.timeout) < duration(self.interval)",
            spec.clone()
        ));
        assert!(ok("!has(self.http) || self.http.url != ''", spec.clone()));
        assert!(ok(
            "self.targets.all(t, t.port > 0 && t.port < 65536)",
            spec.clone()
        ));
        assert!(ok("self.targets.exists(t, t.port == 443)", spec.clone()));
        assert!(ok(
            "self.targets.filter(t, t.port > 100).size() == 1",
            spec.clone()
        ));
        assert!(ok(
            "size(self.kind) == 4 && self.kind.matches('^[A-Z]+$')",
            spec.clone()
        ));
        assert!(ok("self.kind in ['HTTP', 'TCP']", spec.clone()));
        assert!(!ok("duration(self.interval) < duration('1m')", spec));
        assert!(ok(
            "isURL(self.url)",
            json!({"url": "https://example.com/x"})
        ));
        assert!(!ok("isURL(self.url)", json!({"url": "nope"})));
    }

    #[test]
    fn messages_and_errors() {
        assert_eq!(
            eval_message("'got ' + self.kind", &json!({"kind": "X"})).expect("msg"),
            "got X"
        );
        assert!(eval_rule("self.missing == 1", &json!({}), None).is_err());
        assert!(matches!(
            eval_rule("self.(", &json!({}), None),
            Err(CelError::Compile(_))
        ));
    }
}
