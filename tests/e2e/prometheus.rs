//! A real Prometheus scrapes the operator: the target is up and every check's success is there;
//! with `--prometheus-url` the status page reads uptime from it.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use canary_test_harness::{
    cluster::{config_map, http_check},
    http,
    prom::Prometheus,
    targets::{Ca, Reply, TestServer, Transport, days},
    wait::eventually,
};
use serde_json::{Value, json};

use crate::{SEC, Scenario, https_check};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_operator_and_sees_each_checks_success() {
    let ns = "shop";
    let ca = Ca::root("Lifecycle CA");
    let healthy = TestServer::https(&ca.leaf(&["localhost"], days(-1), days(90))).await;
    let expired = TestServer::https(&ca.leaf(&["localhost"], days(-30), days(-1))).await;
    let plain = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let checks = [
        config_map(ns, "test-ca", "ca.crt", &ca.pem),
        https_check(ns, "healthy", healthy.port()),
        https_check(ns, "expired", expired.port()),
        http_check(ns, "flaky", &plain.url("/"), json!({})),
    ];
    let s = Scenario::start(ns, &[], &checks).await;
    let prometheus = Prometheus::start(&[s.operator.metrics]).await;
    let query = format!("canary_check_success{{job=\"canary\",namespace=\"{ns}\"}}");
    let every = Duration::from_millis(500);
    eventually(
        30 * SEC,
        "Prometheus sees the operator and its checks",
        every,
        async || {
            let up = prometheus.query("up{job=\"canary\"}").await?;
            if up.iter().map(|(_, v)| *v).collect::<Vec<_>>() != [1.0] {
                return Err(format!("up: {up:?}"));
            }
            let success = prometheus.query(&query).await?;
            let value = |name: &str| {
                success
                    .iter()
                    .find(|(m, _)| m["name"] == name)
                    .map(|(_, v)| *v)
            };
            match (value("healthy"), value("expired"), value("flaky")) {
                (Some(1.0), Some(0.0), Some(1.0)) => Ok(()),
                _ => Err(format!("canary_check_success: {success:?}")),
            }
        },
    )
    .await;
}

/// Issue 28: with `--prometheus-url`, the page's and the JSON API's uptime of a check that
/// fails every third run is PromQL's `sum(increase(success[24h])) / sum(increase(all[24h]))`
/// (within one percentage point); Prometheus stopped, the page falls back and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_reads_uptime_from_prometheus_and_falls_back_when_it_stops() {
    let ns = "prom-page";
    let flaky = every_third_request_fails().await;
    let started = jiff::Timestamp::now().as_second();
    let mut prometheus = Prometheus::start(&[]).await;
    let url = prometheus.url();
    // Answers kept 100 ms: the page and the test ask Prometheus at about the same time.
    // With a location, the page asks for this Canary's series (`location="eu-west"`) only.
    let args = [
        "--prometheus-url",
        &url,
        "--prometheus-cache-ttl",
        "100ms",
        "--location",
        "eu-west",
    ];
    let check = http_check(ns, "flaky", &flaky.url("/"), json!({}));
    let s = Scenario::start(ns, &args, &[check]).await;
    prometheus.set_targets(&[s.operator.metrics]);
    let page = Page {
        ui: s.operator.ui.expect("the page is on"),
        prometheus: &prometheus,
        ns,
    };
    page.uptime_api_is_promqls(started).await;
    page.list_page_and_chart_are_prometheus(started).await;
    prometheus.stop();
    Page::falls_back(s.operator.ui.expect("the page is on"), ns, &url).await;
}

async fn every_third_request_fails() -> TestServer {
    let requests = Arc::new(AtomicUsize::new(0));
    TestServer::start(Transport::Plain, move |_| {
        match requests.fetch_add(1, Ordering::Relaxed) % 3 {
            0 => Reply::status(500, "down"),
            _ => Reply::ok("ok"),
        }
    })
    .await
}

/// The status page of check `flaky` in `ns`, and the Prometheus it reads.
struct Page<'a> {
    ui: SocketAddr,
    prometheus: &'a Prometheus,
    ns: &'static str,
}

const EVERY: Duration = Duration::from_millis(500);

