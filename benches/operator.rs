//! Operator benchmark through the local API server: 1,000 HealthChecks at a 10 s interval
//! applied with kubectl; time until every one shows Ready in status, status writes per second
//! seen at the API server, operator CPU and RSS. Run: `cargo bench --bench operator`
//! (release; needs `scripts/install-test-tools.sh` for kubectl). `CHECKS` and `QPS` override.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use support::server::{Reply, TestServer, Transport};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");

fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/.tools/bin/kubectl");
    let out = Command::new(bin)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("kubectl missing: run scripts/install-test-tools.sh");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (CPU seconds, RSS MiB) of a process.
fn usage(pid: u32) -> (f64, f64) {
    let pid = pid.to_string();
    (
        support::cpu_seconds(&pid),
        support::memory_mib(&pid, "VmRSS"),
    )
}

fn main() {
    let checks: usize = std::env::var("CHECKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let qps: u32 = std::env::var("QPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(canary_test_apiserver::start(
            canary_test_apiserver::Options::default(),
        ))
        .unwrap();
    let target = runtime.block_on(TestServer::start(Transport::Plain, |_| Reply::ok("ok")));
    let kubeconfig = server.kubeconfig_path().to_path_buf();
    let crd = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
    kubectl(&kubeconfig, &["apply", "-f", crd]);
    kubectl(
        &kubeconfig,
        &[
            "wait",
            "--for=condition=Established",
            "crd/healthchecks.canary.dev",
            "--timeout=30s",
        ],
    );

    let mut operator = Command::new(CANARY)
        .args([
            "operator",
            "--log-format",
            "json",
            "--status-write-qps",
            &qps.to_string(),
        ])
        .args([
            "--metrics-bind-address",
            "127.0.0.1:0",
            "--health-probe-bind-address",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn,canary_operator::engine=info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = operator.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("serving /metrics") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("operator did not start");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("checks.yaml");
    let mut yaml = String::new();
    for i in 0..checks {
        yaml.push_str(&format!(
            "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {{name: c{i}, namespace: default}}\nspec:\n  interval: 10s\n  timeout: 2s\n  http: {{url: 'http://127.0.0.1:{}/'}}\n---\n",
            target.port()
        ));
    }
    std::fs::write(&file, yaml).unwrap();
    let (cpu0, _) = usage(operator.id());
    server.clear_requests();
    let started = Instant::now();
    kubectl(
        &kubeconfig,
        &["apply", "-f", file.to_str().unwrap(), "--server-side"],
    );
    let applied = started.elapsed();
    let mut peak_rss: f64 = 0.0;
    let all_ready = loop {
        let out = kubectl(
            &kubeconfig,
            &[
                "get",
                "chc",
                "-n",
                "default",
                "-o",
                r#"jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
            ],
        );
        peak_rss = peak_rss.max(usage(operator.id()).1);
        let ready = out.lines().filter(|l| *l == "True").count();
        if ready == checks {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {ready}/{checks} Ready after 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // Keep running for two more intervals to see the steady-state write rate.
    std::thread::sleep(Duration::from_secs(20));
    let total = started.elapsed();
    let (cpu1, rss) = usage(operator.id());
    let writes: Vec<_> = (server.requests().into_iter())
        .filter(|r| {
            r.subresource == "status"
                && r.verb == "patch"
                && r.user_agent.starts_with("canary-operator")
        })
        .collect();
    let busiest_second = {
        let mut per_second = std::collections::BTreeMap::new();
        let first = writes.first().map(|w| w.received);
        for w in &writes {
            *per_second
                .entry(w.received.duration_since(first.unwrap()).as_secs())
                .or_insert(0) += 1;
        }
        per_second.values().copied().max().unwrap_or(0)
    };
    println!(
        "cores: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{checks} HealthChecks at a 10s interval, --status-write-qps {qps} (burst 50)");
    println!(
        "kubectl apply --server-side of all: {:.1}s",
        applied.as_secs_f64()
    );
    println!("all Ready in status after {:.1}s", all_ready.as_secs_f64());
    println!(
        "status writes: {} in {:.0}s ({:.1}/s average, busiest second {busiest_second})",
        writes.len(),
        total.as_secs_f64(),
        writes.len() as f64 / total.as_secs_f64()
    );
    println!(
        "operator CPU {:.1}s over {:.0}s ({:.0}% of one core), RSS {rss:.1} MiB (peak seen {peak_rss:.1} MiB)",
        cpu1 - cpu0,
        total.as_secs_f64(),
        (cpu1 - cpu0) / total.as_secs_f64() * 100.0
    );
    let _ = Command::new("kill")
        .args(["-TERM", &operator.id().to_string()])
        .status();
    let _ = operator.wait();
}
