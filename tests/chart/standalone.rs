//! A scraped `canary standalone` reads to the shipped alerts as a probing replica: it reports
//! `canary_leader 1` and owns every check it loads (`canary_shard_owned_checks`), so
//! `CanaryNoLeader` stays silent and `CanarySchedulerStalled` fires when its scheduler stops.
//! The operator-level series come from a real standalone's `/metrics`; promtool evaluates the
//! rendered rules over them.

use std::time::Duration;

use canary_test_harness::{
    metrics::{samples, value},
    operator::Launch,
    targets::{Reply, TestServer, Transport},
    tools::Tool,
};
use serde_json::{Value, json};

use super::{CANARY, alerts::rendered_rules};

const SEC: Duration = Duration::from_secs(1);
/// Series every operator-level alert reads, besides the scheduler's progress and `up`.
const OPERATOR_SERIES: [&str; 8] = [
    "canary_leader",
    "canary_shard_owned_checks",
    "canary_watch_failing",
    "canary_status_fields_dropped",
    "canary_checks_overdue",
    "canary_checks_unscheduled",
    "process_open_fds",
    "process_max_fds",
];
/// Alerts about Canary itself that must stay silent for a healthy standalone.
const OPERATOR_ALERTS: [&str; 11] = [
    "CanaryNoLeader",
    "CanaryShardChecksUnprobed",
    "CanaryShardPeerExcluded",
    "CanarySchedulerStalled",
    "CanaryWatchStalled",
    "CanaryCRDOutdated",
    "CanaryChecksOverdue",
    "CanaryChecksNotRunning",
    "CanaryFileDescriptorsHigh",
    "CanaryTargetDown",
    "CanaryAbsent",
];

/// `/metrics` of a standalone probing two loopback checks, once both have run.
async fn scraped_standalone() -> String {
    let server = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str| {
        format!(
            "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {{name: {name}}}\nspec:\n  interval: 1s\n  timeout: 500ms\n  http: {{url: '{}'}}\n",
            server.url("/")
        )
    };
    let checks = format!("{}---\n{}", check("a"), check("b"));
    std::fs::write(dir.path().join("checks.yaml"), checks).unwrap();
    let canary = Launch::standalone(CANARY, dir.path()).process().await;
    canary.wait_ready(10 * SEC).await;
    canary.wait_runs("default", "a", None, 1.0).await;
    canary.wait_runs("default", "b", None, 1.0).await;
    let text = canary.scrape().await.expect("/metrics answers");
    canary.terminate().await;
    text
}

/// One promtool input series: `name{labels}` of the scrape, scraped by job
/// `canary-operator-metrics` in namespace `canary`, holding `values`.
fn series(name: &str, labels: &[(String, String)], values: &str) -> Value {
    let mut all = vec![
        ("job".to_string(), "canary-operator-metrics".to_string()),
        ("namespace".to_string(), "canary".to_string()),
        ("instance".to_string(), "10.0.0.9:8080".to_string()),
    ];
    all.extend(labels.iter().cloned());
    let labels: Vec<String> = all.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    json!({"series": format!("{name}{{{}}}", labels.join(", ")), "values": values})
}

/// The scrape's operator-level series held for 40 minutes, the scheduler progressing every
/// minute until 20m and then stalled.
fn input_series(scrape: &str) -> Vec<Value> {
    let mut input: Vec<Value> = (samples(scrape).into_iter())
        .filter(|s| OPERATOR_SERIES.contains(&s.name.as_str()))
        .map(|s| {
            let labels: Vec<(String, String)> = s.labels.into_iter().collect();
            series(&s.name, &labels, &format!("{}x40", s.value))
        })
        .collect();
    input.push(series("up", &[], "1x40"));
    let progress = "canary_scheduler_last_progress_timestamp_seconds";
    input.push(series(progress, &[], "0+60x20 1200x20"));
    input
}

/// Expects no operator alert at `minute` but those in `firing`.
fn silent_but(minute: u32, firing: &[(&str, Value)]) -> Vec<Value> {
    (OPERATOR_ALERTS.iter())
        .map(|alert| {
            let expected = (firing.iter())
                .find(|(name, _)| name == alert)
                .map_or(json!([]), |(_, exp)| json!([exp]));
            json!({"eval_time": format!("{minute}m"), "alertname": alert, "exp_alerts": expected})
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scraped_standalone_leads_owns_every_check_and_fires_only_a_real_stall() {
    let scrape = scraped_standalone().await;
    assert_eq!(value(&scrape, "canary_leader", &[]), Some(1.0), "{scrape}");
    let owned = value(&scrape, "canary_shard_owned_checks", &[]);
    assert_eq!(owned, Some(2.0), "standalone owns every check it loads");
    let stalled = json!({
        "exp_labels": {"severity": "critical", "job": "canary-operator-metrics", "namespace": "canary"},
        "exp_annotations": {
            "summary": "Canary's scheduler in canary has not progressed for 7m 0s",
            "description": "A probing Canary replica of canary-operator-metrics (canary_leader 1: the leader, or a shard member) has not advanced its scheduler for more than 300s: its HealthChecks are not being run, so their alerts cannot fire."
        }
    });
    let mut expectations = silent_but(15, &[]);
    expectations.extend(silent_but(27, &[("CanarySchedulerStalled", stalled)]));
    let unit_tests = json!({
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "name": "a scraped standalone",
            "interval": "1m",
            "input_series": input_series(&scrape),
            "alert_rule_test": expectations,
        }],
    });
    let dir = tempfile::tempdir().unwrap();
    let rules = rendered_rules(&[]).await;
    std::fs::write(dir.path().join("rules.yaml"), rules.to_string()).unwrap();
    let tests = dir.path().join("standalone_test.yaml");
    std::fs::write(&tests, unit_tests.to_string()).unwrap();
    let out = Tool::new("promtool")
        .ok(&["test", "rules", &tests.display().to_string()])
        .await;
    assert!(out.contains("SUCCESS"), "{out}");
}
