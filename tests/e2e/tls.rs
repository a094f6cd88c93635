//! HTTPS checks report the facts of the served certificate, and the reason when it is expired,
//! for another name or expiring soon; `kubectl get chc` shows them in its columns.

use canary_test_harness::{
    cluster::{config_map, http_check, secret, status_int},
    targets::{Ca, Leaf, Reply, TestServer, Transport, days},
};
use serde_json::{Value, json};

use crate::{SEC, Scenario, assert_close, https_check, is_age, is_duration_text, table, ts};

const NS: &str = "shop";

/// The test CA, in ConfigMap `test-ca` of [`NS`].
fn test_ca() -> (Ca, Value) {
    let ca = Ca::root("Lifecycle CA");
    let object = config_map(NS, "test-ca", "ca.crt", &ca.pem);
    (ca, object)
}

/// An operator probing check `name` of a server presenting a leaf of the test CA for `names`,
/// valid from `from_days` to `to_days` relative to now.
async fn one_https_check(
    name: &str,
    names: &[&str],
    from_days: i64,
    to_days: i64,
) -> (Scenario, Leaf, TestServer) {
    let (ca, ca_object) = test_ca();
    let leaf = ca.leaf(names, days(from_days), days(to_days));
    let server = TestServer::https(&leaf).await;
    let checks = [ca_object, https_check(NS, name, server.port())];
    let s = Scenario::start(NS, &[], &checks).await;
    (s, leaf, server)
}

