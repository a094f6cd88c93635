//! Active-active sharding (`--sharding shards`): replicas of the real binary against the local
//! API server share 300 checks at a 1s interval (`SHARDING_CHECKS` changes the number), probing
//! a loopback target that records which replica (the identity in the User-Agent) probed which
//! check when. Every scenario asserts the sharding guarantee on the wall-clock slots of the
//! checks: no slot of a check run twice, by one replica or two, and none before it is due (see
//! [`timeline`]); the bounds on handovers are stated where they are asserted. Lease duration 6s:
//! renewals every 2s, each Lease call limited to 1s, a replica that cannot renew stops after
//! 4s, peers expire it after 6s, a leaving replica promises to stop 2s ahead (as with the
//! default 15s). A 3s Lease (0.5s calls, 2s renew deadline) made replicas that were not
//! faulted step down on a machine busy beyond a CPU hog, which no scenario is about.

mod failover;
mod forged;
mod ring;
mod timeline;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use canary_test_harness::wait::eventually;
use ring::Ring;
use timeline::counts;

use crate::SEC;

const NS: &str = "shards";
const RING: &str = "canary-ring";
/// The Lease duration: renewals every 2s, a replica that cannot renew stops after 4s.
const DURATION: Duration = Duration::from_secs(6);
const INTERVAL: Duration = SEC;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_each_probe_their_own_share_exactly_once() {
    let mut ring = Ring::start().await;
    ring.add(&[("r1", false), ("r2", false), ("r3", false)])
        .await;
    let started = Instant::now();
    let owners = ring.settled(&["r1", "r2", "r3"]).await;
    println!(
        "settled {:?} after the third replica was ready",
        started.elapsed()
    );
    let counts = counts(&owners);
    let (max, min) = (
        *counts.values().max().unwrap(),
        *counts.values().min().unwrap(),
    );
    println!(
        "checks per replica: {counts:?} (max/min {:.2})",
        max as f64 / min as f64
    );
    // 300 checks hashed on their own: a replica's share is binomial (sd about 8 of 100).
    assert!(max as f64 / min as f64 <= 1.5, "unbalanced: {counts:?}");
    let window = Instant::now();
    ring.probed_times(window, 3).await;
    let timeline = ring.timeline(window);
    ring.each_slot_once(&timeline, "steady state");
    assert!(timeline.handovers().is_empty(), "no moves in a steady ring");
    status_pages_answer_for_every_check_through_any_replica(&ring, &owners).await;
    for (name, replica) in &ring.replicas {
        let (members, owned) = ring.shard_gauges(name).await;
        assert_eq!(members, 3.0, "{name} sees three members");
        assert_eq!(owned, counts[name] as f64, "{name}'s owned checks");
        assert_eq!(replica.health_code("/healthz").await, Some(200), "{name}");
    }
    // status.probedBy names the replica that probes (written once each, under the first-write
    // budget).
    eventually(
        30 * SEC,
        "status.probedBy of every check",
        SEC,
        async || {
            let list = (ring.cluster.kubectl)
                .get_json(&["healthchecks.canary.dev", "-n", NS])
                .await;
            let wrong: Vec<String> = (list["items"].as_array().unwrap().iter())
                .filter_map(|item| {
                    let name = item["metadata"]["name"].as_str()?;
                    let check: usize = name.strip_prefix('c')?.parse().ok()?;
                    let by = item["status"]["probedBy"].as_str().unwrap_or_default();
                    (!owners[&check].contains(by)).then(|| format!("{name}: {by:?}"))
                })
                .collect();
            match wrong.is_empty() {
                true => Ok(()),
                false => Err(format!(
                    "{} wrong, e.g. {:?}",
                    wrong.len(),
                    &wrong[..wrong.len().min(5)]
                )),
            }
        },
    )
    .await;
}

