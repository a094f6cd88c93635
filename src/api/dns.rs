//! `spec.dns`: a DNS query sent to one server over UDP, TCP or TLS, and what the reply must
//! hold; its validation into [`ValidDns`]. Answers are compared as `dig +short` prints them.

use std::net::IpAddr;

use hickory_proto::rr::Name;
use regex::bytes::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    parse::{compile_regex_at, parse_host_port},
    tcp::Endpoint,
    validate::{Errors, FieldError, MAX_TEXT},
};

/// Most values in one answer list (`containsAll`, `equals`, ...).
const MAX_VALUES: usize = 64;

/// A DNS query and what its reply must look like.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsProbe {
    /// The server as host:port, host or [IPv6]:port (port 53, or 853 over tls, when omitted);
    /// default: the first nameserver of the system resolver configuration (/etc/resolv.conf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 261),
        regex(pattern = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?$")
    )]
    pub server: Option<String>,
    /// udp (retried over TCP when the answer is truncated), tcp, or tls (DNS over TLS,
    /// RFC 7858; tlsPolicy applies).
    #[serde(default)]
    pub transport: DnsTransport,
    /// The question.
    pub query: DnsQuery,
    /// Expectations on the reply.
    #[serde(default)]
    pub expect: DnsExpect,
}

/// How the query travels.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DnsTransport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

impl DnsTransport {
    /// The name as written in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }

    /// The port a server listens on when none is given.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Udp | Self::Tcp => 53,
            Self::Tls => 853,
        }
    }
}

/// The question sent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsQuery {
    /// The name asked for (absolute; a trailing dot is optional). For PTR, an IP address is
    /// turned into its reverse name (in-addr.arpa or ip6.arpa).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Record type (never ANY, which many servers refuse).
    #[serde(default, rename = "type")]
    pub record_type: DnsRecordType,
    /// Query class.
    #[serde(default)]
    pub class: DnsClass,
    /// Ask the server to recurse (RD bit).
    #[serde(default = "default_true")]
    pub recursion_desired: bool,
}

fn default_true() -> bool {
    true
}

/// Record types Canary asks for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum DnsRecordType {
    #[default]
    A,
    Aaaa,
    Cname,
    Mx,
    Txt,
    Srv,
    Ns,
    Ptr,
    Soa,
    Caa,
}

impl DnsRecordType {
    /// The type's mnemonic (`AAAA`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Cname => "CNAME",
            Self::Mx => "MX",
            Self::Txt => "TXT",
            Self::Srv => "SRV",
            Self::Ns => "NS",
            Self::Ptr => "PTR",
            Self::Soa => "SOA",
            Self::Caa => "CAA",
        }
    }
}

/// Query classes (CH answers `version.bind` and `id.server`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DnsClass {
    #[default]
    #[serde(rename = "IN")]
    In,
    #[serde(rename = "CH")]
    Ch,
}

/// Response codes (RFC 1035, RFC 2136).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum DnsRcode {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
    YxDomain,
    YxRrSet,
    NxRrSet,
    NotAuth,
    NotZone,
}

impl DnsRcode {
    /// Every code, in wire order (0 to 10).
    pub const ALL: [DnsRcode; 11] = [
        Self::NoError,
        Self::FormErr,
        Self::ServFail,
        Self::NxDomain,
        Self::NotImp,
        Self::Refused,
        Self::YxDomain,
        Self::YxRrSet,
        Self::NxRrSet,
        Self::NotAuth,
        Self::NotZone,
    ];

    /// The code on the wire.
    pub fn code(self) -> u16 {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0) as u16
    }
}

/// What the reply must satisfy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsExpect {
    /// Accepted response codes.
    #[serde(default = "default_rcodes")]
    #[schemars(length(min = 1, max = 11))]
    pub rcodes: Vec<DnsRcode>,
    /// Expectations on the records of the queried type in the answer section (a CNAME in
    /// front of them is followed, not matched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<DnsAnswers>,
    /// true: the AD bit (DNSSEC-validated by the resolver) must be set; false: must be clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated_data: Option<bool>,
}

impl Default for DnsExpect {
    fn default() -> Self {
        Self {
            rcodes: default_rcodes(),
            answers: None,
            authenticated_data: None,
        }
    }
}

