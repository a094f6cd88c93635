//! The Helm chart (`charts/canary-operator`), checked with the real tools a user meets: helm 4
//! lint and template, kubernetes-validate (Kubernetes 1.35 schemas), promtool for the alerts.
//! Tools come from `scripts/install-chart-test-tools.sh`; a missing tool fails the test.

#[path = "chart/install.rs"]
mod install;
#[path = "chart/operator.rs"]
mod operator;
#[path = "chart/support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use support::*;

#[test]
fn chart_lints_strictly_with_defaults_and_with_every_feature() {
    let chart = chart().display().to_string();
    let all = fixture("all-features.yaml").display().to_string();
    for extra in [vec![], vec!["-f", all.as_str()]] {
        let mut args = vec!["lint", "--strict", chart.as_str()];
        args.extend(extra);
        let out = run_ok("helm", &args, None);
        assert!(out.contains("0 chart(s) failed"), "{out}");
    }
}

#[test]
fn defaults_render_the_operator_without_optional_objects() {
    let objects = render(&[]);
    let expected = [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ];
    assert_eq!(kinds(&objects), expected.map(String::from).into());
    for object in objects
        .iter()
        .filter(|o| o["kind"] != "CustomResourceDefinition")
    {
        if !object["kind"].as_str().unwrap().starts_with("Cluster") {
            assert_eq!(object["metadata"]["namespace"], NAMESPACE, "{object}");
        }
        assert_eq!(
            object["metadata"]["labels"]["app.kubernetes.io/instance"],
            RELEASE
        );
    }
    let service = one(&objects, "Service");
    assert_eq!(service["metadata"]["name"], "canary-operator-metrics");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}])
    );
}

#[test]
fn every_optional_feature_renders_when_enabled_and_served() {
    let objects = render_all_features();
    for kind in [
        "ServiceMonitor",
        "PrometheusRule",
        "ConfigMap",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ] {
        one(&objects, kind);
    }
    let monitor = one(&objects, "ServiceMonitor");
    assert_eq!(
        monitor["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "metrics");
    assert_eq!(
        endpoint["honorLabels"], true,
        "keeps the check's namespace label"
    );
    let service = one(&objects, "Service");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&service["metadata"]["labels"][key], value, "{key}");
    }
    let dashboard = one(&objects, "ConfigMap");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let shipped = read(&chart().join("files/dashboard.json"));
    assert_eq!(
        dashboard["data"]["canary-operator.json"].as_str().unwrap(),
        shipped.trim_end()
    );
    let pdb = one(&objects, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let deployment = one(&objects, "Deployment");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn monitoring_objects_need_the_prometheus_operator_api() {
    let objects = render(&[
        "--set",
        "serviceMonitor.enabled=true,prometheusRule.enabled=true",
    ]);
    assert!(of_kind(&objects, "ServiceMonitor").is_empty());
    assert!(of_kind(&objects, "PrometheusRule").is_empty());
    let objects = render(&["--api-versions", "monitoring.coreos.com/v1"]);
    assert!(
        of_kind(&objects, "ServiceMonitor").is_empty(),
        "off by default"
    );
}

#[test]
fn rendered_manifests_validate_against_kubernetes_1_35_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let all = fixture("all-features.yaml").display().to_string();
    let variants: [(&str, Vec<&str>); 4] = [
        ("defaults", vec![]),
        (
            "all-features",
            vec!["--api-versions", "monitoring.coreos.com/v1", "-f", &all],
        ),
        (
            "watch-namespaces",
            vec!["--set", "watchNamespaces={shop,payments},replicaCount=3"],
        ),
        (
            "minimal",
            vec![
                "--set",
                "crds.enabled=false,rbac.create=false,serviceAccount.create=false,leaderElection.enabled=false",
            ],
        ),
    ];
    for (name, extra) in variants {
        let yaml = render_text(&extra);
        let objects = parse_documents(&yaml);
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, &yaml).unwrap();
        let version = KUBE_VERSION.to_string();
        let path_arg = path.display().to_string();
        let output = run(
            "kubernetes-validate",
            &["--strict", "-k", &version, &path_arg],
            None,
        );
        let report = text(&output);
        assert!(output.status.success(), "{name}: {report}");
        assert!(!report.contains("ERROR"), "{name}: {report}");
        // Built-in kinds must be validated, not skipped; only the Prometheus Operator's kinds
        // have no schema here (promtool checks the rules, the tests above the ServiceMonitor).
        let unvalidated = objects
            .iter()
            .filter(|o| o["apiVersion"] == "monitoring.coreos.com/v1")
            .count();
        let passed = report.matches(" passed for resource ").count();
        assert_eq!(
            passed + unvalidated,
            objects.len(),
            "{name}: every object validated: {report}"
        );
    }
}

