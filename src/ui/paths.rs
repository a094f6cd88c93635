//! The page's paths for a check, both ways: namespace and name percent-encoded into links (a
//! standalone check may be named `disk 90%` or `a/b`), and decoded from request paths, so every
//! route finds the check its own links name.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::api::CheckKey;

/// Everything but RFC 3986's unreserved characters is encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `prefix/{namespace}/{name}` with both segments percent-encoded (`/checks/shop/disk%2090%25`).
pub fn check_path(prefix: &str, key: &CheckKey) -> String {
    format!(
        "{prefix}/{}/{}",
        utf8_percent_encode(&key.namespace, SEGMENT),
        utf8_percent_encode(&key.name, SEGMENT)
    )
}

/// The segments of a request path, each percent-decoded; `None` when one is not UTF-8.
pub fn segments(path: &str) -> Option<Vec<String>> {
    (path.trim_start_matches('/').split('/'))
        .map(|segment| {
            (percent_decode_str(segment).decode_utf8().ok()).map(std::borrow::Cow::into_owned)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_names_survive_the_round_trip() {
        for name in ["disk 90%", "a/b", "ünï code", "x?y#z", "plain-name.v2"] {
            let key = CheckKey {
                namespace: "team a".into(),
                name: name.into(),
            };
            let path = check_path("/checks", &key);
            assert_eq!(path.matches('/').count(), 3, "{path}");
            assert!(!path.contains([' ', '?', '#']), "{path}");
            let parts = segments(&path).unwrap();
            assert_eq!(parts, ["checks", "team a", name], "{path}");
        }
        let plain = CheckKey {
            namespace: "ns".into(),
            name: "web".into(),
        };
        assert_eq!(check_path("/badges", &plain), "/badges/ns/web");
        assert_eq!(segments("/checks/%FF/x"), None);
    }
}
