//! Label selectors (equality- and set-based) and field selectors.

use serde_json::Value;

/// A malformed selector.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    /// The selector text could not be parsed.
    #[error("unable to parse requirement: {0}")]
    Parse(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

/// A parsed selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    reqs: Vec<(String, Op)>,
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0usize, vec![]);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_set(rest: &str, whole: &str) -> Result<Vec<String>, SelectorError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError::Parse(whole.to_string()))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn parse_requirement(req: &str) -> Result<(String, Op), SelectorError> {
    let req = req.trim();
    if let Some(key) = req.strip_prefix('!') {
        return Ok((key.trim().to_string(), Op::NotExists));
    }
    for (sep, neg) in [(" notin ", true), (" in ", false)] {
        if let Some((key, rest)) = req.split_once(sep) {
            let set = parse_set(rest, req)?;
            let op = if neg { Op::NotIn(set) } else { Op::In(set) };
            return Ok((key.trim().to_string(), op));
        }
    }
    for (sep, ctor) in [
        ("!=", Op::NotEq as fn(String) -> Op),
        ("==", Op::Eq),
        ("=", Op::Eq),
    ] {
        if let Some((key, value)) = req.split_once(sep) {
            return Ok((key.trim().to_string(), ctor(value.trim().to_string())));
        }
    }
    if req.contains(['(', ')', ' ']) {
        return Err(SelectorError::Parse(req.to_string()));
    }
    Ok((req.to_string(), Op::Exists))
}

impl Selector {
    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let reqs = split_top(text)
            .into_iter()
            .filter(|r| !r.trim().is_empty())
            .map(parse_requirement)
            .collect::<Result<_, _>>()?;
        Ok(Self { reqs })
    }

    /// The keys the requirements name, in order (field labels, for a field selector).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.reqs.iter().map(|(key, _)| key.as_str())
    }

    /// Whether the selector holds for a lookup function from key to value.
    pub fn matches_with(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.reqs.iter().all(|(key, op)| {
            let value = lookup(key);
            match op {
                Op::Eq(v) => value.as_deref() == Some(v.as_str()),
                Op::NotEq(v) => value.as_deref() != Some(v.as_str()),
                Op::In(set) => value.is_some_and(|x| set.contains(&x)),
                Op::NotIn(set) => value.is_none_or(|x| !set.contains(&x)),
                Op::Exists => value.is_some(),
                Op::NotExists => value.is_none(),
            }
        })
    }

    /// Label selector match against an object's `metadata.labels`.
    pub fn matches_labels(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.matches_with(|k| labels.get(k).and_then(Value::as_str).map(str::to_string))
    }

    /// Field selector match: keys are dotted paths into the object (`metadata.name`, `spec.nodeName`).
    pub fn matches_fields(&self, object: &Value) -> bool {
        self.matches_with(|path| {
            let mut cur = object;
            for part in path.split('.') {
                cur = cur.get(part)?;
            }
            match cur {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            }
        })
    }
}

/// Converts a `metav1.LabelSelector` object (matchLabels/matchExpressions) into a selector.
pub fn from_label_selector(sel: &Value) -> Selector {
    let mut reqs = vec![];
    if let Some(map) = sel["matchLabels"].as_object() {
        for (k, v) in map {
            reqs.push((
                k.clone(),
                Op::Eq(v.as_str().unwrap_or_default().to_string()),
            ));
        }
    }
    for expr in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = expr["key"].as_str().unwrap_or_default().to_string();
        let values: Vec<String> = expr["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let op = match expr["operator"].as_str() {
            Some("In") => Op::In(values),
            Some("NotIn") => Op::NotIn(values),
            Some("DoesNotExist") => Op::NotExists,
            _ => Op::Exists,
        };
        reqs.push((key, op));
    }
    Selector { reqs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "n", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn equality_and_set_based_requirements() {
        let o = obj(json!({"app": "web", "tier": "front"}));
        let yes = [
            "app=web",
            "app==web,tier!=back",
            "app in (web, api)",
            "tier notin (back)",
            "app",
            "!missing",
        ];
        for s in yes {
            assert!(Selector::parse(s).expect(s).matches_labels(&o), "{s}");
        }
        for s in [
            "app=api",
            "app notin (web)",
            "missing",
            "!app",
            "missing in (a)",
        ] {
            assert!(!Selector::parse(s).expect(s).matches_labels(&o), "{s}");
        }
    }

    #[test]
    fn field_selectors_use_paths() {
        let o = obj(json!({}));
        assert!(
            Selector::parse("metadata.name=n,metadata.namespace!=x")
                .expect("parse")
                .matches_fields(&o)
        );
        assert!(
            !Selector::parse("metadata.name=m")
                .expect("parse")
                .matches_fields(&o)
        );
    }

    #[test]
    fn label_selector_objects_convert() {
        let sel = from_label_selector(&json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}));
        assert!(sel.matches_labels(&obj(json!({"app": "web", "tier": "front"}))));
        assert!(!sel.matches_labels(&obj(json!({"app": "web"}))));
    }
}
