//! The CEL declaration of a schema node as kube-apiserver builds it for cost estimation
//! (`SchemaDeclType` in k8s.io/apiserver/pkg/cel/common/schemas.go): its kind, the largest
//! size a value can have (`MaxElements`) and its smallest JSON serialization.

use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// kube-apiserver's largest request body (3 MiB): the bound of everything else unbounded.
pub const MAX_REQUEST_SIZE_BYTES: u64 = 3 * 1024 * 1024;

/// Largest length of an RFC 3339 date-time or Go duration in JSON (`MaxDatetimeSizeJSON`).
const MAX_DATETIME_SIZE_JSON: u64 = 32;
/// Length of an RFC 3339 date in JSON (`JSONDateSize`).
const JSON_DATE_SIZE: u64 = 12;

/// What a schema node is in CEL.
#[derive(Debug, Clone, PartialEq)]
pub enum DeclKind {
    /// An object with named properties (a CEL message type).
    Object(BTreeMap<String, Decl>),
    /// An array.
    List(Box<Decl>),
    /// An object with `additionalProperties`: key and value declarations.
    Map(Box<Decl>, Box<Decl>),
    /// A string without a format CEL knows.
    String,
    /// A string of format `byte`.
    Bytes,
    /// An integer.
    Int,
    /// A number.
    Double,
    /// A boolean.
    Bool,
    /// A string of format `duration`.
    Duration,
    /// A string of format `date` or `date-time`.
    Timestamp,
    /// `x-kubernetes-int-or-string`: `dyn` in CEL.
    Dyn,
}

/// A declaration with kube's size bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Decl {
    /// The kind, with the declarations of children.
    pub kind: DeclKind,
    /// Largest size of a value: characters of a string (times 4 when bounded by `maxLength`:
    /// kube counts bytes), items of a list, entries of a map; 0 for numbers and objects.
    pub max_elements: u64,
    /// Smallest length of the value serialized as JSON.
    pub min_size: u64,
}

impl Decl {
    fn new(kind: DeclKind, max_elements: u64, min_size: u64) -> Self {
        Self {
            kind,
            max_elements,
            min_size,
        }
    }

    /// The key of maps: kube's shared `StringType`, which has no size bound (`MaxElements` 0).
    fn map_key() -> Self {
        Self::new(DeclKind::String, 0, 2)
    }
}

fn flag(schema: &Value, key: &str) -> bool {
    schema[key] == json!(true)
}

fn non_negative(schema: &Value, key: &str) -> Option<u64> {
    schema[key].as_i64().map(|n| n.max(0).unsigned_abs())
}

/// `maxLength` counts characters; kube bounds bytes, up to 4 per character.
fn from_max_length(schema: &Value) -> Option<u64> {
    non_negative(schema, "maxLength").map(|n| n.saturating_mul(4))
}

const UNBOUNDED_STRING: u64 = MAX_REQUEST_SIZE_BYTES - 2;

/// The declaration of `schema`, or `None` where kube hides the node from CEL (no type, arrays
/// without items, maps whose values are hidden). `resource_root` adds `apiVersion`, `kind` and
/// `metadata.name`/`generateName`, as kube does at the root and in embedded resources.
pub fn decl_of(schema: &Value, resource_root: bool) -> Option<Decl> {
    if flag(schema, "x-kubernetes-int-or-string") {
        // Since kube 1.34 (kubernetes#132837) `maxLength` bounds an int-or-string too.
        let max = from_max_length(schema).unwrap_or(UNBOUNDED_STRING);
        return Some(Decl::new(DeclKind::Dyn, max, 1));
    }
    let schema = if resource_root {
        with_type_and_object_meta(schema)
    } else {
        Cow::Borrowed(schema)
    };
    match schema["type"].as_str()? {
        "array" => list_decl(&schema),
        "object" => object_decl(&schema),
        "string" => Some(string_decl(&schema)),
        "boolean" => Some(Decl::new(DeclKind::Bool, 0, 4)),
        "number" => Some(Decl::new(DeclKind::Double, 0, 1)),
        "integer" => Some(Decl::new(DeclKind::Int, 0, 1)),
        _ => None,
    }
}

fn child_decl(schema: &Value) -> Option<Decl> {
    decl_of(schema, flag(schema, "x-kubernetes-embedded-resource"))
}

fn list_decl(schema: &Value) -> Option<Decl> {
    let items = child_decl(schema.get("items").filter(|i| i.is_object())?)?;
    let max =
        non_negative(schema, "maxItems").unwrap_or_else(|| UNBOUNDED_STRING / (items.min_size + 1));
    Some(Decl::new(DeclKind::List(Box::new(items)), max, 2))
}

