//! One vocabulary for a check's state, decided here from a runner's state and read by
//! `canary_checks{state}`, the scheduler's [`Summary`](super::Summary), `/healthz` and the
//! status page, so none of them can name or classify a check differently.

use std::fmt;

use serde::{Serialize, Serializer, ser::SerializeMap};

use super::RunnerState;
use crate::api::{ReadyStatus, Reason};

/// A check's state. Where several hold, the first listed wins, as in the status the runner
/// writes: a spec that cannot run says so even while suspended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckState {
    /// The spec is invalid (reason `InvalidSpec`): nothing runs until it is edited.
    Invalid,
    /// A referenced Secret or ConfigMap is missing or may not be read (`ReferenceNotFound`,
    /// `ReferenceForbidden`): nothing runs until it is there.
    Blocked,
    /// `spec.suspend`: probing is paused.
    Suspended,
    /// The last run fell in a maintenance window: probing goes on, failures are not alerts.
    Maintenance,
    /// Ready is True.
    Ready,
    /// Ready is False.
    Failing,
    /// Not decided yet: no run so far, or Ready Unknown between thresholds.
    Pending,
}

impl CheckState {
    /// Every state, in precedence order.
    pub const ALL: [Self; 7] = [
        Self::Invalid,
        Self::Blocked,
        Self::Suspended,
        Self::Maintenance,
        Self::Ready,
        Self::Failing,
        Self::Pending,
    ];

    /// The state from what a runner knows: why its spec cannot run (the reason of a blocked
    /// plan), whether it is suspended, whether its last run fell in a maintenance window, and
    /// its Ready condition.
    pub fn of(
        cannot_run: Option<Reason>,
        suspended: bool,
        in_maintenance: bool,
        ready: Option<ReadyStatus>,
    ) -> Self {
        match (cannot_run, suspended, in_maintenance, ready) {
            (Some(Reason::InvalidSpec), ..) => Self::Invalid,
            (Some(_), ..) => Self::Blocked,
            (None, true, ..) => Self::Suspended,
            (None, false, true, _) => Self::Maintenance,
            (None, false, false, Some(ReadyStatus::True)) => Self::Ready,
            (None, false, false, Some(ReadyStatus::False)) => Self::Failing,
            (None, false, false, Some(ReadyStatus::Unknown) | None) => Self::Pending,
        }
    }

    /// The name everywhere: the `state` label of `canary_checks`, `/healthz`, the page and its
    /// JSON API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Blocked => "blocked",
            Self::Suspended => "suspended",
            Self::Maintenance => "maintenance",
            Self::Ready => "ready",
            Self::Failing => "failing",
            Self::Pending => "pending",
        }
    }

    /// Whether someone should look at the check (the page's "failing only" filter).
    pub fn needs_attention(self) -> bool {
        matches!(self, Self::Failing | Self::Invalid | Self::Blocked)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for CheckState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl RunnerState {
    /// This runner's check state (the one place it is decided).
    pub(crate) fn check_state(&self) -> CheckState {
        let ready = self.status.ready();
        CheckState::of(self.blocked, self.suspended, self.in_maintenance, ready)
    }
}

/// How many checks are in each state; serialised as `{"ready": n, …}` with every state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts([usize; CheckState::ALL.len()]);

impl StateCounts {
    pub fn add(&mut self, state: CheckState) {
        self.0[state.index()] += 1;
    }

    pub fn get(&self, state: CheckState) -> usize {
        self.0[state.index()]
    }

    /// Every state with its count, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (CheckState, usize)> + '_ {
        CheckState::ALL
            .into_iter()
            .map(|state| (state, self.get(state)))
    }
}

impl Serialize for StateCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(CheckState::ALL.len()))?;
        for (state, count) in self.iter() {
            map.serialize_entry(state.name(), &count)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every combination the page and the metrics could once classify differently.
    #[test]
    fn every_combination_has_one_state() {
        let blockers = [
            None,
            Some(Reason::InvalidSpec),
            Some(Reason::ReferenceNotFound),
            Some(Reason::ReferenceForbidden),
        ];
        let readiness = [
            None,
            Some(ReadyStatus::Unknown),
            Some(ReadyStatus::True),
            Some(ReadyStatus::False),
        ];
        for cannot_run in blockers {
            for suspended in [false, true] {
                for maintenance in [false, true] {
                    for ready in readiness {
                        let state = CheckState::of(cannot_run, suspended, maintenance, ready);
                        let expected = match (cannot_run, suspended, maintenance, ready) {
                            (Some(Reason::InvalidSpec), ..) => CheckState::Invalid,
                            (Some(_), ..) => CheckState::Blocked,
                            (_, true, ..) => CheckState::Suspended,
                            (_, _, true, _) => CheckState::Maintenance,
                            (.., Some(ReadyStatus::True)) => CheckState::Ready,
                            (.., Some(ReadyStatus::False)) => CheckState::Failing,
                            _ => CheckState::Pending,
                        };
                        let case = (cannot_run, suspended, maintenance, ready);
                        assert_eq!(state, expected, "{case:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn names_are_distinct_and_counts_serialise_every_state() {
        let names: std::collections::BTreeSet<_> =
            CheckState::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), CheckState::ALL.len());
        let mut counts = StateCounts::default();
        counts.add(CheckState::Blocked);
        counts.add(CheckState::Blocked);
        counts.add(CheckState::Ready);
        let json = serde_json::to_value(counts).unwrap();
        assert_eq!(json["blocked"], 2);
        assert_eq!(json["ready"], 1);
        assert_eq!(json.as_object().unwrap().len(), 7);
    }
}
