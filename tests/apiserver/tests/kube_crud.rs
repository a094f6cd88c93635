//! kube-rs against the server: CRUD, conflicts, patches, selectors, pagination, Status errors.

mod common;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": {"a": "1"}})).expect("configmap")
}

fn api_status(err: kube::Error) -> Box<kube::core::Status> {
    match err {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn configmap_crud_with_conflicts_and_patches() {
    let server = common::server().await;
    let api: Api<ConfigMap> = Api::default_namespaced(common::client(&server));
    let created = api.create(&PostParams::default(), &cm("c1", json!({"app": "web"}))).await.expect("create");
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    let dup = api_status(api.create(&PostParams::default(), &cm("c1", json!({}))).await.expect_err("duplicate"));
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));

    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.data = Some([("a".to_string(), "2".to_string())].into());
    api.replace("c1", &PostParams::default(), &fresh).await.expect("replace");
    stale.data = Some([("a".to_string(), "3".to_string())].into());
    let conflict = api_status(api.replace("c1", &PostParams::default(), &stale).await.expect_err("stale"));
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));

    let merge = Patch::Merge(json!({"data": {"b": "2"}}));
    api.patch("c1", &PatchParams::default(), &merge).await.expect("merge patch");
    let ops: json_patch::Patch = serde_json::from_value(json!([{"op": "add", "path": "/data/c", "value": "3"}])).expect("ops");
    api.patch("c1", &PatchParams::default(), &Patch::Json::<()>(ops)).await.expect("json patch");
    let apply = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"d": "4"}});
    let applied = api.patch("c1", &PatchParams::apply("tester"), &Patch::Apply(&apply)).await.expect("apply");
    let data = applied.data.expect("data");
    assert_eq!(data.keys().cloned().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    assert!(applied.metadata.managed_fields.expect("managed").iter().any(|m| m.manager.as_deref() == Some("tester")));

    api.delete("c1", &DeleteParams::default()).await.expect("delete");
    let gone = api_status(api.get("c1").await.expect_err("deleted"));
    assert_eq!((gone.code, gone.reason.as_str(), gone.message.as_str()), (404, "NotFound", "configmaps \"c1\" not found"));
}

#[tokio::test]
async fn list_filters_by_selectors_and_paginates() {
    let server = common::server().await;
    let api: Api<ConfigMap> = Api::default_namespaced(common::client(&server));
    for (name, tier) in [("a", "front"), ("b", "back"), ("c", "front"), ("d", "db")] {
        api.create(&PostParams::default(), &cm(name, json!({"tier": tier}))).await.expect("create");
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| l.items.into_iter().filter_map(|c| c.metadata.name).collect::<Vec<_>>();
    let front = api.list(&ListParams::default().labels("tier=front")).await.expect("list");
    assert_eq!(names(front), ["a", "c"]);
    let set = api.list(&ListParams::default().labels("tier notin (front),tier")).await.expect("list");
    assert_eq!(names(set), ["b", "d"]);
    let by_name = api.list(&ListParams::default().fields("metadata.name=d")).await.expect("list");
    assert_eq!(names(by_name), ["d"]);
    let first = api.list(&ListParams::default().limit(3)).await.expect("page 1");
    let token = first.metadata.continue_.clone().expect("continue token");
    assert_eq!(first.items.len(), 3);
    let second = api.list(&ListParams::default().limit(3).continue_token(&token)).await.expect("page 2");
    assert_eq!(names(second), ["d"]);
}

#[tokio::test]
async fn create_in_missing_namespace_is_not_found_and_generate_name_works() {
    let server = common::server().await;
    let client = common::client(&server);
    let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "nope");
    let err = api_status(missing.create(&PostParams::default(), &cm("x", json!({}))).await.expect_err("no namespace"));
    assert_eq!((err.code, err.message.as_str()), (404, "namespaces \"nope\" not found"));
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let generated: ConfigMap = serde_json::from_value(json!({"metadata": {"generateName": "gen-"}})).expect("cm");
    let made = api.create(&PostParams::default(), &generated).await.expect("create");
    assert!(made.metadata.name.expect("name").starts_with("gen-"));
    let namespaces: Api<Namespace> = Api::all(client);
    let names: Vec<String> = namespaces.list(&ListParams::default()).await.expect("list").items.into_iter().filter_map(|n| n.metadata.name).collect();
    assert!(["default", "kube-system", "kube-public"].iter().all(|n| names.contains(&n.to_string())));
}

#[tokio::test]
async fn deleting_a_namespace_removes_its_objects_and_finalizers_delay_deletion() {
    let server = common::server().await;
    let client = common::client(&server);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).expect("ns");
    namespaces.create(&PostParams::default(), &ns).await.expect("create ns");
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    api.create(&PostParams::default(), &cm("keep", json!({}))).await.expect("create");
    let mut held = cm("held", json!({}));
    held.metadata.finalizers = Some(vec!["canary.dev/hold".into()]);
    api.create(&PostParams::default(), &held).await.expect("create held");
    api.delete("held", &DeleteParams::default()).await.expect("delete held");
    let marked = api.get("held").await.expect("still there");
    assert!(marked.metadata.deletion_timestamp.is_some());
    api.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.expect("unfinalize");
    assert_eq!(api_status(api.get("held").await.expect_err("gone")).code, 404);
    namespaces.delete("team", &DeleteParams::default()).await.expect("delete ns");
    assert_eq!(api_status(api.get("keep").await.expect_err("gone with namespace")).code, 404);
}

#[tokio::test]
async fn owner_references_are_garbage_collected() {
    let server = common::server().await;
    let api: Api<ConfigMap> = Api::default_namespaced(common::client(&server));
    let owner = api.create(&PostParams::default(), &cm("owner", json!({}))).await.expect("owner");
    let mut child = cm("child", json!({}));
    child.metadata.owner_references = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.expect("uid"),
        ..Default::default()
    }]);
    api.create(&PostParams::default(), &child).await.expect("child");
    api.delete("owner", &DeleteParams::background()).await.expect("delete owner");
    assert_eq!(api_status(api.get("child").await.expect_err("collected")).code, 404);
}
