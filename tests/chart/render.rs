//! What `helm template` renders: lint-clean, schema-valid objects with the defaults and with
//! every feature, bad values rejected, the Deployment hardened and wired for its probes.

use std::collections::BTreeSet;

use canary_test_harness::{
    chart::{
        self, KUBE_VERSION, NAMESPACE, RELEASE, args, container, fixture, kinds, of_kind, one,
        parse_documents, render, render_all_features, render_error, render_text,
    },
    read, repo,
    tools::{Helm, Tool, text},
};
use serde_json::{Value, json};

#[tokio::test]
async fn chart_lints_strictly_with_defaults_and_with_every_feature() {
    let chart = chart::dir().display().to_string();
    let all = fixture("all-features.yaml").display().to_string();
    for extra in [vec![], vec!["-f", all.as_str()]] {
        let mut args = vec!["lint", "--strict", chart.as_str()];
        args.extend(extra);
        let out = Helm::offline().ok(&args).await;
        assert!(out.contains("0 chart(s) failed"), "{out}");
    }
}

#[tokio::test]
async fn defaults_render_the_operator_without_optional_objects() {
    let objects = render(&[]).await;
    let expected = [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Pod",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ];
    assert_eq!(kinds(&objects), expected.map(String::from).into());
    let test = one(&objects, "Pod");
    assert_eq!(
        test["metadata"]["annotations"]["helm.sh/hook"], "test",
        "only `helm test` runs it"
    );
    for object in (objects.iter()).filter(|o| o["kind"] != "CustomResourceDefinition") {
        if !object["kind"].as_str().unwrap().starts_with("Cluster") {
            assert_eq!(object["metadata"]["namespace"], NAMESPACE, "{object}");
        }
        let instance = &object["metadata"]["labels"]["app.kubernetes.io/instance"];
        assert_eq!(instance, RELEASE);
    }
    let service = one(&objects, "Service");
    assert_eq!(service["metadata"]["name"], "canary-operator-metrics");
    assert_eq!(
        service["spec"]["ports"],
        json!([
            {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"},
            {"name": "health", "port": 8081, "targetPort": "health", "protocol": "TCP"},
            {"name": "ui", "port": 8082, "targetPort": "ui", "protocol": "TCP"},
        ])
    );
}

#[tokio::test]
async fn every_optional_feature_renders_when_enabled_and_served() {
    let objects = render_all_features().await;
    let optional = [
        "ServiceMonitor",
        "PrometheusRule",
        "ConfigMap",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ];
    for kind in optional {
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
    let shipped = read(&chart::dir().join("files/dashboard.json"));
    let rendered = dashboard["data"]["canary-operator.json"].as_str().unwrap();
    assert_eq!(rendered, shipped.trim_end());
    let pdb = one(&objects, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let deployment = one(&objects, "Deployment");
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], selector);
}

#[tokio::test]
async fn monitoring_objects_need_the_prometheus_operator_api() {
    let enabled = [
        "--set",
        "serviceMonitor.enabled=true,prometheusRule.enabled=true",
    ];
    let objects = render(&enabled).await;
    assert!(of_kind(&objects, "ServiceMonitor").is_empty());
    assert!(of_kind(&objects, "PrometheusRule").is_empty());
    let objects = render(&["--api-versions", "monitoring.coreos.com/v1"]).await;
    assert!(
        of_kind(&objects, "ServiceMonitor").is_empty(),
        "off by default"
    );
}

/// Value sets the schemas must accept: defaults, every feature, watched namespaces, minimal.
fn variants() -> Vec<(&'static str, Vec<String>)> {
    let set = |values: &str| vec!["--set".to_string(), values.to_string()];
    vec![
        ("defaults", vec![]),
        ("all-features", chart::all_features_args()),
        (
            "watch-namespaces",
            set("watchNamespaces={shop,payments},replicaCount=3"),
        ),
        (
            "minimal",
            set(
                "crds.enabled=false,rbac.create=false,serviceAccount.create=false,leaderElection.enabled=false",
            ),
        ),
    ]
}

#[tokio::test]
async fn rendered_manifests_validate_against_kubernetes_1_35_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let validate = Tool::new("kubernetes-validate");
    for (name, extra) in variants() {
        let yaml = render_text(&extra.iter().map(String::as_str).collect::<Vec<_>>()).await;
        let objects = parse_documents(&yaml);
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, &yaml).unwrap();
        let path = path.display().to_string();
        let output = validate
            .run(&["--strict", "-k", KUBE_VERSION, &path], "")
            .await;
        let report = text(&output);
        assert!(output.status.success(), "{name}: {report}");
        assert!(!report.contains("ERROR"), "{name}: {report}");
        // Built-in kinds must be validated, not skipped; only the Prometheus Operator's kinds
        // have no schema here (promtool checks the rules, the tests above the ServiceMonitor).
        let unvalidated = (objects.iter())
            .filter(|o| o["apiVersion"] == "monitoring.coreos.com/v1")
            .count();
        let passed = report.matches(" passed for resource ").count();
        let all = objects.len();
        assert_eq!(
            passed + unvalidated,
            all,
            "{name}: every object validated: {report}"
        );
    }
}

