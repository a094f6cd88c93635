//! What this replica has seen of its peers' Leases, judged on its own monotonic clock. A list
//! that fails proves nothing, so expiry is measured up to the last list that succeeded, never up
//! to "now": a replica cut off from the API server never concludes that everybody else died.
//!
//! A Lease is trusted only as far as its holder shows itself alive (anyone allowed to write
//! Leases in the namespace can forge one, see docs/security.md):
//! - it counts as a member only once this replica saw its record change (a renewal), and only
//!   until the record stayed the same, in lists sent, for its declared duration clamped to
//!   [`Trust::max_duration`]; a Lease never seen renewing is waited for at most
//!   [`Trust::probation`], and only if it was in this replica's first list (it may be a peer
//!   that started earlier and runs checks; a Lease that appears later belongs to a replica that
//!   starts as a candidate and runs nothing before it renews, or is forged);
//! - a peer that does not acknowledge the ring this replica sees for [`Trust::ack_bound`] in a
//!   row is excluded: from the ring and from the handover waits, until it acknowledges;
//! - a deleted Lease leaves at once (its last renewal still bounds when its holder stopped).

use std::{collections::BTreeMap, time::Duration};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use tokio::time::Instant;

use super::{ShardConfig, lease::Claim};

/// How far a peer's Lease is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trust {
    /// The longest duration a Lease may declare (4x this replica's).
    pub max_duration: Duration,
    /// How long a Lease never seen renewing is waited for (this replica's duration: a real
    /// peer renews every third of its own).
    pub probation: Duration,
    /// How long a renewing peer may go without acknowledging the ring (this replica's duration).
    pub ack_bound: Duration,
}

impl Trust {
    /// The bounds for a replica configured with `config`.
    pub fn of(config: &ShardConfig) -> Self {
        Self {
            max_duration: config.duration * 4,
            probation: config.duration,
            ack_bound: config.duration,
        }
    }
}

/// Why a present Lease is not believed, for `canary_shard_excluded_peers{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Distrust {
    /// Renews but did not acknowledge the ring for the ack bound.
    Unacknowledged,
    /// Labelled a member, never seen renewing within its probation.
    NeverRenewed,
}

impl Distrust {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Unacknowledged => "unacknowledged",
            Self::NeverRenewed => "never_renewed",
        }
    }
}

/// One peer Lease as last seen.
#[derive(Debug, Clone)]
struct Seen {
    claim: Claim,
    /// When this replica first saw the current record (the answer to that list).
    since: Instant,
    resource_version: Option<String>,
    /// In the last list and not deleted since.
    present: bool,
    /// Its record was seen changing at least once (a renewal, or a new holder).
    renewed: bool,
    /// In this replica's first successful list: it may have run checks before this replica
    /// started, so it is waited for until it renews or its probation ends.
    predates: bool,
    /// Since when (a list's send time) it has not acknowledged the ring this replica sees;
    /// renewals do not reset it.
    unacked_since: Option<Instant>,
}

/// The peer Leases of one ring (this replica's own left out).
#[derive(Debug)]
pub struct Peers {
    own: String,
    trust: Trust,
    seen: BTreeMap<String, Seen>,
    /// When the last successful list was sent.
    listed: Option<Instant>,
}

impl Peers {
    /// An empty table for the replica whose Lease is named `own`.
    pub fn new(own: String, trust: Trust) -> Self {
        Self {
            own,
            trust,
            seen: BTreeMap::new(),
            listed: None,
        }
    }

    /// Notes the ring's Leases from a list sent at `sent` and answered at `answered`.
    pub fn observe(&mut self, leases: &[Lease], sent: Instant, answered: Instant) {
        for seen in self.seen.values_mut() {
            seen.present = false;
        }
        for lease in leases {
            let Some(name) = lease.metadata.name.clone() else {
                continue;
            };
            if name != self.own {
                self.note(name, lease, answered, self.listed.is_none());
            }
        }
        self.listed = Some(sent);
        let listed = sent;
        // Gone from the API and long dead: nothing more to learn from them.
        self.seen.retain(|_, seen| {
            seen.present || listed.saturating_duration_since(seen.since) < seen.claim.duration * 4
        });
    }

