//! Decoding of Kubernetes protobuf request bodies for the few types that client-go's typed
//! clientset writes in protobuf (kubectl `create configmap|secret|namespace`, helm's release
//! Secrets, the reviews of `kubectl auth can-i|whoami`). Answers are always JSON, which those
//! clients accept.

use base64::Engine;
use serde_json::{Map, Value, json};

/// A protobuf body that cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The envelope or a message is malformed.
    #[error("malformed protobuf body")]
    Malformed,
    /// No decoder for this kind.
    #[error("protobuf bodies are not supported for {0}; send JSON")]
    Unsupported(String),
}

#[derive(Clone, Copy)]
enum F {
    Str,
    Bytes,
    Int,
    Bool,
    Time,
    Msg(&'static [(u64, &'static str, F)]),
    MapStr,
    MapBytes,
    RepStr,
    RepMsg(&'static [(u64, &'static str, F)]),
}

const OWNER_REF: &[(u64, &str, F)] = &[
    (1, "kind", F::Str),
    (3, "name", F::Str),
    (4, "uid", F::Str),
    (5, "apiVersion", F::Str),
    (6, "controller", F::Bool),
    (7, "blockOwnerDeletion", F::Bool),
];
const OBJECT_META: &[(u64, &str, F)] = &[
    (1, "name", F::Str),
    (2, "generateName", F::Str),
    (3, "namespace", F::Str),
    (5, "uid", F::Str),
    (6, "resourceVersion", F::Str),
    (7, "generation", F::Int),
    (8, "creationTimestamp", F::Time),
    (11, "labels", F::MapStr),
    (12, "annotations", F::MapStr),
    (13, "ownerReferences", F::RepMsg(OWNER_REF)),
    (14, "finalizers", F::RepStr),
];
const SECRET: &[(u64, &str, F)] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "data", F::MapBytes),
    (3, "type", F::Str),
    (4, "stringData", F::MapStr),
    (5, "immutable", F::Bool),
];
const CONFIG_MAP: &[(u64, &str, F)] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "data", F::MapStr),
    (3, "binaryData", F::MapBytes),
    (4, "immutable", F::Bool),
];
const NS_SPEC: &[(u64, &str, F)] = &[(1, "finalizers", F::RepStr)];
const NAMESPACE: &[(u64, &str, F)] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(NS_SPEC)),
];
const RESOURCE_ATTRIBUTES: &[(u64, &str, F)] = &[
    (1, "namespace", F::Str),
    (2, "verb", F::Str),
    (3, "group", F::Str),
    (4, "version", F::Str),
    (5, "resource", F::Str),
    (6, "subresource", F::Str),
    (7, "name", F::Str),
];
const NON_RESOURCE_ATTRIBUTES: &[(u64, &str, F)] = &[(1, "path", F::Str), (2, "verb", F::Str)];
/// SubjectAccessReviewSpec; a SelfSubjectAccessReviewSpec has its first two fields.
const ACCESS_SPEC: &[(u64, &str, F)] = &[
    (1, "resourceAttributes", F::Msg(RESOURCE_ATTRIBUTES)),
    (2, "nonResourceAttributes", F::Msg(NON_RESOURCE_ATTRIBUTES)),
    (3, "user", F::Str),
    (4, "groups", F::RepStr),
    (6, "uid", F::Str),
];
const ACCESS_REVIEW: &[(u64, &str, F)] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(ACCESS_SPEC)),
];
const RULES_REVIEW: &[(u64, &str, F)] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(&[(1, "namespace", F::Str)])),
];
const SELF_SUBJECT_REVIEW: &[(u64, &str, F)] = &[(1, "metadata", F::Msg(OBJECT_META))];
const TYPE_META: &[(u64, &str, F)] = &[(1, "apiVersion", F::Str), (2, "kind", F::Str)];
const UNKNOWN: &[(u64, &str, F)] = &[(1, "typeMeta", F::Msg(TYPE_META)), (2, "raw", F::Bytes)];

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.buf.split_first().ok_or(ProtoError::Malformed)?;
            self.buf = rest;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(ProtoError::Malformed)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if n > self.buf.len() {
            return Err(ProtoError::Malformed);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// Next (field number, wire type, payload bytes or varint value).
    fn field(&mut self) -> Result<(u64, Result<&'a [u8], u64>), ProtoError> {
        let tag = self.varint()?;
        let payload = match tag & 7 {
            0 => Err(self.varint()?),
            1 => Ok(self.take(8)?),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| ProtoError::Malformed)?;
                Ok(self.take(n)?)
            }
            5 => Ok(self.take(4)?),
            _ => return Err(ProtoError::Malformed),
        };
        Ok((tag >> 3, payload))
    }
}

fn text(b: &[u8]) -> Value {
    json!(String::from_utf8_lossy(b))
}

