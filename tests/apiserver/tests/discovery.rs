//! Discovery, start-up time and authentication.

mod common;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::discovery::Discovery;
use std::time::{Duration, Instant};

#[tokio::test]
async fn aggregated_discovery_requests_get_legacy_json() {
    let server = common::server().await;
    let accept =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let (head, body) = common::raw_get(&server, "/apis", accept).await;
    assert!(
        head.starts_with("HTTP/1.1 200")
            && head
                .to_lowercase()
                .contains("content-type: application/json\r\n"),
        "{head}"
    );
    let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(doc["kind"], "APIGroupList");
    let (_, version) = common::raw_get(&server, "/version", "application/json").await;
    assert!(version.contains("\"minor\":\"35\""), "{version}");
}

#[tokio::test]
async fn discovery_lists_builtins_and_crd_resources_with_short_names() {
    let server = common::server().await;
    let client = common::client(&server);
    let text = std::fs::read_to_string(common::fixture("healthcheck-crd.yaml")).expect("read");
    let crd: CustomResourceDefinition = serde_saphyr::from_str(&text).expect("parse");
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .expect("create crd");
    let discovery = Discovery::new(client).run().await.expect("discovery");
    let kinds: std::collections::BTreeSet<String> = (discovery.groups())
        .flat_map(|g| g.recommended_resources())
        .map(|(ar, _)| ar.kind)
        .collect();
    let wanted = ["ConfigMap", "Deployment", "Lease", "ClusterRole"]
        .into_iter()
        .chain(["PodDisruptionBudget", "NetworkPolicy", "HealthCheck"]);
    let missing: Vec<&str> = wanted.filter(|k| !kinds.contains(*k)).collect();
    assert!(missing.is_empty(), "{missing:?} missing from {kinds:?}");
    let (_, body) = common::raw_get(&server, "/apis/canary.dev/v1alpha1", "application/json").await;
    let list: serde_json::Value = serde_json::from_str(&body).expect("json");
    let hc = &list["resources"][0];
    assert_eq!(
        (
            hc["name"].as_str(),
            hc["shortNames"][0].as_str(),
            hc["categories"][0].as_str()
        ),
        (Some("healthchecks"), Some("chc"), Some("canary"))
    );
    assert_eq!(list["resources"][1]["name"], "healthchecks/status");
}

#[tokio::test]
async fn starts_fast_and_requires_the_configured_token() {
    // The fastest of three starts, so a busy machine does not make this flaky.
    let mut fastest = Duration::MAX;
    let mut servers = vec![];
    for _ in 0..3 {
        let started = Instant::now();
        let opts = canary_test_apiserver::Options {
            token: Some("s3cret".into()),
            ..Default::default()
        };
        servers.push(canary_test_apiserver::start(opts).await.expect("start"));
        fastest = fastest.min(started.elapsed());
    }
    assert!(
        fastest < Duration::from_millis(100),
        "start-up took {fastest:?}"
    );
    let server = servers.pop().expect("a server");
    let anonymous: Api<ConfigMap> = Api::default_namespaced(common::client(&server));
    match anonymous.list(&Default::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 401),
        other => panic!("expected 401, got {other:?}"),
    }
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(server.kubeconfig_path()).expect("kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("config");
    let authed: Api<ConfigMap> =
        Api::default_namespaced(kube::Client::try_from(config).expect("client"));
    authed
        .list(&Default::default())
        .await
        .expect("token accepted");
}

#[tokio::test]
async fn cluster_scoped_crds_serve_cluster_scoped_objects() {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let server = common::server().await;
    let client = common::client(&server);
    let crd: CustomResourceDefinition = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "probes.canary.dev"},
        "spec": {"group": "canary.dev", "scope": "Cluster",
            "names": {"plural": "probes", "singular": "probe", "kind": "Probe"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"target": {"type": "string"}}}}}}}]}
    }))
    .expect("crd");
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .expect("create crd");
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("canary.dev", "v1", "Probe"),
        "probes",
    );
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let mut obj = DynamicObject::new("p1", &ar);
    obj.data = serde_json::json!({"spec": {"target": "db", "dropped": true}});
    let made = api
        .create(&PostParams::default(), &obj)
        .await
        .expect("create");
    assert_eq!(made.metadata.namespace, None);
    assert_eq!(
        made.data["spec"],
        serde_json::json!({"target": "db"}),
        "unknown field pruned"
    );
    assert_eq!(
        api.list(&Default::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    Api::<CustomResourceDefinition>::all(client)
        .delete("probes.canary.dev", &Default::default())
        .await
        .expect("delete crd");
    assert!(api.get("p1").await.is_err(), "objects go with their CRD");
}

#[tokio::test]
async fn crds_with_untyped_fields_or_broken_rules_are_rejected() {
    let server = common::server().await;
    let api: Api<CustomResourceDefinition> = Api::all(common::client(&server));
    let crd: CustomResourceDefinition = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "bads.canary.dev"},
        "spec": {"group": "canary.dev", "scope": "Namespaced", "names": {"plural": "bads", "kind": "Bad"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-validations": [{"rule": "self.("}],
                        "properties": {"untyped": {"description": "x"}}}}}}}]}
    }))
    .expect("crd");
    match api.create(&PostParams::default(), &crd).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
            assert!(s.message.starts_with("CustomResourceDefinition.apiextensions.k8s.io \"bads.canary.dev\" is invalid: ["), "{}", s.message);
            assert!(
                s.message
                    .contains("properties[spec].properties[untyped].type: Required value"),
                "{}",
                s.message
            );
            assert!(
                s.message
                    .contains("properties[spec].x-kubernetes-validations[0].rule: Invalid value"),
                "{}",
                s.message
            );
        }
        other => panic!("expected 422, got {other:?}"),
    }
}

#[tokio::test]
async fn ingresses_and_gateway_api_routes_are_served_once_their_crds_exist() {
    use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let server = common::server().await;
    let client = common::client(&server);
    let ingress: Ingress = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"rules": [{"host": "web.test"}]},
    }))
    .expect("ingress");
    Api::<Ingress>::default_namespaced(client.clone())
        .create(&PostParams::default(), &ingress)
        .await
        .expect("create ingress");
    let class: IngressClass =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "nginx"}})).expect("class");
    Api::<IngressClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await
        .expect("create ingress class");
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "httproutes");
    let routes = Api::<DynamicObject>::default_namespaced_with(client.clone(), &resource);
    let mut route = DynamicObject::new("app", &resource);
    route.data = serde_json::json!({"spec": {"hostnames": ["app.test"]}});
    let absent = routes.create(&PostParams::default(), &route).await;
    assert!(
        matches!(&absent, Err(kube::Error::Api(s)) if s.code == 404),
        "{absent:?}"
    );
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in canary_test_apiserver::gateway_api_crds() {
        let crd = serde_json::from_value(crd).expect("crd");
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("create gateway api crd");
    }
    let created = routes
        .create(&PostParams::default(), &route)
        .await
        .expect("create route");
    assert_eq!(created.data["spec"]["hostnames"][0], "app.test");
}
