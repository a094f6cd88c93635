//! The `canary` binary run as the chart's Deployment runs it (its rendered flags and env, a
//! clean environment, its ServiceAccount's identity) against the chart installed with helm
//! into a local API server that enforces RBAC: its probes, checks, Events, metrics and Lease,
//! its shutdown, and its API calls against its ServiceAccount's RBAC (the server answers 403
//! to anything else; its audit log shows what was asked).

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use canary_test_harness::{
    chart::{self, NAMESPACE, RELEASE, args, container, render},
    cluster::{Cluster, config_map, enforcing, healthcheck, secret},
    metrics,
    operator::{Launch, Operator, free_port},
    rbac::{self, Access},
    targets::{Ca, Reply, TestServer, Transport},
    wait::eventually,
};
use serde_json::{Value, json};

use crate::CANARY;

/// The pod name the test pretends the Deployment's pod has (`POD_NAME`).
const POD_NAME: &str = "canary-operator-6d5f8b7c9d-x7k2p";
const SEC: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(100);

/// The chart installed with default values and the operator running as its Deployment would.
pub(crate) struct Deployed {
    pub(crate) cluster: Cluster,
    pub(crate) objects: Vec<Value>,
    pub(crate) operator: Operator,
    lease: String,
}

/// Installs the chart with helm (`values`: extra helm arguments) and checks it installs what
/// `helm template` renders.
async fn install(cluster: &Cluster, values: &[&str]) -> Vec<Value> {
    chart::install(cluster.kubeconfig(), values).await;
    let objects = render(values).await;
    let args_path = "jsonpath={.spec.template.spec.containers[0].args}";
    let get = [
        "get",
        "deployment",
        RELEASE,
        "-n",
        NAMESPACE,
        "-o",
        args_path,
    ];
    let installed: Vec<String> = serde_json::from_str(&cluster.kubectl.ok(&get).await).unwrap();
    assert_eq!(
        installed,
        args(&objects),
        "helm installs what helm template renders"
    );
    objects
}

async fn deployed() -> Deployed {
    deployed_with(&[]).await
}

/// The chart installed with `values` (extra helm arguments) into a server enforcing RBAC, one
/// pod's operator running as the chart's ServiceAccount.
pub(crate) async fn deployed_with(values: &[&str]) -> Deployed {
    deployed_on(Cluster::bare_with(enforcing()).await, values).await
}

