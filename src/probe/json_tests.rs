//! Unit tests of `expect.json`: each predicate, the empty-selection rules, number equality,
//! messages, and hostile bodies (deep, huge numbers, long strings, invalid UTF-8, not JSON).

use serde_json::{Value, json};
use serde_json_path::JsonPath;

use super::*;
use crate::probe::budget::BodyBudget;

fn check(path: &str, predicate: JsonPredicate) -> Vec<JsonCheck> {
    vec![JsonCheck {
        text: path.into(),
        path: JsonPath::parse(path).unwrap(),
        predicate,
    }]
}

fn regex(p: &str) -> regex::bytes::Regex {
    regex::bytes::Regex::new(p).unwrap()
}

fn actuator() -> Value {
    json!({"status": "UP", "components": {"db": {"status": "DOWN", "details": {"error": "timeout"}},
        "disk": {"status": "UP", "details": {"free": 1.0e9, "threshold": 10485760}}},
        "items": [{"ok": true}, {"ok": true}, {"ok": false}], "version": "2.7.1"})
}

fn parse_with(body: &[u8], budget: &BodyBudget) -> Result<Value, JsonError> {
    let mut reservation = budget.reserve();
    parse(body, &mut reservation)
}

#[test]
fn equals_compares_json_values_and_numbers_as_numbers() {
    let body = json!({"a": 1, "b": 1.0, "c": {"x": [1, "y"]}, "big": 18446744073709551615u64});
    let holds = |path: &str, want: Value| judge(&check(path, JsonPredicate::Equals(want)), &body);
    assert_eq!(holds("$.a", json!(1.0)), None);
    assert_eq!(holds("$.b", json!(1)), None);
    assert_eq!(holds("$.c", json!({"x": [1.0, "y"]})), None);
    assert_eq!(holds("$.big", json!(18446744073709551615u64)), None);
    assert_eq!(
        holds("$.a", json!("1")).unwrap(),
        r#"$.a is 1, expected "1""#
    );
    assert_eq!(
        holds("$.missing", json!(1)).unwrap(),
        "$.missing selects nothing, expected 1"
    );
}

#[test]
fn in_holds_when_every_node_is_one_of_the_values() {
    let body = actuator();
    let one_of = |path: &str| {
        judge(
            &check(path, JsonPredicate::In(vec![json!("UP"), json!("UNKNOWN")])),
            &body,
        )
    };
    assert_eq!(one_of("$.status"), None);
    assert_eq!(
        one_of("$.components.db.status").unwrap(),
        r#"$.components.db.status is "DOWN", expected one of ["UP","UNKNOWN"]"#
    );
    let m = one_of("$.components[*].status").unwrap();
    assert_eq!(
        m,
        r#"$.components[*].status (at $['components']['db']['status']) is "DOWN", expected one of ["UP","UNKNOWN"]"#
    );
}

#[test]
fn a_failure_among_many_nodes_is_named_by_position() {
    let mut items = vec![json!("UP"); 2000];
    items[1500] = json!("DOWN");
    let body = json!({"items": items});
    let m = judge(
        &check("$.items[*]", JsonPredicate::Equals(json!("UP"))),
        &body,
    )
    .unwrap();
    assert_eq!(
        m,
        r#"$.items[*] (node 1501 of 2000) is "DOWN", expected "UP""#
    );
}

#[test]
fn exists_true_needs_a_node_and_exists_false_needs_none() {
    let body = actuator();
    let exists = |path: &str, want: bool| judge(&check(path, JsonPredicate::Exists(want)), &body);
    assert_eq!(exists("$.items", true), None);
    assert_eq!(exists("$.nope", false), None);
    assert_eq!(
        exists("$.nope", true).unwrap(),
        "$.nope selects nothing, expected it to exist"
    );
    assert_eq!(
        exists("$.version", false).unwrap(),
        r#"$.version is "2.7.1", expected nothing there"#
    );
}

#[test]
fn matches_needs_strings_that_match() {
    let body = actuator();
    let matches =
        |path: &str, p: &str| judge(&check(path, JsonPredicate::Matches(regex(p))), &body);
    assert_eq!(matches("$.version", r"^2\."), None);
    assert_eq!(
        matches("$.version", r"^3\.").unwrap(),
        r#"$.version is "2.7.1", expected a string matching /^3\./"#
    );
    assert_eq!(
        matches("$.components.disk.details.threshold", ".").unwrap(),
        "$.components.disk.details.threshold is 10485760, a number, not a string: matches needs a string"
    );
    assert!(matches("$.none", ".").unwrap().contains("selects nothing"));
}