/// Each replica's status page shows the checks it probes, naming itself as their prober; a
/// check's record, page and badge asked of another replica come from the owner (forwarded,
/// one hop at most); the overview names the other members.
async fn status_pages_answer_for_every_check_through_any_replica(
    ring: &Ring,
    owners: &BTreeMap<usize, BTreeSet<String>>,
) {
    use canary_test_harness::http;
    for (check, by) in owners.iter().take(6) {
        let owner = by.iter().next().unwrap();
        for (name, replica) in &ring.replicas {
            let ui = replica.ui.expect("the status page is on");
            let record = format!("/api/v1/checks/{NS}/c{check}");
            let detail = http::get(ui, &record).await.unwrap();
            assert_eq!(detail.status, 200, "c{check} from {name}: {}", detail.body);
            assert_eq!(
                detail.json()["probedBy"],
                owner.as_str(),
                "c{check} from {name}"
            );
            assert!(
                detail.json()["results"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
            );
            let page = http::get(ui, &format!("/checks/{NS}/c{check}"))
                .await
                .unwrap();
            assert_eq!(page.status, 200, "c{check}'s page from {name}");
            assert!(page.body.contains(&format!("c{check}")), "{}", page.body);
            let badge = format!("/badges/{NS}/c{check}/health.svg");
            let badge = http::get(ui, &badge).await.unwrap();
            assert_eq!(badge.status, 200, "c{check}'s badge from {name}");
            assert_eq!(badge.header("content-type"), Some("image/svg+xml"));
            let hop = [("x-canary-forwarded-by", "r9")];
            let again = http::request(ui, &record, &hop).await.unwrap();
            let expected = if name == owner { 200 } else { 404 };
            assert_eq!(
                again.status, expected,
                "a forwarded request is not forwarded again"
            );
        }
    }
    for (name, replica) in &ring.replicas {
        let overview = http::get(replica.ui.unwrap(), "/").await.unwrap();
        let others: Vec<&String> = ring.replicas.keys().filter(|n| *n != name).collect();
        let line = format!("Also probing: {}, {}", others[0], others[1]);
        assert!(
            overview.body.contains(&line),
            "{name}'s overview: {}",
            overview.body
        );
    }
}

/// Forwarding is off by default (issue 23, finding 4: a Lease writer could make every replica
/// relay its HTML): a check's record and page asked of a replica that does not probe it answer
/// 404 naming the replica that does, and nothing is fetched from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ui_forward_a_replica_names_the_owner_and_relays_nothing() {
    use canary_test_harness::http;
    let mut ring = Ring::start().await;
    ring.forward = false;
    ring.add(&[("r1", false), ("r2", false)]).await;
    let owners = ring.settled(&["r1", "r2"]).await;
    for (check, by) in owners.iter().take(6) {
        let owner = by.iter().next().unwrap();
        for (name, replica) in &ring.replicas {
            let ui = replica.ui.expect("the status page is on");
            let record = format!("/api/v1/checks/{NS}/c{check}");
            let record = http::get(ui, &record).await.unwrap();
            let page = http::get(ui, &format!("/checks/{NS}/c{check}"))
                .await
                .unwrap();
            if name == owner {
                assert_eq!(
                    (record.status, page.status),
                    (200, 200),
                    "c{check} from {name}"
                );
                continue;
            }
            assert_eq!(record.status, 404, "c{check} from {name}: {}", record.body);
            let said = format!("probed by replica {owner}");
            assert!(record.body.contains(&said), "{}", record.body);
            assert_eq!(page.status, 404, "c{check}'s page from {name}");
            assert!(page.body.contains(&said), "{}", page.body);
            assert!(
                page.body.contains("served by that replica"),
                "{}",
                page.body
            );
            assert!(!page.body.contains("History since"), "not the owner's page");
        }
    }
    let overview = http::get(ring.replicas["r1"].ui.unwrap(), "/")
        .await
        .unwrap();
    assert!(
        overview
            .body
            .contains("are served by the replica probing it"),
        "{}",
        overview.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_from_two_to_three_moves_about_a_third_and_the_old_owners_drop_their_series() {
    let mut ring = Ring::start().await;
    ring.add(&[("r1", false), ("r2", false)]).await;
    let two = ring.settled(&["r1", "r2"]).await;
    let before = Instant::now() - 2 * INTERVAL;
    let since = jiff::Timestamp::now().as_millisecond() - 2000;
    ring.add(&[("r3", false)]).await;
    let three = ring.settled(&["r1", "r2", "r3"]).await;
    let timeline = ring.timeline(before);
    ring.each_slot_once(&timeline, "scaling up");
    let moved: Vec<usize> = (0..ring.checks).filter(|c| two[c] != three[c]).collect();
    for check in &moved {
        assert!(
            three[check].contains("r3"),
            "c{check} moved to {:?}",
            three[check]
        );
    }
    let expected = ring.checks as f64 / 3.0;
    let sd = (ring.checks as f64 * (1.0 / 3.0) * (2.0 / 3.0)).sqrt();
    let moves = timeline.handovers();
    let gap = moves.iter().map(|m| m.gap).max().unwrap_or_default();
    let skipped = skipped_slots(&moves);
    println!(
        "{} of {} checks moved (expected {expected:.0}); longest gap {gap:?}; moves by slots \
         skipped: {skipped:?}",
        moved.len(),
        ring.checks
    );
    assert!(
        (moved.len() as f64 - expected).abs() <= 3.0 * sd,
        "{} moved",
        moved.len()
    );
    assert_moves_skipped_only_what_passed(&ring, &timeline, since);
    old_owners_dropped_the_series_of_what_moved(&ring, &moved).await;
    let rebalances = ring
        .replica("r1")
        .metric_sum("canary_shard_rebalances_total", &[])
        .await;
    assert!(rebalances >= 1.0, "r1 counted the ring change");
}

/// The gaining replica starts once every member acknowledged the new ring: on the first slot
/// after the old owner stopped, or at once if that slot passed less than an interval before.
/// So a move skips at most the slots that passed between the old owner seeing the new ring (it
/// stops at once) and r3 acknowledged by all (see `Timeline::may_skip`), from their logs since
/// `since` (Unix ms).
fn assert_moves_skipped_only_what_passed(ring: &Ring, timeline: &timeline::Timeline, since: i64) {
    let three_ring = ["r1", "r2", "r3"];
    let logged = |replica, may_gain| {
        let at = ring.ring_logged(replica, &three_ring, may_gain, since);
        at.unwrap_or_else(|| panic!("{replica} never saw {three_ring:?}: {}", ring.ring_logs()))
    };
    let gained = logged("r3", Some(true));
    for m in &timeline.handovers() {
        let stopped = logged(m.from.as_str(), None);
        let may = timeline.may_skip(m.check, stopped, gained);
        let check = m.check;
        assert!(
            m.skipped <= may,
            "c{check} skipped {} slots, {may} passed between {} stopping and r3 gaining: {}",
            m.skipped,
            m.from,
            timeline.describe(check)
        );
    }
}

/// The old owners deleted the series of the `moved` checks; the new owner, r3, has them.
async fn old_owners_dropped_the_series_of_what_moved(ring: &Ring, moved: &[usize]) {
    let (old1, old2, new) = (
        ring.replica("r1").scrape().await.unwrap(),
        ring.replica("r2").scrape().await.unwrap(),
        ring.replica("r3").scrape().await.unwrap(),
    );
    for check in moved {
        let name = format!("c{check}");
        let labels = [("namespace", NS), ("name", name.as_str())];
        let runs = |text: &str| {
            canary_test_harness::metrics::sum(text, "canary_check_runs_total", &labels)
        };
        assert_eq!(
            (runs(&old1), runs(&old2)),
            (0.0, 0.0),
            "{name}: series left on its old owner"
        );
        assert!(runs(&new) >= 1.0, "{name}: no series on r3");
    }
}

/// How many handovers skipped how many slots.
fn skipped_slots(moves: &[timeline::Handover]) -> BTreeMap<i64, usize> {
    let mut skipped = BTreeMap::new();
    for handover in moves {
        *skipped.entry(handover.skipped).or_default() += 1;
    }
    skipped
}
