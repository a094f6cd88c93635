//! The PromQL the page asks and what it makes of the answers. One instant query per window
//! covers a whole page of checks: `sum by (namespace, name, result)` over a selector that
//! matches the page's namespaces and names, with the latency histogram's sum and count
//! appended (`or label_replace`), so a page of 100 cards costs three queries, not 300.

use std::collections::HashMap;

use serde::Deserialize;

use crate::{api::CheckKey, runner::history::Window};

/// What a query's answer says of one check over one window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    pub successes: f64,
    pub runs: f64,
    pub latency_sum: f64,
    pub latency_count: f64,
    /// Unix seconds of the first sample seen (the since query only).
    pub since: Option<f64>,
}

impl Counts {
    /// As the page shows a window; the uptime is the PromQL ratio, unrounded.
    pub fn window(&self) -> Window {
        let ratio = |part: f64, whole: f64| (whole > 0.0).then(|| (part / whole).clamp(0.0, 1.0));
        Window {
            runs: self.runs.round() as u64,
            successes: self.successes.round() as u64,
            uptime: ratio(self.successes, self.runs),
            average_latency_ms: ratio(self.latency_sum, self.latency_count)
                .map(|_| self.latency_sum / self.latency_count * 1000.0),
        }
    }
}

/// Why an answer is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("not JSON of the query API: {0}")]
    Json(String),
    #[error("the query failed: {0}")]
    Failed(String),
    #[error("a {0} answer, not a vector")]
    NotVector(String),
    #[error("more than {0} series in the answer")]
    TooManySeries(usize),
}

/// A PromQL double-quoted string holding `text`.
fn quoted(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// The selector of the runs and durations of `keys` (from `location` when set): one regex
/// matcher per label, anchored by PromQL, values escaped; the answer may hold other
/// namespace-name pairs of the cross product, which [`parse`] leaves out.
pub fn selector(keys: &[CheckKey], location: Option<&str>) -> String {
    let alternatives = |values: Vec<&str>| {
        let mut values: Vec<String> = values.into_iter().map(regex::escape).collect();
        values.sort_unstable();
        values.dedup();
        quoted(&values.join("|"))
    };
    let namespaces = alternatives(keys.iter().map(|k| k.namespace.as_str()).collect());
    let names = alternatives(keys.iter().map(|k| k.name.as_str()).collect());
    let mut selector = format!("namespace=~{namespaces},name=~{names}");
    if let Some(location) = location {
        selector.push_str(&format!(",location={}", quoted(location)));
    }
    selector
}

/// Runs by result and the latency histogram's sum and count of every check of `selector`
/// over the last `range` (a PromQL duration: `24h`).
pub fn window_query(selector: &str, range: &str) -> String {
    let by_key = |metric: &str, tag: &str| {
        format!(
            "label_replace(sum by (namespace, name) (increase({metric}{{{selector}}}[{range}])), \
             \"result\", \"{tag}\", \"\", \"\")"
        )
    };
    format!(
        "sum by (namespace, name, result) (increase(canary_check_runs_total{{{selector}}}[{range}])) \
         or {} or {}",
        by_key("canary_check_duration_seconds_sum", LATENCY_SUM),
        by_key("canary_check_duration_seconds_count", LATENCY_COUNT),
    )
}

/// The first sample of each check of `selector` within `range`: to the hour, or to 10 s
/// within the last hour (the earlier of two subqueries, told apart by a `tier` label).
pub fn since_query(selector: &str, range: &str) -> String {
    let first = |range: &str, step: &str| {
        format!(
            "label_replace(min by (namespace, name) (min_over_time(timestamp(\
             canary_check_runs_total{{{selector}}})[{range}:{step}])), \"tier\", \"{step}\", \"\", \"\")"
        )
    };
    format!(
        "label_replace(min by (namespace, name) ({} or {}), \"result\", \"{SINCE}\", \"\", \"\")",
        first(range, "1h"),
        first("1h", "10s")
    )
}

const LATENCY_SUM: &str = "_latency_sum";
const LATENCY_COUNT: &str = "_latency_count";
const SINCE: &str = "_since";

#[derive(Deserialize)]
struct Answer<S> {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default = "Option::default")]
    data: Option<Data<S>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data<S> {
    result_type: String,
    result: Vec<S>,
}

/// The series of an answer that succeeded with `result_type` (`vector`, `matrix`).
pub(super) fn series<S: serde::de::DeserializeOwned>(
    body: &[u8],
    result_type: &str,
) -> Result<Vec<S>, QueryError> {
    let answer: Answer<S> =
        serde_json::from_slice(body).map_err(|e| QueryError::Json(e.to_string()))?;
    if answer.status != "success" {
        let error = answer.error.unwrap_or(answer.status);
        return Err(QueryError::Failed(error.chars().take(200).collect()));
    }
    let data = answer
        .data
        .ok_or_else(|| QueryError::Json("no data".into()))?;
    if data.result_type != result_type {
        return Err(QueryError::NotVector(
            data.result_type.chars().take(20).collect(),
        ));
    }
    Ok(data.result)
}

#[derive(Deserialize)]
struct Series {
    metric: HashMap<String, String>,
    value: (f64, String),
}

/// The counts of each of `keys` in an instant query's answer; series of other checks are
/// left out, and an answer with more than `max_series` series is refused whole.
pub fn parse(
    body: &[u8],
    keys: &[CheckKey],
    max_series: usize,
) -> Result<HashMap<CheckKey, Counts>, QueryError> {
    let result: Vec<Series> = series(body, "vector")?;
    if result.len() > max_series {
        return Err(QueryError::TooManySeries(max_series));
    }
    let mut counts: HashMap<CheckKey, Counts> = HashMap::new();
    for series in result {
        let label = |name: &str| series.metric.get(name).cloned().unwrap_or_default();
        let key = CheckKey {
            namespace: label("namespace"),
            name: label("name"),
        };
        let Some(value) = series.value.1.parse::<f64>().ok().filter(|v| v.is_finite()) else {
            continue;
        };
        if !keys.contains(&key) {
            continue;
        }
        let entry = counts.entry(key).or_default();
        match label("result").as_str() {
            LATENCY_SUM => entry.latency_sum += value,
            LATENCY_COUNT => entry.latency_count += value,
            SINCE => entry.since = Some(value),
            result => {
                entry.runs += value;
                if result == "success" {
                    entry.successes += value;
                }
            }
        }
    }
    Ok(counts)
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
