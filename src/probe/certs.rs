//! Certificate facts (parsed with x509-parser) and the pure checks of TLS expectations that
//! come after the handshake: remaining validity, lifetime share, names, issuer, pins.

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
};

use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::{Failure, TlsCapture, tls::TlsSettings};
use crate::api::{MAX_TARGET_CHARS, Reason, TargetText, display_text};

/// What one certificate of a served chain says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct CertFacts {
    pub subject: String,
    pub issuer: String,
    /// Hex, colon-separated.
    pub serial_number: String,
    pub dns_names: Vec<String>,
    pub not_before: jiff::Timestamp,
    pub not_after: jiff::Timestamp,
    /// SHA-256 of the SubjectPublicKeyInfo, for pins.
    pub spki_sha256: [u8; 32],
}

/// Facts of certificates seen lately, by the SHA-256 of their DER: a server sends the same chain
/// on every probe, and hashing it costs a fraction of parsing it. Emptied when full.
static SEEN: LazyLock<Mutex<HashMap<[u8; 32], CertFacts>>> = LazyLock::new(Mutex::default);
/// Distinct certificates remembered at most (a few hundred bytes each).
const SEEN_MAX: usize = 4096;

impl CertFacts {
    /// [`CertFacts::parse`], remembered for certificates seen before.
    pub fn parse_cached(der: &CertificateDer<'_>) -> Option<Self> {
        let key: [u8; 32] = Sha256::digest(der.as_ref()).into();
        if let Some(facts) = crate::lock(&SEEN).get(&key) {
            return Some(facts.clone());
        }
        let facts = Self::parse(der)?;
        let mut seen = crate::lock(&SEEN);
        if seen.len() >= SEEN_MAX {
            seen.clear();
        }
        seen.insert(key, facts.clone());
        Some(facts)
    }

    /// Parses one DER certificate; `None` when it is not a certificate at all.
    pub fn parse(der: &CertificateDer<'_>) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
        let validity = cert.validity();
        let dns_names = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                (san.value.general_names.iter())
                    .filter_map(|name| match name {
                        GeneralName::DNSName(dns) => Some((*dns).to_string()),
                        GeneralName::IPAddress(ip) => ip_to_string(ip),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial_number: cert.raw_serial_as_string(),
            dns_names,
            not_before: timestamp(validity.not_before.timestamp())?,
            not_after: timestamp(validity.not_after.timestamp())?,
            spki_sha256: Sha256::digest(cert.public_key().raw).into(),
        })
    }

    /// A short name for messages: the first SAN, else the subject, as a target's words
    /// are shown.
    pub fn display_name(&self) -> TargetText<'_> {
        TargetText(self.dns_names.first().map_or(&self.subject, String::as_str))
    }

    /// These facts as they may be shown (status, the page): names escaped and cut.
    pub fn shown(&self) -> Self {
        let show = |text: &str| display_text(text, MAX_TARGET_CHARS).into_owned();
        Self {
            subject: show(&self.subject),
            issuer: show(&self.issuer),
            dns_names: self.dns_names.iter().map(|name| show(name)).collect(),
            ..self.clone()
        }
    }
}

/// The first few of `names`, each shown as a target's words, quoted: `"a", "b" (+3 more)`.
fn shown_list(names: &[String]) -> String {
    const FEW: usize = 8;
    let mut text = (names.iter().take(FEW))
        .map(|name| format!("\"{}\"", TargetText(name)))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > FEW {
        text.push_str(&format!(" (+{} more)", names.len() - FEW));
    }
    text
}

fn timestamp(seconds: i64) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_second(seconds).ok()
}

fn ip_to_string(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}

