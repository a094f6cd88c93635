//! `canary discover` as users run it: the real binary, a table snapshot, YAML documents on
//! stdout with skips on stderr, `--run` against a loopback server with `canary check`'s exit
//! codes, and invalid input as exit code 2.

use std::{path::Path, process::Command};

use canary_test_harness::targets::{Reply, TestServer, Transport};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn canary(args: &[&str]) -> Run {
    let output = Command::new(CANARY)
        .args(args)
        .output()
        .expect("run canary");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

const MANIFESTS: &str = "\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  tls: [{hosts: [shop.example.test]}]
  rules:
    - host: shop.example.test
    - host: '*.example.test'
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  ports: [{name: http, port: 8080}, {name: dns, port: 53, protocol: UDP}]
";

const TABLE: &str = "\
NAMESPACE  NAME              KIND  TARGET                                   SOURCE
shop       ing-web-fc92e4d2  http  https://shop.example.test/               Ingress/web
shop       svc-api-50138ff9  http  http://api.shop.svc.cluster.local:8080/  Service/api
SKIPPED
NAMESPACE  SOURCE       HOST                        PATH  REASON               MESSAGE
shop       Ingress/web  *.example.test              -     WildcardHost         -
shop       Service/api  api.shop.svc.cluster.local  -     UnsupportedProtocol  port 53/UDP
";

#[test]
fn discover_prints_a_table_of_checks_and_skips() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "app.yaml", MANIFESTS);
    let run = canary(&["discover", "-f", &file]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, TABLE);
    // A folder reads the same; the cluster domain completes Service names.
    let dir_arg = dir.path().to_string_lossy().into_owned();
    let run = canary(&[
        "discover",
        "-f",
        &dir_arg,
        "--cluster-domain",
        "corp.internal",
    ]);
    assert!(
        run.stdout
            .contains("http://api.shop.svc.corp.internal:8080/"),
        "{}",
        run.stdout
    );
}

