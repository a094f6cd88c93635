//! The handover decision over peer tables built from Leases: a member may start what it gained
//! only once its own acknowledgement is written and every alive Lease acknowledged the same
//! ring; released and dead peers are not waited for, and their promises say when to start.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use tokio::time::{Instant, advance};

use super::{Me, acknowledged, assignment, note_acks};
use crate::controller::shard::{
    ShardConfig, Standing,
    lease::{Claim, lease_name},
    peers::{Peers, Trust},
    ring::Ring,
};

/// A 3s Lease: a leaving replica's promise is capped at 1s ahead.
const D: Duration = Duration::from_secs(3);

fn config() -> ShardConfig {
    ShardConfig::new("ring", "ns".into(), "r1".into(), D)
}

/// A ring of `members` with incarnations 1, 2, 3 for r1, r2, r3.
fn ring(members: &[&str]) -> Ring {
    let incarnation = |m: &str| m.trim_start_matches('r').parse().ok();
    Ring::of(members.iter().map(|m| (m.to_string(), incarnation(m))))
}

/// What `identity` (incarnation from its name) says: `member` or candidate, acknowledging `acked`.
fn claim(identity: &str, member: bool, acked: &Ring) -> Claim {
    Claim {
        identity: identity.into(),
        renew_time: Some(Timestamp::from_second(1_000).unwrap()),
        duration: D,
        member,
        ack: Some(acked.hash()),
        ack_incarnations: Some(acked.incarnations_hash()),
        incarnation: identity.trim_start_matches('r').parse().ok(),
        quiet_after: None,
        ui: None,
    }
}

fn lease(claim: &Claim, name: &str) -> Lease {
    let mut lease = Lease::default();
    claim.write_into(&mut lease, &lease_name(name), "ring");
    lease.metadata.resource_version = Some("1".into());
    lease
}

/// r1's empty peer table.
fn table() -> Peers {
    Peers::new(lease_name("r1"), Trust::of(&config()))
}

/// r1's peer table after two lists of `claims` (Lease names from the identities), the first
/// from before their last renewal: each was seen renewing.
fn peers(claims: &[Claim]) -> Peers {
    let mut peers = table();
    let earlier = |c: &Claim| Claim {
        renew_time: c.renew_time.map(|t| t - jiff::SignedDuration::from_secs(1)),
        ..c.clone()
    };
    let leases: Vec<Lease> = claims
        .iter()
        .map(|c| lease(&earlier(c), &c.identity))
        .collect();
    let now = Instant::now();
    peers.observe(&leases, now, now);
    let leases: Vec<Lease> = claims.iter().map(|c| lease(c, &c.identity)).collect();
    peers.observe(&leases, now, now);
    peers
}

fn me<'a>(config: &'a ShardConfig, standing: Standing, published: Option<&'a Claim>) -> Me<'a> {
    Me {
        config,
        incarnation: 1,
        standing,
        published,
    }
}

fn now() -> Timestamp {
    Timestamp::from_second(2_000).unwrap()
}

#[test]
fn a_member_gains_only_once_its_own_ack_is_written_and_every_member_acknowledged_the_ring() {
    let config = config();
    let (old, new) = (ring(&["r1", "r2"]), ring(&["r1", "r2", "r3"]));
    let own = claim("r1", true, &new);
    let stale_own = claim("r1", true, &old);
    let all = peers(&[claim("r2", true, &new), claim("r3", true, &new)]);
    let lagging = peers(&[claim("r2", true, &old), claim("r3", true, &new)]);
    let member = |published| me(&config, Standing::Member, published);
    let gains = |published, peers: &Peers| assignment(member(published), peers, now()).may_gain;
    assert_eq!(*assignment(member(Some(&own)), &all, now()).ring, new);
    assert!(gains(Some(&own), &all));
    assert!(
        !gains(Some(&own), &lagging),
        "r2 still acknowledges the old ring"
    );
    assert!(
        !gains(None, &all),
        "its own acknowledgement's write is not confirmed"
    );
    assert!(
        !gains(Some(&stale_own), &all),
        "its own Lease says the old ring"
    );
}

