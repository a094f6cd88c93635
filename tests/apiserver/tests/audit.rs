//! The audit log: verbs and coordinates as kube-apiserver names them, response codes
//! (including injected faults), user agents, and the bounded buffer.

mod common;

use canary_test_apiserver::{AuditRecord, Options, Server};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams};
use serde_json::json;
use std::time::SystemTime;

/// `verb group/resource/subresource namespace/name code` of a record.
fn coordinates(r: &AuditRecord) -> String {
    let what = [
        &r.verb,
        &r.api_group,
        &r.resource,
        &r.subresource,
        &r.namespace,
        &r.name,
    ];
    row(what.map(String::as_str), r.code)
}

/// `verb group/resource/subresource namespace/name code`.
fn row([verb, group, resource, sub, ns, name]: [&str; 6], code: u16) -> String {
    format!("{verb} {group}/{resource}/{sub} {ns}/{name} {code}")
}

/// Create, get, list, apply, update, an injected 500, a 404, a watch, delete and
/// deletecollection of ConfigMaps through kube-rs.
async fn configmap_calls(server: &Server) {
    let api: Api<ConfigMap> = Api::default_namespaced(common::client(server));
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "a"}})).expect("configmap");
    api.create(&PostParams::default(), &cm)
        .await
        .expect("create");
    api.get("a").await.expect("get");
    api.list(&ListParams::default()).await.expect("list");
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}});
    let apply = PatchParams::apply("audit-test");
    api.patch("a", &apply, &Patch::Apply(applied))
        .await
        .expect("apply");
    let mut cm = api.get("a").await.expect("get");
    cm.data = Some([("k".to_string(), "w".to_string())].into());
    api.replace("a", &PostParams::default(), &cm)
        .await
        .expect("update");
    server.fail_next(1, 500, Some("configmaps/a"));
    assert!(api.get("a").await.is_err(), "injected 500");
    assert!(api.get("missing").await.is_err(), "404");
    let watch = api.watch(&WatchParams::default().timeout(1), "0").await;
    let mut watch = watch.expect("watch").boxed();
    while watch.next().await.is_some() {}
    api.delete("a", &DeleteParams::default())
        .await
        .expect("delete");
    let all = (DeleteParams::default(), ListParams::default());
    api.delete_collection(&all.0, &all.1)
        .await
        .expect("deletecollection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_request_is_audited_with_kube_verbs_and_codes_oldest_first() {
    let server = common::server().await;
    let started = SystemTime::now();
    configmap_calls(&server).await;
    let records = server.requests();
    let seen: Vec<_> = (records.iter())
        .filter(|r| r.is_resource_request())
        .map(coordinates)
        .collect();
    let cms = |verb: &str, name: &str, code: u16| {
        row([verb, "", "configmaps", "", "default", name], code)
    };
    assert_eq!(
        seen,
        vec![
            cms("create", "", 201),
            cms("get", "a", 200),
            cms("list", "", 200),
            cms("patch", "a", 200),
            cms("get", "a", 200),
            cms("update", "a", 200),
            cms("get", "a", 500),
            cms("get", "missing", 404),
            cms("watch", "", 200),
            cms("delete", "a", 200),
            cms("deletecollection", "", 200),
        ]
    );
    for r in &records {
        assert!(r.timestamp >= started, "{r:?}");
    }
    let ordered = records.windows(2).all(|w| w[0].received <= w[1].received);
    assert!(ordered, "oldest first");
    assert!(records[3].request_uri.contains("fieldManager=audit-test"));
}

/// A server where kubectl applied the fixture CRD and created namespace `audited`.
async fn after_kubectl() -> Server {
    let server = common::server().await;
    let kubectl = common::kubectl(&server);
    let crd = common::fixture("healthcheck-crd.yaml");
    kubectl.ok(&["apply", "-f", &crd]).await;
    kubectl.ok(&["create", "namespace", "audited"]).await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_discovery_and_writes_are_audited_with_its_user_agent() {
    let server = after_kubectl().await;
    let records = server.requests();
    let discovery = |r: &&AuditRecord| {
        !r.is_resource_request()
            && r.verb == "get"
            && r.request_uri.split('?').next() == Some("/api")
    };
    assert!(records.iter().any(|r| discovery(&r)), "discovery audited");
    let crd_create = (records.iter())
        .find(|r| r.resource == "customresourcedefinitions" && r.verb == "create")
        .expect("CRD create audited");
    let (group, code) = (crd_create.api_group.as_str(), crd_create.code);
    assert_eq!((group, code), ("apiextensions.k8s.io", 201));
    assert!(
        crd_create.user_agent.starts_with("kubectl"),
        "{crd_create:?}"
    );
    assert!(records.iter().any(|r| {
        (r.verb.as_str(), r.resource.as_str(), r.namespace.as_str()) == ("create", "namespaces", "")
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_subresource_writes_are_audited_as_subresource_status() {
    let server = after_kubectl().await;
    server.clear_requests();
    // The fixture CRD may not carry a status subresource; either way the write is audited.
    let status = json!({"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
        "status": {"observedGeneration": 1}});
    let apply = PatchParams::apply("canary-operator");
    let checks = common::healthchecks(&server, "audited");
    let _ = checks
        .patch_status("web", &apply, &Patch::Apply(status))
        .await;
    let records = server.requests();
    let write = records.last().expect("status write audited");
    assert_eq!(
        coordinates(write),
        row(
            [
                "patch",
                "canary.dev",
                "healthchecks",
                "status",
                "audited",
                "web"
            ],
            write.code
        )
    );
}

#[tokio::test]
async fn the_audit_buffer_keeps_only_the_newest_records() {
    let server = canary_test_apiserver::start(Options {
        audit_capacity: 5,
        ..Default::default()
    })
    .await
    .expect("server starts");
    let api: Api<ConfigMap> = Api::default_namespaced(common::client(&server));
    for _ in 0..8 {
        assert!(api.get("nothing").await.is_err());
    }
    api.list(&ListParams::default()).await.expect("list");
    let records = server.requests();
    assert_eq!(records.len(), 5);
    assert_eq!(records.last().map(|r| r.verb.as_str()), Some("list"));
    assert_eq!(server.requests_dropped(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_writes_to_an_object_stored_without_validation_succeed_and_keep_generation() {
    let server = common::server().await;
    let kubectl = common::kubectl(&server);
    kubectl
        .ok(&["apply", "-f", &common::fixture("healthcheck-crd.yaml")])
        .await;
    server.set_validation(false);
    // Invalid (timeout >= interval) and without the defaults the schema would add.
    let invalid = "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {name: slipped}\n\
                   spec: {kind: HTTP, interval: 1s, timeout: 5s, http: {url: 'http://x'}}\n";
    kubectl.ok_stdin(&["apply", "-f", "-"], invalid).await;
    server.set_validation(true);
    let checks = common::healthchecks(&server, "default");
    let written = checks
        .patch_status(
            "slipped",
            &PatchParams::apply("canary-operator"),
            &Patch::Apply(json!({"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
                "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "InvalidSpec",
                    "message": "timeout must be shorter than interval",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})),
        )
        .await
        .expect("the unchanged invalid spec is ratcheted");
    assert_eq!(
        written.metadata.generation,
        Some(1),
        "status writes keep generation"
    );
    let edit = checks
        .patch(
            "slipped",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"timeout": "6s"}})),
        )
        .await
        .expect_err("a changed invalid field is still rejected");
    match edit {
        kube::Error::Api(status) => assert_eq!(status.code, 422, "{status:?}"),
        other => panic!("expected 422, got {other:?}"),
    }
}
