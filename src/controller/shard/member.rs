//! The membership task: renews this replica's Lease, lists the ring's, decides where this
//! replica stands and what it may run, and writes its acknowledgements. The protocol is in the
//! module docs of [`super`].

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, PostParams, Preconditions},
    runtime::{WatchStreamExt, watcher},
};
use prometheus::IntGauge;
use tokio::{sync::watch, time::Instant};

use super::{
    Applied, Assignment, Directory, ShardConfig, Standing,
    lease::{Claim, RING_LABEL, lease_name},
    peers::Peers,
    ring::Ring,
};
use crate::{
    controller::{reconcile::Scope, sleep_until},
    runner::Scheduler,
};

/// Lists triggered by the watch are at least this far apart.
const LIST_SPACING: Duration = Duration::from_millis(50);

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

/// This replica's membership: its Lease, what it last confirmed writing, its join delay.
pub struct Member {
    api: Api<Lease>,
    config: ShardConfig,
    name: String,
    peers: Peers,
    /// This replica's Lease as last written or listed (for its resourceVersion).
    own: Option<Lease>,
    /// When the last confirmed write was sent.
    renewed_at: Option<Instant>,
    /// The first confirmed write since start or the last step-down.
    healthy_since: Option<Instant>,
    join_delay: Duration,
    /// When admission (`member: true`) was confirmed.
    admitted_at: Option<Instant>,
    /// What the Lease is known to hold; `None` after a write whose fate is unknown.
    published: Option<Claim>,
    /// The member flag of the last confirmed write (a failed write never sets it).
    member: bool,
    /// When the last round failed (retry sooner than the renew period).
    failed_at: Option<Instant>,
    last_list: Option<Instant>,
    /// When departed Leases were last collected (at most once per renew period).
    collected_at: Option<Instant>,
    /// `canary_shard_members`.
    members_gauge: IntGauge,
    /// Its probe gate follows the renew deadline directly (see [`Scheduler::probe_until`]).
    scheduler: Scheduler,
    /// The ring and the members' pages, for the status page.
    directory: Arc<Directory>,
    /// This process among the ring's members (see [`super::lease::INCARNATION_ANNOTATION`]).
    incarnation: u64,
}

impl Member {
    pub fn new(
        client: Client,
        config: ShardConfig,
        members_gauge: IntGauge,
        scheduler: Scheduler,
        directory: Arc<Directory>,
    ) -> Self {
        let name = lease_name(&config.identity);
        Self {
            api: Api::namespaced(client, &config.namespace),
            peers: Peers::new(name.clone()),
            name,
            join_delay: config.join_base(),
            config,
            own: None,
            renewed_at: None,
            healthy_since: None,
            admitted_at: None,
            published: None,
            member: false,
            failed_at: None,
            last_list: None,
            collected_at: None,
            members_gauge,
            scheduler,
            directory,
            incarnation: new_incarnation(),
        }
    }

    /// How far ahead of its release this replica promises to stop (see [`ShardConfig::leave_lead`]).
    pub fn leave_lead(&self) -> Duration {
        self.config.leave_lead()
    }

