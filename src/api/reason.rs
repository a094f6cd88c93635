//! The closed set of reasons a check is in the state it is in, shared by status, metrics and
//! Events so that one word means the same thing everywhere. Warning Events carry the failing
//! reason; Normal Events carry `Recovered`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident),+ $(,)?) => {
        /// Why a probe ended the way it did (or why it did not run).
        #[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
        pub enum Reason {
            $($(#[$doc])* $variant,)+
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)+];

            /// The reason as written in status, Events and metric labels.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => stringify!($variant),)+
                }
            }
        }
    };
}

reasons! {
    /// Every expectation held.
    Succeeded,
    /// Not run yet.
    Pending,
    /// The spec changed: Ready is Unknown until the first run of the new generation.
    Reconciling,
    /// `spec.suspend` is true.
    Suspended,
    /// The check is inside one of its maintenance windows: Ready is Unknown until it closes
    /// (probing goes on; failures neither change Ready nor raise Warning Events).
    Maintenance,
    /// The spec cannot be run (a rule the API server did not enforce).
    InvalidSpec,
    /// A referenced Secret, ConfigMap or key does not exist.
    ReferenceNotFound,
    /// A referenced Secret may not be read: a service-account token, or a Secret without the
    /// label the operator's `--secret-reference-label` requires.
    ReferenceForbidden,
    /// The host name did not resolve.
    DNSError,
    /// The target refused (or could not be routed to) the connection.
    ConnectionRefused,
    /// The target reset the connection.
    ConnectionReset,
    /// The probe's deadline passed.
    Timeout,
    /// The TLS handshake failed for a reason other than the certificate.
    TLSHandshakeFailed,
    /// A served certificate has expired.
    CertificateExpired,
    /// A served certificate is not valid yet.
    CertificateNotYetValid,
    /// A served certificate expires sooner than the policy allows.
    CertificateExpiringSoon,
    /// The leaf certificate is not valid for the server name.
    CertificateHostnameMismatch,
    /// Unknown issuer, incomplete chain or self-signed.
    CertificateUntrusted,
    /// expectedDNSNames or expectedIssuer not met.
    CertificateMismatch,
    /// No certificate in the chain matches a pinned key.
    CertificatePinMismatch,
    /// The served leaf certificate is not the one in the Secret named by
    /// `tlsPolicy.expectServedCertificate`: a renewed certificate not rolled out yet (or a
    /// server serving another certificate).
    CertificateNotDeployed,
    /// The server does not offer the minimum TLS version.
    TLSVersionTooLow,
    /// The HTTP status, DNS response code or flags, or gRPC status is not an expected one.
    UnexpectedStatus,
    /// The body failed a bodyContains, bodyNotContains, bodyRegex or json expectation (or was
    /// not JSON, or too large to parse), or the DNS answers failed an answers expectation.
    BodyMismatch,
    /// A response header failed an expect.headers assertion.
    HeaderMismatch,
    /// The body could not be checked: the buffers `bodyRegex` or `json` need would pass the operator's
    /// `--body-buffer-budget`, shared by all probes. A failure of the check, not the prober's.
    BodyBudgetExceeded,
    /// The response took longer than maxDuration.
    Slow,
    /// More than 10 redirects.
    TooManyRedirects,
    /// The gRPC health service answered a serving status that is not expected (NOT_SERVING,
    /// UNKNOWN).
    NotServing,
    /// The gRPC health service does not know the service asked about (NOT_FOUND).
    ServiceUnknown,
    /// The gRPC server does not implement grpc.health.v1 (UNIMPLEMENTED).
    HealthServiceMissing,
    /// The server speaks another protocol: plaintext where TLS was expected or the reverse,
    /// not HTTP/2 or gRPC, or a DNS reply that is malformed or answers another query.
    ProtocolMismatch,
    /// The resolved address is in the operator's deny list.
    TargetDenied,
    /// The credentials the probe needs could not be obtained: the OAuth2 token endpoint
    /// refused, failed, timed out, was denied, or answered something that is not a Bearer token.
    AuthFailed,
    /// A heartbeat check got no ping by its deadline (period or schedule, plus grace).
    HeartbeatMissed,
    /// A heartbeat check's job reported a failure (/fail or a non-zero exit code).
    HeartbeatFailed,
    /// A run announced with /start (heartbeat), or a CronJob's Job, did not finish within
    /// maxRunDuration.
    RunTooLong,
    /// A CronJob check: no Job was created for a scheduled time within startGrace.
    MissedSchedule,
    /// A CronJob check: the Job of a scheduled run failed (its Failed condition's reason).
    JobFailed,
    /// The prober's own fault (out of descriptors or memory): never blamed on the target.
    ProberError,
    /// A check with `spec.locations`: too many locations' reports are stale (or missing) to
    /// judge; a monitor outage is not a target outage, so Ready is Unknown, not False.
    LocationsStale,
    /// Event only (type Normal): the check passes again after failing.
    Recovered,
}

impl Reason {
    /// Whether a run that ended with this reason measured the target's latency: the target
    /// answered (a response, a handshake, a DNS or health reply). A name that did not resolve,
    /// a refused or reset connection, a timeout, a denied address, the prober's own fault and
    /// the reports that ran nothing measured nothing: their duration is not a latency.
    pub fn measured(self) -> bool {
        !matches!(
            self,
            Reason::Pending
                | Reason::Reconciling
                | Reason::Suspended
                | Reason::Maintenance
                | Reason::InvalidSpec
                | Reason::ReferenceNotFound
                | Reason::ReferenceForbidden
                | Reason::DNSError
                | Reason::ConnectionRefused
                | Reason::ConnectionReset
                | Reason::Timeout
                | Reason::TargetDenied
                | Reason::AuthFailed
                | Reason::HeartbeatMissed
                | Reason::HeartbeatFailed
                | Reason::RunTooLong
                | Reason::MissedSchedule
                | Reason::JobFailed
                | Reason::ProberError
                | Reason::LocationsStale
                | Reason::Recovered
        )
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_match_as_str() {
        for reason in Reason::ALL {
            let json = serde_json::to_value(reason).unwrap();
            assert_eq!(json, serde_json::Value::String(reason.as_str().into()));
        }
    }
}