#[test]
fn bad_values_are_rejected_with_a_clear_message() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["--set", "replicaCount=0"], &["/replicaCount", "minimum"]),
        (
            &["--set-string", "replicaCount=two"],
            &["/replicaCount", "want integer"],
        ),
        (
            &["--set", "replicas=2"],
            &["additional properties 'replicas' not allowed"],
        ),
        (
            &["--set", "image.pullPolicy=Sometimes"],
            &["/image/pullPolicy", "'Always', 'IfNotPresent', 'Never'"],
        ),
        (
            &["--set", "image.repository=canary:1.0"],
            &["/image/repository", "does not match pattern"],
        ),
        (
            &["--set", "crds.enabled=yes"],
            &["/crds/enabled", "want boolean"],
        ),
        (
            &["--set", "watchNamespaces={Shop_Front}"],
            &["/watchNamespaces/0", "does not match pattern"],
        ),
        (
            &["--set", "watchNamespaces=shop"],
            &["/watchNamespaces", "want array"],
        ),
        (
            &["--set", "resources.limits.memory=lots"],
            &["/resources/limits/memory", "does not match pattern"],
        ),
        (
            &["--set", "resources.limit.memory=1Gi"],
            &["/resources", "'limit' not allowed"],
        ),
        (
            &["--set", "serviceMonitor.enabled=1"],
            &["/serviceMonitor/enabled", "want boolean"],
        ),
        (
            &["--set", "prometheusRule.checkFailingFor=5 minutes"],
            &["/prometheusRule/checkFailingFor", "does not match pattern"],
        ),
        (
            &["--set", "grafanaDashboard.labels.grafana_dashboard=1"],
            &["/grafanaDashboard/labels/grafana_dashboard", "want string"],
        ),
        (
            &["--set", "config.logFormat=xml"],
            &["/config/logFormat", "'json', 'text'"],
        ),
        (
            &["--set", "replicaCount=2,leaderElection.enabled=false"],
            &["replicaCount > 1 needs leaderElection.enabled=true"],
        ),
        (
            &["--set", "healthProbePort=8080"],
            &["metrics.port and healthProbePort must differ"],
        ),
        (
            &["--set", "prometheusRule.certExpiryCriticalDays=30"],
            &["certExpiryWarningDays must be greater than"],
        ),
        (
            &[
                "--set",
                "podDisruptionBudget.enabled=true,podDisruptionBudget.minAvailable=1,podDisruptionBudget.maxUnavailable=1",
            ],
            &["set minAvailable or maxUnavailable, not both"],
        ),
    ];
    for (args, expected) in cases {
        let error = render_error(args);
        for needle in *expected {
            assert!(
                error.contains(needle),
                "{args:?}: expected {needle:?} in:\n{error}"
            );
        }
    }
}

