//! The scenarios' setup: the local API server with the checks, their target, the replicas,
//! and waits on what the target sees.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use canary_test_harness::{
    cluster::{Cluster, http_check},
    env_or,
    operator::{Launch, Operator},
    targets::Proxy,
    wait::eventually,
};
use serde_json::json;

use super::{
    DURATION, INTERVAL, NS, RING,
    timeline::{Spacing, Target, Timeline, counts},
};
use crate::{CANARY, SEC};

/// The local API server with `checks` HealthChecks, their target, and the replicas.
pub struct Ring {
    pub cluster: Cluster,
    pub target: Target,
    pub checks: usize,
    /// Each check's slot offset within the interval (from its uid), by check number.
    offsets: Vec<Duration>,
    pub replicas: BTreeMap<String, Operator>,
    /// The Lease duration the replicas are started with.
    duration: Duration,
    /// Environment variables replicas started from now on get (settings beyond the ring's).
    pub env: Vec<(&'static str, &'static str)>,
    /// A proxy to the API server that can cut replicas off, and a kubeconfig through it.
    pub proxy: Proxy,
    through_proxy: std::path::PathBuf,
    /// Holds the kubeconfig through the proxy and the forwarding key.
    dir: tempfile::TempDir,
    /// Replicas started from now on forward check pages (`--ui-forward` with a shared key).
    pub forward: bool,
}

impl Ring {
    /// The API server, the checks and their target; replicas will use a [`DURATION`] Lease.
    pub async fn start() -> Self {
        let duration = DURATION;
        let checks = env_or("SHARDING_CHECKS", 300usize);
        let cluster = Cluster::alone().await;
        cluster.namespace(NS).await;
        let target = Target::start().await;
        let objects: Vec<_> = (0..checks)
            .map(|i| {
                let url = target.url(&format!("/c{i}"));
                http_check(NS, &format!("c{i}"), &url, json!({"timeout": "500ms"}))
            })
            .collect();
        cluster.kubectl.apply(&objects).await;
        let offsets = slot_offsets(&cluster, checks).await;
        let proxy = Proxy::start(cluster.server.addr()).await;
        let dir = tempfile::tempdir().unwrap();
        let through_proxy = dir.path().join("kubeconfig");
        let url = format!("http://127.0.0.1:{}", proxy.port());
        canary_test_apiserver::write_kubeconfig(&through_proxy, &url, None).unwrap();
        // The replicas' shared key: forwarded pages are relayed only when sealed with it.
        std::fs::write(dir.path().join("forward-key"), "k".repeat(48)).unwrap();
        Self {
            cluster,
            target,
            checks,
            offsets,
            replicas: BTreeMap::new(),
            duration,
            env: Vec::new(),
            proxy,
            through_proxy,
            dir,
            forward: true,
        }
    }

    pub fn launch(&self, kubeconfig: &std::path::Path, name: &str) -> Launch {
        let duration = format!("{}s", self.duration.as_secs());
        let key = self.dir.path().join("forward-key");
        let key = key.to_str().unwrap();
        let forward: &[&str] = match self.forward {
            true => &["--ui-forward", "--ui-forward-key-file", key],
            false => &[],
        };
        // CANARY_BINARY runs the scenarios against another build (an older one, for a note).
        let binary = std::env::var("CANARY_BINARY").unwrap_or_else(|_| CANARY.to_string());
        let launch = Launch::operator(&binary, kubeconfig)
            .args(&["--sharding", "shards"])
            .args(forward)
            .args(&["--leader-election-lease-duration", &duration])
            .args(&["--leader-election-lease-name", RING])
            .env("POD_NAME", name);
        (self.env.iter()).fold(launch, |launch, (key, value)| launch.env(key, value))
    }

    /// Starts replicas `(name, through the proxy)` together, talking to the API server directly
    /// or through the proxy; returns once each is ready.
    pub async fn add(&mut self, replicas: &[(&str, bool)]) {
        let started = replicas.iter().map(|(name, through_proxy)| {
            let kubeconfig = match through_proxy {
                true => self.through_proxy.clone(),
                false => self.cluster.kubeconfig().to_path_buf(),
            };
            let launch = self.launch(&kubeconfig, name);
            async move {
                let replica = launch.process().await;
                replica.wait_ready(20 * SEC).await;
                (name.to_string(), replica)
            }
        });
        let started = futures::future::join_all(started).await;
        self.replicas.extend(started);
    }

    pub fn replica(&self, name: &str) -> &Operator {
        &self.replicas[name]
    }

    /// Every replica's log lines about the ring, for failure messages.
    pub fn ring_logs(&self) -> String {
        let wanted = [
            "ring changed",
            "admitted",
            "renew",
            "released",
            "self-audit",
        ];
        let mut text = String::new();
        for (name, replica) in &self.replicas {
            for line in replica.logs() {
                if wanted.iter().any(|w| line.contains(w)) {
                    text.push_str(&format!("{name}: {line}\n"));
                }
            }
        }
        text
    }

