//! The discovery controller (`--discovery`) end to end: CheckDiscoveries and Ingresses applied
//! with kubectl, the generated HealthChecks observed through kubectl. Every wait is on a
//! condition with a deadline; "nothing changed" is shown with a sentinel object applied after
//! the change, whose check proves a later pass has run. Generated checks are suspended, so
//! nothing is probed (their `.test` hosts would go to DNS).

use std::time::Duration;

use canary_test_harness::{tools::Kubectl, wait::eventually};
use serde_json::{Value, json};

mod sources;

use crate::Scenario;

const DEADLINE: Duration = Duration::from_secs(30);
const EVERY: Duration = Duration::from_millis(200);

fn discovery(ns: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "canary.dev/v1alpha1", "kind": "CheckDiscovery",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    })
}

/// An Ingress for `host`, opted in when `annotations` say so.
fn ingress(ns: &str, name: &str, host: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {"rules": [{"host": host, "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}},
        }]}}]},
    })
}

fn opted_in() -> Value {
    json!({"canary.dev/check": "true"})
}

/// The HealthChecks of `ns` as (name, url), ordered by name.
async fn checks(kubectl: &Kubectl, ns: &str) -> Vec<(String, String)> {
    let list = kubectl.get_json(&["chc", "-n", ns]).await;
    (list["items"].as_array().into_iter().flatten())
        .map(|c| {
            let name = c["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (
                name,
                c["spec"]["http"]["url"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// Waits until the URLs of `ns`'s HealthChecks are exactly `urls`; returns (name, url).
async fn until_urls(kubectl: &Kubectl, ns: &str, urls: &[&str]) -> Vec<(String, String)> {
    let what = format!("HealthChecks with URLs {urls:?}");
    eventually(DEADLINE, &what, EVERY, async || {
        let now = checks(kubectl, ns).await;
        let mut got: Vec<&str> = now.iter().map(|(_, u)| u.as_str()).collect();
        got.sort_unstable();
        (got == urls)
            .then_some(now.clone())
            .ok_or(format!("{now:?}"))
    })
    .await
}

async fn get(kubectl: &Kubectl, ns: &str, what: &str) -> Value {
    kubectl.get_json(&[what, "-n", ns]).await
}

/// Waits until the discovery's `type` condition has `status` and `reason`; returns the status.
async fn until_condition(
    kubectl: &Kubectl,
    ns: &str,
    name: &str,
    want: (&str, &str, &str),
) -> Value {
    let (type_, status, reason) = want;
    let what = format!("CheckDiscovery {name}: {type_}={status} ({reason})");
    eventually(DEADLINE, &what, EVERY, async || {
        let d = get(kubectl, ns, &format!("chd/{name}")).await;
        let conditions = d["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let hit = conditions
            .iter()
            .any(|c| c["type"] == type_ && c["status"] == status && c["reason"] == reason);
        hit.then(|| d["status"].clone())
            .ok_or(format!("{}", d["status"]))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_annotated_ingress_becomes_a_check_that_follows_host_opt_in_and_discovery() {
    let ns = "shop";
    let template = json!({"interval": "30s", "suspend": true});
    let spec = json!({"sources": {"ingress": {}}, "template": template});
    let objects = [
        discovery(ns, "web", spec),
        ingress(ns, "web", "a.test", opted_in()),
        ingress(ns, "legacy", "legacy.test", json!({})),
    ];
    let s = Scenario::start(ns, &["--discovery"], &objects).await;
    let k = &s.cluster.kubectl;
    let first = until_urls(k, ns, &["http://a.test/"]).await;
    let name = format!("chc/{}", first[0].0);
    let check = k
        .get_json(&[&name, "-n", ns, "--show-managed-fields"])
        .await;
    let meta = &check["metadata"];
    assert!(first[0].0.starts_with("ing-web-"), "{first:?}");
    assert_eq!(meta["labels"]["canary.dev/discovery"], "web");
    assert_eq!(meta["labels"]["canary.dev/source-kind"], "Ingress");
    assert_eq!(meta["labels"]["canary.dev/source-name"], "web");
    assert_eq!(meta["ownerReferences"][0]["kind"], "CheckDiscovery");
    assert_eq!(meta["ownerReferences"][0]["controller"], true);
    let managers: Vec<&str> = (meta["managedFields"].as_array().into_iter().flatten())
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"canary-discovery"), "{managers:?}");
    assert_eq!(check["spec"]["interval"], "30s");
    let status = until_condition(k, ns, "web", ("Ready", "True", "Generated")).await;
    assert_eq!(status["generated"], 1, "{status}");
    assert_eq!(status["observedGeneration"], 1, "{status}");

    // A per-object template: the check is updated in place (Sync).
    let template =
        json!({"canary.dev/check": "true", "canary.dev/check-template": "interval: 45s"});
    k.apply(&[ingress(ns, "web", "a.test", template)]).await;
    eventually(
        DEADLINE,
        "the check updated to interval 45s",
        EVERY,
        async || {
            let check = get(k, ns, &name).await;
            (check["spec"]["interval"] == "45s")
                .then_some(())
                .ok_or(format!("{}", check["spec"]))
        },
    )
    .await;
    // A new host: the old check is pruned, a new one (another name) created.
    k.apply(&[ingress(ns, "web", "b.test", opted_in())]).await;
    let second = until_urls(k, ns, &["http://b.test/"]).await;
    assert_ne!(second[0].0, first[0].0);
    // Opted out: pruned.
    k.apply(&[ingress(
        ns,
        "web",
        "b.test",
        json!({"canary.dev/check": "false"}),
    )])
    .await;
    until_urls(k, ns, &[]).await;
    // Opted in again, then the discovery deleted: its checks are garbage-collected.
    k.apply(&[ingress(ns, "web", "b.test", opted_in())]).await;
    until_urls(k, ns, &["http://b.test/"]).await;
    k.ok(&["delete", "chd", "web", "-n", ns]).await;
    until_urls(k, ns, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_marked_unmanaged_is_detached_and_never_touched_again() {
    let ns = "shop";
    let spec = json!({"sources": {"ingress": {}}, "template": {"suspend": true}});
    let objects = [
        discovery(ns, "web", spec),
        ingress(ns, "web", "a.test", opted_in()),
    ];
    let s = Scenario::start(ns, &["--discovery"], &objects).await;
    let k = &s.cluster.kubectl;
    let name = until_urls(k, ns, &["http://a.test/"]).await[0].0.clone();
    k.ok(&[
        "annotate",
        "chc",
        &name,
        "-n",
        ns,
        "canary.dev/managed=false",
    ])
    .await;
    let what = "the check detached (no ownerReference, no discovery labels)";
    eventually(DEADLINE, what, EVERY, async || {
        let meta = get(k, ns, &format!("chc/{name}")).await["metadata"].clone();
        let owners = meta["ownerReferences"].as_array().map_or(0, Vec::len);
        let labelled = meta["labels"].get("canary.dev/discovery").is_some();
        (owners == 0 && !labelled)
            .then_some(())
            .ok_or(format!("{meta}"))
    })
    .await;
    // A changed template for its source, then a sentinel: once the sentinel's check exists,
    // a pass has seen the change and left the detached check alone.
    let template =
        json!({"canary.dev/check": "true", "canary.dev/check-template": "interval: 45s"});
    k.apply(&[ingress(ns, "web", "a.test", template)]).await;
    k.apply(&[ingress(ns, "sentinel", "s.test", opted_in())])
        .await;
    until_urls(k, ns, &["http://a.test/", "http://s.test/"]).await;
    let detached = get(k, ns, &format!("chc/{name}")).await;
    assert_ne!(detached["spec"]["interval"], "45s", "{detached}");
    // Its source gone and the discovery deleted: it stays.
    k.ok(&["delete", "ingress", "web", "-n", ns]).await;
    k.ok(&["delete", "chd", "web", "-n", ns]).await;
    let left = until_urls(k, ns, &["http://a.test/"]).await;
    assert_eq!(left[0].0, name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_creates_and_never_updates_or_prunes() {
    let ns = "shop";
    let spec =
        json!({"sources": {"ingress": {}}, "policy": "CreateOnly", "template": {"suspend": true}});
    let objects = [
        discovery(ns, "web", spec),
        ingress(ns, "web", "a.test", opted_in()),
    ];
    let s = Scenario::start(ns, &["--discovery"], &objects).await;
    let k = &s.cluster.kubectl;
    let name = until_urls(k, ns, &["http://a.test/"]).await[0].0.clone();
    let before = get(k, ns, &format!("chc/{name}")).await;
    let template =
        json!({"canary.dev/check": "true", "canary.dev/check-template": "interval: 45s"});
    k.apply(&[ingress(ns, "web", "a.test", template)]).await;
    k.apply(&[ingress(ns, "sentinel", "s.test", opted_in())])
        .await;
    until_urls(k, ns, &["http://a.test/", "http://s.test/"]).await;
    let after = get(k, ns, &format!("chc/{name}")).await;
    assert_eq!(after["spec"], before["spec"]);
    // Status writes move the resourceVersion; the generation moves only with the spec.
    assert_eq!(
        after["metadata"]["generation"],
        before["metadata"]["generation"]
    );
    // Its source gone: not pruned (a sentinel again shows the pass ran).
    k.ok(&["delete", "ingress", "web", "-n", ns]).await;
    k.apply(&[ingress(ns, "sentinel2", "t.test", opted_in())])
        .await;
    until_urls(
        k,
        ns,
        &["http://a.test/", "http://s.test/", "http://t.test/"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_template_is_a_condition_and_a_warning_event() {
    let ns = "shop";
    let spec = json!({"sources": {"ingress": {}}, "template": {"interval": "soon"}});
    let objects = [
        discovery(ns, "web", spec),
        ingress(ns, "web", "a.test", opted_in()),
    ];
    let s = Scenario::start(ns, &["--discovery"], &objects).await;
    let k = &s.cluster.kubectl;
    let status = until_condition(k, ns, "web", ("Ready", "False", "InvalidSpec")).await;
    assert!(status.to_string().contains("interval"), "{status}");
    let what = "a Warning Event InvalidSpec on the CheckDiscovery";
    eventually(DEADLINE, what, EVERY, async || {
        let events = s.cluster.events(ns).await;
        let hit = (events.iter()).any(|e| {
            e.type_ == "Warning"
                && e.reason == "InvalidSpec"
                && e.regarding_kind == "CheckDiscovery"
        });
        hit.then_some(()).ok_or(format!("{events:?}"))
    })
    .await;
    assert!(checks(k, ns).await.is_empty());
    assert!(
        s.operator.running(),
        "a bad template never crashes the operator"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_checks_truncates_and_skips_are_in_status_and_metrics() {
    let ns = "shop";
    let spec = json!({"sources": {"ingress": {}}, "optIn": "All", "maxChecks": 1,
                      "template": {"suspend": true}});
    let mut hostless = ingress(ns, "hostless", "x.test", json!({}));
    hostless["spec"]["rules"][0]
        .as_object_mut()
        .unwrap()
        .remove("host");
    let objects = [
        discovery(ns, "web", spec),
        ingress(ns, "a", "a.test", json!({})),
        ingress(ns, "b", "b.test", json!({})),
        hostless,
    ];
    let s = Scenario::start(ns, &["--discovery"], &objects).await;
    let k = &s.cluster.kubectl;
    let status = until_condition(k, ns, "web", ("Truncated", "True", "MaxChecks")).await;
    assert_eq!(status["generated"], 1, "{status}");
    assert_eq!(checks(k, ns).await.len(), 1);
    let skipped = &status["skipped"][0];
    assert_eq!(
        (skipped["source"].as_str(), skipped["reason"].as_str()),
        (Some("Ingress/hostless"), Some("NoHost")),
        "{status}"
    );
    // Recorded right after the status write: awaited, not assumed.
    let web = |extra: Option<(&'static str, &'static str)>| {
        let mut labels = vec![("namespace", ns), ("name", "web")];
        labels.extend(extra);
        labels
    };
    eventually(DEADLINE, "the discovery's metrics", EVERY, async || {
        let labels = web(None);
        let generated = (s.operator).try_metric("canary_discovery_checks_generated", &labels);
        let generated = generated.await?;
        let no_host = web(Some(("reason", "NoHost")));
        let skips = s
            .operator
            .try_metric("canary_discovery_skipped", &no_host)
            .await?;
        ((generated, skips) == (1.0, 1.0))
            .then_some(())
            .ok_or(format!("generated {generated}, NoHost {skips}"))
    })
    .await;
}