fn map_entry(b: &[u8], bytes: bool) -> Result<(String, Value), ProtoError> {
    let fields = decode(
        b,
        &[
            (1, "k", F::Str),
            (2, "v", if bytes { F::Bytes } else { F::Str }),
        ],
    )?;
    let key = fields
        .get("k")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok((key, fields.get("v").cloned().unwrap_or(json!(""))))
}

fn time(b: &[u8]) -> Result<Value, ProtoError> {
    let fields = decode(b, &[(1, "s", F::Int)])?;
    let secs = fields.get("s").and_then(Value::as_i64).unwrap_or_default();
    let ts = jiff::Timestamp::from_second(secs).map_err(|_| ProtoError::Malformed)?;
    Ok(json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

fn decode(buf: &[u8], schema: &[(u64, &str, F)]) -> Result<Map<String, Value>, ProtoError> {
    let mut out = Map::new();
    let mut r = Reader { buf };
    while !r.buf.is_empty() {
        let (num, payload) = r.field()?;
        let Some(&(_, name, kind)) = schema.iter().find(|(n, _, _)| *n == num) else {
            continue;
        };
        let push = |out: &mut Map<String, Value>, v: Value| {
            if let Value::Array(items) = out.entry(name).or_insert_with(|| json!([])) {
                items.push(v);
            }
        };
        let insert = |out: &mut Map<String, Value>, (k, v): (String, Value)| {
            if let Value::Object(m) = out.entry(name).or_insert_with(|| json!({})) {
                m.insert(k, v);
            }
        };
        match (kind, payload) {
            // gogo-protobuf writes zero values of optional fields; JSON omits them.
            (F::Int | F::Bool, Err(0)) => {}
            (F::Str, Ok([])) => {}
            (F::Int, Err(v)) => drop(out.insert(name.into(), json!(v as i64))),
            (F::Bool, Err(v)) => drop(out.insert(name.into(), json!(v != 0))),
            (F::Str, Ok(b)) => drop(out.insert(name.into(), text(b))),
            (F::Bytes, Ok(b)) => drop(out.insert(
                name.into(),
                json!(base64::engine::general_purpose::STANDARD.encode(b)),
            )),
            (F::Time, Ok(b)) => drop(out.insert(name.into(), time(b)?)),
            (F::Msg(s), Ok(b)) => drop(out.insert(name.into(), Value::Object(decode(b, s)?))),
            (F::MapStr, Ok(b)) => insert(&mut out, map_entry(b, false)?),
            (F::MapBytes, Ok(b)) => insert(&mut out, map_entry(b, true)?),
            (F::RepStr, Ok(b)) => push(&mut out, text(b)),
            (F::RepMsg(s), Ok(b)) => push(&mut out, Value::Object(decode(b, s)?)),
            _ => return Err(ProtoError::Malformed),
        }
    }
    Ok(out)
}

/// Decodes a `k8s\0`-enveloped protobuf object into its JSON form.
pub fn to_json(body: &[u8]) -> Result<Value, ProtoError> {
    let inner = body.strip_prefix(b"k8s\0").ok_or(ProtoError::Malformed)?;
    let unknown = decode(inner, UNKNOWN)?;
    let kind = unknown["typeMeta"]["kind"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let raw = unknown
        .get("raw")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|_| ProtoError::Malformed)?;
    let schema = match kind.as_str() {
        "Secret" => SECRET,
        "ConfigMap" => CONFIG_MAP,
        "Namespace" => NAMESPACE,
        // `kubectl auth can-i` and `kubectl auth whoami`.
        "SelfSubjectAccessReview" | "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            ACCESS_REVIEW
        }
        "SelfSubjectRulesReview" => RULES_REVIEW,
        "SelfSubjectReview" => SELF_SUBJECT_REVIEW,
        _ => return Err(ProtoError::Unsupported(kind)),
    };
    let mut obj = decode(&raw, schema)?;
    obj.insert("kind".into(), json!(kind));
    obj.insert(
        "apiVersion".into(),
        unknown["typeMeta"]["apiVersion"].clone(),
    );
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(field: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(field << 3) | 2, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_an_enveloped_config_map() {
        let meta = [
            ld(1, b"c"),
            ld(11, &[ld(1, b"app"), ld(2, b"web")].concat()),
        ]
        .concat();
        let cm = [ld(1, &meta), ld(2, &[ld(1, b"k"), ld(2, b"v")].concat())].concat();
        let unknown = [
            ld(1, &[ld(1, b"v1"), ld(2, b"ConfigMap")].concat()),
            ld(2, &cm),
        ]
        .concat();
        let body = [b"k8s\0".as_slice(), &unknown].concat();
        let v = to_json(&body).expect("decode");
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"app": "web"}}, "data": {"k": "v"}})
        );
    }
}
