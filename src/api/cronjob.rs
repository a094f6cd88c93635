//! `spec.cronJob`: a check of the runs a CronJob schedules. Nothing is dialled and nothing
//! pushes: at each scheduled time plus `startGrace` the operator reads the CronJob and the Job
//! its controller must have created (`controller/cronjob.rs`), so this kind needs the operator
//! (standalone mode and `canary check` refuse it, saying so). Its spec type, validation and
//! valid form.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    duration::{GoDuration, MAX_DURATION, fmt_go},
    parse::check_object_name,
    validate::Errors,
};

/// Default `startGrace`: the CronJob controller syncs every 10 s and a Job may wait for a node.
pub const DEFAULT_START_GRACE: &str = "5m";
/// Longest `startGrace` and `maxRunDuration`.
const MAX_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// A CronJob in the check's namespace whose scheduled runs must happen, finish and succeed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronJobProbe {
    /// The CronJob's name (same namespace). RBAC: `get` on `cronjobs` and `jobs`.
    #[schemars(length(min = 1, max = 52))]
    pub name: String,
    /// How long after a scheduled time its Job is awaited before the run counts as missed.
    #[serde(default = "default_start_grace")]
    pub start_grace: GoDuration,
    /// A Job still running this long after it started fails with RunTooLong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_run_duration: Option<GoDuration>,
}

fn default_start_grace() -> GoDuration {
    GoDuration::new(DEFAULT_START_GRACE)
}

/// A validated CronJob check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidCronJob {
    pub name: String,
    pub start_grace: Duration,
    pub max_run: Option<Duration>,
}

impl ValidCronJob {
    /// The target column: `cronjob nightly-backup, startGrace 10m`.
    pub fn describe(&self) -> String {
        format!(
            "cronjob {}, startGrace {}",
            self.name,
            fmt_go(self.start_grace)
        )
    }
}

/// Validates `spec.cronJob`.
pub(super) fn validate_cronjob(
    cronjob: &CronJobProbe,
    errors: &mut Errors,
) -> Option<ValidCronJob> {
    errors.take(check_object_name("spec.cronJob.name", &cronjob.name));
    // The Job name `<cronjob>-<minutes>` must stay a valid name: kube caps CronJob names at 52.
    errors.at_most("spec.cronJob.name", cronjob.name.len(), 52, "characters");
    let start_grace = errors.take(
        cronjob
            .start_grace
            .parse("spec.cronJob.startGrace", MAX_GRACE),
    );
    let max_run = match &cronjob.max_run_duration {
        None => Some(None),
        Some(max) => errors
            .take(max.parse("spec.cronJob.maxRunDuration", MAX_DURATION.min(MAX_GRACE)))
            .map(Some),
    };
    Some(ValidCronJob {
        name: cronjob.name.clone(),
        start_grace: start_grace?,
        max_run: max_run?,
    })
}

#[cfg(test)]
mod tests {
    use crate::api::{HealthCheckSpec, ProbeKind, validate};
    use serde_json::json;

    fn spec(value: serde_json::Value) -> HealthCheckSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_cronjob_check_names_its_cronjob_and_graces() {
        let valid = validate(&spec(json!({"cronJob":
            {"name": "nightly-backup", "startGrace": "10m", "maxRunDuration": "2h"}})))
        .unwrap();
        assert_eq!(
            valid.probe.target(),
            "cronjob nightly-backup, startGrace 10m"
        );
        let ProbeKind::CronJob(cronjob) = &valid.probe else {
            panic!("{:?}", valid.probe)
        };
        assert_eq!(cronjob.max_run, Some(std::time::Duration::from_secs(7200)));
        assert!(valid.references().is_empty(), "no Secret is read");
    }

    #[test]
    fn bad_names_durations_and_interval_are_refused_with_the_field() {
        let errors = validate(&spec(json!({"interval": "5m",
            "cronJob": {"name": "Nightly_Backup", "startGrace": "forever"}})))
        .unwrap_err();
        let found: Vec<String> = errors.iter().map(ToString::to_string).collect();
        for field in [
            "spec.interval",
            "spec.cronJob.name",
            "spec.cronJob.startGrace",
        ] {
            assert!(
                found.iter().any(|f| f.starts_with(field)),
                "{field} in {found:?}"
            );
        }
    }
}
