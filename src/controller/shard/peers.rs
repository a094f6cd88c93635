//! What this replica has seen of its peers' Leases, judged on its own monotonic clock: a peer
//! is alive until the Lease record it last showed has stayed the same, in lists this replica
//! sent, for the Lease's duration. A list that fails proves nothing, so expiry is measured up to
//! the last list that succeeded, never up to "now": a replica cut off from the API server never
//! concludes that everybody else died.

use std::{collections::BTreeMap, time::Duration};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use tokio::time::Instant;

use super::lease::Claim;

/// One peer Lease as last seen.
#[derive(Debug, Clone)]
struct Seen {
    claim: Claim,
    /// When this replica first saw the current record (the answer to that list).
    since: Instant,
    resource_version: Option<String>,
    /// In the last list (a deleted Lease is judged on its last record until it expires).
    present: bool,
}

/// The peer Leases of one ring (this replica's own left out).
#[derive(Debug)]
pub struct Peers {
    own: String,
    seen: BTreeMap<String, Seen>,
    /// When the last successful list was sent.
    listed: Option<Instant>,
}

impl Peers {
    /// An empty table for the replica whose Lease is named `own`.
    pub fn new(own: String) -> Self {
        Self {
            own,
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
            if name == self.own {
                continue;
            }
            let claim = Claim::of(lease);
            let resource_version = lease.metadata.resource_version.clone();
            match self.seen.get_mut(&name) {
                Some(seen) if seen.claim.record() == claim.record() => {
                    (seen.claim, seen.resource_version) = (claim, resource_version);
                    seen.present = true;
                }
                _ => {
                    let seen = Seen {
                        claim,
                        since: answered,
                        resource_version,
                        present: true,
                    };
                    self.seen.insert(name, seen);
                }
            }
        }
        self.listed = Some(sent);
        let listed = sent;
        // Gone from the API and long dead: nothing more to learn from them.
        self.seen.retain(|_, seen| {
            seen.present || listed.saturating_duration_since(seen.since) < seen.claim.duration * 4
        });
    }

    fn expired(&self, seen: &Seen) -> bool {
        (self.listed).is_some_and(|listed| {
            listed.saturating_duration_since(seen.since) >= seen.claim.duration
        })
    }

    fn alive(&self, seen: &Seen) -> bool {
        !seen.claim.released() && !self.expired(seen)
    }

    /// Alive peers admitted to the ring.
    pub fn members(&self) -> impl Iterator<Item = &Claim> {
        (self.seen.values())
            .filter(|seen| self.alive(seen) && seen.claim.member)
            .map(|seen| &seen.claim)
    }

    /// Every alive peer, admitted or candidate (a replica that stepped down and rejoins as a
    /// candidate may still run checks until its reconcile acknowledges the ring).
    pub fn alive_claims(&self) -> impl Iterator<Item = &Claim> {
        (self.seen.values())
            .filter(|seen| self.alive(seen))
            .map(|seen| &seen.claim)
    }

    /// When the earliest alive peer can next be judged expired (a list sent then decides).
    pub fn next_expiry(&self) -> Option<Instant> {
        (self.seen.values())
            .filter(|seen| self.alive(seen))
            .map(|seen| seen.since + seen.claim.duration)
            .min()
    }

