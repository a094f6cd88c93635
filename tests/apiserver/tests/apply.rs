//! Server-side apply as kube-apiserver answers it: bodies checked by the field manager (a field
//! the CRD does not declare is a 500, another apiVersion or `managedFields` a 400, no
//! `fieldManager` a 422), and list-maps such as `status.conditions` owned per key.

mod common;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// A server with the fixture CRD and HealthCheck `default/x`.
async fn with_check() -> (canary_test_apiserver::Server, Api<DynamicObject>) {
    let server = common::server().await;
    common::install_crd(&common::client(&server)).await;
    let api = common::healthchecks(&server, "default");
    let check: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
        "metadata": {"name": "x"}, "spec": {"kind": "TCP"}}))
    .expect("object");
    api.create(&PostParams::default(), &check)
        .await
        .expect("create");
    (server, api)
}

fn status_body(status: Value) -> Value {
    json!({"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck", "status": status})
}

/// The Status of a failed call.
fn status_of<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_apply_naming_a_field_the_crd_does_not_declare_is_a_500_and_writes_nothing() {
    let (_server, api) = with_check().await;
    let body = status_body(json!({"consecutiveFailures": 2, "probedBy": "canary-0"}));
    let params = PatchParams::apply("canary-operator").force();
    let status = status_of(api.patch_status("x", &params, &Patch::Apply(&body)).await);
    assert_eq!(status.code, 500);
    assert_eq!(
        status.message,
        "failed to create typed patch object (/; canary.dev/v1alpha1, Kind=HealthCheck): \
         .status.probedBy: field not declared in schema"
    );
    assert_eq!(
        status.reason, "",
        "kube's answer is not a Status error: no reason"
    );
    let stored = api.get("x").await.expect("get");
    assert!(
        stored.data.get("status").is_none(),
        "nothing written: {stored:?}"
    );
    let named = json!({"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
        "metadata": {"name": "x", "namespace": "default"}, "spec": {"kind": "TCP", "bogus": 1}});
    let status = status_of(api.patch("x", &params, &Patch::Apply(&named)).await);
    assert_eq!(
        (status.code, status.message.as_str()),
        (
            500,
            "failed to create typed patch object (default/x; canary.dev/v1alpha1, Kind=HealthCheck): \
             .spec.bogus: field not declared in schema"
        )
    );
    let declared = status_body(json!({"consecutiveFailures": 2}));
    let written = api
        .patch_status("x", &params, &Patch::Apply(&declared))
        .await;
    assert_eq!(
        written.expect("declared fields apply").data["status"]["consecutiveFailures"],
        2
    );
}

#[tokio::test]
async fn apply_bodies_must_carry_the_urls_group_version_and_kind_and_no_managed_fields() {
    let (_server, api) = with_check().await;
    let params = PatchParams::apply("tester");
    let mut other = status_body(json!({}));
    other["apiVersion"] = json!("canary.dev/v1beta1");
    let status = status_of(api.patch_status("x", &params, &Patch::Apply(&other)).await);
    assert_eq!(
        (status.code, status.reason.as_str(), status.message.as_str()),
        (
            400,
            "BadRequest",
            "invalid object type: canary.dev/v1beta1, Kind=HealthCheck"
        )
    );
    let mut managed = status_body(json!({}));
    managed["metadata"] = json!({"managedFields": [{"manager": "me", "operation": "Apply"}]});
    let status = status_of(
        api.patch_status("x", &params, &Patch::Apply(&managed))
            .await,
    );
    assert_eq!(
        (status.code, status.message.as_str()),
        (400, "metadata.managedFields must be nil")
    );
}

#[tokio::test]
async fn an_apply_without_a_field_manager_is_invalid_patch_options() {
    let (server, _api) = with_check().await;
    let client = common::client(&server);
    let request =
        http::Request::patch("/apis/canary.dev/v1alpha1/namespaces/default/healthchecks/x")
            .header("Content-Type", "application/apply-patch+yaml")
            .body(status_body(json!({})).to_string().into_bytes())
            .expect("request");
    let status = status_of(client.request::<Value>(request).await);
    assert_eq!(
        (status.code, status.reason.as_str(), status.message.as_str()),
        (
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
        )
    );
    let details = status.details.expect("details");
    assert_eq!(
        (details.group.as_str(), details.kind.as_str()),
        ("meta.k8s.io", "PatchOptions")
    );
    assert_eq!(details.causes[0].field, "fieldManager");
}

fn conditions(types: &[&str]) -> Value {
    let items: Vec<Value> = (types.iter())
        .map(|t| json!({"type": t, "status": "True", "reason": "R", "lastTransitionTime": "2025-01-01T00:00:00Z"}))
        .collect();
    status_body(json!({"conditions": items}))
}

async fn types_after(api: &Api<DynamicObject>, manager: &str, types: &[&str]) -> Vec<String> {
    let params = PatchParams::apply(manager);
    let body = conditions(types);
    let applied = api.patch_status("x", &params, &Patch::Apply(&body)).await;
    let applied = applied.unwrap_or_else(|e| panic!("{manager} applies {types:?}: {e}"));
    (applied.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten())
    .filter_map(|c| c["type"].as_str().map(str::to_string))
    .collect()
}

#[tokio::test]
async fn conditions_are_merged_per_type_and_another_appliers_condition_survives() {
    let (_server, api) = with_check().await;
    assert_eq!(
        types_after(&api, "canary", &["Ready", "Stalled"]).await,
        ["Ready", "Stalled"]
    );
    assert_eq!(
        types_after(&api, "other", &["Custom"]).await,
        ["Ready", "Stalled", "Custom"],
        "an apply of one item leaves the others"
    );
    assert_eq!(
        types_after(&api, "canary", &["Ready"]).await,
        ["Ready", "Custom"],
        "Stalled, omitted by its only applier, is removed; Custom, another's, stays"
    );
    let stored = api.get("x").await.expect("get");
    let entries = stored.metadata.managed_fields.expect("managedFields");
    let other = entries
        .iter()
        .find(|e| e.manager.as_deref() == Some("other"))
        .expect("other");
    assert_eq!(other.subresource.as_deref(), Some("status"));
    let fields = serde_json::to_value(&other.fields_v1).expect("fieldsV1");
    assert!(
        fields["f:status"]["f:conditions"]["k:{\"type\":\"Custom\"}"]["."].is_object(),
        "{fields}"
    );
}
