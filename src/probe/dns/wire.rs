//! DNS messages with `hickory-proto` (encoding and decoding only): the query Canary sends,
//! and a reply checked against it (ID, question, response bit) and turned into what the
//! expectations and status read, answers as `dig +short` prints them.

use hickory_proto::{
    op::{Edns, Header, Message, MessageType, OpCode, Query},
    rr::{DNSClass, RData, RecordType},
    serialize::binary::{BinDecodable, DecodeError},
};

use super::super::{DnsFacts, Failure};
use crate::api::{DnsClass, DnsRcode, DnsRecordType, Reason, TargetText, ValidDns, display_text};

/// The UDP payload size advertised with EDNS(0): the DNS flag day 2020 value, which avoids IP
/// fragmentation; larger answers come back truncated and are asked again over TCP.
pub const EDNS_PAYLOAD: u16 = 1232;
/// Answers kept in facts (status shows them; expectations see every one).
const SHOWN: usize = 10;
/// How many characters of each shown answer status keeps.
const SHOWN_CHARS: usize = 256;

/// The wire type of a record type of the spec.
pub fn record_type(kind: DnsRecordType) -> RecordType {
    match kind {
        DnsRecordType::A => RecordType::A,
        DnsRecordType::Aaaa => RecordType::AAAA,
        DnsRecordType::Cname => RecordType::CNAME,
        DnsRecordType::Mx => RecordType::MX,
        DnsRecordType::Txt => RecordType::TXT,
        DnsRecordType::Srv => RecordType::SRV,
        DnsRecordType::Ns => RecordType::NS,
        DnsRecordType::Ptr => RecordType::PTR,
        DnsRecordType::Soa => RecordType::SOA,
        DnsRecordType::Caa => RecordType::CAA,
    }
}

fn class(class: DnsClass) -> DNSClass {
    match class {
        DnsClass::In => DNSClass::IN,
        DnsClass::Ch => DNSClass::CH,
    }
}

/// The query: a random ID, one question, RD as asked, AD set as dig sets it (so a validating
/// resolver reports whether the answer is authenticated), and EDNS(0).
pub fn query(dns: &ValidDns) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = dns.recursion_desired;
    message.metadata.authentic_data = true;
    let mut question = Query::query(dns.name.clone(), record_type(dns.record_type));
    question.query_class = class(dns.class);
    message.add_query(question);
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    message.set_edns(edns);
    message
}

/// Encodes the query.
pub fn encode(message: &Message) -> Result<Vec<u8>, Failure> {
    message
        .to_vec()
        .map_err(|e| Failure::new(Reason::InvalidSpec, format!("cannot encode the query: {e}")))
}

/// A reply that is not the answer to the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// Not a DNS response at all.
    Malformed(String),
    /// A well-formed response to another query (another ID or question): over UDP, a late
    /// reply on a reused port or a forgery, which is ignored (RFC 5452).
    Stray(String),
}

impl Rejected {
    /// Both are `ProtocolMismatch` when they end the probe.
    pub fn failure(self) -> Failure {
        let (Self::Malformed(message) | Self::Stray(message)) = self;
        Failure::new(Reason::ProtocolMismatch, message)
    }
}