fn default_rcodes() -> Vec<DnsRcode> {
    vec![DnsRcode::NoError]
}

/// Expectations on answers, compared as presentation text like `dig +short` prints it
/// (`10 mail.example.com.`, `"v=spf1 -all"`): names case-insensitive, a trailing dot optional.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsAnswers {
    /// At least this many records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub min_count: Option<i32>,
    /// At most this many records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub max_count: Option<i32>,
    /// Every one of these must be answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 4096)))]
    pub contains_all: Vec<String>,
    /// At least one of these must be answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 4096)))]
    pub contains_any: Vec<String>,
    /// The answers, as a set (servers rotate their order), must be exactly these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 4096)))]
    pub equals: Vec<String>,
    /// None of these may be answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 4096)))]
    pub none_of: Vec<String>,
    /// Every record must match this regular expression (RE2 syntax), and there must be one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub match_regex: Option<String>,
}

/// A validated DNS probe.
#[derive(Debug, Clone)]
pub struct ValidDns {
    /// `None`: the system resolver configuration's first nameserver, read at each probe.
    pub server: Option<Endpoint>,
    pub transport: DnsTransport,
    /// Absolute, IDNA-encoded; for PTR of an IP address, its reverse name.
    pub name: Name,
    pub record_type: DnsRecordType,
    pub class: DnsClass,
    pub recursion_desired: bool,
    pub expect: DnsExpectations,
}

impl ValidDns {
    /// The query as the status page, metrics and `kubectl get -o wide` show it:
    /// `example.com A @10.96.0.10:53`.
    pub fn describe(&self) -> String {
        let name = self.name.to_ascii();
        let name = name
            .strip_suffix('.')
            .filter(|n| !n.is_empty())
            .unwrap_or(&name);
        let mut text = format!("{name} {}", self.record_type.as_str());
        if self.class == DnsClass::Ch {
            text.push_str(" CH");
        }
        if let Some(server) = &self.server {
            text.push_str(&format!(" @{server}"));
        }
        if self.transport != DnsTransport::Udp {
            text.push_str(&format!(" over {}", self.transport.as_str()));
        }
        text
    }
}

/// What a DNS reply must satisfy, parsed.
#[derive(Debug, Clone, Default)]
pub struct DnsExpectations {
    pub rcodes: Vec<DnsRcode>,
    pub min_count: Option<u32>,
    pub max_count: Option<u32>,
    pub contains_all: Vec<String>,
    pub contains_any: Vec<String>,
    pub equals: Vec<String>,
    pub none_of: Vec<String>,
    pub match_regex: Option<Regex>,
    pub authenticated_data: Option<bool>,
}

/// Validates `spec.dns`.
pub(super) fn validate_dns(dns: &DnsProbe, errors: &mut Errors) -> Option<ValidDns> {
    let server = match &dns.server {
        None => Some(None),
        Some(text) => errors
            .take(parse_host_port(
                "spec.dns.server",
                text,
                Some(dns.transport.default_port()),
            ))
            .map(Some),
    };
    let name = errors.take(query_name(&dns.query));
    let expect = validate_expect(&dns.expect, errors);
    Some(ValidDns {
        server: server?,
        transport: dns.transport,
        name: name?,
        record_type: dns.query.record_type,
        class: dns.query.class,
        recursion_desired: dns.query.recursion_desired,
        expect: expect?,
    })
}

/// The query name as an absolute name; an IP address asked for PTR becomes its reverse name.
fn query_name(query: &DnsQuery) -> Result<Name, FieldError> {
    let field = "spec.dns.query.name";
    let text = query.name.trim();
    let error = |message: String| FieldError {
        field: field.into(),
        message,
    };
    if text.is_empty() || text.len() > 253 {
        return Err(error(format!(
            "{} characters: a name has 1 to 253",
            text.len()
        )));
    }
    if query.record_type == DnsRecordType::Ptr
        && let Ok(ip) = text.trim_start_matches('[').trim_end_matches(']').parse()
    {
        return Ok(reverse_name(ip));
    }
    let mut name = Name::from_utf8(text)
        .map_err(|e| error(format!("{text:?} is not a valid DNS name: {e}")))?;
    name.set_fqdn(true);
    Ok(name)
}

