//! Object metadata helpers: timestamps, uids, generated names, generation, human ages.

use serde_json::{Value, json};
use std::hash::{BuildHasher, Hasher};

/// A random 64-bit number (std's randomly seeded hasher; good enough for test uids and names).
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A random UUID-shaped uid.
pub fn new_uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// Five random characters from kube's alphabet for `generateName`.
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = random_u64();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Now, RFC 3339 with second precision, as kube writes timestamps.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// kube's `HumanDuration` of the time since an RFC 3339 timestamp ("5s", "3m20s", "2d").
pub fn age(timestamp: &str) -> String {
    let Ok(then) = timestamp.parse::<jiff::Timestamp>() else {
        return "<unknown>".into();
    };
    let secs = (jiff::Timestamp::now().as_second() - then.as_second()).max(0);
    human_duration(secs)
}

/// Formats seconds like kube's `duration.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 && s % 60 != 0 => format!("{m}m{}s", s % 60),
        s if s < 600 => format!("{m}m"),
        s if s < 3 * 3600 => format!("{m}m"),
        s if s < 8 * 3600 && m % 60 != 0 => format!("{h}h{}m", m % 60),
        s if s < 48 * 3600 => format!("{h}h"),
        s if s < 8 * 86400 && h % 24 != 0 => format!("{d}d{}h", h % 24),
        s if s < 2 * 365 * 86400 => format!("{d}d"),
        _ => format!("{}y", d / 365),
    }
}

/// The object without metadata (and without status when `ignore_status`), to decide generation bumps.
fn spec_part(object: &Value, ignore_status: bool) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("apiVersion");
        map.remove("kind");
        if ignore_status {
            map.remove("status");
        }
    }
    copy
}

/// The generation `new` should carry after replacing `old`.
pub fn next_generation(old: Option<&Value>, new: &Value, status_subresource: bool) -> i64 {
    let Some(old) = old else { return 1 };
    let old_gen = old["metadata"]["generation"].as_i64().unwrap_or(1);
    if spec_part(old, status_subresource) == spec_part(new, status_subresource) {
        old_gen
    } else {
        old_gen + 1
    }
}

/// A `metadata` map, created if missing.
pub fn metadata_mut(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    match object.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(map) => map,
        None => unreachable!("metadata was just made an object"),
    }
}

/// kube's message for a name that is not an RFC 1123 subdomain.
pub const DNS_SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// Whether `name` is a valid RFC 1123 subdomain (the rule for most object names).
pub fn is_dns_subdomain(name: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    name.len() <= 253 && name.split('.').all(label_ok)
}

/// `metadata.name` or "".
pub fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// `metadata.namespace` or "".
pub fn namespace_of(object: &Value) -> &str {
    object["metadata"]["namespace"].as_str().unwrap_or_default()
}

/// `metadata.resourceVersion` parsed, if set.
pub fn rv_of(object: &Value) -> Option<u64> {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_kube() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(3600), "60m");
        assert_eq!(human_duration(5 * 3600 + 60), "5h1m");
        assert_eq!(human_duration(3 * 86400), "3d");
    }

    #[test]
    fn generation_bumps_only_on_spec_changes() {
        let old = json!({"metadata": {"generation": 2}, "spec": {"a": 1}, "status": {"x": 1}});
        let status_only =
            json!({"metadata": {"generation": 2}, "spec": {"a": 1}, "status": {"x": 2}});
        assert_eq!(next_generation(Some(&old), &status_only, true), 2);
        let spec = json!({"metadata": {}, "spec": {"a": 2}});
        assert_eq!(next_generation(Some(&old), &spec, true), 3);
        assert_eq!(new_uid().len(), 36);
        assert_eq!(name_suffix().len(), 5);
        assert!(is_dns_subdomain("healthchecks.canary.dev") && is_dns_subdomain("a-1"));
        assert!(
            !is_dns_subdomain("Bad_Name") && !is_dns_subdomain("-a") && !is_dns_subdomain("a..b")
        );
    }
}
