//! `canary check` as users run it: the real binary, exit codes 0/1/2, the JSON shape, errors
//! that name file, document and field, references from folders, a real resolver failing, and
//! the prober's own descriptor exhaustion reported as ProberError.

use std::{path::Path, process::Command};

use canary_test_harness::targets::{Reply, TestServer, Transport, closed_port};
use serde_json::Value;

const CANARY: &str = env!("CARGO_BIN_EXE_canary");

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn http_check(name: &str, url: &str, extra: &str) -> String {
    format!(
        "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  timeout: 3s\n  http:\n    url: {url}\n{extra}"
    )
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn canary(args: &[&str]) -> Run {
    run(Command::new(CANARY).args(args))
}

fn run(command: &mut Command) -> Run {
    let output = command.output().expect("run canary");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The items of `canary check -o json`'s `List`.
fn items(json: &str) -> Vec<Value> {
    let list: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(
        (&list["apiVersion"], &list["kind"]),
        (&"v1".into(), &"List".into()),
        "{json}"
    );
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {json}"))
        .clone()
}

fn reasons(json: &str) -> Vec<String> {
    items(json)
        .iter()
        .map(|o| {
            o["status"]["lastResult"]["reason"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_and_json_shape() {
    let server = TestServer::start(Transport::Plain, |r| match r.path.as_str() {
        "/ok" => Reply::ok("ok"),
        _ => Reply::status(500, "down"),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ok_url = format!("http://127.0.0.1:{}/ok", server.port());
    let bad_url = format!("http://127.0.0.1:{}/down", server.port());
    let passing = write(dir.path(), "ok.yaml", &http_check("api", &ok_url, ""));
    let run = canary(&["check", "-f", &passing]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("PASS") && run.stdout.contains("Succeeded"),
        "{}",
        run.stdout
    );

    let both = format!(
        "{}---\n{}",
        http_check("api", &ok_url, ""),
        http_check("down", &bad_url, "")
    );
    let mixed = write(dir.path(), "mixed.yaml", &both);
    let run = canary(&["check", "-f", &mixed, "-o", "json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let list = items(&run.stdout);
    assert_eq!(list.len(), 2);
    for object in &list {
        assert_eq!(object["apiVersion"], "canary.dev/v1alpha1");
        assert_eq!(object["kind"], "HealthCheck");
        assert_eq!(object["metadata"]["namespace"], "shop");
        assert!(object["spec"]["http"]["url"].is_string());
    }
    let (ok, down) = (&list[0]["status"], &list[1]["status"]);
    // What the operator writes besides the verdict: the target and who probed it.
    let target = format!("http://127.0.0.1:{}/ok", server.port());
    assert_eq!(ok["target"], target.as_str());
    assert!(
        ok["probedBy"].as_str().is_some_and(|who| !who.is_empty()),
        "{ok}"
    );
    assert_eq!(ok["conditions"][0]["type"], "Ready");
    assert_eq!(ok["conditions"][0]["status"], "True");
    assert_eq!(ok["lastResult"]["success"], true);
    assert_eq!(ok["lastResult"]["httpStatus"], 200);
    assert_eq!(ok["consecutiveSuccesses"], 1);
    assert_eq!(down["conditions"][0]["status"], "False");
    assert_eq!(down["conditions"][0]["reason"], "UnexpectedStatus");
    assert_eq!(down["consecutiveFailures"], 1);
    assert!(
        down["lastResult"]["duration"]
            .as_str()
            .unwrap()
            .ends_with('s')
    );

    let run = canary(&["check", "-f", dir.path().to_str().unwrap(), "-o", "yaml"]);
    assert_eq!(
        run.code, 2,
        "directories load every file; the duplicate shop/api is invalid input"
    );
    assert!(
        run.stderr.contains("duplicate HealthCheck shop/api"),
        "{}",
        run.stderr
    );
}

/// A json assertion that fails shows its path, expectation and the value found in the table
/// and in status; a header assertion fails with HeaderMismatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_header_failures_name_what_differed() {
    let server = TestServer::start(Transport::Plain, |_| {
        Reply::ok(r#"{"status":"UP","components":{"db":{"status":"DOWN"}}}"#)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/actuator/health", server.port());
    let json = "    expect:\n      json:\n        - {path: $.status, equals: UP}\n        - {path: $.components.db.status, in: [UP, UNKNOWN]}\n";
    let file = write(dir.path(), "json.yaml", &http_check("actuator", &url, json));
    let run = canary(&["check", "-f", &file]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("BodyMismatch"), "{}", run.stdout);
    assert!(
        run.stdout.contains("$.components.db.status"),
        "{}",
        run.stdout
    );
    let run = canary(&["check", "-f", &file, "-o", "json"]);
    let list: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        list["items"][0]["status"]["lastResult"]["message"],
        r#"$.components.db.status is "DOWN", expected one of ["UP","UNKNOWN"]"#
    );
    let headers = "    expect:\n      headers:\n        - {name: X-Version, absent: false}\n";
    let file = write(
        dir.path(),
        "headers.yaml",
        &http_check("hdr", &url, headers),
    );
    let run = canary(&["check", "-f", &file, "-o", "json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(reasons(&run.stdout), ["HeaderMismatch"]);
    let cel = "    expect:\n      cel: \"body.components.db.status == 'UP'\"\n";
    let file = write(dir.path(), "cel.yaml", &http_check("cel", &url, cel));
    let run = canary(&["check", "-f", &file, "-o", "json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let list: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        list["items"][0]["status"]["lastResult"]["message"],
        "cel `body.components.db.status == 'UP'` was false"
    );
}

#[test]
fn invalid_input_names_file_document_line_and_field_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    // Document 2 starts on line 8 of each file; its spec on line 11.
    let cases = [
        (
            "missing-url.yaml",
            "spec:\n  http: {method: GET}\n",
            "line 12: spec.http: missing field `url`",
        ),
        (
            "two-kinds.yaml",
            "spec:\n  tcp: {host: a, port: 1}\n  tls: {host: a, port: 1}\n",
            "exactly one of spec.http, spec.tcp, spec.tls, spec.dns, spec.grpc, spec.heartbeat or spec.cronJob",
        ),
        (
            "timeout.yaml",
            "spec:\n  interval: 5s\n  timeout: 5s\n  tcp: {host: a, port: 1}\n",
            "line 13: default/broken (invalid spec: spec.timeout",
        ),
        (
            "threshold.yaml",
            "spec:\n  failureThreshold: -1\n  tcp: {host: a, port: 1}\n",
            "line 12: default/broken (invalid spec: spec.failureThreshold",
        ),
        (
            "duration.yaml",
            "spec:\n  interval: 1d\n  tcp: {host: a, port: 1}\n",
            "line 12: default/broken (invalid spec: spec.interval",
        ),
        (
            "typo.yaml",
            "spec:\n  tcp: {host: a, port: 1, hots: b}\n",
            "line 12: spec.tcp.hots: unknown field (did you mean `host`?)",
        ),
        (
            "top-typo.yaml",
            "spce:\n  tcp: {host: a, port: 1}\n",
            "line 11: spce: unknown field (did you mean `spec`?)",
        ),
        (
            "port.yaml",
            "spec:\n  tcp: {host: a, port: http}\n",
            "line 12: spec.tcp.port: expected a port number (1 to 65535), got the string \"http\"",
        ),
        (
            "enum.yaml",
            "spec:\n  http: {url: 'http://a', method: FETCH}\n",
            "spec.http.method",
        ),
        (
            "json-path.yaml",
            "spec:\n  http: {url: 'http://a', expect: {json: [{path: '$.a', equals: 1}, {path: 'status', equals: UP}]}}\n",
            "spec.http.expect.json[1].path: invalid RFC 9535 JSONPath",
        ),
        (
            "json-predicates.yaml",
            "spec:\n  http: {url: 'http://a', expect: {json: [{path: '$.a', equals: 1, exists: true}]}}\n",
            "spec.http.expect.json[0]: exactly one of equals, in, exists, matches or count",
        ),
        (
            "json-regex.yaml",
            "spec:\n  http: {url: 'http://a', expect: {json: [{path: '$.a', matches: '('}]}}\n",
            "spec.http.expect.json[0].matches: invalid regular expression",
        ),
        (
            "cel-syntax.yaml",
            "spec:\n  http: {url: 'http://a', expect: {cel: \"body.status == \"}}\n",
            "spec.http.expect.cel: syntax error at line 1, column 16",
        ),
        (
            "cel-loops.yaml",
            "spec:\n  http: {url: 'http://a', expect: {cel: 'body.a.all(x, body.a.all(y, body.a.all(z, true)))'}}\n",
            "spec.http.expect.cel: comprehensions (all, exists, exists_one, map, filter) nested more than 2 deep",
        ),
        (
            "header-predicates.yaml",
            "spec:\n  http: {url: 'http://a', expect: {headers: [{name: ETag}]}}\n",
            "spec.http.expect.headers[0]: exactly one of equals, matches or absent",
        ),
    ];
    for (file, spec, expected) in cases {
        let text = format!(
            "# a first valid document\napiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {{name: fine}}\nspec:\n  tcp: {{host: a, port: 1}}\n---\napiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {{name: broken}}\n{spec}"
        );
        let path = write(dir.path(), file, &text);
        let run = canary(&["check", "-f", &path]);
        assert_eq!(run.code, 2, "{file}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!("{file}, document 2")),
            "{file}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(expected),
            "{file}: expected {expected:?} in {}",
            run.stderr
        );
    }
    let run = canary(&["check", "-f", "does-not-exist.yaml"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("does-not-exist.yaml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_resolve_from_folders_or_fail_clearly() {
    let server = TestServer::start(Transport::Plain, |r| match r.header("authorization") {
        Some("Bearer t0ken") => Reply::ok("ok"),
        _ => Reply::status(401, "no"),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/", server.port());
    let header = "    headers:\n      - name: Authorization\n        valueFrom: {secretKeyRef: {name: api-probe, key: token}}\n";
    let file = write(dir.path(), "secret.yaml", &http_check("api", &url, header));
    let run = canary(&["check", "-f", &file]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--secrets-dir"), "{}", run.stderr);
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(secrets.join("api-probe")).unwrap();
    let with_secrets = [
        "check",
        "-f",
        &file,
        "--secrets-dir",
        secrets.to_str().unwrap(),
    ];
    let run = canary(&with_secrets);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("Secret \"api-probe\" has no key \"token\""),
        "{}",
        run.stderr
    );
    std::fs::write(secrets.join("api-probe/token"), "Bearer t0ken\n").unwrap();
    let run = canary(&with_secrets);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

/// `canary check -f FILE -o json` of a check of an unresolvable host, run by `sh -c` after
/// `setup` (a bind mount over /etc/resolv.conf) in a private mount namespace; expected to report
/// a failure (exit code 1).
fn check_with_resolver(dir: &Path, setup: &str) -> Run {
    let check = http_check("dns", "http://no-such-host.canary.test/", "");
    let file = write(dir, "dns.yaml", &check);
    let script = format!("{setup} && exec {CANARY} check -f {file} -o json");
    let run = run(Command::new("unshare").args(["--mount", "sh", "-c", &script]));
    assert_eq!(
        run.code, 1,
        "needs root and util-linux unshare (scripts/test installs it): {}",
        run.stderr
    );
    run
}

#[test]
fn unresolvable_host_is_a_dns_error_from_the_real_resolver() {
    // Point the system resolver at loopback (nothing listens on port 53) in a private mount
    // namespace, so the lookup fails without any traffic beyond 127.0.0.1.
    let dir = tempfile::tempdir().unwrap();
    let resolv = write(
        dir.path(),
        "resolv.conf",
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    );
    let setup = format!("mount --bind {resolv} /etc/resolv.conf");
    let run = check_with_resolver(dir.path(), &setup);
    assert_eq!(reasons(&run.stdout), ["DNSError"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptor_exhaustion_is_the_probers_fault_never_the_targets() {
    let server = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let refused = closed_port().await;
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..8 {
        let port = if i % 2 == 0 { server.port() } else { refused };
        text.push_str(&format!(
            "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {{name: c{i}}}\nspec:\n  tcp: {{host: 127.0.0.1, port: {port}}}\n---\n"
        ));
    }
    let file = write(dir.path(), "many.yaml", &text);
    let mut prober_errors = 0;
    for limit in 4..48 {
        let run = run(Command::new("prlimit")
            .arg(format!("--nofile={limit}:{limit}"))
            .args(["--", CANARY, "check", "-f", &file, "-o", "json"]));
        if !run.stdout.trim_start().starts_with('{') {
            assert_ne!(run.code, 0, "limit {limit}: no report but success");
            continue;
        }
        for (i, reason) in reasons(&run.stdout).iter().enumerate() {
            let expected = if i % 2 == 0 {
                "Succeeded"
            } else {
                "ConnectionRefused"
            };
            assert!(
                reason == expected || reason == "ProberError",
                "limit {limit}, check c{i}: {reason}"
            );
            prober_errors += usize::from(reason == "ProberError");
        }
    }
    assert!(
        prober_errors > 0,
        "lowering RLIMIT_NOFILE never produced ProberError"
    );
}

#[test]
fn unreadable_resolver_configuration_is_the_probers_fault() {
    // /etc/resolv.conf replaced (in a private mount namespace) by a file that cannot be read:
    // the lookup fails, and the reason is the prober's environment, not the target. Without a
    // readable configuration glibc falls back to a resolver on loopback.
    let dir = tempfile::tempdir().unwrap();
    let setup = "mount --bind /proc/self/mem /etc/resolv.conf";
    let run = check_with_resolver(dir.path(), setup);
    assert_eq!(reasons(&run.stdout), ["ProberError"]);
    assert!(
        run.stdout.contains("cannot read /etc/resolv.conf"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_fleet_file_of_a_hundred_thousand_documents_loads() {
    // The YAML budget applies per document: a file listing a fleet is not an attack.
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::with_capacity(100_000 * 160);
    for i in 0..100_000 {
        text.push_str(&format!(
            "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {{name: c{i}, namespace: fleet}}\n\
             spec: {{suspend: true, tcp: {{host: 127.0.0.1, port: 9}}}}\n---\n"
        ));
    }
    let file = dir.path().join("fleet.yaml");
    std::fs::write(&file, text).unwrap();
    let loaded = canary_operator::files::load(&[file]).expect("a fleet file loads");
    assert_eq!(loaded.len(), 100_000);
    assert_eq!(loaded[99_999].key().name, "c99999");
}

/// The identity becomes the `reportingInstance` of the replica's Events: kube refuses more than
/// 128 bytes, so `canary operator` refuses it at start-up, naming why (before any API call).
#[test]
fn an_identity_kube_would_refuse_in_events_stops_the_operator_at_start_up() {
    let long = "p".repeat(129);
    for run in [
        canary(&["operator", "--leader-election-identity", &long]),
        run(Command::new(CANARY).arg("operator").env("POD_NAME", &long)),
        canary(&["operator", "--leader-election-identity", ""]),
    ] {
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(
            run.stderr.contains("--leader-election-identity")
                && (run.stderr.contains("129 bytes long, more than the 128 Kubernetes allows for an Event's reportingInstance")
                    || run.stderr.contains("must not be empty")),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_cronjob_check_needs_the_operator_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let text = "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {name: backup}\n\
                spec: {cronJob: {name: nightly-backup}}\n";
    let file = write(dir.path(), "cronjob.yaml", text);
    let out = canary(&["check", "-o", "json", "-f", &file]);
    // Invalid input: exit code 2, the file, the check and why.
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("default/backup"), "{}", out.stderr);
    assert!(
        out.stderr.contains("spec.cronJob: a cronJob check reads the CronJob and its Jobs from the API server: it runs only in the operator"),
        "{}",
        out.stderr
    );
}
