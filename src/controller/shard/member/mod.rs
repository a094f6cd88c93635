//! The membership task: renews this replica's Lease, lists the ring's, decides where this
//! replica stands and what it may run, and writes its acknowledgements. The protocol is in the
//! module docs of [`super`].

mod calls;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::{StreamExt, stream::BoxStream};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, watcher},
};
use prometheus::{IntGauge, IntGaugeVec};
use tokio::{sync::watch, time::Instant};

pub use calls::ShardError;

use super::{
    Applied, Assignment, Directory, ShardConfig,
    handover::{self, Me},
    lease::{Claim, RING_LABEL, lease_name},
    peers::{Distrust, Peers, Trust},
    tenure::{Tenure, Turn, next_wake},
};
use crate::{
    controller::{reconcile::Scope, sleep_until},
    runner::Scheduler,
};

/// Lists triggered by the watch are at least this far apart.
const LIST_SPACING: Duration = Duration::from_millis(50);

/// What the membership task listens to between rounds.
struct Inputs {
    applied: watch::Receiver<Applied>,
    leave: watch::Receiver<Option<Timestamp>>,
    /// Changes of the ring's Leases.
    changes: BoxStream<'static, Result<watcher::Event<Lease>, watcher::Error>>,
    /// Cleared once `applied` closed (reconcile stopping): a closed channel is never waited on
    /// again.
    reconciling: bool,
    /// Cleared once `leave` closed (the operator stopping).
    stoppable: bool,
}

/// The gauges the membership task keeps.
pub struct ShardGauges {
    /// `canary_shard_members`.
    pub members: IntGauge,
    /// `canary_shard_excluded_peers{reason}`.
    pub excluded: IntGaugeVec,
}

