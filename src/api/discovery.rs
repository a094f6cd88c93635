//! `CheckDiscovery` (`canary.dev/v1alpha1`): which Ingresses, Gateway API routes and Services
//! of its namespace become HealthChecks, and how. The derivation itself is
//! [`crate::discovery::derive`], shared by `canary discover` and the controller (`canary operator --discovery`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::{apis::meta::v1::Condition, util::intstr::IntOrString};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default `spec.maxChecks`.
pub const DEFAULT_MAX_CHECKS: i32 = 200;
/// Highest `spec.maxChecks`.
pub const MAX_CHECKS: i32 = 10_000;
/// Skips kept in `status.skipped` (the rest are counted, not listed).
pub const MAX_STATUS_SKIPS: usize = 50;

/// Generates HealthChecks in its own namespace from the source objects of that namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "canary.dev",
    version = "v1alpha1",
    kind = "CheckDiscovery",
    plural = "checkdiscoveries",
    shortname = "chd",
    category = "canary",
    namespaced,
    status = "CheckDiscoveryStatus",
    derive = "PartialEq",
    doc = "CheckDiscovery generates HealthChecks from the Ingresses, Gateway API routes and Services of its namespace.",
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Generated", "type": "integer", "jsonPath": ".status.generated", "description": "HealthChecks generated"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CheckDiscoverySpec {
    /// The kinds of source objects read; a kind left out is not read.
    pub sources: DiscoverySources,
    /// Annotation: only objects annotated `canary.dev/check: "true"`; All: every selected object.
    /// `canary.dev/check: "false"` always excludes an object.
    #[serde(default)]
    pub opt_in: OptIn,
    /// How generated checks reach an Ingress or Gateway host.
    #[serde(default)]
    pub dial: Dial,
    /// Any HealthCheck spec field except the target (interval, thresholds, tlsPolicy,
    /// http.expect, grpc.expect, ...); a source's `canary.dev/check-template` annotation
    /// overrides it (maps merge, lists replace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form")]
    pub template: Option<serde_json::Value>,
    /// Labels added to every generated check.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// What the controller may do to generated checks (Argo CD ApplicationSet's terms).
    #[serde(default)]
    pub policy: SyncPolicy,
    /// At most this many checks are generated (in name order); the rest are reported.
    #[serde(default = "default_max_checks")]
    #[schemars(range(min = 1, max = MAX_CHECKS))]
    pub max_checks: i32,
}

fn default_max_checks() -> i32 {
    DEFAULT_MAX_CHECKS
}

/// The template is any HealthCheck spec fragment: validated by Canary against the
/// HealthCheck types (the schema cannot require "a spec without its target").
fn free_form(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Source kinds read; each is optional.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "has(self.ingress) || has(self.httpRoute) || has(self.grpcRoute) || has(self.service)"
).message("name at least one of spec.sources.ingress, httpRoute, grpcRoute or service"))]
pub struct DiscoverySources {
    /// networking.k8s.io/v1 Ingresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSource>,
    /// gateway.networking.k8s.io HTTPRoutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_route: Option<RouteSource>,
    /// gateway.networking.k8s.io GRPCRoutes (a grpc.health.v1 check per host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_route: Option<GrpcRouteSource>,
    /// Services (one check per selected port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSource>,
}

impl DiscoverySources {
    /// Every kind, every object: what `canary discover` uses without a CheckDiscovery.
    pub fn all() -> Self {
        Self {
            ingress: Some(IngressSource::default()),
            http_route: Some(RouteSource::default()),
            grpc_route: Some(GrpcRouteSource::default()),
            service: Some(ServiceSource::default()),
        }
    }
}

/// Which Ingresses, and which of their paths.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSource {
    /// Label selector; empty: every Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    /// Only Ingresses of these classes (the default IngressClass for those naming none);
    /// empty: any class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub ingress_class_names: Vec<String>,
    /// First: one path per host ("/" if present, else the shortest); All: every path.
    #[serde(default)]
    pub paths: PathChoice,
}

/// Which GRPCRoutes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteSource {
    /// Label selector; empty: every route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    /// Only routes' attachments to these Gateways; empty: any Gateway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub gateway_refs: Vec<GatewayRef>,
}

/// Which HTTPRoutes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteSource {
    /// Label selector; empty: every route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    /// Only routes' attachments to these Gateways; empty: any Gateway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub gateway_refs: Vec<GatewayRef>,
    /// First: one path per host ("/" if present, else the shortest); All: every path.
    #[serde(default)]
    pub paths: PathChoice,
}

/// A Gateway by name; the namespace defaults to the route's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct GatewayRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Which Services, and which of their ports.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSource {
    /// Label selector; empty: every Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    /// Port names or numbers; empty: every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub ports: Vec<IntOrString>,
}

