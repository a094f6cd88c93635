//! The real kubectl 1.35 against the server: CRDs, custom resources, tables, patches, watches.

mod common;

use common::{Cli, fixture};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const CHECK: &str = "apiVersion: canary.dev/v1alpha1
kind: HealthCheck
metadata: {name: web}
spec: {kind: HTTP, interval: INTERVAL, http: {url: 'http://example.com'}}
";

fn check(interval: &str) -> String {
    CHECK.replace("INTERVAL", interval)
}

async fn install_crd(cli: &Cli) {
    cli.kubectl(&["apply", "-f", &fixture("healthcheck-crd.yaml")])
        .await;
    cli.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/healthchecks.canary.dev",
        "--timeout=10s",
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_crd_and_custom_resources_client_and_server_side() {
    let server = common::server().await;
    let cli = Cli::new(&server);
    install_crd(&cli).await;
    cli.kubectl_stdin(&["apply", "-f", "-"], &check("30s"))
        .await;
    cli.kubectl_stdin(&["apply", "-f", "-"], &check("1m")).await;
    let interval = cli
        .kubectl(&[
            "get",
            "chc",
            "web",
            "-o",
            "jsonpath={.spec.interval} {.spec.timeout} {.metadata.generation}",
        ])
        .await;
    assert_eq!(interval, "1m 5s 2");

    let ssa = check("45s").replace("name: web", "name: api");
    cli.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &ssa)
        .await;
    cli.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        &ssa.replace("45s", "2m"),
    )
    .await;
    let yaml = cli
        .kubectl(&[
            "get",
            "healthcheck",
            "api",
            "-o",
            "yaml",
            "--show-managed-fields",
        ])
        .await;
    assert!(
        yaml.contains("interval: 2m")
            && yaml.contains("manager: kubectl")
            && yaml.contains("operation: Apply"),
        "{yaml}"
    );

    let table = cli.kubectl(&["get", "chc"]).await;
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
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("api ") && l.contains("2m")),
        "{table}"
    );

    let status =
        r#"{"status":{"consecutiveFailures":2,"conditions":[{"type":"Ready","status":"True"}]}}"#;
    cli.kubectl(&[
        "patch",
        "chc",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ])
    .await;
    let row = cli.kubectl(&["get", "chc", "web", "--no-headers"]).await;
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..5], ["web", "HTTP", "1m", "True", "2"]);
    let generation = cli
        .kubectl(&["get", "chc", "web", "-o", "jsonpath={.metadata.generation}"])
        .await;
    assert_eq!(generation, "2", "status writes do not bump generation");

    cli.kubectl(&["delete", "chc", "web", "api"]).await;
    let out = cli.run("kubectl", &["get", "chc"], "").await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("No resources found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rejects_invalid_custom_resources_naming_the_field() {
    let server = common::server().await;
    let cli = Cli::new(&server);
    install_crd(&cli).await;
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
            let stderr = cli.kubectl_fails(&mode, &doc).await;
            assert!(
                stderr.contains("HealthCheck") && stderr.contains(want),
                "{mode:?} {spec}: {stderr}"
            );
        }
    }
    let unknown = "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {name: lenient}\nspec: {kind: TCP, bogus: 1}\n";
    let out = cli
        .run("kubectl", &["apply", "--validate=warn", "-f", "-"], unknown)
        .await;
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(r#"Warning: unknown field "spec.bogus""#)
    );
    let spec = cli
        .kubectl(&["get", "chc", "lenient", "-o", "jsonpath={.spec}"])
        .await;
    assert!(!spec.contains("bogus"), "pruned: {spec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_sees_an_update() {
    let server = common::server().await;
    let cli = Cli::new(&server);
    install_crd(&cli).await;
    cli.kubectl_stdin(&["apply", "-f", "-"], &check("30s"))
        .await;
    let mut watch = cli.spawn(
        "kubectl",
        &[
            "get",
            "chc",
            "--watch",
            "--output-watch-events",
            "--no-headers",
        ],
    );
    let mut lines = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("initial line in time");
    assert!(first.expect("read").expect("line").starts_with("ADDED"));
    cli.kubectl_stdin(&["apply", "-f", "-"], &check("2m")).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_manages_builtin_resources() {
    let server = common::server().await;
    let cli = Cli::new(&server);
    cli.kubectl(&["create", "namespace", "team"]).await;
    cli.kubectl(&[
        "-n",
        "team",
        "create",
        "configmap",
        "settings",
        "--from-literal=a=1",
    ])
    .await;
    cli.kubectl(&[
        "-n",
        "team",
        "create",
        "secret",
        "generic",
        "token",
        "--from-literal=t=x",
    ])
    .await;
    cli.kubectl(&["-n", "team", "label", "configmap", "settings", "tier=front"])
        .await;
    let names = cli
        .kubectl(&[
            "-n",
            "team",
            "get",
            "cm,secret",
            "-l",
            "tier in (front)",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(names.trim(), "configmap/settings");
    let deployment = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: 'nginx:1', env: [{name: A, value: '1'}]}, {name: side, image: 'busybox'}]}
";
    cli.kubectl_stdin(&["apply", "-f", "-"], deployment).await;
    cli.kubectl_stdin(
        &["apply", "-f", "-"],
        &deployment
            .replace("replicas: 1", "replicas: 3")
            .replace("nginx:1", "nginx:2"),
    )
    .await;
    let got = cli
        .kubectl(&[
            "-n",
            "team",
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas} {.spec.template.spec.containers[*].image}",
        ])
        .await;
    assert_eq!(got, "3 nginx:2 busybox");
    let table = cli.kubectl(&["-n", "team", "get", "deploy"]).await;
    assert!(
        table.starts_with("NAME") && table.contains("READY") && table.contains("AGE"),
        "{table}"
    );
    cli.kubectl(&["delete", "namespace", "team"]).await;
    let out = cli
        .run("kubectl", &["-n", "team", "get", "cm", "settings"], "")
        .await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
}
