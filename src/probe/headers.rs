//! `expect.headers`: assertions on the last response's headers. A repeated header is judged
//! on its values joined by ", " (RFC 9110 5.3); values of headers that carry credentials
//! (Set-Cookie, Cookie, Authorization) are never shown in a message.

use http::{HeaderMap, HeaderName, header};

use super::json::MAX_SHOWN;
use crate::api::{HeaderCheck, HeaderPredicate, display_text};

/// The first header assertion that does not hold, as a message naming the header, what was
/// expected and what was found.
pub fn judge(checks: &[HeaderCheck], headers: &HeaderMap) -> Option<String> {
    checks.iter().find_map(|check| judge_one(check, headers))
}

fn judge_one(check: &HeaderCheck, headers: &HeaderMap) -> Option<String> {
    let name = &check.name;
    let value = joined(headers, name);
    let expected = match &check.predicate {
        HeaderPredicate::Absent(true) => {
            return value
                .map(|v| format!("header {name} is {}, expected it absent", shown(name, &v)));
        }
        HeaderPredicate::Absent(false) => {
            return value
                .is_none()
                .then(|| format!("header {name} is absent, expected it sent"));
        }
        HeaderPredicate::Equals(want) => {
            if value.as_deref() == Some(want.as_str()) {
                return None;
            }
            format!("{:?}", display_text(want, MAX_SHOWN))
        }
        HeaderPredicate::Matches(regex) => {
            if value.as_ref().is_some_and(|v| regex.is_match(v.as_bytes())) {
                return None;
            }
            format!("a value matching /{}/", regex.as_str())
        }
    };
    Some(match value {
        Some(v) => format!("header {name} is {}, expected {expected}", shown(name, &v)),
        None => format!("header {name} is absent, expected {expected}"),
    })
}

/// The header's values joined by ", ", bytes outside UTF-8 replaced; `None` when not sent.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let parts: Vec<_> = values
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    Some(parts.join(", "))
}

/// A found value as shown: quoted, cut and sanitised, or hidden for credential headers.
fn shown(name: &HeaderName, value: &str) -> String {
    let secret = [
        header::SET_COOKIE,
        header::COOKIE,
        header::AUTHORIZATION,
        header::PROXY_AUTHORIZATION,
    ];
    if secret.contains(name) {
        return "<set> (a credential header: its value is not shown)".into();
    }
    format!("{:?}", display_text(value, MAX_SHOWN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::HeaderPredicate as P;
    use http::HeaderValue;

    fn check(name: &str, predicate: P) -> Vec<HeaderCheck> {
        vec![HeaderCheck {
            name: HeaderName::from_bytes(name.as_bytes()).unwrap(),
            predicate,
        }]
    }

    fn map(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    fn regex(p: &str) -> regex::bytes::Regex {
        regex::bytes::Regex::new(p).unwrap()
    }

    #[test]
    fn equals_compares_the_joined_values_exactly() {
        let h = map(&[("Content-Type", b"application/json")]);
        assert_eq!(
            judge(
                &check("content-type", P::Equals("application/json".into())),
                &h
            ),
            None
        );
        let m = judge(&check("content-type", P::Equals("text/plain".into())), &h).unwrap();
        assert_eq!(
            m,
            r#"header content-type is "application/json", expected "text/plain""#
        );
        let h = map(&[("Vary", b"a"), ("Vary", b"b")]);
        assert_eq!(judge(&check("vary", P::Equals("a, b".into())), &h), None);
        let m = judge(&check("x-none", P::Equals("1".into())), &h).unwrap();
        assert_eq!(m, r#"header x-none is absent, expected "1""#);
    }

    #[test]
    fn matches_searches_the_value() {
        let h = map(&[("Cache-Control", b"no-store, max-age=0")]);
        assert_eq!(
            judge(&check("cache-control", P::Matches(regex("no-store"))), &h),
            None
        );
        let m = judge(&check("cache-control", P::Matches(regex("^public"))), &h).unwrap();
        assert!(m.contains("expected a value matching /^public/"), "{m}");
        assert!(judge(&check("x-none", P::Matches(regex(""))), &h).is_some());
    }

    #[test]
    fn absent_true_and_false() {
        let h = map(&[("Server", b"nginx/1.2")]);
        let m = judge(&check("server", P::Absent(true)), &h).unwrap();
        assert_eq!(m, r#"header server is "nginx/1.2", expected it absent"#);
        assert_eq!(judge(&check("x-powered-by", P::Absent(true)), &h), None);
        assert_eq!(judge(&check("server", P::Absent(false)), &h), None);
        let m = judge(&check("x-powered-by", P::Absent(false)), &h).unwrap();
        assert_eq!(m, "header x-powered-by is absent, expected it sent");
    }

    #[test]
    fn credential_values_are_hidden_and_hostile_values_cut_and_escaped() {
        let h = map(&[
            ("Set-Cookie", b"session=s3cr3t"),
            ("X-Evil", b"a\xe2\x80\xaeb\xff"),
        ]);
        let m = judge(&check("set-cookie", P::Absent(true)), &h).unwrap();
        assert!(!m.contains("s3cr3t"), "{m}");
        let m = judge(&check("x-evil", P::Equals("b".into())), &h).unwrap();
        assert!(!m.contains('\u{202e}'), "{m}");
        let long = vec![b'x'; 10_000];
        let h = map(&[("X-Long", &long)]);
        let m = judge(&check("x-long", P::Equals("b".into())), &h).unwrap();
        assert!(m.len() < 400, "{}", m.len());
    }
}
