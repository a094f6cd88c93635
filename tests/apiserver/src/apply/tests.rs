use super::*;
use std::sync::Arc;

fn crd() -> Value {
    serde_saphyr::from_str(include_str!("../../tests/fixtures/healthcheck-crd.yaml"))
        .expect("fixture CRD parses")
}

fn target(rt: crate::registry::ResourceType, version: &str, sub: Option<&str>) -> Target {
    Target {
        rt: Arc::new(rt),
        version: version.into(),
        namespace: "n".into(),
        name: Some("x".into()),
        sub: sub.map(str::to_string),
    }
}

fn configmaps() -> Target {
    let reg = crate::registry::Registry::default();
    let rt = reg
        .lookup("", "v1", "configmaps")
        .expect("configmaps are served");
    target((*rt).clone(), "v1", None)
}

fn status(sub: Option<&str>) -> Target {
    target(crate::crd::resource_type(&crd()), "v1alpha1", sub)
}

fn apply(t: &Target, live: &Value, body: &Value, manager: &str) -> Value {
    server_side_apply(t, live, body, &Writer::new(t, manager), false).expect("apply")
}

fn managers(object: &Value) -> Vec<&str> {
    (object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten())
    .filter_map(|e| e["manager"].as_str())
    .collect()
}

#[test]
fn apply_creates_then_removes_fields_it_no_longer_applies() {
    let t = configmaps();
    let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
    let live = apply(&t, &json!({}), &first, "me");
    assert_eq!(
        live["metadata"]["managedFields"][0]["fieldsV1"]["f:data"]["f:a"],
        json!({})
    );
    let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "3"}});
    let live = apply(&t, &live, &second, "me");
    assert_eq!(live["data"], json!({"a": "3"}));
}

#[test]
fn other_manager_conflicts_unless_forced() {
    let t = configmaps();
    let live = apply(&t, &json!({}), &json!({"data": {"a": "1"}}), "one");
    let other = json!({"data": {"a": "2"}});
    match server_side_apply(&t, &live, &other, &Writer::new(&t, "two"), false) {
        Err(ApplyError::Conflicts(c)) => assert_eq!(
            c,
            vec![("one".to_string(), "v1".to_string(), ".data.a".to_string())]
        ),
        Ok(_) => panic!("expected a conflict"),
    }
    let forced = server_side_apply(&t, &live, &other, &Writer::new(&t, "two"), true);
    let forced = forced.expect("forced");
    assert_eq!(forced["data"]["a"], "2");
    assert_eq!(managers(&forced), vec!["two"]);
}

#[test]
fn updates_take_ownership_of_changed_fields() {
    let t = configmaps();
    let old = apply(&t, &json!({}), &json!({"data": {"a": "1"}}), "one");
    let mut new = old.clone();
    new["data"]["a"] = json!("9");
    record_update(&t, Some(&old), &mut new, &Writer::new(&t, "editor"));
    assert_eq!(managers(&new), vec!["editor"]);
}

fn conditions(types: &[&str]) -> Value {
    let items: Vec<Value> = (types.iter())
        .map(|t| json!({"type": t, "status": "True", "message": format!("{t} by apply")}))
        .collect();
    json!({"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck", "status": {"conditions": items}})
}

fn condition_types(object: &Value) -> Vec<&str> {
    (object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten())
    .filter_map(|c| c["type"].as_str())
    .collect()
}

#[test]
fn conditions_are_owned_per_type_and_an_omitted_one_is_removed_unless_another_applier_has_it() {
    let t = status(Some("status"));
    let live = apply(&t, &json!({}), &conditions(&["Ready", "Stalled"]), "canary");
    let live = apply(&t, &live, &conditions(&["Custom", "Ready"]), "other");
    let fields = &live["metadata"]["managedFields"][1]["fieldsV1"]["f:status"]["f:conditions"];
    assert!(
        fields["k:{\"type\":\"Custom\"}"]["."].is_object(),
        "{fields}"
    );
    assert_eq!(
        live["metadata"]["managedFields"][0]["subresource"],
        "status"
    );
    let live = apply(&t, &live, &conditions(&["Stalled"]), "canary");
    assert_eq!(
        condition_types(&live),
        vec!["Ready", "Stalled", "Custom"],
        "Ready stays: the other applier applies it too"
    );
    let live = apply(&t, &live, &conditions(&[]), "canary");
    assert_eq!(condition_types(&live), vec!["Ready", "Custom"]);
}

#[test]
fn an_item_only_updated_by_another_manager_goes_with_its_applier() {
    let t = status(Some("status"));
    let old = apply(&t, &json!({}), &conditions(&["Ready", "Stalled"]), "canary");
    let mut edited = old.clone();
    edited["status"]["conditions"][1]["message"] = json!("edited by hand");
    record_update(
        &t,
        Some(&old),
        &mut edited,
        &Writer::new(&t, "kubectl-edit"),
    );
    assert_eq!(managers(&edited), vec!["canary", "kubectl-edit"]);
    let live = apply(&t, &edited, &conditions(&["Ready"]), "canary");
    assert_eq!(condition_types(&live), vec!["Ready"], "smd prunes the item");
    assert_eq!(managers(&live), vec!["canary"]);
}

#[test]
fn the_main_resource_ignores_status_and_status_ignores_spec() {
    let main = status(None);
    let body = json!({"spec": {"kind": "TCP"}, "status": {"consecutiveFailures": 1}});
    let live = apply(&main, &json!({}), &body, "me");
    assert!(live.get("status").is_none(), "{live}");
    let fields = &live["metadata"]["managedFields"][0]["fieldsV1"];
    assert!(fields.get("f:status").is_none(), "{fields}");
}

fn check(t: &Target, body: Value) -> Result<(), (u16, String, Value)> {
    check_body(t, &body, true).map_err(|e| (e.code, e.message.clone(), e.to_status()))
}

#[test]
fn bodies_are_checked_as_kubes_field_manager_does() {
    let t = status(Some("status"));
    let ok = json!({"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck", "status": {}});
    assert_eq!(check(&t, ok.clone()), Ok(()));
    let mut other_version = ok.clone();
    other_version["apiVersion"] = json!("canary.dev/v1beta1");
    let (code, message, _) = check(&t, other_version).expect_err("version");
    assert_eq!(
        (code, message.as_str()),
        (
            400,
            "invalid object type: canary.dev/v1beta1, Kind=HealthCheck"
        )
    );
    let (code, message, _) = check(&t, json!({"kind": "HealthCheck"})).expect_err("no apiVersion");
    assert_eq!(
        (code, message.as_str()),
        (400, "invalid object type: /, Kind=HealthCheck")
    );
    let mut managed = ok.clone();
    managed["metadata"] = json!({"managedFields": []});
    let (code, message, _) = check(&t, managed).expect_err("managedFields");
    assert_eq!(
        (code, message.as_str()),
        (400, "metadata.managedFields must be nil")
    );
    let mut undeclared = ok.clone();
    undeclared["status"] = json!({"probedBy": "me", "consecutiveFailures": 1});
    let (code, message, status) = check(&t, undeclared).expect_err("undeclared");
    assert_eq!(code, 500);
    assert_eq!(
        message,
        "failed to create typed patch object (/; canary.dev/v1alpha1, Kind=HealthCheck): \
         .status.probedBy: field not declared in schema"
    );
    assert!(status.get("reason").is_none(), "{status}");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"x": "y"}, "bogus": 1});
    assert_eq!(
        check(&configmaps(), cm),
        Ok(()),
        "built-ins have no schema here"
    );
}
