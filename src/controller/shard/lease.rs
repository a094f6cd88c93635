//! A member's coordination.k8s.io/v1 Lease: its name, the ring label, and what its holder says
//! in it (member or candidate, the ring it acknowledged, when it stopped what it gave up).

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use jiff::Timestamp;
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};

use super::ring::RingHash;
use crate::runner::stable_hash;

/// Label that puts a member Lease in a ring (value: the release's Lease name).
pub const RING_LABEL: &str = "canary.dev/ring";
/// `"true"` once the holder has been admitted to the ring (see `join delay` in the module
/// docs of `controller::shard`), `"false"` while it is a candidate.
pub const MEMBER_ANNOTATION: &str = "canary.dev/ring-member";
/// The member set (its hash) whose checks the holder has given up what it does not own.
pub const ACK_ANNOTATION: &str = "canary.dev/ring-ack";
/// RFC 3339 time from which the holder probes nothing it does not own under its ack.
pub const QUIET_ANNOTATION: &str = "canary.dev/ring-quiet-after";
/// The holder's process: a random number chosen at start, so a restart under the same identity
/// is a new member (hex).
pub const INCARNATION_ANNOTATION: &str = "canary.dev/ring-incarnation";
/// The ring the holder acknowledged, hashed with the members' incarnations (hex).
pub const ACK_INCARNATIONS_ANNOTATION: &str = "canary.dev/ring-ack-incarnations";
/// Where the holder's status page answers (peers forward its checks' pages there).
pub const UI_ANNOTATION: &str = "canary.dev/ui-address";
/// Every member Lease is named this plus the identity.
pub const LEASE_PREFIX: &str = "canary-shard-";

/// The Lease name of `identity`: `canary-shard-<identity>`, made a valid object name (lower
/// case, `[a-z0-9.-]`, at most 253 characters; a hash suffix keeps altered names distinct).
pub fn lease_name(identity: &str) -> String {
    let cleaned = dns_safe(identity, 253 - LEASE_PREFIX.len() - 17);
    match cleaned == identity {
        true => format!("{LEASE_PREFIX}{identity}"),
        false => {
            let hash = stable_hash(&[identity.as_bytes()]);
            format!("{LEASE_PREFIX}{cleaned}-{hash:016x}")
        }
    }
}

/// The ring label's value for `ring` (a valid label value: `[A-Za-z0-9._-]`, 63 characters).
pub fn label_value(ring: &str) -> String {
    let cleaned: String = (ring.chars())
        .map(
            |c| match c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                true => c,
                false => '-',
            },
        )
        .take(63)
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

fn dns_safe(text: &str, max: usize) -> String {
    let lower: String = (text.chars())
        .map(|c| c.to_ascii_lowercase())
        .map(
            |c| match c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
                true => c,
                false => '-',
            },
        )
        .take(max)
        .collect();
    lower
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// What a member Lease says, as a peer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The holder; empty once released (a replica that left).
    pub identity: String,
    /// `spec.renewTime` as written: a change of it is a renewal.
    pub renew_time: Option<Timestamp>,
    pub duration: Duration,
    pub member: bool,
    pub ack: Option<RingHash>,
    /// The acknowledged ring's [`super::Ring::incarnations_hash`]; none from older versions.
    pub ack_incarnations: Option<RingHash>,
    /// The holder's process (see [`INCARNATION_ANNOTATION`]); none from older versions.
    pub incarnation: Option<u64>,
    pub quiet_after: Option<Timestamp>,
    /// The holder's status page (`IP:PORT`); garbage reads as none.
    pub ui: Option<SocketAddr>,
}

impl Claim {
    /// Reads a Lease; hostile durations are clamped so no Lease lasts forever or never.
    pub fn of(lease: &Lease) -> Self {
        let spec = lease.spec.as_ref();
        let seconds = spec.and_then(|s| s.lease_duration_seconds).unwrap_or(15);
        let seconds = u64::try_from(seconds.clamp(1, 3600)).unwrap_or(15);
        let annotations = lease.metadata.annotations.as_ref();
        let annotation = |name: &str| annotations.and_then(|a| a.get(name));
        Self {
            identity: (spec.and_then(|s| s.holder_identity.clone())).unwrap_or_default(),
            renew_time: spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
            duration: Duration::from_secs(seconds),
            member: annotation(MEMBER_ANNOTATION).is_some_and(|v| v == "true"),
            ack: annotation(ACK_ANNOTATION).and_then(|v| v.parse().ok()),
            ack_incarnations: annotation(ACK_INCARNATIONS_ANNOTATION).and_then(|v| v.parse().ok()),
            incarnation: annotation(INCARNATION_ANNOTATION)
                .and_then(|v| u64::from_str_radix(v, 16).ok()),
            quiet_after: annotation(QUIET_ANNOTATION).and_then(|v| v.parse().ok()),
            ui: annotation(UI_ANNOTATION).and_then(|v| v.parse().ok()),
        }
    }

