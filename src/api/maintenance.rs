//! Maintenance windows: cron schedules (five fields, in a named time zone) that open a window
//! of a given duration. During a window a check keeps probing, but its failures change neither
//! Ready nor raise Warning Events, and `canary_check_in_maintenance` is 1 so alerts skip it.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{duration::GoDuration, validate::FieldError};

/// Longest window (31 days).
pub const MAX_WINDOW: Duration = Duration::from_secs(744 * 3600);

/// One recurring maintenance window, as users write it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// When each window opens: a five-field cron expression (minute hour day-of-month month
    /// day-of-week), e.g. `0 2 * * SUN`.
    #[schemars(length(min = 9, max = 128))]
    pub schedule: String,
    /// How long each window stays open (at most 744h).
    pub duration: GoDuration,
    /// IANA time zone the schedule is read in, e.g. `Europe/Berlin` (default UTC); daylight
    /// saving changes are honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub timezone: Option<String>,
}

/// Parsed windows.
#[derive(Debug, Clone, Default)]
pub struct MaintenanceWindows(Vec<Window>);

#[derive(Debug, Clone)]
struct Window {
    crontab: cronexpr::Crontab,
    duration: Duration,
}

impl MaintenanceWindows {
    /// Parses `windows`, naming the field of each error.
    pub fn parse(windows: &[MaintenanceWindow]) -> Result<Self, Vec<FieldError>> {
        let mut parsed = Vec::new();
        let mut errors = Vec::new();
        for (i, window) in windows.iter().enumerate() {
            match parse_window(&format!("spec.maintenanceWindows[{i}]"), window) {
                Ok(window) => parsed.push(window),
                Err(error) => errors.push(error),
            }
        }
        if errors.is_empty() {
            Ok(Self(parsed))
        } else {
            Err(errors)
        }
    }

    /// Whether `at` falls inside any window: some opening `f` with `f <= at < f + duration`.
    pub fn contains(&self, at: jiff::Timestamp) -> bool {
        self.0.iter().any(|window| window.contains(at))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Window {
    fn contains(&self, at: jiff::Timestamp) -> bool {
        let Ok(span) = jiff::SignedDuration::try_from(self.duration) else {
            return false;
        };
        let Some(earliest) = at.checked_sub(span).ok() else {
            return false;
        };
        // The first opening strictly after `at - duration` is the only one whose window can
        // still hold `at`.
        self.crontab
            .find_next(earliest)
            .is_ok_and(|opening| opening.timestamp() <= at)
    }
}

fn parse_window(field: &str, window: &MaintenanceWindow) -> Result<Window, FieldError> {
    let duration = window
        .duration
        .parse(&format!("{field}.duration"), MAX_WINDOW)?;
    let schedule = CronSchedule::parse(field, &window.schedule, window.timezone.as_deref())?;
    Ok(Window {
        crontab: schedule.crontab,
        duration,
    })
}

/// A five-field cron schedule read in an IANA time zone: maintenance windows' and heartbeat
/// checks' `schedule` + `timezone`, parsed and checked the same way.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    crontab: cronexpr::Crontab,
    text: String,
}

impl CronSchedule {
    /// Parses `schedule` in `timezone` (default UTC); errors name `{field}.schedule` or
    /// `{field}.timezone`.
    pub fn parse(field: &str, schedule: &str, timezone: Option<&str>) -> Result<Self, FieldError> {
        let error = |sub: &str, message: String| FieldError {
            field: format!("{field}.{sub}"),
            message,
        };
        let fields = schedule.split_whitespace().count();
        if fields != 5 {
            return Err(error(
                "schedule",
                format!(
                    "{schedule:?} has {fields} fields; use five: minute hour day-of-month month day-of-week"
                ),
            ));
        }
        let zone = timezone.unwrap_or("UTC");
        if jiff::tz::db().get(zone).is_err() {
            return Err(error(
                "timezone",
                format!("{zone:?} is not an IANA time zone"),
            ));
        }
        let text = format!("{schedule} {zone}");
        let crontab = cronexpr::parse_crontab(&text).map_err(|e| {
            error(
                "schedule",
                format!("{schedule:?} is not a cron expression: {e}"),
            )
        })?;
        // A schedule that never fires (30 February) is a mistake worth naming now.
        if next_opening(&crontab, jiff::Timestamp::now()).is_none() {
            return Err(error(
                "schedule",
                format!(
                    "{schedule:?} never fires (no opening within {HORIZON_YEARS} years, a whole cycle of the calendar)"
                ),
            ));
        }
        Ok(Self { crontab, text })
    }

    /// The first time the schedule fires strictly after `from`.
    pub fn next_after(&self, from: jiff::Timestamp) -> Option<jiff::Timestamp> {
        next_opening(&self.crontab, from).map(|at| at.timestamp())
    }

