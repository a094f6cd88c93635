//! The per-check metric families as one enum: a family is a variant with its name, help, type
//! and labels written beside it, and [`super::check`] renders each by an exhaustive `match`, so
//! no family can be paired with another's samples. What a probe's kind learned is one variant,
//! [`Family::Kind`], whose families live in [`super::kinds`].

use prometheus::proto::MetricType;

use super::kinds::KindFamily;

/// One per-check family. [`Family::ALL`] is the order of registration and exposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Success,
    Duration,
    PhaseDuration,
    Runs,
    LastRun,
    LastSuccess,
    ConsecutiveFailures,
    InMaintenance,
    /// What a probe's kind learned ([`KindFamily`]).
    Kind(KindFamily),
    /// What a check is: kind, target, allow-listed labels.
    Info,
}

impl Family {
    /// Every family, in registration order (the exposition sorts them by name).
    pub(super) fn all() -> impl Iterator<Item = Family> {
        [
            Self::Success,
            Self::Duration,
            Self::PhaseDuration,
            Self::Runs,
            Self::LastRun,
            Self::LastSuccess,
            Self::ConsecutiveFailures,
            Self::InMaintenance,
        ]
        .into_iter()
        .chain(KindFamily::ALL.map(Self::Kind))
        .chain([Self::Info])
    }

    /// The exposed name.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Success => "canary_check_success",
            Self::Duration => "canary_check_duration_seconds",
            Self::PhaseDuration => "canary_check_phase_duration_seconds",
            Self::Runs => "canary_check_runs_total",
            Self::LastRun => "canary_check_last_run_timestamp_seconds",
            Self::LastSuccess => "canary_check_last_success_timestamp_seconds",
            Self::ConsecutiveFailures => "canary_check_consecutive_failures",
            Self::InMaintenance => "canary_check_in_maintenance",
            Self::Kind(kind) => kind.name(),
            Self::Info => "canary_check_info",
        }
    }

    /// The HELP text.
    pub(super) fn help(self) -> &'static str {
        match self {
            Self::Success => {
                "1 if the last probe passed, else 0; absent while the check does not run (suspended, invalid)."
            }
            Self::Duration => "Duration of whole probes.",
            Self::PhaseDuration => "Time spent in each phase of the last probe.",
            Self::Runs => "Probes run, by result and reason.",
            Self::LastRun => "Unix time of the last probe.",
            Self::LastSuccess => "Unix time of the last passing probe.",
            Self::ConsecutiveFailures => "Failed probes in a row.",
            Self::InMaintenance => "1 while the last probe fell in a maintenance window, else 0.",
            Self::Kind(kind) => kind.help(),
            Self::Info => {
                "What a check probes (value 1): kind, target without secrets, and allow-listed labels of the resource."
            }
        }
    }

    /// The Prometheus type.
    pub(super) fn kind(self) -> MetricType {
        match self {
            Self::Duration => MetricType::HISTOGRAM,
            Self::Runs => MetricType::COUNTER,
            _ => MetricType::GAUGE,
        }
    }

    /// Labels beyond namespace and name ([`Family::Info`]'s come from the allow-list).
    pub(super) fn labels(self) -> &'static [&'static str] {
        match self {
            Self::PhaseDuration => &["phase"],
            Self::Runs => &["result", "reason"],
            Self::Kind(kind) => kind.labels(),
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::Family;

    #[test]
    fn every_family_has_its_own_canary_name_and_help() {
        let families: Vec<Family> = Family::all().collect();
        let names: BTreeSet<&str> = families.iter().map(|f| f.name()).collect();
        assert_eq!(names.len(), families.len(), "a name used twice: {names:?}");
        for family in families {
            assert!(family.name().starts_with("canary_"), "{family:?}");
            assert!(!family.help().is_empty(), "{family:?}");
        }
    }
}
