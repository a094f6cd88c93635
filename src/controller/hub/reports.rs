//! The CheckReports the hub has seen, each with when (on the hub's monotonic clock) it first
//! saw the report's current resourceVersion: the staleness clock. Pure: the watch task feeds
//! it events with their time. A relist keeps the time of every report whose version did not
//! change, so a watch reconnect never makes a dead location look fresh.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use kube::{ResourceExt, runtime::watcher};

use crate::{
    api::{CheckReport, CheckReportStatus, report_name},
    runner::CheckKey,
};

/// Why a report was left out of every aggregate (the `reason` label of
/// `canary_location_reports_ignored_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Its name is not `<spec.check>.<spec.location>`.
    Name,
    /// Its location is not in the check's `spec.locations.names`.
    Unlisted,
    /// No HealthCheck with `spec.locations` of that name in the report's namespace.
    UnknownCheck,
}

impl Ignored {
    pub const ALL: [Ignored; 3] = [Self::Name, Self::Unlisted, Self::UnknownCheck];

    pub fn label(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Unlisted => "unlisted",
            Self::UnknownCheck => "unknown_check",
        }
    }
}

/// One location's report.
#[derive(Debug, Clone)]
pub struct Entry {
    pub resource_version: String,
    /// When this version was first seen.
    pub seen: Duration,
    pub heartbeat: Duration,
    pub status: Option<CheckReportStatus>,
    /// This version was already counted as ignored.
    pub counted: bool,
    /// The listing epoch that last saw it.
    listed: u64,
}

/// Reports by check (namespace and `spec.check`), then by location.
#[derive(Debug, Default)]
pub struct Reports {
    by_check: HashMap<CheckKey, BTreeMap<String, Entry>>,
    /// Where each report (namespace and name) is filed.
    placed: HashMap<CheckKey, (CheckKey, String)>,
    epoch: u64,
    synced: bool,
}

impl Reports {
    /// Applies one watch event seen at `now`; a report whose name is not its check's and
    /// location's is left out and returned to be counted.
    pub fn apply(&mut self, event: watcher::Event<CheckReport>, now: Duration) -> Option<Ignored> {
        match event {
            watcher::Event::Init => {
                self.epoch += 1;
                None
            }
            watcher::Event::InitApply(report) | watcher::Event::Apply(report) => {
                self.upsert(&report, now)
            }
            watcher::Event::InitDone => {
                let epoch = self.epoch;
                for reports in self.by_check.values_mut() {
                    reports.retain(|_, entry| entry.listed == epoch);
                }
                self.by_check.retain(|_, reports| !reports.is_empty());
                let by_check = &self.by_check;
                (self.placed).retain(|_, (check, location)| {
                    by_check
                        .get(check)
                        .is_some_and(|r| r.contains_key(location))
                });
                self.synced = true;
                None
            }
            watcher::Event::Delete(report) => {
                self.remove(&key_of(&report));
                None
            }
        }
    }

    /// Whether the first listing is done.
    pub fn synced(&self) -> bool {
        self.synced
    }

    fn upsert(&mut self, report: &CheckReport, now: Duration) -> Option<Ignored> {
        let key = key_of(report);
        let version = report.resource_version().unwrap_or_default();
        if report.name_any() != report_name(&report.spec.check, &report.spec.location) {
            self.remove(&key);
            return Some(Ignored::Name);
        }
        let check = CheckKey {
            namespace: key.namespace.clone(),
            name: report.spec.check.clone(),
        };
        let location = report.spec.location.clone();
        if self.placed.get(&key) != Some(&(check.clone(), location.clone())) {
            self.remove(&key);
        }
        self.placed.insert(key, (check.clone(), location.clone()));
        let reports = self.by_check.entry(check).or_default();
        let heartbeat = Duration::from_secs(report.spec.heartbeat_seconds.clamp(1, 86_400) as u64);
        let epoch = self.epoch;
        match reports.get_mut(&location) {
            Some(entry) if entry.resource_version == version => entry.listed = epoch,
            _ => {
                let entry = Entry {
                    resource_version: version,
                    seen: now,
                    heartbeat,
                    status: report.status.clone(),
                    counted: false,
                    listed: epoch,
                };
                reports.insert(location, entry);
            }
        }
        None
    }

    fn remove(&mut self, key: &CheckKey) {
        let Some((check, location)) = self.placed.remove(key) else {
            return;
        };
        if let Some(reports) = self.by_check.get_mut(&check) {
            reports.remove(&location);
            if reports.is_empty() {
                self.by_check.remove(&check);
            }
        }
    }

    /// The reports of `check`, by location.
    pub fn of(&self, check: &CheckKey) -> Option<&BTreeMap<String, Entry>> {
        self.by_check.get(check)
    }

    /// Every check with reports, for counting the ignored ones.
    pub fn checks_mut(
        &mut self,
    ) -> impl Iterator<Item = (&CheckKey, &mut BTreeMap<String, Entry>)> {
        self.by_check.iter_mut()
    }

    /// Reports held.
    pub fn len(&self) -> usize {
        self.placed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.placed.is_empty()
    }
}

/// A report's namespace and name.
fn key_of(report: &CheckReport) -> CheckKey {
    CheckKey {
        namespace: report.namespace().unwrap_or_default(),
        name: report.name_any(),
    }
}