    /// Released by its holder on the way out: no longer a member, nothing to wait for.
    pub fn released(&self) -> bool {
        self.identity.is_empty()
    }

    /// The part whose change proves the holder alive (as client-go's leader election).
    pub fn record(&self) -> (&str, Option<Timestamp>) {
        (&self.identity, self.renew_time)
    }

    /// Writes this claim into `lease` (named `name`, in ring `ring`), renewed now.
    pub fn write_into(&self, lease: &mut Lease, name: &str, ring: &str) {
        lease.metadata.name = Some(name.to_string());
        let labels = lease.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(RING_LABEL.to_string(), ring.to_string());
        let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
        let mut set = |key: &str, value: Option<String>| match value {
            Some(value) => annotations.insert(key.to_string(), value),
            None => annotations.remove(key),
        };
        set(MEMBER_ANNOTATION, Some(self.member.to_string()));
        set(ACK_ANNOTATION, self.ack.map(|h| h.to_string()));
        set(
            ACK_INCARNATIONS_ANNOTATION,
            self.ack_incarnations.map(|h| h.to_string()),
        );
        set(
            INCARNATION_ANNOTATION,
            self.incarnation.map(|i| format!("{i:016x}")),
        );
        set(QUIET_ANNOTATION, self.quiet_after.map(|t| t.to_string()));
        set(UI_ANNOTATION, self.ui.map(|a| a.to_string()));
        let seconds = i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let fresh = spec.holder_identity.as_deref() != Some(self.identity.as_str());
        spec.holder_identity = (!self.released()).then(|| self.identity.clone());
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = self.renew_time.map(MicroTime);
        if fresh && !self.released() {
            spec.acquire_time = self.renew_time.map(MicroTime);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_valid_object_names_and_distinct() {
        assert_eq!(
            lease_name("canary-7d9f8-x2x"),
            "canary-shard-canary-7d9f8-x2x"
        );
        let odd = lease_name("Host_Name-42");
        assert!(odd.starts_with("canary-shard-host-name-42-"), "{odd}");
        assert_ne!(odd, lease_name("host_name-42"));
        let long = lease_name(&"a".repeat(400));
        assert!(long.len() <= 253, "{}", long.len());
        assert_eq!(label_value("my release!"), "my-release");
    }

    #[test]
    fn a_claim_reads_back_what_was_written() {
        let claim = Claim {
            identity: "r1".into(),
            renew_time: Some(Timestamp::from_second(1_000).unwrap()),
            duration: Duration::from_secs(15),
            member: true,
            ack: Some(RingHash(0xabc)),
            ack_incarnations: Some(RingHash(0xdef)),
            incarnation: Some(u64::MAX - 5),
            quiet_after: Some(Timestamp::from_millisecond(999_500).unwrap()),
            ui: Some("[fd00::5]:8082".parse().unwrap()),
        };
        let mut lease = Lease::default();
        claim.write_into(&mut lease, "canary-shard-r1", "canary");
        assert_eq!(Claim::of(&lease), claim);
        let labels = lease.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[RING_LABEL], "canary");
        let released = Claim {
            identity: String::new(),
            ..claim
        };
        released.write_into(&mut lease, "canary-shard-r1", "canary");
        assert!(Claim::of(&lease).released());
        assert!(lease.spec.unwrap().holder_identity.is_none());
    }

    #[test]
    fn hostile_durations_read_as_sane_ones_and_garbage_annotations_as_absent() {
        let mut lease = Lease {
            spec: Some(LeaseSpec {
                lease_duration_seconds: Some(-4),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        let annotations = [
            (ACK_ANNOTATION.to_string(), "not hex".to_string()),
            (QUIET_ANNOTATION.to_string(), "yesterday".to_string()),
            (MEMBER_ANNOTATION.to_string(), "yes".to_string()),
            (UI_ANNOTATION.to_string(), "http://evil/".to_string()),
            (INCARNATION_ANNOTATION.to_string(), "-1".to_string()),
        ];
        lease.metadata.annotations = Some(annotations.into());
        let claim = Claim::of(&lease);
        assert_eq!(claim.duration, Duration::from_secs(1));
        assert_eq!(
            (claim.ack, claim.quiet_after, claim.member, claim.ui),
            (None, None, false, None)
        );
        assert_eq!((claim.incarnation, claim.ack_incarnations), (None, None));
    }
}
