//! kube-runtime against the server: watcher recovery, a Controller, patch_status, Lease election.

mod common;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher::{self, Event};
use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "canary.dev",
    version = "v1alpha1",
    kind = "HealthCheck",
    namespaced,
    status = "HealthCheckStatus"
)]
struct HealthCheckSpec {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tcp: Option<serde_json::Value>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
struct HealthCheckStatus {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "consecutiveFailures"
    )]
    consecutive_failures: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    conditions: Vec<serde_json::Value>,
}

/// A HealthCheck of `kind`, with `interval` if given.
fn check(name: &str, kind: &str, interval: Option<&str>) -> HealthCheck {
    let spec = HealthCheckSpec {
        kind: kind.into(),
        interval: interval.map(Into::into),
        tcp: None,
    };
    HealthCheck::new(name, spec)
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).expect("cm")
}

/// Reads watcher events until one satisfies `want`, failing after a deadline.
async fn until<S>(events: &mut S, what: &str, mut want: impl FnMut(&Event<ConfigMap>) -> bool)
where
    S: futures::Stream<Item = Result<Event<ConfigMap>, watcher::Error>> + Unpin,
{
    let found = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(ev) = events.next().await {
            if ev.as_ref().is_ok_and(&mut want) {
                return;
            }
        }
    });
    found
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

fn applied(name: &'static str) -> impl FnMut(&Event<ConfigMap>) -> bool {
    move |ev| matches!(ev, Event::Apply(c) if c.name_any() == name)
}

/// An object of the initial (re)list.
fn listed(name: &'static str) -> impl FnMut(&Event<ConfigMap>) -> bool {
    move |ev| matches!(ev, Event::InitApply(c) if c.name_any() == name)
}

/// The end of the initial (re)list.
fn listed_all(ev: &Event<ConfigMap>) -> bool {
    matches!(ev, Event::InitDone)
}

/// Creates ConfigMap `name`.
async fn create(api: &Api<ConfigMap>, name: &str) {
    api.create(&PostParams::default(), &cm(name))
        .await
        .expect(name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_resumes_after_dropped_watch_and_relists_after_gone() {
    let (server, api) = common::configmaps().await;
    let mut events = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    until(&mut events, "initial list", listed_all).await;
    create(&api, "a").await;
    until(&mut events, "a", applied("a")).await;

    server.drop_watches();
    create(&api, "b").await;
    until(&mut events, "b after a dropped watch", applied("b")).await;

    // Resuming now needs history that is gone: 410, then a relist (re-watches first hit 503s).
    server.fail_next(2, 503, Some("watch=true"));
    server.compact_history();
    server.drop_watches();
    create(&api, "c").await;
    until(&mut events, "relist after 410", listed("c")).await;
    until(&mut events, "relist done", listed_all).await;
    create(&api, "d").await;
    until(&mut events, "d after relist", applied("d")).await;
}

/// Expiring one namespace's watch relists that watch alone; the other keeps streaming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_one_namespaces_watch_relists_only_that_watch() {
    let server = common::server().await;
    let client = common::client(&server);
    let kube_system: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let default: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut system_events =
        watcher::watcher(kube_system.clone(), watcher::Config::default()).boxed();
    let mut default_events = watcher::watcher(default.clone(), watcher::Config::default()).boxed();
    until(&mut system_events, "kube-system listed", listed_all).await;
    until(&mut default_events, "default listed", listed_all).await;

    server.expire_watches("/namespaces/kube-system/configmaps");
    let expired = tokio::time::timeout(Duration::from_secs(15), system_events.next())
        .await
        .expect("an event after the expiry")
        .expect("the stream goes on");
    match expired {
        Err(watcher::Error::WatchError(status)) => {
            assert_eq!(
                (status.code, status.reason.as_str()),
                (410, "Expired"),
                "{status:?}"
            )
        }
        other => panic!("expected a 410 watch error, got {other:?}"),
    }
    create(&kube_system, "after").await;
    until(&mut system_events, "kube-system relisted", listed("after")).await;
    create(&default, "still").await;
    let next = tokio::time::timeout(Duration::from_secs(15), default_events.next())
        .await
        .expect("default keeps streaming")
        .expect("the stream goes on")
        .expect("no error on the other watch");
    assert!(
        matches!(&next, Event::Apply(c) if c.name_any() == "still"),
        "default's watch was not relisted: {next:?}"
    );
}

async fn reconcile(
    hc: Arc<HealthCheck>,
    api: Arc<Api<HealthCheck>>,
) -> Result<Action, kube::Error> {
    let interval = hc.spec.interval.clone().unwrap_or_default();
    let status = json!({"status": {"consecutiveFailures": 0,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled", "message": interval}]}});
    api.patch_status(
        &hc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(status),
    )
    .await?;
    Ok(Action::await_change())
}

fn ready_message(hc: &HealthCheck) -> Option<String> {
    let cond = hc.status.as_ref()?.conditions.first()?;
    cond["message"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_reconciles_custom_resources_and_sees_updates() {
    let server = common::server().await;
    let client = common::client(&server);
    common::install_crd(&client).await;
    let api: Api<HealthCheck> = Api::default_namespaced(client.clone());
    let ctx = Arc::new(api.clone());
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            ctx,
        )
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);

    let hc = check("web", "TCP", Some("30s"));
    api.create(&PostParams::default(), &hc)
        .await
        .expect("create");
    let seen = async |want: &str| {
        let check = api.get("web").await.ok();
        check.and_then(|h| ready_message(&h)).as_deref() == Some(want)
    };
    let deadline = Duration::from_secs(15);
    common::until(deadline, "first reconcile", async || seen("30s").await).await;
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"interval": "1m"}})),
    )
    .await
    .expect("update");
    common::until(deadline, "reconcile after update", async || {
        seen("1m").await
    })
    .await;
    let hc = api.get("web").await.expect("get");
    assert_eq!(
        hc.metadata.generation,
        Some(2),
        "status writes do not bump generation"
    );
    handle.abort();
}

