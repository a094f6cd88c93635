//! PATCH: merge, JSON, strategic merge and server-side apply patches.

use crate::apply;
use crate::error::ApiError;
use crate::meta;
use crate::objects::{WriteOpts, check_namespace, commit, split_status};
use crate::state::Target;
use crate::store::Store;
use serde_json::{Value, json};

/// Patch content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// RFC 6902.
    Json,
    /// RFC 7386.
    Merge,
    /// Strategic merge patch.
    Strategic,
    /// Server-side apply.
    Apply,
}

impl PatchKind {
    /// From the request's Content-Type.
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Self::Apply),
            other => Err(ApiError::unsupported_media(other)),
        }
    }
}

fn parse_body(kind: PatchKind, body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(e) if kind != PatchKind::Apply => {
            Err(ApiError::bad_request(format!("invalid JSON patch: {e}")))
        }
        Err(_) => {
            let text =
                std::str::from_utf8(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            serde_saphyr::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("invalid YAML: {e}")))
        }
    }
}

fn patched(
    t: &Target,
    kind: PatchKind,
    old: &Value,
    patch: &Value,
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    let mut doc = old.clone();
    match kind {
        PatchKind::Merge => json_patch::merge(&mut doc, patch),
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            json_patch::patch(&mut doc, &ops).map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
        PatchKind::Strategic if t.rt.crd.is_some() => {
            return Err(ApiError::unsupported_media(
                "application/strategic-merge-patch+json",
            ));
        }
        PatchKind::Strategic => {
            crate::strategic::apply(&mut doc, patch)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
        PatchKind::Apply => {
            apply::check_body(t, patch, opts.validate)?;
            let who = apply::Writer::new(t, &opts.manager);
            doc = apply::server_side_apply(t, old, patch, &who, opts.force)
                .map_err(|apply::ApplyError::Conflicts(c)| ApiError::apply_conflict(&c))?;
        }
    }
    Ok(doc)
}

/// PATCH to an object or its status; server-side apply creates missing objects.
pub fn patch(
    store: &mut Store,
    t: &Target,
    kind: PatchKind,
    body: &[u8],
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    let name = t.name()?.to_string();
    let patch = parse_body(kind, body)?;
    let old = store.get(&t.rt.storage_id(), &t.namespace, &name).cloned();
    let Some(old) = old else {
        if kind != PatchKind::Apply || t.is_status() {
            return Err(t.not_found(&name));
        }
        check_namespace(store, t)?;
        let new = patched(t, kind, &json!({}), &patch, opts)?;
        let mut new = crate::events::to_storage(t, new);
        meta::metadata_mut(&mut new).insert("name".into(), json!(name));
        let new = split_status(t, None, new);
        return commit(store, t, None, new, opts, false);
    };
    // A patch applies to the object as this API shows it (an Event through events.k8s.io/v1).
    let base = crate::events::for_patch(t, old.clone());
    let mut new = crate::events::to_storage(t, patched(t, kind, &base, &patch, opts)?);
    if let Some(rv) = meta::rv_of(&patch)
        && Some(rv) != meta::rv_of(&old)
    {
        let why = "the object has been modified; please apply your changes to the latest version and try again";
        return Err(ApiError::conflict(&t.rt.group, &t.rt.plural, &name, why));
    }
    meta::metadata_mut(&mut new).insert("name".into(), json!(name));
    let new = split_status(t, Some(&old), new);
    commit(store, t, Some(&old), new, opts, kind != PatchKind::Apply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_bodies_may_be_yaml_other_patches_must_be_json() {
        let yaml = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: '1'\n";
        let v = parse_body(PatchKind::Apply, yaml).expect("yaml apply body");
        assert_eq!(v["data"]["a"], "1");
        assert!(parse_body(PatchKind::Merge, yaml).is_err());
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8").ok(),
            Some(PatchKind::Merge)
        );
        assert_eq!(
            PatchKind::from_content_type("text/plain")
                .map_err(|e| e.code)
                .err(),
            Some(415)
        );
    }
}
