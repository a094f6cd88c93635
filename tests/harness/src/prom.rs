//! A real Prometheus (Debian package `prometheus`) scraping given targets every second (from a
//! file it watches, so targets can be set after it starts), and queries through its HTTP API.

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{http, tools::tool};

/// A Prometheus server; killed when dropped.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (job `canary`) every second and waits until ready.
    pub async fn start(targets: &[SocketAddr]) -> Self {
        let binary = tool("prometheus");
        let dir = tempfile::tempdir().expect("tempdir");
        write_targets(dir.path(), targets);
        let targets_file = dir.path().join("targets.json");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: canary\n    file_sd_configs:\n      - files: ['{}']\n\
             \x20       refresh_interval: 1s\n",
            targets_file.display()
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        // Prometheus cannot listen on port 0: reserve a free port, release it, and retry on
        // the rare collision.
        for _ in 0..5 {
            let addr = {
                let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                probe.local_addr().expect("addr")
            };
            let mut child = Command::new(&binary)
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn prometheus");
            let until = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: most likely the port was taken; try another
                }
                if http::get(addr, "/-/ready")
                    .await
                    .is_ok_and(|r| r.status == 200)
                {
                    return Self { child, addr, dir };
                }
                if Instant::now() >= until {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("prometheus at {addr} not ready within 30s");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("prometheus did not start (5 attempts)");
    }

    /// Scrapes `targets` from now on (within a second or so).
    pub fn set_targets(&self, targets: &[SocketAddr]) {
        write_targets(self.dir.path(), targets);
    }

    /// Stops the server (a Prometheus that went away).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An instant query: the `data.result` vector as (labels, value) pairs.
    pub async fn query(&self, expr: &str) -> Result<Vec<(Value, f64)>, String> {
        let encoded: String = url::form_urlencoded::byte_serialize(expr.as_bytes()).collect();
        let http::Response { status, body, .. } =
            http::get(self.addr, &format!("/api/v1/query?query={encoded}")).await?;
        let doc: Value =
            serde_json::from_str(&body).map_err(|e| format!("{status} {e}: {body}"))?;
        if doc["status"] != "success" {
            return Err(format!("query {expr}: {body}"));
        }
        Ok(doc["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let value = r["value"][1].as_str()?.parse().ok()?;
                Some((r["metric"].clone(), value))
            })
            .collect())
    }
}

/// The file_sd file (written whole, then renamed, so Prometheus never reads half of it).
fn write_targets(dir: &std::path::Path, targets: &[SocketAddr]) {
    let targets: Vec<String> = targets.iter().map(ToString::to_string).collect();
    let groups = serde_json::json!([{"targets": targets}]);
    let staged = dir.join("targets.json.new");
    std::fs::write(&staged, groups.to_string()).expect("write targets");
    std::fs::rename(&staged, dir.join("targets.json")).expect("rename targets");
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
