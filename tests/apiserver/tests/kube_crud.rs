//! kube-rs against the server: CRUD, conflicts, patches, selectors, pagination, Status errors.

mod common;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"a": "1"}}),
    )
    .expect("configmap")
}

/// Creates `object` with `api`, failing the test with `what`.
async fn create<K>(api: &Api<K>, object: &K, what: &str) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.create(&PostParams::default(), object)
        .await
        .expect(what)
}

/// The status code of an API error.
fn code<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> u16 {
    api_status(result.expect_err("an API error")).code
}

fn api_status(err: kube::Error) -> Box<kube::core::Status> {
    match err {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn configmap_crud_with_conflicts_and_patches() {
    let (_server, api) = common::configmaps().await;
    let created = create(&api, &cm("c1", json!({"app": "web"})), "create").await;
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    let dup = api_status(
        api.create(&PostParams::default(), &cm("c1", json!({})))
            .await
            .expect_err("duplicate"),
    );
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));

    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.data = Some([("a".to_string(), "2".to_string())].into());
    api.replace("c1", &PostParams::default(), &fresh)
        .await
        .expect("replace");
    stale.data = Some([("a".to_string(), "3".to_string())].into());
    let conflict = api_status(
        api.replace("c1", &PostParams::default(), &stale)
            .await
            .expect_err("stale"),
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));

    let merge = Patch::Merge(json!({"data": {"b": "2"}}));
    api.patch("c1", &PatchParams::default(), &merge)
        .await
        .expect("merge patch");
    let ops: json_patch::Patch =
        serde_json::from_value(json!([{"op": "add", "path": "/data/c", "value": "3"}]))
            .expect("ops");
    api.patch("c1", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .expect("json patch");
    let apply = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"d": "4"}});
    let applied = api
        .patch("c1", &PatchParams::apply("tester"), &Patch::Apply(&apply))
        .await
        .expect("apply");
    let data = applied.data.expect("data");
    assert_eq!(
        data.keys().cloned().collect::<Vec<_>>(),
        ["a", "b", "c", "d"]
    );
    assert!(
        applied
            .metadata
            .managed_fields
            .expect("managed")
            .iter()
            .any(|m| m.manager.as_deref() == Some("tester"))
    );

    api.delete("c1", &DeleteParams::default())
        .await
        .expect("delete");
    let gone = api_status(api.get("c1").await.expect_err("deleted"));
    assert_eq!(
        (gone.code, gone.reason.as_str(), gone.message.as_str()),
        (404, "NotFound", "configmaps \"c1\" not found")
    );
}

#[tokio::test]
async fn list_filters_by_selectors_and_paginates() {
    let (_server, api) = common::configmaps().await;
    for (name, tier) in [("a", "front"), ("b", "back"), ("c", "front"), ("d", "db")] {
        api.create(&PostParams::default(), &cm(name, json!({"tier": tier})))
            .await
            .expect("create");
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect::<Vec<_>>()
    };
    let front = api
        .list(&ListParams::default().labels("tier=front"))
        .await
        .expect("list");
    assert_eq!(names(front), ["a", "c"]);
    let set = api
        .list(&ListParams::default().labels("tier notin (front),tier"))
        .await
        .expect("list");
    assert_eq!(names(set), ["b", "d"]);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=d"))
        .await
        .expect("list");
    assert_eq!(names(by_name), ["d"]);
    let first = api
        .list(&ListParams::default().limit(3))
        .await
        .expect("page 1");
    let token = first.metadata.continue_.clone().expect("continue token");
    assert_eq!(first.items.len(), 3);
    let second = api
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .expect("page 2");
    assert_eq!(names(second), ["d"]);
}

#[tokio::test]
async fn create_in_missing_namespace_is_not_found_and_generate_name_works() {
    let server = common::server().await;
    let client = common::client(&server);
    let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "nope");
    let err = api_status(
        missing
            .create(&PostParams::default(), &cm("x", json!({})))
            .await
            .expect_err("no namespace"),
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let generated: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "gen-"}})).expect("cm");
    let made = create(&api, &generated, "create").await;
    assert!(made.metadata.name.expect("name").starts_with("gen-"));
    let namespaces: Api<Namespace> = Api::all(client);
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(
        ["default", "kube-system", "kube-public"]
            .iter()
            .all(|n| names.contains(&n.to_string()))
    );
}

#[tokio::test]
async fn deleting_a_namespace_removes_its_objects_and_finalizers_delay_deletion() {
    let server = common::server().await;
    let client = common::client(&server);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).expect("ns");
    create(&namespaces, &ns, "create ns").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    create(&api, &cm("keep", json!({})), "create").await;
    let mut held = cm("held", json!({}));
    held.metadata.finalizers = Some(vec!["canary.dev/hold".into()]);
    create(&api, &held, "create held").await;
    api.delete("held", &DeleteParams::default())
        .await
        .expect("delete held");
    let marked = api.get("held").await.expect("still there");
    assert!(marked.metadata.deletion_timestamp.is_some());
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("unfinalize");
    assert_eq!(code(api.get("held").await), 404, "gone");
    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .expect("delete ns");
    assert_eq!(code(api.get("keep").await), 404, "gone with namespace");
}

