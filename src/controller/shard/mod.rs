//! Active-active sharding (`--sharding shards`): every replica probes its share of the checks,
//! with Kubernetes Leases for membership and no consensus of our own.
//!
//! **Membership.** Each replica holds its own Lease `canary-shard-<identity>`, labelled
//! `canary.dev/ring=<ring>`, and renews it every third of the lease duration, each call with a
//! timeout. A replica that has not renewed within the renew deadline (2/3 of the duration,
//! from when its last successful renewal was *sent*, on its monotonic clock) stops probing, as
//! the leader elector steps down. Peers list the ring's Leases (at every renewal and whenever a
//! watch says one changed) and judge a peer dead once its record stayed the same for the
//! duration in lists they sent (their own clock; see [`peers`]): it had stopped by then.
//!
//! **Trust.** Anyone who may write Leases in the namespace can forge one, so [`peers`] believes
//! a Lease only as far as its holder shows itself alive: a member once seen renewing, for at
//! most 4x the configured duration; one never seen renewing is waited for at most a duration,
//! and only if it predates this replica; one that renews but does not acknowledge the ring for a
//! duration is excluded; a deleted one leaves at once.
//!
//! **Assignment.** The ring is the alive members; each check goes to the member with the
//! highest rendezvous weight of `namespace/name` ([`ring`]). Every replica watches every
//! HealthCheck and runs only its own.
//!
//! **Handover.** A replica that sees a new ring stops at once what it no longer owns, then
//! acknowledges the ring on its Lease (`canary.dev/ring-ack: <hash>`, with
//! `canary.dev/ring-quiet-after`: the time it stopped). It starts what it gained only once its
//! own acknowledgement is written *and* every other live Lease (candidates too) has
//! acknowledged the same hash; a member that died is out of the ring once expired, and one that left released
//! its Lease. So no check is run by two replicas: whoever ran it has acknowledged a ring in
//! which it does not own it, and a replica never starts anything beyond its acknowledged ring.
//! This waits for all members, not just the check's previous owner: with only a hash, a
//! replica cannot tell what a peer with another view still runs. The first run after a move
//! comes on the check's wall-clock slot after the quiet-after promise (`runner/phase.rs`).
//!
//! **Leaving.** On SIGTERM a replica releases its Lease with a quiet-after a little ahead
//! ([`ShardConfig::leave_lead`]) and keeps probing until then, so the others, which start the
//! first slot after it, take over without a gap beyond the interval.
//!
//! **Status page.** Each member publishes its page's address (`canary.dev/ui-address`); a
//! replica forwards a request for a check it does not probe to its owner's page ([`Directory`]).
//!
//! **Hysteresis.** A replica joins as a candidate (`canary.dev/ring-member: "false"`) and is
//! admitted after renewing successfully for its join delay: a third of the lease duration on
//! start, doubled (from one duration, up to 16) each time it had to stop for lack of renewals,
//! and reset after it stayed admitted for 16 durations. A flapping replica thus leaves the ring
//! once and stays out until it has been steady, instead of pulling checks back and forth.
//!
//! **Code.** The decisions are pure, over an explicit clock: `tenure` (standing: renew
//! deadline, join delay, admission) and `handover` (the ring, whether gains may start, the
//! peers' promises); [`peers`] judges the peers' Leases; `member` does the Lease I/O and
//! publishes what they decide.

mod directory;
mod handover;
mod lease;
mod member;
pub mod peers;
pub mod ring;
mod silent;
mod tenure;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use jiff::Timestamp;

pub use directory::Directory;
pub use lease::{LEASE_PREFIX, RING_LABEL, label_value, lease_name};
pub use member::{Member, ShardError, ShardGauges};
pub use ring::{Ring, RingHash};
pub use silent::{Silence, Watched, unprobed_elsewhere};

use crate::api::CheckKey;

/// Where the ring lives and this replica's part in it.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// The ring label's value (the release's Lease name).
    pub ring: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
    /// This replica's status page as peers reach it (published on its Lease).
    pub ui: Option<SocketAddr>,
}

impl ShardConfig {
    /// The ring `ring` (any text, made a label value) in `namespace`, as `identity`.
    pub fn new(ring: &str, namespace: String, identity: String, duration: Duration) -> Self {
        Self {
            ring: label_value(ring),
            namespace,
            identity,
            duration: duration.max(Duration::from_secs(1)),
            ui: None,
        }
    }

    /// Publishes `ui` as this replica's status page address.
    pub fn with_ui(self, ui: Option<SocketAddr>) -> Self {
        Self { ui, ..self }
    }

    /// How often the Lease is renewed.
    pub fn renew_period(&self) -> Duration {
        self.duration / 3
    }

    /// A replica that could not renew for this long stops probing.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// Deadline of one Lease call; also the retry delay after a failed round.
    fn call_timeout(&self) -> Duration {
        self.duration / 6
    }

    /// The join delay of a replica that just started.
    fn join_base(&self) -> Duration {
        self.duration / 3
    }

    /// The longest join delay, and how long an admitted replica must stay in to reset it.
    fn join_max(&self) -> Duration {
        self.duration * 16
    }

    /// How far ahead a leaving replica promises to stop: long enough for the others to see
    /// the release and acknowledge the new ring before the first slot they take over.
    pub fn leave_lead(&self) -> Duration {
        (self.duration / 3).min(Duration::from_secs(2))
    }

    /// Released or dead Leases are deleted after this long.
    fn collect_after(&self) -> Duration {
        (self.duration * 4).max(Duration::from_secs(60))
    }
}

/// Where this replica stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// In the ring, probing its share.
    Member,
    /// Renewing, not (yet) admitted: probes nothing.
    Candidate,
    /// Could not renew within the renew deadline (or has not yet): probes nothing, writes nothing.
    SteppedDown,
}

/// What the membership task tells reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub identity: Arc<str>,
    pub ring: Arc<Ring>,
    pub standing: Standing,
    /// This replica's acknowledgement of `ring` is written and every other member
    /// acknowledged it too: checks may be started, not only kept.
    pub may_gain: bool,
    /// Peers promised to probe nothing beyond their share after this time.
    pub quiet_after: Option<Timestamp>,
}

impl Assignment {
    /// Whether this replica runs `key`.
    pub fn keeps(&self, key: &CheckKey) -> bool {
        self.standing == Standing::Member && self.ring.owns(&self.identity, key)
    }
}

/// What reconcile reports back: the ring it applied (it stopped everything it does not own
/// under it), and when it last stopped a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    pub ring: Option<RingHash>,
    /// The applied ring's [`Ring::incarnations_hash`].
    pub incarnations: Option<RingHash>,
    pub quiet_after: Option<Timestamp>,
}
