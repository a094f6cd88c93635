//! Leader election with a coordination.k8s.io/v1 Lease, the way client-go does it, because
//! the crates that offer it either target an older kube (`kube-leader-election`) or judge
//! expiry by comparing the holder's wall-clock `renewTime` with the local clock
//! (`kube-lease-manager`), which clock skew defeats.
//!
//! - Every Lease call has a timeout.
//! - The leader renews every retry period and steps down (stops probing and writing) when no
//!   renewal has succeeded within the renew deadline (2/3 of the lease duration), measured on
//!   the local monotonic clock from when the last successful renewal was *sent*; so it stops
//!   before any standby may take over, whatever the API connection does.
//! - A standby takes over only after it has itself observed the same Lease record (holder,
//!   renewTime, transitions) unchanged for the lease duration, on its own monotonic clock:
//!   wall clocks are never compared, so skew cannot steal a healthy Lease.
//! - On shutdown the leader releases the Lease so a standby takes over at once.

use super::sleep_until;
use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{Api, Client, api::PostParams};
use tokio::{sync::watch, time::Instant};

/// Whether this replica probes and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leadership {
    /// No election: this replica always probes.
    Disabled,
    /// Holds the Lease.
    Leading,
    /// Another replica leads (or nobody could be confirmed).
    Standby,
}

impl Leadership {
    /// Whether this replica should probe and write status.
    pub fn active(self) -> bool {
        !matches!(self, Self::Standby)
    }
}

/// Where and as whom to hold the Lease, and the election's timing.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
    /// The leader steps down when it could not renew for this long (2/3 of the duration).
    pub renew_deadline: Duration,
    /// How often the leader renews and a standby tries to acquire.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// client-go's proportions: renew deadline 2/3 of the duration, retries every 1/6 of it.
    pub fn new(name: String, namespace: String, identity: String, duration: Duration) -> Self {
        let duration = duration.max(Duration::from_secs(1));
        Self {
            name,
            namespace,
            identity,
            duration,
            renew_deadline: duration * 2 / 3,
            retry_period: duration / 6,
        }
    }

    /// Deadline of one Lease call.
    fn call_timeout(&self) -> Duration {
        self.renew_deadline / 2
    }
}

/// Why one election round failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("reading Lease: {}", super::api_error::describe(.0))]
    Get(#[source] kube::Error),
    #[error("writing Lease: {}", super::api_error::describe(.0))]
    Write(#[source] kube::Error),
    #[error("the Lease call timed out after {0:?}")]
    Timeout(Duration),
}

/// The parts of a Lease that change when its holder renews or hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    holder: String,
    renew_time: Option<String>,
    transitions: i32,
    duration: Duration,
}

impl Record {
    fn of(spec: &LeaseSpec) -> Self {
        // A hostile or broken duration must not make a Lease last forever or never.
        let seconds = spec.lease_duration_seconds.unwrap_or(15).clamp(1, 3600);
        Self {
            holder: spec.holder_identity.clone().unwrap_or_default(),
            renew_time: spec.renew_time.as_ref().map(|t| t.0.to_string()),
            transitions: spec.lease_transitions.unwrap_or(0),
            duration: Duration::from_secs(u64::try_from(seconds).unwrap_or(15)),
        }
    }
}

/// The Lease record this replica last saw, and when it first saw it (monotonic).
#[derive(Default)]
struct Observed {
    record: Option<(Record, Instant)>,
}

impl Observed {
    /// Notes `record`; returns it with the time it was first seen unchanged.
    fn see(&mut self, record: Record) -> (Record, Instant) {
        match &self.record {
            Some((seen, at)) if *seen == record => (record, *at),
            _ => {
                let now = Instant::now();
                self.record = Some((record.clone(), now));
                (record, now)
            }
        }
    }
}

/// The elector: campaigns until `stop` flips, publishing whether this replica leads; releases
/// the Lease on the way out.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Observed,
    /// When the last successful renewal was sent, while leading.
    renewed_at: Option<Instant>,
}

