//! The operator in-process against the local API server: watch faults that once made checks
//! stop silently. Each scenario asserts that every live check keeps running (its runs are
//! counted by the operator's own scheduler) and that a deleted check's runner, series and
//! status are gone.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use canary_operator::{
    api::{CheckKey, HealthCheck},
    controller::{Operator, Running, config::OperatorConfig},
};
use canary_test_harness::{cluster::Cluster, http, wait::eventually};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const SEC: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(100);
/// Checks per namespace.
const PER_NAMESPACE: usize = 5;

fn key(namespace: &str, name: &str) -> CheckKey {
    CheckKey {
        namespace: namespace.into(),
        name: name.into(),
    }
}

/// The local API server, the operator running in this process, and a target its checks dial.
struct Scenario {
    cluster: Cluster,
    client: kube::Client,
    operator: Option<Running>,
    target: SocketAddr,
    _listener: tokio::task::JoinHandle<()>,
}

/// A TCP check of `target` every second.
fn check(namespace: &str, name: &str, target: SocketAddr) -> HealthCheck {
    serde_json::from_value(json!({
        "apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"interval": "1s", "timeout": "500ms",
                 "tcp": {"host": target.ip().to_string(), "port": target.port()}}
    }))
    .expect("a HealthCheck")
}

/// Accepts and closes every connection (each TCP probe passes).
async fn target() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    (addr, task)
}

