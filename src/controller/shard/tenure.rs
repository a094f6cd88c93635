//! Where this replica stands, decided from its confirmed renewals alone on an explicit
//! monotonic clock, with no I/O: the renew deadline that steps it down, the join delay that
//! admits it, and the hysteresis that lengthens that delay for a flapping replica (see the
//! module docs of [`super`]). [`super::Member`] tells it when each confirmed write was sent and
//! asks it what to claim, whether it may probe, and when to wake.

use std::time::Duration;

use tokio::time::Instant;

use super::{ShardConfig, Standing};

/// This replica's standing over time: its renewals, step-downs and admission.
#[derive(Debug, Clone)]
pub struct Tenure {
    renew_period: Duration,
    renew_deadline: Duration,
    duration: Duration,
    join_base: Duration,
    join_max: Duration,
    /// When the last confirmed write was sent.
    renewed_at: Option<Instant>,
    /// The first confirmed write since start or the last step-down.
    healthy_since: Option<Instant>,
    join_delay: Duration,
    /// When admission (`member: true`) was confirmed.
    admitted_at: Option<Instant>,
    /// The member flag of the last confirmed write (a failed write never sets it).
    member: bool,
}

/// What [`Tenure::confirmed`] and [`Tenure::check_deadline`] changed, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Nothing worth a log line.
    Same,
    /// The confirmed write was the first to say `member: true`.
    Admitted,
    /// The renew deadline passed: probing stops, the next write says candidate.
    SteppedDown,
}

impl Tenure {
    /// A replica that just started: no renewal yet, the shortest join delay.
    pub fn new(config: &ShardConfig) -> Self {
        Self {
            renew_period: config.renew_period(),
            renew_deadline: config.renew_deadline(),
            duration: config.duration,
            join_base: config.join_base(),
            join_max: config.join_max(),
            renewed_at: None,
            healthy_since: None,
            join_delay: config.join_base(),
            admitted_at: None,
            member: false,
        }
    }

    /// Whether the last confirmed write was sent less than the renew deadline before `now`.
    pub fn healthy(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|deadline| now < deadline)
    }

    /// When this replica stops probing unless it renews: the renew deadline after the last
    /// confirmed write was sent.
    pub fn deadline(&self) -> Option<Instant> {
        self.renewed_at.map(|at| at + self.renew_deadline)
    }

    /// Whether a renewal is due (none yet, or a renew period since the last).
    pub fn renewal_due(&self, now: Instant) -> bool {
        (self.renewed_at).is_none_or(|at| now >= at + self.renew_period)
    }

    /// Whether the next write should say `member: true`: healthy for the join delay.
    pub fn admits(&self, now: Instant) -> bool {
        self.healthy(now)
            && (self.healthy_since).is_some_and(|since| now >= since + self.join_delay)
    }

    /// A write sent at `sent` saying `member` was confirmed: a renewal.
    pub fn confirmed(&mut self, member: bool, sent: Instant) -> Turn {
        let admitted = member && !self.member;
        if admitted {
            self.admitted_at = Some(sent);
        }
        self.member = member;
        self.renewed_at = Some(sent);
        self.healthy_since.get_or_insert(sent);
        match admitted {
            true => Turn::Admitted,
            false => Turn::Same,
        }
    }

    /// Steps down when the renew deadline passed and lengthens the join delay (doubled, from
    /// one duration up to [`ShardConfig::join_max`]); resets the delay once admitted for that
    /// long.
    pub fn check_deadline(&mut self, now: Instant) -> Turn {
        let mut turn = Turn::Same;
        if self.healthy_since.is_some() && !self.healthy(now) {
            self.healthy_since = None;
            self.admitted_at = None;
            self.member = false;
            let doubled = (self.join_delay * 2).max(self.duration);
            self.join_delay = doubled.min(self.join_max);
            turn = Turn::SteppedDown;
        }
        if (self.admitted_at).is_some_and(|at| now >= at + self.join_max) {
            self.join_delay = self.join_base;
        }
        turn
    }

    /// Where this replica stands at `now`.
    pub fn standing(&self, now: Instant) -> Standing {
        match (self.healthy(now), self.member) {
            (false, _) => Standing::SteppedDown,
            (true, true) => Standing::Member,
            (true, false) => Standing::Candidate,
        }
    }

    /// Until when probes may start: the renew deadline for a member, `now` (nothing) otherwise.
    pub fn probe_until(&self, now: Instant) -> Instant {
        match (self.standing(now), self.deadline()) {
            (Standing::Member, Some(deadline)) => deadline,
            _ => now,
        }
    }

    /// The join delay a step-down would now be followed by.
    pub fn join_delay(&self) -> Duration {
        self.join_delay
    }

    /// The moments this tenure next changes by itself: a renewal due, the renew deadline,
    /// admission.
    pub fn due(&self) -> [Option<Instant>; 3] {
        let renew = self.renewed_at.map(|at| at + self.renew_period);
        let admission = (!self.member)
            .then(|| self.healthy_since.map(|at| at + self.join_delay))
            .flatten();
        [renew, self.deadline(), admission]
    }
}

/// The earliest of `moments` after `now`, else `fallback`.
pub fn next_wake(
    now: Instant,
    moments: impl IntoIterator<Item = Option<Instant>>,
    fallback: Instant,
) -> Instant {
    (moments.into_iter().flatten())
        .filter(|at| *at > now)
        .min()
        .unwrap_or(fallback)
}

#[cfg(test)]
#[path = "tenure_tests.rs"]
mod tests;
