//! The DNS expectations as pure functions: response code, AD bit, then the answers of the
//! queried type, compared as presentation text with names case-insensitive and a trailing
//! dot optional, `equals` as sets (servers rotate the order of answers).

use std::{collections::HashSet, net::IpAddr};

use super::{
    super::Failure,
    wire::{Answer, rcode_expected, rcode_name},
};
use crate::api::{DnsExpectations, DnsRecordType, Reason, TargetText};

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

/// The answers indexed for lookups, so each expectation costs one normalisation per expected
/// value rather than one per pair of value and answer (thousands of records over TCP).
struct Index<'a> {
    kind: DnsRecordType,
    keys: HashSet<&'a str>,
    joined: HashSet<&'a str>,
}

impl<'a> Index<'a> {
    fn new(kind: DnsRecordType, answers: &'a [Answer]) -> Self {
        Self {
            kind,
            keys: answers.iter().map(|a| a.key.as_str()).collect(),
            joined: answers.iter().filter_map(|a| a.joined.as_deref()).collect(),
        }
    }

    /// Whether the expected value `value` names one of the answers.
    fn present(&self, value: &str) -> bool {
        self.keys.contains(normalize(self.kind, value).as_str()) || self.joined_present(value)
    }

    /// TXT written without quotes compares with the strings joined.
    fn joined_present(&self, value: &str) -> bool {
        !value.trim_start().starts_with('"') && self.joined.contains(value)
    }
}

/// Whether `answer` is one of `values` (already normalised in `keys`).
fn named_by(answer: &Answer, keys: &HashSet<String>, values: &HashSet<&str>) -> bool {
    keys.contains(&answer.key)
        || (answer.joined.as_deref())
            .is_some_and(|joined| values.contains(joined) && !joined.trim_start().starts_with('"'))
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
    let index = Index::new(kind, answers);
    let present = |value: &String| index.present(value);
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
        let keys: HashSet<String> = (expect.equals.iter()).map(|v| normalize(kind, v)).collect();
        let values: HashSet<&str> = expect.equals.iter().map(String::as_str).collect();
        let extra = answers.iter().find(|a| !named_by(a, &keys, &values));
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
            return mismatch(format!(
                "{} does not match /{regex}/",
                TargetText(&odd.text)
            ));
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
        .map(|a| TargetText(&a.text).to_string())
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
    fn txt_values_match_quoted_or_joined_and_large_sets_compare_whole() {
        use DnsRecordType::{A, Txt};
        let txt = [Answer {
            joined: Some("v=spf1 -all".into()),
            ..answer(Txt, r#""v=spf1" " -all""#)
        }];
        for value in ["v=spf1 -all", r#""v=spf1" " -all""#] {
            let mut e = expect();
            e.equals = vec![value.into()];
            e.contains_all = vec![value.into()];
            assert!(check_answers(Txt, &txt, &e).is_ok(), "{value}");
        }
        let mut e = expect();
        e.equals = vec![r#""v=spf1 -all""#.into()];
        assert!(
            check_answers(Txt, &txt, &e).is_err(),
            "quoted means as written"
        );
        let texts: Vec<String> = (0..4000)
            .map(|i| format!("10.{}.{}.1", i / 250, i % 250))
            .collect();
        let many: Vec<Answer> = texts.iter().map(|t| answer(A, t)).collect();
        let mut e = expect();
        e.equals = texts.iter().rev().cloned().collect();
        assert!(check_answers(A, &many, &e).is_ok());
        e.equals[0] = "192.0.2.1".into();
        assert!(check_answers(A, &many, &e).is_err());
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
