use std::time::Duration;

use super::*;
use crate::api::compile_cel;
use crate::probe::budget::BodyBudget;

fn input(body: &str, headers: &[(&str, &str)], budget: &BodyBudget) -> CelInput {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    CelInput {
        body: body.as_bytes().to_vec(),
        reservation: budget.reserve(),
        headers: header_pairs(&map),
        status: 200,
    }
}

fn run(text: &str, body: &str, headers: &[(&str, &str)]) -> Result<(), CelFailure> {
    let expr = compile_cel(text).unwrap();
    let budget = BodyBudget::default();
    let stop = Instant::now() + Duration::from_secs(30);
    evaluate(&expr, input(body, headers, &budget), stop).map_err(|failed| match failed {
        Failed::Cel(why) => why,
        Failed::Budget(failure) => panic!("{}", failure.message),
    })
}

const HEALTH: &str = r#"{"status":"UP","items":[1,2,3],"db":{"status":"DOWN"}}"#;

#[test]
fn true_passes_and_false_fails() {
    run("body.status == 'UP' && size(body.items) > 0", HEALTH, &[]).unwrap();
    run(
        "body.items.all(x, x > 0) && body.items.exists(x, x == 3)",
        HEALTH,
        &[],
    )
    .unwrap();
    assert_eq!(
        run("body.db.status == 'UP'", HEALTH, &[]),
        Err(CelFailure::False)
    );
}

