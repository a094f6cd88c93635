//! The engine against real local servers: metric values and labels, `promtool check metrics`
//! on a live scrape, series removal, the watchdog under a wedged runtime and under descriptor
//! exhaustion, and standalone mode as a real process (reload, invalid edits, SIGTERM).

mod support;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use canary_operator::{
    cli::{AdminArgs, EngineArgs},
    engine::Engine,
    probe::ProbeContext,
    runner::{CheckKey, CheckProber, Plan, RunReport, RunnerSpec, Schedule, Sink},
};
use serde_json::json;
use support::{
    MapRefs,
    server::{Reply, TestServer, Transport},
    spec,
};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");

/// GET over a plain socket; `None` when nothing answers in time.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: canary\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Polls `f` until it returns `Some`, failing after `deadline`.
fn wait_for<T>(deadline: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn engine_args(stall_grace: Duration) -> (EngineArgs, AdminArgs) {
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    (
        EngineArgs {
            max_concurrent_probes: Some(8),
            stall_grace,
            prober_error_streak: 5,
        },
        AdminArgs {
            metrics_bind_address: local,
            health_probe_bind_address: local,
        },
    )
}

fn runner(name: &str, spec_json: serde_json::Value, refs: &MapRefs) -> RunnerSpec {
    let spec = spec(spec_json);
    let probe = support::build(&spec, refs);
    RunnerSpec {
        key: CheckKey {
            namespace: "test".into(),
            name: name.into(),
        },
        uid: None,
        generation: Some(1),
        revision: 1,
        schedule: Schedule::every(Duration::from_secs(1), Duration::from_millis(500)),
        plan: Plan::Run(Arc::new(CheckProber {
            probe,
            ctx: Arc::new(ProbeContext::default()),
        })),
        status: Default::default(),
    }
}

fn metric(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_hold_the_right_values_pass_promtool_and_vanish_on_removal() {
    let (ca, config) = support::localhost_tls("Metrics CA");
    let tls = TestServer::start(Transport::Tls(config), |_| Reply::ok("ok")).await;
    let down = TestServer::start(Transport::Plain, |_| Reply::status(500, "boom")).await;
    let refs = MapRefs::default().config_map("ca", "ca.crt", ca.pem.clone());
    let (engine_args, admin_args) = engine_args(Duration::from_secs(30));
    let engine = Engine::start(&engine_args, &admin_args, Vec::new()).unwrap();
    let ok_spec = json!({"interval": "1s", "timeout": "500ms",
        "http": {"url": format!("https://localhost:{}/", tls.port())},
        "tlsPolicy": {"caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}}}});
    engine.scheduler.upsert(runner("ok", ok_spec, &refs));
    let down_spec = json!({"interval": "1s", "timeout": "500ms", "http": {"url": format!("http://127.0.0.1:{}/", down.port())}});
    engine.scheduler.upsert(runner("down", down_spec, &refs));
    let addr = engine.admin.metrics_addr;
    let scrape = tokio::task::spawn_blocking(move || {
        wait_for(Duration::from_secs(10), "two runs of each check", || {
            let (_, body) = http_get(addr, "/metrics")?;
            let ok_runs = metric(&body, r#"canary_check_runs_total{name="ok",namespace="test",reason="Succeeded",result="success"}"#)?;
            let down_runs = metric(&body, r#"canary_check_runs_total{name="down",namespace="test",reason="UnexpectedStatus",result="failure"}"#)?;
            (ok_runs >= 2.0 && down_runs >= 2.0).then_some(body)
        })
    })
    .await
    .unwrap();
    assert_eq!(
        metric(
            &scrape,
            r#"canary_check_success{name="ok",namespace="test"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &scrape,
            r#"canary_check_success{name="down",namespace="test"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &scrape,
            r#"canary_check_http_status_code{name="down",namespace="test"}"#
        ),
        Some(500.0)
    );
    assert_eq!(
        metric(
            &scrape,
            r#"canary_tls_version_info{name="ok",namespace="test",version="TLSv1.3"}"#
        ),
        Some(1.0)
    );
    let not_after = metric(
        &scrape,
        r#"canary_tls_cert_not_after_timestamp_seconds{name="ok",namespace="test"}"#,
    )
    .unwrap();
    let days = (not_after - jiff::Timestamp::now().as_second() as f64) / 86_400.0;
    assert!((89.0..=90.0).contains(&days), "leaf expires in {days} days");
    assert!(
        metric(
            &scrape,
            r#"canary_check_phase_duration_seconds{name="ok",namespace="test",phase="tls"}"#
        )
        .is_some()
    );
    assert!(
        metric(
            &scrape,
            r#"canary_check_duration_seconds_count{name="ok",namespace="test"}"#
        )
        .unwrap()
            >= 2.0
    );
    assert!(metric(&scrape, "process_open_fds").unwrap() > 0.0);
    assert!(metric(&scrape, "process_max_fds").unwrap() > 0.0);

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool missing: run scripts/test (installs the Debian package prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "promtool: {complaints}"
    );

    engine.scheduler.remove(&CheckKey {
        namespace: "test".into(),
        name: "down".into(),
    });
    let (_, after) = tokio::task::spawn_blocking(move || http_get(addr, "/metrics").unwrap())
        .await
        .unwrap();
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

#[test]
fn wedged_runtime_turns_healthz_503_naming_the_check_and_recovers() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(TestServer::start(Transport::Plain, |_| Reply::ok("ok")));
    let wedge = Arc::new(AtomicBool::new(false));
    let (engine_args, admin_args) = engine_args(Duration::from_secs(1));
    let sink = Arc::new(WedgingSink {
        wedge: wedge.clone(),
    });
    let engine =
        runtime.block_on(async { Engine::start(&engine_args, &admin_args, vec![sink]).unwrap() });
    let spec = json!({"interval": "1s", "timeout": "500ms", "http": {"url": format!("http://127.0.0.1:{}/", server.port())}});
    runtime.block_on(async {
        engine
            .scheduler
            .upsert(runner("wedged", spec, &MapRefs::default()))
    });
    let health = engine.admin.health_addr;
    wait_for(Duration::from_secs(5), "healthy", || {
        http_get(health, "/healthz").filter(|(s, _)| *s == 200)
    });

    wedge.store(true, Ordering::SeqCst);
    let wedged_at = Instant::now();
    let (_, body) = wait_for(Duration::from_secs(6), "503 naming the check", || {
        http_get(health, "/healthz").filter(|(s, b)| *s == 503 && b.contains("test/wedged"))
    });
    // Stall threshold: interval 1s + timeout 500ms + grace 1s, plus up to one interval of jitter.
    assert!(
        wedged_at.elapsed() < Duration::from_secs(5),
        "503 took {:?}",
        wedged_at.elapsed()
    );
    assert!(body.contains("scheduler loop has not ticked"), "{body}");

    wedge.store(false, Ordering::SeqCst);
    wait_for(Duration::from_secs(5), "recovery", || {
        http_get(health, "/healthz").filter(|(s, _)| *s == 200)
    });
    drop(runtime);
}

/// A `canary standalone` child process with its admin addresses read from its JSON logs.
struct Standalone {
    child: Child,
    metrics: SocketAddr,
    health: SocketAddr,
    logs: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Standalone {
    fn start(path: &std::path::Path, extra: &[&str]) -> Self {
        let mut child = Command::new(CANARY)
            .args([
                "standalone",
                "-f",
                path.to_str().unwrap(),
                "--reload-interval",
                "200ms",
                "--log-format",
                "json",
            ])
            .args(extra)
            .args([
                "--metrics-bind-address",
                "127.0.0.1:0",
                "--health-probe-bind-address",
                "127.0.0.1:0",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(log) = serde_json::from_str::<serde_json::Value>(&line)
                    && let (Some(m), Some(h)) = (
                        log["fields"]["metrics"].as_str(),
                        log["fields"]["health"].as_str(),
                    )
                {
                    let _ = tx.send((m.parse().unwrap(), h.parse().unwrap()));
                }
                sink.lock().unwrap().push(line);
            }
        });
        let (metrics, health) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("standalone did not log its addresses");
        Self {
            child,
            metrics,
            health,
            logs,
        }
    }

    fn logged(&self, text: &str) -> bool {
        self.logs.lock().unwrap().iter().any(|l| l.contains(text))
    }

    fn runs(&self, name: &str) -> f64 {
        let series = format!(
            r#"canary_check_runs_total{{name="{name}",namespace="default",reason="Succeeded",result="success"}}"#
        );
        http_get(self.metrics, "/metrics")
            .and_then(|(_, body)| metric(&body, &series))
            .unwrap_or(0.0)
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("checks.yaml");
        std::fs::write(&file, check_yaml("first", port)).unwrap();
        let mut canary = Standalone::start(dir.path(), &[]);
        wait_for(Duration::from_secs(10), "ready", || {
            http_get(canary.health, "/readyz").filter(|(s, _)| *s == 200)
        });
        wait_for(Duration::from_secs(10), "first runs", || {
            (canary.runs("first") >= 1.0).then_some(())
        });

        std::fs::write(
            &file,
            format!(
                "{}---\n{}",
                check_yaml("first", port),
                check_yaml("second", port)
            ),
        )
        .unwrap();
        wait_for(Duration::from_secs(10), "the added check", || {
            (canary.runs("second") >= 1.0).then_some(())
        });

        std::fs::write(
            &file,
            "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {name: first\n",
        )
        .unwrap();
        wait_for(Duration::from_secs(10), "the invalid edit reported", || {
            canary.logged("invalid edit ignored").then_some(())
        });
        let before = canary.runs("second");
        wait_for(
            Duration::from_secs(10),
            "last good specs still running",
            || (canary.runs("second") >= before + 2.0).then_some(()),
        );

        let status = Command::new("kill")
            .args(["-TERM", &canary.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let stopped = Instant::now();
        let exit = wait_for(Duration::from_secs(3), "exit after SIGTERM", || {
            canary.child.try_wait().unwrap()
        });
        assert!(exit.success(), "{exit:?}");
        assert!(
            stopped.elapsed() < Duration::from_secs(2),
            "shutdown took {:?}",
            stopped.elapsed()
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptor_exhaustion_turns_healthz_503_and_recovers() {
    let server = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let port = server.port();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let text: Vec<String> = (0..3).map(|i| check_yaml(&format!("c{i}"), port)).collect();
        std::fs::write(dir.path().join("checks.yaml"), text.join("---\n")).unwrap();
        let canary = Standalone::start(dir.path(), &["--stall-grace", "2s"]);
        wait_for(Duration::from_secs(10), "healthy", || {
            http_get(canary.health, "/healthz").filter(|(s, _)| *s == 200)
        });
        wait_for(Duration::from_secs(10), "first runs", || {
            (canary.runs("c2") >= 1.0).then_some(())
        });
        let pid = canary.child.id().to_string();
        // The kernel hands out the lowest free descriptor number and refuses numbers at or
        // above the soft limit, so a limit at the lowest free number exhausts the process.
        // Descriptors in flight (a probe, the last scrape) close later and leave holes, so the
        // limit is lowered again until no hole is left below it.
        let limit = |soft: usize| {
            let status = Command::new("prlimit")
                .args(["--pid", &pid, &format!("--nofile={soft}:")])
                .status();
            assert!(
                status
                    .expect("prlimit missing: run scripts/test (util-linux)")
                    .success()
            );
        };
        let lowest_free = || {
            let open: std::collections::BTreeSet<usize> =
                std::fs::read_dir(format!("/proc/{pid}/fd"))
                    .unwrap()
                    .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect();
            (0..).find(|n| !open.contains(n)).unwrap()
        };
        for _ in 0..10 {
            limit(lowest_free());
            std::thread::sleep(Duration::from_millis(100));
        }
        // Poll gently: every answer from the reserve frees a descriptor a probe might take.
        let (_, body) = wait_for(Duration::from_secs(20), "503 for ProberError", || {
            std::thread::sleep(Duration::from_millis(500));
            http_get(canary.health, "/healthz").filter(|(s, _)| *s == 503)
        });
        assert!(
            body.contains("ProberError") || body.contains("has not completed a run"),
            "{body}"
        );
        limit(4096);
        wait_for(Duration::from_secs(15), "recovery", || {
            http_get(canary.health, "/healthz").filter(|(s, _)| *s == 200)
        });
    })
    .await
    .unwrap();
}
