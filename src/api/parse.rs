//! Parsers for the string-typed fields of a spec (quantities, status codes, URLs, pins,
//! reference names), each naming the field it failed on.

use base64::Engine;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use regex::bytes::{Regex, RegexBuilder};

use super::{tcp::Endpoint, valid::StatusMatch, validate::FieldError};

/// Largest compiled `bodyRegex` program, so a hostile pattern cannot use unbounded memory.
const REGEX_SIZE_LIMIT: usize = 1024 * 1024;

pub(super) fn parse_url(value: &str) -> Result<url::Url, FieldError> {
    parse_url_at("spec.http.url", value)
}

/// An absolute http(s) URL without credentials, errors naming `field`.
pub(super) fn parse_url_at(field: &str, value: &str) -> Result<url::Url, FieldError> {
    let error = |message: String| FieldError {
        field: field.into(),
        message,
    };
    let url =
        url::Url::parse(value).map_err(|e| error(format!("{value:?} is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(error(format!(
            "scheme {:?} is not supported; use http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(error(format!("{value:?} has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        let instead = if field == "spec.http.url" {
            "a header from a Secret"
        } else {
            "clientSecretRef"
        };
        return Err(error(format!(
            "credentials in the URL are not allowed; use {instead}"
        )));
    }
    Ok(url)
}

/// A byte-count field (`65536`, `64Ki`, `1Mi`) with its default and limit.
pub(super) fn parse_bytes(
    field: &str,
    value: Option<&IntOrString>,
    default: u64,
    limit: u64,
) -> Result<u64, FieldError> {
    let bytes = match value {
        None => default,
        Some(IntOrString::Int(n)) => u64::try_from(*n).map_err(|_| FieldError {
            field: field.into(),
            message: format!("{n} must not be negative"),
        })?,
        Some(IntOrString::String(s)) => parse_quantity(s).ok_or_else(|| FieldError {
            field: field.into(),
            message: format!("{s:?} is not a byte quantity such as 65536, 64Ki or 1Mi"),
        })?,
    };
    if bytes > limit {
        return Err(FieldError {
            field: field.into(),
            message: format!("{bytes} exceeds the limit of {}Mi", limit >> 20),
        });
    }
    Ok(bytes)
}

/// Parses a whole-number Kubernetes quantity (`512`, `64Ki`, `1Mi`, `1M`).
pub fn parse_quantity(value: &str) -> Option<u64> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, suffix) = value.split_at(split);
    let multiplier: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(multiplier)
}

pub(super) fn parse_status(index: usize, value: &IntOrString) -> Result<StatusMatch, FieldError> {
    let invalid = || FieldError {
        field: format!("spec.http.expect.status[{index}]"),
        message: "must be a status code (100-599) or a class such as \"2xx\"".into(),
    };
    match value {
        IntOrString::Int(code) => u16::try_from(*code)
            .ok()
            .filter(|c| (100..600).contains(c))
            .map(StatusMatch::Code)
            .ok_or_else(invalid),
        // Exactly what the CRD's rule accepts: `Nxx` or three digits, N from 1 to 5.
        IntOrString::String(s) => match s.as_bytes() {
            [c @ b'1'..=b'5', b'x', b'x'] => Ok(StatusMatch::Class(u16::from(c - b'0'))),
            [b'1'..=b'5', b'0'..=b'9', b'0'..=b'9'] => s
                .parse::<u16>()
                .map(StatusMatch::Code)
                .map_err(|_| invalid()),
            _ => Err(invalid()),
        },
    }
}

pub(super) fn compile_regex(pattern: &str) -> Result<Regex, FieldError> {
    compile_regex_at("spec.http.expect.bodyRegex", pattern)
}

/// A user's regular expression (RE2 syntax, linear time), its compiled size capped.
pub(super) fn compile_regex_at(field: &str, pattern: &str) -> Result<Regex, FieldError> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| FieldError {
            field: field.into(),
            message: format!("invalid regular expression: {e}"),
        })
}

/// `host:port`, `[v6]:port`, or (with a default port) `host` / `[v6]`.
pub(super) fn parse_host_port(
    field: &str,
    text: &str,
    default_port: Option<u16>,
) -> Result<Endpoint, FieldError> {
    let error = |message: String| FieldError {
        field: field.into(),
        message,
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| error(format!("{text:?}: missing ']' after an IPv6 address")))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(error(format!(
                "{host:?} in brackets is not an IPv6 address"
            )));
        }
        let port =
            match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(|| {
                    error(format!("{text:?}: expected ':' and a port after ']'"))
                })?),
            };
        (host, port)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match (port, default_port) {
        (Some(port), _) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                error(format!(
                    "{text:?}: the port must be a number from 1 to 65535"
                ))
            })?,
        (None, Some(port)) => port,
        (None, None) => return Err(error(format!("{text:?}: expected host:port"))),
    };
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && (host.parse::<std::net::IpAddr>().is_ok()
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')));
    if !valid_host {
        return Err(error(format!("{host:?} is not a host name or IP address")));
    }
    Ok(Endpoint {
        host: host.to_string(),
        port,
    })
}

