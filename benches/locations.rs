//! The hub's aggregation (issue 29) at `CHECKS` (default 3,000) checks x 3 locations: the
//! pure parts the hub runs, on one thread (so time is CPU time), on a virtual clock.
//! - memory: jemalloc's allocated bytes for the reports the hub holds after the first list;
//! - a full pass: every check judged (what the hub does twice a second), nothing changed;
//! - a full pass where every verdict changed (each check's next status built too);
//! - a report change: the watch event applied and its check judged again, with its status;
//! - status writes: `MINUTES` (default 10) of spokes rewriting each report every heartbeat
//!   (60 s) and `FLIP_PERCENT` (default 1) of the reports per minute failing once (a random
//!   location, recovered by its next rewrite), judged every 0.5 s: the statuses the writer would send (a change of state; `lastRunTime` alone
//!   waits for the 5 m status heartbeat, as the writer's skip rule does).
//!
//! Run: `cargo bench --features jemalloc --bench locations`.

use std::{collections::HashMap, time::Duration, time::Instant};

use canary_operator::{
    api::{
        CheckKey, CheckReport, CheckReportSpec, CheckReportStatus, HealthCheckStatus,
        ValidLocations,
    },
    controller::hub::{
        Reports,
        aggregate::{Aggregate, Observed, aggregate},
        status::next_status,
    },
};
use canary_test_harness::env_or;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{api::ObjectMeta, runtime::watcher::Event};
use tikv_jemalloc_ctl::{epoch, stats};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const LOCATIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];
const INTERVAL: Duration = Duration::from_secs(30);
const HEARTBEAT_SECONDS: u64 = 60;
const STATUS_HEARTBEAT: Duration = Duration::from_secs(300);
const PASS_EVERY: Duration = Duration::from_millis(500);

fn allocated() -> usize {
    epoch::advance().expect("jemalloc epoch");
    stats::allocated::read().expect("jemalloc stats")
}

fn key(i: usize) -> CheckKey {
    CheckKey {
        namespace: format!("team-{}", i % 50),
        name: format!("check-{i}"),
    }
}

fn report(check: &CheckKey, location: &str, version: u64, ready: bool) -> CheckReport {
    let name = format!("{}.{location}", check.name);
    let mut report = CheckReport::new(
        &name,
        CheckReportSpec {
            check: check.name.clone(),
            location: location.into(),
            heartbeat_seconds: HEARTBEAT_SECONDS as i64,
        },
    );
    report.metadata = ObjectMeta {
        name: Some(name),
        namespace: Some(check.namespace.clone()),
        resource_version: Some(version.to_string()),
        ..ObjectMeta::default()
    };
    let reason = if ready { "Succeeded" } else { "Timeout" };
    report.status = Some(CheckReportStatus {
        ready: Some(if ready { "True" } else { "False" }.into()),
        reason: Some(reason.into()),
        message: Some(format!("answered 200 in {}ms", version % 90)),
        last_run_time: Some(Time(jiff::Timestamp::from_second(version as i64).unwrap())),
        duration: Some("0.042s".into()),
        consecutive_failures: 0,
        probed_by: Some(format!("canary-{location}-7d9f")),
    });
    report
}

fn judge(
    reports: &Reports,
    check: &CheckKey,
    locations: &ValidLocations,
    now: Duration,
) -> Aggregate {
    let of = reports.of(check);
    let observed = |name: &str| {
        let entry = of?.get(name)?;
        Some(Observed {
            status: entry.status.as_ref(),
            heartbeat: entry.heartbeat,
            seen: entry.seen,
        })
    };
    aggregate(locations, INTERVAL, observed, Duration::ZERO, now)
}

/// What the writer compares: the status without times that change on every report.
fn state(status: &HealthCheckStatus) -> HealthCheckStatus {
    let mut s = status.clone();
    s.last_run_time = None;
    s.locations.iter_mut().for_each(|l| l.last_run_time = None);
    s
}

