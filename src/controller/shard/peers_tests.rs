//! The peer table on a paused clock: a member only while seen renewing, declared durations
//! clamped, forged Leases never renewed waited for one duration at most, peers that do not
//! acknowledge excluded, released and deleted Leases gone at once, promises.

use super::*;
use crate::controller::shard::ring::RingHash;

/// This replica's Lease duration.
const D: Duration = Duration::from_secs(3);
const MS: Duration = Duration::from_millis(1);

/// A Lease of `holder` renewed at `renewed` (Unix s), declaring `seconds`.
fn lease_for(name: &str, holder: &str, renewed: i64, member: bool, seconds: u64) -> Lease {
    let claim = Claim {
        identity: holder.into(),
        renew_time: Some(Timestamp::from_second(renewed).unwrap()),
        duration: Duration::from_secs(seconds),
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

/// A Lease declaring this replica's duration.
fn lease(name: &str, holder: &str, renewed: i64, member: bool) -> Lease {
    lease_for(name, holder, renewed, member, D.as_secs())
}

/// A table for a replica with a 3s Lease.
fn table() -> Peers {
    let trust = Trust {
        max_duration: D * 4,
        probation: D,
        ack_bound: D,
    };
    Peers::new("canary-shard-me".into(), trust)
}

fn names(peers: &Peers) -> Vec<String> {
    peers.members().map(|c| c.identity.clone()).collect()
}

fn waited_for(peers: &Peers) -> Vec<String> {
    peers.alive_claims().map(|c| c.identity.clone()).collect()
}

fn list(peers: &mut Peers, leases: &[Lease]) {
    let now = Instant::now();
    peers.observe(leases, now, now);
}

#[tokio::test(start_paused = true)]
async fn a_peer_counts_once_seen_renewing_and_expires_after_its_record_stayed_the_same() {
    let mut peers = table();
    let (me, a, b) = (
        lease("canary-shard-me", "me", 1, true),
        lease("canary-shard-a", "a", 1, true),
        lease("canary-shard-b", "b", 1, false),
    );
    list(&mut peers, &[me, a.clone(), b.clone()]);
    assert!(names(&peers).is_empty(), "not seen renewing yet");
    assert_eq!(waited_for(&peers), ["a", "b"], "but waited for");
    tokio::time::sleep(D - MS).await;
    let (a2, b2) = (
        lease("canary-shard-a", "a", 2, true),
        lease("canary-shard-b", "b", 2, false),
    );
    list(&mut peers, &[a2.clone(), b2.clone()]);
    assert_eq!(names(&peers), ["a"], "candidates and itself are no members");
    tokio::time::sleep(D - MS).await;
    list(&mut peers, &[a2.clone(), b2.clone()]);
    assert_eq!(names(&peers), ["a"], "renewed: the clock restarted");
    tokio::time::sleep(MS).await;
    list(&mut peers, &[a2, b2]);
    assert!(names(&peers).is_empty(), "unchanged for the duration");
    assert!(waited_for(&peers).is_empty());
}

#[tokio::test(start_paused = true)]
async fn without_a_successful_list_nobody_expires() {
    let mut peers = table();
    list(&mut peers, &[lease("canary-shard-a", "a", 1, true)]);
    list(&mut peers, &[lease("canary-shard-a", "a", 2, true)]);
    // The API is unreachable for ten durations: no list succeeds, nothing is concluded.
    tokio::time::sleep(D * 10).await;
    assert_eq!(names(&peers), ["a"]);
    assert!(
        peers.next_expiry().unwrap() < Instant::now(),
        "due for a judgement"
    );
}

#[tokio::test(start_paused = true)]
async fn a_forged_lease_of_an_hour_never_renewed_is_no_member_and_waited_for_one_duration() {
    let mut peers = table();
    let forged = lease_for("canary-shard-x", "x", 1_000, true, 3_600);
    list(&mut peers, std::slice::from_ref(&forged));
    assert!(names(&peers).is_empty());
    assert_eq!(
        waited_for(&peers),
        ["x"],
        "it may be a peer older than this one"
    );
    assert_eq!(peers.next_expiry(), Some(Instant::now() + D));
    tokio::time::sleep(D - MS).await;
    list(&mut peers, std::slice::from_ref(&forged));
    assert_eq!(waited_for(&peers), ["x"]);
    tokio::time::sleep(MS).await;
    list(&mut peers, std::slice::from_ref(&forged));
    assert!(waited_for(&peers).is_empty(), "probation over");
    let distrusted = peers.distrusted();
    assert_eq!(
        distrusted.get("canary-shard-x"),
        Some(&Distrust::NeverRenewed)
    );
    // If it was a peer, it stopped by its renew deadline of at most the probation, not of an
    // hour (and any promise is capped).
    let now = Timestamp::from_second(1_001).unwrap();
    assert_eq!(
        peers.quiet_after(now, Duration::from_secs(2)),
        Some(Timestamp::from_second(1_002).unwrap())
    );
    tokio::time::sleep(D * 20).await;
    list(&mut peers, std::slice::from_ref(&forged));
    assert_eq!(peers.stale(D * 20).len(), 1, "collected like a dead peer's");
}

#[tokio::test(start_paused = true)]
async fn a_lease_appearing_after_the_first_list_is_waited_for_only_once_it_renews() {
    let mut peers = table();
    list(&mut peers, &[]);
    let forged = lease_for("canary-shard-x", "x", 1_000, true, 3_600);
    list(&mut peers, std::slice::from_ref(&forged));
    assert!(
        waited_for(&peers).is_empty(),
        "a new replica runs nothing yet"
    );
    let now = Timestamp::from_second(1_000).unwrap();
    assert_eq!(peers.quiet_after(now, D), None, "nor did it run anything");
    assert_eq!(
        peers.distrusted().get("canary-shard-x"),
        Some(&Distrust::NeverRenewed)
    );
    // Deleted and created again: still nothing to wait for.
    list(&mut peers, &[]);
    list(&mut peers, std::slice::from_ref(&forged));
    assert!(waited_for(&peers).is_empty());
    list(
        &mut peers,
        &[lease_for("canary-shard-x", "x", 1_001, true, 3_600)],
    );
    assert_eq!(waited_for(&peers), ["x"], "renewed: a peer");
    assert_eq!(names(&peers), ["x"]);
}

#[tokio::test(start_paused = true)]
async fn a_declared_duration_counts_up_to_four_of_this_replicas() {
    let mut peers = table();
    list(
        &mut peers,
        &[lease_for("canary-shard-x", "x", 1, true, 3_600)],
    );
    let renewed = lease_for("canary-shard-x", "x", 2, true, 3_600);
    list(&mut peers, std::slice::from_ref(&renewed));
    assert_eq!(names(&peers), ["x"]);
    tokio::time::sleep(D * 4 - MS).await;
    list(&mut peers, std::slice::from_ref(&renewed));
    assert_eq!(names(&peers), ["x"]);
    tokio::time::sleep(MS).await;
    list(&mut peers, std::slice::from_ref(&renewed));
    assert!(names(&peers).is_empty(), "4 x 3s, not an hour");
    // A shorter declared duration is its own.
    let mut peers = table();
    list(&mut peers, &[lease_for("canary-shard-y", "y", 1, true, 1)]);
    let short = lease_for("canary-shard-y", "y", 2, true, 1);
    list(&mut peers, std::slice::from_ref(&short));
    tokio::time::sleep(Duration::from_secs(1)).await;
    list(&mut peers, &[short]);
    assert!(names(&peers).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_renewing_peer_that_does_not_acknowledge_is_excluded_after_the_bound_until_it_does() {
    let mut peers = table();
    let renew = |peers: &mut Peers, at: i64, acks: bool| {
        let lease = lease_for("canary-shard-x", "x", at, true, 3_600);
        list(peers, &[lease]);
        peers.note_acks(|_| acks);
    };
    renew(&mut peers, 1, false);
    renew(&mut peers, 2, false);
    assert_eq!(names(&peers), ["x"]);
    // Renewals every second do not reset the bound.
    for at in 3..(2 + D.as_secs() as i64) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        renew(&mut peers, at, false);
        assert_eq!(names(&peers), ["x"], "{at}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    renew(&mut peers, 10, false);
    assert!(names(&peers).is_empty(), "excluded from the ring");
    assert!(waited_for(&peers).is_empty(), "and from handover waits");
    let renewing: Vec<&str> = peers
        .renewing_members()
        .map(|c| c.identity.as_str())
        .collect();
    assert_eq!(renewing, ["x"], "still judged");
    assert_eq!(
        peers.distrusted().get("canary-shard-x"),
        Some(&Distrust::Unacknowledged)
    );
    renew(&mut peers, 11, true);
    assert_eq!(names(&peers), ["x"], "acknowledged: back");
    assert!(peers.distrusted().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_released_lease_leaves_at_once_and_its_promise_counts() {
    let mut peers = table();
    list(&mut peers, &[lease("canary-shard-a", "a", 1, true)]);
    let mut released = lease("canary-shard-a", "", 2, false);
    let promise = Timestamp::from_second(100).unwrap();
    (released.metadata.annotations.as_mut().unwrap()).insert(
        crate::controller::shard::lease::QUIET_ANNOTATION.into(),
        promise.to_string(),
    );
    list(&mut peers, &[released]);
    assert!(names(&peers).is_empty());
    assert!(waited_for(&peers).is_empty());
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
    let mut peers = table();
    list(&mut peers, &[lease("canary-shard-a", "a", 999, true)]);
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
    assert!(peers.distrusted().is_empty(), "a dead peer is no forgery");
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
async fn a_deleted_lease_leaves_at_once_by_watch_or_list_and_bounds_its_holders_quiet() {
    let mut peers = table();
    let forged = |at| lease_for("canary-shard-x", "x", at, true, 3_600);
    list(&mut peers, &[forged(1_000)]);
    list(&mut peers, &[forged(1_001)]);
    assert_eq!(names(&peers), ["x"]);
    peers.deleted("canary-shard-x");
    assert!(names(&peers).is_empty(), "the watch's delete event");
    assert!(waited_for(&peers).is_empty());
    let now = Timestamp::from_second(1_001).unwrap();
    assert_eq!(
        peers.quiet_after(now, Duration::from_secs(2)),
        Some(Timestamp::from_second(1_003).unwrap()),
        "whoever held it stopped by its renew deadline, capped"
    );
    list(&mut peers, &[forged(1_001)]);
    assert_eq!(names(&peers), ["x"], "listed again: it is back");
    list(&mut peers, &[]);
    assert!(names(&peers).is_empty(), "gone from a list");
    assert!(waited_for(&peers).is_empty());
}

#[path = "peers_props.rs"]
mod properties;
