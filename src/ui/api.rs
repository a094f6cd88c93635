//! The status page's JSON: the checks (paginated), one check with its history, and uptime over
//! a window, for scripts and monthly reports. Times are RFC 3339, latencies milliseconds.

use serde_json::{Value, json};

use super::model::{Check, Detail, Span};
use crate::runner::history::{Hour, RunEntry, TransitionEntry, Window};

/// Checks per page when `limit` is not given, and at most.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 500;

/// Why a request cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("limit must be a whole number from 1 to {MAX_LIMIT}, got {0:?}")]
    Limit(String),
    #[error("continue must be a token from a previous page (namespace/name), got {0:?}")]
    Continue(String),
    #[error("window must be one of 24h, 7d, 30d, got {0:?}")]
    Window(String),
}

/// A page of the list: `limit` checks after the `continue` token.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    /// `namespace/name` of the last check of the previous page.
    pub after: Option<(String, String)>,
}

impl PageRequest {
    /// From the query string's `limit` and `continue`.
    pub fn parse(query: &[(String, String)]) -> Result<Self, ApiError> {
        let mut request = Self {
            limit: DEFAULT_LIMIT,
            after: None,
        };
        for (name, value) in query {
            match name.as_str() {
                "limit" => {
                    request.limit = (value.parse::<usize>().ok())
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| ApiError::Limit(value.clone()))?;
                }
                "continue" => {
                    let (namespace, name) = (value.split_once('/'))
                        .filter(|(ns, n)| !ns.is_empty() && !n.is_empty())
                        .ok_or_else(|| ApiError::Continue(value.clone()))?;
                    request.after = Some((namespace.into(), name.into()));
                }
                _ => {}
            }
        }
        Ok(request)
    }
}

/// One page of the list (`page`, sorted by namespace and name) of `total` visible checks; the
/// `continue` token is the last key of the page when `more` follow.
pub fn list(page: &[Check], total: usize, more: bool) -> Value {
    let token = (page.last())
        .filter(|_| more)
        .map(|c| format!("{}/{}", c.key.namespace, c.key.name));
    json!({
        "items": page.iter().map(summary).collect::<Vec<_>>(),
        "continue": token,
        "total": total,
    })
}

/// What the list shows of a check.
pub fn summary(check: &Check) -> Value {
    let uptime: serde_json::Map<String, Value> = (Span::ALL.into_iter())
        .map(|span| (span.label().to_string(), window(check.window(span))))
        .collect();
    let mut value = json!({
        "namespace": check.key.namespace,
        "name": check.key.name,
        "group": check.group,
        "kind": check.kind,
        "target": check.target,
        "state": check.state.name(),
        "reason": check.reason.map(|r| r.as_str()),
        "message": check.message,
        "lastRunTime": check.last_run.map(rfc3339),
        "uptime": uptime,
        "tlsNotAfter": check.tls_not_after.map(|t| t.to_string()),
        "historySince": rfc3339(check.since),
        "historySource": source(check),
        "historyError": check.prometheus.as_ref().and_then(|p| p.error.clone()),
    });
    if !check.locations.is_empty() {
        value["locations"] = json!(check.locations);
        value["degraded"] = json!(check.degraded);
    }
    value
}

/// One check with its history.
pub fn detail(detail: &Detail) -> Value {
    let mut value = summary(&detail.check);
    let extra = json!({
        "results": detail.check.results.iter().map(result).collect::<Vec<_>>(),
        "transitions": detail.transitions.iter().map(transition).collect::<Vec<_>>(),
        "hours": detail.hours.iter().map(hour).collect::<Vec<_>>(),
        "lastResult": detail.last_result,
        "tls": detail.tls,
        "spec": detail.spec,
        "probedBy": detail.probed_by,
        // With `--prometheus-url`, when it answered: average latency per step over 24 hours.
        "latencyChart": detail.chart.as_ref().map(|points| {
            (points.iter()).map(|p| json!({"time": rfc3339(p.at), "averageLatencyMs": p.ms,
                "failed": !p.success})).collect::<Vec<_>>()
        }),
        "lastPing": detail.last_ping.as_ref().map(|(at, ping)| {
            json!({"time": at.to_string(), "result": ping.result, "exitCode": ping.exit_code,
                "message": ping.message, "runId": ping.run_id})
        }),
    });
    if let (Value::Object(value), Value::Object(extra)) = (&mut value, extra) {
        value.extend(extra);
    }
    value
}

/// Uptime of one check over `span`.
pub fn uptime(check: &Check, span: Span) -> Value {
    let mut value = window(check.window(span));
    if let Value::Object(fields) = &mut value {
        fields.insert("namespace".into(), check.key.namespace.clone().into());
        fields.insert("name".into(), check.key.name.clone().into());
        fields.insert("window".into(), span.label().into());
        fields.insert("historySince".into(), rfc3339(check.since).into());
        fields.insert("historySource".into(), source(check).into());
        let error = check.prometheus.as_ref().and_then(|p| p.error.clone());
        fields.insert("historyError".into(), error.into());
    }
    value
}

/// Where the uptime windows come from: `prometheus` (`--prometheus-url`, when it answered;
/// otherwise `historyError` says why not), `status` (kept in `status.history` hourly, resumed
/// after a restart or a move) or `memory` (standalone: a restart starts it again).
fn source(check: &Check) -> &'static str {
    match (&check.prometheus, check.stored) {
        (Some(note), _) if note.error.is_none() => "prometheus",
        (_, true) => "status",
        (_, false) => "memory",
    }
}

fn window(window: Window) -> Value {
    json!({
        "runs": window.runs,
        "successes": window.successes,
        "uptime": window.uptime,
        "averageLatencyMs": window.average_latency_ms,
    })
}

fn result(entry: &RunEntry) -> Value {
    json!({
        "time": rfc3339(entry.at),
        "success": entry.success,
        "reason": entry.reason.as_str(),
        "latencyMs": entry.latency(),
    })
}

fn transition(entry: &TransitionEntry) -> Value {
    json!({
        "time": rfc3339(entry.at),
        "from": entry.from.map(|s| s.as_str()),
        "to": entry.to.as_str(),
        "reason": entry.reason.as_str(),
        "message": entry.message,
    })
}

fn hour(hour: &Hour) -> Value {
    json!({
        "start": rfc3339(hour.start),
        "runs": hour.runs,
        "successes": hour.successes,
        "measuredRuns": hour.measured,
        "averageLatencyMs": (hour.measured > 0).then(|| hour.latency_ms as f64 / f64::from(hour.measured)),
    })
}

fn rfc3339(at: i64) -> String {
    jiff::Timestamp::from_second(at)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn limits_and_tokens_are_checked() {
        let ok = PageRequest::parse(&query(&[("limit", "2"), ("continue", "a/b")])).unwrap();
        assert_eq!(ok.limit, 2);
        assert_eq!(ok.after, Some(("a".into(), "b".into())));
        assert_eq!(PageRequest::parse(&[]).unwrap().limit, DEFAULT_LIMIT);
        for bad in ["0", "501", "-1", "x"] {
            assert!(matches!(
                PageRequest::parse(&query(&[("limit", bad)])),
                Err(ApiError::Limit(_))
            ));
        }
        for bad in ["ab", "/b", "a/"] {
            assert!(matches!(
                PageRequest::parse(&query(&[("continue", bad)])),
                Err(ApiError::Continue(_))
            ));
        }
    }
}