/// Values `helm template` must reject, with what its message must contain.
const BAD_VALUES: &[(&[&str], &[&str])] = &[
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
        &["--set", "replicaCount=2,sharding.mode=off"],
        &["replicaCount > 1 needs sharding.mode leader or shards"],
    ),
    (
        &["--set", "sharding.mode=ring"],
        &["/sharding/mode", "'off', 'leader', 'shards'"],
    ),
    (
        &["--set", "sharding.podAntiAffinity=soft"],
        &["/sharding/podAntiAffinity"],
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
    (
        &["--set", "locations.spoke.hubKubeconfigSecret=hub"],
        &["locations.spoke.hubKubeconfigSecret needs metrics.location"],
    ),
];

#[tokio::test]
async fn a_spoke_mounts_the_hub_kubeconfig_from_its_secret_and_passes_it() {
    let set = "locations.spoke.hubKubeconfigSecret=canary-hub,locations.spoke.hubKubeconfigKey=config,metrics.location=eu-west";
    let objects = render(&["--set", set]).await;
    let args = chart::args(&objects);
    assert!(args.contains(&"--location=eu-west".to_string()), "{args:?}");
    let flag = "--hub-kubeconfig=/etc/canary/hub/kubeconfig".to_string();
    assert!(args.contains(&flag), "{args:?}");
    let mounts = &chart::container(&objects)["volumeMounts"];
    let mount = (mounts.as_array().unwrap().iter())
        .find(|m| m["name"] == "hub-kubeconfig")
        .expect("the hub kubeconfig mounted");
    assert_eq!(mount["mountPath"], "/etc/canary/hub");
    assert_eq!(mount["readOnly"], true);
    let volumes = &one(&objects, "Deployment")["spec"]["template"]["spec"]["volumes"];
    let volume = (volumes.as_array().unwrap().iter())
        .find(|v| v["name"] == "hub-kubeconfig")
        .expect("the hub kubeconfig volume");
    assert_eq!(
        volume["secret"],
        json!({"secretName": "canary-hub", "items": [{"key": "config", "path": "kubeconfig"}]})
    );
    let plain = chart::args(&render(&[]).await);
    assert!(
        !plain.iter().any(|a| a.starts_with("--hub-kubeconfig")),
        "{plain:?}"
    );
}

#[tokio::test]
async fn bad_values_are_rejected_with_a_clear_message() {
    let mut unclear = Vec::new();
    for (args, expected) in BAD_VALUES {
        let error = render_error(args).await;
        for needle in expected.iter().filter(|n| !error.contains(*n)) {
            unclear.push(format!("{args:?}: expected {needle:?} in:\n{error}"));
        }
    }
    assert!(unclear.is_empty(), "{}", unclear.join("\n"));
}

