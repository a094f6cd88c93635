//! Candidates become HealthChecks: the template (with the object's override) plus the target,
//! a stable name `<ing|hr|gr|svc>-<source>-<hash8>`, the discovery labels and, when the
//! discovery has a uid (it came from the API server), its controller ownerReference.

use std::collections::BTreeMap;

use kube::{Resource, ResourceExt, api::ObjectMeta};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    Candidate, DISCOVERY_LABEL, Discovered, Found, SOURCE_KIND_LABEL, SOURCE_NAME_ANNOTATION,
    SOURCE_NAME_LABEL, Scope, SourceKind, TEMPLATE_ANNOTATION, Target, namespace_of, template,
};
use crate::api::{Dial, DiscoverySkip, FieldError, HealthCheck, SkipReason};

/// Kubernetes' limit on a label value, and Canary's on a generated check's name.
const MAX_NAME: usize = 63;
/// Where an override's errors are said to be.
const OVERRIDE_AT: &str = "metadata.annotations[canary.dev/check-template]";

/// The first 8 hex digits of SHA-256 over `key`.
pub fn hash8(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))[..8].to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `<prefix>-<source>-<hash8>`, the source name cut so the whole is at most 63 characters;
/// the hash is over `kind/namespace/name|host|path|port`, so a name stays put while the
/// source, host, path and port do.
pub fn check_name(
    prefix: &str,
    kind: &str,
    namespace: &str,
    name: &str,
    at: (&str, &str, u16),
) -> String {
    let (host, path, port) = at;
    let hash = hash8(&format!("{kind}/{namespace}/{name}|{host}|{path}|{port}"));
    let room = MAX_NAME - prefix.len() - hash.len() - 2;
    let cut: String = name.chars().take(room).collect();
    let cut = cut.trim_end_matches(['-', '.']);
    match cut.is_empty() {
        true => format!("{prefix}-{hash}"),
        false => format!("{prefix}-{cut}-{hash}"),
    }
}

/// A label value for `value`: itself, or its hash (16 hex digits) when longer than allowed.
fn label_value(value: &str) -> (String, bool) {
    match value.len() <= MAX_NAME {
        true => (value.to_string(), false),
        false => (
            hex(&Sha256::digest(value.as_bytes()))[..16].to_string(),
            true,
        ),
    }
}