    fn note(&mut self, name: String, lease: &Lease, answered: Instant, first_list: bool) {
        let mut claim = Claim::of(lease);
        claim.duration = claim.duration.min(self.trust.max_duration);
        let resource_version = lease.metadata.resource_version.clone();
        match self.seen.get_mut(&name) {
            Some(seen) if seen.claim.record() == claim.record() => {
                (seen.claim, seen.resource_version) = (claim, resource_version);
                seen.present = true;
            }
            previous => {
                let renewed = previous.is_some();
                let unacked_since = previous.and_then(|p| p.unacked_since);
                let seen = Seen {
                    claim,
                    since: answered,
                    resource_version,
                    present: true,
                    renewed,
                    predates: first_list,
                    unacked_since,
                };
                self.seen.insert(name, seen);
            }
        }
    }

    /// A watch said the Lease `name` was deleted: it leaves at once.
    pub fn deleted(&mut self, name: &str) {
        if let Some(seen) = self.seen.get_mut(name) {
            seen.present = false;
        }
    }

    /// Updates who has not acknowledged the ring, by `acked`, as of the last list: the peers
    /// this replica waits for or counts (renewing, alive).
    pub fn note_acks(&mut self, acked: impl Fn(&Claim) -> bool) {
        let Some(listed) = self.listed else {
            return;
        };
        let judged: Vec<String> = (self.seen.iter())
            .filter(|(_, seen)| seen.renewed && self.alive(seen))
            .map(|(name, _)| name.clone())
            .collect();
        for name in judged {
            if let Some(seen) = self.seen.get_mut(&name) {
                seen.unacked_since = match acked(&seen.claim) {
                    true => None,
                    false => Some(seen.unacked_since.unwrap_or(listed)),
                };
            }
        }
    }

    fn expired(&self, seen: &Seen) -> bool {
        let duration = seen.claim.duration.min(match seen.renewed {
            true => Duration::MAX,
            false => self.trust.probation,
        });
        (self.listed).is_some_and(|listed| listed.saturating_duration_since(seen.since) >= duration)
    }

    /// The duration a peer's holder runs on, as far as it bounds when it stopped: its own
    /// (clamped) once seen renewing; at most the probation for one in the first list never seen
    /// renewing (a real peer with a duration up to 3 probations renews within one); none for
    /// one that appeared later and never renewed (it never ran anything).
    fn lifetime(&self, seen: &Seen) -> Option<Duration> {
        match (seen.renewed, seen.predates) {
            (true, _) => Some(seen.claim.duration),
            (false, true) => Some(seen.claim.duration.min(self.trust.probation)),
            (false, false) => None,
        }
    }

    fn alive(&self, seen: &Seen) -> bool {
        seen.present && !seen.claim.released() && !self.expired(seen)
    }

    /// Whether a handover waits for it: alive, not excluded, seen renewing or possibly older
    /// than this replica.
    fn waited_for(&self, seen: &Seen) -> bool {
        self.alive(seen) && !self.excluded(seen) && (seen.renewed || seen.predates)
    }

    fn excluded(&self, seen: &Seen) -> bool {
        let since = |at: Instant| self.listed.map(|l| l.saturating_duration_since(at));
        (seen.unacked_since.and_then(since)).is_some_and(|d| d >= self.trust.ack_bound)
    }

    /// Alive admitted peers seen renewing, excluded ones too: the ring peers acknowledge.
    pub fn renewing_members(&self) -> impl Iterator<Item = &Claim> {
        (self.seen.values())
            .filter(|seen| self.alive(seen) && seen.renewed && seen.claim.member)
            .map(|seen| &seen.claim)
    }