fn main() {
    let checks: usize = env_or("CHECKS", 3_000);
    let minutes: u64 = env_or("MINUTES", 10);
    let flip_percent: u64 = env_or("FLIP_PERCENT", 1);
    let keys: Vec<CheckKey> = (0..checks).map(key).collect();
    let locations = ValidLocations {
        names: LOCATIONS.iter().map(|l| l.to_string()).collect(),
        min_failing: 2,
    };
    let objects: Vec<CheckReport> = (keys.iter())
        .flat_map(|k| LOCATIONS.map(|l| report(k, l, 1, true)))
        .collect();

    let before = allocated();
    let mut reports = Reports::default();
    reports.apply(Event::Init, Duration::ZERO);
    for object in objects {
        reports.apply(Event::InitApply(object), Duration::ZERO);
    }
    reports.apply(Event::InitDone, Duration::ZERO);
    let held = allocated() - before;
    let n = reports.len();
    println!(
        "hub aggregation, {checks} checks x {} locations ({n} reports):",
        LOCATIONS.len()
    );
    println!(
        "  memory held for the reports: {:.1} MiB, {} bytes per report",
        held as f64 / 1048576.0,
        held / n
    );

    let now = Duration::from_secs(1);
    let passes = 20;
    let started = Instant::now();
    let mut last: HashMap<&CheckKey, Aggregate> = HashMap::new();
    for _ in 0..passes {
        for k in &keys {
            let verdict = judge(&reports, k, &locations, now);
            if last.get(k) != Some(&verdict) {
                last.insert(k, verdict);
            }
        }
    }
    let pass = started.elapsed() / passes;
    println!(
        "  full pass, nothing changed: {pass:?} ({:.2} us per check; {:.1}% of a core at 2 passes/s)",
        pass.as_secs_f64() * 1e6 / checks as f64,
        pass.as_secs_f64() * 200.0
    );

    let wall = Time(jiff::Timestamp::now());
    let empty = HealthCheckStatus::default();
    let started = Instant::now();
    for k in &keys {
        let verdict = judge(&reports, k, &locations, now);
        std::hint::black_box(next_status(&verdict, &empty, None, Some(1), &wall));
    }
    println!(
        "  full pass, every verdict changed (with its status): {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    for (i, k) in keys.iter().enumerate() {
        for (j, l) in LOCATIONS.iter().enumerate() {
            let version = 2 + (i * 3 + j) as u64;
            reports.apply(Event::Apply(report(k, l, version, true)), now);
            let verdict = judge(&reports, k, &locations, now);
            std::hint::black_box(next_status(&verdict, &empty, None, Some(1), &wall));
        }
    }
    let change = started.elapsed() / n as u32;
    println!("  one report change (event applied, check judged, status built): {change:?}");

    writes(&keys, &locations, &mut reports, minutes, flip_percent);
}

/// Counts the status writes of `minutes` of steady reporting with some flips.
fn writes(
    keys: &[CheckKey],
    locations: &ValidLocations,
    reports: &mut Reports,
    minutes: u64,
    flip_percent: u64,
) {
    let wall = Time(jiff::Timestamp::now());
    let mut written: HashMap<&CheckKey, (HealthCheckStatus, Duration)> = HashMap::new();
    let mut version = 1_000_000u64;
    let mut count = 0u64;
    let mut failed = 0u64;
    let mut random = 0x2545_f491_4f6c_dd1du64;
    let total = keys.len() * LOCATIONS.len();
    let per_pass = total as f64 * PASS_EVERY.as_secs_f64() / HEARTBEAT_SECONDS as f64;
    let flips_per_pass = per_pass * flip_percent as f64 / 100.0 * HEARTBEAT_SECONDS as f64 / 60.0;
    let (mut rewrite_due, mut flip_due) = (0.0, 0.0);
    let mut cursor = 0usize;
    let started = Instant::now();
    let end = Duration::from_secs(minutes * 60);
    let mut now = Duration::from_secs(2);
    while now < end {
        rewrite_due += per_pass;
        flip_due += flips_per_pass;
        while rewrite_due >= 1.0 {
            rewrite_due -= 1.0;
            let (i, j) = (cursor / 3 % keys.len(), cursor % 3);
            cursor += 1;
            version += 1;
            let object = report(&keys[i], LOCATIONS[j], version, true);
            reports.apply(Event::Apply(object), now);
        }
        // A location of a check picked at random fails once; its next rewrite recovers it.
        while flip_due >= 1.0 {
            flip_due -= 1.0;
            random = random
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let pick = (random >> 33) as usize % total;
            version += 1;
            failed += 1;
            let object = report(&keys[pick / 3], LOCATIONS[pick % 3], version, false);
            reports.apply(Event::Apply(object), now);
        }
        for k in keys {
            let verdict = judge(reports, k, locations, now);
            let next = next_status(
                &verdict,
                &HealthCheckStatus::default(),
                None,
                Some(1),
                &wall,
            );
            let due = match written.get(k) {
                None => true,
                Some((last, at)) => {
                    state(last) != state(&next.status) || now - *at >= STATUS_HEARTBEAT
                }
            };
            if due {
                count += 1;
                written.insert(k, (next.status, now));
            }
        }
        now += PASS_EVERY;
    }
    let first = keys.len() as u64;
    let seconds = end.as_secs_f64() - 2.0;
    println!(
        "  status writes over {minutes} min (reports every {HEARTBEAT_SECONDS}s, {flip_percent}% of them failing once a minute: {failed} failures): {} after the first {first}, {:.2}/s (simulated in {:?})",
        count - first,
        (count - first) as f64 / seconds,
        started.elapsed()
    );
}
