//! Spokes (`--location` with `--hub-kubeconfig`): two operator processes, locations `a` and
//! `b`, spokes of one hub: the same local API server as their own cluster (a cluster can be
//! its own hub), or a second one (to take the hub down alone). They probe a loopback target
//! that fails the requests whose User-Agent names replica `spoke-b`, and write one CheckReport
//! per (check, location).

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use canary_test_apiserver::{Options, Server};
use canary_test_harness::{
    cluster::{Cluster, http_check, secret},
    operator::Operator,
    targets::{Reply, TestServer, Transport},
    tools::Kubectl,
    wait::eventually,
};
use serde_json::{Value, json};

use crate::{SEC, operator};

const NS: &str = "located";

/// The spokes' own cluster, the hub, the target, and the spokes of `a` and `b`.
struct Spokes {
    cluster: Cluster,
    /// A hub apart from `cluster`; `None`: `cluster` is the hub.
    hub: Option<Server>,
    hub_kubectl: Arc<Kubectl>,
    /// The hub's kubeconfig.
    hub_config: std::path::PathBuf,
    target: TestServer,
    /// Set: the target fails `spoke-a`'s requests too.
    fail_a: Arc<AtomicBool>,
    a: Operator,
    b: Operator,
}

impl Spokes {
    /// Spokes of `cluster` itself, or (`apart`) of a hub of their own.
    async fn start(apart: bool) -> Self {
        let cluster = Cluster::start().await;
        let hub = match apart {
            true => Some(hub().await),
            false => None,
        };
        let hub_kubectl = match &hub {
            Some(server) => Arc::new(Kubectl::new(server.kubeconfig_path())),
            None => cluster.kubectl.clone(),
        };
        let hub_config = (hub.as_ref())
            .map_or(cluster.kubeconfig(), |h| h.kubeconfig_path())
            .to_path_buf();
        hub_kubectl.ok(&["create", "namespace", NS]).await;
        let fail_a = Arc::new(AtomicBool::new(false));
        let fails = fail_a.clone();
        let target = TestServer::start(Transport::Plain, move |request| {
            let agent = request.header("user-agent").unwrap_or_default();
            let a_fails = fails.load(Ordering::SeqCst) && agent.contains("(spoke-a)");
            if request.path == "/with-secret" {
                return match request.header("x-token") {
                    Some("s3cret") => Reply::ok("ok"),
                    _ => Reply::status(401, "no token"),
                };
            }
            match agent.contains("(spoke-b)") || a_fails {
                true => Reply::status(503, "not from here"),
                false => Reply::ok("ok"),
            }
        })
        .await;
        let thresholds = json!({"failureThreshold": 2});
        let mut both = http_check(NS, "both", &target.url("/both"), thresholds);
        both["spec"]["locations"] = json!({"names": ["a", "b"]});
        let mut only_a = http_check(NS, "only-a", &target.url("/only-a"), json!({}));
        only_a["spec"]["locations"] = json!({"names": ["a"]});
        // A header from a Secret that exists only in the hub.
        let token = secret(NS, "probe-token", "Opaque", &[("token", "s3cret")]);
        let from = json!({"secretKeyRef": {"name": "probe-token", "key": "token"}});
        let header = json!({"http": {"headers": [{"name": "X-Token", "valueFrom": from}]}});
        let mut with_secret = http_check(NS, "with-secret", &target.url("/with-secret"), header);
        with_secret["spec"]["locations"] = json!({"names": ["a"]});
        hub_kubectl.apply(&[token, both, only_a, with_secret]).await;
        let a = spoke(&cluster, &hub_config, "a").await;
        let b = spoke(&cluster, &hub_config, "b").await;
        Self {
            cluster,
            hub,
            hub_kubectl,
            hub_config,
            target,
            fail_a,
            a,
            b,
        }
    }

