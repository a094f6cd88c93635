//! Judging peers' checks from their status: 60s checks, a 60s heartbeat, 10 writes/s.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::*;
use crate::{
    api::HealthCheckStatus,
    controller::{
        fixtures::check,
        shard::{Ring, Standing},
    },
};

/// The audit over `objects`, as the index hands them over.
fn unprobed(
    assignment: &Assignment,
    objects: &[HealthCheck],
    now: Timestamp,
    silence: Silence,
) -> BTreeMap<String, usize> {
    let watched: Vec<(CheckKey, Watched)> = (objects.iter())
        .filter_map(|o| {
            Some((
                CheckKey::of(o),
                Watched::of(o, crate::api::validate(&o.spec).ok().as_ref())?,
            ))
        })
        .collect();
    unprobed_elsewhere(
        assignment,
        watched.iter().map(|(k, w)| (k, *w)),
        now,
        silence,
    )
}

const SILENCE: Silence = Silence {
    heartbeat: Duration::from_secs(60),
    write_qps: 10,
};

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

/// r1's view of the ring r1, r2.
fn assignment() -> Assignment {
    Assignment {
        identity: Arc::from("r1"),
        ring: Arc::new(Ring::new(["r1".to_string(), "r2".to_string()])),
        standing: Standing::Member,
        may_gain: true,
        quiet_after: None,
    }
}

/// `count` checks (60s interval, 5s timeout) created at 0s that last ran at `ran` (never if
/// none), with `reason` on Ready.
fn checks(count: usize, ran: Option<i64>, reason: &str) -> Vec<HealthCheck> {
    (0..count)
        .map(|i| {
            let mut object = check("ns", &format!("c{i}"));
            object.metadata.creation_timestamp = Some(Time(at(0)));
            let ready = Condition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: reason.into(),
                message: String::new(),
                last_transition_time: Time(at(0)),
                observed_generation: None,
            };
            object.status = Some(HealthCheckStatus {
                last_run_time: ran.map(|s| Time(at(s))),
                conditions: vec![ready],
                ..HealthCheckStatus::default()
            });
            object
        })
        .collect()
}

fn owned_by_r2(checks: &[HealthCheck]) -> usize {
    let ring = assignment().ring;
    (checks.iter())
        .filter(|c| ring.owner(&CheckKey::of(c)) == Some("r2"))
        .count()
}

#[test]
fn a_peers_checks_with_no_run_for_two_runs_and_heartbeats_are_unprobed() {
    let objects = checks(20, Some(1_000), "Succeeded");
    let r2 = owned_by_r2(&objects);
    assert!(r2 > 0 && r2 < 20, "{r2} of 20 on r2");
    // Bound: (60s + 5s + 60s) x 2 + r2's checks / 10 per second.
    let bound = 250 + (r2 as f64 / 10.0).ceil() as i64;
    let judge = |now| unprobed(&assignment(), &objects, at(now), SILENCE);
    assert!(judge(1_000 + bound - 1).is_empty(), "within the bound");
    assert_eq!(judge(1_000 + bound + 1), [("r2".to_string(), r2)].into());
}

#[test]
fn own_suspended_invalid_and_blocked_checks_are_not_judged_and_never_run_counts_from_creation() {
    let mut objects = checks(20, None, "Succeeded");
    let r2 = owned_by_r2(&objects);
    let judge = |objects: &[HealthCheck]| unprobed(&assignment(), objects, at(10_000), SILENCE);
    assert_eq!(
        judge(&objects),
        [("r2".to_string(), r2)].into(),
        "created at 0s"
    );
    for object in &mut objects {
        object.spec.suspend = true;
    }
    assert!(judge(&objects).is_empty(), "suspended");
    let blocked = checks(20, Some(0), "ReferenceNotFound");
    assert!(judge(&blocked).is_empty(), "waiting for a Secret");
    let mut invalid = checks(20, Some(0), "Succeeded");
    for object in &mut invalid {
        object.spec.timeout = object.spec.interval.clone();
    }
    assert!(judge(&invalid).is_empty(), "timeout not below interval");
}

#[test]
fn a_large_share_gets_the_time_its_writes_need() {
    let quick = Silence {
        heartbeat: Duration::from_secs(60),
        write_qps: 1,
    };
    let (interval, timeout) = (Duration::from_secs(10), Duration::from_secs(1));
    assert_eq!(quick.bound(interval, timeout, 0), Duration::from_secs(142));
    assert_eq!(
        quick.bound(interval, timeout, 3_000),
        Duration::from_secs(3_142)
    );
}
