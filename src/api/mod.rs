//! The `HealthCheck` API (`canary.dev/v1alpha1`): spec and status types (one module per probe
//! kind: `http`, `tcp`, `tls`, `dns`, `grpc`, `heartbeat`, `cronJob`), the closed set of reasons, and semantic
//! validation.
//! Knows nothing of the API server.

mod auth;
mod cel;
mod cronjob;
mod discovery;
mod dns;
pub mod duration;
mod expect;
mod grpc;
mod heartbeat;
mod http;
mod label;
mod locations;
mod maintenance;
mod parse;
mod reason;
mod spec;
mod status;
mod tcp;
mod text;
mod tls;
mod valid;
pub mod validate;

pub use auth::{
    AuthStyle, ClientId, HttpAuth, MAX_EXTRA_PARAMS, MAX_SCOPES, OAuth2ClientCredentials,
    ValidOAuth2,
};
pub use cel::{
    CEL_STACK, CelError, CelExpression, MAX_CEL_BYTES, MAX_CEL_DEPTH, MAX_CEL_LOOPS, METER, TICK,
    compile as compile_cel,
};
pub use cronjob::{CronJobProbe, DEFAULT_START_GRACE, ValidCronJob};
pub use discovery::*;
pub use dns::{
    DnsAnswers, DnsClass, DnsExpect, DnsExpectations, DnsProbe, DnsQuery, DnsRcode, DnsRecordType,
    DnsTransport, ValidDns, reverse_name,
};
pub use duration::{GoDuration, fmt_go};
pub use expect::{
    CountRange, HeaderAssertion, HeaderCheck, HeaderPredicate, JsonAssertion, JsonCheck,
    JsonPredicate,
};
pub use grpc::{GrpcExpect, GrpcProbe, ServingStatus, ValidGrpc};
pub use heartbeat::{
    DEFAULT_GRACE, Expectation, HeartbeatProbe, MIN_GRACE, MIN_PERIOD, MIN_TOKEN_CHARS,
    ValidHeartbeat,
};
pub use http::{HttpHeader, HttpMethod, HttpProbe, HttpVersion};
pub use label::LabelGate;
pub use locations::*;
pub use maintenance::{CronSchedule, MaintenanceWindow, MaintenanceWindows};
pub use parse::parse_quantity;
pub use reason::Reason;
pub use spec::*;
pub use status::*;
pub use tcp::{Endpoint, SocketTarget};
pub use text::{MAX_TARGET_CHARS, TargetText, display_text};
pub use tls::{
    ClientCertificate, DEFAULT_MIN_REMAINING_VALIDITY, ExpectServedCertificate, LocalSecretRef,
    TlsPolicy, TlsVersion, ValidTlsPolicy,
};
pub use valid::*;
pub use validate::{FieldError, validate};

use kube::{CustomResourceExt, ResourceExt};

/// Identifies a check: namespace and name (files use `default` when none is given).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckKey {
    pub namespace: String,
    pub name: String,
}

impl CheckKey {
    /// The key of a HealthCheck object.
    pub fn of(object: &HealthCheck) -> Self {
        Self {
            namespace: object.namespace().unwrap_or_else(|| "default".into()),
            name: object.name_any(),
        }
    }
}

impl std::fmt::Display for CheckKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The CRD as YAML, exactly as committed in `crds/`.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(&HealthCheck::crd())
}

/// Every CRD Canary owns, by name (`canary crd NAME`); each is committed as `crds/NAME.yaml`.
pub const CRD_NAMES: [&str; 3] = [
    "healthchecks.canary.dev",
    "checkdiscoveries.canary.dev",
    "checkreports.canary.dev",
];

/// The CRD named `name` (one of [`CRD_NAMES`]) as YAML, exactly as committed in `crds/`.
pub fn crd_yaml_named(name: &str) -> Option<Result<String, serde_saphyr::SerializeError>> {
    match name {
        "healthchecks.canary.dev" => Some(crd_yaml()),
        "checkdiscoveries.canary.dev" => Some(serde_saphyr::to_string(&CheckDiscovery::crd())),
        "checkreports.canary.dev" => Some(serde_saphyr::to_string(&CheckReport::crd())),
        _ => None,
    }
}
