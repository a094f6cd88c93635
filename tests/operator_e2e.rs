//! `canary operator` end to end (issue 5): the real binary as a child process against the local
//! API server (`tests/apiserver`), driven and observed with the real kubectl, scraped by a real
//! Prometheus, probing real loopback HTTP/TLS servers, with the API server's audit log as the
//! witness of what the operator asked for.
//!
//! Each test owns one API server and its operator(s) and runs its scenarios against them, so
//! independent tests run in parallel. Tools come from `scripts/test`; a missing one fails the
//! test.

mod operator;
mod support;

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, Ordering},
    },
    time::{Duration, Instant},
};

use base64::Engine as _;
use operator::{
    Cluster, describe, eventually, http_check, metrics, occurrences, process::Operator,
    prom::Prometheus, rbac, ready, status_int, watch::Watch,
};
use serde_json::{Value, json};
use support::{
    pki::{Ca, Leaf},
    server::{Reply, TestServer, Transport, tls_config},
};

const SEC: Duration = Duration::from_secs(1);

fn days(n: i64) -> time::Duration {
    time::Duration::days(n)
}

/// A TLS 1.3 server presenting `leaf`, answering 200 "ok".
async fn tls_server(leaf: &Leaf) -> TestServer {
    let config = tls_config(
        vec![leaf.der.clone()],
        leaf.key(),
        &[&rustls::version::TLS13],
        None,
    );
    TestServer::start(Transport::Tls(config), |_| Reply::ok("ok")).await
}

/// A plain HTTP server answering with the status held in `code`.
async fn switchable_server(code: &Arc<AtomicU16>) -> TestServer {
    let code = code.clone();
    TestServer::start(Transport::Plain, move |_| {
        Reply::status(code.load(Ordering::SeqCst), "switchable")
    })
    .await
}

fn config_map(namespace: &str, name: &str, key: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace}, "data": {key: value}})
}

fn secret(namespace: &str, name: &str, type_: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "type": type_,
        "metadata": {"name": name, "namespace": namespace}, "data": data})
}

/// `https://localhost:PORT/` trusting `ca` from ConfigMap `test-ca`.
fn https_check(namespace: &str, name: &str, port: u16) -> Value {
    http_check(
        namespace,
        name,
        &format!("https://localhost:{port}/"),
        json!({"tlsPolicy": {"caBundle": {"configMapKeyRef": {"name": "test-ca", "key": "ca.crt"}}}}),
    )
}

fn reason_is(
    seen: &operator::watch::Seen,
    name: &str,
    status: &str,
    reason: &str,
) -> Result<Value, String> {
    let check = seen.get(name).ok_or(format!("{name} not seen"))?;
    match ready(check) {
        Some((s, r, _)) if s == status && r == reason => Ok(check.clone()),
        _ => Err(describe(check)),
    }
}

/// Waits until `name` shows Ready=`status` with `reason`.
async fn wait_reason(watch: &Watch, name: &str, status: &str, reason: &str) -> Value {
    watch
        .until(
            20 * SEC,
            &format!("{name} Ready={status} {reason}"),
            |seen| reason_is(seen, name, status, reason),
        )
        .await
}

/// Waits until the operator's metrics count at least `at_least` runs of `name` (with `result`,
/// if given). Status counters stop at the thresholds (the writer skips beyond them), metrics
/// count every run.
async fn wait_runs(operator: &Operator, ns: &str, name: &str, result: Option<&str>, at_least: f64) {
    let mut labels = vec![("namespace", ns), ("name", name)];
    labels.extend(result.map(|r| ("result", r)));
    eventually(
        20 * SEC,
        &format!("{at_least} runs of {ns}/{name} ({result:?})"),
        Duration::from_millis(200),
        async || {
            let runs = operator
                .try_metric("canary_check_runs_total", &labels)
                .await?;
            if runs >= at_least {
                Ok(runs)
            } else {
                Err(format!("{runs} runs"))
            }
        },
    )
    .await;
}

/// Waits until the Events about `name` add up to exactly `want` (type, reason, occurrences).
async fn wait_events(cluster: &Cluster, namespace: &str, name: &str, want: &[(&str, &str, u64)]) {
    let mut want: Vec<(String, String, u64)> = want
        .iter()
        .map(|(t, r, n)| (t.to_string(), r.to_string(), *n))
        .collect();
    want.sort();
    eventually(
        15 * SEC,
        &format!("Events about {namespace}/{name}: {want:?}"),
        Duration::from_millis(300),
        async || {
            let got = occurrences(&cluster.events(namespace).await, name);
            if got == want {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        },
    )
    .await;
}

fn ts(value: &Value) -> jiff::Timestamp {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"))
        .parse()
        .unwrap_or_else(|e| panic!("bad timestamp {value}: {e}"))
}

fn assert_close(what: &str, got: &Value, want: time::OffsetDateTime) {
    let got = ts(got).as_second();
    let want = want.unix_timestamp();
    assert!((got - want).abs() <= 1, "{what}: {got} vs {want}");
}

fn is_duration_text(s: &str) -> bool {
    // "0.012s": seconds with millisecond precision, as the contract prints it.
    s.strip_suffix('s')
        .and_then(|n| n.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && a.chars().all(|c| c.is_ascii_digit())
                && b.len() == 3
                && b.chars().all(|c| c.is_ascii_digit())
        })
}

fn is_age(s: &str) -> bool {
    // kubectl ages: 0s, 5s, 2m3s, 4h ...
    !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_digit())
        && s.ends_with(['s', 'm', 'h', 'd'])
}