#[test]
fn discover_yaml_is_one_healthcheck_document_each_with_skips_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "app.yaml", MANIFESTS);
    let run = canary(&["discover", "-f", &file, "-o", "yaml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&run.stdout).unwrap();
    assert_eq!(documents.len(), 2, "{}", run.stdout);
    for doc in &documents {
        assert_eq!(doc["apiVersion"], "canary.dev/v1alpha1");
        assert_eq!(doc["kind"], "HealthCheck");
        assert_eq!(doc["metadata"]["labels"]["canary.dev/discovery"], "default");
        assert!(doc.get("status").is_none(), "{doc}");
    }
    assert_eq!(
        documents[0]["spec"]["http"]["url"],
        "https://shop.example.test/"
    );
    assert!(run.stderr.contains("WildcardHost"), "{}", run.stderr);
    assert!(run.stderr.contains("UnsupportedProtocol"), "{}", run.stderr);
    // What it prints, `canary check -f` takes as it is (parsed strictly, not run: the hosts
    // are not loopback).
    for doc in documents {
        let check = canary_operator::files::parse_document(doc).unwrap();
        canary_operator::api::validate(&check.spec).unwrap();
    }
}

/// A Gateway listener on the loopback server's port and an HTTPRoute at 127.0.0.1: `--run`
/// probes `http://127.0.0.1:PORT/<path>` and exits as `canary check` does.
fn route(port: u16, path: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: local, namespace: shop}}
spec:
  listeners: [{{name: http, protocol: HTTP, port: {port}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: app, namespace: shop}}
spec:
  parentRefs: [{{name: local}}]
  hostnames: [127.0.0.1]
  rules: [{{matches: [{{path: {{type: Exact, value: {path}}}}}]}}]
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_run_probes_the_generated_checks_with_check_exit_codes() {
    let server = TestServer::start(Transport::Plain, |r| match r.path.as_str() {
        "/ok" => Reply::ok("ok"),
        _ => Reply::status(500, "down"),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let passing = write(dir.path(), "ok.yaml", &route(server.port(), "/ok"));
    let run = canary(&["discover", "-f", &passing, "--run"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Succeeded"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains(&format!("http://127.0.0.1:{}/ok", server.port())),
        "{}",
        run.stdout
    );

    let failing = write(dir.path(), "down.yaml", &route(server.port(), "/down"));
    let run = canary(&["discover", "-f", &failing, "--run", "-o", "yaml"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let list: serde_json::Value = serde_saphyr::from_str(&run.stdout).unwrap();
    assert_eq!(
        list["items"][0]["status"]["lastResult"]["reason"], "UnexpectedStatus",
        "{}",
        run.stdout
    );

    // Offline the route is assumed accepted; told otherwise, it has no status: nothing to run.
    let run = canary(&[
        "discover",
        "-f",
        &passing,
        "--run",
        "--assume-accepted=false",
    ]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("NotAccepted"), "{}", run.stderr);
    assert!(
        run.stderr.contains("no HealthCheck generated"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_run_with_dial_load_balancer_reaches_the_gateway_address_as_the_routes_host() {
    let server = TestServer::start(Transport::Plain, |r| match r.header("host") {
        Some(host) if host.starts_with("app.test:") => Reply::ok("ok"),
        _ => Reply::status(421, "misdirected"),
    })
    .await;
    let port = server.port();
    let manifests = format!(
        "apiVersion: canary.dev/v1alpha1
kind: CheckDiscovery
metadata: {{name: lb, namespace: shop}}
spec: {{optIn: All, dial: LoadBalancer, sources: {{httpRoute: {{}}}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: local, namespace: shop}}
spec:
  listeners: [{{name: http, protocol: HTTP, port: {port}}}]
status:
  addresses: [{{type: IPAddress, value: 127.0.0.1}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: app, namespace: shop}}
spec:
  parentRefs: [{{name: local}}]
  hostnames: [app.test]
"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "lb.yaml", &manifests);
    let run = canary(&["discover", "-f", &path, "--run", "-o", "yaml"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let list: serde_json::Value = serde_saphyr::from_str(&run.stdout).unwrap();
    let check = &list["items"][0];
    assert_eq!(
        check["spec"]["http"]["connectTo"],
        format!("127.0.0.1:{port}")
    );
    assert_eq!(
        check["status"]["target"],
        format!("http://app.test:{port}/ via 127.0.0.1:{port}")
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn invalid_input_is_exit_code_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad_template = "apiVersion: canary.dev/v1alpha1
kind: CheckDiscovery
metadata: {name: bad, namespace: shop}
spec:
  sources: {service: {}}
  template: {http: {url: 'https://x.example.test/'}}
";
    let file = write(dir.path(), "bad.yaml", bad_template);
    let run = canary(&["discover", "-f", &file]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr
            .contains("CheckDiscovery shop/bad: spec.template.http.url"),
        "{}",
        run.stderr
    );

    let bad_service =
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: web}]}\n";
    let file = write(dir.path(), "service.yaml", bad_service);
    let run = canary(&["discover", "-f", &file]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr
            .contains("document 1: Service x: spec.ports[0].port"),
        "{}",
        run.stderr
    );

    let typo = "apiVersion: canary.dev/v1alpha1\nkind: CheckDiscovery\nmetadata: {name: d}\nspec: {sources: {service: {}}, optin: All}\n";
    let file = write(dir.path(), "typo.yaml", typo);
    let run = canary(&["discover", "-f", &file]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr
            .contains("CheckDiscovery d: spec.optin: unknown field"),
        "{}",
        run.stderr
    );

    let no_source = "apiVersion: canary.dev/v1alpha1\nkind: CheckDiscovery\nmetadata: {name: d}\nspec: {sources: {}, maxChecks: 0}\n";
    let file = write(dir.path(), "empty.yaml", no_source);
    let run = canary(&["discover", "-f", &file]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr.contains("spec.sources: name at least one"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("spec.maxChecks: 0 is not from 1 to 10000"),
        "{}",
        run.stderr
    );

    let run = canary(&["discover", "-f", "/nonexistent/manifests.yaml"]);
    assert_eq!(run.code, 2, "{}", run.stdout);
}

/// More documents than serde-saphyr's default budget allows in one file (1,024): the limits are
/// `canary check`'s, per document; without a CheckDiscovery nothing is cut at 200.
#[test]
fn a_file_of_thousands_of_objects_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let services: Vec<String> = (0..1500)
        .map(|i| format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: load}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n"))
        .collect();
    let file = write(dir.path(), "many.yaml", &services.join("---\n"));
    let run = canary(&["discover", "-f", &file]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.starts_with("load "))
            .count(),
        1500
    );
    assert!(!run.stdout.contains("TRUNCATED"), "{}", run.stdout);
}

/// The example folder, as the docs show it: an Ingress, an HTTPRoute and a GRPCRoute through a
/// Gateway in another namespace, and Services, only the annotated ones.
#[test]
fn the_example_folder_prints_its_checks_and_skips() {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/discovery/");
    let run = canary(&["discover", "-f", folder]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, EXAMPLE);
}

const EXAMPLE: &str = "\
NAMESPACE  NAME                     KIND  TARGET                                SOURCE
shop       gr-payments-025bec6a     grpc  payments.example.com:443              GRPCRoute/payments
shop       hr-api-9fc76f73          http  https://api.example.com/v1            HTTPRoute/api
shop       ing-storefront-e7f28b33  http  https://shop.example.com/             Ingress/storefront
shop       svc-payments-dfb505b0    grpc  payments.shop.svc.cluster.local:9090  Service/payments
SKIPPED
NAMESPACE  SOURCE              HOST                PATH       REASON            MESSAGE
shop       HTTPRoute/api       -                   /v2        ConditionalMatch  -
shop       Ingress/storefront  *.shop.example.com  -          WildcardHost      -
shop       Ingress/storefront  shop.example.com    /img/(.*)  RegexPath         ImplementationSpecific path with regex metacharacters
";