#[test]
fn deployment_runs_the_operator_non_root_with_watchdog_probes() {
    let objects = render(&[]);
    let deployment = one(&objects, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(pod["serviceAccountName"], "canary-operator");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = container(&objects);
    assert_eq!(c["image"], "canary-operator:0.1.0");
    assert_eq!(c["command"], json!(["/canary"]));
    let security = &c["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    let liveness = &c["livenessProbe"];
    assert_eq!(
        liveness["httpGet"],
        json!({"path": "/healthz", "port": "health"})
    );
    // The watchdog already waits interval + timeout + 30s; a few failed probes then restart.
    assert_eq!(liveness["periodSeconds"], 10);
    assert_eq!(liveness["failureThreshold"], 3);
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "health"})
    );
    assert_eq!(
        c["ports"],
        json!([
            {"name": "metrics", "containerPort": 8080, "protocol": "TCP"},
            {"name": "health", "containerPort": 8081, "protocol": "TCP"},
        ])
    );
    let env: BTreeSet<&str> = (c["env"].as_array().unwrap().iter())
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, BTreeSet::from(["POD_NAME", "POD_NAMESPACE"]));
    assert_eq!(
        args(&objects),
        [
            "operator",
            "--metrics-bind-address=0.0.0.0:8080",
            "--health-probe-bind-address=0.0.0.0:8081",
            "--log-format=json",
            "--leader-elect",
            "--leader-election-lease-name=canary-operator",
            "--leader-election-namespace=canary",
            "--leader-election-lease-duration=15s",
            "--status-write-qps=10",
            "--status-write-burst=50",
            "--status-heartbeat=5m",
            "--writer-stall=5m",
            "--watch-stall=5m",
            "--deny-cidrs=169.254.0.0/16,fe80::/10,fd00:ec2::254/128,100.100.100.200/32,0.0.0.0/8,::/128",
        ]
    );
}

#[test]
fn leader_election_is_wired_for_replicas_and_can_be_turned_off_for_one() {
    let objects = render(&["--set", "replicaCount=3"]);
    assert_eq!(one(&objects, "Deployment")["spec"]["replicas"], 3);
    assert!(args(&objects).contains(&"--leader-elect".to_string()));
    one(&objects, "Role");

    let objects = render(&["--set", "leaderElection.enabled=false"]);
    assert!(
        !args(&objects)
            .iter()
            .any(|a| a.starts_with("--leader-elect")),
        "{:?}",
        args(&objects)
    );
    assert!(of_kind(&objects, "Role").is_empty(), "no Lease permissions");
    assert!(of_kind(&objects, "RoleBinding").is_empty());
}

/// What the operator's API calls need on HealthChecks and what they reference (see DESIGN.md).
fn needed_check_grants() -> BTreeSet<Grant> {
    grant_set(&[
        ("canary.dev", "healthchecks", &["get", "list", "watch"]),
        ("canary.dev", "healthchecks/status", &["patch"]),
        ("events.k8s.io", "events", &["create", "patch"]),
        ("", "secrets", &["get"]),
        ("", "configmaps", &["get"]),
    ])
}

/// The leader-election Lease: created (create cannot be limited by name), then only its own.
fn needed_lease_grants() -> BTreeSet<Grant> {
    let mut grants = grant_set(&[("coordination.k8s.io", "leases", &["create"])]);
    for verb in ["get", "update"] {
        grants.insert((
            "coordination.k8s.io".into(),
            "leases".into(),
            verb.into(),
            RELEASE.into(),
        ));
    }
    grants
}

