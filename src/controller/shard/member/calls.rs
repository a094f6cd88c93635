//! The membership task's Lease calls, each with a timeout: list the ring, write this
//! replica's Lease (create or replace), delete departed replicas' Leases, release on the way
//! out. What they return feeds the pure tenure and peer table.

use std::time::Duration;

use jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};
use tokio::time::Instant;

use super::Member;
use crate::controller::shard::lease::{Claim, RING_LABEL};

/// Why one Lease call failed.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("listing the ring's Leases: {0}")]
    List(#[source] kube::Error),
    #[error("writing this replica's Lease: {0}")]
    Write(#[source] kube::Error),
    #[error("deleting a departed replica's Lease: {0}")]
    Delete(#[source] kube::Error),
    #[error("the Lease call timed out after {0:?}")]
    Timeout(Duration),
}

impl ShardError {
    fn status(&self) -> Option<u16> {
        match self {
            Self::List(kube::Error::Api(s))
            | Self::Write(kube::Error::Api(s))
            | Self::Delete(kube::Error::Api(s)) => Some(s.code),
            _ => None,
        }
    }
}

impl Member {
    /// `call` under the Lease call timeout.
    async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, kube::Error>>,
        error: fn(kube::Error) -> ShardError,
    ) -> Result<T, ShardError> {
        let limit = self.config.call_timeout();
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result.map_err(error),
            Err(_) => Err(ShardError::Timeout(limit)),
        }
    }

    /// Lists the ring's Leases into the peer table (and this replica's own, if not held yet).
    pub(super) async fn list(&mut self) -> Result<(), ShardError> {
        let params = ListParams::default().labels(&format!("{RING_LABEL}={}", self.config.ring));
        let sent = Instant::now();
        self.last_list = Some(sent);
        let list = self.call(self.api.list(&params), ShardError::List).await;
        let list = list.inspect_err(|error| tracing::warn!(%error, "listing the ring failed"))?;
        self.peers.observe(&list.items, sent, Instant::now());
        self.note_acks();
        if self.own.is_none() {
            let own = list
                .items
                .iter()
                .find(|l| l.metadata.name.as_ref() == Some(&self.name));
            self.own = own.cloned();
        }
        Ok(())
    }

    /// Writes `claim` (creating the Lease when there is none); on success it is a renewal sent
    /// at `sent` (read before the claim's renewTime). Until it is confirmed (or if this future
    /// is dropped) what the Lease holds is unknown.
    pub(super) async fn write(&mut self, claim: Claim, sent: Instant) -> Result<(), ShardError> {
        self.published = None;
        let mut lease = self.own.clone().unwrap_or_default();
        claim.write_into(&mut lease, &self.name, &self.config.ring);
        let params = PostParams::default();
        let result = match lease.metadata.resource_version {
            Some(_) => {
                let replaced = self.api.replace(&self.name, &params, &lease);
                self.call(replaced, ShardError::Write).await
            }
            None => {
                self.call(self.api.create(&params, &lease), ShardError::Write)
                    .await
            }
        };
        match result {
            Ok(written) => {
                self.confirmed(written, claim, sent);
                Ok(())
            }
            Err(error) => {
                // Unknown whether it landed: nothing new may be started until a write is
                // confirmed; a conflict or a missing Lease means the copy held is stale.
                if matches!(error.status(), Some(404 | 409)) {
                    self.own = None;
                }
                tracing::warn!(%error, lease = %self.name, "renewing this replica's Lease failed");
                Err(error)
            }
        }
    }

    /// Deletes Leases released or dead for a while (departed pods), each only if unchanged.
    pub(super) async fn collect(&self) {
        for (name, resource_version) in self.peers.stale(self.config.collect_after()) {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: Some(resource_version),
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            match self
                .call(self.api.delete(&name, &params), ShardError::Delete)
                .await
            {
                Ok(_) => tracing::info!(lease = %name, "deleted the Lease of a departed replica"),
                Err(error) => tracing::debug!(%error, lease = %name, "not deleted"),
            }
        }
    }

    /// Releases the Lease on the way out, promising to probe nothing after `quiet_after`.
    pub(super) async fn release(&mut self, quiet_after: Timestamp) {
        let claim = Claim {
            identity: String::new(),
            renew_time: None,
            duration: self.config.duration,
            member: false,
            ack: self.published.as_ref().and_then(|p| p.ack),
            ack_incarnations: self.published.as_ref().and_then(|p| p.ack_incarnations),
            incarnation: Some(self.incarnation),
            quiet_after: Some(quiet_after),
            ui: None,
        };
        for _ in 0..2 {
            if self.own.is_none() {
                let _ = self.list().await;
            }
            match self.write(claim.clone(), Instant::now()).await {
                Ok(()) => {
                    tracing::info!(lease = %self.name, %quiet_after, "released this replica's Lease");
                    // Peers now wait for the promise, not for expiry: runs due by it may start
                    // until this write's renew deadline (past the promise), even a little late.
                    // The gate of the last renewal could close before the promise and leave a
                    // slot nobody runs.
                    self.scheduler.probe_until(self.tenure.deadline());
                    return;
                }
                Err(error) if error.status() == Some(409) => continue,
                Err(_) => break,
            }
        }
        tracing::warn!("could not release the Lease; peers take over when it expires");
    }
}
