//! Events are one store seen through two APIs, core/v1 and events.k8s.io/v1, as in
//! kube-apiserver: written through one, read, watched, patched and deleted through the other with
//! kube's field mapping, selected with each API's field labels, and shown by `kubectl describe`.

mod common;

use canary_test_apiserver::Server;
use common::{Kubectl, fixture};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube::runtime::events::{Event as RecorderEvent, EventType, Recorder, Reporter};
use serde_json::{Value, json};
use std::time::Duration;

/// A core/v1 Event about HealthCheck `web` in `shop`, with every field core/v1 names differently.
const CORE_EVENT: &str = r#"{"apiVersion": "v1", "kind": "Event",
  "metadata": {"name": "web.core", "namespace": "shop"},
  "involvedObject": {"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck", "name": "web",
    "namespace": "shop", "uid": "u-1"},
  "reason": "UnexpectedStatus", "message": "HTTP 500", "type": "Warning", "action": "Probe",
  "source": {"component": "prober", "host": "node-1"},
  "firstTimestamp": "2025-01-02T03:04:05Z", "lastTimestamp": "2025-01-02T03:09:05Z", "count": 3,
  "reportingComponent": "canary-operator", "reportingInstance": "canary-0"}"#;

/// An events.k8s.io/v1 Event about HealthCheck `web` in `shop`, as kube-runtime's recorder
/// writes them.
const EVENTS_V1_EVENT: &str = r#"{"apiVersion": "events.k8s.io/v1", "kind": "Event",
  "metadata": {"name": "web.v1", "namespace": "shop"},
  "regarding": {"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck", "name": "web",
    "namespace": "shop", "uid": "u-1"},
  "reason": "Recovered", "note": "HTTP 200", "type": "Normal", "action": "Probe",
  "eventTime": "2025-01-02T03:04:05.000006Z",
  "series": {"count": 2, "lastObservedTime": "2025-01-02T03:05:05.000006Z"},
  "reportingController": "canary-operator", "reportingInstance": "canary-0"}"#;

/// A server with namespace `shop`, and kubectl for it.
async fn with_shop() -> (Server, Kubectl) {
    let server = common::server().await;
    let kubectl = common::kubectl(&server);
    kubectl.ok(&["create", "namespace", "shop"]).await;
    (server, kubectl)
}

/// `kubectl get RESOURCE NAME -n shop -o json`, managedFields included.
async fn get(kubectl: &Kubectl, resource: &str, name: &str) -> Value {
    let args = [resource, name, "-n", "shop", "--show-managed-fields"];
    kubectl.get_json(&args).await
}