/// Asserts the container runs as a non-root user without privileges, with memory bounds.
fn assert_hardened(c: &Value) {
    let security = &c["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
}

/// The operator's flags with default values.
const DEFAULT_ARGS: [&str; 21] = [
    "operator",
    "--metrics-bind-address=0.0.0.0:8080",
    "--health-probe-bind-address=0.0.0.0:8081",
    "--ui-bind-address=0.0.0.0:8082",
    "--log-format=json",
    "--log-level=info",
    "--sharding=leader",
    "--leader-election-lease-name=canary-operator",
    "--leader-election-namespace=canary",
    "--leader-election-lease-duration=15s",
    "--status-write-qps=10",
    "--status-write-burst=50",
    "--status-first-write-qps=100",
    "--status-first-write-burst=200",
    "--status-heartbeat=5m",
    "--status-history-interval=1h",
    "--writer-stall=5m",
    "--watch-stall=5m",
    "--audit-interval=30s",
    "--deny-cidrs=169.254.0.0/16,fe80::/10,fd00:ec2::254/128,100.100.100.200/32,0.0.0.0/8,::/128",
    "--body-buffer-budget=64Mi",
];

#[tokio::test]
async fn the_status_page_can_be_turned_off_redacted_and_fenced() {
    let off = render(&["--set", "ui.enabled=false"]).await;
    assert!(
        args(&off).contains(&"--ui-bind-address=".to_string()),
        "an empty address turns it off"
    );
    let ports = |objects: &[Value]| -> Vec<String> {
        let service = one(objects, "Service");
        (service["spec"]["ports"].as_array().unwrap().iter())
            .chain(container(objects)["ports"].as_array().unwrap())
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        !ports(&off).contains(&"ui".to_string()),
        "{:?}",
        ports(&off)
    );

    let peer = "ui.from[0].namespaceSelector.matchLabels.team=platform";
    let fenced = [
        "--set",
        "ui.redact=true,networkPolicy.enabled=true",
        "--set",
        peer,
    ];
    let objects = render(&fenced).await;
    assert!(args(&objects).contains(&"--ui-redact".to_string()));
    let policy = one(&objects, "NetworkPolicy");
    let rule = (policy["spec"]["ingress"].as_array().unwrap().iter())
        .find(|r| r["ports"][0]["port"] == "ui")
        .unwrap_or_else(|| panic!("no ingress rule for the page: {policy}"));
    assert_eq!(
        rule["from"][0]["namespaceSelector"]["matchLabels"]["team"],
        "platform"
    );
    assert_eq!(
        rule["from"].as_array().unwrap().len(),
        1,
        "one replica: no peers"
    );

    // Sharded replicas forward each other check pages: the pod IP is advertised and the fence
    // lets the release's own pods in.
    let sharded = render(&[&fenced[..], &["--set", "replicaCount=3"]].concat()).await;
    let policy = one(&sharded, "NetworkPolicy");
    let rule = (policy["spec"]["ingress"].as_array().unwrap().iter())
        .find(|r| r["ports"][0]["port"] == "ui")
        .unwrap();
    let selector = &one(&sharded, "Deployment")["spec"]["selector"]["matchLabels"];
    assert_eq!(&rule["from"][1]["podSelector"]["matchLabels"], selector);
    let env = container(&sharded)["env"].as_array().unwrap().clone();
    let advertised = (env.iter())
        .find(|e| e["name"] == "CANARY_UI_ADVERTISE_ADDRESS")
        .unwrap_or_else(|| panic!("no advertised page address: {env:?}"));
    assert_eq!(
        advertised["valueFrom"]["fieldRef"]["fieldPath"],
        "status.podIP"
    );
}

#[tokio::test]
async fn deployment_runs_the_operator_non_root_with_watchdog_probes() {
    let objects = render(&[]).await;
    let deployment = one(&objects, "Deployment");
    let pod = chart::pod(&objects);
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
    assert_hardened(c);
    let liveness = &c["livenessProbe"];
    assert_eq!(
        liveness["httpGet"],
        json!({"path": "/healthz", "port": "health"})
    );
    // The watchdog already waits interval + timeout + 30s; a few failed probes then restart.
    assert_eq!(liveness["periodSeconds"], 10);
    assert_eq!(liveness["failureThreshold"], 3);
    let readiness = &c["readinessProbe"]["httpGet"];
    assert_eq!(readiness, &json!({"path": "/readyz", "port": "health"}));
    assert_eq!(
        c["ports"],
        json!([
            {"name": "metrics", "containerPort": 8080, "protocol": "TCP"},
            {"name": "health", "containerPort": 8081, "protocol": "TCP"},
            {"name": "ui", "containerPort": 8082, "protocol": "TCP"},
        ])
    );
    let env: BTreeSet<&str> = (c["env"].as_array().unwrap().iter())
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, BTreeSet::from(["POD_NAME", "POD_NAMESPACE"]));
    assert_eq!(args(&objects), DEFAULT_ARGS);
}

