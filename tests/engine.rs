//! The engine against real local servers: metric values and labels, `promtool check metrics`
//! on a live scrape, series removal, the watchdog under a wedged runtime and under descriptor
//! exhaustion, and standalone mode as a real process (reload, invalid edits, SIGTERM).

use std::{
    net::SocketAddr,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use canary_operator::{
    engine::{Engine, EngineConfig},
    probe::ProbeContext,
    runner::{CheckKey, CheckProber, Plan, RunReport, RunnerSpec, Schedule, Sink},
};
use canary_test_harness::{
    http, metrics,
    operator::{Launch, Operator},
    refs::{self, MapRefs, spec},
    targets::{Reply, TestServer, Transport, localhost_tls},
    tools::promtool_check_metrics,
    wait::eventually,
};
use serde_json::json;

const CANARY: &str = env!("CARGO_BIN_EXE_canary");
const SEC: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(50);

fn engine_config(stall_grace: Duration) -> EngineConfig {
    EngineConfig {
        max_concurrent_probes: Some(8),
        stall_grace,
        ..EngineConfig::test()
    }
}

fn runner(name: &str, spec_json: serde_json::Value, refs: &MapRefs) -> RunnerSpec {
    let probe = refs::build(&spec(spec_json), refs);
    let plan = Plan::Run(Arc::new(CheckProber {
        probe,
        ctx: Arc::new(ProbeContext::default()),
    }));
    let schedule = Schedule::every(SEC, Duration::from_millis(500));
    RunnerSpec {
        generation: Some(1),
        revision: 1,
        ..RunnerSpec::new(key(name), schedule, plan)
    }
}

fn key(name: &str) -> CheckKey {
    CheckKey {
        namespace: "test".into(),
        name: name.into(),
    }
}

/// The value of `name` for check `test/<check>` with `labels`, from `scrape`.
fn value(scrape: &str, name: &str, check: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut all = vec![("namespace", "test"), ("name", check)];
    all.extend_from_slice(labels);
    metrics::value(scrape, name, &all)
}

/// An engine running check `ok` (HTTPS, passing), check `down` (HTTP 500) and check
/// `untrusted` (the same HTTPS server without its CA), with a scrape taken after two runs of each.
struct Running {
    engine: Engine,
    scrape: String,
    _servers: [TestServer; 2],
}

async fn running() -> Running {
    let (ca, config) = localhost_tls("Metrics CA");
    let tls = TestServer::start(Transport::Tls(config), |_| Reply::ok("ok")).await;
    let down = TestServer::start(Transport::Plain, |_| Reply::status(500, "boom")).await;
    let refs = MapRefs::default().config_map("ca", "ca.crt", ca.pem.clone());
    let engine = Engine::start(&engine_config(Duration::from_secs(30)), Vec::new()).unwrap();
    let ok_spec = json!({"interval": "1s", "timeout": "500ms",
        "http": {"url": format!("https://localhost:{}/", tls.port())},
        "tlsPolicy": {"caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}}}});
    engine.scheduler.upsert(runner("ok", ok_spec, &refs));
    let untrusted_spec = json!({"interval": "1s", "timeout": "500ms",
        "http": {"url": format!("https://localhost:{}/", tls.port())}});
    engine
        .scheduler
        .upsert(runner("untrusted", untrusted_spec, &refs));
    let down_spec = json!({"interval": "1s", "timeout": "500ms", "http": {"url": down.url("/")}});
    engine.scheduler.upsert(runner("down", down_spec, &refs));
    let addr = engine.admin.metrics_addr;
    let scrape = eventually(10 * SEC, "two runs of each check", POLL, async || {
        let body = http::get(addr, "/metrics").await?.body;
        let runs = |check, reason, result| {
            let labels = [("reason", reason), ("result", result)];
            value(&body, "canary_check_runs_total", check, &labels).unwrap_or(0.0)
        };
        let (ok, down, untrusted) = (
            runs("ok", "Succeeded", "success"),
            runs("down", "UnexpectedStatus", "failure"),
            runs("untrusted", "CertificateUntrusted", "failure"),
        );
        if ok >= 2.0 && down >= 2.0 && untrusted >= 2.0 {
            Ok(body)
        } else {
            Err(format!("{ok}, {down} and {untrusted} runs"))
        }
    })
    .await;
    Running {
        engine,
        scrape,
        _servers: [tls, down],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_hold_the_values_of_the_last_runs() {
    let Running { scrape, .. } = running().await;
    let check_value = |name, check, labels: &[(&str, &str)]| value(&scrape, name, check, labels);
    assert_eq!(check_value("canary_check_success", "ok", &[]), Some(1.0));
    assert_eq!(check_value("canary_check_success", "down", &[]), Some(0.0));
    assert_eq!(
        check_value("canary_check_http_status_code", "down", &[]),
        Some(500.0)
    );
    let tls13 = [("version", "TLSv1.3")];
    assert_eq!(
        check_value("canary_tls_version_info", "ok", &tls13),
        Some(1.0)
    );
    let not_after = check_value("canary_tls_cert_not_after_timestamp_seconds", "ok", &[]).unwrap();
    let days = (not_after - jiff::Timestamp::now().as_second() as f64) / 86_400.0;
    assert!((89.0..=90.0).contains(&days), "leaf expires in {days} days");
    // A handshake that failed verification sets no TLS metric: its certificate was not trusted.
    for name in [
        "canary_tls_cert_not_after_timestamp_seconds",
        "canary_tls_chain_earliest_not_after_timestamp_seconds",
    ] {
        assert_eq!(check_value(name, "untrusted", &[]), None, "{name}");
    }
    assert_eq!(
        check_value("canary_tls_version_info", "untrusted", &tls13),
        None
    );
    let tls_phase = [("phase", "tls")];
    assert!(check_value("canary_check_phase_duration_seconds", "ok", &tls_phase).is_some());
    assert!(check_value("canary_check_duration_seconds_count", "ok", &[]).unwrap() >= 2.0);
    assert!(metrics::value(&scrape, "process_open_fds", &[]).unwrap() > 0.0);
    assert!(metrics::value(&scrape, "process_max_fds", &[]).unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_scrape_passes_promtool_check_metrics() {
    let Running { scrape, .. } = running().await;
    if let Err(complaints) = promtool_check_metrics(&scrape).await {
        panic!("promtool: {complaints}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_of_a_removed_check_vanish_and_others_stay() {
    let Running { engine, .. } = running().await;
    engine.scheduler.remove(&key("down"));
    let after = (http::get(engine.admin.metrics_addr, "/metrics").await)
        .unwrap()
        .body;
    assert!(
        !after.contains(r#"name="down""#),
        "series of a removed check remain"
    );
    assert!(after.contains(r#"name="ok""#));
}

/// Blocks the worker thread that runs it while `wedge` is set.
struct WedgingSink {
    wedge: Arc<AtomicBool>,
}

impl Sink for WedgingSink {
    fn on_run(&self, _: &RunReport<'_>) {
        while self.wedge.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn on_remove(&self, _: &CheckKey) {}
}

/// Waits on a runtime of its own until `/healthz` at `health` answers `code` with a body
/// containing `text`; returns the body.
fn wait_healthz(health: SocketAddr, deadline: Duration, code: u16, text: &str) -> String {
    let observer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let what = format!("/healthz {code} with {text:?}");
    observer.block_on(eventually(deadline, &what, POLL, async || {
        let answer = http::get(health, "/healthz").await?;
        match answer.status == code && answer.body.contains(text) {
            true => Ok(answer.body),
            false => Err(format!("{} {}", answer.status, answer.body)),
        }
    }))
}

#[test]
fn wedged_runtime_turns_healthz_503_naming_the_check_and_recovers() {
    let runtime = (tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all())
    .build()
    .unwrap();
    let server = runtime.block_on(TestServer::start(Transport::Plain, |_| Reply::ok("ok")));
    let wedge = Arc::new(AtomicBool::new(false));
    let config = engine_config(SEC);
    let sink = Arc::new(WedgingSink {
        wedge: wedge.clone(),
    });
    let engine = runtime.block_on(async { Engine::start(&config, vec![sink]).unwrap() });
    let spec = json!({"interval": "1s", "timeout": "500ms", "http": {"url": server.url("/")}});
    runtime.block_on(async {
        engine
            .scheduler
            .upsert(runner("wedged", spec, &MapRefs::default()))
    });
    let health = engine.admin.health_addr;
    wait_healthz(health, 5 * SEC, 200, "");

    wedge.store(true, Ordering::SeqCst);
    let wedged_at = Instant::now();
    let body = wait_healthz(health, 6 * SEC, 503, "test/wedged");
    // Stall threshold: interval 1s + timeout 500ms + grace 1s, plus up to one interval of jitter.
    let took = wedged_at.elapsed();
    assert!(took < 5 * SEC, "503 took {took:?}");
    assert!(body.contains("scheduler loop has not ticked"), "{body}");

    wedge.store(false, Ordering::SeqCst);
    wait_healthz(health, 5 * SEC, 200, "");
    drop(runtime);
}

/// `canary standalone` reading `dir`, its JSON logs naming its admin addresses.
async fn standalone(dir: &std::path::Path, extra: &[&str]) -> Operator {
    let reload = ["--reload-interval", "200ms"];
    (Launch::standalone(CANARY, dir)
        .args(&reload)
        .args(extra)
        .process())
    .await
}

/// Successful runs of `default/<name>` so far (0 when /metrics does not answer).
async fn succeeded(canary: &Operator, name: &str) -> f64 {
    let labels = [
        ("namespace", "default"),
        ("name", name),
        ("reason", "Succeeded"),
    ];
    canary
        .try_metric("canary_check_runs_total", &labels)
        .await
        .unwrap_or(0.0)
}

/// Waits (10s at most) until `default/<name>` has `at_least` successful runs.
async fn wait_succeeded(canary: &Operator, name: &str, at_least: f64) {
    let what = format!("{at_least} successful runs of {name}");
    eventually(10 * SEC, &what, POLL, async || {
        match succeeded(canary, name).await {
            runs if runs >= at_least => Ok(()),
            runs => Err(format!("{runs}")),
        }
    })
    .await;
}

fn check_yaml(name: &str, port: u16) -> String {
    format!(
        "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {{name: {name}}}\nspec:\n  interval: 1s\n  timeout: 500ms\n  http: {{url: 'http://127.0.0.1:{port}/'}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_reloads_valid_edits_keeps_running_on_invalid_ones_and_exits_on_sigterm() {
    let server = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let port = server.port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("checks.yaml");
    std::fs::write(&file, check_yaml("first", port)).unwrap();
    let canary = standalone(dir.path(), &[]).await;
    canary.wait_ready(10 * SEC).await;
    wait_succeeded(&canary, "first", 1.0).await;

    let both = format!(
        "{}---\n{}",
        check_yaml("first", port),
        check_yaml("second", port)
    );
    std::fs::write(&file, both).unwrap();
    wait_succeeded(&canary, "second", 1.0).await;

    let broken = "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {name: first\n";
    std::fs::write(&file, broken).unwrap();
    eventually(10 * SEC, "the invalid edit reported", POLL, async || {
        canary
            .logged("invalid edit ignored")
            .then_some(())
            .ok_or(canary.tail(5))
    })
    .await;
    let before = succeeded(&canary, "second").await;
    wait_succeeded(&canary, "second", before + 2.0).await;

    let (exit, took) = canary.terminate().await;
    assert!(exit.success(), "{exit:?}");
    assert!(took < 2 * SEC, "shutdown took {took:?}");
}

/// Lowers the soft descriptor limit of process `pid` to `soft`.
fn limit_descriptors(pid: &str, soft: usize) {
    let status = Command::new("prlimit")
        .args(["--pid", pid, &format!("--nofile={soft}:")])
        .status();
    assert!(
        status
            .expect("prlimit missing: run scripts/test (util-linux)")
            .success()
    );
}

/// The lowest descriptor number process `pid` does not use.
fn lowest_free_descriptor(pid: &str) -> usize {
    let open: std::collections::BTreeSet<usize> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    (0..).find(|n| !open.contains(n)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptor_exhaustion_turns_healthz_503_and_recovers() {
    let server = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let dir = tempfile::tempdir().unwrap();
    let text: Vec<String> = (0..3)
        .map(|i| check_yaml(&format!("c{i}"), server.port()))
        .collect();
    std::fs::write(dir.path().join("checks.yaml"), text.join("---\n")).unwrap();
    let canary = standalone(dir.path(), &["--stall-grace", "2s"]).await;
    let healthy = async || match canary.health_code("/healthz").await {
        Some(200) => Ok(()),
        other => Err(format!("{other:?}")),
    };
    eventually(10 * SEC, "healthy", POLL, healthy).await;
    wait_succeeded(&canary, "c2", 1.0).await;
    let pid = canary.pid().to_string();
    // The kernel hands out the lowest free descriptor number and refuses numbers at or
    // above the soft limit, so a limit at the lowest free number exhausts the process.
    // Descriptors in flight (a probe, the last scrape) close later and leave holes, so the
    // limit is lowered again until no hole is left below it.
    for _ in 0..10 {
        limit_descriptors(&pid, lowest_free_descriptor(&pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Poll gently: every answer from the reserve frees a descriptor a probe might take.
    let gently = Duration::from_millis(500);
    let body = eventually(20 * SEC, "503 for ProberError", gently, async || {
        let answer = http::get(canary.health, "/healthz").await?;
        (answer.status == 503)
            .then_some(answer.body)
            .ok_or(format!("{}", answer.status))
    })
    .await;
    assert!(
        body.contains("ProberError") || body.contains("has not completed a run"),
        "{body}"
    );
    limit_descriptors(&pid, 4096);
    eventually(15 * SEC, "recovery", POLL, healthy).await;
}

/// A log pipeline that stops draining (a full stderr pipe) costs log lines, counted, and not
/// probing, `/healthz` or the exit on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stderr_nobody_reads_costs_log_lines_not_probing_health_or_shutdown() {
    // Every other answer fails: each run is a transition, logged.
    let answers = Arc::new(AtomicU64::new(0));
    let server = TestServer::start(Transport::Plain, move |_| {
        match answers.fetch_add(1, Ordering::SeqCst) % 2 {
            0 => Reply::ok("ok"),
            _ => Reply::status(500, "flapping"),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let checks: Vec<String> = (0..50)
        .map(|i| check_yaml(&format!("c{i}"), server.port()))
        .collect();
    std::fs::write(dir.path().join("checks.yaml"), checks.join("---\n")).unwrap();
    let canary = (Launch::standalone(CANARY, dir.path()))
        .args(&["--log-level", "trace", "--log-queue-lines", "64"])
        .stall_output()
        .process()
        .await;
    let dropped = "canary_log_lines_dropped_total";
    eventually(60 * SEC, "log lines dropped", POLL, async || {
        match canary.try_metric(dropped, &[]).await {
            Ok(lines) if lines > 0.0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let runs = async || canary.metric_sum("canary_check_runs_total", &[]).await;
    let before = runs().await;
    eventually(10 * SEC, "100 more runs", POLL, async || {
        match runs().await {
            now if now >= before + 100.0 => Ok(()),
            now => Err(format!("{} more", now - before)),
        }
    })
    .await;
    assert_eq!(canary.health_code("/healthz").await, Some(200));
    let (exit, took) = canary.terminate().await;
    assert!(exit.success(), "{exit:?}");
    // The exit flushes the log queue, waiting about a second for the stuck pipe.
    assert!(took < 5 * SEC, "shutdown took {took:?}");
}
