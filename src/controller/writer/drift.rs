//! A HealthCheck CRD older than the operator. kube answers a server-side apply that names a
//! field the installed CRD does not declare with HTTP 500: `failed to create typed patch object
//! (/; canary.dev/v1alpha1, Kind=HealthCheck): .status.probedBy: field not declared in schema`
//! (kubernetes#139253). Retrying that body fails forever and freezes every status; instead the
//! writer learns the fields from the answer, leaves them out of later writes (and retries at
//! once without them), and says so once: an ERROR log naming them and the fix, and the gauge
//! `canary_status_fields_dropped`. Now and then it tries the full status again, so upgrading the
//! CRD brings the fields back without a restart.

use std::{
    collections::BTreeSet,
    sync::Mutex,
    time::{Duration, Instant},
};

use prometheus::IntGauge;
use serde_json::Value;

use crate::lock;

/// How long learned fields are left out before a write tries the full status again.
const RECHECK: Duration = Duration::from_secs(600);
/// The end of each of kube's per-field errors.
const UNDECLARED: &str = ": field not declared in schema";

/// One step of a status field path: a field, or any item of a list (a field undeclared in one
/// item of `conditions` is undeclared in all of them).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Field(String),
    AnyItem,
}

/// A field below `status`, e.g. `lastResult.grpc` or `conditions[*].observedGeneration`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StatusField(Vec<Step>);

impl std::fmt::Display for StatusField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("status")?;
        for step in &self.0 {
            match step {
                Step::Field(name) => write!(f, ".{name}")?,
                Step::AnyItem => f.write_str("[*]")?,
            }
        }
        Ok(())
    }
}

/// The status fields kube's answer names as undeclared (paths outside `status`, and `status`
/// itself, which the writer cannot leave out, are not returned).
pub fn undeclared_status_fields(message: &str) -> Vec<StatusField> {
    let Some((_, errors)) = message.split_once("failed to create typed patch object") else {
        return vec![];
    };
    (errors.lines())
        .filter_map(|line| line.trim().strip_suffix(UNDECLARED))
        .filter_map(|path| path.rsplit_once("): ").map_or(Some(path), |(_, p)| Some(p)))
        .filter_map(|path| parse(path.trim()))
        .collect()
}

/// An smd path (`.status.conditions[type="Ready"].observedGeneration`) below `.status`.
fn parse(path: &str) -> Option<StatusField> {
    let mut steps = vec![];
    let mut rest = path.strip_prefix(".status")?;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            steps.push(Step::Field(after[..end].to_string()));
            rest = &after[end..];
        } else if rest.starts_with('[') {
            rest = &rest[closing_bracket(rest)? + 1..];
            steps.push(Step::AnyItem);
        } else {
            return None;
        }
    }
    matches!(steps.last(), Some(Step::Field(_))).then_some(StatusField(steps))
}

/// The index of the `]` closing the `[` at the start of `text`, skipping JSON strings.
fn closing_bracket(text: &str) -> Option<usize> {
    let (mut in_string, mut escaped) = (false, false);
    for (i, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            ']' if !in_string => return Some(i),
            _ => {}
        }
    }
    None
}

/// Removes `field` from a status (every list item on the way).
fn remove(value: &mut Value, steps: &[Step]) {
    match (steps, value) {
        ([Step::Field(name)], Value::Object(map)) => drop(map.remove(name)),
        ([Step::Field(name), rest @ ..], Value::Object(map)) => {
            if let Some(child) = map.get_mut(name) {
                remove(child, rest);
            }
        }
        ([Step::AnyItem, rest @ ..], Value::Array(items)) => {
            items.iter_mut().for_each(|item| remove(item, rest));
        }
        _ => {}
    }
}

/// What one refused write taught.
#[derive(Debug)]
pub struct Learned {
    /// The answer named undeclared status fields.
    pub named: bool,
    /// Those of them that were not left out yet.
    pub fresh: Vec<StatusField>,
}

#[derive(Default)]
struct State {
    /// Left out of writes now.
    dropped: BTreeSet<StatusField>,
    /// Ever reported in an ERROR log (each field is reported once).
    reported: BTreeSet<StatusField>,
    /// When the full status was last tried.
    tried_full: Option<Instant>,
}

/// What the writer knows about the installed CRD.
pub struct Drift {
    state: Mutex<State>,
    gauge: IntGauge,
}

impl Drift {
    pub fn new(gauge: IntGauge) -> Self {
        Self {
            state: Mutex::default(),
            gauge,
        }
    }