#[tokio::test]
async fn owner_references_are_garbage_collected() {
    let (_server, api) = common::configmaps().await;
    let owner = create(&api, &cm("owner", json!({})), "owner").await;
    let mut child = cm("child", json!({}));
    child.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "owner".into(),
            uid: owner.metadata.uid.expect("uid"),
            ..Default::default()
        },
    ]);
    create(&api, &child, "child").await;
    let deleted = api.delete("owner", &DeleteParams::background()).await;
    deleted.expect("delete owner");
    let child = api.get("child").await;
    assert_eq!(code(child), 404, "collected with its owner");
}

#[tokio::test]
async fn label_selector_watch_sees_objects_enter_and_leave() {
    use futures::StreamExt;
    use kube::api::{WatchEvent, WatchParams};
    let (_server, api) = common::configmaps().await;
    let created = create(&api, &cm("w", json!({"app": "other"})), "create").await;
    let rv = created.metadata.resource_version.expect("rv");
    let mut events = api
        .watch(&WatchParams::default().labels("app=web"), &rv)
        .await
        .expect("watch")
        .boxed();
    let relabel = |app: &str| Patch::Merge(json!({"metadata": {"labels": {"app": app}}}));
    api.patch("w", &PatchParams::default(), &relabel("web"))
        .await
        .expect("enter");
    api.patch("w", &PatchParams::default(), &relabel("gone"))
        .await
        .expect("leave");
    let mut kinds = vec![];
    while kinds.len() < 2 {
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), events.next()).await;
        match next
            .expect("event in time")
            .expect("stream open")
            .expect("event")
        {
            WatchEvent::Added(_) => kinds.push("ADDED"),
            WatchEvent::Deleted(_) => kinds.push("DELETED"),
            WatchEvent::Modified(_) => kinds.push("MODIFIED"),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(kinds, ["ADDED", "DELETED"]);
}

#[tokio::test]
async fn strategic_merge_patch_and_deletecollection_on_deployments() {
    use k8s_openapi::api::apps::v1::Deployment;
    let server = common::server().await;
    let api: Api<Deployment> = Api::default_namespaced(common::client(&server));
    for name in ["one", "two"] {
        let dep: Deployment = serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": "x"}},
            "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}}))
        .expect("deployment");
        let made = create(&api, &dep, "create").await;
        assert_eq!(made.metadata.generation, Some(1));
    }
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}});
    let patched = api
        .patch("one", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("strategic");
    let images: Vec<String> = patched
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers
        .into_iter()
        .filter_map(|c| c.image)
        .collect();
    assert_eq!(images, ["a:1", "b:2"]);
    assert_eq!(patched.metadata.generation, Some(2));
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=x"),
    )
    .await
    .expect("deletecollection");
    assert!(
        api.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn server_side_apply_conflicts_name_the_manager_and_force_takes_over() {
    let (_server, api) = common::configmaps().await;
    let doc = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"a": v}});
    api.patch(
        "shared",
        &PatchParams::apply("one"),
        &Patch::Apply(doc("1")),
    )
    .await
    .expect("first apply creates");
    let err = api_status(
        api.patch(
            "shared",
            &PatchParams::apply("two"),
            &Patch::Apply(doc("2")),
        )
        .await
        .expect_err("conflict"),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"one\" using v1: .data.a"
    );
    let forced = api
        .patch(
            "shared",
            &PatchParams::apply("two").force(),
            &Patch::Apply(doc("2")),
        )
        .await
        .expect("forced");
    assert_eq!(forced.data.expect("data")["a"], "2");
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .expect("managed")
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["two"]);
}

#[tokio::test]
async fn watches_end_after_timeout_seconds() {
    use futures::StreamExt;
    let (_server, api) = common::configmaps().await;
    let started = std::time::Instant::now();
    let stream = api
        .watch(&kube::api::WatchParams::default().timeout(1), "0")
        .await
        .expect("watch");
    let drained = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.collect::<Vec<_>>(),
    )
    .await;
    assert!(drained.is_ok(), "watch closed by the server");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
}

#[tokio::test]
async fn pagination_across_namespaces_returns_every_object_once() {
    let server = common::server().await;
    let client = common::client(&server);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in ["a", "a-x"] {
        let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns");
        create(&namespaces, &obj, "create ns").await;
        for name in ["b", "a"] {
            Api::<ConfigMap>::namespaced(client.clone(), ns)
                .create(&PostParams::default(), &cm(name, json!({})))
                .await
                .expect("create");
        }
    }
    let all: Api<ConfigMap> = Api::all(client);
    let (mut seen, mut token) = (vec![], None::<String>);
    loop {
        let mut lp = ListParams::default().limit(1);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = all.list(&lp).await.expect("page");
        seen.extend(page.items.into_iter().map(|c| {
            format!(
                "{}/{}",
                c.metadata.namespace.unwrap_or_default(),
                c.metadata.name.unwrap_or_default()
            )
        }));
        token = page.metadata.continue_;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["a/a", "a/b", "a-x/a", "a-x/b"]);
}
