//! The PrometheusRule and the Grafana dashboard: rules pass promtool and their unit tests, each
//! alert fires in one and has a runbook section, values tune them, and every metric they use is
//! one Canary exposes (names read from its registry).

use std::collections::BTreeSet;

use canary_test_harness::{
    chart::{self, fixture, one, render},
    metrics, read, repo,
    tools::Tool,
};
use serde_json::Value;

/// The PrometheusRule rendered with `extra`, as a rule file.
pub(super) async fn rendered_rules(extra: &[&str]) -> Value {
    let mut args = vec!["--api-versions", "monitoring.coreos.com/v1"];
    args.extend(["--set", "prometheusRule.enabled=true"]);
    args.extend_from_slice(extra);
    one(&render(&args).await, "PrometheusRule")["spec"].clone()
}

/// Every alerting rule of a rule file.
fn alerts(rules: &Value) -> Vec<&Value> {
    (rules["groups"].as_array().unwrap().iter())
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect()
}

#[tokio::test]
async fn alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rendered_rules(&[]).await;
    let rules_file = dir.path().join("rules.yaml");
    std::fs::write(&rules_file, serde_json::to_string_pretty(&rules).unwrap()).unwrap();
    let unit_tests = dir.path().join("alerts_test.yaml");
    std::fs::copy(fixture("alerts_test.yaml"), &unit_tests).unwrap();
    let promtool = Tool::new("promtool");
    let out = promtool
        .ok(&["check", "rules", &rules_file.display().to_string()])
        .await;
    assert!(out.contains("SUCCESS"), "{out}");
    let out = promtool
        .ok(&["test", "rules", &unit_tests.display().to_string()])
        .await;
    assert!(out.contains("SUCCESS"), "{out}");
}

/// Alerts expected to fire in some unit test of `alerts_test.yaml`.
fn fired_in_unit_tests() -> BTreeSet<String> {
    let unit_tests: Value = serde_saphyr::from_str(&read(&fixture("alerts_test.yaml"))).unwrap();
    (unit_tests["tests"].as_array().unwrap().iter())
        .flat_map(|t| t["alert_rule_test"].as_array().unwrap())
        .filter(|t| !t["exp_alerts"].as_array().unwrap().is_empty())
        .map(|t| t["alertname"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn every_alert_fires_in_a_unit_test_and_has_a_runbook_section() {
    let rules = rendered_rules(&[]).await;
    let fired = fired_in_unit_tests();
    let runbook = read(&repo().join("docs/runbook.md"));
    let names: Vec<&str> = alerts(&rules)
        .iter()
        .map(|a| a["alert"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 19, "{names:?}");
    for alert in alerts(&rules) {
        let name = alert["alert"].as_str().unwrap();
        assert!(
            fired.contains(name),
            "{name} never fires in alerts_test.yaml"
        );
        let section = format!("## {name}\n");
        assert!(
            runbook.contains(&section),
            "docs/runbook.md has no `## {name}` section"
        );
        for key in ["summary", "description"] {
            assert!(alert["annotations"][key].is_string(), "{name} has no {key}");
        }
        let severity = alert["labels"]["severity"].as_str().unwrap();
        assert!(["warning", "critical"].contains(&severity), "{name}");
    }
}

#[tokio::test]
async fn alert_rules_take_thresholds_labels_and_runbook_url_from_values() {
    let rules = rendered_rules(&[
        "--set",
        "prometheusRule.checkFailingFor=15m,prometheusRule.runbookBaseURL=https://runbooks.example.com/canary",
        "--set",
        "prometheusRule.additionalAlertLabels.team=platform,prometheusRule.targetSelector=job=\"canary\"",
    ])
    .await;
    let text = rules.to_string();
    assert!(!text.contains("__"), "placeholder left: {text}");
    for alert in alerts(&rules) {
        let name = alert["alert"].as_str().unwrap();
        assert_eq!(alert["labels"]["team"], "platform", "{name}");
        let url = format!(
            "https://runbooks.example.com/canary#{}",
            name.to_lowercase()
        );
        assert_eq!(alert["annotations"]["runbook_url"], url);
        let expr = alert["expr"].as_str().unwrap();
        assert!(expr.contains("job=\"canary\""), "{name}");
        if name == "CanaryCheckFailing" {
            assert_eq!(alert["for"], "15m");
        }
    }
}

#[tokio::test]
async fn allow_listed_labels_reach_the_operator_and_the_alerts() {
    let set = [
        "--set",
        "metrics.labelAllowlist={team,app.kubernetes.io/part-of,name}",
    ];
    let rules = rendered_rules(&set).await;
    let failing = (alerts(&rules).into_iter())
        .find(|a| a["alert"] == "CanaryCheckFailing")
        .unwrap();
    let expr = failing["expr"].as_str().unwrap();
    assert!(
        expr.contains("group_left (kind, target, team, app_kubernetes_io_part_of, label_name)"),
        "{expr}"
    );
    let args = chart::args(&render(&set).await);
    // The operator names the labels the same way.
    assert_eq!(
        canary_operator::metrics::metric_label("app.kubernetes.io/part-of"),
        "app_kubernetes_io_part_of"
    );
    assert_eq!(canary_operator::metrics::metric_label("name"), "label_name");
    assert!(
        args.contains(&"--metrics-label-allowlist=team,app.kubernetes.io/part-of,name".to_string()),
        "{args:?}"
    );
}

/// Metric names used in a PromQL expression (identifiers before `{`), by family.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (index, _) in expr.match_indices('{') {
        let head = &expr[..index];
        let identifier = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let start = head.rfind(|c: char| !identifier(c)).map_or(0, |i| i + 1);
        let name = &head[start..];
        if !name.is_empty() {
            let suffixes = ["_bucket", "_sum", "_count"];
            let family = suffixes
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.push(family.to_owned());
        }
    }
    names
}

/// Metric families the dashboard's panels query.
fn dashboard_metrics() -> BTreeSet<String> {
    let dashboard: Value = serde_json::from_str(&read(&chart::dir().join("files/dashboard.json")))
        .expect("valid JSON");
    assert_eq!(dashboard["uid"], "canary-operator");
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            assert!(target["datasource"]["uid"] == "${datasource}", "{expr}");
            used.extend(metric_names(expr));
        }
    }
    used
}

#[tokio::test]
async fn dashboard_and_alerts_use_only_metrics_canary_exposes() {
    let mut used = dashboard_metrics();
    for alert in alerts(&rendered_rules(&[]).await) {
        used.extend(metric_names(alert["expr"].as_str().unwrap()));
    }
    // Every family Canary registers, and Prometheus' own `up`.
    let mut exposed = metrics::names();
    exposed.insert("up".to_string());
    let unknown: Vec<_> = used.difference(&exposed).collect();
    assert!(unknown.is_empty(), "unknown metrics: {unknown:?}");
    // The dashboard covers checks by state, latency by phase, each probe kind, certificate
    // expiry and Canary's own health.
    for required in [
        "canary_checks",
        "canary_check_http_status_code",
        "canary_dns_response_code",
        "canary_dns_answer_records",
        "canary_grpc_status_code",
        "canary_grpc_serving_status",
        "canary_check_phase_duration_seconds",
        "canary_tls_chain_earliest_not_after_timestamp_seconds",
        "process_open_fds",
        "canary_scheduler_lag_seconds",
        "process_resident_memory_bytes",
    ] {
        assert!(used.contains(required), "dashboard lacks {required}");
    }
}
