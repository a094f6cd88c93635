//! A CheckDiscovery's next status, decided without I/O: `observedGeneration`, `generated`, the
//! first skips, and the conditions `Ready`, `Truncated` and `SourceUnavailable`. A condition's
//! `lastTransitionTime` moves only when its status does, so an unchanged outcome is an
//! unchanged status and is not written (a write would trigger the watch, and another pass).

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{CheckDiscoveryStatus, DiscoverySkip, MAX_STATUS_SKIPS};

/// Condition types.
pub const READY: &str = "Ready";
pub const TRUNCATED: &str = "Truncated";
pub const SOURCE_UNAVAILABLE: &str = "SourceUnavailable";

/// Reasons (closed set; docs/discovery.md lists them).
pub const GENERATED: &str = "Generated";
pub const INVALID_SPEC: &str = "InvalidSpec";
pub const WRITE_FAILED: &str = "WriteFailed";
pub const MAX_CHECKS: &str = "MaxChecks";
pub const WITHIN_MAX_CHECKS: &str = "WithinMaxChecks";
pub const CRD_NOT_INSTALLED: &str = "CRDNotInstalled";
pub const SERVED: &str = "Served";

/// What one pass over a discovery came to.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Outcome {
    /// The spec or template is invalid: nothing was generated or changed.
    Invalid(String),
    Derived(Derived),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Derived {
    /// Checks derived (after `maxChecks`).
    pub generated: usize,
    pub skips: Vec<DiscoverySkip>,
    pub truncated: usize,
    pub max_checks: i32,
    /// Source kinds the discovery reads whose API is not served.
    pub unavailable: BTreeSet<&'static str>,
    /// Writes that failed, and the first error.
    pub failed: usize,
    pub first_error: Option<String>,
    /// Desired names held by checks that are not this discovery's.
    pub foreign: Vec<String>,
}

/// The status after `outcome`, keeping transition times of conditions whose status stayed.
pub(super) fn next_status(
    prev: Option<&CheckDiscoveryStatus>,
    generation: Option<i64>,
    outcome: &Outcome,
    now: &Time,
) -> CheckDiscoveryStatus {
    let prev_conditions = prev.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let condition = |type_: &str, status: bool, reason: &str, message: String| {
        let status = if status { "True" } else { "False" }.to_string();
        let since = (prev_conditions.iter())
            .find(|c| c.type_ == type_ && c.status == status)
            .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
        Condition {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: since,
        }
    };
    let derived = match outcome {
        Outcome::Invalid(message) => {
            let mut status = prev.cloned().unwrap_or_default();
            status.observed_generation = generation;
            let ready = condition(READY, false, INVALID_SPEC, message.clone());
            status.conditions.retain(|c| c.type_ != READY);
            status.conditions.insert(0, ready);
            return status;
        }
        Outcome::Derived(derived) => derived,
    };
    let mut conditions = vec![ready(derived, &condition)];
    let truncated = derived.truncated > 0;
    conditions.push(match truncated {
        true => condition(
            TRUNCATED,
            true,
            MAX_CHECKS,
            format!(
                "{} more checks were not generated (maxChecks: {})",
                derived.truncated, derived.max_checks
            ),
        ),
        false => condition(TRUNCATED, false, WITHIN_MAX_CHECKS, String::new()),
    });
    if !derived.unavailable.is_empty() {
        let kinds: Vec<&str> = derived.unavailable.iter().copied().collect();
        let message = format!(
            "{} not served (the Gateway API CRDs are not installed?): retried with backoff; their checks are kept",
            kinds.join(", ")
        );
        conditions.push(condition(
            SOURCE_UNAVAILABLE,
            true,
            CRD_NOT_INSTALLED,
            message,
        ));
    } else if prev_conditions
        .iter()
        .any(|c| c.type_ == SOURCE_UNAVAILABLE)
    {
        conditions.push(condition(SOURCE_UNAVAILABLE, false, SERVED, String::new()));
    }
    CheckDiscoveryStatus {
        observed_generation: generation,
        conditions,
        generated: Some(i32::try_from(derived.generated).unwrap_or(i32::MAX)),
        skipped: derived
            .skips
            .iter()
            .take(MAX_STATUS_SKIPS)
            .cloned()
            .collect(),
    }
}

fn ready(
    derived: &Derived,
    condition: &impl Fn(&str, bool, &str, String) -> Condition,
) -> Condition {
    if derived.failed > 0 {
        let first = derived.first_error.clone().unwrap_or_default();
        let message = format!("{} writes failed (retried): {first}", derived.failed);
        return condition(READY, false, WRITE_FAILED, message);
    }
    let mut message = format!(
        "{} checks generated, {} hosts or paths skipped",
        derived.generated,
        derived.skips.len()
    );
    if !derived.foreign.is_empty() {
        let names = derived.foreign.join(", ");
        message.push_str(&format!(
            "; left alone (detached, or not this discovery's): {names}"
        ));
    }
    condition(READY, true, GENERATED, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SkipReason;

    fn time(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    fn skip(n: usize) -> DiscoverySkip {
        DiscoverySkip {
            source: format!("Ingress/i{n:03}"),
            host: None,
            path: None,
            reason: SkipReason::NoHost,
            message: String::new(),
        }
    }

    #[test]
    fn an_unchanged_outcome_is_an_unchanged_status() {
        let derived = Derived {
            generated: 3,
            skips: (0..60).map(skip).collect(),
            max_checks: 200,
            ..Derived::default()
        };
        let outcome = Outcome::Derived(derived);
        let first = next_status(None, Some(1), &outcome, &time("2026-01-01T00:00:00Z"));
        assert_eq!(first.skipped.len(), MAX_STATUS_SKIPS);
        assert_eq!(first.generated, Some(3));
        let again = next_status(
            Some(&first),
            Some(1),
            &outcome,
            &time("2026-01-02T00:00:00Z"),
        );
        assert_eq!(again, first);
        let types: Vec<_> = first.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [READY, TRUNCATED]);
    }

    #[test]
    fn truncation_unavailable_sources_and_a_bad_template_are_conditions() {
        let derived = Derived {
            generated: 2,
            truncated: 5,
            max_checks: 2,
            unavailable: BTreeSet::from(["HTTPRoute"]),
            ..Derived::default()
        };
        let now = time("2026-01-01T00:00:00Z");
        let status = next_status(None, Some(4), &Outcome::Derived(derived), &now);
        let find = |s: &CheckDiscoveryStatus, t: &str| {
            let c = s.conditions.iter().find(|c| c.type_ == t).unwrap();
            (c.status.clone(), c.reason.clone())
        };
        assert_eq!(find(&status, TRUNCATED), ("True".into(), MAX_CHECKS.into()));
        assert_eq!(
            find(&status, SOURCE_UNAVAILABLE),
            ("True".into(), CRD_NOT_INSTALLED.into())
        );
        let later = time("2026-01-01T00:01:00Z");
        let invalid = Outcome::Invalid("spec.template.interval: bad".into());
        let bad = next_status(Some(&status), Some(5), &invalid, &later);
        assert_eq!(find(&bad, READY), ("False".into(), INVALID_SPEC.into()));
        assert_eq!(bad.observed_generation, Some(5));
        assert_eq!(bad.generated, Some(2), "the last generation's checks stay");
    }
}
