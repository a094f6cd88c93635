//! Discovery: HealthChecks derived from Ingresses, Gateway API routes and Services. One pure
//! function, [`derive`], maps a `CheckDiscovery` and the source objects to the HealthChecks it
//! generates and the hosts and paths it skips (with a reason), so `canary discover` and the
//! controller give the same answer. No I/O and no clock: the order is fixed by check name.

mod build;
pub mod gateway_api;
mod ingress;
pub mod input;
mod listener;
mod route;
mod select;
mod service;
pub mod template;

use k8s_openapi::api::{
    core::v1::{Namespace, Service},
    networking::v1::{Ingress, IngressClass},
};
use kube::ResourceExt;

use crate::api::{
    CheckDiscovery, CheckDiscoverySpec, DiscoverySkip, FieldError, HealthCheck, MAX_CHECKS,
    SkipReason,
};
pub use build::{check_name, hash8};
pub use gateway_api::{Gateway, GrpcRoute, HttpRoute};

/// The annotation an object opts in or out with (`"true"` | `"false"`).
pub const CHECK_ANNOTATION: &str = "canary.dev/check";
/// The annotation holding a per-object template override (YAML).
pub const TEMPLATE_ANNOTATION: &str = "canary.dev/check-template";
/// Label: the CheckDiscovery that generated a check.
pub const DISCOVERY_LABEL: &str = "canary.dev/discovery";
/// Label: the kind of the source object.
pub const SOURCE_KIND_LABEL: &str = "canary.dev/source-kind";
/// Label: the source object's name (a hash when too long for a label value).
pub const SOURCE_NAME_LABEL: &str = "canary.dev/source-name";
/// Annotation: the source object's full name, written when the label holds a hash.
pub const SOURCE_NAME_ANNOTATION: &str = "canary.dev/source-name";
/// The cluster domain Service names are completed with by default.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// Why a discovery generates nothing at all.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The spec breaks a rule of the CRD (a cluster may not enforce every rule), or
    /// `spec.template` is not a HealthCheck spec without its target.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
}

/// The source objects a discovery may read. Objects without a namespace are in `default`.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub ingresses: Vec<Ingress>,
    pub ingress_classes: Vec<IngressClass>,
    pub gateways: Vec<Gateway>,
    pub http_routes: Vec<HttpRoute>,
    pub grpc_routes: Vec<GrpcRoute>,
    pub services: Vec<Service>,
    /// For Gateway listeners' `allowedRoutes.namespaces.from: Selector`.
    pub namespaces: Vec<Namespace>,
}

/// What the environment contributes.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Completes Service names: `<name>.<namespace>.svc.<cluster domain>`.
    pub cluster_domain: String,
    /// Treat every route parent as `Accepted=True` (offline, route status is unknown).
    pub assume_accepted: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.into(),
            assume_accepted: false,
        }
    }
}

/// What a discovery generates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discovered {
    /// The HealthChecks, ordered by name, at most `maxChecks`.
    pub checks: Vec<HealthCheck>,
    /// Hosts and paths that became no check, ordered.
    pub skips: Vec<DiscoverySkip>,
    /// Checks left out by `maxChecks` (condition `Truncated`).
    pub truncated: usize,
}

/// What a source kind hands over: where to probe, before template and naming.
#[derive(Debug, Clone)]
struct Candidate<'a> {
    kind: SourceKind,
    object: &'a kube::api::ObjectMeta,
    host: String,
    path: String,
    port: u16,
    target: Target,
    /// The source's status address (Ingress load balancer, Gateway), for `dial: LoadBalancer`.
    address: Option<String>,
    /// The Secret holding the host's certificate (an Ingress's `tls[].secretName`).
    secret: Option<String>,
}

/// The probe a candidate becomes.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    /// `url`; `http2` for h2c Service ports.
    Http {
        url: String,
        http2: bool,
    },
    Grpc {
        target: String,
        tls: bool,
    },
    Tcp {
        host: String,
        port: u16,
    },
}

/// The source kinds, with the short name that starts a generated check's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceKind {
    Ingress,
    HttpRoute,
    GrpcRoute,
    Service,
}