    /// When `replica` first logged, at or after `after` (Unix ms), that it sees the ring of
    /// `members` (and may start what it gained, if `may_gain`): Unix ms.
    pub fn ring_logged(
        &self,
        replica: &str,
        members: &[&str],
        may_gain: Option<bool>,
        after: i64,
    ) -> Option<i64> {
        let members = format!("{members:?}");
        (self.replica(replica).logs().iter())
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|log| log["fields"]["message"] == "ring changed")
            .filter(|log| log["fields"]["members"] == members.as_str())
            .filter(|log| may_gain.is_none_or(|m| log["fields"]["may_gain"] == m))
            .filter_map(|log| log["timestamp"].as_str()?.parse::<jiff::Timestamp>().ok())
            .map(|at| at.as_millisecond())
            .find(|at| *at >= after)
    }

    /// The probes since `since`, on their checks' slots.
    pub fn timeline(&self, since: Instant) -> Timeline {
        Timeline::new(&self.target.since(since), &self.offsets, INTERVAL)
    }

    /// [`Timeline::assert_each_slot_once`], with the ring's logs on failure; prints the spacing.
    pub fn each_slot_once(&self, timeline: &Timeline, what: &str) -> Spacing {
        let result = std::panic::catch_unwind(|| timeline.assert_each_slot_once(what));
        let spacing = result.unwrap_or_else(|panic| {
            println!("{}", self.ring_logs());
            std::panic::resume_unwind(panic)
        });
        println!(
            "{what}: each slot run once; a steady run arrived at most {:?} after its slot; {} \
             pairs of replicas closer than 3/4 of an interval, on different slots",
            spacing.max_lag, spacing.close
        );
        if let Some((gap, check)) = spacing.closest {
            println!("closest {gap:?}, c{check}: {}", timeline.describe(check));
        }
        spacing
    }

    /// Waits until every check is probed by exactly one of `replicas`, each of them probes
    /// some, and who probes what has not changed for two seconds (other states, such as a
    /// handover in progress or a replica not yet admitted, never count); returns the owners.
    /// "Probed" means within the last two intervals: one run late by most of an interval
    /// (loaded cores) does not make a check look unprobed. Fails after 30s.
    pub async fn settled(&self, replicas: &[&str]) -> BTreeMap<usize, BTreeSet<String>> {
        let recent = || self.timeline(Instant::now() - 2 * INTERVAL).owners();
        let wanted: BTreeSet<String> = replicas.iter().map(|r| r.to_string()).collect();
        let what = format!(
            "each of {} checks probed by one of {replicas:?}, each of them probing, steady",
            self.checks
        );
        let every = Duration::from_millis(250);
        let (mut last, mut since) = (BTreeMap::new(), Instant::now());
        eventually(30 * SEC, &what, every, async || {
            let now = recent();
            if now != last {
                (last, since) = (now.clone(), Instant::now());
            }
            let unprobed = self.checks - now.len();
            let wrong: Vec<String> = (now.iter())
                .filter(|(_, by)| by.len() != 1 || !by.is_subset(&wanted))
                .map(|(check, by)| format!("c{check} by {by:?}"))
                .take(5)
                .collect();
            let probing: BTreeSet<String> = counts(&now).into_keys().collect();
            match (unprobed, wrong.is_empty(), since.elapsed()) {
                (0, true, _) if probing != wanted => Err(format!("only {probing:?} probe")),
                (0, true, held) if held >= 2 * SEC => Ok(now),
                (0, true, held) => Err(format!("steady for {held:?}")),
                (0, false, _) => Err(format!("probed by others, e.g. {wrong:?}")),
                (n, ..) => Err(format!("{n} checks not probed in the last 2 intervals")),
            }
        })
        .await
    }

    /// Waits until every check has been probed `times` times since `since`.
    pub async fn probed_times(&self, since: Instant, times: usize) {
        let what = format!("every check probed {times} times");
        eventually(30 * SEC, &what, Duration::from_millis(200), async || {
            let mut runs = vec![0usize; self.checks];
            for probe in self.target.since(since) {
                runs[probe.check] += 1;
            }
            let behind = runs.iter().filter(|r| **r < times).count();
            match behind {
                0 => Ok(()),
                n => Err(format!("{n} checks behind")),
            }
        })
        .await;
    }

    /// The `canary_shard_*` gauges of `name`: (members, owned checks).
    pub async fn shard_gauges(&self, name: &str) -> (f64, f64) {
        let replica = self.replica(name);
        (
            replica.metric_sum("canary_shard_members", &[]).await,
            replica.metric_sum("canary_shard_owned_checks", &[]).await,
        )
    }
}

/// Each check's slot offset (by check number): the hash of its uid, as the replicas compute it.
async fn slot_offsets(cluster: &Cluster, checks: usize) -> Vec<Duration> {
    let list = (cluster.kubectl)
        .get_json(&["healthchecks.canary.dev", "-n", NS])
        .await;
    let mut offsets = vec![None; checks];
    for item in list["items"].as_array().expect("a list") {
        let name = item["metadata"]["name"].as_str().expect("a name");
        let check: usize = name
            .strip_prefix('c')
            .and_then(|n| n.parse().ok())
            .expect(name);
        let uid = item["metadata"]["uid"].as_str().expect("a uid");
        offsets[check] = Some(canary_operator::runner::slot_offset(uid, INTERVAL));
    }
    (offsets.into_iter().enumerate())
        .map(|(check, offset)| offset.unwrap_or_else(|| panic!("c{check} was not listed")))
        .collect()
}
