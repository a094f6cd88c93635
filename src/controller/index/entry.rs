//! One object as the index keeps it: packed as its JSON unless a pass reads it, with the
//! facts every pass reads computed once, when the watch reports it (docs/scaling.md).

use std::sync::Arc;

use crate::{
    api::{HealthCheck, validate},
    controller::shard::Watched,
    runner::audit,
};

/// One object, and what the passes over every check read of it without parsing it.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) kept: Kept,
    pub(super) facts: Facts,
    /// See [`super::Index::version`] (set when the index stores it).
    pub(super) version: u64,
}

/// What is read of a check at every pass, or decides how it is kept.
#[derive(Debug, Clone, Copy)]
pub(super) struct Facts {
    /// The peer audit's view (`None`: nobody should be probing it).
    pub(super) watched: Option<Watched>,
    /// It has `spec.locations`: aggregated here at every hub pass, never probed here.
    pub(super) located: bool,
    /// The self-audit expects its runner to complete runs ([`audit::probes_when`]).
    pub(super) probes: bool,
    /// Its spec references Secrets or ConfigMaps: the resync rebuilds its runner at every
    /// reference TTL, so where it runs it is kept parsed.
    pub(super) references: bool,
}

impl Facts {
    fn of(object: &HealthCheck) -> Self {
        // One validation for every fact: each watch event (every status write) pays it.
        let valid = validate(&object.spec).ok();
        Self {
            watched: Watched::of(object, valid.as_ref()),
            located: object.spec.locations.is_some(),
            probes: audit::probes_when(&object.spec, valid.is_some()),
            references: valid.is_some_and(|valid| !valid.references().is_empty()),
        }
    }
}

/// Parsed only where a pass reads the whole object: a `located` check (the hub judges it at
/// every pass) and a check with references this replica runs (rebuilt at every resync).
/// Every other check is its JSON, about a third of the memory, parsed once per event that
/// needs it: a watch event to compare, a gain or a build, a run-now, a heartbeat ping.
#[derive(Debug)]
pub(super) enum Kept {
    Parsed(Arc<HealthCheck>),
    Packed(Box<[u8]>),
}

impl Entry {
    /// `object`, parsed or packed as `parsed(facts)` says.
    pub(super) fn new(object: Arc<HealthCheck>, parsed: impl FnOnce(&Facts) -> bool) -> Self {
        let facts = Facts::of(&object);
        let mut entry = Self {
            kept: Kept::Parsed(object),
            facts,
            version: 0,
        };
        entry.keep(parsed(&facts));
        entry
    }

    /// The object (parsed again when packed).
    pub(super) fn object(&self) -> Option<Arc<HealthCheck>> {
        match &self.kept {
            Kept::Parsed(object) => Some(object.clone()),
            // It was packed from a HealthCheck: it parses back.
            Kept::Packed(json) => serde_json::from_slice(json).ok().map(Arc::new),
        }
    }

    /// The object if it is kept parsed (no parsing).
    pub(super) fn parsed(&self) -> Option<&Arc<HealthCheck>> {
        match &self.kept {
            Kept::Parsed(object) => Some(object),
            Kept::Packed(_) => None,
        }
    }

    /// Whether both are packed from the same JSON: the same object, facts and all.
    pub(super) fn packed_as(&self, other: &Entry) -> bool {
        matches!((&self.kept, &other.kept), (Kept::Packed(a), Kept::Packed(b)) if a == b)
    }

    /// Keeps the object parsed or packed.
    pub(super) fn keep(&mut self, parsed: bool) {
        match (&self.kept, parsed) {
            (Kept::Parsed(object), false) => {
                if let Ok(json) = serde_json::to_vec(object.as_ref()) {
                    self.kept = Kept::Packed(json.into_boxed_slice());
                }
            }
            (Kept::Packed(_), true) => {
                if let Some(object) = self.object() {
                    self.kept = Kept::Parsed(object);
                }
            }
            _ => {}
        }
    }
}
