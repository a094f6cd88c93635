//! The Prometheus text exposition parsed into samples, and the names of every metric family
//! Canary exposes, read from its registry (no hand-written list to fall behind).

use std::collections::{BTreeMap, BTreeSet};

use canary_operator::metrics::Metrics;

/// Every metric family Canary exposes: the families it registers and those of the process
/// collector, as the registry itself names them.
pub fn names() -> BTreeSet<String> {
    let metrics = Metrics::new().expect("the metrics registry builds");
    let mut names: BTreeSet<String> = metrics.family_names().iter().cloned().collect();
    let exposition = metrics.render().expect("the registry renders");
    names.extend(
        (exposition.lines())
            .filter_map(|l| l.strip_prefix("# TYPE ")?.split_whitespace().next())
            .map(str::to_string),
    );
    names
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of an exposition (comments skipped).
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (series, value) = match line.find('{') {
        Some(_) => {
            let close = line.rfind('}')?;
            (&line[..=close], line[close + 1..].trim())
        }
        None => line.split_once(' ')?,
    };
    let value = value.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
        None => (series, BTreeMap::new()),
    };
    Some(Sample {
        name: name.trim().to_string(),
        labels,
        value,
    })
}

fn parse_labels(mut text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if text.is_empty() {
            return Some(labels);
        }
        let (key, rest) = text.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(key.trim().to_string(), value);
        text = &rest[end + 1..];
    }
}

/// Samples named `name` carrying all of `labels`.
pub fn matching<'a>(
    all: &'a [Sample],
    name: &'a str,
    labels: &'a [(&'a str, &'a str)],
) -> impl Iterator<Item = &'a Sample> + 'a {
    all.iter().filter(move |s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

/// The value of the one sample `name{labels...}`, if present.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let all = samples(text);
    matching(&all, name, labels).next().map(|s| s.value)
}

/// Sum over the samples `name{labels...}` (0 when none).
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let all = samples(text);
    matching(&all, name, labels).map(|s| s.value).sum()
}

/// Whether any sample (of any name) carries all of `labels`.
pub fn any_series_with(text: &str, labels: &[(&str, &str)]) -> bool {
    samples(text).iter().any(|s| {
        labels
            .iter()
            .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

#[test]
fn names_cover_canary_families_and_the_process_collector() {
    let names = names();
    for name in ["canary_check_success", "canary_checks", "process_open_fds"] {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
}

#[test]
fn parses_labels_escapes_and_values() {
    let text = "# HELP x y\nfoo{a=\"1\",b=\"q\\\"x\"} 2.5\nbar 3\nh_bucket{le=\"+Inf\"} 4\n";
    let all = samples(text);
    assert_eq!(all.len(), 3);
    assert_eq!(value(text, "foo", &[("b", "q\"x")]), Some(2.5));
    assert_eq!(value(text, "bar", &[]), Some(3.0));
    assert_eq!(sum(text, "h_bucket", &[("le", "+Inf")]), 4.0);
    assert!(any_series_with(text, &[("a", "1")]));
}
