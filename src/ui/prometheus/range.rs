//! The latency chart from Prometheus: one range query over the last 24 hours (or the check's
//! life in Prometheus, if shorter) of the average whole-probe duration per step and the failed
//! runs per step, about 120 points.

use serde::Deserialize;

use super::query::QueryError;
use crate::ui::chart::Point;

/// Points per chart, about.
const STEPS: i64 = 120;
/// Values per series at most (more is a hostile or misconfigured answer).
const MAX_VALUES: usize = 1_000;

/// The range `(start, end, step)` in Unix seconds for a chart ending at `now` of a check whose
/// first sample is at `since`: at most 24 hours, at least 10 minutes, steps of 10 s or more.
pub fn range(now: i64, since: i64) -> (i64, i64, i64) {
    let span = (now - since).clamp(600, 24 * 3600);
    let step = (span / STEPS).max(10);
    (now - span, now, step)
}

/// Average latency (ms) and failed runs per `step` (seconds) of the checks of `selector`.
pub fn chart_query(selector: &str, step: i64) -> String {
    let window = format!("{}s", step.max(60));
    format!(
        "label_replace(sum(rate(canary_check_duration_seconds_sum{{{selector}}}[{window}])) \
         / sum(rate(canary_check_duration_seconds_count{{{selector}}}[{window}])) * 1000, \
         \"series\", \"latency\", \"\", \"\") \
         or label_replace(sum(increase(canary_check_runs_total{{{selector},result!=\"success\"}}[{window}])), \
         \"series\", \"failures\", \"\", \"\")"
    )
}

#[derive(Deserialize)]
struct Series {
    metric: std::collections::HashMap<String, String>,
    values: Vec<(f64, String)>,
}

/// The chart's points, oldest first: a step with failed runs is marked failed; a step without
/// a measured latency is left off the line.
pub fn parse(body: &[u8]) -> Result<Vec<Point>, QueryError> {
    let result: Vec<Series> = super::query::series(body, "matrix")?;
    if result.len() > 2 || result.iter().any(|s| s.values.len() > MAX_VALUES) {
        return Err(QueryError::TooManySeries(2));
    }
    let values = |name: &str| -> Vec<(i64, f64)> {
        (result.iter())
            .filter(|s| s.metric.get("series").is_some_and(|n| n == name))
            .flat_map(|s| s.values.iter())
            .filter_map(|(at, v)| {
                Some((*at as i64, v.parse::<f64>().ok().filter(|v| v.is_finite())?))
            })
            .collect()
    };
    let failures: std::collections::HashMap<i64, f64> = values("failures").into_iter().collect();
    let mut steps: std::collections::BTreeMap<i64, Option<u32>> =
        (failures.keys()).map(|at| (*at, None)).collect();
    for (at, ms) in values("latency") {
        steps.insert(at, Some(ms.clamp(0.0, f64::from(u32::MAX)).round() as u32));
    }
    Ok((steps.into_iter())
        .map(|(at, ms)| {
            let failed = failures.get(&at).copied().unwrap_or(0.0);
            let success = failed < 0.5;
            Point {
                at,
                ms,
                success,
                title: title(at, ms, failed),
            }
        })
        .collect())
}

fn title(at: i64, ms: Option<u32>, failed: f64) -> String {
    let time = crate::ui::page::time(at);
    let average = ms.map_or_else(|| "no latency".into(), |ms| format!("{ms} ms average"));
    match failed >= 0.5 {
        true => format!("{time} · {average} · {failed:.0} failed"),
        false => format!("{time} · {average}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_fit_the_checks_life_in_prometheus() {
        assert_eq!(range(100_000, 99_000), (99_000, 100_000, 10));
        assert_eq!(range(100_000, 99_990), (99_400, 100_000, 10));
        assert_eq!(range(200_000, 0), (200_000 - 86_400, 200_000, 720));
        assert!(chart_query("s", 720).contains("[720s]"));
        assert!(
            chart_query("s", 10).contains("canary_check_runs_total{s,result!=\"success\"}[60s]")
        );
    }

    #[test]
    fn steps_become_points_failures_marked() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"series":"latency"},"values":[[10,"12.4"],[20,"NaN"],[30,"8"]]},
            {"metric":{"series":"failures"},"values":[[10,"0"],[20,"2"],[30,"0"]]}]}}"#;
        let points = parse(body.as_bytes()).unwrap();
        let got: Vec<_> = points.iter().map(|p| (p.at, p.ms, p.success)).collect();
        assert_eq!(
            got,
            [(10, Some(12), true), (20, None, false), (30, Some(8), true)]
        );
        assert!(
            points[1].title.ends_with("no latency · 2 failed"),
            "{}",
            points[1].title
        );
        let long = format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{}},"values":[{}]}}]}}}}"#,
            vec![r#"[1,"1"]"#; MAX_VALUES + 1].join(",")
        );
        assert!(parse(long.as_bytes()).is_err());
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(parse(vector.as_bytes()).is_err());
    }
}
