//! Referenced Secrets and ConfigMaps, read by name (GET only, never list or watch) in the
//! HealthCheck's own namespace and cached briefly, so a rotation is picked up within the TTL.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::Duration,
};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};
use tokio::time::Instant;

use crate::{
    api::{Reference, ReferenceKind},
    probe::{ReferenceError, ReferenceSource},
};

/// Deadline of one GET.
const GET_TIMEOUT: Duration = Duration::from_secs(10);

/// The data of one object: key to bytes; `None` when the object does not exist.
type Data = Option<BTreeMap<String, Vec<u8>>>;

/// Why a reference could not be read (other than not existing).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("reading {kind:?} {namespace}/{name}: {source}")]
    Get {
        kind: ReferenceKind,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("the API server failed moments ago; not asking again before {0:?}")]
    Backoff(Instant),
    #[error("reading {kind:?} {namespace}/{name}: timed out")]
    Timeout {
        kind: ReferenceKind,
        namespace: String,
        name: String,
    },
}

/// A TTL cache of referenced objects, keyed by (namespace, reference).
pub struct RefCache {
    client: Client,
    ttl: Duration,
    entries: Mutex<HashMap<(String, Reference), (Instant, Data)>>,
    /// After a failed read, others wait until then instead of each waiting for a timeout.
    backoff_until: Mutex<Option<Instant>>,
}

/// How long reads pause after the API server failed one.
const BACKOFF: Duration = Duration::from_secs(5);

impl RefCache {
    pub fn new(client: Client, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            entries: Mutex::new(HashMap::new()),
            backoff_until: Mutex::new(None),
        }
    }

    fn cached(&self, namespace: &str, reference: &Reference) -> Option<Data> {
        let entries = crate::lock(&self.entries);
        let (at, data) = entries.get(&(namespace.to_string(), reference.clone()))?;
        (at.elapsed() < self.ttl).then(|| data.clone())
    }

    /// Fetches (or reuses) every reference of one HealthCheck.
    pub async fn resolve(
        &self,
        namespace: &str,
        references: &[Reference],
    ) -> Result<Resolved, FetchError> {
        let mut objects = HashMap::new();
        for reference in references {
            let data = match self.cached(namespace, reference) {
                Some(data) => data,
                None => {
                    let paused = *crate::lock(&self.backoff_until);
                    if let Some(until) = paused.filter(|until| *until > Instant::now()) {
                        return Err(FetchError::Backoff(until));
                    }
                    let data = self.fetch(namespace, reference).await.inspect_err(|_| {
                        *crate::lock(&self.backoff_until) = Some(Instant::now() + BACKOFF);
                    })?;
                    let mut entries = crate::lock(&self.entries);
                    entries.insert(
                        (namespace.to_string(), reference.clone()),
                        (Instant::now(), data.clone()),
                    );
                    data
                }
            };
            objects.insert(reference.clone(), data);
        }
        Ok(Resolved { objects })
    }

    async fn fetch(&self, namespace: &str, reference: &Reference) -> Result<Data, FetchError> {
        let get = async {
            match reference.kind {
                ReferenceKind::Secret => {
                    let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
                    api.get_opt(&reference.name).await.map(|s| {
                        s.map(|s| {
                            let mut data: BTreeMap<String, Vec<u8>> = s
                                .data
                                .unwrap_or_default()
                                .into_iter()
                                .map(|(k, v)| (k, v.0))
                                .collect();
                            for (k, v) in s.string_data.unwrap_or_default() {
                                data.insert(k, v.into_bytes());
                            }
                            data
                        })
                    })
                }
                ReferenceKind::ConfigMap => {
                    let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
                    api.get_opt(&reference.name).await.map(|c| {
                        c.map(|c| {
                            let mut data: BTreeMap<String, Vec<u8>> = c
                                .data
                                .unwrap_or_default()
                                .into_iter()
                                .map(|(k, v)| (k, v.into_bytes()))
                                .collect();
                            for (k, v) in c.binary_data.unwrap_or_default() {
                                data.insert(k, v.0);
                            }
                            data
                        })
                    })
                }
            }
        };
        match tokio::time::timeout(GET_TIMEOUT, get).await {
            Ok(Ok(data)) => Ok(data),
            Ok(Err(source)) => Err(FetchError::Get {
                kind: reference.kind,
                namespace: namespace.into(),
                name: reference.name.clone(),
                source,
            }),
            Err(_) => Err(FetchError::Timeout {
                kind: reference.kind,
                namespace: namespace.into(),
                name: reference.name.clone(),
            }),
        }
    }
}

/// The referenced objects of one HealthCheck, as the probe engine's reference source.
pub struct Resolved {
    objects: HashMap<Reference, Data>,
}

impl Resolved {
    fn read(&self, kind: ReferenceKind, name: &str, key: &str) -> Result<Vec<u8>, ReferenceError> {
        let label = kind.as_str();
        let reference = Reference {
            kind,
            name: name.into(),
        };
        let not_found = || ReferenceError::NotFound {
            kind: label,
            name: name.into(),
        };
        let data = self
            .objects
            .get(&reference)
            .ok_or_else(not_found)?
            .as_ref()
            .ok_or_else(not_found)?;
        data.get(key)
            .cloned()
            .ok_or_else(|| ReferenceError::MissingKey {
                kind: label,
                name: name.into(),
                key: key.into(),
            })
    }
}

impl ReferenceSource for Resolved {
    fn secret_key(&self, name: &str, key: &str) -> Result<Vec<u8>, ReferenceError> {
        self.read(ReferenceKind::Secret, name, key)
    }

    fn config_map_key(&self, name: &str, key: &str) -> Result<Vec<u8>, ReferenceError> {
        self.read(ReferenceKind::ConfigMap, name, key)
    }
}