/// The Lease flags the chart passes (name, namespace, duration) besides `--sharding`.
const LEASE_ARGS: [&str; 3] = [
    "--leader-election-lease-name=canary-operator",
    "--leader-election-namespace=canary",
    "--leader-election-lease-duration=15s",
];

/// The pod anti-affinity term the chart adds in shards mode: this release's pods, per node.
fn spread_term() -> Value {
    json!({
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": {
            "app.kubernetes.io/name": "canary-operator",
            "app.kubernetes.io/instance": RELEASE,
        }},
    })
}

#[tokio::test]
async fn replicas_shard_by_default_with_a_disruption_budget_and_spread_over_nodes() {
    let objects = render(&["--set", "replicaCount=3"]).await;
    let deployment = one(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let args = args(&objects);
    for wanted in ["--sharding=shards"].iter().chain(&LEASE_ARGS) {
        assert!(args.contains(&wanted.to_string()), "{wanted} in {args:?}");
    }
    let pdb = one(&objects, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], selector);
    let affinity = &deployment["spec"]["template"]["spec"]["affinity"];
    assert_eq!(
        affinity["podAntiAffinity"],
        json!({"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": spread_term()}
        ]})
    );
    assert_eq!(&spread_term()["labelSelector"]["matchLabels"], selector);
    let role = one(&objects, "Role");
    assert_eq!(role["metadata"]["name"], "canary-operator-shards");

    // Hard anti-affinity on request; the user's own affinity wins; the budget can be dropped.
    let required = ["--set", "replicaCount=3,sharding.podAntiAffinity=required"];
    let objects = render(&required).await;
    let affinity = &one(&objects, "Deployment")["spec"]["template"]["spec"]["affinity"];
    let terms = &affinity["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    assert_eq!(terms, &json!([spread_term()]));
    let own = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchExpressions":
            [{"key": "pool", "operator": "In", "values": ["monitoring"]}]}]}}});
    let objects = render(&[
        "--set",
        "replicaCount=3,podDisruptionBudget.enabled=false",
        "--set-json",
        &format!("affinity={own}"),
    ])
    .await;
    assert_eq!(
        one(&objects, "Deployment")["spec"]["template"]["spec"]["affinity"],
        own
    );
    assert!(of_kind(&objects, "PodDisruptionBudget").is_empty());
    let objects = render(&["--set", "replicaCount=3,sharding.podAntiAffinity=none"]).await;
    let spec = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    assert!(spec.get("affinity").is_none(), "{spec}");
}

#[tokio::test]
async fn one_pod_elects_a_leader_and_several_can_too_or_none_is_elected() {
    // One pod: a leader, so a rolling update never runs two probing pods; no budget, no spread.
    let objects = render(&[]).await;
    assert!(args(&objects).contains(&"--sharding=leader".to_string()));
    assert!(of_kind(&objects, "PodDisruptionBudget").is_empty());
    let spec = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    assert!(spec.get("affinity").is_none(), "{spec}");
    assert_eq!(
        one(&objects, "Role")["metadata"]["name"],
        "canary-operator-leader-election"
    );

    let objects = render(&["--set", "replicaCount=3,sharding.mode=leader"]).await;
    let leader = args(&objects);
    for wanted in ["--sharding=leader"].iter().chain(&LEASE_ARGS) {
        assert!(
            leader.contains(&wanted.to_string()),
            "{wanted} in {leader:?}"
        );
    }
    assert!(of_kind(&objects, "PodDisruptionBudget").is_empty());

    let objects = render(&["--set", "leaderElection.enabled=false"]).await;
    let args = args(&objects);
    assert!(args.contains(&"--sharding=off".to_string()), "{args:?}");
    assert!(
        !args.iter().any(|a| a.starts_with("--leader-election")),
        "{args:?}"
    );
    assert!(of_kind(&objects, "Role").is_empty(), "no Lease permissions");
    assert!(of_kind(&objects, "RoleBinding").is_empty());
}

