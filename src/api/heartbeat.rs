//! `spec.heartbeat`: a push check. Nothing is dialled; the job pings Canary's heartbeat
//! listener with a token, and the check fails when pings stop (`HeartbeatMissed`), report a
//! failure (`HeartbeatFailed`) or a started run does not finish in time (`RunTooLong`). Its
//! spec type, validation and valid form; the state machine that judges pings is
//! `runner/heartbeat.rs`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    duration::{GoDuration, MAX_DURATION, fmt_go},
    maintenance::CronSchedule,
    parse::{check_data_key, check_object_name},
    spec::KeyRef,
    valid::{Reference, ReferenceKind, ValueRef},
    validate::Errors,
};

/// Shortest `period` (short jobs and tests).
pub const MIN_PERIOD: Duration = Duration::from_secs(10);
/// Shortest `grace`.
pub const MIN_GRACE: Duration = Duration::from_secs(5);
/// Shortest token a Secret may hold: 22 characters of base64 are 128 bits.
pub const MIN_TOKEN_CHARS: usize = 22;
/// Default `grace`.
pub const DEFAULT_GRACE: &str = "5m";

/// A job that reports here, and when it must have reported.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.period) != has(self.schedule)",
     "message": "exactly one of spec.heartbeat.period or spec.heartbeat.schedule must be set"},
    {"rule": "!has(self.timezone) || has(self.schedule)",
     "message": "spec.heartbeat.timezone applies only with spec.heartbeat.schedule",
     "fieldPath": ".timezone"},
    {"rule": "!has(self.period) || duration(self.period) >= duration('10s')",
     "message": "spec.heartbeat.period must be at least 10s", "fieldPath": ".period"},
    {"rule": "duration(self.grace) >= duration('5s')",
     "message": "spec.heartbeat.grace must be at least 5s", "fieldPath": ".grace"}
]))]
pub struct HeartbeatProbe {
    /// The Secret key holding the token pings must send as `Authorization: Bearer` (at
    /// least 22 characters; same namespace).
    pub token_secret_ref: KeyRef,
    /// A ping is expected at least this often (at least 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<GoDuration>,
    /// Or: a ping is expected after each time this five-field cron schedule fires
    /// (`0 6 * * *`), read in `timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 128))]
    pub schedule: Option<String>,
    /// IANA time zone of `schedule` (default UTC); daylight saving changes are honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub timezone: Option<String>,
    /// How late a ping may be before the check fails with HeartbeatMissed (at least 5s).
    #[serde(default = "default_grace")]
    pub grace: GoDuration,
    /// A run announced with /start that has not finished within this fails with RunTooLong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_run_duration: Option<GoDuration>,
}

fn default_grace() -> GoDuration {
    GoDuration::new(DEFAULT_GRACE)
}

/// When pings are expected.
#[derive(Debug, Clone)]
pub enum Expectation {
    /// At least once per period.
    Every(Duration),
    /// After each firing of a cron schedule.
    Schedule(Box<CronSchedule>),
}

impl std::fmt::Display for Expectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Every(period) => write!(f, "every {}", fmt_go(*period)),
            Self::Schedule(schedule) => write!(f, "at {:?}", schedule.as_str()),
        }
    }
}

/// A validated heartbeat check.
#[derive(Debug, Clone)]
pub struct ValidHeartbeat {
    pub token: ValueRef,
    pub expect: Expectation,
    pub grace: Duration,
    pub max_run: Option<Duration>,
}

impl ValidHeartbeat {
    /// The target column: what is expected (`heartbeat every 24h, grace 1h`).
    pub fn describe(&self) -> String {
        format!("heartbeat {}, grace {}", self.expect, fmt_go(self.grace))
    }
}

