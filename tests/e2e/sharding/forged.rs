//! A Lease forged by anyone who may write Leases in Canary's namespace, labelled as a ring
//! member and declaring an hour (issue 23, finding 3): it must not leave checks unprobed for
//! longer than the configured Lease duration plus one renew period, nor hold a joining
//! replica's handover, and deleting it restores the ring within one renew period.

use std::time::{Duration, Instant};

use canary_test_harness::wait::eventually;
use serde_json::{Value, json};

use super::{DURATION, INTERVAL, RING, ring::Ring, timeline::Timeline};
use crate::SEC;

/// Where the replicas keep their Leases (the default `--leader-election-namespace`).
const LEASE_NS: &str = "default";
const FORGED: &str = "canary-shard-x";
/// How often a replica renews (a third of the Lease duration).
const RENEW: Duration = Duration::from_secs(DURATION.as_secs() / 3);

/// A member Lease of the ring held by `x`, declaring an hour, renewed now, with `annotations`
/// on top of the member flag.
fn forged(annotations: &serde_json::Map<String, Value>) -> Value {
    let mut all = json!({"canary.dev/ring-member": "true"});
    all.as_object_mut().unwrap().extend(annotations.clone());
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": FORGED, "namespace": LEASE_NS,
            "labels": {"canary.dev/ring": RING},
            "annotations": all,
        },
        "spec": {
            "holderIdentity": "x",
            "leaseDurationSeconds": 3600,
            "renewTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        },
    })
}