#[test]
fn count_bounds_the_number_of_nodes_and_allows_none() {
    let body = actuator();
    let count =
        |path: &str, min, max| judge(&check(path, JsonPredicate::Count { min, max }), &body);
    assert_eq!(count("$.items[*]", Some(1), Some(500)), None);
    assert_eq!(count("$.nothing[*]", Some(0), Some(0)), None);
    assert_eq!(
        count("$.items[?@.ok == false]", None, Some(0)).unwrap(),
        "$.items[?@.ok == false] selects 1 nodes, expected at most 0"
    );
    assert_eq!(
        count("$.items[*]", Some(4), None).unwrap(),
        "$.items[*] selects 3 nodes, expected at least 4"
    );
}

#[test]
fn every_assertion_must_hold_and_the_first_failure_is_named() {
    let body = actuator();
    let mut checks = check("$.status", JsonPredicate::Equals(json!("UP")));
    checks.extend(check(
        "$.components.db.status",
        JsonPredicate::Equals(json!("UP")),
    ));
    checks.extend(check("$.version", JsonPredicate::Equals(json!("9"))));
    let m = judge(&checks, &body).unwrap();
    assert!(m.starts_with("$.components.db.status is \"DOWN\""), "{m}");
}

#[test]
fn shown_values_are_cut_to_200_characters_and_sanitised() {
    let long = json!({"s": "x".repeat(1 << 20), "evil": "ok\n\u{1b}[2J\u{202e}"});
    let m = judge(&check("$.s", JsonPredicate::Equals(json!("y"))), &long).unwrap();
    assert!(m.chars().count() < 260, "{}", m.len());
    assert!(m.contains('…'));
    let m = judge(&check("$.evil", JsonPredicate::Equals(json!("y"))), &long).unwrap();
    assert!(
        !m.contains('\u{1b}') && !m.contains('\u{202e}') && !m.contains('\n'),
        "{m}"
    );
    assert_eq!(
        shown(&Value::Array(vec![json!(0); 1 << 16]))
            .chars()
            .count(),
        MAX_SHOWN
    );
}

#[test]
fn hostile_bodies_fail_with_a_message_never_a_panic() {
    let budget = BodyBudget::default();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (deep.into_bytes(), "recursion limit"),
        (b"{\"n\": 1e400}".to_vec(), "number out of range"),
        (b"{\"s\": \"\xff\xfe\"}".to_vec(), "invalid unicode"),
        (b"ok\netcd ok\n".to_vec(), "expected"),
        (b"".to_vec(), "EOF"),
        (b"{\"a\":1} trailing".to_vec(), "trailing"),
    ];
    for (body, words) in cases {
        let e = parse_with(&body, &budget).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, JsonError::Parse(_)), "{text}");
        assert!(text.starts_with("the body is not JSON"), "{text}");
        assert!(text.contains(words), "{text} lacks {words}");
    }
    let huge = parse_with(b"[123456789012345678901234567890, -1e308]", &budget).unwrap();
    assert_eq!(huge[0].as_f64(), Some(1.2345678901234568e29));
    let bom = parse_with(b"\xEF\xBB\xBF{\"a\":1}", &budget).unwrap();
    assert_eq!(bom, json!({"a": 1}));
    assert_eq!(budget.held(), 0, "reservations are returned");
}

#[test]
fn the_parsed_tree_is_charged_to_the_budget() {
    let zeros = format!("[{}0]", "0,".repeat(512 << 10));
    let budget = BodyBudget::new(64 << 20);
    let mut reservation = budget.reserve();
    let tree = parse(zeros.as_bytes(), &mut reservation).unwrap();
    let real = (tree.as_array().unwrap().capacity() * size_of::<Value>()) as u64;
    assert!(
        reservation.bytes() >= real,
        "{} < {real}",
        reservation.bytes()
    );
    assert!(budget.held() <= budget.limit());
    drop((tree, reservation));
    let small = BodyBudget::new(1 << 20);
    match parse_with(zeros.as_bytes(), &small) {
        Err(JsonError::Budget(wanted)) => assert!(wanted > 1 << 20),
        other => panic!("expected the budget to refuse, got {other:?}"),
    }
    assert_eq!(small.held(), 0);
}