/// Checks the expectations that need the served chain, in a fixed order so a certificate
/// that breaks several rules always reports the same reason.
pub fn check_expectations(
    facts: &TlsCapture,
    settings: &TlsSettings,
    now: jiff::Timestamp,
) -> Result<(), Failure> {
    let Some(leaf) = facts.leaf() else {
        return Err(Failure::new(
            Reason::TLSHandshakeFailed,
            "the server sent no certificate",
        ));
    };
    check_validity_window(facts, settings, now)?;
    check_lifetime_share(leaf, settings, now)?;
    let missing: Vec<&str> = (settings.policy.expected_dns_names.iter())
        .filter(|name| {
            !leaf
                .dns_names
                .iter()
                .any(|san| san.eq_ignore_ascii_case(name))
        })
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Failure::new(
            Reason::CertificateMismatch,
            format!(
                "certificate SANs [{}] lack expected name(s) {missing:?}",
                shown_list(&leaf.dns_names)
            ),
        ));
    }
    if let Some(expected) = &settings.policy.expected_issuer
        && !leaf.issuer.contains(expected.as_str())
    {
        return Err(Failure::new(
            Reason::CertificateMismatch,
            format!(
                "certificate issuer \"{}\" does not contain {expected:?}",
                TargetText(&leaf.issuer)
            ),
        ));
    }
    if !settings.policy.pins.is_empty()
        && !facts
            .chain
            .iter()
            .any(|c| settings.policy.pins.contains(&c.spki_sha256))
    {
        return Err(Failure::new(
            Reason::CertificatePinMismatch,
            format!(
                "no certificate in the served chain of {} matches a pinned public key",
                leaf.display_name()
            ),
        ));
    }
    Ok(())
}

fn check_validity_window(
    facts: &TlsCapture,
    settings: &TlsSettings,
    now: jiff::Timestamp,
) -> Result<(), Failure> {
    // With verify on, the handshake already rejected expired and not-yet-valid certificates;
    // with verify off these still matter, so the checks run either way.
    for cert in &facts.chain {
        if cert.not_after <= now {
            return Err(Failure::new(
                Reason::CertificateExpired,
                format!(
                    "certificate for {} expired {} ago",
                    cert.display_name(),
                    human(now, cert.not_after)
                ),
            ));
        }
        if cert.not_before > now {
            return Err(Failure::new(
                Reason::CertificateNotYetValid,
                format!(
                    "certificate for {} is valid only in {}",
                    cert.display_name(),
                    human(cert.not_before, now)
                ),
            ));
        }
    }
    let Some(earliest) = facts.chain.iter().min_by_key(|c| c.not_after) else {
        return Ok(());
    };
    let remaining = earliest.not_after.duration_since(now);
    let minimum = settings.policy.min_remaining_validity;
    if remaining.unsigned_abs() < minimum {
        return Err(Failure::new(
            Reason::CertificateExpiringSoon,
            format!(
                "certificate for {} expires in {} (< {})",
                earliest.display_name(),
                human(earliest.not_after, now),
                human_duration(minimum),
            ),
        ));
    }
    Ok(())
}

fn check_lifetime_share(
    leaf: &CertFacts,
    settings: &TlsSettings,
    now: jiff::Timestamp,
) -> Result<(), Failure> {
    if settings.policy.min_remaining_lifetime_percent == 0 {
        return Ok(());
    }
    let lifetime = leaf.not_after.duration_since(leaf.not_before).as_secs_f64();
    let remaining = leaf.not_after.duration_since(now).as_secs_f64();
    if lifetime <= 0.0 {
        return Ok(());
    }
    let percent = remaining / lifetime * 100.0;
    if percent < f64::from(settings.policy.min_remaining_lifetime_percent) {
        return Err(Failure::new(
            Reason::CertificateExpiringSoon,
            format!(
                "certificate for {} has {percent:.0}% of its lifetime left (< {}%): renewal is overdue",
                leaf.display_name(),
                settings.policy.min_remaining_lifetime_percent
            ),
        ));
    }
    Ok(())
}

/// `later - earlier` as a compact human duration (`5d3h`, `42m`).
pub fn human(later: jiff::Timestamp, earlier: jiff::Timestamp) -> String {
    human_duration(later.duration_since(earlier).unsigned_abs())
}

/// A compact human duration with at most two units (`14d`, `5d3h`, `42m10s`).
pub fn human_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = secs;
    for (size, unit) in units {
        if rest >= size && parts.len() < 2 {
            parts.push(format!("{}{unit}", rest / size));
            rest %= size;
        } else if !parts.is_empty() {
            break;
        }
    }
    if parts.is_empty() {
        "0s".into()
    } else {
        parts.concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn human_durations_are_compact() {
        assert_eq!(human_duration(Duration::from_secs(14 * 86_400)), "14d");
        assert_eq!(
            human_duration(Duration::from_secs(5 * 86_400 + 3 * 3600 + 59)),
            "5d3h"
        );
        assert_eq!(human_duration(Duration::from_secs(2530)), "42m10s");
        assert_eq!(human_duration(Duration::ZERO), "0s");
    }
}
