//! What users see in kubectl: the operator publishes its Events through events.k8s.io/v1, and
//! `kubectl describe` and `kubectl get events` read core/v1; both show a failing check's
//! Warning Event, because Events are one store seen through two APIs.

use std::time::Duration;

use canary_test_harness::{
    cluster::{http_check, ready},
    targets::{Reply, TestServer, Transport},
    wait::eventually,
};
use serde_json::json;

use crate::Scenario;

/// The text of column `name` in `row` of a table whose columns start where `header` names them
/// (kubectl aligns both with a tabwriter).
fn column<'a>(header: &str, row: &'a str, name: &str) -> &'a str {
    let start = header
        .find(name)
        .unwrap_or_else(|| panic!("no {name} in {header}"));
    let end = (header[start + name.len()..].find(|c: char| !c.is_whitespace()))
        .map_or(row.len(), |gap| start + name.len() + gap);
    row.get(start..end.min(row.len()))
        .unwrap_or_default()
        .trim()
}

/// The header and the row about `reason` of the `Events:` table in `kubectl describe` output.
fn describe_events<'a>(out: &'a str, reason: &str) -> Option<(&'a str, &'a str)> {
    let (_, events) = out.split_once("\nEvents:\n")?;
    let header = events.lines().next()?;
    let row = events
        .lines()
        .find(|l| column(header, l, "Reason") == reason)?;
    Some((header, row))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_and_get_events_show_a_failing_checks_warning() {
    let down = TestServer::start(Transport::Plain, |_| Reply::status(500, "down")).await;
    let ns = "describe";
    let checks = [http_check(ns, "web", &down.url("/"), json!({}))];
    let s = Scenario::start(ns, &[], &checks).await;
    let check = s.watch.ready_as("web", "False", "UnexpectedStatus").await;
    let (_, _, message) = ready(&check).expect("a Ready condition");

    let describe = ["describe", "healthchecks.canary.dev", "-n", ns, "web"];
    let every = Duration::from_millis(300);
    let what = "the Warning Event in kubectl describe";
    let out = eventually(Duration::from_secs(15), what, every, async || {
        let out = s.cluster.kubectl.ok(&describe).await;
        match describe_events(&out, "UnexpectedStatus") {
            Some(_) => Ok(out),
            None => Err(out),
        }
    })
    .await;
    let (header, row) = describe_events(&out, "UnexpectedStatus").expect("the row");
    assert_eq!(column(header, row, "Type"), "Warning", "{out}");
    assert_eq!(column(header, row, "From"), "canary-operator", "{out}");
    assert_eq!(column(header, row, "Message"), message, "{out}");

    let table = s.cluster.kubectl.ok(&["get", "events", "-n", ns]).await;
    let header = table.lines().next().unwrap_or_default();
    let row = (table.lines())
        .find(|l| column(header, l, "REASON") == "UnexpectedStatus")
        .unwrap_or_else(|| panic!("kubectl get events lists no UnexpectedStatus: {table}"));
    assert_eq!(column(header, row, "TYPE"), "Warning", "{table}");
    assert_eq!(column(header, row, "OBJECT"), "healthcheck/web", "{table}");

    let published = (s.cluster.operator_requests().into_iter())
        .filter(|r| r.resource == "events" && r.verb == "create")
        .map(|r| r.api_group)
        .collect::<Vec<_>>();
    assert_eq!(
        published,
        ["events.k8s.io"],
        "written through events.k8s.io/v1 only"
    );
}
