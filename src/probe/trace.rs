//! Per-probe trace: which phase the probe is in (so a timeout can name it), time spent in
//! each phase (summed over redirect hops), and facts learned on the way.

use std::{sync::Mutex, time::Duration};

use tokio::time::Instant;

use super::TlsCapture;

/// The phases of a probe, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Dns,
    Connect,
    Tls,
    /// Request sent, waiting for the response headers.
    FirstByte,
    /// Reading the body.
    Transfer,
    /// Checking expectations.
    Evaluate,
}

impl Phase {
    /// Phrase for messages: "during TLS handshake".
    pub fn describe(self) -> &'static str {
        match self {
            Self::Dns => "DNS resolution",
            Self::Connect => "TCP connect",
            Self::Tls => "TLS handshake",
            Self::FirstByte => "wait for response headers",
            Self::Transfer => "body transfer",
            Self::Evaluate => "evaluation",
        }
    }
}

/// Time spent in each phase; `None` when the phase did not happen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseTimings {
    pub dns: Option<Duration>,
    pub connect: Option<Duration>,
    pub tls: Option<Duration>,
    pub first_byte: Option<Duration>,
    pub transfer: Option<Duration>,
}

impl PhaseTimings {
    fn slot(&mut self, phase: Phase) -> Option<&mut Option<Duration>> {
        match phase {
            Phase::Dns => Some(&mut self.dns),
            Phase::Connect => Some(&mut self.connect),
            Phase::Tls => Some(&mut self.tls),
            Phase::FirstByte => Some(&mut self.first_byte),
            Phase::Transfer => Some(&mut self.transfer),
            Phase::Evaluate => None,
        }
    }

    /// Every phase that happened, with its name as used in metrics and status.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Duration)> {
        [
            ("dns", self.dns),
            ("connect", self.connect),
            ("tls", self.tls),
            ("first_byte", self.first_byte),
            ("transfer", self.transfer),
        ]
        .into_iter()
        .filter_map(|(name, d)| d.map(|d| (name, d)))
    }
}

struct State {
    phase: Phase,
    since: Instant,
    timings: PhaseTimings,
    http_status: Option<u16>,
    tls: Option<TlsCapture>,
}

/// Shared by the probe future and [`super::run`], which reads it after a timeout.
pub struct Trace {
    state: Mutex<State>,
}

impl Trace {
    pub fn new(start: Instant) -> Self {
        Self {
            state: Mutex::new(State {
                phase: Phase::Dns,
                since: start,
                timings: PhaseTimings::default(),
                http_status: None,
                tls: None,
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A poisoned lock only means a panic elsewhere mid-update; the data is still usable.
        let mut state = crate::lock(&self.state);
        f(&mut state)
    }

    /// Closes the current phase and starts `phase`.
    pub fn enter(&self, phase: Phase) {
        self.with(|s| {
            close_phase(s);
            s.phase = phase;
        });
    }

    /// The phase the probe is in.
    pub fn phase(&self) -> Phase {
        self.with(|s| s.phase)
    }

    pub fn set_http_status(&self, status: u16) {
        self.with(|s| s.http_status = Some(status));
    }

    pub fn set_tls(&self, facts: TlsCapture) {
        self.with(|s| s.tls = Some(facts));
    }

    /// Closes the last phase and hands out what was learned.
    pub fn finish(&self) -> (PhaseTimings, Option<u16>, Option<TlsCapture>) {
        self.with(|s| {
            close_phase(s);
            s.phase = Phase::Evaluate;
            (s.timings, s.http_status, s.tls.take())
        })
    }
}

fn close_phase(state: &mut State) {
    let now = Instant::now();
    let spent = now.saturating_duration_since(state.since);
    state.since = now;
    if let Some(slot) = state.timings.slot(state.phase) {
        *slot = Some(slot.unwrap_or_default() + spent);
    }
}
