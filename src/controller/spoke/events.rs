//! The hub's HealthChecks as one location's spoke sees them: only those listing the location,
//! as plain checks carrying the location's last report as their status.

use kube::{Client, runtime::watcher::Event};
use tokio::sync::mpsc;

use super::{ReportWriter, SEED_TIMEOUT, report};
use crate::{
    api::{CheckKey, CheckReport, CheckReportStatus, HealthCheck},
    controller::{WatchScope, api_error, reconcile::WatchEvent},
};

/// Where a spoke finds the reports it wrote before a restart.
pub(super) struct Seeding {
    pub(super) hub: Client,
    pub(super) watches: Vec<WatchScope>,
    pub(super) location: String,
}

/// Passes on the hub's watch events that concern the location ([`for_location`]), each check
/// carrying the location's last report as its status; first reads the reports already in the
/// hub, so runners resume from them after a restart.
pub(super) async fn filter(
    mut events: mpsc::Receiver<WatchEvent>,
    mine: mpsc::Sender<WatchEvent>,
    seeding: Seeding,
    reports: ReportWriter,
) {
    seed(&seeding, &reports).await;
    let location = seeding.location;
    let last = |key: &CheckKey, uid: &str| reports.last(key, uid);
    while let Some((scope, event)) = events.recv().await {
        if let Some(event) = for_location(event, &location, last)
            && mine.send((scope, event)).await.is_err()
        {
            return;
        }
    }
}

/// Reads the location's reports in the hub into `reports` (each with the uid of the check it
/// belongs to). A hub that does not answer leaves runners to start afresh.
async fn seed(seeding: &Seeding, reports: &ReportWriter) {
    let selector = format!("{}={}", report::LOCATION_LABEL, seeding.location);
    let params = kube::api::ListParams::default().labels(&selector);
    for scope in &seeding.watches {
        let api: kube::Api<CheckReport> = match scope.namespace_name() {
            Some(namespace) => kube::Api::namespaced(seeding.hub.clone(), namespace),
            None => kube::Api::all(seeding.hub.clone()),
        };
        let listed = tokio::time::timeout(SEED_TIMEOUT, api.list(&params)).await;
        let list = match listed {
            Ok(Ok(list)) => list,
            Ok(Err(error)) => {
                let error = api_error::describe(&error);
                tracing::warn!(%error, "reading this location's CheckReports failed; hub checks start afresh");
                continue;
            }
            Err(_) => {
                tracing::warn!(
                    "reading this location's CheckReports timed out; hub checks start afresh"
                );
                continue;
            }
        };
        for report in list.items {
            let owner = (report.metadata.owner_references.iter().flatten())
                .find(|o| o.kind == "HealthCheck");
            let (Some(owner), Some(namespace), Some(status)) = (
                owner,
                report.metadata.namespace.clone(),
                report.status.clone(),
            ) else {
                continue;
            };
            let key = CheckKey {
                namespace,
                name: report.spec.check.clone(),
            };
            reports.seed(key, owner.uid.clone(), status);
        }
    }
}

/// The event as this location's spoke sees it: a check not listing `location` is absent (an
/// update that removed the location deletes it here), one listing it is a plain check (its
/// `spec.locations` removed, so nothing that keeps located checks off local probing applies
/// here), with the location's `last` report as its status (not the hub's aggregate).
pub fn for_location(
    event: Event<HealthCheck>,
    location: &str,
    last: impl Fn(&CheckKey, &str) -> Option<CheckReportStatus>,
) -> Option<Event<HealthCheck>> {
    let listed = |object| listed(object, location, &last);
    match event {
        Event::Init | Event::InitDone => Some(event),
        Event::InitApply(object) => listed(object).map(Event::InitApply),
        Event::Apply(object) => Some(match listed(object.clone()) {
            Some(mine) => Event::Apply(mine),
            None => Event::Delete(object),
        }),
        Event::Delete(object) => Some(Event::Delete(object)),
    }
}

/// `object` as a plain check, when it lists `location`.
fn listed(
    mut object: HealthCheck,
    location: &str,
    last: impl Fn(&CheckKey, &str) -> Option<CheckReportStatus>,
) -> Option<HealthCheck> {
    let locations = object.spec.locations.as_ref()?;
    if !locations.names.iter().any(|name| name == location) {
        return None;
    }
    object.spec.locations = None;
    let key = CheckKey::of(&object);
    let generation = object.metadata.generation;
    let uid = object.metadata.uid.as_deref().unwrap_or_default();
    object.status = last(&key, uid).map(|report| report::resumed(&report, generation));
    Some(object)
}
