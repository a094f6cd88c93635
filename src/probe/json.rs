//! `expect.json`: the buffered body parsed as JSON and each RFC 9535 path judged. The parsed
//! tree is charged to the probe's body-budget reservation as it is built (a 1 MiB array of
//! zeros is ~16 MiB of `Value`s), so N probes' trees never pass `--body-buffer-budget`; the
//! parser's nesting limit (128) bounds recursion, and what a message shows of the target's
//! JSON is serialised into a bounded buffer, then cut to 200 characters and sanitised.

use std::{fmt, io};

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::budget::Reservation;
use crate::api::{JsonCheck, JsonPredicate, display_text};

/// Most characters of a value shown in a message.
pub const MAX_SHOWN: usize = 200;

/// Bytes charged per array element: a `Value`, three times over for a `Vec` that grows by
/// doubling (old and new storage live at once while it moves), which also covers the 8-byte
/// reference per node a query's result list holds.
const NODE: u64 = 3 * size_of::<Value>() as u64;
/// Bytes charged per object member, beyond the key's text: key and value plus the map's own
/// overhead (B-tree nodes at least half full, or an index map's entries and table).
const ENTRY: u64 = 3 * (size_of::<String>() + size_of::<Value>()) as u64;
/// Bytes charged per string beyond its text: the allocator's smallest chunk and its header.
const TEXT: u64 = 32;

/// Why the body could not be judged.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not JSON (or not UTF-8, or nested deeper than 128, or a number out of range).
    #[error("the body is not JSON: {0}")]
    Parse(#[source] serde_json::Error),
    /// The parsed tree would pass the operator's body budget.
    #[error(
        "parsing the body as JSON needed more than the {0} bytes the body buffer budget could give"
    )]
    Budget(u64),
}

/// Charges the tree's bytes to a reservation, growing it by doubling.
struct Meter<'r> {
    reservation: &'r mut Reservation,
    used: u64,
    exhausted: bool,
}

impl Meter<'_> {
    fn charge<E: de::Error>(&mut self, bytes: u64) -> Result<(), E> {
        self.used = self.used.saturating_add(bytes);
        if self.reservation.cover(self.used) {
            return Ok(());
        }
        self.exhausted = true;
        Err(E::custom("body buffer budget spent"))
    }
}

/// Parses `body` into a tree whose size is charged to `reservation` on top of what it holds.
pub fn parse(body: &[u8], reservation: &mut Reservation) -> Result<Value, JsonError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let used = reservation.bytes();
    let mut meter = Meter {
        reservation,
        used,
        exhausted: false,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Tree { meter: &mut meter }
        .deserialize(&mut de)
        .and_then(|value| de.end().map(|()| value));
    match parsed {
        Ok(value) => Ok(value),
        Err(_) if meter.exhausted => Err(JsonError::Budget(meter.used)),
        Err(e) => Err(JsonError::Parse(e)),
    }
}

/// A `Value` deserialiser that charges each node to a [`Meter`].
struct Tree<'m, 'r> {
    meter: &'m mut Meter<'r>,
}

impl<'de> DeserializeSeed<'de> for Tree<'_, '_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Tree<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.meter.charge(v.len() as u64 + TEXT)?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            self.meter.charge::<A::Error>(NODE)?;
            match seq.next_element_seed(Tree {
                meter: &mut *self.meter,
            })? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.meter
                .charge::<A::Error>(ENTRY + TEXT + key.len() as u64)?;
            let value = map.next_value_seed(Tree {
                meter: &mut *self.meter,
            })?;
            members.insert(key, value);
        }
        Ok(Value::Object(members))
    }
}

/// The first assertion that does not hold on `body`, as a message naming its path, what was
/// expected and what was found.
pub fn judge(checks: &[JsonCheck], body: &Value) -> Option<String> {
    checks.iter().find_map(|check| judge_one(check, body))
}

