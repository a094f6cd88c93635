//! `canary operator` end to end: the real binary as a child process against the local API
//! server (`tests/apiserver`), driven and observed with the real kubectl, scraped by a real
//! Prometheus, probing real loopback HTTP/TLS servers, with the API server's audit log as the
//! witness of what the operator asked for.
//!
//! One scenario per test, each with its own API server and operator(s), grouped by topic.
//! Tests run in parallel; the harness bounds how many at once ([`canary_test_harness::slots`]),
//! and those that measure CPU or rates run alone. Tools come from `scripts/test`; a missing one
//! fails the test.

mod audit;
mod crd_skew;
mod cronjob;
mod deny;
mod describe;
mod discovery;
mod edits;
mod events;
mod feedback;
mod heartbeat;
mod history;
mod leader;
mod load;
mod locations;
mod namespaces;
mod oauth2;
mod outage;
mod partition;
mod prometheus;
mod quorum;
mod references;
mod restart;
mod run_now;
mod sharding;
mod spokes;
mod status_page;
mod supervision;
mod tls;
mod trust;
mod validation;

use std::time::{Duration, Instant};

use canary_test_harness::{
    cluster::{Cluster, http_check},
    operator::{Launch, Operator},
    tools::Kubectl,
    watch::Watch,
};
use serde_json::{Value, json};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");
const SEC: Duration = Duration::from_secs(1);

/// `canary operator` against `cluster`, as a process (as the chart's ServiceAccount after
/// [`Cluster::as_chart_service_account`], else as the admin).
fn operator(cluster: &Cluster) -> Launch {
    Launch::operator(CANARY, cluster.operator_kubeconfig())
}

/// A cluster with namespace `ns`, an operator started with `args`, `objects` applied, and a
/// watch of the HealthChecks in `ns`.
struct Scenario {
    cluster: Cluster,
    operator: Operator,
    watch: Watch,
    ns: &'static str,
}

impl Scenario {
    /// Shares the machine with other scenarios.
    async fn start(ns: &'static str, args: &[&str], objects: &[Value]) -> Self {
        Self::on(Cluster::start().await, ns, args, objects).await
    }

    /// Runs alone (it measures CPU or rates).
    async fn alone(ns: &'static str, args: &[&str], objects: &[Value]) -> Self {
        Self::on(Cluster::alone().await, ns, args, objects).await
    }

    /// On a cluster set up beforehand (namespace `ns` already created).
    async fn on_cluster(
        cluster: Cluster,
        ns: &'static str,
        args: &[&str],
        objects: &[Value],
    ) -> Self {
        let operator = operator(&cluster).args(args).process().await;
        if !objects.is_empty() {
            cluster.kubectl.apply(objects).await;
        }
        let watch = Watch::start(cluster.kubectl.clone(), Some(ns));
        Self {
            cluster,
            operator,
            watch,
            ns,
        }
    }

    async fn on(cluster: Cluster, ns: &'static str, args: &[&str], objects: &[Value]) -> Self {
        cluster.namespace(ns).await;
        Self::on_cluster(cluster, ns, args, objects).await
    }
}

/// `https://localhost:PORT/` trusting the CA in ConfigMap `test-ca`.
fn https_check(namespace: &str, name: &str, port: u16) -> Value {
    let ca = json!({"configMapKeyRef": {"name": "test-ca", "key": "ca.crt"}});
    let url = format!("https://localhost:{port}/");
    http_check(
        namespace,
        name,
        &url,
        json!({"tlsPolicy": {"caBundle": ca}}),
    )
}

/// An RFC 3339 timestamp of a status field.
fn ts(value: &Value) -> jiff::Timestamp {
    (value.as_str())
        .unwrap_or_else(|| panic!("not a timestamp: {value}"))
        .parse()
        .unwrap_or_else(|e| panic!("bad timestamp {value}: {e}"))
}

/// Asserts a status timestamp is within a second of a certificate date.
fn assert_close(what: &str, got: &Value, want: time::OffsetDateTime) {
    let got = ts(got).as_second();
    let want = want.unix_timestamp();
    assert!((got - want).abs() <= 1, "{what}: {got} vs {want}");
}

/// "0.012s": seconds with millisecond precision, as the contract prints durations.
fn is_duration_text(s: &str) -> bool {
    let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
    (s.strip_suffix('s').and_then(|n| n.split_once('.')))
        .is_some_and(|(a, b)| !a.is_empty() && digits(a) && b.len() == 3 && digits(b))
}

/// The most of `times` (sorted) that fall within any `window`.
fn max_in_window(times: &[Instant], window: Duration) -> usize {
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] > window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// Gaps between consecutive `times`, in seconds.
fn gaps(times: &[Instant]) -> Vec<f64> {
    times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect()
}

/// The mean of `values`.
fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// kubectl ages: 0s, 5s, 2m3s, 4h ...
fn is_age(s: &str) -> bool {
    let starts_with_digit = s.chars().next().is_some_and(|c| c.is_ascii_digit());
    starts_with_digit && s.ends_with(['s', 'm', 'h', 'd'])
}

/// `kubectl get chc -n NS` (`wide`: `-o wide`) as a header and rows of cells, cut at the
/// header's column starts (empty cells print as blanks).
async fn table(kubectl: &Kubectl, ns: &str, wide: bool) -> (Vec<String>, Vec<Vec<String>>) {
    let mut args = vec!["get", "chc", "-n", ns];
    if wide {
        args.extend(["-o", "wide"]);
    }
    let text = kubectl.ok(&args).await;
    let mut lines = text.lines();
    let header_line = lines.next().unwrap_or_default();
    let starts: Vec<usize> = (header_line.char_indices())
        .filter(|(i, c)| !c.is_whitespace() && (*i == 0 || header_line.as_bytes()[i - 1] == b' '))
        .map(|(i, _)| i)
        .collect();
    let header = header_line.split_whitespace().map(str::to_string).collect();
    let cell = |line: &str, c: usize| {
        let to = starts
            .get(c + 1)
            .copied()
            .unwrap_or(line.len())
            .min(line.len());
        line[starts[c].min(line.len())..to].trim().to_string()
    };
    let rows = lines
        .map(|line| (0..starts.len()).map(|c| cell(line, c)).collect())
        .collect();
    (header, rows)
}
