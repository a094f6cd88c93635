//! `canary operator` as a child process, its admin addresses read from its JSON logs.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{http_get, metrics};

pub const CANARY: &str = env!("CARGO_BIN_EXE_canary");

/// A running `canary operator`; killed when dropped.
pub struct Operator {
    child: Child,
    pub metrics: SocketAddr,
    pub health: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    exit: Option<ExitStatus>,
}

impl Operator {
    /// Starts `canary operator ARGS` against `kubeconfig` with `env` (e.g. `POD_NAME`), and waits
    /// for the log line naming its admin addresses.
    pub async fn start(kubeconfig: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(CANARY);
        cmd.arg("operator")
            .args([
                "--log-format",
                "json",
                "--metrics-bind-address",
                "127.0.0.1:0",
                "--health-probe-bind-address",
                "127.0.0.1:0",
            ])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn canary operator");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stderr = child.stderr.take().expect("stderr");
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(log) = serde_json::from_str::<serde_json::Value>(&line)
                    && let (Some(m), Some(h)) = (
                        log["fields"]["metrics"].as_str(),
                        log["fields"]["health"].as_str(),
                    )
                    && let (Ok(m), Ok(h)) = (m.parse::<SocketAddr>(), h.parse::<SocketAddr>())
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send((m, h));
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addrs = tokio::time::timeout(Duration::from_secs(30), rx).await;
        let Ok(Ok((metrics, health))) = addrs else {
            let _ = child.kill();
            let status = child.wait();
            panic!(
                "canary operator did not log its admin addresses ({status:?}); logs:\n{}",
                logs.lock().unwrap().join("\n")
            );
        };
        Self {
            child,
            metrics,
            health,
            logs,
            exit: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The last `n` log lines, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let logs = self.logs.lock().unwrap();
        logs[logs.len().saturating_sub(n)..].join("\n")
    }

    /// Whether any log line contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.logs.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// The `/metrics` exposition, if it answers.
    pub async fn scrape(&self) -> Option<String> {
        http_get(self.metrics, "/metrics")
            .await
            .filter(|(s, _)| *s == 200)
            .map(|(_, b)| b)
    }

    /// Sum of `name{labels...}` on /metrics (0 when absent); an error when /metrics does not
    /// answer.
    pub async fn try_metric(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64, String> {
        match self.scrape().await {
            Some(text) => Ok(metrics::sum(&text, name, labels)),
            None => Err(format!("/metrics at {} did not answer", self.metrics)),
        }
    }

    /// Sum of `name{labels...}` on /metrics (0 when absent); fails the test when /metrics does
    /// not answer three times in a row.
    pub async fn metric_sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut last = String::new();
        for _ in 0..3 {
            match self.try_metric(name, labels).await {
                Ok(value) => return value,
                Err(e) => last = e,
            }
        }
        panic!("{last}; operator logs:\n{}", self.tail(20))
    }

    /// Runs of one check so far (`canary_check_runs_total` over all results).
    pub async fn runs(&self, namespace: &str, name: &str) -> f64 {
        self.metric_sum(
            "canary_check_runs_total",
            &[("namespace", namespace), ("name", name)],
        )
        .await
    }

    /// `/healthz` or `/readyz` status code.
    pub async fn health_code(&self, path: &str) -> Option<u16> {
        http_get(self.health, path).await.map(|(s, _)| s)
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self, deadline: Duration) {
        let until = Instant::now() + deadline;
        loop {
            let code = self.health_code("/readyz").await;
            if code == Some(200) {
                return;
            }
            assert!(
                Instant::now() < until,
                "operator not ready within {deadline:?} (last /readyz: {code:?}); logs:\n{}",
                self.tail(30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends a signal by name (`TERM`, `KILL`, `STOP`, `CONT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill(1) missing: run scripts/test (procps)");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match self.child.try_wait().expect("try_wait") {
            Some(status) => {
                self.exit = Some(status);
                false
            }
            None => true,
        }
    }

    /// Waits for the process to exit, failing after `deadline`.
    pub async fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let until = Instant::now() + deadline;
        while self.running() {
            assert!(
                Instant::now() < until,
                "operator still running {deadline:?} later; logs:\n{}",
                self.tail(30)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.exit.expect("exited")
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
        }
    }

    /// CPU time (user + system) and resident memory, from /proc.
    pub fn usage(&self) -> Option<(Duration, u64)> {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // After the command name: state is field 3, utime 14, stime 15 (1-based in proc(5)).
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let hz = clock_ticks();
        let cpu = Duration::from_secs_f64(ticks as f64 / hz as f64);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kb: u64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some((cpu, rss_kb * 1024))
    }
}

impl Operator {
    /// CPU clock ticks (user + system) per thread, by thread name, for diagnostics.
    pub fn thread_ticks(&self) -> Vec<(String, u64)> {
        let pid = self.child.id();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Vec::new();
        };
        let mut out: Vec<(String, u64)> = tasks
            .filter_map(|t| {
                let stat = std::fs::read_to_string(t.ok()?.path().join("stat")).ok()?;
                let (head, rest) = stat.rsplit_once(')')?;
                let name = head.split_once('(')?.1.to_string();
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let ticks =
                    fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
                Some((name, ticks))
            })
            .collect();
        out.sort_by_key(|t| std::cmp::Reverse(t.1));
        out
    }
}

/// USER_HZ (clock ticks per second) from `getconf CLK_TCK`, 100 when unavailable.
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}