#[tokio::test]
async fn chart_crd_is_the_generated_crd() {
    let committed: Value =
        serde_saphyr::from_str(&read(&repo().join("crds/healthchecks.canary.dev.yaml"))).unwrap();
    let objects = render(&[]).await;
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
        .arg(chart::dir().join("hack/sync-crd.sh"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check));

    // The CheckDiscovery CRD comes with discovery.enabled, generated the same way.
    let committed: Value =
        serde_saphyr::from_str(&read(&repo().join("crds/checkdiscoveries.canary.dev.yaml")))
            .unwrap();
    let objects = render(&["--set", "discovery.enabled=true"]).await;
    let mut rendered = (of_kind(&objects, "CustomResourceDefinition").into_iter())
        .find(|c| c["metadata"]["name"] == "checkdiscoveries.canary.dev")
        .expect("the CheckDiscovery CRD")
        .clone();
    let metadata = rendered["metadata"].as_object_mut().unwrap();
    metadata.remove("annotations").expect("annotations");
    metadata.remove("labels").expect("labels");
    assert!(
        rendered == committed,
        "templates/crd-checkdiscovery.yaml drifted from crds/: run hack/sync-crd.sh"
    );

    let objects = render(&["--set", "crds.keep=false"]).await;
    let crd = one(&objects, "CustomResourceDefinition");
    assert!(crd["metadata"].get("annotations").is_none(), "{crd}");
    let objects = render(&["--set", "crds.enabled=false"]).await;
    assert!(of_kind(&objects, "CustomResourceDefinition").is_empty());
}

/// The Kubernetes version each CRD feature the chart ships needs.
const CRD_FEATURES: [(&str, (u32, u32)); 4] = [
    ("x-kubernetes-validations", (1, 25)),
    ("messageExpression", (1, 27)),
    ("fieldPath", (1, 28)),
    ("x-kubernetes-int-or-string", (1, 16)),
];

/// CRD validation ratcheting is on by default from this release: without it, a HealthCheck
/// stored before a stricter rule of a newer CRD gets 422 on every status write.
const RATCHETING: (u32, u32) = (1, 30);

#[test]
fn the_charts_kube_version_covers_every_crd_feature() {
    let crd = read(&repo().join("crds/healthchecks.canary.dev.yaml"));
    let needed = (CRD_FEATURES.iter())
        .filter(|(feature, _)| crd.contains(&format!("{feature}:")))
        .map(|(_, version)| *version)
        .max()
        .expect("the CRD uses CEL");
    let chart_yaml: Value =
        serde_saphyr::from_str(&read(&chart::dir().join("Chart.yaml"))).unwrap();
    let range = chart_yaml["kubeVersion"].as_str().unwrap();
    let floor = range.trim_start_matches(">=").trim_end_matches("-0");
    let mut parts = floor.split('.').map(|p| p.parse::<u32>().unwrap());
    let floor = (parts.next().unwrap(), parts.next().unwrap());
    assert!(
        floor >= needed,
        "kubeVersion {range} is below {needed:?}, which the CRD needs"
    );
    assert!(
        floor >= RATCHETING,
        "kubeVersion {range} is below {RATCHETING:?}, where CRD validation ratchets"
    );
}

#[tokio::test]
async fn common_labels_and_extra_volumes_reach_the_objects() {
    let objects = render(&[
        "--set",
        "commonLabels.team=platform",
        "--set",
        "extraVolumes[0].name=corp-ca,extraVolumes[0].configMap.name=corp-ca",
        "--set",
        "extraVolumeMounts[0].name=corp-ca,extraVolumeMounts[0].mountPath=/etc/corp-ca",
    ])
    .await;
    for object in &objects {
        if object["kind"] != "CustomResourceDefinition" {
            assert_eq!(
                object["metadata"]["labels"]["team"], "platform",
                "{}",
                object["kind"]
            );
        }
    }
    let pod = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["configMap"]["name"], "corp-ca");
    assert_eq!(
        pod["containers"][0]["volumeMounts"][0]["mountPath"],
        "/etc/corp-ca"
    );
}