#[test]
fn cluster_role_grants_exactly_what_the_operator_calls() {
    let objects = render(&[]);
    let role = one(&objects, "ClusterRole");
    let granted = grants(&role["rules"]);
    let needed = needed_check_grants();
    let extra: Vec<_> = granted.difference(&needed).collect();
    let missing: Vec<_> = needed.difference(&granted).collect();
    assert!(
        extra.is_empty(),
        "ClusterRole grants more than needed: {extra:?}"
    );
    assert!(missing.is_empty(), "ClusterRole lacks: {missing:?}");

    let binding = one(&objects, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "canary-operator", "namespace": NAMESPACE}])
    );

    let lease_role = one(&objects, "Role");
    assert_eq!(lease_role["metadata"]["namespace"], NAMESPACE);
    assert_eq!(grants(&lease_role["rules"]), needed_lease_grants());
    let lease_binding = one(&objects, "RoleBinding");
    assert_eq!(lease_binding["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        lease_binding["roleRef"]["name"],
        lease_role["metadata"]["name"]
    );

    // Without referenced Secrets/ConfigMaps, those grants go away.
    let objects = render(&["--set", "rbac.secrets=false,rbac.configMaps=false"]);
    let granted = grants(&one(&objects, "ClusterRole")["rules"]);
    assert!(
        granted
            .iter()
            .all(|g| g.1 != "secrets" && g.1 != "configmaps")
    );
}

#[test]
fn watch_namespaces_switch_to_namespaced_roles() {
    let objects = render(&["--set", "watchNamespaces={shop,payments}"]);
    assert!(of_kind(&objects, "ClusterRole").is_empty());
    assert!(of_kind(&objects, "ClusterRoleBinding").is_empty());
    assert!(args(&objects).contains(&"--namespaces=shop,payments".to_string()));
    for namespace in ["shop", "payments"] {
        let role = of_kind(&objects, "Role")
            .into_iter()
            .find(|r| r["metadata"]["namespace"] == namespace)
            .unwrap_or_else(|| panic!("no Role in {namespace}"));
        assert_eq!(grants(&role["rules"]), needed_check_grants(), "{namespace}");
        let binding = of_kind(&objects, "RoleBinding")
            .into_iter()
            .find(|r| r["metadata"]["namespace"] == namespace)
            .unwrap_or_else(|| panic!("no RoleBinding in {namespace}"));
        assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
        assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);
    }
    // Plus the Lease Role in the release namespace, and nothing else.
    assert_eq!(of_kind(&objects, "Role").len(), 3);
}

#[test]
fn chart_crd_is_the_generated_crd() {
    let committed: Value =
        serde_saphyr::from_str(&read(&repo().join("crds/healthchecks.canary.dev.yaml"))).unwrap();
    let objects = render(&[]);
    let mut rendered = one(&objects, "CustomResourceDefinition").clone();
    let metadata = rendered["metadata"].as_object_mut().unwrap();
    let annotations = metadata.remove("annotations").expect("annotations");
    assert_eq!(annotations, json!({"helm.sh/resource-policy": "keep"}));
    let labels = metadata.remove("labels").expect("labels");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
    assert!(
        rendered == committed,
        "charts/canary-operator/templates/crd.yaml drifted from crds/: run \
         charts/canary-operator/hack/sync-crd.sh"
    );
    let check = std::process::Command::new("bash")
        .arg(chart().join("hack/sync-crd.sh"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check));

    let objects = render(&["--set", "crds.keep=false"]);
    let crd = one(&objects, "CustomResourceDefinition");
    assert!(crd["metadata"].get("annotations").is_none(), "{crd}");
    let objects = render(&["--set", "crds.enabled=false"]);
    assert!(of_kind(&objects, "CustomResourceDefinition").is_empty());
}

/// The PrometheusRule rendered with `extra`, as a rule file.
fn rendered_rules(extra: &[&str]) -> Value {
    let mut args = vec![
        "--api-versions",
        "monitoring.coreos.com/v1",
        "--set",
        "prometheusRule.enabled=true",
    ];
    args.extend_from_slice(extra);
    one(&render(&args), "PrometheusRule")["spec"].clone()
}

