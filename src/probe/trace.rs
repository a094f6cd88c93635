//! Per-probe trace: which phase the probe is in (so a timeout can name it), time spent in
//! each phase (summed over redirect hops), and facts learned on the way.

use std::{sync::Mutex, time::Duration};

use tokio::time::Instant;

use super::{Facts, KindFacts, TlsCapture};

/// The phases of a probe, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Obtaining credentials (an OAuth2 token) before the request.
    Auth,
    Dns,
    Connect,
    Tls,
    /// Request sent, waiting for the response headers.
    FirstByte,
    /// Reading the body.
    Transfer,
    /// DNS: query sent, waiting for the whole answer.
    Request,
    /// Checking expectations.
    Evaluate,
}

impl Phase {
    /// Phrase for messages: "during TLS handshake".
    pub fn describe(self) -> &'static str {
        match self {
            Self::Auth => "the OAuth2 token request",
            Self::Dns => "DNS resolution",
            Self::Connect => "TCP connect",
            Self::Tls => "TLS handshake",
            Self::FirstByte => "wait for response headers",
            Self::Transfer => "body transfer",
            Self::Request => "DNS query and answer",
            Self::Evaluate => "evaluation",
        }
    }
}

/// Time spent in each phase; `None` when the phase did not happen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseTimings {
    pub auth: Option<Duration>,
    pub dns: Option<Duration>,
    pub connect: Option<Duration>,
    pub tls: Option<Duration>,
    pub first_byte: Option<Duration>,
    pub transfer: Option<Duration>,
    pub request: Option<Duration>,
}

impl PhaseTimings {
    fn slot(&mut self, phase: Phase) -> Option<&mut Option<Duration>> {
        match phase {
            Phase::Auth => Some(&mut self.auth),
            Phase::Dns => Some(&mut self.dns),
            Phase::Connect => Some(&mut self.connect),
            Phase::Tls => Some(&mut self.tls),
            Phase::FirstByte => Some(&mut self.first_byte),
            Phase::Transfer => Some(&mut self.transfer),
            Phase::Request => Some(&mut self.request),
            Phase::Evaluate => None,
        }
    }

    /// Every phase that happened, with its name as used in metrics and status.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Duration)> {
        [
            ("auth", self.auth),
            ("dns", self.dns),
            ("connect", self.connect),
            ("tls", self.tls),
            ("first_byte", self.first_byte),
            ("transfer", self.transfer),
            ("request", self.request),
        ]
        .into_iter()
        .filter_map(|(name, d)| d.map(|d| (name, d)))
    }
}

struct State {
    phase: Phase,
    since: Instant,
    learned: Learned,
}

/// What a probe learned on the way, kept when it fails or times out later.
#[derive(Debug, Clone, Default)]
pub struct Learned {
    pub phases: PhaseTimings,
    pub facts: Facts,
    /// Something worth telling if the deadline passes (a stray reply that was ignored).
    pub note: Option<String>,
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
                learned: Learned::default(),
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

    /// Like [`Trace::enter`], except at the very start, where the probe begins in `phase`
    /// rather than leaving a DNS phase that never happened.
    pub fn begin(&self, phase: Phase) {
        self.with(|s| {
            if s.learned.phases != PhaseTimings::default() || s.phase != Phase::Dns {
                close_phase(s);
            }
            s.phase = phase;
        });
    }

    /// The phase the probe is in.
    pub fn phase(&self) -> Phase {
        self.with(|s| s.phase)
    }

    /// The last HTTP status seen.
    pub fn http_status(&self) -> Option<u16> {
        self.with(|s| match s.learned.facts.kind {
            KindFacts::Http { status } => Some(status),
            _ => None,
        })
    }

    pub fn set_http_status(&self, status: u16) {
        self.learn(KindFacts::Http { status });
    }

    pub fn set_tls(&self, facts: TlsCapture) {
        self.with(|s| s.learned.facts.tls = Some(facts));
    }

    /// Records what the probe's kind learned, kept should the deadline pass later.
    pub fn learn(&self, facts: KindFacts) {
        self.with(|s| s.learned.facts.kind = facts);
    }

    /// Updates what the probe's kind learned so far (a call's status, then its answer).
    pub fn update(&self, update: impl FnOnce(&mut KindFacts)) {
        self.with(|s| update(&mut s.learned.facts.kind));
    }

    /// Keeps `note` for the timeout message, should the deadline pass.
    pub fn note(&self, note: String) {
        self.with(|s| s.learned.note = Some(note));
    }

    /// Forgets the note: what it warned of is over.
    pub fn clear_note(&self) {
        self.with(|s| s.learned.note = None);
    }

    /// Closes the last phase and hands out what was learned.
    pub fn finish(&self) -> Learned {
        self.with(|s| {
            close_phase(s);
            s.phase = Phase::Evaluate;
            std::mem::take(&mut s.learned)
        })
    }
}

fn close_phase(state: &mut State) {
    let now = Instant::now();
    let spent = now.saturating_duration_since(state.since);
    state.since = now;
    if let Some(slot) = state.learned.phases.slot(state.phase) {
        *slot = Some(slot.unwrap_or_default() + spent);
    }
}