    /// `status` (JSON) for the next write: without the dropped fields, except when a recheck
    /// of the full status is due (then `full` is true).
    pub fn prepare(&self, mut status: Value) -> (Value, bool) {
        let mut state = lock(&self.state);
        let due = (state.tried_full).is_none_or(|at| at.elapsed() >= RECHECK);
        if state.dropped.is_empty() || due {
            state.tried_full = Some(Instant::now());
            return (status, true);
        }
        for field in &state.dropped {
            remove(&mut status, &field.0);
        }
        (status, false)
    }

    /// Learns the undeclared fields named in a refused write's `message`: the fields it names,
    /// and those of them not left out before.
    pub fn learn(&self, message: &str) -> Learned {
        let named = undeclared_status_fields(message);
        let mut state = lock(&self.state);
        let fresh: Vec<StatusField> = (named.iter())
            .filter(|f| state.dropped.insert((*f).clone()))
            .cloned()
            .collect();
        self.gauge
            .set(i64::try_from(state.dropped.len()).unwrap_or(i64::MAX));
        Learned {
            named: !named.is_empty(),
            fresh,
        }
    }

    /// Logs, once per field, the fields learned during one write: one ERROR naming them all.
    pub fn report(&self, learned: &[StatusField]) {
        let mut state = lock(&self.state);
        let new: Vec<String> = (learned.iter())
            .filter(|f| state.reported.insert((*f).clone()))
            .map(ToString::to_string)
            .collect();
        if new.is_empty() {
            return;
        }
        let fields = new.join(", ");
        tracing::error!(
            %fields,
            "the installed HealthCheck CRD is older than this operator and does not declare {fields}: \
             status writes leave them out until the CRD is upgraded \
             (kubectl apply -f crds/, or the Helm chart with crds.enabled=true)"
        );
    }

    /// A write of the full status succeeded: the CRD declares every field now.
    pub fn full_write_succeeded(&self) {
        let mut state = lock(&self.state);
        if state.dropped.is_empty() {
            return;
        }
        let fields: Vec<String> = state.dropped.iter().map(ToString::to_string).collect();
        tracing::info!(fields = %fields.join(", "), "the HealthCheck CRD declares these status fields now; writing them again");
        state.dropped.clear();
        state.reported.clear();
        self.gauge.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn undeclared_fields_are_read_from_kubes_answer() {
        let one = "failed to create typed patch object (/; canary.dev/v1alpha1, Kind=HealthCheck): \
                   .status.probedBy: field not declared in schema";
        let fields: Vec<String> = (undeclared_status_fields(one).iter())
            .map(ToString::to_string)
            .collect();
        assert_eq!(fields, ["status.probedBy"]);
        let many = "failed to create typed patch object (/; canary.dev/v1alpha1, Kind=HealthCheck): errors:\n  \
                    .status.conditions[type=\"Ready\"].observedGeneration: field not declared in schema\n  \
                    .status.lastResult.grpc: field not declared in schema\n  \
                    .status: field not declared in schema\n  \
                    .spec.x: field not declared in schema";
        let fields: Vec<String> = (undeclared_status_fields(many).iter())
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            fields,
            [
                "status.conditions[*].observedGeneration",
                "status.lastResult.grpc"
            ]
        );
        assert!(undeclared_status_fields("conflict: .status.probedBy").is_empty());
    }

    #[test]
    fn learned_fields_are_left_out_until_a_recheck_is_due() {
        let gauge = IntGauge::new("g", "g").unwrap();
        let drift = Drift::new(gauge.clone());
        let status = json!({"probedBy": "a", "conditions": [{"type": "Ready", "observedGeneration": 1}], "n": 1});
        assert_eq!(drift.prepare(status.clone()), (status.clone(), true));
        let message = "failed to create typed patch object (/; g/v, Kind=K): errors:\n  \
                       .status.probedBy: field not declared in schema\n  \
                       .status.conditions[type=\"Ready\"].observedGeneration: field not declared in schema";
        assert_eq!(drift.learn(message).fresh.len(), 2);
        let again = drift.learn(message);
        assert!(
            again.named && again.fresh.is_empty(),
            "nothing new the second time"
        );
        assert_eq!(gauge.get(), 2);
        let (stripped, full) = drift.prepare(status.clone());
        assert_eq!(
            (stripped, full),
            (json!({"conditions": [{"type": "Ready"}], "n": 1}), false)
        );
        lock(&drift.state).tried_full = Some(Instant::now() - RECHECK);
        assert_eq!(drift.prepare(status.clone()), (status, true));
        drift.full_write_succeeded();
        assert_eq!(gauge.get(), 0);
    }
}
