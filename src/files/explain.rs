//! What a person needs to fix a document: the line of the field an error names, the field they
//! probably meant (`spec.tcp.hots`: did you mean `host`?), and the type wanted in words, read
//! from the CRD's schema ("a port number (1 to 65535)", not serde's `expected i32`).

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

/// A document's shape with the line of every key and list item (1-based), read again only
/// when the document is wrong.
#[derive(Debug)]
pub(super) enum Node {
    Map(Vec<(String, usize, Node)>),
    Seq(Vec<(usize, Node)>),
    Leaf,
}

impl Node {
    /// The line of the deepest part of `path` (`spec.http.headers[0].name`) the document has.
    pub(super) fn line_of(&self, path: &str) -> Option<usize> {
        let mut node = self;
        let mut line = None;
        for segment in segments(path) {
            let found = match node {
                Node::Map(entries) => (entries.iter())
                    .find(|(key, ..)| *key == segment)
                    .map(|(_, line, child)| (*line, child)),
                Node::Seq(items) => (segment.parse::<usize>().ok())
                    .and_then(|index| items.get(index))
                    .map(|(line, child)| (*line, child)),
                Node::Leaf => None,
            };
            let Some((at, child)) = found else { break };
            (line, node) = (Some(at), child);
        }
        line
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Value>>()? {
            let name = match key.value {
                Value::String(name) => name,
                other => other.to_string(),
            };
            let value = map.next_value::<Node>()?;
            entries.push((name, key.referenced.line() as usize, value));
        }
        Ok(Node::Map(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push((item.referenced.line() as usize, item.value));
        }
        Ok(Node::Seq(items))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
}

/// The parts of `spec.http.headers[0].name` or `spec.http.headers.0.name`.
fn segments(path: &str) -> impl Iterator<Item = &str> {
    (path.split(['.', '[', ']'])).filter(|segment| !segment.is_empty())
}

/// The CRD's schema of a whole HealthCheck (`apiVersion` ... `status`).
fn document_schema() -> Value {
    use kube::CustomResourceExt;
    let crd = serde_json::to_value(crate::api::HealthCheck::crd()).unwrap_or_default();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// The schema of the field at `path`, when the CRD declares one.
fn schema_at(root: &Value, path: &str) -> Option<Value> {
    let mut node = root;
    for segment in segments(path) {
        node = match segment.parse::<usize>() {
            Ok(_) if node.get("items").is_some() => &node["items"],
            _ => node.get("properties")?.get(segment)?,
        };
    }
    Some(node.clone())
}

/// ` (did you mean `host`?)` for an unknown field at `path`, when a known field of the same
/// object is spelt closely enough.
pub(super) fn did_you_mean(path: &str) -> String {
    let (parent, field) = path.rsplit_once('.').unwrap_or(("", path));
    let Some(known) = schema_at(&document_schema(), parent) else {
        return String::new();
    };
    let names = (known["properties"].as_object().into_iter()).flat_map(|map| map.keys());
    let best = names
        .map(|name| {
            (
                strsim::jaro_winkler(&field.to_lowercase(), &name.to_lowercase()),
                name,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    best.map(|(_, name)| format!(" (did you mean `{name}`?)"))
        .unwrap_or_default()
}

/// What the CRD wants at `path`, in words: "a port number (1 to 65535)", "a duration such as
/// 30s", "one of GET, HEAD, POST"; `None` when the schema says nothing useful.
pub(super) fn wanted(path: &str) -> Option<String> {
    let schema = schema_at(&document_schema(), path)?;
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect();
        return Some(format!("one of {}", values.join(", ")));
    }
    let range = |what: &str| match (schema["minimum"].as_f64(), schema["maximum"].as_f64()) {
        (Some(min), Some(max)) => format!("{what} from {min} to {max}"),
        (Some(min), None) => format!("{what} of at least {min}"),
        _ => what.to_string(),
    };
    let pattern = schema["pattern"].as_str().unwrap_or_default();
    let words = match schema["type"].as_str() {
        _ if schema["x-kubernetes-int-or-string"] == true => "a number or a string".to_string(),
        Some("integer") if path.ends_with(".port") => "a port number (1 to 65535)".to_string(),
        Some("integer") => range("a whole number"),
        Some("number") => range("a number"),
        Some("boolean") => "true or false".to_string(),
        Some("string") if pattern.contains("ms|s|m|h") => "a duration such as 30s or 1h30m".into(),
        Some("string") => "a string".to_string(),
        Some("array") => "a list".to_string(),
        Some("object") => "a mapping of fields".to_string(),
        _ => return None,
    };
    Some(words)
}

/// serde's message for a value of the wrong type at `path`, in the words of the schema:
/// `invalid type: string "x", expected i32` becomes `expected a port number (1 to 65535), got
/// the string "x"`. Other messages are kept.
pub(super) fn friendly(path: &str, message: &str) -> String {
    let rest = (message.strip_prefix("invalid type: "))
        .or_else(|| message.strip_prefix("invalid value: "));
    let Some((got, _)) = rest.and_then(|rest| rest.rsplit_once(", expected ")) else {
        return message.to_string();
    };
    match wanted(path) {
        Some(wanted) => format!("expected {wanted}, got {}", got_in_words(got)),
        None => message.to_string(),
    }
}

/// serde's `string "x"`, ``integer `5` ``, `map`, `sequence` as a person says them.
fn got_in_words(got: &str) -> String {
    let unquote = |s: &str| s.trim_matches('`').to_string();
    match got.split_once(' ') {
        Some(("string", value)) => format!("the string {value}"),
        Some(("integer" | "floating", value)) => {
            let value = value.strip_prefix("point ").unwrap_or(value);
            format!("the number {}", unquote(value))
        }
        Some(("boolean", value)) => unquote(value),
        _ if got == "map" => "a mapping".to_string(),
        _ if got == "sequence" => "a list".to_string(),
        _ => got.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_is_found_by_its_path_on_its_line() {
        let text = "apiVersion: x\nspec:\n  http:\n    url: u\n    headers:\n      - name: a\n      - {nmae: b}\n";
        let node: Node = serde_saphyr::from_str(text).unwrap();
        assert_eq!(node.line_of("spec.http.url"), Some(4));
        assert_eq!(node.line_of("spec.http.headers[1].nmae"), Some(7));
        assert_eq!(node.line_of("spec.http.headers.0.name"), Some(6));
        assert_eq!(
            node.line_of("spec.http.missing"),
            Some(3),
            "the deepest part there is"
        );
        assert_eq!(node.line_of("nothing"), None);
    }

    #[test]
    fn an_unknown_field_suggests_the_closest_known_one() {
        assert_eq!(did_you_mean("spec.tcp.hots"), " (did you mean `host`?)");
        assert_eq!(did_you_mean("spec.intreval"), " (did you mean `interval`?)");
        assert_eq!(
            did_you_mean("spec.http.headers.0.nmae"),
            " (did you mean `name`?)"
        );
        assert_eq!(did_you_mean("spec.tcp.zzzzzz"), "");
    }

    #[test]
    fn types_are_named_in_words() {
        let port = friendly(
            "spec.tcp.port",
            "invalid type: string \"http\", expected i32",
        );
        assert_eq!(
            port,
            "expected a port number (1 to 65535), got the string \"http\""
        );
        let threshold = friendly(
            "spec.failureThreshold",
            "invalid type: floating point `1.5`, expected i32",
        );
        assert_eq!(
            threshold,
            "expected a whole number from 1 to 1000, got the number 1.5"
        );
        let flag = friendly(
            "spec.suspend",
            "invalid type: string \"yes\", expected a boolean",
        );
        assert_eq!(flag, "expected true or false, got the string \"yes\"");
        let interval = friendly(
            "spec.interval",
            "invalid type: integer `30`, expected a string",
        );
        assert_eq!(
            interval,
            "expected a duration such as 30s or 1h30m, got the number 30"
        );
        let method = wanted("spec.http.method").unwrap();
        assert!(method.starts_with("one of GET, HEAD"), "{method}");
        assert_eq!(
            friendly("spec.x", "missing field `url`"),
            "missing field `url`"
        );
    }
}