    /// Alive admitted peers seen renewing and not excluded: the ring's other members.
    pub fn members(&self) -> impl Iterator<Item = &Claim> {
        (self.seen.values())
            .filter(|seen| self.alive(seen) && seen.renewed && seen.claim.member)
            .filter(|seen| !self.excluded(seen))
            .map(|seen| &seen.claim)
    }

    /// Every alive peer not excluded, admitted or candidate, renewing or on probation: those a
    /// handover waits for (a replica that stepped down and rejoins as a candidate may still run
    /// checks until its reconcile acknowledges the ring; one in the first list not yet seen
    /// renewing may have run them before this replica started).
    pub fn alive_claims(&self) -> impl Iterator<Item = &Claim> {
        (self.seen.values())
            .filter(|seen| self.waited_for(seen))
            .map(|seen| &seen.claim)
    }

    /// The present Leases not believed, by name and why.
    pub fn distrusted(&self) -> BTreeMap<&str, Distrust> {
        let why = |seen: &Seen| {
            if self.alive(seen) && self.excluded(seen) {
                return Some(Distrust::Unacknowledged);
            }
            let forged_or_gone = seen.present && !seen.renewed && seen.claim.member;
            (forged_or_gone && !seen.claim.released() && !self.waited_for(seen))
                .then_some(Distrust::NeverRenewed)
        };
        (self.seen.iter())
            .filter_map(|(name, seen)| Some((name.as_str(), why(seen)?)))
            .collect()
    }

    /// When the earliest alive peer can next be judged expired or excluded (a list sent then
    /// decides).
    pub fn next_expiry(&self) -> Option<Instant> {
        (self.seen.values())
            .filter(|seen| self.alive(seen))
            .flat_map(|seen| {
                let probation = (!seen.renewed).then_some(self.trust.probation);
                let duration = seen.claim.duration.min(probation.unwrap_or(Duration::MAX));
                let exclusion = seen.unacked_since.map(|at| at + self.trust.ack_bound);
                [Some(seen.since + duration), exclusion]
            })
            .flatten()
            .min()
    }

    /// The latest time any peer may still have probed a check it no longer owns: what peers
    /// promised (`quiet-after`), and for a peer that died or whose Lease was deleted, the
    /// renew deadline (2/3 of its duration) after its last renewal, when it stopped by its own
    /// clock. Capped at `now + cap`, so a peer whose clock runs ahead (or a forged Lease)
    /// cannot postpone every handover.
    pub fn quiet_after(&self, now: Timestamp, cap: Duration) -> Option<Timestamp> {
        let stepped_down = |seen: &Seen| {
            let renewed = seen.claim.renew_time?;
            let deadline = jiff::SignedDuration::try_from(self.lifetime(seen)? * 2 / 3).ok()?;
            renewed.checked_add(deadline).ok()
        };
        let latest = (self.seen.values())
            .flat_map(|seen| {
                let died = (!seen.claim.released() && !self.alive(seen))
                    .then(|| stepped_down(seen))
                    .flatten();
                [seen.claim.quiet_after, died]
            })
            .flatten()
            .max()?;
        let cap = jiff::SignedDuration::try_from(cap).ok();
        let limit = cap.and_then(|cap| now.checked_add(cap).ok()).unwrap_or(now);
        Some(latest.min(limit))
    }

    /// Leases released or expired for longer than `after`, still in the API: (name,
    /// resourceVersion) to delete, so departed pods (and forged Leases never renewed) leave
    /// no Leases behind.
    pub fn stale(&self, after: Duration) -> Vec<(String, String)> {
        let Some(listed) = self.listed else {
            return Vec::new();
        };
        (self.seen.iter())
            .filter(|(_, seen)| seen.present && !self.alive(seen))
            .filter(|(_, seen)| listed.saturating_duration_since(seen.since) >= after)
            .filter_map(|(name, seen)| Some((name.clone(), seen.resource_version.clone()?)))
            .collect()
    }
}

#[cfg(test)]
#[path = "peers_tests.rs"]
mod tests;
