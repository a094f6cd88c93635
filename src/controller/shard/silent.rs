//! Checks another ring member owns that nobody probes, judged from their status, with no I/O:
//! an owner writes `lastRunTime` at least once per status heartbeat (`--status-heartbeat`), as
//! fast as its write rate lets it write every check it owns. A member that renews and
//! acknowledges the ring but probes nothing (a stuck replica, or a Lease forged by someone who
//! copies the acknowledgements) leaves its checks' `lastRunTime` behind; every replica sees
//! every HealthCheck and reports how many it finds (`canary_shard_peer_checks_unprobed`, alert
//! `CanaryShardChecksUnprobed`). This replica's own checks are the self-audit's.

use std::{collections::BTreeMap, time::Duration};

use jiff::Timestamp;

use super::Assignment;
use crate::api::{CheckKey, HealthCheck, ValidSpec};

/// How often owners write status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Silence {
    /// `--status-heartbeat`.
    pub heartbeat: Duration,
    /// `--status-write-qps` (every replica of a release runs with the same).
    pub write_qps: u32,
}

impl Silence {
    /// The longest a probing owner of `owned` checks leaves the `lastRunTime` of one with
    /// `interval` and `timeout` unwritten: two runs and two heartbeats, plus the time its
    /// write rate needs to write every check it owns (so a large share is not judged silent).
    pub fn bound(&self, interval: Duration, timeout: Duration, owned: usize) -> Duration {
        let writes = owned as f64 / f64::from(self.write_qps.max(1));
        (interval + timeout + self.heartbeat) * 2 + Duration::from_secs_f64(writes)
    }
}

/// What the audit reads of a check that should be probing: when it last ran (or was created)
/// and its schedule. The index keeps it for every object, owned here or not, so an audit pass
/// neither parses nor validates anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watched {
    last: Option<Timestamp>,
    interval: Duration,
    timeout: Duration,
}

impl Watched {
    /// `None` for a check nobody should be probing: suspended, invalid, or waiting for a
    /// missing or forbidden reference.
    /// `valid`: the spec's validation, made once by the caller (`None`: invalid).
    pub fn of(check: &HealthCheck, valid: Option<&ValidSpec>) -> Option<Self> {
        // A check with locations has no local runs: its reports say whether spokes probe it.
        let located = check.spec.locations.is_some();
        if check.spec.suspend || located || blocked(check) {
            return None;
        }
        let valid = valid?;
        let status = check.status.as_ref();
        let last = (status.and_then(|s| s.last_run_time.as_ref()))
            .or(check.metadata.creation_timestamp.as_ref())
            .map(|t| t.0);
        Some(Self {
            last,
            interval: valid.interval,
            timeout: valid.timeout,
        })
    }
}

/// The checks owned by other members that should be probing (see [`Watched::of`]) whose last
/// run (or creation, if never run) is older than [`Silence::bound`]: by owner.
pub fn unprobed_elsewhere<'a>(
    assignment: &'a Assignment,
    checks: impl IntoIterator<Item = (&'a CheckKey, Watched)>,
    now: Timestamp,
    silence: Silence,
) -> BTreeMap<String, usize> {
    let judged: Vec<(&str, Watched)> = (checks.into_iter())
        .filter_map(|(key, watched)| {
            let owner = assignment.ring.owner(key)?;
            (owner != &*assignment.identity).then_some((owner, watched))
        })
        .collect();
    let mut owned: BTreeMap<&str, usize> = BTreeMap::new();
    for (owner, _) in &judged {
        *owned.entry(owner).or_default() += 1;
    }
    let mut silent = BTreeMap::new();
    for (owner, check) in &judged {
        let bound = silence.bound(check.interval, check.timeout, owned[owner]);
        let since = check.last.map(|last| now.duration_since(last));
        let bound = jiff::SignedDuration::try_from(bound).unwrap_or(jiff::SignedDuration::MAX);
        if since.is_some_and(|since| since > bound) {
            *silent.entry(owner.to_string()).or_default() += 1;
        }
    }
    silent
}

/// Whether its owner reports it waiting for a missing or forbidden reference (it runs no
/// probe until the reference appears).
fn blocked(check: &HealthCheck) -> bool {
    let ready = check.status.as_ref().and_then(|s| s.ready_condition());
    ready.is_some_and(|c| {
        matches!(
            c.reason.as_str(),
            "ReferenceNotFound" | "ReferenceForbidden"
        )
    })
}

#[cfg(test)]
#[path = "silent_tests.rs"]
mod tests;