/// Every alerting rule of a rule file.
fn alerts(rules: &Value) -> Vec<&Value> {
    (rules["groups"].as_array().unwrap().iter())
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect()
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rendered_rules(&[]);
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_json::to_string_pretty(&rules).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        fixture("alerts_test.yaml"),
        dir.path().join("alerts_test.yaml"),
    )
    .unwrap();
    let out = run_ok(
        "promtool",
        &["check", "rules", "rules.yaml"],
        Some(dir.path()),
    );
    assert!(out.contains("SUCCESS"), "{out}");
    let out = run_ok(
        "promtool",
        &["test", "rules", "alerts_test.yaml"],
        Some(dir.path()),
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_alert_fires_in_a_unit_test_and_has_a_runbook_section() {
    let rules = rendered_rules(&[]);
    let unit_tests: Value = serde_saphyr::from_str(&read(&fixture("alerts_test.yaml"))).unwrap();
    let fired: BTreeSet<&str> = (unit_tests["tests"].as_array().unwrap().iter())
        .flat_map(|t| t["alert_rule_test"].as_array().unwrap())
        .filter(|t| !t["exp_alerts"].as_array().unwrap().is_empty())
        .map(|t| t["alertname"].as_str().unwrap())
        .collect();
    let runbook = read(&repo().join("docs/runbook.md"));
    let names: Vec<&str> = alerts(&rules)
        .iter()
        .map(|a| a["alert"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 12, "{names:?}");
    for alert in alerts(&rules) {
        let name = alert["alert"].as_str().unwrap();
        assert!(
            fired.contains(name),
            "{name} never fires in alerts_test.yaml"
        );
        assert!(
            runbook.contains(&format!("## {name}\n")),
            "docs/runbook.md has no `## {name}` section"
        );
        for key in ["summary", "description"] {
            assert!(alert["annotations"][key].is_string(), "{name} has no {key}");
        }
        let severity = alert["labels"]["severity"].as_str().unwrap();
        assert!(["warning", "critical"].contains(&severity), "{name}");
    }
}

#[test]
fn alert_rules_take_thresholds_labels_and_runbook_url_from_values() {
    let rules = rendered_rules(&[
        "--set",
        "prometheusRule.checkFailingFor=15m,prometheusRule.runbookBaseURL=https://runbooks.example.com/canary",
        "--set",
        "prometheusRule.additionalAlertLabels.team=platform,prometheusRule.targetSelector=job=\"canary\"",
    ]);
    let text = rules.to_string();
    assert!(!text.contains("__"), "placeholder left: {text}");
    for alert in alerts(&rules) {
        let name = alert["alert"].as_str().unwrap();
        assert_eq!(alert["labels"]["team"], "platform", "{name}");
        assert_eq!(
            alert["annotations"]["runbook_url"],
            format!(
                "https://runbooks.example.com/canary#{}",
                name.to_lowercase()
            )
        );
        assert!(
            alert["expr"].as_str().unwrap().contains("job=\"canary\""),
            "{name}"
        );
        if name == "CanaryCheckFailing" {
            assert_eq!(alert["for"], "15m");
        }
    }
}

/// Metric families Canary exposes (DESIGN.md and the operator's interface).
const CANARY_METRICS: &[&str] = &[
    "canary_check_success",
    "canary_check_duration_seconds",
    "canary_check_phase_duration_seconds",
    "canary_check_runs_total",
    "canary_check_last_run_timestamp_seconds",
    "canary_check_last_success_timestamp_seconds",
    "canary_check_http_status_code",
    "canary_tls_cert_not_after_timestamp_seconds",
    "canary_tls_chain_earliest_not_after_timestamp_seconds",
    "canary_tls_version_info",
    "canary_checks",
    "canary_scheduler_lag_seconds",
    "canary_scheduler_last_progress_timestamp_seconds",
    "canary_status_writes_total",
    "canary_reconcile_total",
    "canary_checks_overdue",
    "canary_leader",
    "canary_probe_slot_wait_seconds",
    "canary_watch_failing",
    "process_open_fds",
    "process_max_fds",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "up",
];

/// Metric names used in a PromQL expression (identifiers before `{`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (index, _) in expr.match_indices('{') {
        let head = &expr[..index];
        let start = head
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let name = &head[start..];
        if !name.is_empty() {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.push(family.to_owned());
        }
    }
    names
}