/// Decodes a reply and checks it answers `query` (ID, response bit, opcode, question); never
/// panics on any bytes.
pub fn decode(bytes: &[u8], query: &Message) -> Result<Message, Rejected> {
    let mismatch = Rejected::Malformed;
    let invalid = |e: DecodeError| {
        mismatch(format!(
            "the reply ({} bytes) is not a valid DNS message: {e}",
            bytes.len()
        ))
    };
    // The header first: a stray is dropped without decoding the rest, and a question count the
    // decoder would allocate for up front (up to 65,535) is refused.
    let header = Header::from_bytes(bytes).map_err(invalid)?;
    if header.metadata.id != query.metadata.id {
        return Err(Rejected::Stray(format!(
            "the reply's ID {} does not match the query's ID {} (a spoofed or misrouted answer?)",
            header.metadata.id, query.metadata.id
        )));
    }
    if header.counts.queries > 1 {
        return Err(mismatch(format!(
            "the reply has {} questions; a query has one",
            header.counts.queries
        )));
    }
    let reply = Message::from_vec(bytes).map_err(invalid)?;
    if reply.metadata.message_type != MessageType::Response
        || reply.metadata.op_code != OpCode::Query
    {
        return Err(mismatch(
            "the reply is not a response to a standard query (QR bit or opcode)".into(),
        ));
    }
    let asked = &query.queries[..];
    let same = reply.queries.len() == asked.len()
        && (reply.queries.iter().zip(asked)).all(|(a, b)| {
            a.name == b.name && a.query_type == b.query_type && a.query_class == b.query_class
        });
    // A reply with an empty question section is allowed only for errors (e.g. FORMERR).
    let bare_error = reply.queries.is_empty() && u16::from(reply.metadata.response_code) != 0;
    if !same && !bare_error {
        let got: Vec<String> = (reply.queries.iter())
            .map(|q| format!("{} {}", TargetText(&q.name.to_string()), q.query_type))
            .collect();
        return Err(Rejected::Stray(format!(
            "the reply answers another question ({}) than the one asked",
            if got.is_empty() {
                "none".to_string()
            } else {
                got.join(", ")
            }
        )));
    }
    Ok(reply)
}

/// A UDP reply that did not decode but whose header says it was truncated (a server may cut it
/// mid-record): the header alone, which is enough to ask again over TCP.
pub fn truncated_header(bytes: &[u8]) -> Option<Message> {
    let header = Header::from_bytes(bytes).ok()?;
    let metadata = header.metadata;
    if !(metadata.truncation && metadata.message_type == MessageType::Response) {
        return None;
    }
    let mut reply = Message::response(metadata.id, metadata.op_code);
    reply.metadata = metadata;
    Some(reply)
}

/// One record of the queried type: its presentation text and the forms it compares by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// As `dig +short` prints it.
    pub text: String,
    /// Normalised for comparison (see [`super::answers::normalize`]).
    pub key: String,
    /// TXT only: the strings concatenated without quotes, for values written without quotes.
    pub joined: Option<String>,
}

/// The response code as dig names it (`NXDOMAIN`).
pub fn rcode_name(code: u16) -> String {
    let names = [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
        "NXRRSET", "NOTAUTH", "NOTZONE",
    ];
    match (names.get(usize::from(code)), code) {
        (Some(name), _) => (*name).to_string(),
        (None, 16) => "BADVERS".to_string(),
        (None, code) => format!("RCODE{code}"),
    }
}

/// Whether `code` is one of `expected`.
pub fn rcode_expected(code: u16, expected: &[DnsRcode]) -> bool {
    expected.iter().any(|r| r.code() == code)
}

