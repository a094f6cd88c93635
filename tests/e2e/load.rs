//! Load and cost, each scenario alone on the machine: 500 checks at 1s keep status writes under
//! the rate limit, and a few checks cost little CPU.

use std::time::Instant;

use canary_test_apiserver::AuditRecord;
use canary_test_harness::{
    cluster::http_check,
    targets::{Reply, TestServer, Transport},
    tools::documents,
    wait::eventually,
};
use serde_json::{Value, json};

use crate::{SEC, Scenario, max_in_window};

/// Whether writes at `times` fit a token bucket of `qps` and `burst` (plus `slack` tokens for
/// network jitter between the client's limiter and the server's clock). Returns the first
/// violation.
fn token_bucket_violation(times: &[Instant], qps: f64, burst: f64, slack: f64) -> Option<String> {
    let capacity = burst + slack;
    let mut tokens = capacity;
    let mut last = *times.first()?;
    for (i, t) in times.iter().enumerate() {
        tokens = (tokens + (*t - last).as_secs_f64() * qps).min(capacity);
        last = *t;
        if tokens < 1.0 - 1e-9 {
            return Some(format!(
                "write #{i} at +{:?} exceeds the bucket",
                *t - times[0]
            ));
        }
        tokens -= 1.0;
    }
    None
}

const CHECKS: usize = 500;
const QPS: f64 = 25.0;
const BURST: f64 = 50.0;
/// The separate budget of first writes (a check just applied: someone waits for its verdict).
const FIRST_QPS: f64 = 50.0;
const FIRST_BURST: f64 = 50.0;
/// Tokens allowed for jitter between the operator's limiter and the API server's clock: a
/// fifth of a second of writes, as the machine is shared with other tests.
const JITTER: f64 = 2.0 + 0.2 * QPS;

/// Status writes of HealthChecks as they arrived, split into every write and the writes after
/// the first of each object (which only the steady-state budget may pay for).
fn status_writes(requests: &[AuditRecord]) -> (Vec<Instant>, Vec<Instant>) {
    let mut seen = std::collections::HashSet::new();
    let (mut all, mut later) = (Vec::new(), Vec::new());
    let writes = (requests.iter())
        .filter(|r| r.resource == "healthchecks" && r.subresource == "status")
        .filter(|r| matches!(r.verb.as_str(), "patch" | "update"));
    for r in writes {
        all.push(r.received);
        if !seen.insert((&r.namespace, &r.name)) {
            later.push(r.received);
        }
    }
    (all, later)
}

/// Writes of anything but status (spec, metadata) of a HealthCheck.
fn spec_writes(requests: &[AuditRecord]) -> Vec<&AuditRecord> {
    (requests.iter())
        .filter(|r| r.resource == "healthchecks" && r.subresource.is_empty())
        .filter(|r| !matches!(r.verb.as_str(), "get" | "list" | "watch"))
        .collect()
}

/// Runs of the checks of the scenario's namespace over `span` (which can only be measured over
/// time).
async fn runs_over(s: &Scenario, span: std::time::Duration) -> f64 {
    let all = [("namespace", s.ns)];
    let runs0 = s.operator.metric_sum("canary_check_runs_total", &all).await;
    tokio::time::sleep(span).await;
    s.operator.metric_sum("canary_check_runs_total", &all).await - runs0
}