    /// Renews, observes and publishes until `leave` carries a quiet-after promise; then
    /// releases the Lease with it and returns.
    pub async fn run(
        mut self,
        scope: watch::Sender<Scope>,
        mut applied: watch::Receiver<Applied>,
        mut leave: watch::Receiver<Option<Timestamp>>,
    ) {
        let selector = format!("{RING_LABEL}={}", self.config.ring);
        let config = watcher::Config::default().labels(&selector);
        let mut changes = watcher(self.api.clone(), config).default_backoff().boxed();
        let (mut reconciling, mut stoppable) = (true, true);
        loop {
            let leaving = *leave.borrow();
            if let Some(quiet_after) = leaving {
                self.release(quiet_after).await;
                return;
            }
            let current = *applied.borrow_and_update();
            // A deadline that passed while this task slept is announced before the round, not
            // after its calls.
            self.check_deadline(Instant::now());
            self.publish(&scope);
            // The step-down must not wait for a Lease call that hangs (as the elector's). Once
            // the deadline has passed (stepped down), rounds run to their end: a past deadline
            // would cancel every round before its first call came back, and the replica could
            // never renew again (each call still has its own timeout). Leaving cuts a round
            // short: the release is promised for a moment that must not pass first.
            let deadline = (self.renewed_at)
                .map(|at| at + self.config.renew_deadline())
                .filter(|at| *at > Instant::now());
            tokio::select! {
                () = self.round(current) => {}
                () = sleep_until(deadline) => {}
                changed = leave.changed(), if stoppable => if changed.is_err() {
                    stoppable = false;
                },
            }
            if leave.borrow().is_some() {
                continue;
            }
            self.check_deadline(Instant::now());
            self.publish(&scope);
            let wake = self.next_wake();
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(wake) => break,
                    event = changes.next() => if self.poked(event) {
                        if let Some(last) = self.last_list {
                            tokio::time::sleep_until(last + LIST_SPACING).await;
                        }
                        break;
                    },
                    // A closed channel (reconcile or the operator stopping) is never waited on again.
                    changed = applied.changed(), if reconciling => match changed {
                        Ok(()) => break,
                        Err(_) => reconciling = false,
                    },
                    changed = leave.changed(), if stoppable => match changed {
                        Ok(()) => break,
                        Err(_) => stoppable = false,
                    },
                }
            }
        }
    }

    /// Whether a watch event says another Lease changed (this replica's own writes do not).
    fn poked(&self, event: Option<Result<watcher::Event<Lease>, watcher::Error>>) -> bool {
        match event {
            Some(Ok(watcher::Event::Apply(lease) | watcher::Event::Delete(lease))) => {
                lease.metadata.name.as_deref() != Some(self.name.as_str())
            }
            Some(Ok(watcher::Event::InitDone)) => true,
            Some(Ok(_)) => false,
            Some(Err(error)) => {
                tracing::debug!(%error, "the ring's Lease watch failed; lists go on");
                false
            }
            // The stream ended (it never should): lists go on at the renew period.
            None => false,
        }
    }

    /// One round: list the ring, step down if the deadline passed, write the Lease when a
    /// renewal is due or what it should say changed.
    async fn round(&mut self, applied: Applied) {
        let listed = self.list().await;
        let now = Instant::now();
        self.check_deadline(now);
        let claim = self.claim(applied, now);
        let changed = (self.published.as_ref()).is_none_or(|p| {
            (p.member, p.ack, p.ack_incarnations, p.quiet_after)
                != (
                    claim.member,
                    claim.ack,
                    claim.ack_incarnations,
                    claim.quiet_after,
                )
        });
        let due = self
            .renewed_at
            .is_none_or(|at| now >= at + self.config.renew_period());
        let mut failed = listed.is_err();
        if changed || due {
            failed |= self.write(claim).await.is_err();
        }
        self.failed_at = failed.then(Instant::now);
        let now = Instant::now();
        let collect_due =
            (self.collected_at).is_none_or(|at| now >= at + self.config.renew_period());
        if listed.is_ok() && self.healthy(now) && collect_due {
            self.collected_at = Some(now);
            self.collect().await;
        }
    }

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

    async fn list(&mut self) -> Result<(), ShardError> {
        let params = ListParams::default().labels(&format!("{RING_LABEL}={}", self.config.ring));
        let sent = Instant::now();
        self.last_list = Some(sent);
        let list = self.call(self.api.list(&params), ShardError::List).await;
        let list = list.inspect_err(|error| tracing::warn!(%error, "listing the ring failed"))?;
        self.peers.observe(&list.items, sent, Instant::now());
        if self.own.is_none() {
            let own = list
                .items
                .iter()
                .find(|l| l.metadata.name.as_ref() == Some(&self.name));
            self.own = own.cloned();
        }
        Ok(())
    }

    /// What this replica's Lease should say now.
    fn claim(&self, applied: Applied, now: Instant) -> Claim {
        let admitted = self.healthy(now)
            && (self.healthy_since).is_some_and(|since| now >= since + self.join_delay);
        Claim {
            identity: self.config.identity.clone(),
            renew_time: Some(Timestamp::now()),
            duration: self.config.duration,
            member: admitted,
            ack: applied.ring,
            ack_incarnations: applied.incarnations,
            incarnation: Some(self.incarnation),
            quiet_after: applied.quiet_after,
            ui: self.config.ui,
        }
    }

    /// Writes `claim` (creating the Lease when there is none); on success it is a renewal.
    /// Until it is confirmed (or if this future is dropped) what the Lease holds is unknown.
    async fn write(&mut self, claim: Claim) -> Result<(), ShardError> {
        let sent = Instant::now();
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

    fn confirmed(&mut self, written: Lease, claim: Claim, sent: Instant) {
        if claim.member && !self.member {
            self.admitted_at = Some(sent);
            tracing::info!(identity = %self.config.identity, "admitted to the ring");
        }
        self.member = claim.member;
        self.own = Some(written);
        self.renewed_at = Some(sent);
        self.healthy_since.get_or_insert(sent);
        self.published = Some(claim);
    }

    fn healthy(&self, now: Instant) -> bool {
        (self.renewed_at).is_some_and(|at| now < at + self.config.renew_deadline())
    }

    /// Steps down when the renew deadline passed (the next write says candidate) and
    /// lengthens the join delay; resets the delay after a long steady membership.
    fn check_deadline(&mut self, now: Instant) {
        if self.healthy_since.is_some() && !self.healthy(now) {
            tracing::warn!(identity = %self.config.identity, "could not renew within the renew deadline: stopped probing");
            self.healthy_since = None;
            self.admitted_at = None;
            self.member = false;
            let doubled = (self.join_delay * 2).max(self.config.duration);
            self.join_delay = doubled.min(self.config.join_max());
        }
        if (self.admitted_at).is_some_and(|at| now >= at + self.config.join_max()) {
            self.join_delay = self.config.join_base();
        }
    }

    /// Where this replica stands, the ring it sees, and whether it may start checks.
    fn assignment(&self, now: Instant) -> Assignment {
        let standing = match (self.healthy(now), self.member) {
            (false, _) => Standing::SteppedDown,
            (true, true) => Standing::Member,
            (true, false) => Standing::Candidate,
        };
        let mut members: Vec<(String, Option<u64>)> = (self.peers.members())
            .map(|c| (c.identity.clone(), c.incarnation))
            .collect();
        if standing == Standing::Member {
            members.push((self.config.identity.clone(), Some(self.incarnation)));
        }
        let ring = Ring::of(members);
        // Every alive Lease must acknowledge, candidates included: a replica that stepped down
        // is a candidate as soon as it renews again, before its reconcile has stopped what it
        // ran; its acknowledgement says it has.
        let may_gain = standing == Standing::Member
            && (self.published.as_ref()).is_some_and(|own| acknowledged(own, &ring))
            && self
                .peers
                .alive_claims()
                .all(|peer| acknowledged(peer, &ring));
        Assignment {
            identity: Arc::from(self.config.identity.as_str()),
            ring: Arc::new(ring),
            standing,
            may_gain,
            quiet_after: self
                .peers
                .quiet_after(Timestamp::now(), self.config.leave_lead()),
        }
    }

    fn publish(&self, scope: &watch::Sender<Scope>) {
        let now = Instant::now();
        let assignment = self.assignment(now);
        // Probing stops at the renew deadline whatever reconcile is doing; out of the ring
        // (candidate or stepped down) nothing may start at all.
        let until = match (assignment.standing, self.renewed_at) {
            (Standing::Member, Some(at)) => at + self.config.renew_deadline(),
            _ => now,
        };
        self.scheduler.probe_until(Some(until));
        self.members_gauge.set(assignment.ring.len() as i64);
        let pages = (self.peers.members())
            .filter_map(|peer| Some((peer.identity.clone(), peer.ui?)))
            .collect();
        self.directory.update(assignment.ring.clone(), pages);
        scope.send_if_modified(|current| {
            let changed = !matches!(current, Scope::Share(now) if now.ring == assignment.ring
                && now.standing == assignment.standing && now.may_gain == assignment.may_gain);
            if changed {
                tracing::info!(
                    standing = ?assignment.standing, ring = %assignment.ring.hash(),
                    members = ?assignment.ring.members(), may_gain = assignment.may_gain,
                    "ring changed"
                );
            }
            // The quiet-after time alone is no reason to wake reconcile.
            *current = Scope::Share(assignment);
            changed
        });
    }

    /// The next moment something is due: a renewal (sooner after a failure), the step-down
    /// deadline, admission, or a peer's possible expiry.
    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        let retry = self.failed_at.map(|at| at + self.config.call_timeout());
        let renew = self.renewed_at.map(|at| at + self.config.renew_period());
        let deadline = self.renewed_at.map(|at| at + self.config.renew_deadline());
        let admission = (!self.member)
            .then(|| self.healthy_since.map(|at| at + self.join_delay))
            .flatten();
        let expiry = self.peers.next_expiry();
        [retry, renew, deadline, admission, expiry]
            .into_iter()
            .flatten()
            .filter(|at| *at > now)
            .min()
            .unwrap_or(now + self.config.call_timeout())
    }

    /// Deletes Leases released or dead for a while (departed pods), each only if unchanged.
    async fn collect(&self) {
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
    async fn release(&mut self, quiet_after: Timestamp) {
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
            match self.write(claim.clone()).await {
                Ok(()) => {
                    tracing::info!(lease = %self.name, %quiet_after, "released this replica's Lease");
                    return;
                }
                Err(error) if error.status() == Some(409) => continue,
                Err(_) => break,
            }
        }
        tracing::warn!("could not release the Lease; peers take over when it expires");
    }
}