/// A label selector (`matchLabels` and `matchExpressions`, as in Kubernetes).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub match_expressions: Vec<SelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// `matchExpressions` operators.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// Whether objects must opt in.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum OptIn {
    /// Only objects annotated `canary.dev/check: "true"`.
    #[default]
    Annotation,
    /// Every selected object (unless annotated `"false"`).
    All,
}

/// Which paths of a host are checked.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum PathChoice {
    /// "/" if present, else the shortest path.
    #[default]
    First,
    /// Every path.
    All,
}

/// How generated checks of Ingress and Gateway hosts connect.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Dial {
    /// Resolve the host.
    #[default]
    Host,
    /// Dial the Ingress's or Gateway's status address (`http.connectTo`), Host header and SNI
    /// unchanged; without a status address a host is skipped (NoStatusAddress).
    LoadBalancer,
}

/// What the controller may do to the checks it generated.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum SyncPolicy {
    /// Create, update and prune.
    #[default]
    Sync,
    /// Create and update, never prune.
    CreateUpdate,
    /// Create only.
    CreateOnly,
}

/// What the controller last derived.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckDiscoveryStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Truncated`, and `SourceUnavailable` while a Gateway API kind it reads is not
    /// served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// HealthChecks generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<i32>,
    /// The first skips, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<DiscoverySkip>,
}

/// A host or path of a source object that became no check, and why.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoverySkip {
    /// `Kind/name` of the source object (it is in the discovery's namespace).
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub reason: SkipReason,
    /// Details: the port, the listener, the field of a bad template.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Why a host or path became no check (closed set; docs/discovery.md explains each).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum SkipReason {
    /// An Ingress rule without a host, or a route without hostnames on a listener without one.
    NoHost,
    /// A wildcard host: no single name to probe.
    WildcardHost,
    /// A regular-expression path.
    RegexPath,
    /// The route's parent is not `Accepted=True` in its status.
    NotAccepted,
    /// A header, query or method match: a plain request would not be routed the same way.
    ConditionalMatch,
    /// The parent Gateway does not exist.
    GatewayNotFound,
    /// No listener of the Gateway admits the route (namespace, kind, section, port, hostname).
    NotAllowed,
    /// A UDP or SCTP Service port.
    UnsupportedProtocol,
    /// `dial: LoadBalancer` for a GRPCRoute: gRPC checks have no `connectTo`.
    DialUnsupported,
    /// `dial: LoadBalancer`, but the Ingress (`status.loadBalancer.ingress`) or Gateway
    /// (`status.addresses`) has no address yet.
    NoStatusAddress,
    /// `tlsPolicy.expectServedFromSecret`, but the Ingress's `tls` entry for the host names no
    /// `secretName` (the controller's default certificate is served).
    NoTLSSecret,
    /// The object's `canary.dev/check-template` annotation is not a valid template.
    InvalidTemplate,
}

impl SkipReason {
    /// Every reason (metrics set a series for each).
    pub const ALL: [SkipReason; 12] = [
        Self::NoHost,
        Self::WildcardHost,
        Self::RegexPath,
        Self::NotAccepted,
        Self::ConditionalMatch,
        Self::GatewayNotFound,
        Self::NotAllowed,
        Self::UnsupportedProtocol,
        Self::DialUnsupported,
        Self::NoStatusAddress,
        Self::NoTLSSecret,
        Self::InvalidTemplate,
    ];

    /// The name as written in status and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoHost => "NoHost",
            Self::WildcardHost => "WildcardHost",
            Self::RegexPath => "RegexPath",
            Self::NotAccepted => "NotAccepted",
            Self::ConditionalMatch => "ConditionalMatch",
            Self::GatewayNotFound => "GatewayNotFound",
            Self::NotAllowed => "NotAllowed",
            Self::UnsupportedProtocol => "UnsupportedProtocol",
            Self::DialUnsupported => "DialUnsupported",
            Self::NoStatusAddress => "NoStatusAddress",
            Self::NoTLSSecret => "NoTLSSecret",
            Self::InvalidTemplate => "InvalidTemplate",
        }
    }
}

impl CheckDiscoverySpec {
    /// What `canary discover` uses without a CheckDiscovery: every source, `optIn: All`, and
    /// the highest `maxChecks` (offline, all of a chart's checks are wanted).
    pub fn everything() -> Self {
        Self {
            sources: DiscoverySources::all(),
            opt_in: OptIn::All,
            dial: Dial::Host,
            template: None,
            labels: BTreeMap::new(),
            policy: SyncPolicy::Sync,
            max_checks: MAX_CHECKS,
        }
    }
}