fn object_decl(schema: &Value) -> Option<Decl> {
    if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        let values = child_decl(extra)?;
        // key, quotes, colon and comma around the smallest value
        let max = non_negative(schema, "maxProperties")
            .unwrap_or_else(|| UNBOUNDED_STRING / (values.min_size + 6));
        let kind = DeclKind::Map(Box::new(Decl::map_key()), Box::new(values));
        return Some(Decl::new(kind, max, 2));
    }
    let required: Vec<&str> = (schema["required"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let mut fields = BTreeMap::new();
    let mut min_size = 2; // {}
    for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
        let Some(decl) = child_decl(prop) else {
            continue;
        };
        // Defaults are filled in by the server, so only required fields without one count.
        if required.contains(&name.as_str()) && prop.get("default").is_none() {
            min_size += name.len() as u64 + decl.min_size + 4;
        }
        if let Some(escaped) = escape(name) {
            fields.insert(escaped, decl);
        }
    }
    Some(Decl::new(DeclKind::Object(fields), 0, min_size))
}

fn string_decl(schema: &Value) -> Decl {
    match schema["format"].as_str() {
        Some("byte") => {
            let max = non_negative(schema, "maxLength").unwrap_or(UNBOUNDED_STRING);
            Decl::new(DeclKind::Bytes, max, 2)
        }
        Some("duration") => Decl::new(DeclKind::Duration, MAX_DATETIME_SIZE_JSON, 3),
        Some("date") => Decl::new(DeclKind::Timestamp, JSON_DATE_SIZE, JSON_DATE_SIZE),
        Some("date-time") => Decl::new(DeclKind::Timestamp, MAX_DATETIME_SIZE_JSON, 21),
        _ => {
            let longest_enum = (schema["enum"].as_array().filter(|e| !e.is_empty()))
                .map(|e| e.iter().filter_map(Value::as_str).map(str::len).max());
            let max = match (from_max_length(schema), longest_enum) {
                (Some(max), _) => max,
                (None, Some(longest)) => longest.unwrap_or(0) as u64,
                (None, None) => UNBOUNDED_STRING,
            };
            Decl::new(DeclKind::String, max, 2)
        }
    }
}

/// kube's `WithTypeAndObjectMeta`: unless `kind`, `apiVersion` and `metadata.name` and
/// `.generateName` are all declared as strings, they are (re)declared minimally.
fn with_type_and_object_meta(schema: &Value) -> Cow<'_, Value> {
    let props = &schema["properties"];
    let is = |v: &Value, t: &str| v["type"] == json!(t);
    let meta = &props["metadata"];
    if is(&props["kind"], "string")
        && is(&props["apiVersion"], "string")
        && is(meta, "object")
        && is(&meta["properties"]["name"], "string")
        && is(&meta["properties"]["generateName"], "string")
    {
        return Cow::Borrowed(schema);
    }
    let mut out = schema.clone();
    let string = json!({"type": "string"});
    let added = json!({"kind": string, "apiVersion": string, "metadata": {"type": "object",
        "properties": {"name": string, "generateName": string}}});
    match out.get_mut("properties").and_then(Value::as_object_mut) {
        Some(map) => map.extend(
            added
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone())),
        ),
        None => out["properties"] = added,
    }
    Cow::Owned(out)
}

/// CEL's reserved words, which kube escapes as `__word__` in field names.
pub(super) const RESERVED: [&str; 21] = [
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// kube's `Escape`: the CEL name of a property, `None` when it cannot be named in CEL.
pub fn escape(name: &str) -> Option<String> {
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut out = String::new();
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if let Some(tail) = rest.strip_prefix("__") {
            out.push_str("__underscores__");
            rest = tail;
            continue;
        }
        match c {
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            _ => return None,
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_follow_kube() {
        let s = |v: Value| decl_of(&v, false).expect("decl");
        assert_eq!(s(json!({"type": "string"})).max_elements, 3_145_726);
        assert_eq!(
            s(json!({"type": "string", "maxLength": 10})).max_elements,
            40
        );
        assert_eq!(
            s(json!({"type": "string", "enum": ["A", "Long"]})).max_elements,
            4
        );
        assert_eq!(
            s(json!({"type": "string", "format": "byte", "maxLength": 10})).max_elements,
            10
        );
        assert_eq!(
            s(json!({"x-kubernetes-int-or-string": true})).max_elements,
            3_145_726
        );
        assert_eq!(
            s(json!({"type": "array", "items": {"type": "number"}})).max_elements,
            1_572_863
        );
        let map = s(json!({"type": "object", "additionalProperties": {"type": "number"}}));
        assert_eq!(map.max_elements, 449_389);
        let obj = s(json!({"type": "object", "required": ["abc", "d"],
            "properties": {"abc": {"type": "string"}, "d": {"type": "integer", "default": 1}}}));
        assert_eq!(obj.min_size, 2 + 3 + 2 + 4);
        assert!(decl_of(&json!({"type": "array"}), false).is_none());
    }

    #[test]
    fn names_are_escaped_like_kube() {
        assert_eq!(escape("namespace").as_deref(), Some("__namespace__"));
        assert_eq!(
            escape("a-b.c/d").as_deref(),
            Some("a__dash__b__dot__c__slash__d")
        );
        assert_eq!(escape("a__b").as_deref(), Some("a__underscores__b"));
        assert_eq!(escape("1a"), None);
        assert_eq!(escape("a b"), None);
    }
}