/// Whether `claim` acknowledges `ring`: by the hash with incarnations when its holder publishes
/// one, else (an older version, during a rolling update) by the identities' hash.
pub(super) fn acknowledged(claim: &Claim, ring: &Ring) -> bool {
    match claim.incarnation {
        Some(_) => claim.ack_incarnations == Some(ring.incarnations_hash()),
        None => claim.ack == Some(ring.hash()),
    }
}

/// A number no other process of this identity chose: from the OS's randomness, as std seeds
/// its hash maps with it (no dependency for one number).
fn new_incarnation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::UNIX_EPOCH.elapsed();
    hasher.write_u128(now.map_or(0, |d| d.as_nanos()));
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(identity: &str, incarnation: Option<u64>, acked: &Ring) -> Claim {
        Claim {
            identity: identity.into(),
            renew_time: Some(Timestamp::now()),
            duration: Duration::from_secs(15),
            member: true,
            ack: Some(acked.hash()),
            ack_incarnations: incarnation.map(|_| acked.incarnations_hash()),
            incarnation,
            quiet_after: None,
            ui: None,
        }
    }

    #[test]
    fn an_acknowledgement_from_before_a_peer_restarted_does_not_count_for_the_ring_after() {
        let ring = |r2: u64| Ring::of([("r1".to_string(), Some(1)), ("r2".to_string(), Some(r2))]);
        let (before, after) = (ring(2), ring(3));
        // r1 acknowledged the ring with r2's previous process; r2 restarted within the Lease
        // duration, under the same identity: the same identities, a new member.
        assert!(!acknowledged(&claim("r1", Some(1), &before), &after));
        assert!(acknowledged(&claim("r1", Some(1), &after), &after));
        // A replica of a version without incarnations (a rolling update) is judged as before.
        let mixed = Ring::of([("r1".to_string(), None), ("r2".to_string(), Some(3))]);
        assert!(acknowledged(&claim("r1", None, &before), &mixed));
    }
}
