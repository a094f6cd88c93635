//! What this replica may run, decided from where it stands, what its own Lease is known to
//! say and what its peers' Leases said, with no I/O: the ring (the alive members, itself only
//! as a member), whether it may start checks it gained (its own acknowledgement written and
//! every alive Lease acknowledging the same ring) and when its peers promised to be quiet.

use std::sync::Arc;

use jiff::Timestamp;

use super::{Assignment, ShardConfig, Standing, lease::Claim, peers::Peers, ring::Ring};

/// This replica as the assignment sees it.
#[derive(Debug, Clone, Copy)]
pub struct Me<'a> {
    pub config: &'a ShardConfig,
    /// This process (see [`super::lease::INCARNATION_ANNOTATION`]).
    pub incarnation: u64,
    pub standing: Standing,
    /// What this replica's Lease is known to hold; `None` while a write's fate is unknown.
    pub published: Option<&'a Claim>,
}

/// Where this replica stands, the ring it sees and whether it may start checks, given what
/// its peers' Leases said; `now` is the wall clock (peers' promises are capped by it).
pub fn assignment(me: Me<'_>, peers: &Peers, now: Timestamp) -> Assignment {
    let ring = ring(&me, peers);
    Assignment {
        identity: Arc::from(me.config.identity.as_str()),
        may_gain: may_gain(&me, peers, &ring),
        ring: Arc::new(ring),
        standing: me.standing,
        quiet_after: peers.quiet_after(now, me.config.leave_lead()),
    }
}

/// Notes which peers acknowledge the ring: the one this replica sees, or the one it would see
/// without excluding anybody (what a peer that is excluded but healthy acknowledges, so it
/// comes back once it catches up).
pub fn note_acks(me: Me<'_>, peers: &mut Peers) {
    let full = ring_of(&me, peers.renewing_members());
    let seen = ring(&me, peers);
    peers.note_acks(|claim| acknowledged(claim, &full) || acknowledged(claim, &seen));
}

/// The alive admitted peers (not excluded), and this replica while it is a member.
fn ring(me: &Me<'_>, peers: &Peers) -> Ring {
    ring_of(me, peers.members())
}

fn ring_of<'a>(me: &Me<'_>, peers: impl Iterator<Item = &'a Claim>) -> Ring {
    let mut members: Vec<(String, Option<u64>)> =
        peers.map(|c| (c.identity.clone(), c.incarnation)).collect();
    if me.standing == Standing::Member {
        members.push((me.config.identity.clone(), Some(me.incarnation)));
    }
    Ring::of(members)
}

/// Whether a member may start checks under `ring`: its own acknowledgement of it is written
/// and every alive Lease, candidates included, acknowledged it too. A replica that stepped down
/// is a candidate as soon as it renews again, before its reconcile has stopped what it ran; its
/// acknowledgement says it has.
fn may_gain(me: &Me<'_>, peers: &Peers, ring: &Ring) -> bool {
    me.standing == Standing::Member
        && me.published.is_some_and(|own| acknowledged(own, ring))
        && peers.alive_claims().all(|peer| acknowledged(peer, ring))
}

/// Whether `claim` acknowledges `ring`: by the hash with incarnations when its holder publishes
/// one, else (an older version, during a rolling update) by the identities' hash.
pub fn acknowledged(claim: &Claim, ring: &Ring) -> bool {
    match claim.incarnation {
        Some(_) => claim.ack_incarnations == Some(ring.incarnations_hash()),
        None => claim.ack == Some(ring.hash()),
    }
}

#[cfg(test)]
#[path = "handover_tests.rs"]
mod tests;