/// The header flags that are set, in dig's order.
fn flags(reply: &Message) -> Vec<&'static str> {
    let m = &reply.metadata;
    [
        (m.message_type == MessageType::Response, "qr"),
        (m.authoritative, "aa"),
        (m.truncation, "tc"),
        (m.recursion_desired, "rd"),
        (m.recursion_available, "ra"),
        (m.authentic_data, "ad"),
        (m.checking_disabled, "cd"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect()
}

/// The records of the queried type and class in the answer section (CNAMEs in front of them
/// are followed by the server, not matched).
pub fn answers(reply: &Message, dns: &ValidDns) -> Vec<Answer> {
    let wanted = record_type(dns.record_type);
    let wanted_class = class(dns.class);
    (reply.answers.iter())
        .filter(|r| r.record_type() == wanted && r.dns_class == wanted_class)
        .map(|r| {
            let text = presentation(&r.data);
            let joined = match &r.data {
                RData::TXT(txt) => Some(
                    (txt.txt_data.iter())
                        .map(|s| String::from_utf8_lossy(s))
                        .collect::<String>(),
                ),
                _ => None,
            };
            Answer {
                key: super::answers::normalize(dns.record_type, &text),
                text,
                joined,
            }
        })
        .collect()
}

/// Record data as `dig +short` prints it: TXT strings quoted with `"` and `\` escaped.
fn presentation(data: &RData) -> String {
    match data {
        RData::TXT(txt) => {
            let strings: Vec<String> = (txt.txt_data.iter())
                .map(|s| {
                    let mut quoted = String::from("\"");
                    for &b in s.iter() {
                        match b {
                            b'"' | b'\\' => {
                                quoted.push('\\');
                                quoted.push(char::from(b));
                            }
                            0x20..=0x7e => quoted.push(char::from(b)),
                            _ => quoted.push_str(&format!("\\{b:03}")),
                        }
                    }
                    quoted.push('"');
                    quoted
                })
                .collect();
            strings.join(" ")
        }
        other => other.to_string(),
    }
}

/// The answers status shows: the first [`SHOWN`] in sorted order (servers rotate answers, and a
/// different first ten on every run would rewrite status each time), each shown as a target's
/// words and cut to [`SHOWN_CHARS`] characters (a TXT record can hold 64 KiB).
fn shown(answers: &[Answer]) -> Vec<String> {
    let mut texts: Vec<&str> = answers.iter().map(|a| a.text.as_str()).collect();
    texts.sort_unstable();
    (texts.into_iter().take(SHOWN))
        .map(|text| display_text(text, SHOWN_CHARS).into_owned())
        .collect()
}

/// What status and metrics show of a reply.
pub fn facts(
    reply: &Message,
    answers: &[Answer],
    server: String,
    transport: &'static str,
    truncated: bool,
) -> DnsFacts {
    let rcode = u16::from(reply.metadata.response_code);
    DnsFacts {
        server,
        transport,
        rcode,
        rcode_name: rcode_name(rcode),
        flags: flags(reply),
        answers: shown(answers),
        answer_count: answers.len(),
        min_ttl: reply.answers.iter().map(|r| r.ttl).min(),
        truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::{Name, Record, rdata};

    fn spec(kind: DnsRecordType) -> ValidDns {
        ValidDns {
            server: None,
            transport: crate::api::DnsTransport::Udp,
            name: Name::from_ascii("example.com.").unwrap(),
            record_type: kind,
            class: DnsClass::In,
            recursion_desired: true,
            expect: Default::default(),
        }
    }

    fn reply_to(query: &Message, records: Vec<Record>) -> Message {
        let mut reply = Message::response(query.metadata.id, OpCode::Query);
        reply.add_queries(query.queries.clone());
        reply.add_answers(records);
        reply
    }

    #[test]
    fn txt_is_quoted_like_dig_and_cnames_are_not_answers() {
        let dns = spec(DnsRecordType::Txt);
        let query = query(&dns);
        let name = dns.name.clone();
        let txt = rdata::TXT::new(vec![r#"say "hi""#.into(), "two".into()]);
        let cname = rdata::CNAME(Name::from_ascii("alias.example.com.").unwrap());
        let reply = reply_to(
            &query,
            vec![
                Record::from_rdata(name.clone(), 30, RData::CNAME(cname)),
                Record::from_rdata(name, 60, RData::TXT(txt)),
            ],
        );
        let bytes = reply.to_vec().unwrap();
        let decoded = decode(&bytes, &query).unwrap();
        let answers = answers(&decoded, &dns);
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].text, r#""say \"hi\"" "two""#);
        assert_eq!(answers[0].joined.as_deref(), Some(r#"say "hi"two"#));
        let facts = facts(&decoded, &answers, "s".into(), "udp", false);
        assert_eq!(facts.min_ttl, Some(30));
        assert_eq!(facts.rcode_name, "NOERROR");
        assert_eq!(facts.flags, ["qr"]);
    }

    #[test]
    fn status_shows_the_same_ten_answers_whatever_the_order_and_cuts_long_ones() {
        let dns = spec(DnsRecordType::A);
        let query = query(&dns);
        let record = |i: u8| {
            let a = rdata::A::new(192, 0, 2, i);
            Record::from_rdata(dns.name.clone(), 60, RData::A(a))
        };
        let shown_for = |order: Vec<u8>| {
            let reply = reply_to(&query, order.into_iter().map(record).collect());
            let decoded = decode(&reply.to_vec().unwrap(), &query).unwrap();
            let answers = answers(&decoded, &dns);
            facts(&decoded, &answers, "s".into(), "udp", false)
        };
        let forward = shown_for((1..=12).collect());
        let rotated = shown_for((1..=12).rev().collect());
        assert_eq!(forward.answers, rotated.answers);
        assert_eq!(forward.answers.len(), 10);
        assert_eq!(forward.answer_count, 12);
        let dns = spec(DnsRecordType::Txt);
        let txt_query = super::query(&dns);
        let long = rdata::TXT::new(vec!["\u{1}".repeat(200)]);
        let reply = reply_to(
            &txt_query,
            vec![Record::from_rdata(dns.name.clone(), 60, RData::TXT(long))],
        );
        let decoded = decode(&reply.to_vec().unwrap(), &txt_query).unwrap();
        let answers = answers(&decoded, &dns);
        assert_eq!(answers[0].text.len(), 802, "escaped as \\001");
        let facts = facts(&decoded, &answers, "s".into(), "udp", false);
        assert_eq!(facts.answers[0].chars().count(), SHOWN_CHARS);
    }

    #[test]
    fn a_truncated_reply_cut_mid_record_still_leads_to_tcp_and_question_counts_are_bounded() {
        let dns = spec(DnsRecordType::A);
        let query = query(&dns);
        let records = (1..=20)
            .map(|i| {
                let a = RData::A(rdata::A::new(192, 0, 2, i));
                Record::from_rdata(dns.name.clone(), 60, a)
            })
            .collect();
        let mut reply = reply_to(&query, records);
        reply.metadata.truncation = true;
        let bytes = reply.to_vec().unwrap();
        let cut = &bytes[..bytes.len() - 7];
        assert!(matches!(decode(cut, &query), Err(Rejected::Malformed(_))));
        let header = truncated_header(cut).expect("the header says truncated");
        assert!(header.metadata.truncation);
        assert_eq!(header.metadata.id, query.metadata.id);
        reply.metadata.truncation = false;
        let bytes = reply.to_vec().unwrap();
        assert!(truncated_header(&bytes[..bytes.len() - 7]).is_none());
        // A bare header claiming 65,535 questions: refused before any question is read.
        let mut huge = bytes[..12].to_vec();
        huge[4..6].copy_from_slice(&u16::MAX.to_be_bytes());
        let Err(Rejected::Malformed(why)) = decode(&huge, &query) else {
            panic!("65,535 questions are malformed")
        };
        assert!(why.contains("65535 questions"), "{why}");
    }

    #[test]
    fn replies_to_another_query_are_strays_and_garbage_is_malformed() {
        let dns = spec(DnsRecordType::A);
        let query = query(&dns);
        let mut other = Message::response(query.metadata.id.wrapping_add(1), OpCode::Query);
        other.add_queries(query.queries.clone());
        let Rejected::Stray(message) = decode(&other.to_vec().unwrap(), &query).unwrap_err() else {
            panic!("another ID is a stray reply")
        };
        assert!(message.contains("ID"), "{message}");
        let mut wrong = Message::response(query.metadata.id, OpCode::Query);
        wrong.add_query(Query::query(
            Name::from_ascii("evil.example.").unwrap(),
            RecordType::A,
        ));
        let failure = decode(&wrong.to_vec().unwrap(), &query)
            .unwrap_err()
            .failure();
        assert_eq!(failure.reason, Reason::ProtocolMismatch);
        assert!(
            failure.message.contains("another question"),
            "{}",
            failure.message
        );
        // Garbage behind the query's ID is malformed; behind another ID it is only a stray.
        let mut ours = [0xff; 40];
        ours[..2].copy_from_slice(&query.metadata.id.to_be_bytes());
        for garbage in [&b""[..], b"\x00", &ours, &[0u8; 11]] {
            let rejected = decode(garbage, &query).unwrap_err();
            assert!(matches!(rejected, Rejected::Malformed(_)), "{rejected:?}");
        }
        let mut theirs = ours;
        theirs[..2].copy_from_slice(&(!query.metadata.id).to_be_bytes());
        let rejected = decode(&theirs, &query).unwrap_err();
        assert!(matches!(rejected, Rejected::Stray(_)), "{rejected:?}");
    }

    #[test]
    fn rcode_names_follow_dig() {
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(16), "BADVERS");
        assert_eq!(rcode_name(12), "RCODE12");
    }
}
