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
    // Its promise of quiet is its renew deadline (of the clamped duration), capped.
    let now = Timestamp::from_second(1_001).unwrap();
    assert_eq!(
        peers.quiet_after(now, Duration::from_secs(2)),
        Some(Timestamp::from_second(1_003).unwrap())
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

mod properties {
    //! Whatever the Leases do (renew or not, declare any duration, vanish from lists, get
    //! deleted by a watch event) and however lists are spaced: a peer counts as a member only
    //! if its record changed within its clamped duration, a peer never seen renewing is waited
    //! for at most one duration, a deleted Lease counts for nothing, and a peer that keeps
    //! renewing and acknowledging stays a member. The clock is explicit (list times).

    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    const PEERS: [&str; 3] = ["a", "b", "c"];

    #[derive(Debug, Clone, Copy)]
    enum Act {
        Renew,
        Same,
        Absent,
        WatchDelete,
    }

    #[derive(Debug, Clone)]
    struct Step {
        advance_ms: u64,
        acts: [(Act, u64, bool); 3],
    }

    fn act() -> impl Strategy<Value = (Act, u64, bool)> {
        let act = prop_oneof![
            3 => Just(Act::Renew),
            3 => Just(Act::Same),
            1 => Just(Act::Absent),
            1 => Just(Act::WatchDelete),
        ];
        let seconds = prop_oneof![Just(1u64), Just(3), Just(9), Just(3_600)];
        (act, seconds, any::<bool>())
    }

    fn step() -> impl Strategy<Value = Step> {
        (0..4_000u64, [act(), act(), act()])
            .prop_map(|(advance_ms, acts)| Step { advance_ms, acts })
    }

    /// What the test knows of one peer.
    #[derive(Debug, Default, Clone)]
    struct Model {
        renewed_at: i64,
        /// When its record last changed in a list, or was first seen.
        changed: Option<Instant>,
        first_seen: Option<Instant>,
        seen_changing: bool,
        /// In the last list (and not deleted after it).
        present: bool,
        /// In the list before this one, with a record this one changed.
        renewed_now: bool,
        acks: bool,
        seconds: u64,
    }

    fn apply(peers: &mut Peers, models: &mut BTreeMap<&str, Model>, step: &Step, at: Instant) {
        let mut leases = Vec::new();
        for (peer, (act, seconds, acks)) in PEERS.iter().zip(step.acts) {
            let model = models.entry(peer).or_default();
            let was_present = model.present;
            model.renewed_now = false;
            match act {
                Act::Absent | Act::WatchDelete => model.present = false,
                Act::Renew | Act::Same => {
                    let renew = matches!(act, Act::Renew) || model.first_seen.is_none();
                    if renew {
                        model.renewed_at += 1;
                        model.seen_changing |= model.first_seen.is_some();
                        model.renewed_now = was_present && model.first_seen.is_some();
                        model.changed = Some(at);
                    }
                    model.first_seen.get_or_insert(at);
                    (model.present, model.acks, model.seconds) = (true, acks, seconds);
                    let name = format!("canary-shard-{peer}");
                    leases.push(lease_for(&name, peer, model.renewed_at, true, seconds));
                }
            }
        }
        peers.observe(&leases, at, at);
        let acking: Vec<String> = (models.iter())
            .filter(|(_, m)| m.acks)
            .map(|(p, _)| p.to_string())
            .collect();
        peers.note_acks(|claim| acking.contains(&claim.identity));
        for (peer, (act, ..)) in PEERS.iter().zip(step.acts) {
            if matches!(act, Act::WatchDelete) {
                peers.deleted(&format!("canary-shard-{peer}"));
            }
        }
    }

    fn check(
        peers: &Peers,
        models: &BTreeMap<&str, Model>,
        (first, at): (Instant, Instant),
    ) -> Result<(), TestCaseError> {
        let members: Vec<&str> = peers.members().map(|c| c.identity.as_str()).collect();
        let waited: Vec<&str> = peers.alive_claims().map(|c| c.identity.as_str()).collect();
        for (peer, model) in models {
            let clamped = Duration::from_secs(model.seconds).min(D * 4);
            let since_change = model.changed.map(|c| at.saturating_duration_since(c));
            let fresh = since_change.is_some_and(|d| d < clamped);
            if members.contains(peer) {
                prop_assert!(
                    model.present && model.seen_changing && fresh,
                    "{peer}: {model:?}"
                );
            }
            if waited.contains(peer) {
                prop_assert!(model.present && fresh, "{peer} waited for: {model:?}");
                let probation = model.first_seen.map(|f| at.saturating_duration_since(f));
                let predates = model.first_seen == Some(first);
                prop_assert!(
                    model.seen_changing || (predates && probation < Some(D)),
                    "{peer}: {model:?}"
                );
            }
            if model.renewed_now && model.acks {
                prop_assert!(
                    members.contains(peer),
                    "{peer} renews and acknowledges: {model:?}"
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn only_live_peers_count(steps in prop::collection::vec(step(), 1..60)) {
            let mut peers = table();
            let mut models = BTreeMap::new();
            let mut at = Instant::now();
            let first = at + Duration::from_millis(steps[0].advance_ms);
            for step in &steps {
                at += Duration::from_millis(step.advance_ms);
                apply(&mut peers, &mut models, step, at);
                check(&peers, &models, (first, at))?;
            }
        }
    }
}