impl Scenario {
    /// The server with namespaces `a` and `b` holding `existing` checks each, before the
    /// operator starts.
    async fn new(existing: usize) -> Self {
        let cluster = Cluster::start().await;
        for namespace in ["a", "b"] {
            cluster.namespace(namespace).await;
        }
        let config = kube::Config::new(cluster.server.url().parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let (target, listener) = target().await;
        let scenario = Self {
            cluster,
            client,
            operator: None,
            target,
            _listener: listener,
        };
        for namespace in ["a", "b"] {
            for i in 0..existing {
                scenario.create(namespace, &format!("c{i}")).await;
            }
        }
        scenario
    }

    /// Starts the operator watching `namespaces` (all when empty).
    fn start(&mut self, namespaces: &[&str]) {
        let config = OperatorConfig {
            namespaces: namespaces.iter().map(|ns| ns.to_string()).collect(),
            ..OperatorConfig::test()
        };
        let operator = Operator::new(self.client.clone(), config);
        self.operator = Some(operator.start().expect("the operator starts"));
    }

    fn operator(&self) -> &Running {
        self.operator.as_ref().expect("started")
    }

    fn api(&self, namespace: &str) -> Api<HealthCheck> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn create(&self, namespace: &str, name: &str) {
        let object = check(namespace, name, self.target);
        (self
            .api(namespace)
            .create(&PostParams::default(), &object)
            .await)
            .unwrap_or_else(|e| panic!("creating {namespace}/{name}: {e}"));
    }

    async fn delete(&self, namespace: &str, name: &str) {
        (self
            .api(namespace)
            .delete(name, &DeleteParams::default())
            .await)
            .unwrap_or_else(|e| panic!("deleting {namespace}/{name}: {e}"));
    }

    fn runs(&self, keys: &[CheckKey]) -> BTreeMap<String, Option<u64>> {
        let scheduler = self.operator().scheduler();
        (keys.iter())
            .map(|key| (key.to_string(), scheduler.runs(key)))
            .collect()
    }

    /// Waits until every check in `keys` has run at least twice more than now.
    async fn all_advance(&self, keys: &[CheckKey], what: &str) {
        let before = self.runs(keys);
        eventually(15 * SEC, what, POLL, async || {
            let now = self.runs(keys);
            let behind: Vec<&String> = (now.iter())
                .filter(|(key, runs)| runs.unwrap_or(0) < before[*key].unwrap_or(0) + 2)
                .map(|(key, _)| key)
                .collect();
            match behind.is_empty() {
                true => Ok(()),
                false => Err(format!("not advancing: {behind:?} (runs {now:?})")),
            }
        })
        .await;
    }

    /// Waits until `key` has no runner, no series in `/metrics` and no object.
    async fn gone(&self, key: &CheckKey) {
        let metrics = self.operator().admin().metrics_addr;
        let series = format!(r#"name="{}",namespace="{}""#, key.name, key.namespace);
        eventually(10 * SEC, &format!("{key} gone"), POLL, async || {
            let scrape = http::get(metrics, "/metrics").await?.body;
            let runner = self.operator().scheduler().contains(key);
            let object = self.api(&key.namespace).get_opt(&key.name).await;
            let object = object.map_err(|e| e.to_string())?.is_some();
            match (runner, scrape.contains(&series), object) {
                (false, false, false) => Ok(()),
                state => Err(format!("runner, series, object: {state:?}")),
            }
        })
        .await;
    }

    async fn stop(mut self) {
        if let Some(operator) = self.operator.take() {
            operator.stop().await;
        }
    }
}

/// Every check of namespaces a and b, c0 to c{n-1}.
fn both(n: usize) -> Vec<CheckKey> {
    (["a", "b"].iter())
        .flat_map(|ns| (0..n).map(move |i| key(ns, &format!("c{i}"))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_that_exist_before_a_multi_namespace_operator_starts_all_run() {
    let mut scenario = Scenario::new(PER_NAMESPACE).await;
    scenario.start(&["a", "b"]);
    scenario
        .all_advance(&both(PER_NAMESPACE), "every existing check")
        .await;
    scenario.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_on_one_namespaces_watch_stops_no_check_of_the_other() {
    let mut scenario = Scenario::new(PER_NAMESPACE).await;
    scenario.start(&["a", "b"]);
    let keys = both(PER_NAMESPACE);
    scenario
        .all_advance(&keys, "every check before the fault")
        .await;
    scenario.delete("a", "c0").await;
    scenario.create("a", "new").await;
    scenario
        .cluster
        .server
        .expire_watches("/namespaces/a/healthchecks");
    let mut live: Vec<CheckKey> = keys.into_iter().filter(|k| *k != key("a", "c0")).collect();
    live.push(key("a", "new"));
    scenario
        .all_advance(&live, "every live check after a's relist")
        .await;
    scenario.gone(&key("a", "c0")).await;
    scenario.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_deleted_and_created_while_the_watch_is_down_are_stopped_and_started() {
    let mut scenario = Scenario::new(PER_NAMESPACE).await;
    scenario.start(&[]);
    let keys = both(PER_NAMESPACE);
    scenario
        .all_advance(&keys, "every check before the outage")
        .await;
    let server = &scenario.cluster.server;
    // Watches end and cannot come back (history gone: they must relist once they can).
    server.fail_next(1_000, 500, Some("watch=true"));
    server.compact_history();
    server.drop_watches();
    scenario.delete("b", "c1").await;
    scenario.create("b", "during").await;
    scenario.cluster.server.clear_faults();
    let mut live: Vec<CheckKey> = keys.into_iter().filter(|k| *k != key("b", "c1")).collect();
    live.push(key("b", "during"));
    scenario
        .all_advance(&live, "every live check after the relist")
        .await;
    scenario.gone(&key("b", "c1")).await;
    scenario.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_restarted_with_the_same_state_changes_nothing() {
    let mut scenario = Scenario::new(PER_NAMESPACE).await;
    scenario.start(&["a", "b"]);
    let keys = both(PER_NAMESPACE);
    scenario
        .all_advance(&keys, "every check before the restart")
        .await;
    scenario.cluster.server.restart().await.expect("restarts");
    scenario
        .all_advance(&keys, "every check after the restart")
        .await;
    scenario.create("a", "after").await;
    scenario
        .all_advance(&[key("a", "after")], "a check created after")
        .await;
    scenario.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_deleted_and_recreated_stops_every_check_then_runs_the_new_ones() {
    let mut scenario = Scenario::new(2).await;
    scenario.start(&[]);
    let keys = both(2);
    scenario
        .all_advance(&keys, "every check before the CRD goes")
        .await;
    let kubectl = &scenario.cluster.kubectl;
    kubectl
        .ok(&["delete", "crd", "healthchecks.canary.dev"])
        .await;
    for key in &keys {
        scenario.gone(key).await;
    }
    let crds = canary_test_harness::repo()
        .join("crds")
        .display()
        .to_string();
    kubectl.ok(&["apply", "-f", &crds]).await;
    let established = [
        "wait",
        "--for=condition=Established",
        "crd/healthchecks.canary.dev",
    ];
    kubectl.ok(&established).await;
    scenario.create("a", "again").await;
    scenario
        .all_advance(&[key("a", "again")], "a check of the new CRD")
        .await;
    scenario.stop().await;
}
