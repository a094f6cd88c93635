//! Referenced Secrets and ConfigMaps, read by name (GET only, never list or watch) in the
//! HealthCheck's own namespace and cached briefly, so a rotation is picked up within the TTL.
//!
//! This is a trust boundary: whoever may create a HealthCheck could otherwise have the
//! operator send any Secret of the namespace to a URL of their choice. Service-account token
//! Secrets are never handed out, and `--secret-reference-label` limits references to Secrets
//! that carry an opt-in label. A refused Secret's data is dropped at once, never cached.
//!
//! A 403 (the operator's RBAC does not cover the reference, e.g. the chart's `rbac.secrets=false`)
//! is an answer, cached like one: the check that references it is `ReferenceForbidden`, nothing
//! else is affected. A failed read pauses only what it concerns: that reference, or its
//! namespace when the API server did not answer at all (each read there would wait for its own
//! timeout).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::Duration,
};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};
use tokio::time::Instant;

use crate::{
    api::{LabelGate, Reference, ReferenceKind, ValueRef},
    lock,
    probe::{ReferenceError, ReferenceSource},
};

/// Deadline of one GET.
const GET_TIMEOUT: Duration = Duration::from_secs(10);
/// How long reads pause after the API server failed one (see [`Pause`]).
const BACKOFF: Duration = Duration::from_secs(5);
/// Secrets of this type hold a service account's credentials: never referenced.
const SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";

/// What a GET found.
#[derive(Debug, Clone)]
enum Fetched {
    Missing,
    /// The object exists but may not be referenced (why).
    Forbidden(String),
    Data(BTreeMap<String, Vec<u8>>),
}

/// Why a reference could not be read (other than not existing or being forbidden).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "reading {kind:?} {namespace}/{name}: {}",
        super::api_error::describe(source)
    )]
    Get {
        kind: ReferenceKind,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading {0} failed moments ago; not asking again before {1:?}")]
    Backoff(String, Instant),
    #[error("reading {kind:?} {namespace}/{name}: timed out")]
    Timeout {
        kind: ReferenceKind,
        namespace: String,
        name: String,
    },
}

/// What a failed read pauses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Pause {
    /// The API server answered with an error (5xx, 429): this reference.
    Reference(String, Reference),
    /// No answer (timeout, connection): every read in this namespace, which would each wait.
    Namespace(String),
}

impl FetchError {
    /// What this failure pauses.
    fn pause(&self, namespace: &str, reference: &Reference) -> Pause {
        match self {
            Self::Get {
                source: kube::Error::Api(_),
                ..
            }
            | Self::Backoff(..) => Pause::Reference(namespace.to_string(), reference.clone()),
            Self::Get { .. } | Self::Timeout { .. } => Pause::Namespace(namespace.to_string()),
        }
    }
}

/// A TTL cache of referenced objects, keyed by (namespace, reference).
pub struct RefCache {
    client: Client,
    ttl: Duration,
    secret_gate: Option<LabelGate>,
    entries: Mutex<HashMap<(String, Reference), (Instant, Fetched)>>,
    /// After a failed read, what it concerns waits until then (not every check: one 5xx or
    /// one slow namespace must not hold up the references of others).
    paused: Mutex<HashMap<Pause, Instant>>,
    last_sweep: Mutex<Instant>,
}

