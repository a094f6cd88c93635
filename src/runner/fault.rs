//! Faults injected on purpose, for the self-audit's end-to-end tests (as
//! `CANARY_FAULT_INJECT_PANIC` is for the supervisor):
//!
//! - `CANARY_FAULT_INJECT_LOSE_RUNNER=<namespace>/<name>`: the first start of that check's
//!   runner is lost (the scheduler says it started and holds nothing: the bookkeeping slip the
//!   audit exists to catch); with `:always` appended, every start is lost, so the audit's
//!   recovery cannot take and `/healthz` must fail.
//! - `CANARY_FAULT_INJECT_STALL_RUNNER=<namespace>/<name>`: the first task of that check's
//!   runner never wakes (a runner that stopped advancing); its restart runs normally.

use std::sync::Mutex;

use crate::{api::CheckKey, lock};

/// Loses a check's runner starts.
pub const LOSE_RUNNER_ENV: &str = "CANARY_FAULT_INJECT_LOSE_RUNNER";
/// Stalls a check's first runner task.
pub const STALL_RUNNER_ENV: &str = "CANARY_FAULT_INJECT_STALL_RUNNER";

/// One armed fault: the check, and whether it fires every time or once.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Armed {
    key: CheckKey,
    always: bool,
}

impl Armed {
    fn parse(value: &str) -> Option<Self> {
        let (target, always) = match value.strip_suffix(":always") {
            Some(target) => (target, true),
            None => (value, false),
        };
        let (namespace, name) = target.split_once('/')?;
        let key = CheckKey {
            namespace: namespace.into(),
            name: name.into(),
        };
        Some(Self { key, always })
    }

    fn from_env(var: &str) -> Option<Self> {
        std::env::var(var).ok().as_deref().and_then(Self::parse)
    }
}

/// The faults armed in this process.
#[derive(Debug, Default)]
pub(super) struct Faults {
    lose: Mutex<Option<Armed>>,
    stall: Mutex<Option<Armed>>,
}

impl Faults {
    /// The faults the environment arms.
    pub(super) fn from_env() -> Self {
        Self {
            lose: Mutex::new(Armed::from_env(LOSE_RUNNER_ENV)),
            stall: Mutex::new(Armed::from_env(STALL_RUNNER_ENV)),
        }
    }

    /// Arms a fault in a unit test: `key`'s starts are lost (`lose`) or its first task stalls.
    #[cfg(test)]
    pub(super) fn arm(&self, key: &CheckKey, lose: bool, always: bool) {
        let armed = Some(Armed {
            key: key.clone(),
            always,
        });
        *lock(if lose { &self.lose } else { &self.stall }) = armed;
    }

    /// Whether a new runner of `key` is to be lost.
    pub(super) fn loses(&self, key: &CheckKey) -> bool {
        fire(&self.lose, key)
    }

    /// Whether the task of `key` about to start is to never wake.
    pub(super) fn stalls(&self, key: &CheckKey) -> bool {
        fire(&self.stall, key)
    }
}

/// Whether `armed` fires for `key`, disarming a one-shot fault.
fn fire(armed: &Mutex<Option<Armed>>, key: &CheckKey) -> bool {
    let mut armed = lock(armed);
    let Some(fault) = armed.as_ref().filter(|fault| fault.key == *key) else {
        return false;
    };
    if !fault.always {
        *armed = None;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_shot_fault_fires_once_and_an_always_fault_every_time() {
        let key = CheckKey {
            namespace: "a".into(),
            name: "c".into(),
        };
        let once = Mutex::new(Armed::parse("a/c"));
        assert!(fire(&once, &key));
        assert!(!fire(&once, &key));
        let always = Mutex::new(Armed::parse("a/c:always"));
        assert!(fire(&always, &key) && fire(&always, &key));
        let other = CheckKey {
            namespace: "a".into(),
            name: "d".into(),
        };
        assert!(!fire(&always, &other));
        assert_eq!(Armed::parse("no-slash"), None);
    }
}