/// `1.2.0.192.in-addr.arpa.` for 192.0.2.1; nibbles under `ip6.arpa.` for IPv6.
pub fn reverse_name(ip: IpAddr) -> Name {
    let labels: Vec<String> = match ip {
        IpAddr::V4(v4) => (v4.octets().iter().rev().map(u8::to_string))
            .chain(["in-addr".into(), "arpa".into()])
            .collect(),
        IpAddr::V6(v6) => (v6.octets().iter().rev())
            .flat_map(|b| [b & 0x0f, b >> 4])
            .map(|nibble| format!("{nibble:x}"))
            .chain(["ip6".into(), "arpa".into()])
            .collect(),
    };
    // Digits and short labels always make a valid name.
    let mut name = Name::from_labels(labels.iter().map(String::as_bytes)).unwrap_or_default();
    name.set_fqdn(true);
    name
}

fn validate_expect(expect: &DnsExpect, errors: &mut Errors) -> Option<DnsExpectations> {
    let field = "spec.dns.expect";
    if expect.rcodes.is_empty() {
        errors.push(format!("{field}.rcodes"), "must list at least one code");
    }
    let default = DnsAnswers::default();
    let answers = expect.answers.as_ref().unwrap_or(&default);
    let count = |name: &str, value: Option<i32>, errors: &mut Errors| match value {
        None => Some(None),
        Some(n) => match u32::try_from(n).ok().filter(|n| *n <= 65535) {
            Some(n) => Some(Some(n)),
            None => {
                errors.push(
                    format!("{field}.answers.{name}"),
                    format!("{n} is outside 0..65535"),
                );
                None
            }
        },
    };
    let min_count = count("minCount", answers.min_count, errors);
    let max_count = count("maxCount", answers.max_count, errors);
    if let (Some(Some(min)), Some(Some(max))) = (min_count, max_count)
        && min > max
    {
        errors.push(
            format!("{field}.answers.maxCount"),
            format!("{max} is below minCount {min}"),
        );
    }
    let lists = [
        ("containsAll", &answers.contains_all),
        ("containsAny", &answers.contains_any),
        ("equals", &answers.equals),
        ("noneOf", &answers.none_of),
    ];
    for (name, values) in lists {
        let list_field = format!("{field}.answers.{name}");
        errors.at_most(&list_field, values.len(), MAX_VALUES, "values");
        for (i, value) in values.iter().enumerate() {
            errors.at_most(
                &format!("{list_field}[{i}]"),
                value.len(),
                MAX_TEXT,
                "bytes",
            );
        }
    }
    let regex_field = format!("{field}.answers.matchRegex");
    let match_regex = match &answers.match_regex {
        None => Some(None),
        Some(pattern) => {
            errors.at_most(&regex_field, pattern.len(), MAX_TEXT, "bytes");
            errors
                .take(compile_regex_at(&regex_field, pattern))
                .map(Some)
        }
    };
    Some(DnsExpectations {
        rcodes: expect.rcodes.clone(),
        min_count: min_count?,
        max_count: max_count?,
        contains_all: answers.contains_all.clone(),
        contains_any: answers.contains_any.clone(),
        equals: answers.equals.clone(),
        none_of: answers.none_of.clone(),
        match_regex: match_regex?,
        authenticated_data: expect.authenticated_data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_for_both_families() {
        let v4 = reverse_name("192.0.2.1".parse().unwrap());
        assert_eq!(v4.to_ascii(), "1.2.0.192.in-addr.arpa.");
        let v6 = reverse_name("2001:db8::1".parse().unwrap());
        assert_eq!(
            v6.to_ascii(),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
    }

    #[test]
    fn rcodes_have_their_wire_numbers() {
        assert_eq!(DnsRcode::NoError.code(), 0);
        assert_eq!(DnsRcode::NxDomain.code(), 3);
        assert_eq!(DnsRcode::NotZone.code(), 10);
        let json = serde_json::to_value(DnsRcode::NxDomain).unwrap();
        assert_eq!(json, "NXDOMAIN");
    }
}