/// Whether `value` is a valid label value: at most 63 characters, alphanumerics with `-`, `_`
/// or `.` between (empty allowed).
fn is_label_value(value: &str) -> bool {
    let inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    value.is_empty()
        || (value.len() <= MAX_NAME
            && value.chars().all(inner)
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Errors of `spec.labels` the API server would refuse on every generated check.
pub(super) fn label_errors(labels: &BTreeMap<String, String>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (key, value) in labels {
        let (prefix, name) = key
            .rsplit_once('/')
            .map_or((None, key.as_str()), |(p, n)| (Some(p), n));
        let prefix_ok = prefix.is_none_or(|p| {
            !p.is_empty()
                && p.len() <= 253
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        });
        let field = format!("spec.labels[{key}]");
        if !prefix_ok || name.is_empty() || !is_label_value(name) {
            errors.push(FieldError {
                field: field.clone(),
                message: "not a valid label key".into(),
            });
        }
        if !is_label_value(value) {
            let message = "not a valid label value (at most 63 alphanumerics, '-', '_' or '.', \
                starting and ending with an alphanumeric)";
            errors.push(FieldError {
                field,
                message: message.into(),
            });
        }
    }
    errors
}

/// Turns what the source kinds found into the discovery's checks and skips, ordered.
pub(super) fn build(scope: &Scope<'_>, base: &Value, found: Found<'_>) -> Discovered {
    let mut skips = found.skips;
    let mut checks: Vec<HealthCheck> = Vec::new();
    for candidate in found.candidates {
        match one(scope, base, &candidate) {
            Ok(check) => checks.push(check),
            Err(skip) => skips.push(skip),
        }
    }
    checks.sort_by_key(|check| check.name_any());
    checks.dedup_by(|a, b| a.metadata.name == b.metadata.name);
    skips.sort();
    skips.dedup();
    Discovered {
        checks,
        skips,
        truncated: 0,
    }
}

fn one(
    scope: &Scope<'_>,
    base: &Value,
    candidate: &Candidate<'_>,
) -> Result<HealthCheck, DiscoverySkip> {
    let name = candidate.object.name.as_deref().unwrap_or_default();
    let skip = |reason, message: String| DiscoverySkip {
        source: format!("{}/{name}", candidate.kind.name()),
        host: Some(candidate.host.clone()),
        path: Some(candidate.path.clone()).filter(|p| !p.is_empty()),
        reason,
        message,
    };
    let connect_to = connect_to(scope, candidate).map_err(|(reason, why)| skip(reason, why))?;
    let (kind, target) = target_json(&candidate.target, connect_to);
    let mut spec = template::for_kind(base, kind);
    if let Some(text) =
        (candidate.object.annotations.as_ref()).and_then(|a| a.get(TEMPLATE_ANNOTATION))
    {
        let invalid = |message: String| skip(SkipReason::InvalidTemplate, message);
        let patch: Value =
            serde_saphyr::from_str(text).map_err(|e| invalid(format!("{OVERRIDE_AT}: {e}")))?;
        let Value::Object(map) = &patch else {
            return Err(invalid(format!(
                "{OVERRIDE_AT}: must be a map of HealthCheck spec fields"
            )));
        };
        if let Some(e) = template::forbidden(map, OVERRIDE_AT).into_iter().next() {
            return Err(invalid(e.to_string()));
        }
        template::merge(&mut spec, &template::for_kind(&patch, kind));
    }
    expect_served(&mut spec, candidate).map_err(|(reason, why)| skip(reason, why))?;
    let spec = template::check(&spec, &target, OVERRIDE_AT)
        .map_err(|errors| skip(SkipReason::InvalidTemplate, errors[0].to_string()))?;
    let mut check = HealthCheck::new(&name_of(scope, candidate), spec);
    check.metadata = metadata(scope, candidate);
    Ok(check)
}

/// `http.connectTo` under `dial: LoadBalancer`: the source's status address and the port of
/// the URL (the scheme's, or the Gateway listener's); `None` under `dial: Host` and for
/// Services, which are dialled by name.
fn connect_to(
    scope: &Scope<'_>,
    candidate: &Candidate<'_>,
) -> Result<Option<String>, (SkipReason, String)> {
    if scope.discovery.spec.dial != Dial::LoadBalancer || !candidate.kind.via_load_balancer() {
        return Ok(None);
    }
    if candidate.kind == SourceKind::GrpcRoute {
        let why =
            "gRPC checks have no connectTo: dial: LoadBalancer covers Ingress and HTTPRoute checks";
        return Err((SkipReason::DialUnsupported, why.into()));
    }
    let Some(address) = &candidate.address else {
        let why = match candidate.kind {
            SourceKind::Ingress => {
                "dial: LoadBalancer, but status.loadBalancer.ingress has no ip or hostname (yet)"
            }
            _ => {
                "dial: LoadBalancer, but the Gateway has no IPAddress or Hostname in status.addresses (yet)"
            }
        };
        return Err((SkipReason::NoStatusAddress, why.into()));
    };
    let port = candidate.port;
    Ok(Some(match address.contains(':') {
        true => format!("[{address}]:{port}"),
        false => format!("{address}:{port}"),
    }))
}

/// `tlsPolicy.expectServedFromSecret: true` (a template's switch, not a HealthCheck field)
/// becomes `tlsPolicy.expectServedCertificate` naming the Secret of an https Ingress host;
/// other checks have no Secret in reach (a Gateway's usually lives in another namespace).
fn expect_served(spec: &mut Value, candidate: &Candidate<'_>) -> Result<(), (SkipReason, String)> {
    let wanted = spec.pointer(template::SERVED_FLAG) == Some(&Value::Bool(true));
    let https = matches!(&candidate.target, Target::Http { url, .. } if url.starts_with("https:"));
    if !wanted || candidate.kind != SourceKind::Ingress || !https {
        return Ok(());
    }
    let Some(secret) = &candidate.secret else {
        let why =
            "tlsPolicy.expectServedFromSecret, but the tls entry for this host names no secretName";
        return Err((SkipReason::NoTLSSecret, why.into()));
    };
    if let Some(policy) = spec.get_mut("tlsPolicy").and_then(Value::as_object_mut) {
        let expected = json!({"secretRef": {"name": secret}});
        policy.insert("expectServedCertificate".into(), expected);
    }
    Ok(())
}

/// The probe section a target sets, by its spec key, with `connectTo` for HTTP.
fn target_json(target: &Target, connect_to: Option<String>) -> (&'static str, Value) {
    match target {
        Target::Http { url, http2 } => {
            let mut http = json!({"url": url});
            if *http2 {
                http["version"] = json!("2");
            }
            if let Some(address) = connect_to {
                http["connectTo"] = json!(address);
            }
            ("http", json!({ "http": http }))
        }
        Target::Grpc { target, tls } => ("grpc", json!({"grpc": {"target": target, "tls": tls}})),
        Target::Tcp { host, port } => ("tcp", json!({"tcp": {"host": host, "port": port}})),
    }
}

fn name_of(scope: &Scope<'_>, candidate: &Candidate<'_>) -> String {
    let kind = candidate.kind;
    let name = candidate.object.name.as_deref().unwrap_or_default();
    let at = (
        candidate.host.as_str(),
        candidate.path.as_str(),
        candidate.port,
    );
    check_name(kind.prefix(), kind.name(), &scope.namespace, name, at)
}

fn metadata(scope: &Scope<'_>, candidate: &Candidate<'_>) -> ObjectMeta {
    let discovery = scope.discovery;
    let source = candidate.object.name.as_deref().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = discovery.spec.labels.clone();
    let mut annotations = BTreeMap::new();
    let (value, hashed) = label_value(&discovery.name_any());
    labels.insert(DISCOVERY_LABEL.into(), value);
    if hashed {
        annotations.insert(DISCOVERY_LABEL.into(), discovery.name_any());
    }
    labels.insert(SOURCE_KIND_LABEL.into(), candidate.kind.name().into());
    let (value, hashed) = label_value(source);
    labels.insert(SOURCE_NAME_LABEL.into(), value);
    if hashed {
        annotations.insert(SOURCE_NAME_ANNOTATION.into(), source.into());
    }
    ObjectMeta {
        name: Some(name_of(scope, candidate)),
        namespace: Some(namespace_of(candidate.object).into()),
        labels: Some(labels),
        annotations: Some(annotations).filter(|a| !a.is_empty()),
        owner_references: discovery.controller_owner_ref(&()).map(|owner| vec![owner]),
        ..ObjectMeta::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_within_63_characters_and_end_in_the_hash() {
        let long = "a-very-long-ingress-name-that-goes-on-and-on-and-on-and-on-and-on";
        let name = check_name("ing", "Ingress", "shop", long, ("a.test", "/", 80));
        assert_eq!(name.len(), 63, "{name}");
        assert!(name.starts_with("ing-a-very-long"), "{name}");
        let hash = hash8(&format!("Ingress/shop/{long}|a.test|/|80"));
        assert!(name.ends_with(&format!("-{hash}")), "{name}");
        let short = check_name(
            "svc",
            "Service",
            "shop",
            "web",
            ("web.shop.svc.cluster.local", "", 8080),
        );
        assert_eq!(
            short,
            format!(
                "svc-web-{}",
                hash8("Service/shop/web|web.shop.svc.cluster.local||8080")
            )
        );
        // A cut never leaves a dash or dot before the hash.
        let dotted = format!("{}.x", "b".repeat(47));
        assert!(!check_name("hr", "HTTPRoute", "shop", &dotted, ("h", "/", 80)).contains(".-"));
    }

    #[test]
    fn label_keys_and_values_are_checked_as_the_api_server_does() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            (pairs.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(
            label_errors(&labels(&[
                ("team", "shop"),
                ("example.com/tier", "web_1"),
                ("empty", "")
            ]))
            .is_empty()
        );
        let fields = |pairs: &[(&str, &str)]| -> Vec<String> {
            label_errors(&labels(pairs))
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(fields(&[("team", "-shop")]), ["spec.labels[team]"]);
        assert_eq!(fields(&[("Bad Key", "x")]), ["spec.labels[Bad Key]"]);
        assert_eq!(
            fields(&[("UPPER.com/x", "x")]),
            ["spec.labels[UPPER.com/x]"]
        );
        assert_eq!(fields(&[("x", &"a".repeat(64))]), ["spec.labels[x]"]);
    }

    #[test]
    fn long_label_values_become_a_hash() {
        assert_eq!(label_value("web"), ("web".to_string(), false));
        let (value, hashed) = label_value(&"x".repeat(64));
        assert!(hashed && value.len() == 16);
    }
}
