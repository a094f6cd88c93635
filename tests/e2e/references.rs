//! Secrets and ConfigMaps are read by name, in the check's own namespace only, cached for the
//! reference TTL, and their values never leave the target's request; the operator runs as the
//! chart's ServiceAccount against a server enforcing RBAC.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use canary_test_harness::{
    chart,
    cluster::{Cluster, config_map, enforcing, http_check, ready, secret},
    rbac,
    targets::{Ca, Leaf, Reply, TestServer, Transport, days, tls_config},
    wait::eventually,
};
use serde_json::{Value, json};

use crate::{SEC, Scenario};

const NS: &str = "refs";

/// An operator (reference TTL 1s) with checks that read a Secret header (`with-secret`), a
/// Secret in another namespace (`other-namespace`), a client certificate and CA for mTLS
/// (`mtls`) and a ConfigMap that does not exist (`missing-ca`).
struct Refs {
    s: Scenario,
    echo: TestServer,
    client: Leaf,
    _mtls: TestServer,
}

async fn mtls_server(server_ca: &Ca, client_ca: &Ca) -> TestServer {
    let leaf = server_ca.leaf(&["localhost"], days(-1), days(90));
    let config = tls_config(
        vec![leaf.der.clone()],
        leaf.key(),
        &[&rustls::version::TLS13],
        Some(client_ca.der.clone()),
    );
    TestServer::start(Transport::Tls(config), |_| Reply::ok("mtls ok")).await
}

fn header_from(name: &str, secret: &str) -> Value {
    let from = json!({"secretKeyRef": {"name": secret, "key": "token"}});
    json!({"http": {"headers": [{"name": name, "valueFrom": from}]}})
}

async fn refs() -> Refs {
    let echo = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let (server_ca, client_ca) = (Ca::root("Refs Server CA"), Ca::root("Refs Client CA"));
    let mtls = mtls_server(&server_ca, &client_ca).await;
    let client = client_ca.client("canary-probe");
    let mtls_url = format!("https://localhost:{}/", mtls.port());
    let ca = |name: &str| json!({"caBundle": {"configMapKeyRef": {"name": name, "key": "ca.crt"}}});
    let mut mtls_policy = ca("server-ca");
    mtls_policy["clientCertificate"] = json!({"secretName": "probe-mtls"});
    let key_pair = [
        ("tls.crt", client.pem.as_str()),
        ("tls.key", client.key_pem.as_str()),
    ];
    let objects = [
        secret(NS, "api-token", "Opaque", &[("token", "Bearer v1")]),
        config_map(NS, "server-ca", "ca.crt", &server_ca.pem),
        secret(NS, "probe-mtls", "kubernetes.io/tls", &key_pair),
        http_check(
            NS,
            "with-secret",
            &echo.url("/secret"),
            header_from("Authorization", "api-token"),
        ),
        http_check(
            NS,
            "other-namespace",
            &echo.url("/elsewhere"),
            header_from("X-Token", "elsewhere"),
        ),
        http_check(NS, "mtls", &mtls_url, json!({"tlsPolicy": mtls_policy})),
        http_check(
            NS,
            "missing-ca",
            &mtls_url,
            json!({"tlsPolicy": ca("no-such-configmap")}),
        ),
    ];
    // RBAC enforced, the operator as the chart (default values, cluster-wide) deploys it.
    let cluster = Cluster::with(enforcing()).await;
    cluster.namespace("other").await;
    cluster.as_chart_service_account("default", &[]).await;
    let elsewhere = secret(
        "other",
        "elsewhere",
        "Opaque",
        &[("token", "from-other-namespace")],
    );
    cluster.kubectl.apply(&[elsewhere]).await;
    let s = Scenario::on(cluster, NS, &["--reference-ttl", "1s"], &objects).await;
    Refs {
        s,
        echo,
        client,
        _mtls: mtls,
    }
}

impl Refs {
    /// The Authorization headers that reached the target of `with-secret`, oldest first.
    fn secret_headers(&self) -> Vec<String> {
        (self.echo.requests().iter())
            .filter(|r| r.path == "/secret")
            .map(|r| r.header("authorization").unwrap_or_default().to_string())
            .collect()
    }

    /// Rotates Secret `api-token` to "Bearer v2" and waits until the target receives it; how
    /// long that took.
    async fn rotate(&self) -> Duration {
        let v2 = secret(NS, "api-token", "Opaque", &[("token", "Bearer v2")]);
        self.s.cluster.kubectl.apply(&[v2]).await;
        let rotated = Instant::now();
        let what = "the rotated token at the target";
        eventually(
            10 * SEC,
            what,
            Duration::from_millis(100),
            async || match self.secret_headers().last() {
                Some(h) if h == "Bearer v2" => Ok(()),
                other => Err(format!("last: {other:?}")),
            },
        )
        .await;
        rotated.elapsed()
    }

