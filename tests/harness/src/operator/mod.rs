//! Canary's engine as the tests run it: `canary operator` (or `canary standalone`) the way the
//! chart's Deployment runs it (a clean environment, its flags, the Downward API variables),
//! observed through its admin endpoints and its logs.
//!
//! [`Launch`] says what to run, [`Launch::process`] runs it as a child process. Another way of
//! running (in-process, on the test's runtime) is meant to be another terminal method of
//! `Launch` and another variant of the private `Run` enum; tests only see [`Operator`].

mod launch;

use std::{
    net::SocketAddr,
    process::{Child, Command, ExitStatus},
    sync::Mutex,
    time::Duration,
};

use launch::Logs;
pub use launch::{Launch, free_port};

use crate::{http, metrics, procfs, wait::eventually};

/// How the engine runs.
enum Run {
    Process(Mutex<Process>),
}

struct Process {
    child: Child,
    exit: Option<ExitStatus>,
}

/// A running engine; stopped when dropped.
pub struct Operator {
    pub metrics: SocketAddr,
    pub health: SocketAddr,
    /// The status page, when it is on.
    pub ui: Option<SocketAddr>,
    /// The heartbeat listener, when it is on.
    pub heartbeat: Option<SocketAddr>,
    logs: Logs,
    run: Run,
}

impl Operator {
    fn process(&self) -> std::sync::MutexGuard<'_, Process> {
        match &self.run {
            Run::Process(process) => process.lock().unwrap(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process().child.id()
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.0.lock().unwrap().clone()
    }

    /// The last `n` log lines, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let logs = self.logs.0.lock().unwrap();
        logs[logs.len().saturating_sub(n)..].join("\n")
    }

    /// Whether any log line contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.logs.0.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// The `/metrics` exposition, if it answers.
    pub async fn scrape(&self) -> Option<String> {
        let answer = http::get(self.metrics, "/metrics").await.ok();
        answer.filter(|r| r.status == 200).map(|r| r.body)
    }

    /// Sum of `name{labels...}` on /metrics (0 when absent); an error when /metrics does not
    /// answer.
    pub async fn try_metric(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64, String> {
        match self.scrape().await {
            Some(text) => Ok(metrics::sum(&text, name, labels)),
            None => Err(format!("/metrics at {} did not answer", self.metrics)),
        }
    }

    /// `name{namespace, name=check}` on /metrics (summed over other labels, 0 when absent); an
    /// error when /metrics does not answer.
    pub async fn check_metric(
        &self,
        name: &str,
        namespace: &str,
        check: &str,
    ) -> Result<f64, String> {
        let labels = [("namespace", namespace), ("name", check)];
        self.try_metric(name, &labels).await
    }

    /// Waits (10s at most) until `canary_check_success` of `namespace/check` is `value` (1 when
    /// its last run passed, 0 when it failed).
    pub async fn wait_success(&self, namespace: &str, check: &str, value: f64) {
        let what = format!("canary_check_success of {namespace}/{check} at {value}");
        let labels = [("namespace", namespace), ("name", check)];
        let deadline = Duration::from_secs(10);
        (self.wait_metric(deadline, &what, "canary_check_success", &labels, |v| {
            v == value
        }))
        .await;
    }

    /// Waits until `name{labels...}` (summed) satisfies `good`, failing after `deadline` with
    /// `what` and the last value; returns the value.
    async fn wait_metric(
        &self,
        deadline: Duration,
        what: &str,
        name: &str,
        labels: &[(&str, &str)],
        good: impl Fn(f64) -> bool,
    ) -> f64 {
        eventually(deadline, what, Duration::from_millis(100), async || {
            let value = self.try_metric(name, labels).await?;
            good(value)
                .then_some(value)
                .ok_or(format!("{name} at {value}"))
        })
        .await
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
        panic!("{last}; logs:\n{}", self.tail(20))
    }

    /// Runs of one check so far (`canary_check_runs_total` over all results).
    pub async fn runs(&self, namespace: &str, name: &str) -> f64 {
        let labels = [("namespace", namespace), ("name", name)];
        self.metric_sum("canary_check_runs_total", &labels).await
    }

    /// Waits (20s at most) until the metrics count at least `at_least` runs of
    /// `namespace/name` (with `result`, if given). Status counters stop at the thresholds (the
    /// writer skips beyond them); metrics count every run.
    pub async fn wait_runs(&self, ns: &str, name: &str, result: Option<&str>, at_least: f64) {
        let mut labels = vec![("namespace", ns), ("name", name)];
        labels.extend(result.map(|r| ("result", r)));
        let what = format!("{at_least} runs of {ns}/{name} ({result:?})");
        let deadline = Duration::from_secs(20);
        let at_least = |runs: f64| runs >= at_least;
        (self.wait_metric(
            deadline,
            &what,
            "canary_check_runs_total",
            &labels,
            at_least,
        ))
        .await;
    }

    /// `/healthz` or `/readyz` status code.
    pub async fn health_code(&self, path: &str) -> Option<u16> {
        http::get(self.health, path).await.ok().map(|r| r.status)
    }

    /// Waits until `/readyz` answers 200, failing early when the engine exits.
    pub async fn wait_ready(&self, deadline: Duration) {
        eventually(
            deadline,
            "/readyz 200",
            Duration::from_millis(100),
            async || {
                assert!(self.running(), "exited early; logs:\n{}", self.tail(30));
                match self.health_code("/readyz").await {
                    Some(200) => Ok(()),
                    code => Err(format!("/readyz {code:?}; logs:\n{}", self.tail(30))),
                }
            },
        )
        .await;
    }

    /// Sends a signal by name (`TERM`, `KILL`, `STOP`, `CONT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("kill(1) missing: run scripts/test (procps)");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Whether the engine is still running.
    pub fn running(&self) -> bool {
        let mut process = self.process();
        if process.exit.is_none() {
            process.exit = process.child.try_wait().expect("try_wait");
        }
        process.exit.is_none()
    }

    /// Waits for the engine to exit, failing after `deadline`.
    pub async fn wait_exit(&self, deadline: Duration) -> ExitStatus {
        eventually(
            deadline,
            "the exit",
            Duration::from_millis(20),
            async || match self.running() {
                false => Ok(self.process().exit.expect("exited")),
                true => Err(format!("still running; logs:\n{}", self.tail(30))),
            },
        )
        .await
    }

    /// Sends SIGTERM and waits (10s at most) for the exit: its status and how long it took.
    pub async fn terminate(&self) -> (ExitStatus, Duration) {
        self.signal("TERM");
        let stopping = std::time::Instant::now();
        let exit = self.wait_exit(Duration::from_secs(10)).await;
        (exit, stopping.elapsed())
    }

    /// SIGKILL and reap.
    pub fn kill(&self) {
        if self.running() {
            let mut process = self.process();
            let _ = process.child.kill();
            process.exit = process.child.wait().ok();
        }
    }

    /// CPU time (user + system) used so far.
    pub fn cpu(&self) -> Duration {
        procfs::cpu(self.pid())
    }

    /// Resident memory in MiB.
    pub fn rss_mib(&self) -> f64 {
        procfs::memory_mib(self.pid(), "VmRSS")
    }

    /// CPU clock ticks per thread, by thread name, for diagnostics.
    pub fn thread_ticks(&self) -> Vec<(String, u64)> {
        procfs::thread_ticks(self.pid())
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}