    /// The CheckReports in the namespace, by name (with their managedFields).
    async fn reports(&self) -> BTreeMap<String, Value> {
        let list = (self.hub_kubectl)
            .get_json(&["checkreports.canary.dev", "-n", NS, "--show-managed-fields"])
            .await;
        (list["items"].as_array().expect("items").iter())
            .map(|r| {
                (
                    r["metadata"]["name"].as_str().unwrap().to_string(),
                    r.clone(),
                )
            })
            .collect()
    }

    /// Waits until report `name` says `ready` for `reason`; returns it.
    async fn report_as(&self, name: &str, ready: &str, reason: &str) -> Value {
        let what = format!("CheckReport {name} {ready} {reason}");
        eventually(30 * SEC, &what, Duration::from_millis(200), async || {
            let reports = self.reports().await;
            let report = reports.get(name).ok_or(format!("none; {reports:?}"))?;
            let status = &report["status"];
            match (status["ready"].as_str(), status["reason"].as_str()) {
                (Some(r), Some(why)) if r == ready && why == reason => Ok(report.clone()),
                _ => Err(format!("{status}")),
            }
        })
        .await
    }
}

/// A second local API server with the CRDs, as a hub.
async fn hub() -> Server {
    let server = canary_test_apiserver::start(Options::default()).await;
    let server = server.expect("the hub's API server starts");
    let crds = canary_test_harness::repo()
        .join("crds")
        .display()
        .to_string();
    let kubectl = Kubectl::new(server.kubeconfig_path());
    kubectl.ok(&["apply", "-f", &crds]).await;
    let established = ["wait", "--for=condition=Established", "crd", "--all"];
    kubectl.ok(&established).await;
    server
}

/// An operator of `cluster` with location `location` (replica `spoke-<location>`), a spoke
/// of the hub `hub` (a kubeconfig).
async fn spoke(cluster: &Cluster, hub: &Path, location: &str) -> Operator {
    spoke_with(cluster, hub, location, &[]).await
}