/// One round of a minimal Lease-based leader election: true when `me` holds the lease afterwards.
async fn try_lead(api: &Api<Lease>, me: &str, duration: i32) -> bool {
    let now = MicroTime(jiff::Timestamp::now());
    let fresh = |rv: Option<String>| -> Lease {
        serde_json::from_value(json!({"metadata": {"name": "leader", "resourceVersion": rv},
            "spec": {"holderIdentity": me, "leaseDurationSeconds": duration, "renewTime": now, "acquireTime": now}}))
        .expect("lease")
    };
    let Some(current) = api.get_opt("leader").await.expect("get lease") else {
        return api
            .create(&PostParams::default(), &fresh(None))
            .await
            .is_ok();
    };
    let spec = current.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    let renewed = spec
        .renew_time
        .map(|t| t.0)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let expired = jiff::Timestamp::now().as_millisecond() - renewed.as_millisecond()
        > i64::from(duration) * 1000;
    if holder != me && !expired {
        return false;
    }
    // A replace with the old resourceVersion fails with 409 when another contender got there first.
    api.replace(
        "leader",
        &PostParams::default(),
        &fresh(current.metadata.resource_version),
    )
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_election_has_one_leader_and_fails_over() {
    let server = common::server().await;
    let api: Api<Lease> = Api::default_namespaced(common::client(&server));
    let (a, b) = tokio::join!(try_lead(&api, "a", 2), try_lead(&api, "b", 2));
    assert!(a ^ b, "exactly one contender leads (a={a}, b={b})");
    let (leader, other) = if a { ("a", "b") } else { ("b", "a") };
    for _ in 0..3 {
        assert!(try_lead(&api, leader, 2).await, "leader renews");
        assert!(!try_lead(&api, other, 2).await, "follower waits");
    }
    // The leader stops renewing; the follower takes over once the lease expires.
    let follower_leads = async || try_lead(&api, other, 2).await;
    common::until(
        Duration::from_secs(10),
        "the follower to take over",
        follower_leads,
    )
    .await;
    assert!(
        !try_lead(&api, leader, 2).await,
        "old leader is now a follower"
    );
    let lease = api.get("leader").await.expect("lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some(other)
    );
}

/// A server with the fixture CRD and HealthCheck `s` created with a status (which create
/// ignores) and without an interval (which the schema defaults).
async fn created() -> (canary_test_apiserver::Server, Api<HealthCheck>, HealthCheck) {
    let server = common::server().await;
    let client = common::client(&server);
    common::install_crd(&client).await;
    let api: Api<HealthCheck> = Api::default_namespaced(client);
    let mut hc = check("s", "TCP", None);
    hc.status = Some(HealthCheckStatus {
        consecutive_failures: Some(9),
        conditions: vec![],
    });
    let created = api
        .create(&PostParams::default(), &hc)
        .await
        .expect("create");
    (server, api, created)
}

/// (interval, consecutiveFailures) of a HealthCheck.
fn interval_and_failures(hc: HealthCheck) -> (Option<String>, Option<i64>) {
    (
        hc.spec.interval,
        hc.status.and_then(|s| s.consecutive_failures),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_subresource_separates_spec_and_status_writes() {
    let (_server, api, created) = created().await;
    assert!(created.status.is_none(), "status ignored on create");
    assert_eq!(created.spec.interval.as_deref(), Some("30s"), "defaulted");
    let patch = json!({"spec": {"interval": "1m"}, "status": {"consecutiveFailures": 3}});
    let params = PatchParams::default();
    let after = api
        .patch_status("s", &params, &Patch::Merge(&patch))
        .await
        .expect("patch status");
    assert_eq!(interval_and_failures(after), (Some("30s".into()), Some(3)));
    let main = api
        .patch("s", &params, &Patch::Merge(&patch))
        .await
        .expect("patch main");
    assert_eq!(
        main.metadata.generation,
        Some(2),
        "spec change bumps generation"
    );
    assert_eq!(interval_and_failures(main), (Some("1m".into()), Some(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_writes_keep_immutable_fields_prune_unknown_ones_and_dry_runs_store_nothing() {
    let (_server, api, created) = created().await;
    let params = PatchParams::default();
    let immutable = Patch::Merge(json!({"spec": {"kind": "TLS"}}));
    match api.patch("s", &params, &immutable).await {
        Err(kube::Error::Api(s)) => assert!(
            s.message
                .ends_with("spec.kind: Invalid value: \"string\": kind is immutable"),
            "{}",
            s.message
        ),
        other => panic!("transition rule should reject: {other:?}"),
    }
    let unknown = Patch::Merge(json!({"spec": {"bogus": 1}}));
    let pruned = api
        .patch("s", &params, &unknown)
        .await
        .expect("unknown fields pruned");
    let (before, after) = (
        created.metadata.resource_version,
        pruned.metadata.resource_version,
    );
    assert_eq!(after, before, "no-op write");
    let dry = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let five_minutes = Patch::Merge(json!({"spec": {"interval": "5m"}}));
    let would = api.patch("s", &dry, &five_minutes).await.expect("dry run");
    assert_eq!(would.spec.interval.as_deref(), Some("5m"));
    let stored = api.get("s").await.expect("get").spec.interval;
    assert_eq!(stored.as_deref(), Some("30s"), "dry run stored nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_can_be_switched_off_at_runtime() {
    let server = common::server().await;
    let client = common::client(&server);
    common::install_crd(&client).await;
    let api: Api<HealthCheck> = Api::default_namespaced(client);
    let bad = |name: &str| check(name, "FTP", None);
    let err = api
        .create(&PostParams::default(), &bad("strict"))
        .await
        .expect_err("invalid enum");
    assert!(matches!(err, kube::Error::Api(s) if s.code == 422 && s.reason == "Invalid"));
    server.set_validation(false);
    let stored = api
        .create(&PostParams::default(), &bad("slipped"))
        .await
        .expect("accepted without validation");
    assert_eq!(
        (stored.spec.kind.as_str(), stored.spec.interval.as_deref()),
        ("FTP", None),
        "not defaulted either"
    );
    server.set_validation(true);
    assert!(
        api.create(&PostParams::default(), &bad("again"))
            .await
            .is_err()
    );
    let badname = api
        .create(&PostParams::default(), &check("Bad_Name", "TCP", None))
        .await;
    match badname {
        Err(kube::Error::Api(s)) => assert!(
            s.message.contains(
                "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
            ),
            "{}",
            s.message
        ),
        other => panic!("expected invalid name, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_watcher_gets_initial_events_then_changes() {
    let (_server, api) = common::configmaps().await;
    create(&api, "before").await;
    let config = watcher::Config::default().streaming_lists();
    let mut events = watcher::watcher(api.clone(), config).boxed();
    until(&mut events, "initial event", listed("before")).await;
    until(&mut events, "initial events end", listed_all).await;
    create(&api, "after").await;
    until(&mut events, "later change", applied("after")).await;
}
