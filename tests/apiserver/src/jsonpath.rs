//! The JSONPath subset used by printer columns: `.a.b`, `.a[0]`, `.a[*].b`, `.a[?(@.k=="v")].b`.

use serde_json::Value;

/// A malformed path.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonPathError {
    /// The path could not be parsed at this position.
    #[error("unsupported JSONPath {0:?}")]
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter(Vec<String>, Value),
}

fn parse_filter(inner: &str, whole: &str) -> Result<Step, JsonPathError> {
    let bad = || JsonPathError::Unsupported(whole.to_string());
    let expr = inner
        .strip_prefix("?(")
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(bad)?;
    let (lhs, rhs) = expr.split_once("==").ok_or_else(bad)?;
    let path = lhs.trim().strip_prefix("@.").ok_or_else(bad)?;
    let rhs = rhs.trim();
    let value = match rhs.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(s) => Value::String(s.to_string()),
        None => match rhs.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            Some(s) => Value::String(s.to_string()),
            None => serde_json::from_str(rhs).map_err(|_| bad())?,
        },
    };
    Ok(Step::Filter(
        path.split('.').map(str::to_string).collect(),
        value,
    ))
}

fn parse(path: &str) -> Result<Vec<Step>, JsonPathError> {
    let trimmed = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut rest = trimmed.strip_prefix('$').unwrap_or(trimmed);
    let mut steps = vec![];
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| JsonPathError::Unsupported(path.into()))?;
            let inner = &r[..end];
            // A filter may itself contain `]`? Not in the supported subset.
            steps.push(match inner {
                "*" => Step::All,
                i if i.starts_with('?') => parse_filter(i, path)?,
                i => Step::Index(
                    i.parse()
                        .map_err(|_| JsonPathError::Unsupported(path.into()))?,
                ),
            });
            rest = &r[end + 1..];
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            steps.push(Step::Field(r[..end].to_string()));
            rest = &r[end..];
        } else {
            return Err(JsonPathError::Unsupported(path.into()));
        }
    }
    Ok(steps)
}

/// All values `path` selects in `doc`.
pub fn select(doc: &Value, path: &str) -> Result<Vec<Value>, JsonPathError> {
    let mut current = vec![doc.clone()];
    for step in parse(path)? {
        current = current
            .into_iter()
            .flat_map(|v| match &step {
                Step::Field(f) => v.get(f).cloned().into_iter().collect::<Vec<_>>(),
                Step::Index(i) => v.get(*i).cloned().into_iter().collect(),
                Step::All => v.as_array().cloned().unwrap_or_default(),
                Step::Filter(key, want) => v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|item| key.iter().try_fold(*item, |cur, k| cur.get(k)) == Some(want))
                    .cloned()
                    .collect(),
            })
            .collect();
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selects_fields_indexes_and_filters() {
        let doc = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "False"}]},
            "spec": {"ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(
            select(&doc, ".status.conditions[?(@.type==\"Ready\")].status").expect("ok"),
            vec![json!("True")]
        );
        assert_eq!(
            select(&doc, ".spec.ports[*].port").expect("ok"),
            vec![json!(80), json!(443)]
        );
        assert_eq!(
            select(&doc, "{.spec.ports[1].port}").expect("ok"),
            vec![json!(443)]
        );
        assert!(select(&doc, ".missing.field").expect("ok").is_empty());
        assert!(select(&doc, "spec").is_err());
    }
}