/// The same, with more arguments.
pub(crate) async fn spoke_with(
    cluster: &Cluster,
    hub: &Path,
    location: &str,
    more: &[&str],
) -> Operator {
    let hub = hub.display().to_string();
    let identity = format!("spoke-{location}");
    let args = [
        "--location",
        location,
        "--hub-kubeconfig",
        &hub,
        "--leader-election-identity",
        &identity,
    ];
    operator(cluster).args(&args).args(more).process().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_location_reports_its_own_verdict_on_the_checks_that_list_it() {
    let mut s = Spokes::start(false).await;
    let checks = (s.hub_kubectl)
        .get_json(&["healthchecks.canary.dev", "both", "-n", NS])
        .await;
    let uid = checks["metadata"]["uid"].as_str().expect("uid").to_string();
    let a = s.report_as("both.a", "True", "Succeeded").await;
    let b = s.report_as("both.b", "False", "UnexpectedStatus").await;
    for (report, location) in [(&a, "a"), (&b, "b")] {
        let owner = &report["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "HealthCheck", "{report}");
        assert_eq!(owner["uid"], uid.as_str(), "{report}");
        let spec = &report["spec"];
        assert_eq!(spec["check"], "both");
        assert_eq!(spec["location"], location);
        assert_eq!(
            spec["heartbeatSeconds"], 300,
            "--status-heartbeat's default"
        );
        let probed_by = format!("spoke-{location}");
        assert_eq!(report["status"]["probedBy"], probed_by.as_str());
        let managers = report["metadata"]["managedFields"].to_string();
        assert!(
            managers.contains(&format!("canary-spoke-{location}")),
            "{managers}"
        );
    }
    // failureThreshold 2: b's report turned False only at the second failure in a row.
    let failures = b["status"]["consecutiveFailures"].as_i64().unwrap();
    assert!(failures >= 2, "{b}");
    assert_eq!(a["status"]["consecutiveFailures"], 0);
    s.report_as("only-a.a", "True", "Succeeded").await;
    restarted_spoke_resumes_from_its_report(&mut s).await;
    // A report deleted by hand is written again (its status write finds it gone).
    s.hub_kubectl
        .ok(&["delete", "checkreports.canary.dev", "both.a", "-n", NS])
        .await;
    s.fail_a.store(true, Ordering::SeqCst);
    s.report_as("both.a", "False", "UnexpectedStatus").await;
    s.fail_a.store(false, Ordering::SeqCst);
    assert!(
        !s.reports().await.contains_key("only-a.b"),
        "b wrote a report for a check not listing it"
    );
    // Deleting the check collects its reports (ownerReference) and stops the spokes' runners.
    s.hub_kubectl
        .ok(&["delete", "healthchecks.canary.dev", "both", "-n", NS])
        .await;
    eventually(20 * SEC, "the reports of both collected", SEC, async || {
        let names: Vec<String> = s.reports().await.into_keys().collect();
        match names.iter().any(|n| n.starts_with("both.")) {
            true => Err(format!("{names:?}")),
            false => Ok(()),
        }
    })
    .await;
    for spoke in [&s.a, &s.b] {
        eventually(
            10 * SEC,
            "the runner of both stopped",
            SEC / 5,
            async || {
                let runs = spoke
                    .metric_sum("canary_check_runs_total", &[("name", "both")])
                    .await;
                match runs {
                    0.0 => Ok(()),
                    n => Err(format!("{n} runs still exported")),
                }
            },
        )
        .await;
    }
    assert!(
        !s.reports().await.contains_key("both.a"),
        "a report came back after its check was deleted"
    );
}

/// Spoke b restarted: its runner resumes from its report (the failure count goes on, the
/// verdict never leaves False on the way).
async fn restarted_spoke_resumes_from_its_report(s: &mut Spokes) {
    let before = s.report_as("both.b", "False", "UnexpectedStatus").await;
    let failures = before["status"]["consecutiveFailures"].as_i64().unwrap();
    s.b.terminate().await;
    s.b = spoke(&s.cluster, &s.hub_config, "b").await;
    let what = "b's report written again by the new process, count going on";
    eventually(30 * SEC, what, Duration::from_millis(100), async || {
        let reports = s.reports().await;
        let status = &reports["both.b"]["status"];
        assert_eq!(status["ready"], "False", "b's verdict left False: {status}");
        match status["consecutiveFailures"].as_i64().unwrap() > failures {
            true => Ok(()),
            false => Err(format!("{status} (was {failures} failures)")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoke_keeps_probing_while_the_hub_is_down_and_reports_resume() {
    let mut s = Spokes::start(true).await;
    s.report_as("both.a", "True", "Succeeded").await;
    // Its reference resolved where the check lives: the Secret is only in the hub.
    s.report_as("with-secret.a", "True", "Succeeded").await;
    let hub = s.hub.as_mut().expect("a hub apart");
    hub.stop().await;
    s.fail_a.store(true, Ordering::SeqCst);
    let labels = [("namespace", NS), ("name", "both")];
    let before = s.a.metric_sum("canary_check_runs_total", &labels).await;
    // `a` sees the failure while the hub is down: runs go on and metrics say so.
    s.a.wait_success(NS, "both", 0.0).await;
    let after = s.a.metric_sum("canary_check_runs_total", &labels).await;
    assert!(after >= before + 1.0, "runs {before} -> {after}");
    // Its own cluster answering, the spoke stays healthy with the hub down.
    assert_eq!(
        s.a.health_code("/healthz").await,
        Some(200),
        "{}",
        s.a.tail(20)
    );
    assert_eq!(
        s.a.health_code("/readyz").await,
        Some(200),
        "{}",
        s.a.tail(20)
    );
    let hub = s.hub.as_mut().expect("a hub apart");
    hub.restart().await.expect("restart on the same port");
    s.report_as("both.a", "False", "UnexpectedStatus").await;
    assert!(s.a.running() && s.b.running(), "both spokes alive");
    // Only spoke runners probed (the spokes' own cluster has no checks): b never probed the
    // check that does not list it, and nothing was written into the spokes' own cluster.
    let b_probed_only_a = (s.target.requests().iter())
        .filter(|r| r.path == "/only-a")
        .filter(|r| {
            r.header("user-agent")
                .is_some_and(|ua| ua.contains("(spoke-b)"))
        })
        .count();
    assert_eq!(b_probed_only_a, 0, "spoke b probed a check not listing b");
    assert!(
        s.target.requests().iter().any(|r| r.path == "/only-a"),
        "a probed only-a"
    );
    let own = (s.cluster.kubectl)
        .get_json(&["checkreports.canary.dev", "--all-namespaces"])
        .await;
    assert_eq!(
        own["items"],
        json!([]),
        "reports went to the spokes' own cluster"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_of_a_location_share_its_checks_in_a_ring_of_their_own() {
    let cluster = Cluster::start().await;
    cluster.namespace(NS).await;
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let checks: Vec<Value> = (0..16)
        .map(|i| {
            let mut check = http_check(NS, &format!("c{i}"), &target.url("/"), json!({}));
            check["spec"]["locations"] = json!({"names": ["a", "b"]});
            check
        })
        .collect();
    cluster.kubectl.apply(&checks).await;
    let hub = cluster.kubeconfig().display().to_string();
    let mut replicas = Vec::new();
    for (location, identity) in [("a", "a1"), ("a", "a2"), ("b", "b1")] {
        let args = [
            "--location",
            location,
            "--hub-kubeconfig",
            &hub,
            "--leader-election-identity",
            identity,
            "--sharding",
            "shards",
            "--leader-election-lease-duration",
            "6s",
        ];
        replicas.push(operator(&cluster).args(&args).process().await);
    }
    let what = "every report written, a's shared by a1 and a2, b's all by b1";
    eventually(60 * SEC, what, Duration::from_millis(500), async || {
        let list = (cluster.kubectl)
            .get_json(&["checkreports.canary.dev", "-n", NS])
            .await;
        let mut by: BTreeMap<(String, String), usize> = BTreeMap::new();
        for report in list["items"].as_array().unwrap() {
            let location = report["spec"]["location"].as_str().unwrap_or_default();
            let prober = report["status"]["probedBy"].as_str().unwrap_or_default();
            *by.entry((location.into(), prober.into())).or_default() += 1;
        }
        let count = |l: &str, p: &str| by.get(&(l.into(), p.into())).copied().unwrap_or(0);
        let shared = count("a", "a1") > 0 && count("a", "a2") > 0;
        match (
            count("a", "a1") + count("a", "a2"),
            count("b", "b1"),
            shared,
        ) {
            (16, 16, true) if by.len() == 3 => Ok(()),
            _ => Err(format!("{by:?}")),
        }
    })
    .await;
    let leases = (cluster.kubectl)
        .get_json(&["leases", "-n", "default"])
        .await;
    let rings: BTreeMap<String, String> = (leases["items"].as_array().unwrap().iter())
        .filter_map(|lease| {
            let holder = lease["spec"]["holderIdentity"].as_str()?;
            let ring = lease["metadata"]["labels"]["canary.dev/ring"].as_str()?;
            Some((holder.to_string(), ring.to_string()))
        })
        .collect();
    let want = [
        ("a1", "canary-operator.a"),
        ("a2", "canary-operator.a"),
        ("b1", "canary-operator.b"),
    ];
    let want: BTreeMap<String, String> = (want.iter())
        .map(|(h, r)| (h.to_string(), r.to_string()))
        .collect();
    assert_eq!(
        rings, want,
        "each location's replicas in a ring of their own"
    );
}