    /// The schedule and its zone as written (`0 6 * * * Europe/Berlin`).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// How far [`next_opening`] looks: the Gregorian calendar repeats its weekdays every 400
/// years, so a schedule without an opening in 400 years has none at all.
const HORIZON_YEARS: i16 = 400;

/// The first opening after `from`, within [`HORIZON_YEARS`]. `cronexpr` gives up after four
/// years, which rejects rare but valid schedules such as `0 0 * 2 MON#5` (a fifth Monday in
/// February, once in 28 years), so its search is resumed four years at a time.
fn next_opening(crontab: &cronexpr::Crontab, from: jiff::Timestamp) -> Option<jiff::Zoned> {
    const STEP_YEARS: i16 = 4;
    let mut start = from.to_zoned(jiff::tz::TimeZone::UTC);
    for _ in 0..HORIZON_YEARS / STEP_YEARS {
        if let Ok(opening) = crontab.find_next(start.timestamp()) {
            return Some(opening);
        }
        // find_next searched (start, start + 4 years] in the schedule's zone: resume a little
        // before where it stopped, so no opening falls between two searches.
        start = (start.checked_add(jiff::Span::new().years(STEP_YEARS)))
            .and_then(|later| later.checked_sub(jiff::Span::new().days(2)))
            .ok()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(schedule: &str, duration: &str, timezone: Option<&str>) -> MaintenanceWindows {
        let window = MaintenanceWindow {
            schedule: schedule.into(),
            duration: GoDuration::new(duration),
            timezone: timezone.map(str::to_string),
        };
        MaintenanceWindows::parse(&[window]).unwrap()
    }

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_window_opens_at_its_schedule_and_closes_after_its_duration() {
        let nightly = windows("0 2 * * *", "1h", None);
        assert!(!nightly.contains(at("2026-03-10T01:59:59Z")));
        assert!(nightly.contains(at("2026-03-10T02:00:00Z")));
        assert!(nightly.contains(at("2026-03-10T02:59:59Z")));
        assert!(!nightly.contains(at("2026-03-10T03:00:00Z")));
    }

    /// Asserts, for each (time, expected, why), whether `windows` contains the time.
    fn assert_open(windows: &MaintenanceWindows, cases: &[(&str, bool, &str)]) {
        for (time, open, why) in cases {
            assert_eq!(windows.contains(at(time)), *open, "{time}: {why}");
        }
    }

    #[test]
    fn windows_follow_their_time_zone_across_daylight_saving() {
        // 03:00 in Berlin is 02:00 UTC in winter (CET) and 01:00 UTC in summer (CEST); the
        // clocks go forward on 2026-03-29.
        let berlin = windows("0 3 * * *", "30m", Some("Europe/Berlin"));
        assert_open(
            &berlin,
            &[
                ("2026-03-28T02:10:00Z", true, "winter: 03:10 CET"),
                ("2026-03-29T02:10:00Z", false, "summer: 04:10 CEST"),
                ("2026-03-29T01:10:00Z", true, "summer: 03:10 CEST"),
            ],
        );
    }

    #[test]
    fn a_window_may_span_midnight_and_days() {
        let weekend = windows("0 22 * * FRI", "56h", Some("UTC"));
        assert_open(
            &weekend,
            &[
                ("2026-11-28T12:00:00Z", true, "Saturday noon"),
                ("2026-11-30T05:59:00Z", true, "Monday before six"),
                ("2026-11-30T06:00:00Z", false, "Monday six: closed"),
            ],
        );
    }

    #[test]
    fn rare_but_valid_schedules_are_accepted_and_impossible_ones_named() {
        // A fifth Monday in February happens only when 1 February of a leap year is a Monday
        // (2016, 2044, 2072): cronexpr alone finds none within its four years.
        let rare = windows("0 0 * 2 MON#5", "24h", None);
        assert!(rare.contains(at("2044-02-29T12:00:00Z")));
        assert!(!rare.contains(at("2044-02-28T12:00:00Z")));
        let from = at("2026-01-01T00:00:00Z");
        let crontab = cronexpr::parse_crontab("0 0 * 2 MON#5 UTC").unwrap();
        let opening = next_opening(&crontab, from).unwrap();
        assert_eq!(opening.timestamp(), at("2044-02-29T00:00:00Z"));
        let started = std::time::Instant::now();
        let never = cronexpr::parse_crontab("0 0 31 2,4,6,9,11 * UTC").unwrap();
        assert!(next_opening(&never, from).is_none());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "searching 400 years took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn bad_windows_name_their_field() {
        let bad = |schedule: &str, duration: &str, timezone: Option<&str>| {
            let window = MaintenanceWindow {
                schedule: schedule.into(),
                duration: GoDuration::new(duration),
                timezone: timezone.map(str::to_string),
            };
            MaintenanceWindows::parse(&[window]).unwrap_err()[0]
                .field
                .clone()
        };
        assert_eq!(
            bad("0 2 * *", "1h", None),
            "spec.maintenanceWindows[0].schedule"
        );
        assert_eq!(
            bad("0 2 30 2 *", "1h", None),
            "spec.maintenanceWindows[0].schedule"
        );
        assert_eq!(
            bad("0 2 * * *", "800h", None),
            "spec.maintenanceWindows[0].duration"
        );
        assert_eq!(
            bad("0 2 * * *", "1h", Some("Mars/Olympus")),
            "spec.maintenanceWindows[0].timezone"
        );
    }
}
