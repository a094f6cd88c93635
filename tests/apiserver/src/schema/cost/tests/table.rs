//! The table of `TestCostEstimation` in apiextensions-apiserver's `schema/cel/compilation_test.go`:
//! each schema once without bounds, once with `maxItems`/`maxProperties`/`maxLength` set to the
//! case's number, and the cost kube expects of the rule on it.

use super::super::estimate_expression;
use serde_json::{Value, json};

/// What kube's test expects: an exact cost, or at least a cost.
#[derive(Debug, Clone, Copy)]
enum Want {
    Exactly(u64),
    AtLeast(u64),
}
use Want::{AtLeast, Exactly};

/// A schema, given the bound to set (`None`: unbounded).
type Gen = fn(Option<i64>) -> Value;

fn with(mut schema: Value, key: &str, max: Option<i64>) -> Value {
    if let Some(max) = max {
        schema[key] = json!(max);
    }
    schema
}

/// kube's `parseRuleType`: a type name, a string format, or int-or-string.
fn scalar(kind: &str) -> Value {
    match kind {
        "duration" | "date" | "date-time" => json!({"type": "string", "format": kind}),
        "int-or-string" => json!({"x-kubernetes-int-or-string": true}),
        _ => json!({"type": kind}),
    }
}

fn object_with_required() -> Value {
    json!({"type": "object", "required": ["required"],
        "properties": {"required": {"type": "string"}, "optional": {"type": "string"}}})
}

fn array_of(items: Value, max: Option<i64>) -> Value {
    with(json!({"type": "array", "items": items}), "maxItems", max)
}

fn map_of(values: Value, max: Option<i64>) -> Value {
    with(
        json!({"type": "object", "additionalProperties": values}),
        "maxProperties",
        max,
    )
}

fn string_of(max: Option<i64>) -> Value {
    with(json!({"type": "string"}), "maxLength", max)
}

macro_rules! of {
    ($wrap:ident, $kind:literal) => {{
        let f: Gen = |m| $wrap(scalar($kind), m);
        f
    }};
}

