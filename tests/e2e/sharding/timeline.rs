//! What the shared target saw, each probe placed on its check's wall-clock slot, and the
//! guarantees the sharding scenarios assert over it.
//!
//! **The guarantee** (`src/runner/phase.rs`, `src/controller/shard`): each wall-clock slot of a
//! check (`k × interval + offset`, the offset a hash of its uid) is run by at most one replica,
//! and no run starts before its slot. The target places a probe on the last slot at or before
//! its arrival ([`canary_operator::runner::slot_of`]). Two probes of one check on one slot
//! mean the slot was run twice, or a run started before its slot after the previous slot's
//! run (it lands in that run's window): either breaks the guarantee.
//!
//! **Slack:** a run reaching the target more than an interval after its slot would be placed
//! on the next one; the largest lag is printed. Not asserted: the wall-clock distance between
//! two replicas' probes. An old owner's run late by L and the new owner's run of the next slot
//! on time are an interval less L apart, two different slots: on loaded cores L reached 300 ms
//! and more, which an earlier "3/4 of an interval apart" assertion took for a double probe.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use canary_operator::runner::slot_of;
use canary_test_harness::targets::{Recorded, Reply, TestServer, Transport};

/// One probe the target saw.
#[derive(Debug, Clone)]
pub struct Probe {
    pub check: usize,
    pub replica: String,
    /// When its head arrived.
    pub at: Instant,
    /// The same moment on the wall clock (Unix ms), where slots are.
    pub wall_ms: i64,
}

/// The loopback target every check probes (`/c<i>`), recording who probed what when. It runs
/// on its own thread and runtime: sharing the test's runtime with the in-process API server, it
/// read requests a second late on loaded cores, after their probes had timed out, and a probe
/// recorded that late lands in the next slot's window.
pub struct Target {
    base: String,
    probes: Arc<Mutex<Vec<Probe>>>,
    /// Dropped with the target: its thread then stops the server and ends.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Target {
    pub async fn start() -> Self {
        let probes = Arc::new(Mutex::new(Vec::new()));
        let log = probes.clone();
        let (started, base) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the target");
            runtime.block_on(async move {
                let server = TestServer::start(Transport::Plain, move |r| record(&log, r)).await;
                let _ = started.send(server.url(""));
                let _ = stopped.await;
            });
        });
        let base = base.await.expect("the target starts");
        Self {
            base,
            probes,
            _stop: stop,
        }
    }

    /// The URL of `path` on the target.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Probes seen since `since`.
    pub fn since(&self, since: Instant) -> Vec<Probe> {
        let probes = self.probes.lock().unwrap();
        let start = probes.partition_point(|p| p.at < since);
        probes[start..].to_vec()
    }
}

/// Records a probe of `/c<i>` by the replica named in the User-Agent, and answers it.
fn record(log: &Mutex<Vec<Probe>>, request: &Recorded) -> Reply {
    let check = request.path.strip_prefix("/c").and_then(|i| i.parse().ok());
    let agent = request.header("user-agent").unwrap_or_default();
    let replica = (agent.split_once('(')).and_then(|(_, r)| r.strip_suffix(')'));
    if let (Some(check), Some(replica)) = (check, replica) {
        // The monotonic clock first: a pause before the wall clock's read makes the arrival
        // look later, never earlier than it was.
        let since = request.at.elapsed().as_millis() as i64;
        let wall_ms = jiff::Timestamp::now().as_millisecond() - since;
        let probe = Probe {
            check,
            replica: replica.to_string(),
            at: request.at,
            wall_ms,
        };
        log.lock().unwrap().push(probe);
    }
    Reply::ok("ok")
}

/// One probe on its check's slot.
#[derive(Debug, Clone)]
pub struct Run {
    pub replica: String,
    pub at: Instant,
    pub wall_ms: i64,
    /// The slot it ran (Unix ms).
    pub slot: i64,
}

/// A check whose prober changed: the old one's last run, then the new one's first.
#[derive(Debug, Clone)]
pub struct Handover {
    pub check: usize,
    pub from: String,
    pub to: String,
    pub gap: Duration,
    /// Slots between the two runs that nobody ran.
    pub skipped: i64,
}

/// How the runs of a timeline were spaced, for the scenarios' notes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spacing {
    /// The longest from a slot to its probe's arrival, over runs that followed a run by the
    /// same replica (a run after a handover may run a missed slot at once, late by design).
    pub max_lag: Duration,
    /// Consecutive probes of a check by two replicas closer than 3/4 of an interval, each on
    /// its own slot: what the old wall-clock assertion failed on.
    pub close: usize,
    /// The closest two consecutive probes of a check by two replicas, and that check.
    pub closest: Option<(Duration, usize)>,
}

/// The runs of each check, oldest first.
pub struct Timeline {
    interval: Duration,
    offsets: Vec<Duration>,
    checks: BTreeMap<usize, Vec<Run>>,
}

