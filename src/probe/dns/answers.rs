//! The DNS expectations as pure functions: response code, AD bit, then the answers of the
//! queried type, compared as presentation text with names case-insensitive and a trailing
//! dot optional, `equals` as sets (servers rotate the order of answers).

use std::net::IpAddr;

use super::{
    super::Failure,
    wire::{Answer, rcode_expected, rcode_name},
};
use crate::api::{DnsExpectations, DnsRecordType, Reason};

/// Text in the form answers are compared by: addresses parsed, names lower-cased and without
/// their trailing dot, TXT and CAA as written.
pub fn normalize(kind: DnsRecordType, text: &str) -> String {
    let text = text.trim();
    match kind {
        DnsRecordType::A | DnsRecordType::Aaaa => text
            .parse::<IpAddr>()
            .map_or_else(|_| text.to_ascii_lowercase(), |ip| ip.to_string()),
        DnsRecordType::Txt | DnsRecordType::Caa => text.to_string(),
        _ => (text.split_whitespace())
            .map(|token| {
                let token = token.to_ascii_lowercase();
                match token.strip_suffix('.') {
                    Some(stripped) if !stripped.is_empty() => stripped.to_string(),
                    _ => token,
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Whether the expected value `value` names `answer`.
fn names(kind: DnsRecordType, value: &str, answer: &Answer) -> bool {
    if normalize(kind, value) == answer.key {
        return true;
    }
    // TXT written without quotes compares with the strings joined.
    !value.trim_start().starts_with('"') && answer.joined.as_deref() == Some(value)
}

/// Checks the response code and the AD bit.
pub fn check_header(
    rcode: u16,
    authenticated: bool,
    expect: &DnsExpectations,
) -> Result<(), Failure> {
    if !rcode_expected(rcode, &expect.rcodes) {
        let wanted: Vec<String> = (expect.rcodes.iter())
            .map(|r| rcode_name(r.code()))
            .collect();
        return Err(Failure::new(
            Reason::UnexpectedStatus,
            format!(
                "response code {} is not one of the expected {}",
                rcode_name(rcode),
                wanted.join(", ")
            ),
        ));
    }
    match expect.authenticated_data {
        Some(true) if !authenticated => Err(Failure::new(
            Reason::UnexpectedStatus,
            "the AD bit is not set: the resolver did not validate the answer with DNSSEC",
        )),
        Some(false) if authenticated => Err(Failure::new(
            Reason::UnexpectedStatus,
            "the AD bit is set, but authenticatedData: false expects it clear",
        )),
        _ => Ok(()),
    }
}

/// Checks the answers of the queried type against every answers expectation.
pub fn check_answers(
    kind: DnsRecordType,
    answers: &[Answer],
    expect: &DnsExpectations,
) -> Result<(), Failure> {
    let mismatch = |message: String| Err(Failure::new(Reason::BodyMismatch, message));
    let count = answers.len() as u64;
    let shown = || show(answers);
    if let Some(min) = expect.min_count.filter(|m| count < u64::from(*m)) {
        return mismatch(format!(
            "{count} {} records, fewer than minCount {min}",
            kind.as_str()
        ));
    }
    if let Some(max) = expect.max_count.filter(|m| count > u64::from(*m)) {
        return mismatch(format!(
            "{count} {} records, more than maxCount {max}: {}",
            kind.as_str(),
            shown()
        ));
    }
    let present = |value: &String| answers.iter().any(|a| names(kind, value, a));
    if let Some(missing) = expect.contains_all.iter().find(|v| !present(v)) {
        return mismatch(format!(
            "{missing:?} is not among the answers ({})",
            shown()
        ));
    }
    if !expect.contains_any.is_empty() && !expect.contains_any.iter().any(present) {
        return mismatch(format!(
            "none of {:?} is among the answers ({})",
            expect.contains_any,
            shown()
        ));
    }
    if !expect.equals.is_empty() {
        let extra = answers
            .iter()
            .find(|a| !expect.equals.iter().any(|v| names(kind, v, a)));
        let missing = expect.equals.iter().find(|v| !present(v));
        if extra.is_some() || missing.is_some() {
            return mismatch(format!(
                "the answers ({}) are not the set {:?}",
                shown(),
                expect.equals
            ));
        }
    }
    if let Some(forbidden) = expect.none_of.iter().find(|v| present(v)) {
        return mismatch(format!("{forbidden:?} is among the answers ({})", shown()));
    }
    if let Some(regex) = &expect.match_regex {
        if answers.is_empty() {
            return mismatch(format!("no {} records to match /{regex}/", kind.as_str()));
        }
        if let Some(odd) = answers.iter().find(|a| !regex.is_match(a.text.as_bytes())) {
            return mismatch(format!("{} does not match /{regex}/", odd.text));
        }
    }
    Ok(())
}

/// The first few answers for a message: `1.2.3.4, 5.6.7.8 (+3 more)`.
pub fn show(answers: &[Answer]) -> String {
    const FEW: usize = 5;
    if answers.is_empty() {
        return "no answers".into();
    }
    let mut text = (answers.iter().take(FEW))
        .map(|a| a.text.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if answers.len() > FEW {
        text.push_str(&format!(" (+{} more)", answers.len() - FEW));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DnsRcode;

    fn answer(kind: DnsRecordType, text: &str) -> Answer {
        Answer {
            text: text.into(),
            key: normalize(kind, text),
            joined: None,
        }
    }

    fn expect() -> DnsExpectations {
        DnsExpectations {
            rcodes: vec![DnsRcode::NoError],
            ..DnsExpectations::default()
        }
    }

    #[test]
    fn names_compare_without_case_or_trailing_dot_and_equals_is_a_set() {
        use DnsRecordType::{A, Mx};
        let mx = [
            answer(Mx, "10 Mail.Example.com."),
            answer(Mx, "20 backup.example.com."),
        ];
        let mut e = expect();
        e.contains_all = vec!["10 mail.example.com".into()];
        e.equals = vec![
            "20 BACKUP.example.com".into(),
            "10 mail.example.com.".into(),
        ];
        assert!(check_answers(Mx, &mx, &e).is_ok());
        let a = [answer(A, "192.0.2.2"), answer(A, "192.0.2.1")];
        let mut e = expect();
        e.equals = vec!["192.0.2.1".into(), "192.0.2.2".into()];
        e.min_count = Some(2);
        assert!(check_answers(A, &a, &e).is_ok());
        e.equals.pop();
        let failure = check_answers(A, &a, &e).unwrap_err();
        assert_eq!(failure.reason, Reason::BodyMismatch);
        let v6 = [answer(DnsRecordType::Aaaa, "2001:db8::1")];
        let mut e = expect();
        e.contains_any = vec!["2001:DB8:0::1".into()];
        assert!(check_answers(DnsRecordType::Aaaa, &v6, &e).is_ok());
    }

    #[test]
    fn counts_none_of_and_regex() {
        use DnsRecordType::A;
        let a = [answer(A, "10.0.0.1"), answer(A, "10.0.0.2")];
        let mut e = expect();
        e.max_count = Some(1);
        assert!(
            check_answers(A, &a, &e)
                .unwrap_err()
                .message
                .contains("maxCount")
        );
        let mut e = expect();
        e.none_of = vec!["10.0.0.2".into()];
        assert!(check_answers(A, &a, &e).is_err());
        let mut e = expect();
        e.match_regex = Some(regex::bytes::Regex::new(r"^10\.0\.0\.\d+$").unwrap());
        assert!(check_answers(A, &a, &e).is_ok());
        assert!(
            check_answers(A, &[], &e).is_err(),
            "nothing to match is a failure"
        );
    }

    #[test]
    fn rcode_and_ad_bit() {
        let mut e = expect();
        let failure = check_header(3, false, &e).unwrap_err();
        assert_eq!(failure.reason, Reason::UnexpectedStatus);
        assert!(failure.message.contains("NXDOMAIN"), "{}", failure.message);
        e.authenticated_data = Some(true);
        assert!(check_header(0, false, &e).is_err());
        assert!(check_header(0, true, &e).is_ok());
    }
}