impl SourceKind {
    fn name(self) -> &'static str {
        match self {
            Self::Ingress => "Ingress",
            Self::HttpRoute => "HTTPRoute",
            Self::GrpcRoute => "GRPCRoute",
            Self::Service => "Service",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::Ingress => "ing",
            Self::HttpRoute => "hr",
            Self::GrpcRoute => "gr",
            Self::Service => "svc",
        }
    }

    /// Whether the check goes through an Ingress controller or Gateway (what `dial` is about).
    fn via_load_balancer(self) -> bool {
        !matches!(self, Self::Service)
    }
}

/// Candidates and skips as the source kinds find them.
#[derive(Debug, Default)]
struct Found<'a> {
    candidates: Vec<Candidate<'a>>,
    skips: Vec<DiscoverySkip>,
}

impl Found<'_> {
    fn skip(
        &mut self,
        kind: SourceKind,
        name: &str,
        at: (Option<&str>, Option<&str>),
        reason: SkipReason,
        message: impl Into<String>,
    ) {
        self.skips.push(DiscoverySkip {
            source: format!("{}/{name}", kind.name()),
            host: at.0.map(String::from),
            path: at.1.map(String::from),
            reason,
            message: message.into(),
        });
    }
}

/// What every source kind reads: the discovery, its namespace, the inputs and settings.
struct Scope<'a> {
    discovery: &'a CheckDiscovery,
    namespace: String,
    inputs: &'a Inputs,
    settings: &'a Settings,
}

/// The namespace of an object (`default` when it names none, as files do).
fn namespace_of(meta: &kube::api::ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}

/// Checks what the CRD's schema checks (a cluster may not enforce every rule) and the
/// template, naming every field at fault.
pub fn validate(spec: &CheckDiscoverySpec) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let sources = &spec.sources;
    if sources.ingress.is_none()
        && sources.http_route.is_none()
        && sources.grpc_route.is_none()
        && sources.service.is_none()
    {
        errors.push(FieldError {
            field: "spec.sources".into(),
            message: "name at least one of spec.sources.ingress, httpRoute, grpcRoute or service"
                .into(),
        });
    }
    if !(1..=MAX_CHECKS).contains(&spec.max_checks) {
        errors.push(FieldError {
            field: "spec.maxChecks".into(),
            message: format!("{} is not from 1 to {MAX_CHECKS}", spec.max_checks),
        });
    }
    errors.extend(build::label_errors(&spec.labels));
    let template = spec.template.clone().unwrap_or_default();
    if let Err(found) = template::validate(&template, "spec.template") {
        errors.extend(found);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Derives the HealthChecks `discovery` generates from `inputs`, and what it skips. A bad
/// `spec.template` is an error (nothing is generated); a bad per-object template skips only
/// that object's checks.
pub fn derive(
    discovery: &CheckDiscovery,
    inputs: &Inputs,
    settings: &Settings,
) -> Result<Discovered, DiscoveryError> {
    validate(&discovery.spec).map_err(DiscoveryError::Invalid)?;
    let template = discovery.spec.template.clone().unwrap_or_default();
    let scope = Scope {
        discovery,
        namespace: discovery.namespace().unwrap_or_else(|| "default".into()),
        inputs,
        settings,
    };
    let mut found = Found::default();
    let sources = &discovery.spec.sources;
    if let Some(source) = &sources.ingress {
        ingress::find(&scope, source, &mut found);
    }
    if let Some(source) = &sources.http_route {
        route::find_http(&scope, source, &mut found);
    }
    if let Some(source) = &sources.grpc_route {
        route::find_grpc(&scope, source, &mut found);
    }
    if let Some(source) = &sources.service {
        service::find(&scope, source, &mut found);
    }
    let mut discovered = build::build(&scope, &template, found);
    let max = usize::try_from(discovery.spec.max_checks.max(0)).unwrap_or(usize::MAX);
    discovered.truncated = discovered.checks.len().saturating_sub(max);
    discovered.checks.truncate(max);
    Ok(discovered)
}