    /// Waits until check `name` shows Ready=`status` with `reason`.
    async fn ready_as(&self, name: &str, status: &str, reason: &str) -> Value {
        self.s.watch.ready_as(name, status, reason).await
    }

    /// Waits until every check shows what its references lead to.
    async fn settled(&self) {
        for (name, status, reason) in [
            ("with-secret", "True", "Succeeded"),
            ("mtls", "True", "Succeeded"),
            ("other-namespace", "False", "ReferenceNotFound"),
            ("missing-ca", "False", "ReferenceNotFound"),
        ] {
            self.ready_as(name, status, reason).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_from_a_secret_reaches_the_target() {
    let refs = refs().await;
    refs.ready_as("with-secret", "True", "Succeeded").await;
    let headers = refs.secret_headers();
    assert!(headers.iter().all(|h| h == "Bearer v1"), "{headers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_uses_the_client_certificate_of_a_tls_secret_and_a_ca_from_a_config_map() {
    let refs = refs().await;
    let check = refs.ready_as("mtls", "True", "Succeeded").await;
    assert_eq!(check["status"]["tls"]["verified"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_elsewhere_or_missing_are_not_found_and_affect_no_other_check() {
    let refs = refs().await;
    // A Secret in another namespace is refused (looked up in the check's own namespace only),
    // a ConfigMap that does not exist is not found; the other checks pass.
    refs.settled().await;
    let check = (refs
        .s
        .watch
        .with(|seen| seen.get("other-namespace").cloned()))
    .unwrap();
    let (_, _, message) = ready(&check).unwrap();
    assert!(
        message.contains("elsewhere"),
        "message names the reference: {message}"
    );
    assert!(!message.contains("from-other-namespace"));
    let requests = refs.echo.requests();
    assert!(
        requests.iter().all(|r| r.path != "/elsewhere"),
        "no probe without its header"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_reaches_the_target_within_the_reference_ttl() {
    let refs = refs().await;
    refs.ready_as("with-secret", "True", "Succeeded").await;
    let took = refs.rotate().await;
    assert!(
        took < 5 * SEC,
        "rotation picked up after {took:?} (ttl 1s, interval 1s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_never_reach_logs_status_events_or_metrics() {
    let refs = refs().await;
    refs.settled().await;
    refs.rotate().await;
    let s = &refs.s;
    let scrape = s.operator.scrape().await.expect("scrape");
    let events = (s
        .cluster
        .kubectl
        .get_json(&["events.v1.events.k8s.io", "-n", NS])
        .await)
        .to_string();
    let statuses: Vec<String> = s.watch.with(|seen| {
        seen.history
            .iter()
            .map(|(_, _, o)| o["status"].to_string())
            .collect()
    });
    let client_key_line = refs
        .client
        .key_pem
        .lines()
        .nth(1)
        .unwrap_or("-")
        .to_string();
    let logs = s.operator.logs();
    for value in [
        "Bearer v1",
        "Bearer v2",
        "from-other-namespace",
        client_key_line.as_str(),
    ] {
        assert!(!logs.iter().any(|l| l.contains(value)), "{value:?} logged");
        assert!(
            !statuses.iter().any(|s| s.contains(value)),
            "{value:?} in status"
        );
        assert!(!events.contains(value), "{value:?} in an Event");
        assert!(!scrape.contains(value), "{value:?} in metrics");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_are_read_by_name_in_the_own_namespace_within_the_charts_rbac() {
    let refs = refs().await;
    refs.settled().await;
    let requests = refs.s.cluster.operator_requests();
    let reads: BTreeSet<String> = (requests.iter())
        .filter(|r| r.resource == "secrets" || r.resource == "configmaps")
        .map(|r| format!("{} {} {}/{}", r.verb, r.resource, r.namespace, r.name))
        .collect();
    let expected = [
        "get configmaps refs/no-such-configmap",
        "get configmaps refs/server-ca",
        "get secrets refs/api-token",
        "get secrets refs/elsewhere",
        "get secrets refs/probe-mtls",
    ];
    assert_eq!(
        reads.iter().collect::<Vec<_>>(),
        expected,
        "reference reads"
    );
    let is_token =
        |r: &&canary_test_apiserver::AuditRecord| r.resource == "secrets" && r.name == "api-token";
    let secret_reads = requests.iter().filter(is_token).count();
    let elapsed = requests.last().unwrap().received - requests.first().unwrap().received;
    assert!(
        (secret_reads as f64) <= elapsed.as_secs_f64() / 1.0 + 5.0,
        "Secrets are cached for the TTL: {secret_reads} reads in {elapsed:?}"
    );
    let grants = rbac::deployment_grants(&chart::render_in("default", &[]).await);
    let denied = rbac::denied(&requests, &grants);
    assert!(
        denied.is_empty(),
        "requests the chart's RBAC does not allow: {denied:#?}"
    );
    assert!(requests.iter().all(|r| r.code != 403));
}
