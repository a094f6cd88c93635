//! Validation kube-apiserver applies that the local server models: CRD validation ratcheting
//! (on since kube 1.30, off in 1.28/1.29), Leases and Events.

mod common;

use canary_test_apiserver::Options;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

/// A server with the fixture CRD and HealthCheck `default/x` (interval 1m), whose CRD then
/// gets a stricter pattern for `spec.interval` (seconds only) that the stored object breaks.
async fn stored_before_a_stricter_rule(
    ratcheting: bool,
) -> (canary_test_apiserver::Server, Api<DynamicObject>) {
    let server = canary_test_apiserver::start(Options {
        ratcheting,
        ..Options::default()
    })
    .await
    .expect("server starts");
    let client = common::client(&server);
    common::install_crd(&client).await;
    let api = common::healthchecks(&server, "default");
    let check: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
        "metadata": {"name": "x"}, "spec": {"kind": "TCP", "interval": "1m"}}))
    .expect("object");
    api.create(&PostParams::default(), &check)
        .await
        .expect("create");
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let pattern = json!([{"op": "replace",
        "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/interval/pattern",
        "value": "^[0-9]+s$"}]);
    let patch = Patch::Json::<()>(serde_json::from_value(pattern).expect("json patch"));
    crds.patch("healthchecks.canary.dev", &PatchParams::default(), &patch)
        .await
        .expect("stricter CRD");
    (server, api)
}

async fn write_status(
    api: &Api<DynamicObject>,
    failures: i64,
) -> Result<DynamicObject, kube::Error> {
    let body = json!({"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
        "status": {"consecutiveFailures": failures}});
    let params = PatchParams::apply("canary-operator").force();
    api.patch_status("x", &params, &Patch::Apply(&body)).await
}

#[tokio::test]
async fn with_ratcheting_a_status_write_passes_an_object_stored_before_a_stricter_rule() {
    let (_server, api) = stored_before_a_stricter_rule(true).await;
    for failures in 1..=2 {
        let written = write_status(&api, failures).await.expect("status write");
        assert_eq!(written.data["status"]["consecutiveFailures"], failures);
    }
    let edit = Patch::Merge(json!({"spec": {"interval": "2m"}}));
    let refused = api.patch("x", &PatchParams::default(), &edit).await;
    assert!(
        matches!(refused, Err(kube::Error::Api(ref s)) if s.code == 422),
        "a changed field is validated: {refused:?}"
    );
}

#[tokio::test]
async fn without_ratcheting_every_status_write_of_such_an_object_is_refused() {
    let (_server, api) = stored_before_a_stricter_rule(false).await;
    for failures in 1..=2 {
        match write_status(&api, failures).await {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 422);
                assert!(
                    s.message.ends_with(
                        "spec.interval: Invalid value: \"1m\": spec.interval in body should match '^[0-9]+s$'"
                    ),
                    "{}",
                    s.message
                );
            }
            other => panic!("expected 422, got {other:?}"),
        }
    }
}