/// The longest any check went unprobed between `from` and `to`: the longest gap between two
/// runs (or the window's ends) less the one interval every gap holds; and that check.
fn longest_unprobed(
    timeline: &Timeline,
    checks: usize,
    from: Instant,
    to: Instant,
) -> (Duration, usize) {
    (0..checks)
        .map(|check| {
            let runs = timeline
                .checks()
                .get(&check)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let times: Vec<Instant> = (std::iter::once(from))
                .chain(runs.iter().map(|r| r.at))
                .chain(std::iter::once(to))
                .collect();
            let gap = (times.windows(2))
                .map(|w| w[1].saturating_duration_since(w[0]))
                .max();
            (gap.unwrap_or_default().saturating_sub(INTERVAL), check)
        })
        .max()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_lease_never_renewed_leaves_no_check_unprobed_beyond_a_lease_and_a_renew_period() {
    let mut ring = Ring::start().await;
    ring.add(&[("r1", false), ("r2", false)]).await;
    ring.settled(&["r1", "r2"]).await;
    let from = Instant::now();
    ring.cluster
        .kubectl
        .apply(&[forged(&Default::default())])
        .await;
    // A replica joins while the forged Lease is there (it is in its first list).
    ring.add(&[("r3", false)]).await;
    let owners = ring.settled(&["r1", "r2", "r3"]).await;
    let took = from.elapsed();
    let timeline = ring.timeline(from);
    let (unprobed, check) = longest_unprobed(&timeline, ring.checks, from, Instant::now());
    println!(
        "forged Lease (3600s, never renewed): ring of r1..r3 settled {took:?} after it; longest \
         unprobed {unprobed:?} (c{check}; bound {:?})",
        DURATION + RENEW
    );
    assert!(
        unprobed <= DURATION + RENEW,
        "c{check} unprobed for {unprobed:?}: {}\n{}",
        timeline.describe(check),
        ring.ring_logs()
    );
    ring.each_slot_once(&timeline, "a forged Lease");
    assert!(owners.values().all(|by| !by.contains("x")));
    for name in ["r1", "r2", "r3"] {
        let (members, _) = ring.shard_gauges(name).await;
        assert_eq!(members, 3.0, "{name} counts the forged Lease out");
        let replica = ring.replica(name);
        let reason = [("reason", "never_renewed")];
        let excluded = replica
            .metric_sum("canary_shard_excluded_peers", &reason)
            .await;
        assert_eq!(excluded, 1.0, "{name} reports the forged Lease");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_forged_member_that_renews_and_acknowledges_restores_the_ring_within_one_renew_period()
 {
    let mut ring = Ring::start().await;
    // Status heartbeats and audits often enough to see the forged member's checks go stale.
    ring.env.extend([
        ("CANARY_STATUS_HEARTBEAT", "3s"),
        ("CANARY_AUDIT_INTERVAL", "2s"),
    ]);
    ring.add(&[("r1", false), ("r2", false)]).await;
    ring.settled(&["r1", "r2"]).await;
    let since = jiff::Timestamp::now().as_millisecond();
    // The forger renews and copies r1's acknowledgement: a member in every way but probing.
    let with_x = ["r1", "r2", "x"];
    eventually(
        30 * SEC,
        "r1 and r2 count the forged member",
        SEC / 2,
        async || {
            let annotations = r1_acknowledgements(&ring).await;
            ring.cluster.kubectl.apply(&[forged(&annotations)]).await;
            let seen = |r| ring.ring_logged(r, &with_x, Some(true), since).is_some();
            match (seen("r1"), seen("r2")) {
                (true, true) => Ok(()),
                seen => Err(format!("seen by (r1, r2): {seen:?}")),
            }
        },
    )
    .await;
    let unprobed = forged_members_checks_reported_unprobed(&ring).await;
    let deleted = jiff::Timestamp::now().as_millisecond();
    let delete = ["delete", "lease", FORGED, "-n", LEASE_NS];
    ring.cluster.kubectl.ok(&delete).await;
    let restored = eventually(
        30 * SEC,
        "r1 and r2 back to their ring",
        SEC / 4,
        async || {
            let at = |r| ring.ring_logged(r, &["r1", "r2"], Some(true), deleted);
            match (at("r1"), at("r2")) {
                (Some(r1), Some(r2)) => Ok(r1.max(r2)),
                seen => Err(format!("at (r1, r2): {seen:?}")),
            }
        },
    )
    .await;
    let took = Duration::from_millis((restored - deleted).max(0) as u64);
    println!("deleted the forged member: both replicas gained its share {took:?} later");
    assert!(took <= RENEW, "took {took:?}: {}", ring.ring_logs());
    ring.settled(&["r1", "r2"]).await;
    println!("before: {unprobed} of the forged member's checks reported unprobed");
    eventually(
        60 * SEC,
        "no check reported unprobed",
        SEC,
        async || match ring.replica("r1").metric_sum(UNPROBED, &[]).await {
            0.0 => Ok(()),
            n => Err(format!("{n}")),
        },
    )
    .await;
}

const UNPROBED: &str = "canary_shard_peer_checks_unprobed";

/// While the forger renews (and copies acknowledgements), its checks' status goes stale: r1
/// reports them (two runs and two 3s heartbeats, plus its share at 10 writes/s) and names the
/// forged member alone. Returns how many.
async fn forged_members_checks_reported_unprobed(ring: &Ring) -> f64 {
    let replica = ring.replica("r1");
    let count = eventually(60 * SEC, "r1 reports unprobed checks", SEC, async || {
        let annotations = r1_acknowledgements(ring).await;
        ring.cluster.kubectl.apply(&[forged(&annotations)]).await;
        match replica.metric_sum(UNPROBED, &[]).await {
            n if n > 0.0 => Ok(n),
            n => Err(format!("{n}")),
        }
    })
    .await;
    let named: Vec<String> = (replica.logs().iter())
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|log| {
            log["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("nobody probes"))
        })
        .filter_map(|log| Some(log["fields"]["silent"].as_str()?.to_string()))
        .collect();
    let last = named.last().expect("a log line naming the member");
    assert!(
        last.starts_with("{\"x\": "),
        "only the forged member: {last}"
    );
    count
}

/// The acknowledgement annotations of r1's Lease (a forger copies them).
async fn r1_acknowledgements(ring: &Ring) -> serde_json::Map<String, Value> {
    let r1 = ring.cluster.lease(LEASE_NS, "canary-shard-r1").await;
    (r1.as_ref())
        .and_then(|l| l["metadata"]["annotations"].as_object())
        .map(|a| {
            (a.iter())
                .filter(|(k, _)| k.starts_with("canary.dev/ring-ack"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}
