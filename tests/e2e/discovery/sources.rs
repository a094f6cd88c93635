//! Discovery with more than Ingresses: Gateway API installed after the operator started, and
//! several replicas sharing the CheckDiscoveries.

use canary_test_harness::wait::eventually;
use serde_json::{Value, json};

use super::{DEADLINE, EVERY, checks, discovery, ingress, until_condition, until_urls};
use crate::{SEC, Scenario};

/// A Gateway `gw` with one HTTP listener, and an HTTPRoute for `app.test` attached to it.
fn gateway_and_route(ns: &str) -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": ns},
            "spec": {"gatewayClassName": "test", "listeners": [
                {"name": "http", "protocol": "HTTP", "port": 80}]},
        }),
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "app", "namespace": ns},
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["app.test"]},
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_not_installed_is_a_condition_and_is_picked_up_once_installed() {
    let ns = "shop";
    let template = json!({"suspend": true});
    let spec =
        json!({"sources": {"ingress": {}, "httpRoute": {}}, "optIn": "All", "template": template});
    let objects = [
        discovery(ns, "web", spec),
        ingress(ns, "web", "a.test", json!({})),
    ];
    let s = Scenario::start(ns, &["--discovery"], &objects).await;
    let k = &s.cluster.kubectl;
    until_urls(k, ns, &["http://a.test/"]).await;
    until_condition(
        k,
        ns,
        "web",
        ("SourceUnavailable", "True", "CRDNotInstalled"),
    )
    .await;
    k.apply(&canary_test_apiserver::gateway_api_crds()).await;
    k.apply(&gateway_and_route(ns)).await;
    let accepted = json!({"status": {"parents": [{
        "parentRef": {"name": "gw"}, "controllerName": "example.com/gateway",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                        "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    }]}});
    let patch = accepted.to_string();
    let args = [
        "patch",
        "httproute",
        "app",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ];
    k.ok(&args).await;
    // The watch retries with backoff (at most 30 s between attempts).
    let deadline = 60 * SEC;
    eventually(deadline, "the HTTPRoute's check", EVERY, async || {
        let now = checks(k, ns).await;
        let urls: Vec<&str> = now.iter().map(|(_, u)| u.as_str()).collect();
        (urls.contains(&"http://app.test/"))
            .then_some(())
            .ok_or(format!("{now:?}"))
    })
    .await;
    until_condition(k, ns, "web", ("SourceUnavailable", "False", "Served")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_shards_each_discovery_is_generated_by_one_replica() {
    let ns = "shop";
    let cluster = canary_test_harness::cluster::Cluster::start().await;
    cluster.namespace(ns).await;
    let launch = |name: &'static str| {
        crate::operator(&cluster)
            .args(&["--discovery", "--sharding", "shards"])
            .args(&["--leader-election-lease-duration", "6s"])
            .env("POD_NAME", name)
            .process()
    };
    let (r1, r2) = futures::join!(launch("r1"), launch("r2"));
    let replicas = [&r1, &r2];
    eventually(DEADLINE, "a ring of two", EVERY, async || {
        let mut seen = vec![];
        for r in replicas {
            seen.push(r.try_metric("canary_shard_members", &[]).await?);
        }
        (seen == [2.0, 2.0])
            .then_some(())
            .ok_or(format!("{seen:?}"))
    })
    .await;
    let names: Vec<String> = (0..6).map(|i| format!("d{i}")).collect();
    let mut objects = vec![];
    for name in &names {
        let selector = json!({"matchLabels": {"app": name}});
        let spec = json!({"sources": {"ingress": {"selector": selector}}, "optIn": "All",
                          "template": {"suspend": true}});
        objects.push(discovery(ns, name, spec));
        let mut source = ingress(ns, name, &format!("{name}.test"), json!({}));
        source["metadata"]["labels"] = json!({"app": name});
        objects.push(source);
    }
    cluster.kubectl.apply(&objects).await;
    let urls: Vec<String> = names.iter().map(|n| format!("http://{n}.test/")).collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    until_urls(&cluster.kubectl, ns, &urls).await;
    let what = "each discovery's series on exactly one replica";
    eventually(DEADLINE, what, EVERY, async || {
        let mut owners = vec![];
        for name in &names {
            let labels = [("namespace", ns), ("name", name.as_str())];
            let mut on = vec![];
            for r in replicas {
                on.push(
                    r.try_metric("canary_discovery_checks_generated", &labels)
                        .await?,
                );
            }
            owners.push(on);
        }
        let one_each = owners.iter().all(|on| {
            let mut on = on.clone();
            on.sort_by(f64::total_cmp);
            on == [0.0, 1.0]
        });
        one_each.then_some(()).ok_or(format!("{owners:?}"))
    })
    .await;
}