#[test]
fn a_candidate_is_not_in_the_ring_but_must_acknowledge_it_too() {
    let config = config();
    let (with_r3, without) = (ring(&["r1", "r2", "r3"]), ring(&["r1", "r2"]));
    let own = claim("r1", true, &without);
    // r3 stepped down and renews again as a candidate: it may still run what it owned under
    // the ring it acknowledged last, until its reconcile stops it and acknowledges the new one.
    let still_running = peers(&[claim("r2", true, &without), claim("r3", false, &with_r3)]);
    let stopped = peers(&[claim("r2", true, &without), claim("r3", false, &without)]);
    let view = |peers| assignment(me(&config, Standing::Member, Some(&own)), peers, now());
    let waiting = view(&still_running);
    assert_eq!(*waiting.ring, without);
    assert!(!waiting.may_gain);
    assert!(view(&stopped).may_gain);
}

#[test]
fn a_replica_out_of_the_ring_leaves_itself_out_and_gains_nothing() {
    let config = config();
    let without_me = ring(&["r2", "r3"]);
    let own = claim("r1", false, &without_me);
    let table = peers(&[
        claim("r2", true, &without_me),
        claim("r3", true, &without_me),
    ]);
    for standing in [Standing::Candidate, Standing::SteppedDown] {
        let view = assignment(me(&config, standing, Some(&own)), &table, now());
        assert_eq!(*view.ring, without_me);
        assert!(!view.may_gain);
        let key = crate::api::CheckKey {
            namespace: "ns".into(),
            name: "any".into(),
        };
        assert!(!view.keeps(&key));
    }
}

#[tokio::test(start_paused = true)]
async fn released_and_dead_peers_are_not_waited_for_and_their_promises_say_when_to_start() {
    let config = config();
    let (before, after) = (ring(&["r1", "r2", "r3"]), ring(&["r1", "r2"]));
    let own = claim("r1", true, &after);
    // r3 left: its released Lease still says the old ring, and promises quiet after 2000.5s.
    let promise = Timestamp::from_millisecond(2_000_500).unwrap();
    let released = Claim {
        identity: String::new(),
        quiet_after: Some(promise),
        ..claim("r3", false, &before)
    };
    let mut table = peers(&[claim("r2", true, &after)]);
    let leases = [
        lease(&claim("r2", true, &after), "r2"),
        lease(&released, "r3"),
    ];
    table.observe(&leases, Instant::now(), Instant::now());
    let view = |table: &Peers| assignment(me(&config, Standing::Member, Some(&own)), table, now());
    assert!(view(&table).may_gain);
    assert_eq!(view(&table).quiet_after, Some(promise));
    // r3 died instead: unchanged in lists for a duration, it is not waited for; it stopped by
    // its renew deadline (2/3 of the duration after its renewTime, 1000s).
    let mut table = peers(&[claim("r2", true, &after), claim("r3", true, &before)]);
    assert!(!view(&table).may_gain, "alive until it expires");
    advance(D).await;
    let renewed = Claim {
        renew_time: Some(Timestamp::from_second(1_003).unwrap()),
        ..claim("r2", true, &after)
    };
    let leases = [
        lease(&renewed, "r2"),
        lease(&claim("r3", true, &before), "r3"),
    ];
    table.observe(&leases, Instant::now(), Instant::now());
    let view = view(&table);
    assert!(view.may_gain);
    assert_eq!(
        view.quiet_after,
        Some(Timestamp::from_second(1_002).unwrap())
    );
}

#[test]
fn a_promise_far_ahead_is_capped_at_the_leave_lead() {
    let config = config();
    let ring = ring(&["r1"]);
    let far = Claim {
        identity: String::new(),
        quiet_after: Some(Timestamp::from_second(9_999).unwrap()),
        ..claim("r2", false, &ring)
    };
    let view = assignment(me(&config, Standing::Member, None), &peers(&[far]), now());
    let cap = now()
        .checked_add(jiff::SignedDuration::from_secs(1))
        .unwrap();
    assert_eq!(view.quiet_after, Some(cap), "min(duration/3, 2s) after now");
}

