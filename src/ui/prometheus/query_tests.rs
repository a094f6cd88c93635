use super::*;

fn key(namespace: &str, name: &str) -> CheckKey {
    CheckKey {
        namespace: namespace.into(),
        name: name.into(),
    }
}

#[test]
fn the_selector_matches_the_pages_checks_escaped_and_by_location() {
    let keys = [
        key("shop", "api.v2"),
        key("shop", "db"),
        key("a\"b", "x\\y"),
    ];
    assert_eq!(
        selector(&keys, Some("eu-west")),
        r#"namespace=~"a\"b|shop",name=~"api\\.v2|db|x\\\\y",location="eu-west""#
    );
    assert_eq!(
        selector(&keys[1..2], None),
        r#"namespace=~"shop",name=~"db""#
    );
}

#[test]
fn one_query_per_window_asks_runs_by_result_and_the_latency_histogram() {
    let query = window_query(r#"namespace=~"shop""#, "24h");
    assert!(query.starts_with(
        r#"sum by (namespace, name, result) (increase(canary_check_runs_total{namespace=~"shop"}[24h]))"#
    ));
    assert!(query.contains(r#"increase(canary_check_duration_seconds_sum{namespace=~"shop"}[24h])), "result", "_latency_sum""#));
    assert!(query.contains("canary_check_duration_seconds_count"));
    let since = since_query("s", "30d");
    assert!(
        since.contains("timestamp(canary_check_runs_total{s})[30d:1h])), \"tier\", \"1h\""),
        "{since}"
    );
    assert!(
        since.contains("timestamp(canary_check_runs_total{s})[1h:10s])), \"tier\", \"10s\""),
        "{since}"
    );
    assert!(
        since.starts_with("label_replace(min by (namespace, name) (label_replace("),
        "{since}"
    );
}

fn answer(series: &str) -> String {
    format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{series}]}}}}"#)
}

fn series(ns: &str, name: &str, result: &str, value: &str) -> String {
    format!(
        r#"{{"metric":{{"namespace":"{ns}","name":"{name}","result":"{result}"}},"value":[1700000000.5,"{value}"]}}"#
    )
}

#[test]
fn answers_become_windows_of_the_asked_checks_only() {
    let body = answer(
        &[
            series("shop", "api", "success", "90"),
            series("shop", "api", "failure", "10.2"),
            series("shop", "api", "_latency_sum", "5"),
            series("shop", "api", "_latency_count", "100"),
            series("shop", "other", "success", "1"),
            series("shop", "db", "failure", "NaN"),
        ]
        .join(","),
    );
    let keys = [key("shop", "api"), key("shop", "db")];
    let counts = parse(body.as_bytes(), &keys, 100).unwrap();
    assert_eq!(counts.len(), 1, "{counts:?}");
    let window = counts[&key("shop", "api")].window();
    assert_eq!((window.runs, window.successes), (100, 90));
    assert!((window.uptime.unwrap() - 90.0 / 100.2).abs() < 1e-9);
    assert_eq!(window.average_latency_ms, Some(50.0));
    assert_eq!(Counts::default().window().uptime, None);
}

#[test]
fn errors_non_vectors_bad_json_and_too_many_series_are_refused() {
    let failed = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
    let keys = [key("shop", "api")];
    assert_eq!(
        parse(failed.as_bytes(), &keys, 10),
        Err(QueryError::Failed("parse error".into()))
    );
    let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
    assert!(matches!(
        parse(matrix.as_bytes(), &keys, 10),
        Err(QueryError::NotVector(_))
    ));
    for bad in [
        "",
        "<html>",
        "{\"status\":\"success\"}",
        "[1,2]",
        "{\"status\":1}",
    ] {
        assert!(parse(bad.as_bytes(), &keys, 10).is_err(), "{bad}");
    }
    let many = vec![series("shop", "api", "success", "1"); 11].join(",");
    assert_eq!(
        parse(answer(&many).as_bytes(), &keys, 10),
        Err(QueryError::TooManySeries(10))
    );
    let long = format!(r#"{{"status":"error","error":"{}"}}"#, "x".repeat(10_000));
    let Err(QueryError::Failed(error)) = parse(long.as_bytes(), &keys, 10) else {
        panic!("not refused");
    };
    assert_eq!(error.len(), 200, "a hostile error is cut");
}