/// Like [`deployed_with`], on a cluster set up beforehand (say, with the namespaces of
/// `watchNamespaces`, which must exist before the chart's Roles are installed into them).
pub(crate) async fn deployed_on(cluster: Cluster, values: &[&str]) -> Deployed {
    let objects = install(&cluster, values).await;
    let lease = (args(&objects).iter())
        .find_map(|a| {
            a.strip_prefix("--leader-election-lease-name=")
                .map(str::to_owned)
        })
        .expect("a Lease (leader or shards) is used by default");
    let (namespace, account) = chart::service_account(&objects);
    let kubeconfig = (cluster
        .server
        .kubeconfig_for_service_account(&namespace, &account))
    .expect("the ServiceAccount's kubeconfig");
    let launch = Launch::as_deployed(CANARY, &kubeconfig, &objects, POD_NAME);
    let operator = launch.process().await;
    let c = container(&objects);
    let probe_path = |probe: &str| c[probe]["httpGet"]["path"].as_str().unwrap().to_string();
    let (readyz, healthz) = (probe_path("readinessProbe"), probe_path("livenessProbe"));
    eventually(30 * SEC, "the readiness probe", POLL, async || {
        assert!(
            operator.running(),
            "the operator exited early:\n{}",
            operator.tail(50)
        );
        match operator.health_code(&readyz).await {
            Some(200) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let liveness = operator.health_code(&healthz).await;
    assert_eq!(liveness, Some(200), "liveness probe\n{}", operator.tail(50));
    Deployed {
        cluster,
        objects,
        operator,
        lease,
    }
}

/// Check `web` of `target` with a header from Secret `probe-token` and a CA bundle from
/// ConfigMap `internal-ca`, and check `down` of a closed port, in namespace `shop`.
pub(crate) fn shop_objects(target: &TestServer) -> Vec<Value> {
    let ca = Ca::root("internal-ca.test");
    let header = json!({"name": "X-Probe-Token",
        "valueFrom": {"secretKeyRef": {"name": "probe-token", "key": "token"}}});
    let web = json!({"interval": "2s", "timeout": "1s",
        "http": {"url": target.url("/healthz"), "headers": [header]},
        "tlsPolicy": {"caBundle": {"configMapKeyRef": {"name": "internal-ca", "key": "ca.crt"}}}});
    let down = json!({"interval": "2s", "timeout": "1s", "tcp": {"host": "127.0.0.1", "port": free_port()}});
    vec![
        secret(
            "shop",
            "probe-token",
            "Opaque",
            &[("token", "s3cr3t-token")],
        ),
        config_map("shop", "internal-ca", "ca.crt", &ca.pem),
        healthcheck("shop", "web", web),
        healthcheck("shop", "down", down),
    ]
}

impl Deployed {
    /// Applies the checks of [`shop_objects`] and waits until both show their state in status
    /// and the transition of `down` is an events.k8s.io Event (published in the background).
    async fn probe_shop(&self, target: &TestServer) {
        self.cluster.namespace("shop").await;
        self.cluster.kubectl.apply(&shop_objects(target)).await;
        self.wait_shop().await;
    }

    /// Waits until `web` passes and `down` fails in status, and `down`'s transition is an Event.
    pub(crate) async fn wait_shop(&self) {
        let want = [
            ("web", "True/true/Succeeded"),
            ("down", "False/false/ConnectionRefused"),
        ];
        self.wait_checks("shop", &want).await;
        eventually(30 * SEC, "the Event for shop/down", POLL, async || {
            let events = self.cluster.events("shop").await;
            let regarding: Vec<String> = events.into_iter().map(|e| e.regarding).collect();
            regarding
                .iter()
                .any(|n| n == "down")
                .then_some(())
                .ok_or(format!("{regarding:?}"))
        })
        .await;
    }

    /// Waits until each check `(name, "Ready/success/reason")` of `namespace` shows that state.
    pub(crate) async fn wait_checks(&self, namespace: &str, want: &[(&str, &str)]) {
        let state = "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}/\
                     {.status.lastResult.success}/{.status.lastResult.reason}";
        for &(name, want) in want {
            let what = format!("HealthCheck {namespace}/{name} to be {want}");
            eventually(30 * SEC, &what, POLL, async || {
                assert!(
                    self.operator.running(),
                    "the operator exited early:\n{}",
                    self.operator.tail(50)
                );
                let get = ["get", "chc", name, "-n", namespace, "-o", state];
                let got = self.cluster.kubectl.ok(&get).await;
                (got == want).then_some(()).ok_or(got)
            })
            .await;
        }
    }

    async fn lease_holder(&self) -> String {
        self.cluster.lease_holder(NAMESPACE, &self.lease).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_operator_probes_with_references_publishes_events_metrics_and_holds_its_lease()
{
    let d = deployed().await;
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    d.probe_shop(&target).await;
    let tokens: Vec<String> = target
        .requests()
        .iter()
        .filter_map(|r| r.header("x-probe-token").map(str::to_owned))
        .collect();
    assert!(
        tokens.iter().any(|t| t == "s3cr3t-token"),
        "the Secret's value reaches the target: {tokens:?}"
    );
    assert_eq!(
        d.lease_holder().await,
        POD_NAME,
        "the Lease is held as POD_NAME"
    );
    let web = [("namespace", "shop"), ("name", "web")];
    eventually(
        10 * SEC,
        "canary_check_success for shop/web",
        POLL,
        async || {
            let scrape = d.operator.scrape().await.ok_or("no scrape")?;
            match metrics::value(&scrape, "canary_check_success", &web) {
                Some(1.0) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_operator_exits_zero_on_sigterm_and_releases_its_lease() {
    let d = deployed().await;
    eventually(10 * SEC, "the Lease held", POLL, async || {
        match d.lease_holder().await {
            h if h == POD_NAME => Ok(()),
            h => Err(h),
        }
    })
    .await;
    let (status, took) = d.operator.terminate().await;
    assert!(
        status.success(),
        "exit status {status:?} after SIGTERM:\n{}",
        d.operator.tail(50)
    );
    println!("operator exited 0 {took:?} after SIGTERM");
    assert_eq!(
        d.lease_holder().await,
        "",
        "the Lease is released on shutdown"
    );
}

/// Calls every replica makes whatever the mode: the watch, status writes, Events, a referenced
/// Secret and ConfigMap.
const CHECK_CALLS: [(&str, &str, &str); 6] = [
    ("list", "canary.dev", "healthchecks"),
    ("watch", "canary.dev", "healthchecks"),
    ("patch", "canary.dev", "healthchecks/status"),
    ("create", "events.k8s.io", "events"),
    ("get", "", "secrets"),
    ("get", "", "configmaps"),
];

/// Lease calls of the elected leader.
const LEADER_CALLS: [(&str, &str, &str); 3] = [
    ("get", "coordination.k8s.io", "leases"),
    ("create", "coordination.k8s.io", "leases"),
    ("update", "coordination.k8s.io", "leases"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_operator_calls_only_what_its_service_account_is_granted() {
    let d = deployed().await;
    assert_calls_granted(&d, &[&CHECK_CALLS[..], &LEADER_CALLS[..]].concat()).await;
}

/// Lease calls of a shard member (`--sharding shards`): its own Lease created and renewed, the
/// ring's listed and watched. (Deleting a departed pod's Lease needs one; not exercised here.)
const SHARD_CALLS: [(&str, &str, &str); 4] = [
    ("create", "coordination.k8s.io", "leases"),
    ("update", "coordination.k8s.io", "leases"),
    ("list", "coordination.k8s.io", "leases"),
    ("watch", "coordination.k8s.io", "leases"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_pod_calls_only_what_its_service_account_is_granted() {
    let d = deployed_with(&["--set", "replicaCount=2"]).await;
    assert!(args(&d.objects).contains(&"--sharding=shards".to_string()));
    assert_calls_granted(&d, &[&CHECK_CALLS[..], &SHARD_CALLS[..]].concat()).await;
}

/// Probes the shop, stops the operator, and asserts every API call it made is granted by the
/// chart's RBAC and that it made each of `expected` (so the comparison means something).
async fn assert_calls_granted(d: &Deployed, expected: &[(&str, &str, &str)]) {
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    d.probe_shop(&target).await;
    let (status, _) = d.operator.terminate().await;
    assert!(status.success(), "{status:?}");
    assert_eq!(
        d.cluster.server.requests_dropped(),
        0,
        "the audit log kept every request"
    );
    let calls = d.cluster.operator_requests();
    let agents: BTreeSet<&str> = calls.iter().map(|r| r.user_agent.as_str()).collect();
    println!("operator user agents: {agents:?}");
    assert_eq!(
        agents.len(),
        1,
        "one client besides kubectl and helm: {agents:?}"
    );
    let (namespace, account) = chart::service_account(&d.objects);
    let user = format!("system:serviceaccount:{namespace}:{account}");
    let others: BTreeSet<&str> = (calls.iter())
        .map(|r| r.user.as_str())
        .filter(|u| *u != user)
        .collect();
    assert!(
        others.is_empty(),
        "the operator called as {others:?}, not {user}"
    );
    let forbidden: Vec<&str> = (calls.iter())
        .filter(|r| r.code == 403)
        .map(|r| r.request_uri.as_str())
        .collect();
    assert!(forbidden.is_empty(), "the server refused: {forbidden:#?}");
    let grants = rbac::deployment_grants(&d.objects);
    let denied = rbac::denied(&calls, &grants);
    let granted: Vec<String> = grants.iter().map(ToString::to_string).collect();
    assert!(
        denied.is_empty(),
        "the operator made API calls the chart's RBAC does not grant:\n{}\nGranted:\n{}\nOperator log:\n{}",
        denied.join("\n"),
        granted.join("\n"),
        d.operator.tail(200),
    );
    let mut used: BTreeMap<Access, usize> = BTreeMap::new();
    for call in calls.iter().filter(|r| r.is_resource_request()) {
        *used.entry(Access::of(call)).or_default() += 1;
    }
    println!("API calls of the operator:");
    for (access, count) in &used {
        println!("  {count:>4} x {access}");
    }
    let unused: Vec<String> = (grants.iter())
        .filter(|g| !used.keys().any(|a| g.allows(a)))
        .map(ToString::to_string)
        .collect();
    println!(
        "grants of the chart this run never used (not an error):\n  {}",
        unused.join("\n  ")
    );
    // The run exercised every kind of call, so the comparison means something.
    for &(verb, group, resource) in expected {
        let made = used
            .keys()
            .any(|a| a.verb == verb && a.api_group == group && a.resource == resource);
        assert!(
            made,
            "the run never made `{verb} {resource}` ({group}): {used:?}"
        );
    }
}