/// `kubectl get chc -n NS` as a header and rows of cells, cut at the header's column starts
/// (empty cells print as blanks).
async fn table(cluster: &Cluster, namespace: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let text = cluster.kubectl.ok(&["get", "chc", "-n", namespace]).await;
    let mut lines = text.lines();
    let header_line = lines.next().unwrap_or_default();
    let starts: Vec<usize> = header_line
        .char_indices()
        .filter(|(i, c)| !c.is_whitespace() && (*i == 0 || header_line.as_bytes()[i - 1] == b' '))
        .map(|(i, _)| i)
        .collect();
    let header = header_line.split_whitespace().map(str::to_string).collect();
    let rows = lines
        .map(|line| {
            (0..starts.len())
                .map(|c| {
                    let from = starts[c].min(line.len());
                    let to = starts
                        .get(c + 1)
                        .copied()
                        .unwrap_or(line.len())
                        .min(line.len());
                    line[from..to].trim().to_string()
                })
                .collect()
        })
        .collect();
    (header, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_healthchecks_are_rejected_by_the_api_server_naming_the_field() {
    let cluster = Cluster::start().await;
    let base = |spec: Value| {
        json!({"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
            "metadata": {"name": "bad", "namespace": "default"}, "spec": spec})
        .to_string()
    };
    let cases = [
        (
            json!({"interval": "soon", "http": {"url": "http://127.0.0.1/"}}),
            vec!["spec.interval"],
        ),
        (
            json!({"http": {"method": "GET"}}),
            vec!["spec.http.url", "Required value"],
        ),
        (
            json!({"http": {"url": "http://127.0.0.1/"}, "tcp": {"host": "db", "port": 5432}}),
            vec!["exactly one of spec.http, spec.tcp or spec.tls must be set"],
        ),
        (
            json!({"interval": "2s", "timeout": "5s", "http": {"url": "http://127.0.0.1/"}}),
            vec!["spec.timeout", "must be shorter than spec.interval"],
        ),
        (
            json!({"http": {"url": "http://127.0.0.1/", "headers": [{"name": "X", "value": "a",
                "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}}),
            vec![
                "spec.http.headers[0]",
                "exactly one of value or valueFrom must be set",
            ],
        ),
        (
            json!({"tcp": {"host": "db", "port": 70000}}),
            vec!["spec.tcp.port"],
        ),
        (
            json!({"bogus": true, "http": {"url": "http://127.0.0.1/"}}),
            vec!["unknown field \"spec.bogus\""],
        ),
    ];
    for (spec, wanted) in cases {
        let stderr = cluster
            .kubectl
            .fails(&["apply", "-f", "-"], &base(spec.clone()))
            .await;
        for want in wanted {
            assert!(
                stderr.contains(want),
                "{spec}: expected {want:?} in: {stderr}"
            );
        }
    }
    let stored = cluster
        .kubectl
        .ok(&["get", "chc", "-A", "-o", "name"])
        .await;
    assert!(stored.trim().is_empty(), "nothing stored: {stored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_report_health_tls_facts_and_transitions_follow_edits_and_stop_on_deletion() {
    let cluster = Cluster::start().await;
    let ns = "shop";
    cluster.namespace(ns).await;

    let ca = Ca::root("Lifecycle CA");
    let healthy_leaf = ca.leaf(&["localhost"], days(-1), days(90));
    let expired_leaf = ca.leaf(&["localhost"], days(-30), days(-1));
    let mismatch_leaf = ca.leaf(&["other.example"], days(-1), days(90));
    let expiring_leaf = ca.leaf(&["localhost"], days(-1), days(5));
    let healthy = tls_server(&healthy_leaf).await;
    let expired = tls_server(&expired_leaf).await;
    let mismatch = tls_server(&mismatch_leaf).await;
    let expiring = tls_server(&expiring_leaf).await;
    let flaky_code = Arc::new(AtomicU16::new(500));
    let flaky = switchable_server(&flaky_code).await;
    let edited_times: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let edited = {
        let times = edited_times.clone();
        TestServer::start(Transport::Plain, move |_| {
            times.lock().unwrap().push(Instant::now());
            Reply::ok("version-1")
        })
        .await
    };

    let operator = Operator::start(cluster.server.kubeconfig_path(), &[], &[]).await;
    let scrape_targets = [operator.metrics];
    let (prometheus, _) = tokio::join!(Prometheus::start(&scrape_targets), async {
        cluster
            .kubectl
            .apply(&[
                config_map(ns, "test-ca", "ca.crt", &ca.pem),
                https_check(ns, "healthy", healthy.port()),
                https_check(ns, "expired", expired.port()),
                https_check(ns, "mismatch", mismatch.port()),
                https_check(ns, "expiring", expiring.port()),
                http_check(
                    ns,
                    "flaky",
                    &format!("http://127.0.0.1:{}/", flaky.port()),
                    json!({}),
                ),
                http_check(
                    ns,
                    "edited",
                    &format!("http://127.0.0.1:{}/", edited.port()),
                    json!({"http": {"expect": {"bodyContains": "version-1"}}}),
                ),
            ])
            .await
    });
    let watch = Watch::start(cluster.kubectl.clone(), Some(ns));
    operator.wait_ready(10 * SEC).await;

    // A healthy HTTPS check: Ready=True with the TLS facts of the served certificate.
    let check = wait_reason(&watch, "healthy", "True", "Succeeded").await;
    let status = &check["status"];
    assert_eq!(
        status["observedGeneration"],
        check["metadata"]["generation"]
    );
    assert_eq!(status["lastResult"]["success"], true, "{status}");
    assert_eq!(status["lastResult"]["httpStatus"], 200, "{status}");
    assert!(
        is_duration_text(
            status["lastResult"]["duration"]
                .as_str()
                .unwrap_or_default()
        ),
        "{status}"
    );
    assert!(
        status["lastResult"]["phases"]["tls"].is_string(),
        "{status}"
    );
    assert!(status_int(&check, "consecutiveSuccesses") >= 1);
    for time in ["lastRunTime", "lastSuccessTime", "nextRunTime"] {
        let _ = ts(&status[time]);
    }
    let tls = &status["tls"];
    assert_eq!(tls["version"], "TLSv1.3", "{tls}");
    assert!(
        tls["cipherSuite"]
            .as_str()
            .is_some_and(|c| c.starts_with("TLS13_")),
        "{tls}"
    );
    assert!(
        tls["subject"]
            .as_str()
            .is_some_and(|s| s.contains("CN=localhost")),
        "{tls}"
    );
    assert!(
        tls["issuer"]
            .as_str()
            .is_some_and(|s| s.contains("CN=Lifecycle CA")),
        "{tls}"
    );
    assert!(
        tls["serialNumber"].as_str().is_some_and(|s| !s.is_empty()),
        "{tls}"
    );
    assert_eq!(tls["dnsNames"], json!(["localhost"]), "{tls}");
    assert_eq!(tls["verified"], true, "{tls}");
    assert_close("notBefore", &tls["notBefore"], healthy_leaf.not_before);
    assert_close("notAfter", &tls["notAfter"], healthy_leaf.not_after);
    assert_close(
        "chainEarliestNotAfter",
        &tls["chainEarliestNotAfter"],
        healthy_leaf.not_after,
    );

    // Expired, hostname mismatch, expiring soon and a 500 each show their reason; TLS facts are
    // reported even when verification fails.
    let check = wait_reason(&watch, "expired", "False", "CertificateExpired").await;
    assert_close(
        "expired notAfter",
        &check["status"]["tls"]["notAfter"],
        expired_leaf.not_after,
    );
    assert_eq!(check["status"]["tls"]["verified"], false);
    let check = wait_reason(&watch, "mismatch", "False", "CertificateHostnameMismatch").await;
    assert_eq!(check["status"]["tls"]["dnsNames"], json!(["other.example"]));
    let check = wait_reason(&watch, "expiring", "False", "CertificateExpiringSoon").await;
    assert_close(
        "expiring notAfter",
        &check["status"]["tls"]["notAfter"],
        expiring_leaf.not_after,
    );
    let check = wait_reason(&watch, "flaky", "False", "UnexpectedStatus").await;
    assert_eq!(check["status"]["lastResult"]["httpStatus"], 500);
    assert!(
        check["status"]["tls"].is_null(),
        "no TLS facts for plain HTTP"
    );
    wait_reason(&watch, "edited", "True", "Succeeded").await;

    // kubectl get chc: the printer columns with sensible values.
    let (header, rows) = table(&cluster, ns).await;
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "REASON",
            "LATENCY",
            "CERT-EXPIRES",
            "LAST-RUN",
            "AGE"
        ]
    );
    let row = |name: &str| {
        rows.iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("no row for {name}: {rows:?}"))
            .clone()
    };
    let healthy_row = row("healthy");
    assert_eq!(healthy_row.len(), 7, "{healthy_row:?}");
    assert_eq!(
        (healthy_row[1].as_str(), healthy_row[2].as_str()),
        ("True", "Succeeded")
    );
    assert!(is_duration_text(&healthy_row[3]), "{healthy_row:?}");
    let expires: jiff::Timestamp = healthy_row[4].parse().expect("CERT-EXPIRES is a timestamp");
    assert!((expires.as_second() - healthy_leaf.not_after.unix_timestamp()).abs() <= 1);
    assert!(
        is_age(&healthy_row[5]) && is_age(&healthy_row[6]),
        "{healthy_row:?}"
    );
    let flaky_row = row("flaky");
    assert_eq!(
        (
            flaky_row[1].as_str(),
            flaky_row[2].as_str(),
            flaky_row[4].as_str()
        ),
        ("False", "UnexpectedStatus", "")
    );
    assert_eq!(row("expired")[2], "CertificateExpired");

    // A target that recovers turns Ready=True again; an Event records each transition, once.
    wait_runs(&operator, ns, "flaky", Some("failure"), 3.0).await;
    flaky_code.store(200, Ordering::SeqCst);
    let check = wait_reason(&watch, "flaky", "True", "Succeeded").await;
    assert_eq!(status_int(&check, "consecutiveFailures"), 0);
    wait_events(
        &cluster,
        ns,
        "flaky",
        &[
            ("Warning", "UnexpectedStatus", 1),
            ("Normal", "Recovered", 1),
        ],
    )
    .await;
    for name in ["expired", "mismatch", "expiring"] {
        wait_runs(&operator, ns, name, Some("failure"), 3.0).await;
    }
    wait_events(
        &cluster,
        ns,
        "expired",
        &[("Warning", "CertificateExpired", 1)],
    )
    .await;
    wait_events(
        &cluster,
        ns,
        "mismatch",
        &[("Warning", "CertificateHostnameMismatch", 1)],
    )
    .await;
    wait_events(
        &cluster,
        ns,
        "expiring",
        &[("Warning", "CertificateExpiringSoon", 1)],
    )
    .await;
    let events = cluster.events(ns).await;
    assert!(
        occurrences(&events, "healthy").is_empty(),
        "no transition, no Event: {events:?}"
    );
    for e in &events {
        assert_eq!(e.regarding_kind, "HealthCheck", "{e:?}");
        assert!(!e.note.is_empty(), "{e:?}");
    }

    // Prometheus scrapes the operator: up == 1 and canary_check_success for the checks.
    eventually(
        30 * SEC,
        "Prometheus sees the operator and its checks",
        Duration::from_millis(500),
        async || {
            let up = prometheus.query("up{job=\"canary\"}").await?;
            if up.iter().map(|(_, v)| *v).collect::<Vec<_>>() != [1.0] {
                return Err(format!("up: {up:?}"));
            }
            let success = prometheus
                .query(&format!(
                    "canary_check_success{{job=\"canary\",namespace=\"{ns}\"}}"
                ))
                .await?;
            let value = |name: &str| {
                success
                    .iter()
                    .find(|(m, _)| m["name"] == name)
                    .map(|(_, v)| *v)
            };
            match (value("healthy"), value("expired"), value("flaky")) {
                (Some(1.0), Some(0.0), Some(1.0)) => Ok(()),
                _ => Err(format!("canary_check_success: {success:?}")),
            }
        },
    )
    .await;

    // Editing the spec takes effect: interval 1s -> 2s and a new expectation; observedGeneration
    // follows generation.
    let before: Vec<Instant> = edited_times.lock().unwrap().clone();
    assert!(before.len() >= 3, "edited probed {} times", before.len());
    let gaps: Vec<f64> = before
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    assert!(mean < 1.4, "1s interval: mean gap {mean:.2}s ({gaps:?})");
    cluster
        .kubectl
        .ok(&[
            "patch",
            "chc",
            "edited",
            "-n",
            ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"interval":"2s","timeout":"1s","http":{"expect":{"bodyContains":"version-2"}}}}"#,
        ])
        .await;
    let check = wait_reason(&watch, "edited", "False", "BodyMismatch").await;
    assert_eq!(check["metadata"]["generation"], 2);
    assert_eq!(
        check["status"]["observedGeneration"],
        2,
        "{}",
        describe(&check)
    );
    let edited_at = Instant::now();
    let after = eventually(
        15 * SEC,
        "4 runs at the new interval",
        Duration::from_millis(200),
        async || {
            let times: Vec<Instant> = edited_times
                .lock()
                .unwrap()
                .iter()
                .copied()
                .filter(|t| *t >= edited_at)
                .collect();
            if times.len() >= 4 {
                Ok(times)
            } else {
                Err(format!("{} runs", times.len()))
            }
        },
    )
    .await;
    let gaps: Vec<f64> = after
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    // A late run followed by an on-time one shortens one gap a little; a double run (old and
    // new runner both alive) would leave a gap near zero.
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    assert!(
        mean >= 1.7 && gaps.iter().all(|g| *g >= 1.2),
        "2s interval after the edit, no double runs: {gaps:?}"
    );

    // Deleting the HealthCheck stops probing and removes its metric series.
    let series = [("namespace", ns), ("name", "edited")];
    assert!(metrics::any_series_with(
        &operator.scrape().await.unwrap_or_default(),
        &series
    ));
    cluster
        .kubectl
        .ok(&["delete", "chc", "edited", "-n", ns])
        .await;
    eventually(
        10 * SEC,
        "edited's series removed",
        Duration::from_millis(200),
        async || {
            let text = operator.scrape().await.ok_or("no scrape")?;
            if metrics::any_series_with(&text, &series) {
                Err("series still exported".to_string())
            } else {
                Ok(())
            }
        },
    )
    .await;
    let probed = edited_times.lock().unwrap().len();
    // Absence can only be shown over time: two intervals of the deleted check.
    tokio::time::sleep(4 * SEC).await;
    assert_eq!(
        edited_times.lock().unwrap().len(),
        probed,
        "probing stopped after deletion"
    );
    let text = operator.scrape().await.expect("scrape");
    assert!(
        !metrics::any_series_with(&text, &series),
        "no series came back"
    );
    assert!(metrics::any_series_with(
        &text,
        &[("namespace", ns), ("name", "healthy")]
    ));
    assert_eq!(
        operator.health_code("/healthz").await,
        Some(200),
        "{}",
        operator.tail(20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_are_read_by_name_in_the_own_namespace_and_the_deny_list_holds() {
    let cluster = Cluster::start().await;
    let ns = "refs";
    cluster.namespace(ns).await;
    cluster.namespace("other").await;

    let echo = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let server_ca = Ca::root("Refs Server CA");
    let client_ca = Ca::root("Refs Client CA");
    let mtls_leaf = server_ca.leaf(&["localhost"], days(-1), days(90));
    let mtls = TestServer::start(
        Transport::Tls(tls_config(
            vec![mtls_leaf.der.clone()],
            mtls_leaf.key(),
            &[&rustls::version::TLS13],
            Some(client_ca.der.clone()),
        )),
        |_| Reply::ok("mtls ok"),
    )
    .await;
    let client = client_ca.client("canary-probe");
    let denied_addr: SocketAddr = "127.0.0.2:0".parse().unwrap();
    let denied = TestServer::start_on(denied_addr, Transport::Plain, |_| {
        Reply::ok("should not be reached")
    })
    .await;
    let denied_url = format!("http://127.0.0.2:{}/x", denied.port());
    let redirect = {
        let location = denied_url.clone();
        TestServer::start(Transport::Plain, move |_| Reply::redirect(302, &location)).await
    };

    let operator = Operator::start(
        cluster.server.kubeconfig_path(),
        &[
            "--reference-ttl",
            "1s",
            "--deny-cidrs",
            "169.254.0.0/16,127.0.0.2/32",
        ],
        &[],
    )
    .await;
    let echo_url = |path: &str| format!("http://127.0.0.1:{}/{path}", echo.port());
    let header_from = |name: &str, secret: &str| json!({"http": {"headers": [{"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": "token"}}}]}});
    cluster
        .kubectl
        .apply(&[
            secret(ns, "api-token", "Opaque", &[("token", "Bearer v1")]),
            secret("other", "elsewhere", "Opaque", &[("token", "from-other-namespace")]),
            config_map(ns, "server-ca", "ca.crt", &server_ca.pem),
            secret(
                ns,
                "probe-mtls",
                "kubernetes.io/tls",
                &[("tls.crt", &client.pem), ("tls.key", &client.key_pem)],
            ),
            http_check(ns, "with-secret", &echo_url("secret"), header_from("Authorization", "api-token")),
            http_check(ns, "other-namespace", &echo_url("elsewhere"), header_from("X-Token", "elsewhere")),
            http_check(
                ns,
                "mtls",
                &format!("https://localhost:{}/", mtls.port()),
                json!({"tlsPolicy": {"caBundle": {"configMapKeyRef": {"name": "server-ca", "key": "ca.crt"}},
                    "clientCertificate": {"secretName": "probe-mtls"}}}),
            ),
            http_check(
                ns,
                "missing-ca",
                &format!("https://localhost:{}/", mtls.port()),
                json!({"tlsPolicy": {"caBundle": {"configMapKeyRef": {"name": "no-such-configmap", "key": "ca.crt"}}}}),
            ),
            http_check(ns, "metadata", "http://169.254.169.254/latest/meta-data/", json!({})),
            http_check(ns, "denied", &denied_url, json!({})),
            http_check(ns, "denied-redirect", &format!("http://127.0.0.1:{}/", redirect.port()), json!({})),
        ])
        .await;
    let watch = Watch::start(cluster.kubectl.clone(), Some(ns));

    // A header from a Secret reaches the target.
    wait_reason(&watch, "with-secret", "True", "Succeeded").await;
    let secret_headers = || -> Vec<String> {
        echo.requests()
            .iter()
            .filter(|r| r.path == "/secret")
            .map(|r| r.header("authorization").unwrap_or_default().to_string())
            .collect()
    };
    assert!(
        secret_headers().iter().all(|h| h == "Bearer v1"),
        "{:?}",
        secret_headers()
    );
    // mTLS with the client certificate from a kubernetes.io/tls Secret, CA from a ConfigMap.
    let check = wait_reason(&watch, "mtls", "True", "Succeeded").await;
    assert_eq!(check["status"]["tls"]["verified"], true);

    // A Secret in another namespace is refused (looked up in the check's own namespace only),
    // and a missing ConfigMap is ReferenceNotFound too; neither affects other checks.
    let check = wait_reason(&watch, "other-namespace", "False", "ReferenceNotFound").await;
    let (_, _, message) = ready(&check).unwrap();
    assert!(
        message.contains("elsewhere"),
        "message names the reference: {message}"
    );
    assert!(!message.contains("from-other-namespace"));
    wait_reason(&watch, "missing-ca", "False", "ReferenceNotFound").await;
    assert!(
        echo.requests().iter().all(|r| r.path != "/elsewhere"),
        "no probe without its header"
    );

    // The deny list: the default entry (cloud metadata), a denied address, and the same address
    // reached through a redirect; the denied server never sees a request.
    wait_reason(&watch, "metadata", "False", "TargetDenied").await;
    wait_reason(&watch, "denied", "False", "TargetDenied").await;
    wait_reason(&watch, "denied-redirect", "False", "TargetDenied").await;
    assert!(!redirect.requests().is_empty(), "the first hop is allowed");
    assert_eq!(
        denied.accepted(),
        0,
        "the denied address was never connected to"
    );

    // Rotating the Secret changes what the target receives, within the reference TTL.
    cluster
        .kubectl
        .apply(&[secret(ns, "api-token", "Opaque", &[("token", "Bearer v2")])])
        .await;
    let rotated = Instant::now();
    eventually(
        10 * SEC,
        "the rotated token at the target",
        Duration::from_millis(100),
        async || {
            let headers = secret_headers();
            match headers.last() {
                Some(h) if h == "Bearer v2" => Ok(()),
                other => Err(format!("last: {other:?}")),
            }
        },
    )
    .await;
    let took = rotated.elapsed();
    assert!(
        took < 5 * SEC,
        "rotation picked up after {took:?} (ttl 1s, interval 1s)"
    );

    // A spec that slipped past the API server's validation shows InvalidSpec; others go on.
    cluster.server.set_validation(false);
    cluster
        .kubectl
        .apply(&[
            json!({"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
            "metadata": {"name": "slipped", "namespace": ns},
            "spec": {"interval": "1s", "timeout": "5s", "http": {"url": echo_url("slipped")}}}),
        ])
        .await;
    cluster.server.set_validation(true);
    let check = wait_reason(&watch, "slipped", "False", "InvalidSpec").await;
    let (_, _, message) = ready(&check).unwrap();
    assert!(
        message.contains("timeout"),
        "message names the field: {message}"
    );
    assert_eq!(
        check["status"]["observedGeneration"],
        check["metadata"]["generation"]
    );
    wait_events(&cluster, ns, "slipped", &[("Warning", "InvalidSpec", 1)]).await;
    let before = echo.requests().len();
    eventually(
        10 * SEC,
        "other checks keep running",
        Duration::from_millis(200),
        async || {
            let now = echo.requests().len();
            if now >= before + 2 {
                Ok(())
            } else {
                Err(format!("{now} requests"))
            }
        },
    )
    .await;
    assert!(
        echo.requests().iter().all(|r| r.path != "/slipped"),
        "an invalid spec is not probed"
    );
    // Re-resolving every second does not repeat the Event.
    tokio::time::sleep(3 * SEC).await;
    wait_events(&cluster, ns, "slipped", &[("Warning", "InvalidSpec", 1)]).await;
    assert!(
        operator.health_code("/healthz").await == Some(200),
        "{}",
        operator.tail(20)
    );

    // Secret values never reach logs, status, Events or metrics.
    let scrape = operator.scrape().await.expect("scrape");
    let events = cluster
        .kubectl
        .get_json(&["events.v1.events.k8s.io", "-n", ns])
        .await
        .to_string();
    let statuses: Vec<String> = watch.with(|seen| {
        seen.history
            .iter()
            .map(|(_, _, o)| o["status"].to_string())
            .collect()
    });
    let client_key_line = client.key_pem.lines().nth(1).unwrap_or("-").to_string();
    for value in [
        "Bearer v1",
        "Bearer v2",
        "from-other-namespace",
        client_key_line.as_str(),
    ] {
        assert!(
            !operator.logs().iter().any(|l| l.contains(value)),
            "{value:?} logged"
        );
        assert!(
            !statuses.iter().any(|s| s.contains(value)),
            "{value:?} in status"
        );
        assert!(!events.contains(value), "{value:?} in an Event");
        assert!(!scrape.contains(value), "{value:?} in metrics");
    }

    // What the operator asked for: Secrets and ConfigMaps only by name (get) in the check's own
    // namespace, never listed or watched; everything allowed by the chart's RBAC.
    let requests = cluster.operator_requests();
    let refs: Vec<String> = requests
        .iter()
        .filter(|r| r.resource == "secrets" || r.resource == "configmaps")
        .map(|r| format!("{} {} {}/{}", r.verb, r.resource, r.namespace, r.name))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        refs,
        [
            "get configmaps refs/no-such-configmap",
            "get configmaps refs/server-ca",
            "get secrets refs/api-token",
            "get secrets refs/elsewhere",
            "get secrets refs/probe-mtls",
        ],
        "reference reads"
    );
    let secret_reads = requests
        .iter()
        .filter(|r| r.resource == "secrets" && r.name == "api-token")
        .count();
    let elapsed = requests.last().unwrap().received - requests.first().unwrap().received;
    assert!(
        (secret_reads as f64) <= elapsed.as_secs_f64() / 1.0 + 5.0,
        "Secrets are cached for the TTL: {secret_reads} reads in {elapsed:?}"
    );
    let chart = rbac::render_chart("default", &[]).await;
    let denied_requests = rbac::denied(&requests, &rbac::rules(&chart));
    assert!(
        denied_requests.is_empty(),
        "requests the chart's RBAC does not allow: {denied_requests:#?}"
    );
    assert!(requests.iter().all(|r| r.code != 403));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_resumes_from_status_without_new_events_or_reset_counts() {
    let cluster = Cluster::start().await;
    let ns = "ops";
    cluster.namespace(ns).await;
    let failing_code = Arc::new(AtomicU16::new(500));
    let failing = switchable_server(&failing_code).await;
    let counting = TestServer::start(Transport::Plain, |_| Reply::status(503, "down")).await;
    let passing = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let arrivals: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let spread_target = {
        let arrivals = arrivals.clone();
        TestServer::start(Transport::Plain, move |r| {
            arrivals
                .lock()
                .unwrap()
                .push((r.path.clone(), Instant::now()));
            Reply::ok("ok")
        })
        .await
    };
    let spread: Vec<Value> = (0..20)
        .map(|i| {
            http_check(
                ns,
                &format!("spread-{i}"),
                &format!("http://127.0.0.1:{}/{i}", spread_target.port()),
                json!({"interval": "4s", "timeout": "1s"}),
            )
        })
        .collect();
    cluster.kubectl.apply(&spread).await;
    let kubeconfig = cluster.server.kubeconfig_path().to_path_buf();
    let mut first = Operator::start(&kubeconfig, &[], &[]).await;
    cluster
        .kubectl
        .apply(&[
            http_check(
                ns,
                "failing",
                &format!("http://127.0.0.1:{}/", failing.port()),
                json!({}),
            ),
            // Counted up to its threshold in status, one write per run: shows counts surviving
            // a restart, and the threshold reached across it.
            http_check(
                ns,
                "counting",
                &format!("http://127.0.0.1:{}/", counting.port()),
                json!({"failureThreshold": 6}),
            ),
            http_check(
                ns,
                "passing",
                &format!("http://127.0.0.1:{}/", passing.port()),
                json!({}),
            ),
        ])
        .await;
    let watch = Watch::start(cluster.kubectl.clone(), Some(ns));
    wait_reason(&watch, "failing", "False", "UnexpectedStatus").await;
    wait_reason(&watch, "passing", "True", "Succeeded").await;
    watch
        .until(20 * SEC, "counting at 2 failures", |seen| {
            let c = seen.get("counting").ok_or("not seen")?;
            (status_int(c, "consecutiveFailures") >= 2)
                .then_some(())
                .ok_or(describe(c))
        })
        .await;
    wait_events(
        &cluster,
        ns,
        "failing",
        &[("Warning", "UnexpectedStatus", 1)],
    )
    .await;
    let transition = |seen: &operator::watch::Seen, name: &str| {
        seen.get(name).and_then(|c| {
            c["status"]["conditions"][0]["lastTransitionTime"]
                .as_str()
                .map(str::to_string)
        })
    };
    let failing_since = watch.with(|s| transition(s, "failing"));

    // SIGTERM: exits 0 promptly.
    first.signal("TERM");
    let stopping = Instant::now();
    let exit = first.wait_exit(10 * SEC).await;
    assert!(
        exit.success(),
        "exit after SIGTERM: {exit:?}; logs:\n{}",
        first.tail(20)
    );
    assert!(
        stopping.elapsed() < 5 * SEC,
        "shutdown took {:?}",
        stopping.elapsed()
    );
    let counted = watch.with(|s| {
        s.get("counting")
            .map_or(0, |c| status_int(c, "consecutiveFailures"))
    });
    assert!(counted < 6, "restarted before the threshold: {counted}");

    // A new operator resumes from status: counts go on (the threshold of 6 is reached after
    // 6 failures in all, not 6 more), no new transition Events for what did not change.
    let second = Operator::start(&kubeconfig, &[], &[]).await;
    let resumed = Instant::now();
    let check = wait_reason(&watch, "counting", "False", "UnexpectedStatus").await;
    assert_eq!(status_int(&check, "consecutiveFailures"), 6);
    let runs_after_restart = second
        .metric_sum(
            "canary_check_runs_total",
            &[("namespace", ns), ("name", "counting")],
        )
        .await;
    assert!(
        runs_after_restart <= (6 - counted) as f64 + 1.0,
        "the threshold came {runs_after_restart} runs after the restart, {counted} had been counted ({:?})",
        resumed.elapsed()
    );
    // First runs after the restart are spread over the interval (4s), not all at once.
    let firsts = eventually(
        15 * SEC,
        "a first run of each spread check",
        Duration::from_millis(200),
        async || {
            let mut firsts: Vec<(String, Instant)> = Vec::new();
            for (path, at) in arrivals
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, at)| *at >= resumed)
            {
                if !firsts.iter().any(|(p, _)| p == path) {
                    firsts.push((path.clone(), *at));
                }
            }
            if firsts.len() == 20 {
                Ok(firsts)
            } else {
                Err(format!("{} of 20", firsts.len()))
            }
        },
    )
    .await;
    let mut times: Vec<Instant> = firsts.iter().map(|(_, t)| *t).collect();
    times.sort();
    let range = times[19] - times[0];
    let bunched = max_in_window(&times, Duration::from_millis(500));
    assert!(
        range >= Duration::from_millis(1500) && bunched <= 10,
        "first runs after the restart span {range:?}, {bunched} of 20 within 0.5s"
    );
    wait_runs(&second, ns, "failing", Some("failure"), 2.0).await;
    wait_runs(&second, ns, "passing", Some("success"), 2.0).await;
    watch.with(|seen| {
        let values: Vec<i64> = seen
            .versions("counting")
            .filter(|c| !c["status"].is_null())
            .map(|c| status_int(c, "consecutiveFailures"))
            .collect();
        assert!(
            values.windows(2).all(|w| w[1] >= w[0]),
            "counting was reset: {values:?}"
        );
        for name in ["failing", "passing"] {
            let readies: Vec<String> = seen
                .versions(name)
                .filter_map(|c| ready(c).map(|r| r.0))
                .skip_while(|r| r == "Unknown")
                .collect();
            assert!(
                readies.windows(2).all(|w| w[0] == w[1]),
                "{name} Ready flapped: {readies:?}"
            );
        }
    });
    assert_eq!(
        watch.with(|s| transition(s, "failing")),
        failing_since,
        "lastTransitionTime kept"
    );
    wait_events(
        &cluster,
        ns,
        "failing",
        &[("Warning", "UnexpectedStatus", 1)],
    )
    .await;
    wait_events(
        &cluster,
        ns,
        "counting",
        &[("Warning", "UnexpectedStatus", 1)],
    )
    .await;
    assert!(occurrences(&cluster.events(ns).await, "passing").is_empty());
    let mut second = second;
    assert!(second.running(), "operator alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_errors_dropped_watches_and_restarts_never_stop_probing_and_status_catches_up() {
    let mut cluster = Cluster::start().await;
    let ns = "faults";
    cluster.namespace(ns).await;
    let failing_code = Arc::new(AtomicU16::new(500));
    let failing = switchable_server(&failing_code).await;
    let passing = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let second = Operator::start(cluster.server.kubeconfig_path(), &[], &[]).await;
    cluster
        .kubectl
        .apply(&[
            http_check(
                ns,
                "failing",
                &format!("http://127.0.0.1:{}/", failing.port()),
                json!({}),
            ),
            http_check(
                ns,
                "passing",
                &format!("http://127.0.0.1:{}/", passing.port()),
                json!({}),
            ),
        ])
        .await;
    let watch = Watch::start(cluster.kubectl.clone(), Some(ns));
    wait_reason(&watch, "failing", "False", "UnexpectedStatus").await;
    wait_reason(&watch, "passing", "True", "Succeeded").await;
    wait_events(
        &cluster,
        ns,
        "failing",
        &[("Warning", "UnexpectedStatus", 1)],
    )
    .await;

    // Faults 1: status writes fail with 500s while the target recovers: probing goes on (metrics),
    // status catches up afterwards, one Recovered Event.
    let runs = second.runs(ns, "passing").await;
    cluster.server.fail_next(3, 500, Some("/status"));
    failing_code.store(200, Ordering::SeqCst);
    wait_probing(&second, ns, runs, 1.0, "runs during status-write errors").await;
    wait_reason(&watch, "failing", "True", "Succeeded").await;
    wait_events(
        &cluster,
        ns,
        "failing",
        &[
            ("Warning", "UnexpectedStatus", 1),
            ("Normal", "Recovered", 1),
        ],
    )
    .await;
    let injected = cluster
        .server
        .requests()
        .iter()
        .filter(|r| r.subresource == "status" && r.code == 500)
        .count();
    assert_eq!(injected, 3, "the operator met the injected errors");

    // Faults 2: watches dropped, history compacted (410 on resume) and the next lists/watches of
    // HealthChecks answered with 500s: a new check is still picked up.
    let all_checks = "/apis/canary.dev/v1alpha1/healthchecks?";
    cluster.server.fail_next(2, 500, Some(all_checks));
    cluster.server.compact_history();
    cluster.server.drop_watches();
    let late = TestServer::start(Transport::Plain, |_| Reply::ok("late")).await;
    cluster
        .kubectl
        .apply(&[http_check(
            ns,
            "late",
            &format!("http://127.0.0.1:{}/", late.port()),
            json!({}),
        )])
        .await;
    // kube-runtime's watcher backs off between attempts (and treats the 410 as one more
    // error), so this takes several seconds.
    watch
        .until(30 * SEC, "late picked up after the watch errors", |seen| {
            reason_is(seen, "late", "True", "Succeeded")
        })
        .await;
    let refused = cluster
        .operator_requests()
        .iter()
        .filter(|r| r.request_uri.contains(all_checks) && r.code == 500)
        .count();
    assert_eq!(
        refused, 2,
        "the operator met the injected list/watch errors"
    );

    // Faults 3: the API server goes away; probing goes on; it comes back on the same port and
    // status catches up.
    cluster.server.stop().await;
    let runs = second.runs(ns, "passing").await;
    failing_code.store(500, Ordering::SeqCst);
    wait_probing(&second, ns, runs, 0.0, "runs while the API server is down").await;
    cluster
        .server
        .restart()
        .await
        .expect("restart on the same port");
    watch
        .until(40 * SEC, "failing back to False after the outage", |seen| {
            reason_is(seen, "failing", "False", "UnexpectedStatus")
        })
        .await;
    // Nothing crashed; still healthy and ready.
    let mut second = second;
    assert!(second.running(), "operator alive");
    assert_eq!(
        second.health_code("/healthz").await,
        Some(200),
        "{}",
        second.tail(20)
    );
    assert_eq!(second.health_code("/readyz").await, Some(200));
}

/// How soon a standby must hold the Lease after the leader stops, with a 2s lease: the lease
/// runs out at most 2s after the leader's last renewal, the standby retries every third of the
/// duration, and kubectl polling adds a little.
const TAKEOVER: Duration = Duration::from_millis(3500);

/// Waits until check `passing` has run three more times than `runs` and check `failing`
/// reports `success`: probing goes on whatever the API server does.
async fn wait_probing(operator: &Operator, ns: &str, runs: f64, success: f64, what: &str) {
    eventually(10 * SEC, what, Duration::from_millis(200), async || {
        let passing = [("namespace", ns), ("name", "passing")];
        let now = operator
            .try_metric("canary_check_runs_total", &passing)
            .await?;
        let failing = [("namespace", ns), ("name", "failing")];
        let ok = operator
            .try_metric("canary_check_success", &failing)
            .await?;
        if now >= runs + 3.0 && ok == success {
            Ok(())
        } else {
            Err(format!("runs {now} (was {runs}), failing success {ok}"))
        }
    })
    .await;
}

async fn lease(cluster: &Cluster, name: &str) -> Option<Value> {
    let out = cluster
        .kubectl
        .run(&["get", "lease", name, "-n", "default", "-o", "json"], "")
        .await;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn holder(lease: &Option<Value>) -> String {
    lease
        .as_ref()
        .and_then(|l| l["spec"]["holderIdentity"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_and_the_other_takes_over_within_the_lease_duration() {
    let cluster = Cluster::start().await;
    let ns = "ha";
    cluster.namespace(ns).await;
    let chart = rbac::render_chart("default", &["--set", "replicaCount=2"]).await;
    let lease_name = rbac::lease_name(&chart).expect("the chart limits the Lease by name");
    let code = Arc::new(AtomicU16::new(200));
    let target = switchable_server(&code).await;
    let kubeconfig = cluster.server.kubeconfig_path().to_path_buf();
    let args = [
        "--leader-elect",
        "--leader-election-lease-duration",
        "2s",
        "--leader-election-lease-name",
        &lease_name,
        "--leader-election-namespace",
        "default",
    ];
    let a = Operator::start(&kubeconfig, &args, &[("POD_NAME", "replica-a")]).await;
    let b = Operator::start(&kubeconfig, &args, &[("POD_NAME", "replica-b")]).await;
    cluster
        .kubectl
        .apply(&[http_check(
            ns,
            "c1",
            &format!("http://127.0.0.1:{}/", target.port()),
            json!({}),
        )])
        .await;
    let watch = Watch::start(cluster.kubectl.clone(), Some(ns));
    // Every replica is ready once its cache synced, leader or not.
    a.wait_ready(10 * SEC).await;
    b.wait_ready(10 * SEC).await;
    wait_reason(&watch, "c1", "True", "Succeeded").await;
    let leader_name = eventually(
        10 * SEC,
        "a lease holder",
        Duration::from_millis(100),
        async || {
            let h = holder(&lease(&cluster, &lease_name).await);
            if h == "replica-a" || h == "replica-b" {
                Ok(h)
            } else {
                Err(format!("holder {h:?}"))
            }
        },
    )
    .await;
    let (leader, follower) = if leader_name == "replica-a" {
        (a, b)
    } else {
        (b, a)
    };
    let follower_name = if leader_name == "replica-a" {
        "replica-b"
    } else {
        "replica-a"
    }
    .to_string();

    // Exactly one probes: the leader's runs grow, the standby has none, and the target sees one
    // request per leader run.
    let (runs0, hits0) = (leader.runs(ns, "c1").await, target.requests().len());
    eventually(
        10 * SEC,
        "three leader runs",
        Duration::from_millis(200),
        async || {
            let runs = leader.runs(ns, "c1").await;
            if runs >= runs0 + 3.0 {
                Ok(())
            } else {
                Err(format!("{runs}"))
            }
        },
    )
    .await;
    let (runs1, hits1) = (leader.runs(ns, "c1").await, target.requests().len());
    assert_eq!(
        follower.runs(ns, "c1").await,
        0.0,
        "the standby does not probe"
    );
    let (leader_runs, hits) = (runs1 - runs0, (hits1 - hits0) as f64);
    assert!(
        hits <= leader_runs + 1.0,
        "target saw {hits} requests for {leader_runs} leader runs"
    );

    // A leader that stalls (SIGSTOP) loses the Lease to the standby; resumed, it finds the Lease
    // taken and stops its runners: still exactly one replica probes.
    leader.signal("STOP");
    let paused = Instant::now();
    eventually(
        10 * SEC,
        "the standby takes the Lease from the stalled leader",
        Duration::from_millis(50),
        async || {
            let h = holder(&lease(&cluster, &lease_name).await);
            if h == follower_name {
                Ok(())
            } else {
                Err(format!("holder {h:?}"))
            }
        },
    )
    .await;
    let stolen = paused.elapsed();
    println!("leader stalled: the standby held the lease after {stolen:?} (lease 2s)");
    assert!(
        stolen <= TAKEOVER,
        "takeover took {stolen:?} with a 2s lease"
    );
    wait_runs(&follower, ns, "c1", None, 2.0).await;
    leader.signal("CONT");
    // Stopped probing: its run count stays still for two and a half intervals (or its series
    // are gone), within a few lease durations of resuming.
    let until = Instant::now() + 10 * SEC;
    let (mut last, mut since) = (f64::NAN, Instant::now());
    loop {
        let runs = leader
            .metric_sum(
                "canary_check_runs_total",
                &[("namespace", ns), ("name", "c1")],
            )
            .await;
        if runs != last {
            (last, since) = (runs, Instant::now());
        } else if since.elapsed() >= Duration::from_millis(2500) {
            break;
        }
        assert!(
            Instant::now() < until,
            "the resumed old leader keeps probing ({runs} runs); logs:\n{}",
            leader.tail(20)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        holder(&lease(&cluster, &lease_name).await),
        follower_name,
        "the Lease stays with the new leader"
    );
    let (runs0, hits0) = (follower.runs(ns, "c1").await, target.requests().len());
    wait_runs(&follower, ns, "c1", None, runs0 + 3.0).await;
    let (runs1, hits1) = (follower.runs(ns, "c1").await, target.requests().len());
    let (leader_runs, hits) = (runs1 - runs0, (hits1 - hits0) as f64);
    assert!(
        hits <= leader_runs + 1.0,
        "after the stall: target saw {hits} requests for {leader_runs} leader runs"
    );
    let (leader, follower) = (follower, leader);
    let (_leader_name, follower_name) = (follower_name, leader_name);

    // Kill the leader: the standby takes over within the lease duration (2s) and probes.
    let mut leader = leader;
    leader.signal("KILL");
    let killed = Instant::now();
    eventually(
        10 * SEC,
        "the standby holds the lease",
        Duration::from_millis(50),
        async || {
            let h = holder(&lease(&cluster, &lease_name).await);
            if h == follower_name {
                Ok(())
            } else {
                Err(format!("holder {h:?}"))
            }
        },
    )
    .await;
    let takeover = killed.elapsed();
    leader.wait_exit(5 * SEC).await;
    println!("leader killed: the standby held the lease after {takeover:?} (lease 2s)");
    assert!(
        takeover <= TAKEOVER,
        "takeover took {takeover:?} with a 2s lease"
    );
    wait_runs(&follower, ns, "c1", None, 2.0).await;
    // The new leader writes status (the old one is dead): the target fails, status follows.
    code.store(500, Ordering::SeqCst);
    wait_reason(&watch, "c1", "False", "UnexpectedStatus").await;

    // SIGTERM on the leader: a pending status write is flushed, the Lease released, exit 0.
    // Slow API answers keep the write in flight when the signal arrives.
    cluster.server.set_latency(Duration::from_millis(300));
    code.store(200, Ordering::SeqCst);
    eventually(
        10 * SEC,
        "the recovery seen by the leader",
        Duration::from_millis(50),
        async || {
            let ok = follower
                .try_metric("canary_check_success", &[("namespace", ns), ("name", "c1")])
                .await?;
            if ok == 1.0 {
                Ok(())
            } else {
                Err(format!("success {ok}"))
            }
        },
    )
    .await;
    let mut new_leader = follower;
    new_leader.signal("TERM");
    let stopping = Instant::now();
    let exit = new_leader.wait_exit(10 * SEC).await;
    let shutdown = stopping.elapsed();
    assert!(
        exit.success(),
        "exit after SIGTERM: {exit:?}; logs:\n{}",
        new_leader.tail(20)
    );
    assert!(shutdown < 5 * SEC, "shutdown took {shutdown:?}");
    cluster.server.set_latency(Duration::ZERO);
    let check = cluster.check(ns, "c1").await;
    assert_eq!(
        ready(&check).map(|r| (r.0, r.1)),
        Some(("True".to_string(), "Succeeded".to_string())),
        "the pending write was flushed: {}",
        describe(&check)
    );
    let released = lease(&cluster, &lease_name).await;
    assert_eq!(holder(&released), "", "lease released: {released:?}");

    // Lease requests stay within the chart's leader-election Role.
    let denied = rbac::denied(&cluster.operator_requests(), &rbac::rules(&chart));
    assert!(
        denied.is_empty(),
        "requests the chart's RBAC does not allow: {denied:#?}"
    );
}

/// Whether writes at `times` fit a token bucket of `qps` and `burst` (plus `slack` tokens for
/// network jitter between the client's limiter and the server's clock). Returns the first
/// violation.
fn token_bucket_violation(times: &[Instant], qps: f64, burst: f64, slack: f64) -> Option<String> {
    let capacity = burst + slack;
    let mut tokens = capacity;
    let mut last = *times.first()?;
    for (i, t) in times.iter().enumerate() {
        tokens = (tokens + (*t - last).as_secs_f64() * qps).min(capacity);
        last = *t;
        if tokens < 1.0 - 1e-9 {
            return Some(format!(
                "write #{i} at +{:?} exceeds the bucket",
                *t - times[0]
            ));
        }
        tokens -= 1.0;
    }
    None
}

fn max_in_window(times: &[Instant], window: Duration) -> usize {
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] > window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_writes_stay_under_the_rate_limit_with_500_checks_at_1s() {
    const CHECKS: usize = 500;
    const QPS: f64 = 25.0;
    const BURST: f64 = 50.0;
    let cluster = Cluster::start().await;
    let ns = "load";
    cluster.namespace(ns).await;
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let operator = Operator::start(
        cluster.server.kubeconfig_path(),
        &["--status-write-qps", "25", "--status-write-burst", "50"],
        &[],
    )
    .await;
    operator.wait_ready(10 * SEC).await;
    let checks: Vec<Value> = (0..CHECKS)
        .map(|i| {
            http_check(
                ns,
                &format!("c{i:03}"),
                &format!("http://127.0.0.1:{}/c{i}", target.port()),
                json!({}),
            )
        })
        .collect();
    let applied = Instant::now();
    cluster
        .kubectl
        .ok_stdin(
            &["apply", "--server-side", "-f", "-"],
            &operator::list(&checks),
        )
        .await;
    let apply_took = applied.elapsed();
    let all_ready = eventually(120 * SEC, "all 500 Ready=True", SEC, async || {
        let out = cluster
            .kubectl
            .ok(&["get", "chc", "-n", ns, "-o", r#"jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#])
            .await;
        let ready = out.lines().filter(|l| *l == "True").count();
        if ready == CHECKS { Ok(applied.elapsed()) } else { Err(format!("{ready}/{CHECKS} Ready")) }
    })
    .await;
    // Keep going a little to see the steady state.
    let steady_from = Instant::now();
    let runs0 = operator
        .metric_sum("canary_check_runs_total", &[("namespace", ns)])
        .await;
    tokio::time::sleep(5 * SEC).await;
    let runs1 = operator
        .metric_sum("canary_check_runs_total", &[("namespace", ns)])
        .await;
    let requests = cluster.operator_requests();
    let writes: Vec<Instant> = requests
        .iter()
        .filter(|r| {
            r.resource == "healthchecks"
                && r.subresource == "status"
                && matches!(r.verb.as_str(), "patch" | "update")
        })
        .map(|r| r.received)
        .collect();
    let steady = writes.iter().filter(|t| **t >= steady_from).count() as f64 / 5.0;
    let busiest = max_in_window(&writes, SEC);
    let span = (*writes.last().unwrap() - writes[0]).as_secs_f64();
    println!(
        "500 checks: apply {apply_took:?}, all Ready after {all_ready:?}; {} status writes over {span:.1}s \
         (mean {:.1}/s, busiest 1s window {busiest}, steady state {steady:.1}/s); runs {:.0}/s",
        writes.len(),
        writes.len() as f64 / span.max(1e-9),
        (runs1 - runs0) / 5.0
    );
    assert!(
        writes.len() >= CHECKS,
        "every check got its status written: {}",
        writes.len()
    );
    // Coalesced (latest wins) and skipped when nothing but timestamps changed: about one write
    // per check although each ran many times while waiting for its turn.
    assert!(
        writes.len() <= CHECKS + CHECKS / 5,
        "status writes are coalesced: {} writes for {CHECKS} checks",
        writes.len()
    );
    assert_eq!(
        token_bucket_violation(&writes, QPS, BURST, 2.0),
        None,
        "status writes exceed {QPS}/s with burst {BURST}"
    );
    assert!(
        busiest as f64 <= QPS + BURST + 2.0,
        "busiest second: {busiest} writes"
    );
    let spec_writes: Vec<_> = requests
        .iter()
        .filter(|r| {
            r.resource == "healthchecks"
                && r.subresource.is_empty()
                && !matches!(r.verb.as_str(), "get" | "list" | "watch")
        })
        .collect();
    assert!(
        spec_writes.is_empty(),
        "the operator never writes spec/metadata: {spec_writes:?}"
    );
    assert!(
        runs1 - runs0 >= 0.5 * CHECKS as f64 * 5.0,
        "probing is not held back by status writes: {:.0} runs in 5s",
        runs1 - runs0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_with_a_few_checks_uses_little_cpu() {
    let cluster = Cluster::start().await;
    let ns = "quiet";
    cluster.namespace(ns).await;
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let operator = Operator::start(cluster.server.kubeconfig_path(), &[], &[]).await;
    let names: Vec<String> = (0..5).map(|i| format!("q{i}")).collect();
    let checks: Vec<Value> = names
        .iter()
        .map(|n| {
            http_check(
                ns,
                n,
                &format!("http://127.0.0.1:{}/{n}", target.port()),
                json!({}),
            )
        })
        .collect();
    cluster.kubectl.apply(&checks).await;
    let watch = Watch::start(cluster.kubectl.clone(), Some(ns));
    for name in &names {
        wait_reason(&watch, name, "True", "Succeeded").await;
    }
    let (cpu0, _) = operator.usage().expect("/proc of the operator");
    let from = Instant::now();
    // CPU use can only be measured over a span of time: three intervals of the checks.
    tokio::time::sleep(3 * SEC).await;
    let (cpu1, rss) = operator.usage().expect("/proc of the operator");
    let share = (cpu1 - cpu0).as_secs_f64() / from.elapsed().as_secs_f64();
    println!(
        "5 checks at 1s: {:.1}% of a core, RSS {} KiB",
        share * 100.0,
        rss / 1024
    );
    assert!(
        share < 0.3,
        "the operator used {:.0}% of a core for 5 checks at a 1s interval (a busy loop? e.g. a \
         select! branch that is always ready); CPU ticks per thread: {:?}",
        share * 100.0,
        operator.thread_ticks()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_list_limits_what_the_operator_watches_and_reads() {
    let cluster = Cluster::start().await;
    for ns in ["team-a", "team-b", "team-c"] {
        cluster.namespace(ns).await;
    }
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let operator = Operator::start(
        cluster.server.kubeconfig_path(),
        &["--namespaces", "team-a,team-b"],
        &[],
    )
    .await;
    let checks: Vec<Value> = ["team-a", "team-b", "team-c"]
        .iter()
        .map(|ns| {
            http_check(
                ns,
                "web",
                &format!("http://127.0.0.1:{}/{ns}", target.port()),
                json!({"http": {"headers": [{"name": "X-Token",
                    "valueFrom": {"secretKeyRef": {"name": "token", "key": "token"}}}]}}),
            )
        })
        .collect();
    let secrets: Vec<Value> = ["team-a", "team-b", "team-c"]
        .iter()
        .map(|ns| secret(ns, "token", "Opaque", &[("token", ns)]))
        .collect();
    cluster.kubectl.apply(&secrets).await;
    cluster.kubectl.apply(&checks).await;
    let watch = Watch::start(cluster.kubectl.clone(), None);
    for ns in ["team-a", "team-b"] {
        watch
            .until(20 * SEC, &format!("{ns}/web Ready"), |seen| {
                reason_is(seen, &format!("{ns}/web"), "True", "Succeeded")
            })
            .await;
    }
    operator.wait_ready(10 * SEC).await;
    // Absence over time: three intervals without a status or a probe for team-c.
    tokio::time::sleep(3 * SEC).await;
    watch.with(|seen| {
        let c = seen.get("team-c/web").expect("team-c/web exists");
        assert!(
            c["status"].is_null(),
            "team-c is not watched: {}",
            describe(c)
        );
    });
    assert!(
        target.requests().iter().all(|r| r.path != "/team-c"),
        "team-c is never probed"
    );
    let requests = cluster.operator_requests();
    let namespaces: BTreeSet<String> = requests
        .iter()
        .filter(|r| r.is_resource_request() && r.resource != "leases")
        .map(|r| r.namespace.clone())
        .collect();
    assert_eq!(
        namespaces,
        BTreeSet::from(["team-a".to_string(), "team-b".to_string()]),
        "no cluster-wide or other-namespace requests: {requests:#?}"
    );
    let chart = rbac::render_chart("default", &["--set", "watchNamespaces={team-a,team-b}"]).await;
    let rules = rbac::rules(&chart);
    assert!(
        rules.iter().all(|r| r.namespace.is_some()),
        "only Roles: {rules:?}"
    );
    let denied = rbac::denied(&requests, &rules);
    assert!(
        denied.is_empty(),
        "requests the chart's namespaced RBAC does not allow: {denied:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_during_an_api_server_outage_is_recorded_as_an_event_afterwards() {
    let mut cluster = Cluster::start().await;
    let ns = "outage";
    cluster.namespace(ns).await;
    let code = Arc::new(AtomicU16::new(200));
    let target = switchable_server(&code).await;
    let operator = Operator::start(cluster.server.kubeconfig_path(), &[], &[]).await;
    cluster
        .kubectl
        .apply(&[http_check(
            ns,
            "web",
            &format!("http://127.0.0.1:{}/", target.port()),
            json!({}),
        )])
        .await;
    let watch = Watch::start(cluster.kubectl.clone(), Some(ns));
    wait_reason(&watch, "web", "True", "Succeeded").await;
    cluster.server.stop().await;
    code.store(500, Ordering::SeqCst);
    eventually(
        10 * SEC,
        "the failure seen while the API server is down",
        Duration::from_millis(100),
        async || {
            let ok = operator
                .try_metric(
                    "canary_check_success",
                    &[("namespace", ns), ("name", "web")],
                )
                .await?;
            if ok == 0.0 {
                Ok(())
            } else {
                Err(format!("success {ok}"))
            }
        },
    )
    .await;
    // Long enough for the operator to try (and fail) to publish the Event.
    wait_runs(&operator, ns, "web", Some("failure"), 3.0).await;
    cluster
        .server
        .restart()
        .await
        .expect("restart on the same port");
    watch
        .until(40 * SEC, "status caught up after the outage", |seen| {
            reason_is(seen, "web", "False", "UnexpectedStatus")
        })
        .await;
    // Like status, the Event is retried rather than lost.
    let want = vec![("Warning".to_string(), "UnexpectedStatus".to_string(), 1)];
    let until = Instant::now() + 20 * SEC;
    loop {
        let got = occurrences(&cluster.events(ns).await, "web");
        if got == want {
            break;
        }
        if Instant::now() >= until {
            let logs: Vec<String> = operator
                .logs()
                .into_iter()
                .filter(|l| l.contains("Event"))
                .collect();
            panic!(
                "the Event for a transition during the outage: want {want:?}, got {got:?}; \
                 operator log lines about Events: {logs:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