impl Timeline {
    /// `probes` on the slots of checks with `offsets` (by check number) every `interval`.
    pub fn new(probes: &[Probe], offsets: &[Duration], interval: Duration) -> Self {
        let mut checks: BTreeMap<usize, Vec<Run>> = BTreeMap::new();
        for probe in probes {
            let run = Run {
                replica: probe.replica.clone(),
                at: probe.at,
                wall_ms: probe.wall_ms,
                slot: slot_of(probe.wall_ms, interval, offsets[probe.check]),
            };
            checks.entry(probe.check).or_default().push(run);
        }
        for runs in checks.values_mut() {
            runs.sort_by_key(|r| r.at);
        }
        let offsets = offsets.to_vec();
        Self {
            interval,
            offsets,
            checks,
        }
    }

    /// How many slots of `check` fall after `from` and at or before `to` (Unix ms).
    pub fn slots_between(&self, check: usize, from: i64, to: i64) -> i64 {
        let slot = |at| slot_of(at, self.interval, self.offsets[check]);
        ((slot(to) - slot(from)) / self.interval.as_millis() as i64).max(0)
    }

    /// The slots a handover may skip when the new owner could start only at `gained`, the old
    /// one having stopped at `stopped` (Unix ms): none if it could start by then; else those in
    /// between, and one more: the first of them runs at once, late by up to an interval, and
    /// may be counted on the slot after.
    pub fn may_skip(&self, check: usize, stopped: i64, gained: i64) -> i64 {
        match self.slots_between(check, stopped, gained) {
            0 => 0,
            passed => passed + 1,
        }
    }

    /// The runs of each check.
    pub fn checks(&self) -> &BTreeMap<usize, Vec<Run>> {
        &self.checks
    }

    /// Who probed each check (checks nobody probed are absent).
    pub fn owners(&self) -> BTreeMap<usize, BTreeSet<String>> {
        (self.checks.iter())
            .map(|(check, runs)| (*check, runs.iter().map(|r| r.replica.clone()).collect()))
            .collect()
    }

    /// Every change of a check's prober.
    pub fn handovers(&self) -> Vec<Handover> {
        let interval = self.interval.as_millis() as i64;
        let mut moves = Vec::new();
        for (check, runs) in &self.checks {
            for pair in runs.windows(2).filter(|p| p[0].replica != p[1].replica) {
                moves.push(Handover {
                    check: *check,
                    from: pair[0].replica.clone(),
                    to: pair[1].replica.clone(),
                    gap: pair[1].at - pair[0].at,
                    skipped: (pair[1].slot - pair[0].slot) / interval - 1,
                });
            }
        }
        moves
    }

    /// Asserts the guarantee (see the module docs): no slot of any check probed twice, by
    /// the same replica or two.
    pub fn assert_each_slot_once(&self, what: &str) -> Spacing {
        for (check, runs) in &self.checks {
            let twice = runs.windows(2).find(|pair| pair[0].slot == pair[1].slot);
            if let Some(pair) = twice {
                panic!(
                    "{what}: slot {} of c{check} run by {} and {}: {}",
                    wall(pair[0].slot),
                    pair[0].replica,
                    pair[1].replica,
                    self.describe(*check)
                );
            }
        }
        self.spacing()
    }

    fn spacing(&self) -> Spacing {
        let mut spacing = Spacing::default();
        for (check, runs) in &self.checks {
            for pair in runs.windows(2).filter(|p| p[0].replica == p[1].replica) {
                let lag = Duration::from_millis((pair[1].wall_ms - pair[1].slot) as u64);
                spacing.max_lag = spacing.max_lag.max(lag);
            }
            for pair in runs.windows(2).filter(|p| p[0].replica != p[1].replica) {
                let gap = pair[1].at - pair[0].at;
                if spacing.closest.is_none_or(|(closest, _)| gap < closest) {
                    spacing.closest = Some((gap, *check));
                }
                spacing.close += usize::from(gap < self.interval * 3 / 4);
            }
        }
        spacing
    }

    /// The runs of `check` as `replica wall-time (slot +lag)`, for failure messages.
    pub fn describe(&self, check: usize) -> String {
        let runs = self
            .checks
            .get(&check)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let text: Vec<String> = (runs.iter())
            .map(|r| {
                let lag = r.wall_ms - r.slot;
                format!("{} {} (slot +{lag}ms)", r.replica, wall(r.wall_ms))
            })
            .collect();
        text.join(", ")
    }
}

/// Unix ms as an RFC 3339 time.
pub fn wall(unix_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(unix_ms)
        .map_or_else(|_| unix_ms.to_string(), |t| t.to_string())
}

/// Checks per replica.
pub fn counts(owners: &BTreeMap<usize, BTreeSet<String>>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for replicas in owners.values() {
        for replica in replicas {
            *counts.entry(replica.clone()).or_default() += 1;
        }
    }
    counts
}