impl Page<'_> {
    /// The formula for the check over 24h, now.
    async fn promql(&self) -> Result<f64, String> {
        let ns = self.ns;
        let formula = format!(
            "sum(increase(canary_check_runs_total{{result=\"success\",namespace=\"{ns}\",name=\"flaky\"}}[24h])) \
             / sum(increase(canary_check_runs_total{{namespace=\"{ns}\",name=\"flaky\"}}[24h]))"
        );
        let answer = self.prometheus.query(&formula).await?;
        answer
            .first()
            .map(|(_, v)| *v)
            .ok_or("no PromQL answer yet".into())
    }

    async fn json(&self, path: &str) -> Result<Value, String> {
        Ok(http::get(self.ui, path).await?.json())
    }

    /// The uptime API: three matches in a row once 15 runs are in (early on, increase()
    /// extrapolates a few runs), with since Prometheus's first sample, not the time of asking.
    async fn uptime_api_is_promqls(&self, started: i64) {
        let mut matched = 0;
        let what = "the API's 24h uptime is PromQL's";
        eventually(90 * SEC, what, EVERY, async || {
            let path = format!("/api/v1/checks/{}/flaky/uptime?window=24h", self.ns);
            let api = self.json(&path).await?;
            let page = api["uptime"].as_f64().ok_or(format!("no uptime: {api}"))?;
            let promql = self.promql().await?;
            let since = since(&api)?;
            let old = jiff::Timestamp::now().as_second() - since >= 10 && since >= started;
            let runs = api["runs"].as_u64().unwrap_or_default();
            let near = (page - promql).abs() <= 0.01;
            match (api["historySource"].as_str(), runs >= 15 && old, near) {
                (Some("prometheus"), true, true) if (0.3..0.95).contains(&page) => matched += 1,
                _ => matched = 0,
            }
            match matched >= 3 {
                true => Ok(()),
                false => Err(format!("API {api}, PromQL {promql}")),
            }
        })
        .await;
    }

    /// The list, the check page and the overview say Prometheus; the chart marks failures.
    async fn list_page_and_chart_are_prometheus(&self, started: i64) {
        let what = "the list's and the page's uptime are PromQL's, the chart Prometheus's";
        eventually(30 * SEC, what, EVERY, async || {
            let promql = self.promql().await?;
            let list = self.json("/api/v1/checks").await?;
            let item = &list["items"][0];
            let listed = item["uptime"]["24h"]["uptime"].as_f64().unwrap_or(-1.0);
            let html = http::get(self.ui, &format!("/checks/{}/flaky", self.ns))
                .await?
                .body;
            let shown = day_uptime(&html).unwrap_or(-1.0);
            let near = |value: f64| (value - promql).abs() <= 0.01;
            let record = self
                .json(&format!("/api/v1/checks/{}/flaky", self.ns))
                .await?;
            let chart = record["latencyChart"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let failed = chart.iter().any(|p| p["failed"] == true);
            let measured = (chart.iter()).any(|p| p["averageLatencyMs"].as_f64().is_some());
            let overview = http::get(self.ui, "/").await?.body;
            let said = html.contains("from Prometheus at")
                && html.contains("from Prometheus.</p>")
                && overview.contains("from Prometheus at")
                && since(item)? >= started;
            match (item["historySource"].as_str(), near(listed), near(shown)) {
                (Some("prometheus"), true, true) if said && failed && measured => Ok(()),
                _ => Err(format!(
                    "list {item}, page {shown}, PromQL {promql}, chart {chart:?}"
                )),
            }
        })
        .await;
    }

    /// Prometheus gone: the overview, the check page and the API say so and show the runners'
    /// history (and their results in the chart).
    async fn falls_back(ui: SocketAddr, ns: &str, url: &str) {
        eventually(
            30 * SEC,
            "the page falls back and says so",
            EVERY,
            async || {
                let html = http::get(ui, &format!("/checks/{ns}/flaky")).await?.body;
                let overview = http::get(ui, "/").await?.body;
                let api = http::get(ui, &format!("/api/v1/checks/{ns}/flaky"))
                    .await?
                    .json();
                let said = |page: &str| {
                    page.contains(&format!("Prometheus at {url}"))
                        && page.contains("did not answer")
                        && page.contains("showing history")
                };
                let memory_chart =
                    !html.contains("from Prometheus.</p>") && api["latencyChart"].is_null();
                let source =
                    api["historySource"] != "prometheus" && api["historyError"].is_string();
                match (said(&html), said(&overview), source && memory_chart) {
                    (true, true, true) => Ok(()),
                    _ => Err(format!("API {}", api["historySource"])),
                }
            },
        )
        .await;
    }
}

/// `historySince` in Unix seconds.
fn since(record: &Value) -> Result<i64, String> {
    let text = record["historySince"].as_str().unwrap_or_default();
    let since: jiff::Timestamp = text
        .parse()
        .map_err(|e| format!("historySince: {e}: {record}"))?;
    Ok(since.as_second())
}

/// The detail page's "uptime 24h" as a ratio.
fn day_uptime(html: &str) -> Option<f64> {
    let after = html.split("uptime 24h").nth(1)?;
    let value = after.split("<dd>").nth(1)?.split('%').next()?;
    Some(value.trim().parse::<f64>().ok()? / 100.0)
}
