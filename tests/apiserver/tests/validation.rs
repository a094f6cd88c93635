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

fn lease(name: &str, duration: i32) -> k8s_openapi::api::coordination::v1::Lease {
    serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"holderIdentity": "canary-0", "leaseDurationSeconds": duration}}))
    .expect("lease")
}

#[tokio::test]
async fn leases_need_a_positive_duration_and_updates_need_a_resource_version() {
    let server = common::server().await;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::default_namespaced(common::client(&server));
    match leases
        .create(&PostParams::default(), &lease("zero", 0))
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(
            (s.code, s.message.as_str()),
            (
                422,
                "Lease.coordination.k8s.io \"zero\" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
            )
        ),
        other => panic!("expected 422, got {other:?}"),
    }
    let created = leases
        .create(&PostParams::default(), &lease("l", 15))
        .await
        .expect("create");
    let mut unconditional = created.clone();
    unconditional.metadata.resource_version = None;
    match leases
        .replace("l", &PostParams::default(), &unconditional)
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(
            (s.code, s.message.as_str()),
            (
                422,
                "leases.coordination.k8s.io \"l\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
            )
        ),
        other => panic!("expected 422, got {other:?}"),
    }
    leases
        .replace("l", &PostParams::default(), &created)
        .await
        .expect("conditional update");
}

#[tokio::test]
async fn a_recorder_whose_instance_is_too_long_gets_its_events_refused() {
    use k8s_openapi::api::core::v1::ObjectReference;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let server = common::server().await;
    let client = common::client(&server);
    let event = Event {
        type_: EventType::Warning,
        reason: "Timeout".into(),
        note: Some("no answer".into()),
        action: "Probe".into(),
        secondary: None,
    };
    let reference = ObjectReference {
        api_version: Some("canary.dev/v1alpha1".into()),
        kind: Some("HealthCheck".into()),
        namespace: Some("default".into()),
        name: Some("web".into()),
        ..Default::default()
    };
    let recorder = |instance: String| {
        let reporter = Reporter {
            controller: "canary-operator".into(),
            instance: Some(instance),
        };
        Recorder::new(client.clone(), reporter)
    };
    recorder("canary-0".into())
        .publish(&event, &reference)
        .await
        .expect("a valid Event");
    match recorder("x".repeat(129)).publish(&event, &reference).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert!(
                s.message.ends_with(
                    "reportingInstance: Invalid value: \"\": can have at most 128 characters"
                ),
                "{}",
                s.message
            );
        }
        other => panic!("expected 422, got {other:?}"),
    }
}