fn judge_one(check: &JsonCheck, body: &Value) -> Option<String> {
    // Plain references (8 bytes a node, within the tree's charge); locations are found only
    // for a failure, since a located node list costs ~80 bytes a node.
    let nodes = check.path.query(body).all();
    let path = &check.text;
    let n = nodes.len() as u64;
    match &check.predicate {
        JsonPredicate::Exists(true) if nodes.is_empty() => {
            Some(format!("{path} selects nothing, expected it to exist"))
        }
        JsonPredicate::Exists(false) => nodes.first().map(|node| {
            let at = located(check, body, 0, nodes.len());
            format!("{at} is {}, expected nothing there", shown(node))
        }),
        JsonPredicate::Exists(true) => None,
        JsonPredicate::Count { min, max } => (min.is_some_and(|m| n < m)
            || max.is_some_and(|m| n > m))
        .then(|| format!("{path} selects {n} nodes, expected {}", range(*min, *max))),
        predicate if nodes.is_empty() => Some(format!(
            "{path} selects nothing, expected {}",
            expectation(predicate)
        )),
        predicate => nodes.iter().enumerate().find_map(|(i, node)| {
            let miss = miss(predicate, node)?;
            let at = located(check, body, i, nodes.len());
            Some(format!("{at} is {}, {miss}", shown(node)))
        }),
    }
}

/// Most nodes a path may select for a failure to name the failing node's location.
const MAX_LOCATED: usize = 1024;

/// The path as written, with the failing node's location when it selected several (its
/// position alone past [`MAX_LOCATED`] nodes).
fn located(check: &JsonCheck, body: &Value, index: usize, selected: usize) -> String {
    let path = &check.text;
    if selected <= 1 {
        return path.clone();
    }
    if selected > MAX_LOCATED {
        return format!("{path} (node {} of {selected})", index + 1);
    }
    let location = (check.path.query_located(body).into_iter().nth(index))
        .map(|node| node.location().to_string())
        .unwrap_or_default();
    format!("{path} (at {})", display_text(&location, MAX_SHOWN))
}

/// Why `node` fails `predicate`, or `None` when it holds.
fn miss(predicate: &JsonPredicate, node: &Value) -> Option<String> {
    let holds = match predicate {
        JsonPredicate::Equals(want) => json_eq(node, want),
        JsonPredicate::In(list) => list.iter().any(|want| json_eq(node, want)),
        JsonPredicate::Matches(regex) => match node {
            Value::String(text) => regex.is_match(text.as_bytes()),
            other => {
                return Some(format!(
                    "a {}, not a string: matches needs a string",
                    kind(other)
                ));
            }
        },
        JsonPredicate::Exists(_) | JsonPredicate::Count { .. } => true,
    };
    (!holds).then(|| format!("expected {}", expectation(predicate)))
}

fn expectation(predicate: &JsonPredicate) -> String {
    match predicate {
        JsonPredicate::Equals(want) => shown(want),
        JsonPredicate::In(list) => format!("one of {}", shown(&Value::Array(list.clone()))),
        JsonPredicate::Matches(regex) => format!("a string matching /{}/", regex.as_str()),
        JsonPredicate::Exists(true) => "it to exist".into(),
        JsonPredicate::Exists(false) => "nothing there".into(),
        JsonPredicate::Count { min, max } => range(*min, *max),
    }
}

fn range(min: Option<u64>, max: Option<u64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!("{lo} to {hi}"),
        (Some(lo), None) => format!("at least {lo}"),
        (None, Some(hi)) => format!("at most {hi}"),
        (None, None) => "any number".into(),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Equality of JSON values with numbers compared as numbers (1 equals 1.0).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_eq(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && (x.iter()).all(|(key, v)| y.get(key).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn number_eq(x: &Number, y: &Number) -> bool {
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (x.as_u64(), y.as_u64()) {
        return a == b;
    }
    x.as_f64() == y.as_f64()
}

/// A value as a message shows it: compact JSON, at most [`MAX_SHOWN`] characters, sanitised.
/// Serialised into a bounded buffer, so a selected 1 MiB array costs no 1 MiB string.
pub fn shown(value: &Value) -> String {
    let mut out = Bounded(Vec::with_capacity(64));
    // The writer refuses past its bound: the error only means the text was cut.
    let _ = serde_json::to_writer(&mut out, value);
    let text = String::from_utf8_lossy(&out.0);
    display_text(&text, MAX_SHOWN).into_owned()
}

/// A writer that keeps the first bytes (enough for [`MAX_SHOWN`] characters plus a cut) and
/// refuses the rest.
struct Bounded(Vec<u8>);

impl io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = (MAX_SHOWN * 4 + 4).saturating_sub(self.0.len());
        if room == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let take = buf.len().min(room);
        self.0.extend_from_slice(&buf[..take]);
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