impl RefCache {
    pub fn new(client: Client, ttl: Duration, secret_gate: Option<LabelGate>) -> Self {
        Self {
            client,
            ttl,
            secret_gate,
            entries: Mutex::new(HashMap::new()),
            paused: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    fn cached(&self, namespace: &str, reference: &Reference) -> Option<Fetched> {
        let entries = lock(&self.entries);
        let (at, data) = entries.get(&(namespace.to_string(), reference.clone()))?;
        (at.elapsed() < self.ttl).then(|| data.clone())
    }

    /// Drops expired entries (objects no check refers to any more), at most once per TTL.
    fn sweep(&self) {
        let mut last = lock(&self.last_sweep);
        if last.elapsed() < self.ttl {
            return;
        }
        *last = Instant::now();
        lock(&self.entries).retain(|_, (at, _)| at.elapsed() < self.ttl);
        lock(&self.paused).retain(|_, until| *until > *last);
    }

    /// Until when reads of `reference` in `namespace` are paused, if they are.
    fn paused_until(&self, namespace: &str, reference: &Reference) -> Option<Instant> {
        let paused = lock(&self.paused);
        let keys = [
            Pause::Namespace(namespace.to_string()),
            Pause::Reference(namespace.to_string(), reference.clone()),
        ];
        (keys.iter().filter_map(|key| paused.get(key).copied()))
            .filter(|until| *until > Instant::now())
            .max()
    }

    /// Fetches (or reuses) every reference of one HealthCheck.
    pub async fn resolve(
        &self,
        namespace: &str,
        references: &[Reference],
    ) -> Result<Resolved, FetchError> {
        self.sweep();
        let mut objects = HashMap::new();
        for reference in references {
            let fetched = match self.cached(namespace, reference) {
                Some(fetched) => fetched,
                None => {
                    if let Some(until) = self.paused_until(namespace, reference) {
                        let what = format!("{:?} {namespace}/{}", reference.kind, reference.name);
                        return Err(FetchError::Backoff(what, until));
                    }
                    let fetched = self.fetch(namespace, reference).await.inspect_err(|e| {
                        let pause = e.pause(namespace, reference);
                        lock(&self.paused).insert(pause, Instant::now() + BACKOFF);
                    })?;
                    let key = (namespace.to_string(), reference.clone());
                    lock(&self.entries).insert(key, (Instant::now(), fetched.clone()));
                    fetched
                }
            };
            objects.insert(reference.clone(), fetched);
        }
        Ok(Resolved { objects })
    }

    async fn fetch(&self, namespace: &str, reference: &Reference) -> Result<Fetched, FetchError> {
        let name = &reference.name;
        let get = async {
            match reference.kind {
                ReferenceKind::Secret => {
                    let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
                    let secret = api.get_opt(name).await?;
                    Ok(secret.map_or(Fetched::Missing, |s| self.admit_secret(s)))
                }
                ReferenceKind::ConfigMap => {
                    let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
                    let config_map = api.get_opt(name).await?;
                    Ok(config_map.map_or(Fetched::Missing, config_map_data))
                }
            }
        };
        let (kind, namespace, name) = (reference.kind, namespace.to_string(), name.clone());
        match tokio::time::timeout(GET_TIMEOUT, get).await {
            Ok(Ok(fetched)) => Ok(fetched),
            Ok(Err(kube::Error::Api(status))) if status.code == 403 => {
                let why = not_granted(kind, &namespace, &status.message);
                tracing::warn!(namespace, reference = %name, kind = ?kind, %why, "reference forbidden by RBAC");
                Ok(Fetched::Forbidden(why))
            }
            Ok(Err(source)) => Err(FetchError::Get {
                kind,
                namespace,
                name,
                source,
            }),
            Err(_) => Err(FetchError::Timeout {
                kind,
                namespace,
                name,
            }),
        }
    }

    /// The Secret's data, unless policy forbids handing it out.
    fn admit_secret(&self, secret: Secret) -> Fetched {
        if secret.type_.as_deref() == Some(SERVICE_ACCOUNT_TOKEN) {
            return Fetched::Forbidden(format!(
                "Secrets of type {SERVICE_ACCOUNT_TOKEN} are never sent to a target"
            ));
        }
        if let Some(gate) = &self.secret_gate {
            let labels = secret.metadata.labels.as_ref();
            let value = labels.and_then(|l| l.get(&gate.key));
            let admitted = match (&gate.value, value) {
                (Some(want), Some(have)) => want == have,
                (None, Some(_)) => true,
                (_, None) => false,
            };
            if !admitted {
                return Fetched::Forbidden(format!(
                    "the operator only reads Secrets labelled {gate} (--secret-reference-label)"
                ));
            }
        }
        let mut data: BTreeMap<String, Vec<u8>> = (secret.data.unwrap_or_default().into_iter())
            .map(|(k, v)| (k, v.0))
            .collect();
        data.extend(
            (secret.string_data.unwrap_or_default().into_iter()).map(|(k, v)| (k, v.into_bytes())),
        );
        Fetched::Data(data)
    }
}

/// Why a reference the operator's RBAC does not cover cannot be read, and how to grant it.
fn not_granted(kind: ReferenceKind, namespace: &str, answer: &str) -> String {
    let (resource, value) = match kind {
        ReferenceKind::Secret => ("secrets", "rbac.secrets"),
        ReferenceKind::ConfigMap => ("configmaps", "rbac.configMaps"),
    };
    format!(
        "the operator's ServiceAccount may not read it (the API server answered 403: {answer}); \
         grant it get on {resource} in namespace {namespace} (Helm chart: {value}=true)"
    )
}

fn config_map_data(config_map: ConfigMap) -> Fetched {
    let mut data: BTreeMap<String, Vec<u8>> = (config_map.data.unwrap_or_default().into_iter())
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    data.extend((config_map.binary_data.unwrap_or_default().into_iter()).map(|(k, v)| (k, v.0)));
    Fetched::Data(data)
}

/// The referenced objects of one HealthCheck, as the probe engine's reference source.
pub struct Resolved {
    objects: HashMap<Reference, Fetched>,
}

impl ReferenceSource for Resolved {
    fn read(&self, value: &ValueRef) -> Result<Vec<u8>, ReferenceError> {
        match self.objects.get(&value.object) {
            None | Some(Fetched::Missing) => Err(ReferenceError::missing(value, false)),
            Some(Fetched::Forbidden(why)) => Err(ReferenceError::Forbidden {
                kind: value.object.kind,
                name: value.object.name.clone(),
                why: why.clone(),
            }),
            Some(Fetched::Data(data)) => {
                (data.get(&value.key).cloned()).ok_or_else(|| ReferenceError::missing(value, true))
            }
        }
    }
}

#[cfg(test)]
#[path = "refs_tests.rs"]
mod tests;