/// Asserts the TLS facts in status are those of `leaf` (of the test CA), verified.
fn assert_facts_of(tls: &Value, leaf: &Leaf) {
    assert_eq!(tls["version"], "TLSv1.3", "{tls}");
    let text = |k: &str| tls[k].as_str().unwrap_or_default().to_string();
    assert!(text("cipherSuite").starts_with("TLS13_"), "{tls}");
    assert!(text("subject").contains("CN=localhost"), "{tls}");
    assert!(text("issuer").contains("CN=Lifecycle CA"), "{tls}");
    assert!(!text("serialNumber").is_empty(), "{tls}");
    assert_eq!(tls["dnsNames"], json!(["localhost"]), "{tls}");
    assert_eq!(tls["verified"], true, "{tls}");
    assert_close("notBefore", &tls["notBefore"], leaf.not_before);
    assert_close("notAfter", &tls["notAfter"], leaf.not_after);
    assert_close(
        "chainEarliestNotAfter",
        &tls["chainEarliestNotAfter"],
        leaf.not_after,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_https_check_is_ready_with_the_facts_of_the_served_certificate() {
    let (s, leaf, _server) = one_https_check("healthy", &["localhost"], -1, 90).await;
    s.operator.wait_ready(10 * SEC).await;
    let check = s.watch.ready_as("healthy", "True", "Succeeded").await;
    let status = &check["status"];
    assert_eq!(
        status["observedGeneration"],
        check["metadata"]["generation"]
    );
    let last = &status["lastResult"];
    assert_eq!(last["success"], true, "{status}");
    assert_eq!(last["httpStatus"], 200, "{status}");
    assert!(
        is_duration_text(last["duration"].as_str().unwrap_or_default()),
        "{status}"
    );
    assert!(last["phases"]["tls"].is_string(), "{status}");
    assert!(status_int(&check, "consecutiveSuccesses") >= 1);
    for time in ["lastRunTime", "lastSuccessTime", "nextRunTime"] {
        let _ = ts(&status[time]);
    }
    assert_facts_of(&status["tls"], &leaf);
}

/// An operator probing one HTTPS check of a leaf for `names` valid from `from_days` to
/// `to_days`, once it fails with `reason`: that status's TLS facts and the leaf.
async fn failing(names: &[&str], from_days: i64, to_days: i64, reason: &str) -> (Value, Leaf) {
    let (s, leaf, _server) = one_https_check("bad", names, from_days, to_days).await;
    let check = s.watch.ready_as("bad", "False", reason).await;
    // It fails with `reason` three times, and there is one Event of it.
    s.operator.wait_runs(NS, "bad", Some("failure"), 3.0).await;
    s.cluster
        .wait_events(NS, "bad", &[("Warning", reason, 1)])
        .await;
    (check["status"]["tls"].clone(), leaf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_fails_with_its_dates_reported_and_one_event() {
    let (tls, leaf) = failing(&["localhost"], -30, -1, "CertificateExpired").await;
    assert_close("expired notAfter", &tls["notAfter"], leaf.not_after);
    assert_eq!(tls["verified"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_fails_naming_the_served_names_and_one_event() {
    let (tls, _) = failing(&["other.example"], -1, 90, "CertificateHostnameMismatch").await;
    assert_eq!(tls["dnsNames"], json!(["other.example"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_expiring_soon_fails_with_its_expiry_and_one_event() {
    let (tls, leaf) = failing(&["localhost"], -1, 5, "CertificateExpiringSoon").await;
    assert_close("expiring notAfter", &tls["notAfter"], leaf.not_after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_shows_ready_reason_latency_certificate_expiry_and_ages() {
    let (ca, ca_object) = test_ca();
    let (healthy_leaf, expired_leaf) = (
        ca.leaf(&["localhost"], days(-1), days(90)),
        ca.leaf(&["localhost"], days(-30), days(-1)),
    );
    let (healthy, expired) = (
        TestServer::https(&healthy_leaf).await,
        TestServer::https(&expired_leaf).await,
    );
    let down = TestServer::start(Transport::Plain, |_| Reply::status(500, "down")).await;
    let checks = [
        ca_object,
        https_check(NS, "healthy", healthy.port()),
        https_check(NS, "expired", expired.port()),
        http_check(NS, "flaky", &down.url("/"), json!({})),
    ];
    let s = Scenario::start(NS, &[], &checks).await;
    s.watch.ready_as("healthy", "True", "Succeeded").await;
    s.watch
        .ready_as("expired", "False", "CertificateExpired")
        .await;
    s.watch.ready_as("flaky", "False", "UnexpectedStatus").await;
    let (header, rows) = table(&s.cluster.kubectl, s.ns, false).await;
    let columns = [
        "NAME",
        "READY",
        "REASON",
        "SINCE",
        "LATENCY",
        "CERT-EXPIRES",
        "LOCATIONS",
        "AGE",
    ];
    assert_eq!(header, columns);
    let row = |name: &str| {
        let found = rows.iter().find(|r| r[0] == name);
        found
            .unwrap_or_else(|| panic!("no row for {name}: {rows:?}"))
            .clone()
    };
    let healthy_row = row("healthy");
    assert_eq!(healthy_row.len(), 8, "{healthy_row:?}");
    assert_eq!(
        healthy_row[6], "",
        "a check without spec.locations: {healthy_row:?}"
    );
    assert_eq!(
        (healthy_row[1].as_str(), healthy_row[2].as_str()),
        ("True", "Succeeded")
    );
    assert!(is_duration_text(&healthy_row[4]), "{healthy_row:?}");
    let expires: jiff::Timestamp = healthy_row[5].parse().expect("CERT-EXPIRES is a timestamp");
    assert!((expires.as_second() - healthy_leaf.not_after.unix_timestamp()).abs() <= 1);
    assert!(
        is_age(&healthy_row[3]) && is_age(&healthy_row[7]),
        "{healthy_row:?}"
    );
    let flaky_row = row("flaky");
    let flaky_cells = (
        flaky_row[1].as_str(),
        flaky_row[2].as_str(),
        flaky_row[5].as_str(),
    );
    assert_eq!(flaky_cells, ("False", "UnexpectedStatus", ""));
    assert_eq!(row("expired")[2], "CertificateExpired");
}

/// A kubernetes.io/tls Secret of [`NS`] holding `leaf`, labelled for the reference gate when
/// `labelled`.
fn tls_secret(name: &str, leaf: &Leaf, labelled: bool) -> Value {
    let data = [
        ("tls.crt", leaf.pem.as_str()),
        ("tls.key", leaf.key_pem.as_str()),
    ];
    let mut object = secret(NS, name, "kubernetes.io/tls", &data);
    if labelled {
        object["metadata"]["labels"] = json!({"canary.dev/reference": "allowed"});
    }
    object
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_certificate_that_is_not_the_secrets_is_not_deployed() {
    let (ca, ca_object) = test_ca();
    let served = ca.leaf(&["localhost"], days(-30), days(60));
    let renewed = ca.leaf(&["localhost"], days(-1), days(89));
    let server = TestServer::https(&served).await;
    let expecting = |name: &str, secret: &str| {
        let mut check = https_check(NS, name, server.port());
        check["spec"]["tlsPolicy"]["expectServedCertificate"] =
            json!({"secretRef": {"name": secret}});
        check
    };
    let objects = [
        ca_object,
        tls_secret("renewed-tls", &renewed, true),
        tls_secret("served-tls", &served, true),
        tls_secret("unlabelled-tls", &served, false),
        expecting("stale", "renewed-tls"),
        expecting("current", "served-tls"),
        expecting("unlabelled", "unlabelled-tls"),
    ];
    let gate = ["--secret-reference-label", "canary.dev/reference=allowed"];
    let s = Scenario::start(NS, &gate, &objects).await;
    let stale = (s.watch)
        .ready_as("stale", "False", "CertificateNotDeployed")
        .await;
    let message = stale["status"]["lastResult"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("Secret \"renewed-tls\""), "{message}");
    assert_eq!(
        stale["status"]["tls"]["verified"], true,
        "facts still reported"
    );
    s.watch.ready_as("current", "True", "Succeeded").await;
    (s.watch)
        .ready_as("unlabelled", "False", "ReferenceForbidden")
        .await;
}