/// This replica's membership: its Lease, what it last confirmed writing, its tenure.
pub struct Member {
    api: Api<Lease>,
    config: ShardConfig,
    name: String,
    peers: Peers,
    /// This replica's Lease as last written or listed (for its resourceVersion).
    own: Option<Lease>,
    /// Renewals, step-downs, join delay and admission, decided without I/O.
    tenure: Tenure,
    /// What the Lease is known to hold; `None` after a write whose fate is unknown.
    published: Option<Claim>,
    /// When the last round failed (retry sooner than the renew period).
    failed_at: Option<Instant>,
    last_list: Option<Instant>,
    /// When departed Leases were last collected (at most once per renew period).
    collected_at: Option<Instant>,
    /// `canary_shard_members`.
    members_gauge: IntGauge,
    /// `canary_shard_excluded_peers{reason}`.
    excluded_gauge: IntGaugeVec,
    /// The peer Leases not believed at the last publish, for log lines on changes.
    distrusted: BTreeMap<String, Distrust>,
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
        gauges: ShardGauges,
        scheduler: Scheduler,
        directory: Arc<Directory>,
    ) -> Self {
        let name = lease_name(&config.identity);
        Self {
            api: Api::namespaced(client, &config.namespace),
            peers: Peers::new(name.clone(), Trust::of(&config)),
            name,
            tenure: Tenure::new(&config),
            config,
            own: None,
            published: None,
            failed_at: None,
            last_list: None,
            collected_at: None,
            members_gauge: gauges.members,
            excluded_gauge: gauges.excluded,
            distrusted: BTreeMap::new(),
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
        applied: watch::Receiver<Applied>,
        leave: watch::Receiver<Option<Timestamp>>,
    ) {
        let selector = format!("{RING_LABEL}={}", self.config.ring);
        let config = watcher::Config::default().labels(&selector);
        let changes = watcher(self.api.clone(), config).default_backoff().boxed();
        let mut inputs = Inputs {
            applied,
            leave,
            changes,
            reconciling: true,
            stoppable: true,
        };
        loop {
            let leaving = *inputs.leave.borrow();
            if let Some(quiet_after) = leaving {
                self.release(quiet_after).await;
                return;
            }
            let current = *inputs.applied.borrow_and_update();
            // A deadline that passed while this task slept is announced before the round, not
            // after its calls.
            self.check_deadline(Instant::now());
            self.publish(&scope);
            // The step-down must not wait for a Lease call that hangs (as the elector's). Once
            // the deadline has passed (stepped down), rounds run to their end: a past deadline
            // would cancel every round before its first call came back, and the replica could
            // never renew again (each call still has its own timeout). Leaving cuts a round
            // short: the release is promised for a moment that must not pass first.
            let deadline = (self.tenure.deadline()).filter(|at| *at > Instant::now());
            tokio::select! {
                () = self.round(current) => {}
                () = sleep_until(deadline) => {}
                changed = inputs.leave.changed(), if inputs.stoppable => if changed.is_err() {
                    inputs.stoppable = false;
                },
            }
            if inputs.leave.borrow().is_some() {
                continue;
            }
            self.check_deadline(Instant::now());
            self.publish(&scope);
            self.idle(&mut inputs).await;
        }
    }

    /// Waits until the next round is due: its time, another Lease changed (lists spaced by
    /// [`LIST_SPACING`]), reconcile applied a ring, or the operator is leaving.
    async fn idle(&mut self, inputs: &mut Inputs) {
        let wake = self.next_wake();
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(wake) => break,
                event = inputs.changes.next() => if self.poked(event) {
                    if let Some(last) = self.last_list {
                        tokio::time::sleep_until(last + LIST_SPACING).await;
                    }
                    break;
                },
                changed = inputs.applied.changed(), if inputs.reconciling => match changed {
                    Ok(()) => break,
                    Err(_) => inputs.reconciling = false,
                },
                changed = inputs.leave.changed(), if inputs.stoppable => match changed {
                    Ok(()) => break,
                    Err(_) => inputs.stoppable = false,
                },
            }
        }
    }

    /// Whether a watch event says another Lease changed (this replica's own writes do not); a
    /// deleted one leaves the ring at once, before the list that follows.
    fn poked(&mut self, event: Option<Result<watcher::Event<Lease>, watcher::Error>>) -> bool {
        match event {
            Some(Ok(watcher::Event::Delete(lease))) => {
                let name = lease.metadata.name.unwrap_or_default();
                self.peers.deleted(&name);
                name != self.name
            }
            Some(Ok(watcher::Event::Apply(lease))) => {
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
        // Read before the claim's wall-clock renewTime: peers count this replica's renew
        // deadline from that time, so it must not fall after the one counted here.
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
        let mut failed = listed.is_err();
        if changed || self.tenure.renewal_due(now) {
            failed |= self.write(claim, now).await.is_err();
        }
        self.failed_at = failed.then(Instant::now);
        let now = Instant::now();
        let collect_due =
            (self.collected_at).is_none_or(|at| now >= at + self.config.renew_period());
        if listed.is_ok() && self.tenure.healthy(now) && collect_due {
            self.collected_at = Some(now);
            self.collect().await;
        }
    }

    /// What this replica's Lease should say now.
    fn claim(&self, applied: Applied, now: Instant) -> Claim {
        Claim {
            identity: self.config.identity.clone(),
            renew_time: Some(Timestamp::now()),
            duration: self.config.duration,
            member: self.tenure.admits(now),
            ack: applied.ring,
            ack_incarnations: applied.incarnations,
            incarnation: Some(self.incarnation),
            quiet_after: applied.quiet_after,
            ui: self.config.ui,
        }
    }

    fn confirmed(&mut self, written: Lease, claim: Claim, sent: Instant) {
        if self.tenure.confirmed(claim.member, sent) == Turn::Admitted {
            tracing::info!(identity = %self.config.identity, "admitted to the ring");
        }
        self.own = Some(written);
        self.published = Some(claim);
    }

    /// Steps down when the renew deadline passed (the next write says candidate).
    fn check_deadline(&mut self, now: Instant) {
        if self.tenure.check_deadline(now) == Turn::SteppedDown {
            tracing::warn!(
                identity = %self.config.identity, join_delay = ?self.tenure.join_delay(),
                "could not renew within the renew deadline: stopped probing"
            );
        }
    }

    /// Where this replica stands, the ring it sees, and whether it may start checks.
    fn assignment(&self, now: Instant) -> Assignment {
        let me = Me {
            config: &self.config,
            incarnation: self.incarnation,
            standing: self.tenure.standing(now),
            published: self.published.as_ref(),
        };
        handover::assignment(me, &self.peers, Timestamp::now())
    }

    /// Notes which peers acknowledge the ring (after each list).
    fn note_acks(&mut self) {
        let me = Me {
            config: &self.config,
            incarnation: self.incarnation,
            standing: self.tenure.standing(Instant::now()),
            published: self.published.as_ref(),
        };
        handover::note_acks(me, &mut self.peers);
    }

    /// Logs and counts the peer Leases that are not believed, on changes.
    fn report_distrust(&mut self) {
        let now: BTreeMap<String, Distrust> = (self.peers.distrusted().into_iter())
            .map(|(name, why)| (name.to_string(), why))
            .collect();
        for (lease, why) in &now {
            if self.distrusted.get(lease) != Some(why) {
                tracing::warn!(
                    %lease, reason = why.reason(),
                    "a ring Lease is not believed: excluded from the ring and handover waits"
                );
            }
        }
        for lease in self.distrusted.keys().filter(|l| !now.contains_key(*l)) {
            tracing::info!(%lease, "a ring Lease is believed again (or gone)");
        }
        for why in [Distrust::Unacknowledged, Distrust::NeverRenewed] {
            let count = now.values().filter(|w| **w == why).count();
            (self.excluded_gauge.with_label_values(&[why.reason()])).set(count as i64);
        }
        self.distrusted = now;
    }

    fn publish(&mut self, scope: &watch::Sender<Scope>) {
        self.report_distrust();
        let now = Instant::now();
        let assignment = self.assignment(now);
        // Probing stops at the renew deadline whatever reconcile is doing; out of the ring
        // (candidate or stepped down) nothing may start at all.
        self.scheduler
            .probe_until(Some(self.tenure.probe_until(now)));
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
        let others = [retry, self.peers.next_expiry()];
        let moments = self.tenure.due().into_iter().chain(others);
        next_wake(now, moments, now + self.config.call_timeout())
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