#[test]
fn an_acknowledgement_from_before_a_peer_restarted_does_not_count_for_the_ring_after() {
    let ring = |r2: u64| Ring::of([("r1".to_string(), Some(1)), ("r2".to_string(), Some(r2))]);
    let (before, after) = (ring(2), ring(3));
    // r1 acknowledged the ring with r2's previous process; r2 restarted within the Lease
    // duration, under the same identity: the same identities, a new member.
    assert!(!acknowledged(&claim("r1", true, &before), &after));
    assert!(acknowledged(&claim("r1", true, &after), &after));
    // A replica of a version without incarnations (a rolling update) is judged as before.
    let older = Claim {
        incarnation: None,
        ack_incarnations: None,
        ..claim("r1", true, &before)
    };
    let mixed = Ring::of([("r1".to_string(), None), ("r2".to_string(), Some(3))]);
    assert!(acknowledged(&older, &mixed));
}

/// `claim` renewed at `at` (Unix s).
fn renewed(claim: Claim, at: i64) -> Claim {
    Claim {
        renew_time: Some(Timestamp::from_second(at).unwrap()),
        ..claim
    }
}

/// A Lease forged as a member of the ring (no incarnation, acknowledging nothing), declaring
/// an hour, renewed at `at` (Unix s).
fn forged(at: i64) -> Lease {
    let claim = Claim {
        renew_time: Some(Timestamp::from_second(at).unwrap()),
        duration: Duration::from_secs(3_600),
        ack: None,
        ack_incarnations: None,
        incarnation: None,
        ..claim("x", true, &ring(&["r1"]))
    };
    lease(&claim, "x")
}

#[tokio::test(start_paused = true)]
async fn a_forged_lease_never_renewed_owns_nothing_and_holds_a_handover_one_duration_at_most() {
    let config = config();
    let ours = ring(&["r1", "r2"]);
    let own = claim("r1", true, &ours);
    // In r1's first list: it may be a peer older than r1.
    let mut table = table();
    let list = |table: &mut Peers, at: i64| {
        let r2 = lease(&renewed(claim("r2", true, &ours), at), "r2");
        table.observe(&[r2, forged(1_000)], Instant::now(), Instant::now());
    };
    list(&mut table, 999);
    list(&mut table, 1_000);
    let view = |table: &Peers| assignment(me(&config, Standing::Member, Some(&own)), table, now());
    assert_eq!(*view(&table).ring, ours, "it owns no checks");
    assert!(
        !view(&table).may_gain,
        "it may be an older peer: waited for"
    );
    advance(D - Duration::from_millis(1)).await;
    list(&mut table, 1_002);
    assert!(!view(&table).may_gain);
    advance(Duration::from_millis(1)).await;
    list(&mut table, 1_003);
    assert!(
        view(&table).may_gain,
        "not seen renewing within a duration: not waited for"
    );
    assert_eq!(*view(&table).ring, ours);
}

#[tokio::test(start_paused = true)]
async fn a_renewing_member_that_never_acknowledges_is_excluded_after_one_duration() {
    let config = config();
    let (with_x, without_x) = (ring(&["r1", "r2", "x"]), ring(&["r1", "r2"]));
    let mut table = peers(&[claim("r2", true, &with_x)]);
    let member = |published| me(&config, Standing::Member, published);
    let renew = |table: &mut Peers, at: i64, r2_acks: &Ring| {
        let r2 = lease(&renewed(claim("r2", true, r2_acks), at), "r2");
        table.observe(&[r2, forged(at)], Instant::now(), Instant::now());
        note_acks(member(None), table);
    };
    renew(&mut table, 1_000, &with_x);
    renew(&mut table, 1_001, &with_x);
    let own = claim("r1", true, &with_x);
    let view = |table: &Peers| assignment(member(Some(&own)), table, now());
    assert_eq!(*view(&table).ring, with_x, "renewing: a member");
    assert!(!view(&table).may_gain, "x acknowledges nothing");
    advance(D - Duration::from_millis(1)).await;
    renew(&mut table, 1_002, &with_x);
    assert_eq!(*view(&table).ring, with_x);
    advance(Duration::from_millis(1)).await;
    // r2 excluded x a moment earlier: it acknowledges the ring without x, and is not
    // excluded for that.
    renew(&mut table, 1_003, &without_x);
    let own = claim("r1", true, &without_x);
    let view = assignment(member(Some(&own)), &table, now());
    assert_eq!(*view.ring, without_x, "excluded from the ring");
    assert!(view.may_gain, "and from the handover wait");
    let distrusted = table.distrusted();
    assert_eq!(
        distrusted.keys().copied().collect::<Vec<_>>(),
        [lease_name("x")]
    );
}