#[rustfmt::skip]
fn cases() -> Vec<(&'static str, Gen, &'static str, Want, i64, Want)> {
    let arrays: Gen = |m| array_of(json!({"type": "array", "items": {"type": "number"}}), m);
    let objects: Gen = |m| array_of(object_with_required(), m);
    let maps: Gen = |m| array_of(json!({"type": "object", "additionalProperties": {"type": "number"}}), m);
    let nested: Gen = |m| map_of(string_of(m), m);
    let all_max: Gen = |m| array_of(map_of(with(object_with_required(), "maxProperties", m), m), m);
    let one_max: Gen = |m| array_of(map_of(object_with_required(), m), None);
    let object_map: Gen = |m| map_of(object_with_required(), m);
    let map_map: Gen = |m| map_of(map_of(scalar("number"), None), m);
    let array_map: Gen = |m| map_of(array_of(scalar("number"), None), m);
    let string: Gen = string_of;
    let bytes: Gen = |m| with(json!({"type": "string", "format": "byte"}), "maxLength", m);
    let strings: Gen = |m| array_of(string_of(m), m);
    let enums: Gen = |m| with(json!({"type": "string", "enum": ["A", "B", "C", "LongValue"]}), "maxLength", m);
    let replace: Gen = |m| json!({"type": "object", "properties": {"str": string_of(m),
        "before": string_of(Some(2)), "after": string_of(Some(4))}});
    let split: Gen = |m| json!({"type": "object", "properties": {"str": string_of(m),
        "separator": string_of(m)}});
    let all = "self.all(x, true)";
    vec![
        ("number array with all", of!(array_of, "number"), all, Exactly(4718591), 10, Exactly(32)),
        ("string array with all", of!(array_of, "string"), all, Exactly(3145727), 20, Exactly(62)),
        ("boolean array with all", of!(array_of, "boolean"), all, Exactly(1887437), 5, Exactly(17)),
        ("array of number arrays with all", arrays, all, Exactly(3145727), 100, Exactly(302)),
        ("array of objects with all", objects, all, Exactly(555128), 50, Exactly(152)),
        ("map of numbers with all", of!(map_of, "number"), all, Exactly(1348169), 10, Exactly(32)),
        ("map of strings with all", of!(map_of, "string"), all, Exactly(1179647), 3, Exactly(11)),
        ("map of booleans with all", of!(map_of, "boolean"), all, Exactly(943718), 100, Exactly(302)),
        ("string with contains", string, "self.contains('test')", Exactly(314574), 10, Exactly(5)),
        ("string with startsWith", string, "self.startsWith('test')", Exactly(2), 15, Exactly(2)),
        ("string with endsWith", string, "self.endsWith('test')", Exactly(2), 30, Exactly(2)),
        ("concat string", string, r#"size(self + "hello") > size("hello")"#, Exactly(314578), 4, Exactly(7)),
        ("index of array with numbers", of!(array_of, "number"), "self[1] == 0.0", Exactly(2), 5000, Exactly(2)),
        ("index of array with strings", of!(array_of, "string"), "self[1] == self[1]", Exactly(314577), 8, Exactly(314577)),
        ("O(n^2) loop with numbers", of!(array_of, "number"), "self.all(x, self.all(y, true))", AtLeast(100_000_000), 10, Exactly(352)),
        ("O(n^3) loop with numbers", of!(array_of, "number"), "self.all(x, self.all(y, self.all(z, true)))", AtLeast(100_000_000), 10, Exactly(3552)),
        ("regex matches simple", string, r#"self.matches("x")"#, Exactly(314574), 50, Exactly(22)),
        ("regex matches empty string", string, r#""".matches("(((((((((())))))))))[0-9]")"#, Exactly(7), 10, Exactly(7)),
        ("regex matches empty regex", string, r#"self.matches("")"#, Exactly(1), 100, Exactly(1)),
        ("map of strings with value length", nested, "self.all(x, x.contains(self[x]))", Exactly(2752507), 10, Exactly(72)),
        ("set array maxLength to zero", of!(array_of, "number"), "self[3] == 0.0", Exactly(2), 0, Exactly(2)),
        ("set map maxLength to zero", of!(map_of, "number"), r#"self["x"] == 0.0"#, Exactly(2), 0, Exactly(2)),
        ("set string maxLength to zero", string, r#"self == "x""#, Exactly(2), 0, Exactly(1)),
        ("set bytes maxLength to zero", bytes, r#"self == b"x""#, Exactly(2), 0, Exactly(1)),
        ("set maxLength greater than estimated", of!(array_of, "number"), "self.all(x, x == 0.0)", Exactly(6291454), 3 * 1024 * 2048, Exactly(25165826)),
        ("nested types with all supporting max", all_max, r#"self.all(x, x["y"].required == "z")"#, Exactly(7340027), 10, Exactly(72)),
        ("nested types with one supporting max", one_max, r#"self.all(x, x["y"].required == "z")"#, Exactly(7340027), 10, Exactly(7340027)),
        ("int-or-string array with all", of!(array_of, "int-or-string"), all, Exactly(4718591), 10, Exactly(32)),
        ("index of array with int-or-strings", of!(array_of, "int-or-string"), "self[0] == 5", Exactly(3), 10, Exactly(3)),
        ("index of array with booleans", of!(array_of, "boolean"), "self[0] == false", Exactly(2), 25, Exactly(2)),
        ("index of array of objects", objects, "self[0] == null", Exactly(2), 422, Exactly(2)),
        ("index of array of array of numbers", arrays, "self[0][0] == -1.0", Exactly(3), 51, Exactly(3)),
        ("array of number maps with all", maps, "self.all(x, x.y == 25.2)", Exactly(6291452), 12, Exactly(74)),
        ("index of array of number maps", maps, "self[0].x > 2.0", Exactly(4), 3000, Exactly(4)),
        ("duration array with all", of!(array_of, "duration"), all, Exactly(2359295), 5, Exactly(17)),
        ("index of duration array", of!(array_of, "duration"), "self[0].getHours() == 2", Exactly(4), 525, Exactly(4)),
        ("date array with all", of!(array_of, "date"), all, Exactly(725936), 15, Exactly(47)),
        ("index of date array", of!(array_of, "date"), "self[2].getDayOfMonth() == 13", Exactly(4), 42, Exactly(4)),
        ("date-time array with all", of!(array_of, "date-time"), all, Exactly(428963), 25, Exactly(77)),
        ("index of date-time array", of!(array_of, "date-time"), "self[2].getMinutes() == 45", Exactly(4), 99, Exactly(4)),
        ("map of int-or-strings with all", of!(map_of, "int-or-string"), all, Exactly(1348169), 15, Exactly(47)),
        ("map of objects with all", object_map, all, Exactly(428963), 20, Exactly(62)),
        ("map of number maps with all", map_map, all, Exactly(1179647), 10, Exactly(32)),
        ("map of number arrays with all", array_map, all, Exactly(1179647), 25, Exactly(77)),
        ("map of durations with all", of!(map_of, "duration"), all, Exactly(1048577), 5, Exactly(17)),
        ("map of dates with all", of!(map_of, "date"), all, Exactly(524288), 10, Exactly(32)),
        ("map of date-times with all", of!(map_of, "date-time"), all, Exactly(349526), 25, Exactly(77)),
        ("extended library regex find", string, "self.find('[0-9]+') == ''", Exactly(629147), 10, Exactly(11)),
        ("extended library join", strings, "self.join(' ') == 'aa bb'", Exactly(329853068905), 10, Exactly(43)),
        ("extended library isSorted", strings, "self.isSorted() == true", Exactly(329854432052), 10, Exactly(52)),
        ("extended library replace", replace, "self.str.replace(self.before, self.after) == 'does not matter'", Exactly(629154), 4, Exactly(12)),
        ("extended library split", split, "self.str.split(self.separator) == []", Exactly(629160), 10, Exactly(22)),
        ("extended library lowerAscii", string, "self.lowerAscii() == 'lower!'", Exactly(314575), 10, Exactly(6)),
        ("check cost of size call", of!(map_of, "integer"), "oldSelf.size() == self.size()", Exactly(5), 10, Exactly(5)),
        ("check cost of timestamp comparison", of!(map_of, "date-time"), r#"self["a"] == self["b"]"#, Exactly(8), 7, Exactly(8)),
        ("check cost of duration comparison", of!(map_of, "duration"), r#"self["c"] == self["d"]"#, Exactly(8), 42, Exactly(8)),
        ("enums with maxLength equals to the longest value", enums, "self.contains('A')", Exactly(2), 1000, Exactly(401)),
    ]
}

fn assert_cost(name: &str, schema: &Value, rule: &str, want: Want) {
    let got = estimate_expression(schema, rule).unwrap_or_else(|e| panic!("{name}: {e}"));
    match want {
        Exactly(n) => assert_eq!(got, n, "{name}: {rule}"),
        AtLeast(n) => assert!(got >= n, "{name}: {rule}: {got} < {n}"),
    }
}

#[test]
fn costs_match_kubes_cost_estimation_table() {
    let cases = cases();
    assert_eq!(cases.len(), 57);
    for (name, generate, rule, unbounded, max, bounded) in cases {
        assert_cost(name, &generate(None), rule, unbounded);
        assert_cost(
            &format!("{name} (max {max})"),
            &generate(Some(max)),
            rule,
            bounded,
        );
    }
}