#[test]
fn dashboard_and_alerts_use_only_metrics_canary_exposes() {
    let dashboard: Value =
        serde_json::from_str(&read(&chart().join("files/dashboard.json"))).expect("valid JSON");
    assert_eq!(dashboard["uid"], "canary-operator");
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            assert!(target["datasource"]["uid"] == "${datasource}", "{expr}");
            used.extend(metric_names(expr));
        }
    }
    for alert in alerts(&rendered_rules(&[])) {
        used.extend(metric_names(alert["expr"].as_str().unwrap()));
    }
    let unknown: Vec<_> = used
        .iter()
        .filter(|m| !CANARY_METRICS.contains(&m.as_str()))
        .collect();
    assert!(unknown.is_empty(), "unknown metrics: {unknown:?}");
    // The dashboard covers checks by state, latency by phase, certificate expiry and Canary's
    // own health.
    for required in [
        "canary_checks",
        "canary_check_phase_duration_seconds",
        "canary_tls_chain_earliest_not_after_timestamp_seconds",
        "process_open_fds",
        "canary_scheduler_lag_seconds",
        "process_resident_memory_bytes",
    ] {
        assert!(used.contains(required), "dashboard lacks {required}");
    }
}

/// Dotted paths of the leaves of values.yaml (an empty map or list is a leaf).
fn leaf_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value.as_object() {
        Some(map) if !map.is_empty() => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaf_paths(child, &path, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

#[test]
fn every_value_is_documented_in_the_readme_and_typed_in_the_schema() {
    let values: Value = serde_saphyr::from_str(&read(&chart().join("values.yaml"))).unwrap();
    let schema: Value =
        serde_json::from_str(&read(&chart().join("values.schema.json"))).expect("valid JSON");
    let readme = read(&chart().join("README.md"));
    let mut paths = Vec::new();
    leaf_paths(&values, "", &mut paths);
    for path in &paths {
        // The README documents the value itself or (for free-form Kubernetes objects such as
        // resources or podSecurityContext) its parent.
        let parts: Vec<&str> = path.split('.').collect();
        let documented = (1..=parts.len())
            .map(|n| format!("`{}`", parts[..n].join(".")))
            .any(|p| readme.contains(&format!("| {p} |")));
        assert!(documented, "chart README does not list `{path}`");
        let mut node = &schema;
        for part in &parts {
            match node.get("properties") {
                Some(properties) => {
                    node = properties
                        .get(part)
                        .unwrap_or_else(|| panic!("values.schema.json lacks {path}"))
                }
                None => break,
            }
        }
    }
    let top: BTreeSet<&String> = values.as_object().unwrap().keys().collect();
    let typed: BTreeSet<&String> = schema["properties"].as_object().unwrap().keys().collect();
    assert_eq!(
        top, typed,
        "values.yaml and values.schema.json list the same values"
    );
    for name in [
        "crds.enabled",
        "crds.keep",
        "serviceMonitor.enabled",
        "prometheusRule.enabled",
        "grafanaDashboard.enabled",
        "replicaCount",
        "watchNamespaces",
        "image.repository",
        "resources",
    ] {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "README lacks {name}"
        );
    }
}

#[test]
fn dockerfile_builds_the_binary_the_chart_runs_as_the_chart_user() {
    let dockerfile = read(&repo().join("Dockerfile"));
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 2, "multi-stage: {stages:?}");
    assert!(stages[0].starts_with("FROM rust:"), "{}", stages[0]);
    assert!(
        stages[1].contains("distroless") && stages[1].contains(":nonroot"),
        "{}",
        stages[1]
    );
    assert!(dockerfile.contains("cargo build --release --locked --bin canary"));
    assert!(dockerfile.contains("USER 65532:65532"));
    assert!(dockerfile.contains("ENTRYPOINT [\"/canary\"]"));
    assert!(dockerfile.contains("CMD [\"operator\"]"));
    // The builder is new enough for Cargo.toml's rust-version.
    let rust_version = read(&repo().join("Cargo.toml"))
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap();
    let builder = stages[0]
        .trim_start_matches("FROM rust:")
        .split(['-', ' '])
        .next()
        .unwrap();
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    assert!(
        version(builder) >= version(&rust_version),
        "{builder} < {rust_version}"
    );

    let objects = render(&[]);
    let pod = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["runAsGroup"], 65532);
    assert_eq!(container(&objects)["command"], json!(["/canary"]));
    let ignored = read(&repo().join(".dockerignore"));
    for path in ["target", ".tools", ".git"] {
        assert!(
            ignored.lines().any(|l| l.trim_start_matches('/') == path),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_upgrades_and_uninstalls_into_the_local_api_server() {
    let server = canary_test_apiserver::start(canary_test_apiserver::Options::default())
        .await
        .expect("local API server starts");
    let kubeconfig = server.kubeconfig_path().to_path_buf();
    // helm and kubectl block this thread; the server runs on the runtime's workers.
    tokio::task::spawn_blocking(move || {
        install::helm_installs_upgrades_and_uninstalls_keeping_the_crd(&kubeconfig)
    })
    .await
    .unwrap();
}

/// The chart's Deployment args and env with default values, every optional feature, and
/// namespaced watching plus an extra flag.
fn deployment_variants() -> Vec<(&'static str, Vec<Value>)> {
    vec![
        ("defaults", render(&[])),
        ("all-features", render_all_features()),
        (
            "watch-namespaces",
            render(&[
                "--set",
                "watchNamespaces={shop,payments},replicaCount=2",
                "--set-json",
                r#"config.extraArgs=["--reference-ttl=1m"]"#,
            ]),
        ),
    ]
}

/// Variables the operator reads that are not flags: log levels for tracing's EnvFilter
/// (src/main.rs; `canary --help` does not list it, src/cli.rs documents it).
const NON_FLAG_ENV: &[&str] = &["RUST_LOG"];

#[test]
fn chart_flags_are_accepted_by_the_operator() {
    let output = std::process::Command::new(operator::canary())
        .args(["operator", "--help"])
        .env_clear()
        .output()
        .expect("canary runs");
    assert!(output.status.success(), "{}", text(&output));
    let help = operator::parse_help(&String::from_utf8_lossy(&output.stdout));
    assert!(
        help.flags.contains_key("metrics-bind-address") && help.env.contains("POD_NAME"),
        "help not understood: {help:?}"
    );
    let mut problems = Vec::new();
    for (variant, objects) in deployment_variants() {
        let c = container(&objects);
        for problem in operator::undocumented_args(&args(&objects), &help) {
            problems.push(format!("{variant}: {problem}"));
        }
        for var in c["env"].as_array().unwrap() {
            let name = var["name"].as_str().unwrap();
            if !help.env.contains(name) && !NON_FLAG_ENV.contains(&name) {
                problems.push(format!(
                    "{variant}: env {name} is not read by any flag of `canary operator --help`"
                ));
            }
        }
        // The Downward API variables feed the flags whose defaults they are.
        for (name, flag) in [
            ("POD_NAME", "leader-election-identity"),
            ("POD_NAMESPACE", "leader-election-namespace"),
        ] {
            assert!(help.flags.contains_key(flag), "{flag}");
            assert!(
                c["env"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v["name"] == name),
                "{variant}: {name}"
            );
        }
    }
    assert!(
        problems.is_empty(),
        "the chart passes what `canary operator` does not document:\n{}",
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_runs_as_the_chart_deploys_it() {
    let server = canary_test_apiserver::start(canary_test_apiserver::Options::default())
        .await
        .expect("local API server starts");
    let kubeconfig = server.kubeconfig_path().to_path_buf();
    let objects = render(&[]);
    let rendered = objects.clone();
    // helm, kubectl and the operator's probes block this thread; the server runs on the
    // runtime's workers.
    let log =
        tokio::task::spawn_blocking(move || operator::run_as_deployed(&kubeconfig, &rendered))
            .await
            .unwrap();
    assert_eq!(
        server.requests_dropped(),
        0,
        "the audit log kept every request"
    );
    let records = server.requests();
    let operator_calls: Vec<_> = records
        .iter()
        .filter(|r| {
            let agent = r.user_agent.to_ascii_lowercase();
            !(agent.starts_with("kubectl") || agent.starts_with("helm"))
        })
        .collect();
    let agents: BTreeSet<&str> = operator_calls
        .iter()
        .map(|r| r.user_agent.as_str())
        .collect();
    println!("operator user agents: {agents:?}");
    assert_eq!(
        agents.len(),
        1,
        "one client besides kubectl and helm: {agents:?}"
    );

    let pod = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    let account = pod["serviceAccountName"].as_str().unwrap();
    let grants = operator::service_account_grants(&objects, NAMESPACE, account);
    let mut used: BTreeMap<operator::Access, usize> = BTreeMap::new();
    let mut denied = BTreeSet::new();
    let mut discovery = BTreeSet::new();
    for record in &operator_calls {
        if !record.is_resource_request() {
            if operator::is_discovery(record) {
                discovery.insert(format!("{} {}", record.verb, record.request_uri));
            } else {
                denied.insert(format!(
                    "{} {} (non-resource URL, no rule grants it)",
                    record.verb, record.request_uri
                ));
            }
            continue;
        }
        let access = operator::Access::of(record);
        if !grants.iter().any(|g| g.allows(&access)) {
            denied.insert(format!(
                "{access}: {} {} answered {}",
                record.verb, record.request_uri, record.code
            ));
        }
        *used.entry(access).or_default() += 1;
    }
    println!("API calls of the operator (ServiceAccount {NAMESPACE}/{account}):");
    for (access, count) in &used {
        println!("  {count:>4} x {access}");
    }
    for url in &discovery {
        println!("  discovery (any authenticated user): {url}");
    }
    let unused: Vec<_> = grants
        .iter()
        .filter(|g| !used.keys().any(|a| g.allows(a)))
        .collect();
    println!("grants of the chart this run never used (not an error):");
    for grant in &unused {
        println!("  {grant}");
    }
    assert!(
        denied.is_empty(),
        "the operator made API calls the chart's RBAC (ServiceAccount {NAMESPACE}/{account}) \
         does not grant:\n{}\nGranted:\n{}\nOperator log:\n{log}",
        denied.into_iter().collect::<Vec<_>>().join("\n"),
        grants
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
    );
    // The run exercised every kind of call the operator makes, so the comparison means
    // something: the watch, status writes, Events, referenced Secret and ConfigMap, the Lease.
    let made = |verb: &str, group: &str, resource: &str| {
        used.keys()
            .any(|a| a.verb == verb && a.api_group == group && a.resource == resource)
    };
    for (verb, group, resource) in [
        ("list", "canary.dev", "healthchecks"),
        ("watch", "canary.dev", "healthchecks"),
        ("patch", "canary.dev", "healthchecks/status"),
        ("create", "events.k8s.io", "events"),
        ("get", "", "secrets"),
        ("get", "", "configmaps"),
        ("get", "coordination.k8s.io", "leases"),
        ("create", "coordination.k8s.io", "leases"),
        ("update", "coordination.k8s.io", "leases"),
    ] {
        assert!(
            made(verb, group, resource),
            "the run never made `{verb} {resource}` ({group}): {used:?}"
        );
    }
}