#[test]
fn errors_and_non_bools_fail_with_what_happened() {
    match run("body.missing == 'UP'", HEALTH, &[]) {
        Err(CelFailure::Error(text)) => assert!(text.contains("missing"), "{text}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        run("body.status", HEALTH, &[]),
        Err(CelFailure::NotBool("the string \"UP\"".into()))
    );
    assert_eq!(
        run("body.items", HEALTH, &[]),
        Err(CelFailure::NotBool("a list of 3".into()))
    );
    assert_eq!(
        run("status + 1", HEALTH, &[]),
        Err(CelFailure::NotBool("the int 201".into()))
    );
}

#[test]
fn headers_are_lower_case_with_their_first_value_and_status_is_an_int() {
    let headers = [
        ("X-Version", "2"),
        ("x-version", "3"),
        ("Content-Type", "text/plain"),
    ];
    run("headers['x-version'] == '2' && status == 200", "", &headers).unwrap();
    run(
        "!('X-Version' in headers) && headers['content-type'] == 'text/plain'",
        "",
        &headers,
    )
    .unwrap();
}

#[test]
fn credential_headers_are_redacted() {
    let headers = [("Set-Cookie", "session=hunter2")];
    run("headers['set-cookie'] == '[redacted]'", "", &headers).unwrap();
    match run("headers['set-cookie'] + 1 == 2", "", &headers) {
        Err(CelFailure::Error(text)) => assert!(!text.contains("hunter2"), "{text}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_body_that_is_not_json_is_its_text() {
    let readyz = "[+]ping ok\n[-]etcd failed\nreadyz check failed\n";
    run("body.contains('[+]ping ok')", readyz, &[]).unwrap();
    assert_eq!(
        run("!body.contains('[-]')", readyz, &[]),
        Err(CelFailure::False)
    );
    run("body == ''", "", &[]).unwrap();
    // Invalid UTF-8 is replaced, never a panic.
    let expr = compile_cel("body.startsWith('a')").unwrap();
    let budget = BodyBudget::default();
    let mut bad = input("", &[], &budget);
    bad.body = b"a\xff\xfe".to_vec();
    assert!(evaluate(&expr, bad, Instant::now() + Duration::from_secs(5)).is_ok());
}

#[test]
fn a_loop_stops_at_the_deadline() {
    let items: Vec<String> = (0..3000).map(|i| i.to_string()).collect();
    let body = format!(r#"{{"items":[{}]}}"#, items.join(","));
    let expr = compile_cel("body.items.all(x, body.items.all(y, y != -1))").unwrap();
    let budget = BodyBudget::default();
    let started = Instant::now();
    let stop = started + Duration::from_millis(200);
    let verdict = evaluate(&expr, input(&body, &[], &budget), stop);
    // 9 million iterations take far longer than 200 ms; the tick ends them within one step.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    match verdict {
        Err(Failed::Cel(why)) => assert_eq!(why, CelFailure::Deadline),
        _ => panic!("expected the deadline"),
    }
}

#[test]
fn conversion_is_charged_to_the_budget() {
    let items = vec!["0"; 100_000].join(",");
    let body = format!("[{items}]");
    let expr = compile_cel("size(body) > 0").unwrap();
    // Enough for the buffer and the parsed tree, not for the CEL values on top.
    let budget = BodyBudget::new(8 << 20);
    let verdict = evaluate(
        &expr,
        input(&body, &[], &budget),
        Instant::now() + Duration::from_secs(30),
    );
    match verdict {
        Err(Failed::Budget(failure)) => {
            assert_eq!(failure.reason, Reason::BodyBudgetExceeded);
            assert!(
                failure.message.starts_with("cel needed"),
                "{}",
                failure.message
            );
        }
        _ => panic!("expected the budget to be spent"),
    }
    assert_eq!(budget.held(), 0, "the reservation is returned");
    let roomy = BodyBudget::new(64 << 20);
    assert!(
        evaluate(
            &expr,
            input(&body, &[], &roomy),
            Instant::now() + Duration::from_secs(30)
        )
        .is_ok()
    );
}

#[test]
fn values_an_expression_copies_are_charged_and_stop_it() {
    assert!(
        heap::net().is_some(),
        "the meter reads jemalloc's counters: run with `--features jemalloc` (scripts/test does)"
    );
    let body = format!("[{}]", vec!["0"; 100_000].join(","));
    // Each `body` in a list literal is a deep copy (~3 MiB here): 40 of them pass 32 MiB.
    let copies = vec!["body"; 40].join(", ");
    let expr = compile_cel(&format!("size([{copies}]) == 40")).unwrap();
    let budget = BodyBudget::new(32 << 20);
    let stop = Instant::now() + Duration::from_secs(300);
    match evaluate(&expr, input(&body, &[], &budget), stop) {
        Err(Failed::Budget(failure)) => {
            assert_eq!(failure.reason, Reason::BodyBudgetExceeded);
            let message = &failure.message;
            assert!(
                message.contains("values the expression copied"),
                "{message}"
            );
        }
        Err(Failed::Cel(why)) => panic!("expected the budget to stop it, got {why}"),
        Ok(()) => panic!("expected the budget to stop it"),
    }
    assert_eq!(budget.held(), 0, "the reservation is returned");
    // `map` copies too: one body per item.
    let expr = compile_cel("body.map(x, body).size() > 0").unwrap();
    let verdict = evaluate(&expr, input(&body, &[], &budget), stop);
    assert!(
        matches!(verdict, Err(Failed::Budget(_))),
        "map(x, body) stopped"
    );
    // A few copies within the budget pass.
    let expr = compile_cel("size([body, body]) == 2").unwrap();
    let roomy = BodyBudget::new(64 << 20);
    assert!(evaluate(&expr, input(&body, &[], &roomy), stop).is_ok());
}

#[test]
fn messages_name_the_expression_cut() {
    let long = format!("body.a == '{}'", "x".repeat(300));
    let text = message(&long, &CelFailure::False);
    assert!(text.starts_with("cel `body.a == 'xxx"), "{text}");
    assert!(text.ends_with("was false"), "{text}");
    assert!(text.chars().count() < 120, "{text}");
}

#[tokio::test]
async fn a_check_never_has_two_evaluations_at_once() {
    let items: Vec<String> = (0..3000).map(|i| i.to_string()).collect();
    let body = format!(r#"{{"items":[{}]}}"#, items.join(","));
    let run = CelRun::new(Arc::new(
        compile_cel("body.items.all(x, body.items.all(y, y != -1))").unwrap(),
    ));
    let budget = BodyBudget::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let first = judge(&run, input(&body, &[], &budget), deadline);
    let second = async {
        // Awaited condition: the first evaluation holds the check's latch.
        while !run.busy() {
            tokio::task::yield_now().await;
        }
        let started = tokio::time::Instant::now();
        let failure = judge(&run, input(&body, &[], &budget), deadline)
            .await
            .unwrap_err();
        (failure, started.elapsed())
    };
    let (first, (second, waited)) = tokio::join!(first, second);
    assert!(
        second.message.contains("still running"),
        "{}",
        second.message
    );
    assert!(waited < Duration::from_millis(500), "{waited:?}");
    let first = first.unwrap_err();
    assert_eq!(first.reason, Reason::BodyMismatch);
    assert!(
        first.message.contains("did not finish"),
        "{}",
        first.message
    );
}
