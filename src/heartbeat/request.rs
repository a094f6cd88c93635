//! A ping request read without I/O: the route, the query, the bearer token, and the
//! constant-time token comparison.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::{CheckKey, PingResult};

/// The route's prefix: `/api/v1/ping/{namespace}/{name}[/start|/fail|/{0-255}]`.
pub const PREFIX: &str = "/api/v1/ping/";
/// Longest run id (`rid`).
pub const MAX_RUN_ID: usize = 64;

/// What a ping says, before it is authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingRequest {
    pub key: CheckKey,
    pub result: PingResult,
    pub exit_code: Option<u8>,
    pub run_id: Option<String>,
    /// `msg`, if given (else the body becomes the message).
    pub message: Option<String>,
}

/// Why a request is not a ping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("not found")]
    NotFound,
    #[error("rid must be at most {MAX_RUN_ID} characters")]
    RunIdTooLong,
}

/// Parses the path and query of a ping.
pub fn parse(path: &str, query: Option<&str>) -> Result<PingRequest, RouteError> {
    let rest = path.strip_prefix(PREFIX).ok_or(RouteError::NotFound)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let (namespace, name, suffix) = match parts.as_slice() {
        [namespace, name] => (*namespace, *name, None),
        [namespace, name, suffix] => (*namespace, *name, Some(*suffix)),
        _ => return Err(RouteError::NotFound),
    };
    if !object_name(namespace) || !object_name(name) {
        return Err(RouteError::NotFound);
    }
    let (result, exit_code) = match suffix {
        None => (PingResult::Success, None),
        Some("start") => (PingResult::Start, None),
        Some("fail") => (PingResult::Fail, None),
        Some(code) => {
            let code = exit_code(code).ok_or(RouteError::NotFound)?;
            let result = match code {
                0 => PingResult::Success,
                _ => PingResult::Fail,
            };
            (result, Some(code))
        }
    };
    let (mut run_id, mut message) = (None, None);
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "rid" if value.chars().count() > MAX_RUN_ID => return Err(RouteError::RunIdTooLong),
            "rid" => run_id = Some(value.into_owned()),
            "msg" => message = Some(value.into_owned()),
            _ => {}
        }
    }
    Ok(PingRequest {
        key: CheckKey {
            namespace: namespace.into(),
            name: name.into(),
        },
        result,
        exit_code,
        run_id,
        message,
    })
}

/// A decimal exit code from 0 to 255, written without sign or leading zeros.
fn exit_code(text: &str) -> Option<u8> {
    let digits = !text.is_empty() && text.len() <= 3 && text.bytes().all(|b| b.is_ascii_digit());
    let canonical = text == "0" || !text.starts_with('0');
    (digits && canonical).then(|| text.parse().ok()).flatten()
}

/// A DNS-1123 subdomain, as namespaces and object names are.
fn object_name(text: &str) -> bool {
    let ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.';
    (1..=253).contains(&text.len()) && text.bytes().all(ok)
}

/// The token of an `Authorization: Bearer` header, if well formed.
pub fn bearer(header: Option<&http::HeaderValue>) -> Option<&[u8]> {
    let value = header?.as_bytes();
    let scheme = value.get(..7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| value[7..].trim_ascii())
}

/// Whether `given` is `expected`, in time independent of both (their SHA-256 digests are
/// compared in constant time, so neither content nor length shows in the timing). `None`
/// (an unknown check) is compared against a stand-in and is never equal.
pub fn token_matches(given: Option<&[u8]>, expected: Option<&[u8]>) -> bool {
    const STAND_IN: &[u8] = b"canary heartbeat: no such check, no such token";
    let known = expected.is_some();
    let given = Sha256::digest(given.unwrap_or_default());
    let expected = Sha256::digest(expected.unwrap_or(STAND_IN));
    let equal: bool = given.ct_eq(&expected).into();
    equal && known
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(path: &str) -> Result<PingRequest, RouteError> {
        parse(path, None)
    }

    #[test]
    fn routes_name_the_check_and_the_result() {
        let ok = ping("/api/v1/ping/shop/backup").unwrap();
        assert_eq!(ok.key.to_string(), "shop/backup");
        assert_eq!((ok.result, ok.exit_code), (PingResult::Success, None));
        let start = ping("/api/v1/ping/shop/backup/start").unwrap();
        assert_eq!(start.result, PingResult::Start);
        assert_eq!(
            ping("/api/v1/ping/a/b/fail").unwrap().result,
            PingResult::Fail
        );
        let zero = ping("/api/v1/ping/a/b/0").unwrap();
        assert_eq!(
            (zero.result, zero.exit_code),
            (PingResult::Success, Some(0))
        );
        let code = ping("/api/v1/ping/a/b/255").unwrap();
        assert_eq!((code.result, code.exit_code), (PingResult::Fail, Some(255)));
    }

    #[test]
    fn other_paths_are_not_found() {
        for path in [
            "/api/v1/ping/a",
            "/api/v1/ping/a/b/256",
            "/api/v1/ping/a/b/007",
            "/api/v1/ping/a/b/-1",
            "/api/v1/ping/a/b/stop",
            "/api/v1/ping/A/b",
            "/api/v1/ping/a/b/0/x",
            "/api/v1/ping//b",
            "/metrics",
        ] {
            assert_eq!(ping(path), Err(RouteError::NotFound), "{path}");
        }
    }

    #[test]
    fn the_query_gives_the_run_id_and_message() {
        let request = parse("/api/v1/ping/a/b", Some("rid=run-7&msg=hello%20world")).unwrap();
        assert_eq!(request.run_id.as_deref(), Some("run-7"));
        assert_eq!(request.message.as_deref(), Some("hello world"));
        let long = format!("rid={}", "x".repeat(65));
        assert_eq!(
            parse("/api/v1/ping/a/b", Some(&long)),
            Err(RouteError::RunIdTooLong)
        );
    }

    #[test]
    fn bearer_tokens_are_read_and_compared_whole() {
        let header = http::HeaderValue::from_static("Bearer abc.def ");
        assert_eq!(bearer(Some(&header)), Some(&b"abc.def"[..]));
        let basic = http::HeaderValue::from_static("Basic abc");
        assert_eq!(bearer(Some(&basic)), None);
        assert!(token_matches(Some(b"abc"), Some(b"abc")));
        assert!(!token_matches(Some(b"abc"), Some(b"abcd")));
        assert!(!token_matches(None, Some(b"abc")));
        let stand_in = b"canary heartbeat: no such check, no such token";
        assert!(
            !token_matches(Some(stand_in), None),
            "an unknown check never matches"
        );
    }
}