impl Elector {
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: Observed::default(),
            renewed_at: None,
        }
    }

    /// Campaigns until `stop` flips, then releases the Lease if held.
    pub async fn run(
        mut self,
        leadership: watch::Sender<Leadership>,
        mut stop: watch::Receiver<bool>,
    ) {
        leadership.send_replace(Leadership::Standby);
        loop {
            let sent = Instant::now();
            let step_down = self.step_down_at();
            let round = tokio::select! {
                round = self.round() => Some(round),
                () = sleep_until(step_down) => None,
                _ = stop.changed() => break,
            };
            match round {
                Some(Ok(true)) => self.renewed_at = Some(sent),
                Some(Ok(false)) => self.renewed_at = None,
                Some(Err(error)) => {
                    tracing::warn!(%error, lease = %self.config.name, "leader election round failed")
                }
                None => {}
            }
            self.publish(&leadership);
            tokio::select! {
                () = tokio::time::sleep(self.config.retry_period) => {}
                () = sleep_until(self.step_down_at()) => self.publish(&leadership),
                _ = stop.changed() => break,
            }
        }
        if self.leading() {
            leadership.send_replace(Leadership::Standby);
            if let Err(error) = self.release().await {
                tracing::warn!(%error, "could not release the Lease; a standby takes over when it expires");
            }
        }
    }

    fn leading(&self) -> bool {
        self.renewed_at
            .is_some_and(|at| at.elapsed() < self.config.renew_deadline)
    }

    /// When a leader that cannot renew must stop.
    fn step_down_at(&self) -> Option<Instant> {
        self.renewed_at.map(|at| at + self.config.renew_deadline)
    }

    fn publish(&mut self, leadership: &watch::Sender<Leadership>) {
        if !self.leading() {
            self.renewed_at = None;
        }
        let now = if self.leading() {
            Leadership::Leading
        } else {
            Leadership::Standby
        };
        leadership.send_if_modified(|current| {
            let changed = *current != now;
            if changed {
                tracing::info!(identity = %self.config.identity, leadership = ?now, "leadership changed");
            }
            *current = now;
            changed
        });
    }

    async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, kube::Error>>,
        error: fn(kube::Error) -> LeaderError,
    ) -> Result<T, LeaderError> {
        let limit = self.config.call_timeout();
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result.map_err(error),
            Err(_) => Err(LeaderError::Timeout(limit)),
        }
    }

    /// One round: true when this replica holds the Lease afterwards.
    async fn round(&mut self) -> Result<bool, LeaderError> {
        let current = self
            .call(self.api.get_opt(&self.config.name), LeaderError::Get)
            .await?;
        let Some(mut lease) = current else {
            return self.create().await;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let (record, seen_at) = self.observed.see(Record::of(spec));
        let mine = record.holder == self.config.identity;
        if !mine && !record.holder.is_empty() && seen_at.elapsed() < record.duration {
            return Ok(false);
        }
        if !mine {
            spec.acquire_time = Some(now());
            spec.lease_transitions = Some(record.transitions.saturating_add(1));
        }
        spec.holder_identity = Some(self.config.identity.clone());
        spec.renew_time = Some(now());
        spec.lease_duration_seconds = Some(self.duration_seconds());
        // replace() sends the resourceVersion we read: a concurrent writer makes this a 409.
        let params = PostParams::default();
        let replaced = self.api.replace(&self.config.name, &params, &lease);
        match self.call(replaced, LeaderError::Write).await {
            Ok(written) => {
                if let Some(spec) = &written.spec {
                    self.observed.see(Record::of(spec));
                }
                Ok(true)
            }
            Err(LeaderError::Write(kube::Error::Api(status))) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.config.duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    async fn create(&mut self) -> Result<bool, LeaderError> {
        let mut lease = Lease::default();
        lease.metadata.name = Some(self.config.name.clone());
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.duration_seconds()),
            acquire_time: Some(now()),
            renew_time: Some(now()),
            lease_transitions: Some(0),
            ..Default::default()
        });
        let params = PostParams::default();
        let created = self.api.create(&params, &lease);
        match self.call(created, LeaderError::Write).await {
            Ok(_) => Ok(true),
            Err(LeaderError::Write(kube::Error::Api(status))) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn release(&self) -> Result<(), LeaderError> {
        let current = self
            .call(self.api.get_opt(&self.config.name), LeaderError::Get)
            .await?;
        let Some(mut lease) = current else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        let params = PostParams::default();
        let replaced = self.api.replace(&self.config.name, &params, &lease);
        self.call(replaced, LeaderError::Write).await.map(|_| ())
    }
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_hostile_durations_as_sane_ones() {
        let spec = LeaseSpec {
            lease_duration_seconds: Some(i32::MAX),
            renew_time: Some(MicroTime(jiff::Timestamp::MAX)),
            ..Default::default()
        };
        assert_eq!(Record::of(&spec).duration, Duration::from_secs(3600));
        let negative = LeaseSpec {
            lease_duration_seconds: Some(-5),
            ..Default::default()
        };
        assert_eq!(Record::of(&negative).duration, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_is_judged_by_how_long_a_record_was_seen_unchanged() {
        let mut observed = Observed::default();
        let record = |renew: &str| Record {
            holder: "other".into(),
            renew_time: Some(renew.into()),
            transitions: 0,
            duration: Duration::from_secs(15),
        };
        let first = observed.see(record("t1")).1;
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(
            observed.see(record("t1")).1,
            first,
            "unchanged: the clock keeps running"
        );
        let renewed = observed.see(record("t2")).1;
        assert!(renewed > first, "a renewal restarts the observation");
    }
}