/// Validates `spec.heartbeat`.
pub(super) fn validate_heartbeat(
    heartbeat: &HeartbeatProbe,
    errors: &mut Errors,
) -> Option<ValidHeartbeat> {
    const FIELD: &str = "spec.heartbeat";
    let token = &heartbeat.token_secret_ref;
    errors.take(check_object_name(
        "spec.heartbeat.tokenSecretRef.name",
        &token.name,
    ));
    errors.take(check_data_key(
        "spec.heartbeat.tokenSecretRef.key",
        &token.key,
    ));
    let expect = match (&heartbeat.period, &heartbeat.schedule) {
        (Some(period), None) => {
            let period = errors.take(period.parse("spec.heartbeat.period", MAX_DURATION))?;
            at_least(errors, "spec.heartbeat.period", period, MIN_PERIOD);
            (heartbeat.timezone.is_some()).then(|| {
                let message = "applies only with spec.heartbeat.schedule";
                errors.push("spec.heartbeat.timezone", message);
            });
            Some(Expectation::Every(period))
        }
        (None, Some(schedule)) => errors
            .take(CronSchedule::parse(
                FIELD,
                schedule,
                heartbeat.timezone.as_deref(),
            ))
            .map(|s| Expectation::Schedule(Box::new(s))),
        _ => {
            errors.push(FIELD, "exactly one of period or schedule must be set");
            None
        }
    };
    let grace = errors.take(heartbeat.grace.parse("spec.heartbeat.grace", MAX_DURATION));
    if let Some(grace) = grace {
        at_least(errors, "spec.heartbeat.grace", grace, MIN_GRACE);
    }
    let max_run = match &heartbeat.max_run_duration {
        None => Some(None),
        Some(max) => {
            (errors.take(max.parse("spec.heartbeat.maxRunDuration", MAX_DURATION))).map(Some)
        }
    };
    Some(ValidHeartbeat {
        token: ValueRef {
            object: Reference {
                kind: ReferenceKind::Secret,
                name: token.name.clone(),
            },
            key: token.key.clone(),
        },
        expect: expect?,
        grace: grace?,
        max_run: max_run?,
    })
}

fn at_least(errors: &mut Errors, field: &str, value: Duration, min: Duration) {
    if value < min {
        let message = format!("{} is below the minimum of {}", fmt_go(value), fmt_go(min));
        errors.push(field, message);
    }
}

#[cfg(test)]
mod tests {
    use crate::api::{HealthCheckSpec, ProbeKind, validate};

    fn spec(value: serde_json::Value) -> HealthCheckSpec {
        serde_json::from_value(value).unwrap()
    }

    fn errors(value: serde_json::Value) -> Vec<String> {
        let errors = validate(&spec(value)).unwrap_err();
        errors.iter().map(ToString::to_string).collect()
    }

    const TOKEN: &str = r#"{"name": "backup-ping", "key": "token"}"#;

    fn token() -> serde_json::Value {
        serde_json::from_str(TOKEN).unwrap()
    }

    #[test]
    fn a_period_or_a_schedule_with_its_zone_is_valid() {
        let valid = validate(&spec(serde_json::json!({"heartbeat":
            {"tokenSecretRef": token(), "period": "24h", "grace": "1h", "maxRunDuration": "2h"}})))
        .unwrap();
        assert_eq!(valid.probe.target(), "heartbeat every 24h, grace 1h");
        let valid = validate(&spec(
            serde_json::json!({"heartbeat": {"tokenSecretRef": token(),
            "schedule": "0 6 * * *", "timezone": "Europe/Berlin"}}),
        ))
        .unwrap();
        assert!(matches!(valid.probe, ProbeKind::Heartbeat(_)));
        assert_eq!(valid.references().len(), 1, "the token Secret is read");
    }

    #[test]
    fn short_periods_and_graces_and_interval_or_timeout_are_refused() {
        let found = errors(serde_json::json!({"interval": "5m", "timeout": "1s",
            "heartbeat": {"tokenSecretRef": token(), "period": "9s", "grace": "4s"}}));
        let expected = [
            "spec.interval: does not apply to heartbeat checks",
            "spec.timeout: does not apply to heartbeat checks",
            "spec.heartbeat.period: 9s is below the minimum of 10s",
            "spec.heartbeat.grace: 4s is below the minimum of 5s",
        ];
        for message in expected {
            assert!(
                found.iter().any(|f| f.starts_with(message)),
                "{message} in {found:?}"
            );
        }
    }

    #[test]
    fn exactly_one_of_period_or_schedule_and_a_zone_only_with_a_schedule() {
        let both = errors(serde_json::json!({"heartbeat":
            {"tokenSecretRef": token(), "period": "1h", "schedule": "0 6 * * *"}}));
        assert!(
            both[0].contains("exactly one of period or schedule"),
            "{both:?}"
        );
        let zone = errors(serde_json::json!({"heartbeat":
            {"tokenSecretRef": token(), "period": "1h", "timezone": "Mars/Olympus"}}));
        assert!(zone[0].starts_with("spec.heartbeat.timezone"), "{zone:?}");
        let cron = errors(serde_json::json!({"heartbeat":
            {"tokenSecretRef": token(), "schedule": "0 6 * *"}}));
        assert!(cron[0].starts_with("spec.heartbeat.schedule"), "{cron:?}");
    }
}