pub(super) fn parse_pin(index: usize, pin: &str) -> Result<[u8; 32], FieldError> {
    let invalid = || FieldError {
        field: format!("spec.tlsPolicy.pinnedPublicKeys[{index}]"),
        message: "must be sha256/ followed by the base64 SHA-256 digest of a SubjectPublicKeyInfo"
            .into(),
    };
    let encoded = pin.strip_prefix("sha256/").ok_or_else(invalid)?;
    let digest = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| invalid())?;
    digest.try_into().map_err(|_| invalid())
}

/// A Secret or ConfigMap name as the API server accepts it (RFC 1123 subdomain), so a name
/// can never walk out of a folder in file mode (`..`, `/etc`).
pub(super) fn check_object_name(field: &str, name: &str) -> Result<(), FieldError> {
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 63
            && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(FieldError {
            field: field.into(),
            message: format!(
                "{name:?} is not a valid object name (lower-case letters, digits, '-' and '.', at most 253 characters)"
            ),
        });
    }
    Ok(())
}

/// A Secret or ConfigMap key as the API server accepts it (`[-._a-zA-Z0-9]+`, not `.` or
/// `..`, not starting with `..`).
pub(super) fn check_data_key(field: &str, key: &str) -> Result<(), FieldError> {
    let charset = key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if key.is_empty() || key.len() > 253 || !charset || key == "." || key.starts_with("..") {
        return Err(FieldError {
            field: field.into(),
            message: format!(
                "{key:?} is not a valid key (letters, digits, '-', '_' and '.', not '.' or starting with '..')"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::HttpMethod;

    #[test]
    fn quantities_and_status_classes() {
        assert_eq!(parse_quantity("1Mi"), Some(1 << 20));
        assert_eq!(parse_quantity("64Ki"), Some(65536));
        assert_eq!(parse_quantity("1000"), Some(1000));
        assert_eq!(parse_quantity("1.5Mi"), None);
        assert!(StatusMatch::Class(2).matches(204));
        assert!(!StatusMatch::Class(2).matches(301));
        assert_eq!(
            parse_status(0, &IntOrString::Int(418)).unwrap(),
            StatusMatch::Code(418)
        );
        assert!(parse_status(0, &IntOrString::Int(99)).is_err());
        let string = |s: &str| parse_status(0, &IntOrString::String(s.into()));
        assert_eq!(string("204").unwrap(), StatusMatch::Code(204));
        assert_eq!(string("5xx").unwrap(), StatusMatch::Class(5));
        for bad in ["0204", "+204", "099", "600", "6xx", "2x", "20"] {
            assert!(string(bad).is_err(), "{bad}");
        }
        assert_eq!(HttpMethod::default().as_str(), "GET");
    }

    #[test]
    fn host_and_port_forms() {
        let parse = |text, default| parse_host_port("f", text, default);
        let endpoint = |host: &str, port| Endpoint {
            host: host.into(),
            port,
        };
        assert_eq!(parse("dns:5353", None).unwrap(), endpoint("dns", 5353));
        assert_eq!(
            parse("10.0.0.10", Some(53)).unwrap(),
            endpoint("10.0.0.10", 53)
        );
        assert_eq!(parse("[::1]:853", None).unwrap(), endpoint("::1", 853));
        assert_eq!(
            parse("[fd00::a]", Some(53)).unwrap(),
            endpoint("fd00::a", 53)
        );
        for bad in ["dns", "dns:0", "dns:70000", ":53", "[::1", "a b:53", "x:y"] {
            assert!(parse(bad, None).is_err(), "{bad:?}");
        }
        for bad in ["[::1]junk", "[::1]53", "[dns]:53", "[]:53"] {
            assert!(parse(bad, Some(53)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pins_must_be_sha256_digests() {
        let pin = format!(
            "sha256/{}",
            base64::engine::general_purpose::STANDARD.encode([7u8; 32])
        );
        assert_eq!(parse_pin(0, &pin).unwrap(), [7u8; 32]);
        assert!(parse_pin(0, "sha1/AAAA").is_err());
        assert!(parse_pin(0, "sha256/AAAA").is_err());
    }

    #[test]
    fn reference_names_and_keys_cannot_name_paths() {
        for good in ["api-probe", "a.b-c", "x"] {
            assert!(check_object_name("f", good).is_ok(), "{good}");
        }
        for bad in ["", "/etc", "..", "../../x", "a/b", "A", "-a", "a..b", ".a"] {
            assert!(check_object_name("f", bad).is_err(), "{bad:?}");
        }
        for good in ["tls.crt", "token", "ca_bundle-1.pem", ".dotfile"] {
            assert!(check_data_key("f", good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "../x", "..x", "a/b", "/etc/passwd", "a b"] {
            assert!(check_data_key("f", bad).is_err(), "{bad:?}");
        }
    }
}