/// Applies `checks` server-side and waits until every one is Ready=True: how long that took.
async fn apply_until_all_ready(
    s: &Scenario,
    checks: &[Value],
) -> (std::time::Duration, std::time::Duration) {
    let applied = Instant::now();
    let apply = ["apply", "--server-side", "-f", "-"];
    s.cluster.kubectl.ok_stdin(&apply, &documents(checks)).await;
    let apply_took = applied.elapsed();
    let ready_column =
        r#"jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#;
    let all_ready = eventually(120 * SEC, "all 500 Ready=True", SEC, async || {
        let out = s
            .cluster
            .kubectl
            .ok(&["get", "chc", "-n", s.ns, "-o", ready_column])
            .await;
        let ready = out.lines().filter(|l| *l == "True").count();
        if ready == CHECKS {
            Ok(applied.elapsed())
        } else {
            Err(format!("{ready}/{CHECKS} Ready"))
        }
    })
    .await;
    (apply_took, all_ready)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_writes_stay_under_the_rate_limit_with_500_checks_at_1s() {
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let s = Scenario::alone(
        "load",
        &[
            "--status-write-qps",
            "25",
            "--status-write-burst",
            "50",
            "--status-first-write-qps",
            "50",
            "--status-first-write-burst",
            "50",
        ],
        &[],
    )
    .await;
    s.operator.wait_ready(10 * SEC).await;
    let url = |i: usize| target.url(&format!("/c{i}"));
    let checks: Vec<Value> = (0..CHECKS)
        .map(|i| http_check(s.ns, &format!("c{i:03}"), &url(i), json!({})))
        .collect();
    let (apply_took, all_ready) = apply_until_all_ready(&s, &checks).await;
    // Keep going a little to see the steady state.
    let steady_from = Instant::now();
    let runs_in_5s = runs_over(&s, 5 * SEC).await;
    let requests = s.cluster.operator_requests();
    let (writes, later_writes) = status_writes(&requests);
    let steady = writes.iter().filter(|t| **t >= steady_from).count() as f64 / 5.0;
    let busiest = max_in_window(&writes, SEC);
    let span = (*writes.last().unwrap() - writes[0]).as_secs_f64();
    println!(
        "500 checks: apply {apply_took:?}, all Ready after {all_ready:?}; {} status writes over {span:.1}s \
         (mean {:.1}/s, busiest 1s window {busiest}, steady state {steady:.1}/s); runs {:.0}/s",
        writes.len(),
        writes.len() as f64 / span.max(1e-9),
        runs_in_5s / 5.0
    );
    assert!(
        writes.len() >= CHECKS,
        "every check got its status written: {}",
        writes.len()
    );
    // Coalesced (latest wins) and skipped when nothing but timestamps changed: about one write
    // per check although each ran many times while waiting for its turn.
    let coalesced = writes.len() <= CHECKS + CHECKS / 5;
    assert!(
        coalesced,
        "status writes are coalesced: {} writes for {CHECKS} checks",
        writes.len()
    );
    // Writes after an object's first go through the steady-state budget only; first writes
    // may add their own budget on top, never more.
    let violation = token_bucket_violation(&later_writes, QPS, BURST, JITTER);
    assert_eq!(
        violation, None,
        "steady-state status writes exceed {QPS}/s with burst {BURST}"
    );
    let (qps, burst) = (QPS + FIRST_QPS, BURST + FIRST_BURST);
    let violation = token_bucket_violation(&writes, qps, burst, JITTER);
    assert_eq!(
        violation, None,
        "status writes exceed both budgets, {qps}/s with burst {burst}"
    );
    assert!(
        busiest as f64 <= qps + burst + JITTER,
        "busiest second: {busiest} writes"
    );
    let spec_writes = spec_writes(&requests);
    assert!(
        spec_writes.is_empty(),
        "the operator never writes spec/metadata: {spec_writes:?}"
    );
    assert!(
        runs_in_5s >= 0.5 * CHECKS as f64 * 5.0,
        "probing is not held back by status writes: {runs_in_5s:.0} runs in 5s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_with_a_few_checks_uses_little_cpu() {
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let names: Vec<String> = (0..5).map(|i| format!("q{i}")).collect();
    let ns = "quiet";
    let checks: Vec<Value> = names
        .iter()
        .map(|n| http_check(ns, n, &target.url(&format!("/{n}")), json!({})))
        .collect();
    let s = Scenario::alone(ns, &[], &checks).await;
    for name in &names {
        s.watch.ready_as(name, "True", "Succeeded").await;
    }
    let cpu0 = s.operator.cpu();
    let from = Instant::now();
    // CPU use can only be measured over a span of time: three intervals of the checks.
    tokio::time::sleep(3 * SEC).await;
    let share = (s.operator.cpu() - cpu0).as_secs_f64() / from.elapsed().as_secs_f64();
    println!(
        "5 checks at 1s: {:.1}% of a core, RSS {:.1} MiB",
        share * 100.0,
        s.operator.rss_mib()
    );
    assert!(
        share < 0.3,
        "the operator used {:.0}% of a core for 5 checks at a 1s interval (a busy loop? e.g. a \
         select! branch that is always ready); CPU ticks per thread: {:?}",
        share * 100.0,
        s.operator.thread_ticks()
    );
}
