//! CustomResourceDefinitions: accepting them, serving their resources, validating their objects.

use crate::error::{ApiError, FieldError};
use crate::meta;
use crate::objects::{FieldValidation, WriteOpts};
use crate::registry::ResourceType;
use crate::state::Target;
use crate::store::Store;
use serde_json::{Value, json};
use std::sync::Arc;

fn is_crd_type(t: &Target) -> bool {
    t.rt.crd.is_none() && t.rt.plural == "customresourcedefinitions"
}

/// Checks the parts of a CRD this server relies on.
fn check_crd(crd: &Value) -> Vec<FieldError> {
    let mut errs = vec![];
    let spec = &crd["spec"];
    for field in ["group", "names.plural", "names.kind", "scope"] {
        let v = field.split('.').try_fold(spec, |cur, p| cur.get(p));
        if v.and_then(Value::as_str).is_none_or(str::is_empty) {
            errs.push(FieldError::required(&format!("spec.{field}")));
        }
    }
    let scope = &spec["scope"];
    if scope.is_string() && scope != "Namespaced" && scope != "Cluster" {
        let body = format!(
            "Unsupported value: {}: supported values: \"Cluster\", \"Namespaced\"",
            scope
        );
        errs.push(FieldError::new("spec.scope", "Unsupported value", body));
    }
    let versions = spec["versions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::required("spec.versions"));
    } else if versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .count()
        != 1
    {
        errs.push(FieldError::invalid(
            "spec.versions",
            &json!(versions.len()),
            "must have exactly one version marked as storage version",
        ));
    }
    errs.extend(crate::schema::check_crd_schemas(crd));
    let expected = format!(
        "{}.{}",
        spec["names"]["plural"].as_str().unwrap_or_default(),
        spec["group"].as_str().unwrap_or_default()
    );
    if errs.is_empty() && meta::name_of(crd) != expected {
        let detail = "must be spec.names.plural+\".\"+spec.group";
        errs.push(FieldError::invalid(
            "metadata.name",
            &json!(meta::name_of(crd)),
            detail,
        ));
    }
    errs
}

fn accepted_status(crd: &Value) -> Value {
    let names = &crd["spec"]["names"];
    let kind = names["kind"].as_str().unwrap_or_default();
    let mut accepted = names.clone();
    if accepted["singular"].as_str().is_none_or(str::is_empty) {
        accepted["singular"] = json!(kind.to_lowercase());
    }
    if accepted["listKind"].as_str().is_none_or(str::is_empty) {
        accepted["listKind"] = json!(format!("{kind}List"));
    }
    let storage: Vec<&Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == json!(true))
        .map(|v| &v["name"])
        .collect();
    let now = meta::now();
    let cond = |t: &str, reason: &str, msg: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": msg});
    json!({
        "conditions": [cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted")],
        "acceptedNames": accepted,
        "storedVersions": storage,
    })
}

/// Validates and completes an object before it is stored.
pub fn prepare(
    t: &Target,
    old: Option<&Value>,
    mut new: Value,
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    if is_crd_type(t) {
        let errs = check_crd(&new);
        if !errs.is_empty() {
            return Err(ApiError::invalid(
                &t.rt.group,
                &t.rt.kind,
                meta::name_of(&new),
                &errs,
            ));
        }
        new["status"] = accepted_status(&new);
        return Ok(new);
    }
    let Some(crd) = t.rt.crd.as_ref().filter(|_| opts.validate) else {
        return Ok(new);
    };
    let name = meta::name_of(&new).to_string();
    let valid = crate::schema::validate_version_with(crd, &t.version, &new, old, opts.ratcheting)
        .map_err(|errs| ApiError::invalid(&t.rt.group, &t.rt.kind, &name, &errs))?;
    let unknown: Vec<String> = valid
        .unknown_fields
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match opts.field_validation {
        FieldValidation::Strict if !unknown.is_empty() => Err(ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
            unknown.join(", "),
            kind = t.rt.kind,
            v = t.version
        ))),
        FieldValidation::Warn => {
            opts.warnings.borrow_mut().extend(unknown);
            Ok(valid.object)
        }
        _ => Ok(valid.object),
    }
}

/// The served type a CRD defines.
pub fn resource_type(crd: &Value) -> ResourceType {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let versions: Vec<&Value> = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"] != json!(false))
        .collect();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    ResourceType {
        group: spec["group"].as_str().unwrap_or_default().to_string(),
        versions: versions
            .iter()
            .filter_map(|v| v["name"].as_str().map(str::to_string))
            .collect(),
        plural: names["plural"].as_str().unwrap_or_default().to_string(),
        singular: names["singular"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| kind.to_lowercase()),
        kind,
        namespaced: spec["scope"] == json!("Namespaced"),
        short_names: strings(&names["shortNames"]),
        categories: strings(&names["categories"]),
        status_subresource: versions
            .iter()
            .any(|v| v["subresources"]["status"].is_object()),
        crd: Some(Arc::new(crd.clone())),
    }
}

/// After a CRD is stored: serve its resources.
pub fn after_write(store: &mut Store, t: &Target, new: &Value) {
    if is_crd_type(t) && !new["metadata"]["deletionTimestamp"].is_string() {
        store.registry.insert(resource_type(new));
    }
}

/// After a CRD is removed: stop serving its resources and delete its objects.
pub fn after_delete(store: &mut Store, crd: &Value) {
    let id = resource_type(crd).id();
    for obj in store.list(&id, None) {
        let rv = store.next_rv();
        let mut gone = obj.clone();
        meta::metadata_mut(&mut gone).insert("resourceVersion".into(), json!(rv.to_string()));
        store.remove(&id, meta::namespace_of(&obj), meta::name_of(&obj), gone, rv);
    }
    store.drop_resource(&id);
    store.registry.remove(&id);
}
