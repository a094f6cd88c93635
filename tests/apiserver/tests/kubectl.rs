//! The real kubectl 1.35 against the server: CRDs, custom resources, tables, patches, watches.

mod common;

use common::{Kubectl, fixture};
use std::{process::Stdio, time::Duration};
use tokio::io::{AsyncBufReadExt, BufReader};

const CHECK: &str = "apiVersion: canary.dev/v1alpha1
kind: HealthCheck
metadata: {name: web}
spec: {kind: HTTP, interval: INTERVAL, http: {url: 'http://example.com'}}
";

fn check(interval: &str) -> String {
    CHECK.replace("INTERVAL", interval)
}

/// A server with the fixture CRD Established, and kubectl for it.
async fn with_crd() -> (canary_test_apiserver::Server, Kubectl) {
    let server = common::server().await;
    let kubectl = common::kubectl(&server);
    kubectl
        .ok(&["apply", "-f", &fixture("healthcheck-crd.yaml")])
        .await;
    let crd = "crd/healthchecks.canary.dev";
    kubectl
        .ok(&["wait", "--for=condition=Established", crd, "--timeout=10s"])
        .await;
    (server, kubectl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_custom_resources_client_side() {
    let (_server, kubectl) = with_crd().await;
    kubectl.ok_stdin(&["apply", "-f", "-"], &check("30s")).await;
    kubectl.ok_stdin(&["apply", "-f", "-"], &check("1m")).await;
    let shape = "jsonpath={.spec.interval} {.spec.timeout} {.metadata.generation}";
    let interval = kubectl.ok(&["get", "chc", "web", "-o", shape]).await;
    assert_eq!(interval, "1m 5s 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_custom_resources_server_side_with_managed_fields() {
    let (_server, kubectl) = with_crd().await;
    let ssa = check("45s").replace("name: web", "name: api");
    let apply = ["apply", "--server-side", "-f", "-"];
    kubectl.ok_stdin(&apply, &ssa).await;
    kubectl.ok_stdin(&apply, &ssa.replace("45s", "2m")).await;
    let args = [
        "get",
        "healthcheck",
        "api",
        "-o",
        "yaml",
        "--show-managed-fields",
    ];
    let yaml = kubectl.ok(&args).await;
    let managed = yaml.contains("manager: kubectl") && yaml.contains("operation: Apply");
    assert!(yaml.contains("interval: 2m") && managed, "{yaml}");
    let table = kubectl.ok(&["get", "chc"]).await;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "KIND", "INTERVAL", "READY", "FAILURES", "AGE"]
    );
    let row = table
        .lines()
        .any(|l| l.starts_with("api ") && l.contains("2m"));
    assert!(row, "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_patches_status_shows_it_in_columns_and_deletes() {
    let (_server, kubectl) = with_crd().await;
    kubectl.ok_stdin(&["apply", "-f", "-"], &check("1m")).await;
    let status =
        r#"{"status":{"consecutiveFailures":2,"conditions":[{"type":"Ready","status":"True"}]}}"#;
    let patch = [
        "patch",
        "chc",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ];
    kubectl.ok(&patch).await;
    let row = kubectl.ok(&["get", "chc", "web", "--no-headers"]).await;
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..5], ["web", "HTTP", "1m", "True", "2"]);
    let generation = "jsonpath={.metadata.generation}";
    let generation = kubectl.ok(&["get", "chc", "web", "-o", generation]).await;
    assert_eq!(generation, "1", "status writes do not bump generation");
    kubectl.ok(&["delete", "chc", "web"]).await;
    let out = kubectl.run(&["get", "chc"], "").await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("No resources found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rejects_invalid_custom_resources_naming_the_field() {
    let (_server, kubectl) = with_crd().await;
    let cases = [
        (
            "spec: {kind: FTP}",
            r#"spec.kind: Unsupported value: "FTP": supported values: "HTTP", "TCP", "TLS""#,
        ),
        (
            "spec: {kind: HTTP, http: {}}",
            "spec.http.url: Required value",
        ),
        (
            "spec: {kind: HTTP}",
            r#"spec: Invalid value: "object": http is required when kind is HTTP"#,
        ),
        (
            "spec: {kind: TCP, timeout: 1h}",
            "spec.timeout: Invalid value",
        ),
    ];
    for (spec, want) in cases {
        let doc = format!(
            "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {{name: bad}}\n{spec}\n"
        );
        for mode in [
            vec!["apply", "-f", "-"],
            vec!["apply", "--server-side", "-f", "-"],
        ] {
            let stderr = kubectl.fails(&mode, &doc).await;
            assert!(
                stderr.contains("HealthCheck") && stderr.contains(want),
                "{mode:?} {spec}: {stderr}"
            );
        }
    }
    let unknown = "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {name: lenient}\nspec: {kind: TCP, bogus: 1}\n";
    let out = kubectl
        .run(&["apply", "--validate=warn", "-f", "-"], unknown)
        .await;
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(r#"Warning: unknown field "spec.bogus""#)
    );
    let spec = kubectl
        .ok(&["get", "chc", "lenient", "-o", "jsonpath={.spec}"])
        .await;
    assert!(!spec.contains("bogus"), "pruned: {spec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_server_side_apply_of_an_undeclared_field_fails_naming_it() {
    let (_server, kubectl) = with_crd().await;
    let doc = "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {name: typo}\nspec: {kind: TCP, intervall: 5s}\n";
    let stderr = kubectl
        .fails(&["apply", "--server-side", "-f", "-"], doc)
        .await;
    assert!(
        stderr.contains(
            "failed to create typed patch object (default/typo; canary.dev/v1alpha1, Kind=HealthCheck): \
             .spec.intervall: field not declared in schema"
        ),
        "{stderr}"
    );
    let out = kubectl.run(&["get", "chc", "typo"], "").await;
    assert!(!out.status.success(), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_sees_an_update() {
    let (_server, kubectl) = with_crd().await;
    kubectl.ok_stdin(&["apply", "-f", "-"], &check("30s")).await;
    let args = [
        "get",
        "chc",
        "--watch",
        "--output-watch-events",
        "--no-headers",
    ];
    let mut watch = tokio::process::Command::from(kubectl.command(&args))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl watch");
    let mut lines = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("initial line in time");
    assert!(first.expect("read").expect("line").starts_with("ADDED"));
    kubectl.ok_stdin(&["apply", "-f", "-"], &check("2m")).await;
    let update = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("update in time");
    let update = update.expect("read").expect("line");
    assert!(
        update.starts_with("MODIFIED") && update.contains("2m"),
        "{update}"
    );
    watch.kill().await.expect("kill watch");
}

/// A server with namespace `team`, and kubectl for it.
async fn with_team() -> (canary_test_apiserver::Server, Kubectl) {
    let server = common::server().await;
    let kubectl = common::kubectl(&server);
    kubectl.ok(&["create", "namespace", "team"]).await;
    (server, kubectl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_selects_labelled_objects_and_deletes_them_with_their_namespace() {
    let (_server, kubectl) = with_team().await;
    let in_team = |args: &[&'static str]| [&["-n", "team"][..], args].concat();
    kubectl
        .ok(&in_team(&[
            "create",
            "configmap",
            "settings",
            "--from-literal=a=1",
        ]))
        .await;
    let secret = ["create", "secret", "generic", "token", "--from-literal=t=x"];
    kubectl.ok(&in_team(&secret)).await;
    kubectl
        .ok(&in_team(&["label", "configmap", "settings", "tier=front"]))
        .await;
    let selected = ["get", "cm,secret", "-l", "tier in (front)", "-o", "name"];
    let names = kubectl.ok(&in_team(&selected)).await;
    assert_eq!(names.trim(), "configmap/settings");
    kubectl.ok(&["delete", "namespace", "team"]).await;
    let out = kubectl.run(&in_team(&["get", "cm", "settings"]), "").await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: 'nginx:1', env: [{name: A, value: '1'}]}, {name: side, image: 'busybox'}]}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_and_updates_a_deployment_and_shows_its_table() {
    let (_server, kubectl) = with_team().await;
    kubectl.ok_stdin(&["apply", "-f", "-"], DEPLOYMENT).await;
    let updated = DEPLOYMENT
        .replace("replicas: 1", "replicas: 3")
        .replace("nginx:1", "nginx:2");
    kubectl.ok_stdin(&["apply", "-f", "-"], &updated).await;
    let shape = "jsonpath={.spec.replicas} {.spec.template.spec.containers[*].image}";
    let got = kubectl
        .ok(&["-n", "team", "get", "deploy", "web", "-o", shape])
        .await;
    assert_eq!(got, "3 nginx:2 busybox");
    let table = kubectl.ok(&["-n", "team", "get", "deploy"]).await;
    let columns = table.starts_with("NAME") && table.contains("READY") && table.contains("AGE");
    assert!(columns, "{table}");
}