/// Whitespace-separated words.
fn words(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

/// The top-level field names of an object, sorted.
fn keys(object: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = object
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_created_through_core_v1_reads_through_events_k8s_io() {
    let (_server, kubectl) = with_shop().await;
    kubectl.ok_stdin(&["create", "-f", "-"], CORE_EVENT).await;
    let core = get(&kubectl, "events", "web.core").await;
    let v1 = get(&kubectl, "events.events.k8s.io", "web.core").await;
    let want = words(
        "action apiVersion deprecatedCount deprecatedFirstTimestamp deprecatedLastTimestamp \
         deprecatedSource kind metadata note reason regarding reportingController \
         reportingInstance type",
    );
    assert_eq!(keys(&v1), want, "{v1}");
    assert_eq!(v1["apiVersion"], "events.k8s.io/v1");
    assert_eq!(v1["regarding"], core["involvedObject"]);
    assert_eq!(v1["note"], "HTTP 500");
    assert_eq!(v1["reportingController"], "canary-operator");
    assert_eq!(
        v1["deprecatedSource"],
        json!({"component": "prober", "host": "node-1"})
    );
    assert_eq!(v1["deprecatedFirstTimestamp"], "2025-01-02T03:04:05Z");
    assert_eq!(v1["deprecatedLastTimestamp"], "2025-01-02T03:09:05Z");
    assert_eq!(v1["deprecatedCount"], 3);
    assert_eq!(
        v1["metadata"], core["metadata"],
        "one object, one resourceVersion"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_created_through_events_k8s_io_reads_through_core_v1() {
    let (_server, kubectl) = with_shop().await;
    kubectl
        .ok_stdin(&["create", "-f", "-"], EVENTS_V1_EVENT)
        .await;
    let list = kubectl.get_json(&["events", "-n", "shop"]).await;
    let core = &list["items"][0];
    let want = words(
        "action apiVersion eventTime involvedObject kind message metadata reason \
         reportingComponent reportingInstance series type",
    );
    assert_eq!(keys(core), want, "{list}");
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["involvedObject"]["uid"], "u-1");
    assert_eq!(core["message"], "HTTP 200");
    assert_eq!(core["reportingComponent"], "canary-operator");
    assert_eq!(core["series"]["count"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_events_shows_kubes_event_columns() {
    let (_server, kubectl) = with_shop().await;
    kubectl
        .ok_stdin(&["create", "-f", "-"], EVENTS_V1_EVENT)
        .await;
    let table = kubectl
        .ok(&["get", "events", "-n", "shop", "-o", "wide"])
        .await;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    let columns = [
        "LAST SEEN",
        "TYPE",
        "REASON",
        "OBJECT",
        "SUBOBJECT",
        "SOURCE",
        "MESSAGE",
        "FIRST SEEN",
        "COUNT",
        "NAME",
    ];
    assert_eq!(header, columns, "{table}");
    let row = table.lines().nth(1).unwrap_or_default();
    let cells = [
        "Normal",
        "Recovered",
        "healthcheck/web",
        "canary-operator, canary-0",
        "HTTP 200",
        " 2 ",
        "web.v1",
    ];
    assert!(
        canary_test_harness::missing(row, cells).is_empty(),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_patched_through_one_api_is_deleted_through_the_other() {
    let (_server, kubectl) = with_shop().await;
    kubectl.ok_stdin(&["create", "-f", "-"], CORE_EVENT).await;
    let series = r#"{"series": {"count": 4, "lastObservedTime": "2025-01-02T03:10:05.000000Z"}}"#;
    let patch = |body: &'static str| {
        [
            "patch",
            "events.events.k8s.io",
            "web.core",
            "-n",
            "shop",
            "--type=merge",
            "-p",
            body,
        ]
    };
    let note = r#"{"note": "HTTP 503"}"#;
    let refused = kubectl.fails(&patch(note), "").await;
    assert!(
        refused.contains(r#"message: Invalid value: "HTTP 503": field is immutable"#),
        "what an Event reports is immutable through events.k8s.io/v1, as in kube: {refused}"
    );
    kubectl.ok(&patch(series)).await;
    let core = get(&kubectl, "events", "web.core").await;
    assert_eq!(
        (&core["message"], &core["series"]["count"]),
        (&json!("HTTP 500"), &json!(4))
    );
    assert_eq!(core["count"], 3, "fields the patch left alone stay");
    let v1 = get(&kubectl, "events.events.k8s.io", "web.core").await;
    assert_eq!(
        v1["metadata"]["resourceVersion"],
        core["metadata"]["resourceVersion"]
    );
    let managers = &core["metadata"]["managedFields"];
    let patched = managers
        .as_array()
        .expect("managedFields")
        .iter()
        .find(|e| e["apiVersion"] == "events.k8s.io/v1");
    let fields = &patched.expect("an entry for the events.k8s.io/v1 patch")["fieldsV1"];
    assert!(
        fields["f:series"].is_object() && fields.get("f:message").is_none(),
        "{managers}"
    );

    kubectl
        .ok(&["delete", "event", "web.core", "-n", "shop"])
        .await;
    let gone = ["get", "events.events.k8s.io", "web.core", "-n", "shop"];
    let err = kubectl.fails(&gone, "").await;
    assert!(
        err.contains(r#"events.events.k8s.io "web.core" not found"#),
        "{err}"
    );
}

/// The next ADDED or MODIFIED object of a watch.
async fn next<K, S>(stream: &mut S) -> K
where
    S: futures::Stream<Item = Result<WatchEvent<K>, kube::Error>> + Unpin,
{
    let next = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = stream.try_next().await.expect("watch") {
            if let WatchEvent::Added(o) | WatchEvent::Modified(o) = event {
                return o;
            }
        }
        panic!("the watch ended");
    });
    next.await.expect("a watch event in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_through_either_api_see_writes_through_the_other() {
    let (server, _kubectl) = with_shop().await;
    let client = common::client(&server);
    let (core, v1) = (
        Api::<CoreEvent>::namespaced(client.clone(), "shop"),
        Api::<Event>::namespaced(client, "shop"),
    );
    let params = WatchParams::default().timeout(20);
    let mut core_watch = core.watch(&params, "0").await.expect("core watch").boxed();
    let mut v1_watch = v1
        .watch(&params, "0")
        .await
        .expect("events.k8s.io watch")
        .boxed();

    let event: CoreEvent = serde_json::from_str(CORE_EVENT).expect("core event");
    let created = core
        .create(&PostParams::default(), &event)
        .await
        .expect("create");
    let seen: Event = next(&mut v1_watch).await;
    assert_eq!(seen.note.as_deref(), Some("HTTP 500"));
    assert_eq!(seen.regarding.and_then(|r| r.uid).as_deref(), Some("u-1"));
    assert_eq!(
        seen.metadata.resource_version,
        created.metadata.resource_version
    );
    let seen: CoreEvent = next(&mut core_watch).await;
    assert_eq!(seen.metadata.name.as_deref(), Some("web.core"));

    let event: Event = serde_json::from_str(EVENTS_V1_EVENT).expect("events.k8s.io event");
    let created = v1
        .create(&PostParams::default(), &event)
        .await
        .expect("create");
    let seen: CoreEvent = next(&mut core_watch).await;
    assert_eq!(seen.message.as_deref(), Some("HTTP 200"));
    assert_eq!(seen.reporting_component.as_deref(), Some("canary-operator"));
    assert_eq!(
        seen.metadata.resource_version,
        created.metadata.resource_version
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_selectors_take_each_apis_field_labels() {
    let (_server, kubectl) = with_shop().await;
    kubectl.ok_stdin(&["create", "-f", "-"], CORE_EVENT).await;
    let other = CORE_EVENT
        .replace(r#""name": "web""#, r#""name": "api""#)
        .replace("web.core", "api.core");
    kubectl.ok_stdin(&["create", "-f", "-"], &other).await;
    let names = async |resource: &str, selector: &str| {
        let list = kubectl
            .get_json(&[resource, "-n", "shop", "--field-selector", selector])
            .await;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        items
            .iter()
            .map(|e| {
                e["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    let core = "involvedObject.kind=HealthCheck,involvedObject.name=web,involvedObject.uid=u-1";
    assert_eq!(names("events", core).await, ["web.core"]);
    assert_eq!(
        names(
            "events",
            "source=prober,type=Warning,involvedObject.fieldPath="
        )
        .await
        .len(),
        2
    );
    let v1 = "regarding.name=api,reportingController=canary-operator";
    assert_eq!(names("events.events.k8s.io", v1).await, ["api.core"]);
    for (resource, label) in [
        ("events", "regarding.name"),
        ("events.events.k8s.io", "involvedObject.name"),
        ("events", "message"),
    ] {
        let args = [
            "get",
            resource,
            "-n",
            "shop",
            "--field-selector",
            &format!("{label}=web"),
        ];
        let err = kubectl.fails(&args, "").await;
        assert!(
            err.contains(&format!("field label not supported: {label}")),
            "{err}"
        );
    }
}

/// A server with the fixture CRD and HealthCheck `shop/web`; its uid.
async fn with_healthcheck() -> (Server, Kubectl, String) {
    let (server, kubectl) = with_shop().await;
    kubectl
        .ok(&["apply", "-f", &fixture("healthcheck-crd.yaml")])
        .await;
    let crd = "crd/healthchecks.canary.dev";
    kubectl
        .ok(&["wait", "--for=condition=Established", crd, "--timeout=10s"])
        .await;
    let check = r#"{"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"kind": "HTTP", "interval": "30s", "http": {"url": "http://example.com"}}}"#;
    kubectl.ok_stdin(&["apply", "-f", "-"], check).await;
    let uid = kubectl
        .ok(&[
            "get",
            "chc",
            "web",
            "-n",
            "shop",
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .await;
    (server, kubectl, uid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_describe_lists_the_events_of_a_custom_resource_by_field_selector() {
    let (server, kubectl, uid) = with_healthcheck().await;
    kubectl
        .ok_stdin(
            &["create", "-f", "-"],
            &EVENTS_V1_EVENT.replace("u-1", &uid),
        )
        .await;
    // Same name, another incarnation (uid): not this object's Event.
    kubectl.ok_stdin(&["create", "-f", "-"], CORE_EVENT).await;
    server.clear_requests();
    let out = kubectl
        .ok(&["describe", "healthchecks.canary.dev", "-n", "shop", "web"])
        .await;
    let events = out
        .split_once("Events:")
        .map(|(_, e)| e)
        .unwrap_or_default();
    let want = [
        "Type",
        "Reason",
        "From",
        "Normal",
        "Recovered",
        "(x2 over",
        "canary-operator",
        "HTTP 200",
    ];
    assert!(
        canary_test_harness::missing(events, want).is_empty(),
        "{out}"
    );
    assert!(!events.contains("UnexpectedStatus"), "{out}");

    let lists: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.resource == "events")
        .collect();
    assert_eq!(lists.len(), 1, "{lists:?}");
    let (list, query) = (
        &lists[0],
        lists[0]
            .request_uri
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or_default(),
    );
    assert_eq!(
        (
            list.verb.as_str(),
            list.api_group.as_str(),
            list.namespace.as_str()
        ),
        ("list", "", "shop")
    );
    let params: std::collections::HashMap<String, String> =
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
    // kubectl 1.35 sends kind, uid, name, namespace (in that order); compare as a set.
    let mut sent: Vec<&str> = params["fieldSelector"].split(',').collect();
    sent.sort();
    let uid = format!("involvedObject.uid={uid}");
    let want = [
        "involvedObject.kind=HealthCheck",
        "involvedObject.name=web",
        "involvedObject.namespace=shop",
        &uid,
    ];
    assert_eq!(sent, want, "{}", list.request_uri);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorder_events_and_their_series_show_through_core_v1() {
    let (server, kubectl, uid) = with_healthcheck().await;
    let reporter = Reporter {
        controller: "canary-operator".into(),
        instance: Some("canary-0".into()),
    };
    let recorder = Recorder::new(common::client(&server), reporter);
    let event = RecorderEvent {
        type_: EventType::Warning,
        reason: "UnexpectedStatus".into(),
        note: Some("HTTP 500".into()),
        action: "Probe".into(),
        secondary: None,
    };
    let reference = ObjectReference {
        api_version: Some("canary.dev/v1alpha1".into()),
        kind: Some("HealthCheck".into()),
        name: Some("web".into()),
        namespace: Some("shop".into()),
        uid: Some(uid),
        ..Default::default()
    };
    for _ in 0..2 {
        recorder.publish(&event, &reference).await.expect("publish");
    }
    let list = kubectl.get_json(&["events", "-n", "shop"]).await;
    let core = &list["items"][0];
    assert_eq!(
        (&core["reason"], &core["message"], &core["series"]["count"]),
        (&json!("UnexpectedStatus"), &json!("HTTP 500"), &json!(2)),
        "{list}"
    );
    let out = kubectl.ok(&["describe", "chc", "-n", "shop", "web"]).await;
    let want = [
        "Warning",
        "UnexpectedStatus",
        "(x2 over",
        "canary-operator",
        "HTTP 500",
    ];
    assert!(canary_test_harness::missing(&out, want).is_empty(), "{out}");
}
