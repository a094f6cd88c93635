//! The discovery controller's writes: generated HealthChecks by server-side apply (field
//! manager `canary-discovery`), prunes, detaches, the CheckDiscovery's status and its Warning
//! Events. Every write waits for a slot of the status writer's budgets (creates spend the
//! first-write budget, the rest the steady one), has a deadline, and is counted.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use serde_json::{Value, json};

use super::plan::Action;
use crate::{
    api::{CheckDiscovery, CheckDiscoveryStatus, HealthCheck},
    controller::{api_error::describe, writer::StatusWriter},
    discovery::{DISCOVERY_LABEL, SOURCE_KIND_LABEL, SOURCE_NAME_LABEL},
    metrics::DiscoveryMetrics,
};

/// Field manager of every discovery write.
pub const FIELD_MANAGER: &str = "canary-discovery";
/// Longest Event note the API server accepts, in bytes.
const MAX_NOTE_BYTES: usize = 1024;
/// Deadline of one write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why one write failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum WriteError {
    #[error("{operation} {name}: {}", describe(.source))]
    Api {
        operation: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("{operation} {name}: no answer within {WRITE_TIMEOUT:?}")]
    Timeout {
        operation: &'static str,
        name: String,
    },
}

/// Sends the writes.
#[derive(Clone)]
pub(super) struct Writes {
    client: Client,
    budget: StatusWriter,
    metrics: DiscoveryMetrics,
    recorder: Arc<Recorder>,
}

impl Writes {
    pub fn new(
        client: Client,
        budget: StatusWriter,
        metrics: DiscoveryMetrics,
        instance: String,
    ) -> Self {
        let reporter = Reporter {
            controller: crate::controller::writer::FIELD_MANAGER.into(),
            instance: Some(instance),
        };
        let recorder = Arc::new(Recorder::new(client.clone(), reporter));
        Self {
            client,
            budget,
            metrics,
            recorder,
        }
    }

    /// Performs one action in `namespace`; an apply answers the applied check.
    pub async fn act(
        &self,
        namespace: &str,
        action: &Action,
    ) -> Result<Option<HealthCheck>, WriteError> {
        let api: Api<HealthCheck> = Api::namespaced(self.client.clone(), namespace);
        match action {
            Action::Apply { check, create } => {
                let operation = if *create { "create" } else { "update" };
                self.budget.budget(*create).await;
                // Force: the discovery is the source of truth for the fields it sets, under
                // Sync and CreateUpdate; a hand edit of them is overwritten, as a GitOps sync
                // would (`canary.dev/managed: "false"` is how a user takes a check over).
                let params = PatchParams::apply(FIELD_MANAGER).force();
                let name = check.name_any();
                let patch = Patch::Apply(check.as_ref());
                let write = api.patch(&name, &params, &patch);
                self.finish(operation, &name, write).await.map(Some)
            }
            Action::Delete { name, uid } => {
                self.budget.budget(false).await;
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(uid.clone()),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                let write = async {
                    match api.delete(name, &params).await {
                        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                        other => other.map(|_| ()),
                    }
                };
                self.finish("delete", name, write).await.map(|()| None)
            }
            Action::Detach { name, owners } => {
                self.budget.budget(false).await;
                let labels: BTreeMap<&str, Value> =
                    [DISCOVERY_LABEL, SOURCE_KIND_LABEL, SOURCE_NAME_LABEL]
                        .into_iter()
                        .map(|l| (l, Value::Null))
                        .collect();
                let patch = json!({"metadata": {"labels": labels, "ownerReferences": owners}});
                let params = PatchParams::default();
                let patch = Patch::Merge(&patch);
                let write = api.patch(name, &params, &patch);
                self.finish("detach", name, write).await.map(|_| None)
            }
        }
    }

    /// Writes a discovery's status (server-side apply on `/status`).
    pub async fn status(
        &self,
        discovery: &CheckDiscovery,
        status: &CheckDiscoveryStatus,
    ) -> Result<(), WriteError> {
        let namespace = discovery.namespace().unwrap_or_default();
        let api: Api<CheckDiscovery> = Api::namespaced(self.client.clone(), &namespace);
        let body = json!({
            "apiVersion": CheckDiscovery::api_version(&()),
            "kind": CheckDiscovery::kind(&()),
            "status": status,
        });
        self.budget.budget(false).await;
        // Force: this controller is the only writer of a CheckDiscovery's status.
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let name = discovery.name_any();
        let patch = Patch::Apply(&body);
        let write = api.patch_status(&name, &params, &patch);
        self.finish("status", &name, write).await.map(|_| ())
    }

    /// A Warning Event on the discovery (a bad spec or template); logged when it fails.
    pub async fn warn(&self, discovery: &CheckDiscovery, reason: &str, note: &str) {
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(cut(note, MAX_NOTE_BYTES)),
            action: "Discover".into(),
            secondary: None,
        };
        let reference = discovery.object_ref(&());
        let publish = self.recorder.publish(&event, &reference);
        match tokio::time::timeout(WRITE_TIMEOUT, publish).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(discovery = %discovery.name_any(), error = %describe(&error), "publishing an Event failed");
            }
            Err(_) => {
                tracing::warn!(discovery = %discovery.name_any(), "publishing an Event timed out")
            }
        }
    }

    async fn finish<T>(
        &self,
        operation: &'static str,
        name: &str,
        write: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, WriteError> {
        let result = match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(WriteError::Api {
                operation,
                name: name.into(),
                source,
            }),
            Err(_) => Err(WriteError::Timeout {
                operation,
                name: name.into(),
            }),
        };
        self.metrics.wrote(operation, result.is_ok());
        result
    }
}

/// `text` cut at a character boundary to at most `max` bytes.
fn cut(text: &str, max: usize) -> String {
    (text.char_indices())
        .take_while(|(i, c)| i + c.len_utf8() <= max)
        .map(|(_, c)| c)
        .collect()
}