    /// The latest time any peer may still have probed a check it no longer owns: what peers
    /// promised (`quiet-after`), and for a peer that died, the renew deadline (2/3 of its
    /// duration) after its last renewal, when it stopped by its own clock. Capped at
    /// `now + cap`, so a peer whose clock runs ahead cannot postpone every handover.
    pub fn quiet_after(&self, now: Timestamp, cap: Duration) -> Option<Timestamp> {
        let stepped_down = |seen: &Seen| {
            let renewed = seen.claim.renew_time?;
            let deadline = jiff::SignedDuration::try_from(seen.claim.duration * 2 / 3).ok()?;
            renewed.checked_add(deadline).ok()
        };
        let latest = (self.seen.values())
            .flat_map(|seen| {
                let died = (!seen.claim.released() && self.expired(seen))
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
    /// resourceVersion) to delete, so departed pods leave no Leases behind.
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
mod tests {
    use super::*;
    use crate::controller::shard::ring::RingHash;

    const D: Duration = Duration::from_secs(3);

    fn lease(name: &str, holder: &str, renewed: i64, member: bool) -> Lease {
        let claim = Claim {
            identity: holder.into(),
            renew_time: Some(Timestamp::from_second(renewed).unwrap()),
            duration: D,
            member,
            ack: Some(RingHash(7)),
            ack_incarnations: None,
            incarnation: None,
            quiet_after: None,
            ui: None,
        };
        let mut lease = Lease::default();
        claim.write_into(&mut lease, name, "ring");
        lease.metadata.resource_version = Some(renewed.to_string());
        lease
    }

    fn names(peers: &Peers) -> Vec<String> {
        peers.members().map(|c| c.identity.clone()).collect()
    }

    fn list(peers: &mut Peers, leases: &[Lease]) {
        let now = Instant::now();
        peers.observe(leases, now, now);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_expires_after_its_record_stayed_the_same_for_the_duration_in_lists() {
        let mut peers = Peers::new("canary-shard-me".into());
        let (me, a, b) = (
            lease("canary-shard-me", "me", 1, true),
            lease("canary-shard-a", "a", 1, true),
            lease("canary-shard-b", "b", 1, false),
        );
        list(&mut peers, &[me, a.clone(), b.clone()]);
        assert_eq!(names(&peers), ["a"], "candidates and itself are no members");
        tokio::time::sleep(D - Duration::from_millis(1)).await;
        let a2 = lease("canary-shard-a", "a", 2, true);
        list(&mut peers, &[a2.clone(), b.clone()]);
        assert_eq!(names(&peers), ["a"]);
        tokio::time::sleep(Duration::from_millis(2)).await;
        list(&mut peers, &[a2.clone(), b.clone()]);
        assert_eq!(names(&peers), ["a"], "renewed: the clock restarted");
        tokio::time::sleep(D).await;
        list(&mut peers, &[a2, b]);
        assert!(
            names(&peers).is_empty(),
            "unchanged for the duration: expired"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_successful_list_nobody_expires() {
        let mut peers = Peers::new("canary-shard-me".into());
        list(&mut peers, &[lease("canary-shard-a", "a", 1, true)]);
        // The API is unreachable for ten durations: no list succeeds, nothing is concluded.
        tokio::time::sleep(D * 10).await;
        assert_eq!(names(&peers), ["a"]);
        assert!(
            peers.next_expiry().unwrap() < Instant::now(),
            "due for a judgement"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_lease_leaves_at_once_and_its_promise_counts() {
        let mut peers = Peers::new("canary-shard-me".into());
        list(&mut peers, &[lease("canary-shard-a", "a", 1, true)]);
        let mut released = lease("canary-shard-a", "", 2, false);
        let promise = Timestamp::from_second(100).unwrap();
        (released.metadata.annotations.as_mut().unwrap()).insert(
            crate::controller::shard::lease::QUIET_ANNOTATION.into(),
            promise.to_string(),
        );
        list(&mut peers, &[released]);
        assert!(names(&peers).is_empty());
        let now = Timestamp::from_second(99).unwrap();
        assert_eq!(
            peers.quiet_after(now, Duration::from_secs(10)),
            Some(promise)
        );
        assert_eq!(
            peers.quiet_after(now, Duration::from_millis(500)),
            Some(Timestamp::from_millisecond(99_500).unwrap()),
            "capped"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_peer_is_quiet_after_its_renew_deadline_and_is_collected_later() {
        let mut peers = Peers::new("canary-shard-me".into());
        let dead = lease("canary-shard-a", "a", 1_000, true);
        list(&mut peers, std::slice::from_ref(&dead));
        tokio::time::sleep(D).await;
        list(&mut peers, std::slice::from_ref(&dead));
        let now = Timestamp::from_second(2_000).unwrap();
        assert_eq!(
            peers.quiet_after(now, D),
            Some(Timestamp::from_second(1_002).unwrap()),
            "renewed at 1000s, stepped down by 1002s"
        );
        assert!(peers.stale(D * 4).is_empty(), "not yet");
        tokio::time::sleep(D * 4).await;
        list(&mut peers, &[dead]);
        assert_eq!(
            peers.stale(D * 4),
            [("canary-shard-a".to_string(), "1000".to_string())]
        );
        // Deleted: forgotten once long dead.
        list(&mut peers, &[]);
        assert!(peers.seen.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_deleted_without_release_is_alive_until_it_expires() {
        let mut peers = Peers::new("canary-shard-me".into());
        list(&mut peers, &[lease("canary-shard-a", "a", 1, true)]);
        list(&mut peers, &[]);
        assert_eq!(names(&peers), ["a"], "its holder may still be probing");
        tokio::time::sleep(D).await;
        list(&mut peers, &[]);
        assert!(names(&peers).is_empty());
    }
}
