//! The Gateway API objects discovery reads (`gateway.networking.k8s.io`): only the fields it
//! uses, since k8s-openapi carries no Gateway API types. Unknown fields are ignored.

use kube::api::ObjectMeta;
use serde::Deserialize;

use crate::api::Selector;

/// The Gateway API group.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// A Gateway: its listeners, and the addresses it is reachable at.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Gateway {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: GatewaySpec,
    #[serde(default)]
    pub status: Option<GatewayStatus>,
}

impl Gateway {
    /// The first `status.addresses` entry of type IPAddress (the default) or Hostname: where
    /// `dial: LoadBalancer` connects.
    pub fn address(&self) -> Option<&str> {
        (self.status.iter().flat_map(|s| &s.addresses))
            .filter(|a| matches!(a.type_.as_deref(), None | Some("IPAddress" | "Hostname")))
            .map(|a| a.value.as_str())
            .find(|v| !v.is_empty())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct GatewayStatus {
    #[serde(default)]
    pub addresses: Vec<GatewayStatusAddress>,
}

/// An address the Gateway is bound to (`type`: IPAddress, Hostname or implementation-specific).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GatewayStatusAddress {
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct GatewaySpec {
    #[serde(default)]
    pub listeners: Vec<Listener>,
}

/// One listener: where routes attach.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub port: u16,
    /// HTTP, HTTPS, TLS, TCP or UDP.
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub allowed_routes: Option<AllowedRoutes>,
}

/// Which routes a listener admits.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AllowedRoutes {
    #[serde(default)]
    pub namespaces: Option<RouteNamespaces>,
    #[serde(default)]
    pub kinds: Vec<RouteGroupKind>,
}

/// `from: Same` (default) | `All` | `Selector`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RouteNamespaces {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub selector: Option<Selector>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RouteGroupKind {
    #[serde(default)]
    pub group: Option<String>,
    pub kind: String,
}

/// An HTTPRoute: hostnames, parents, rules' matches, and its status.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HttpRoute {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: HttpRouteSpec,
    #[serde(default)]
    pub status: Option<RouteStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    #[serde(default)]
    pub parent_refs: Vec<ParentRef>,
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub rules: Vec<HttpRouteRule>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HttpRouteRule {
    #[serde(default)]
    pub matches: Vec<HttpRouteMatch>,
}

/// One match: a path, and conditions a plain GET would not meet.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    #[serde(default)]
    pub path: Option<PathMatch>,
    #[serde(default)]
    pub headers: Vec<serde_json::Value>,
    #[serde(default)]
    pub query_params: Vec<serde_json::Value>,
    #[serde(default)]
    pub method: Option<String>,
}

/// `type`: Exact | PathPrefix (default) | RegularExpression; `value` defaults to "/".
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PathMatch {
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

/// A GRPCRoute: hostnames and parents (its matches select methods, not the health service).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GrpcRoute {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: GrpcRouteSpec,
    #[serde(default)]
    pub status: Option<RouteStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteSpec {
    #[serde(default)]
    pub parent_refs: Vec<ParentRef>,
    #[serde(default)]
    pub hostnames: Vec<String>,
}

/// A route's parent: a Gateway, optionally one listener by section name or port.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub section_name: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
}

impl ParentRef {
    /// Whether it names a Gateway (the default group and kind).
    pub fn is_gateway(&self) -> bool {
        self.group.as_deref().is_none_or(|g| g == GROUP)
            && self.kind.as_deref().is_none_or(|k| k == "Gateway")
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RouteStatus {
    #[serde(default)]
    pub parents: Vec<RouteParentStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    #[serde(default)]
    pub parent_ref: ParentRef,
    #[serde(default)]
    pub conditions: Vec<StatusCondition>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StatusCondition {
    #[serde(default, rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub status: String,
}

impl RouteStatus {
    /// Whether the parent `parent` (as a route in `route_ns` names it) has `Accepted=True`;
    /// an omitted namespace is the route's, on either side.
    pub fn accepted(&self, parent: &ParentRef, route_ns: &str) -> bool {
        let ns = |p: &ParentRef| p.namespace.clone().unwrap_or_else(|| route_ns.to_string());
        (self.parents.iter())
            .filter(|p| {
                p.parent_ref.name == parent.name
                    && ns(&p.parent_ref) == ns(parent)
                    && p.parent_ref.section_name == parent.section_name
            })
            .any(|p| (p.conditions.iter()).any(|c| c.type_ == "Accepted" && c.status == "True"))
    }
}
