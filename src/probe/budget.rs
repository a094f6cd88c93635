//! One budget for the body bytes all probes hold at once (`--body-buffer-budget`). A body is
//! streamed, but `bodyRegex` buffers up to `regexBodyLimit` (4Mi at most): 64 probes of targets
//! that send 5 MiB and pause held 237-306 MB. Each buffer reserves its bytes here before it
//! grows and returns them when the probe ends, so N probes x limit can never exceed the budget;
//! a probe that finds the budget spent fails at once with `BodyBudgetExceeded`, a failure of the
//! check (never `ProberError`: a hoarding target must not drive the prober-error streak).

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

/// The default budget: 64 MiB, a quarter of the chart's 256Mi memory limit.
pub const DEFAULT_BODY_BUFFER_BUDGET: u64 = 64 << 20;
/// [`DEFAULT_BODY_BUFFER_BUDGET`] as the `--body-buffer-budget` flag writes it.
pub const DEFAULT_BODY_BUFFER_BUDGET_FLAG: &str = "64Mi";

/// The process-wide budget of buffered body bytes, shared by every probe of a [`super::ProbeContext`].
#[derive(Debug, Clone)]
pub struct BodyBudget(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    limit: u64,
    held: AtomicU64,
}

impl BodyBudget {
    pub fn new(limit: u64) -> Self {
        Self(Arc::new(Shared {
            limit,
            held: AtomicU64::new(0),
        }))
    }

    /// The budget in bytes.
    pub fn limit(&self) -> u64 {
        self.0.limit
    }

    /// Bytes reserved right now by all probes.
    pub fn held(&self) -> u64 {
        self.0.held.load(Ordering::Relaxed)
    }

    /// An empty reservation, grown with [`Reservation::grow`].
    pub fn reserve(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }

    fn take(&self, bytes: u64) -> bool {
        let held = &self.0.held;
        held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            now.checked_add(bytes)
                .filter(|total| *total <= self.0.limit)
        })
        .is_ok()
    }
}

impl Default for BodyBudget {
    fn default() -> Self {
        Self::new(DEFAULT_BODY_BUFFER_BUDGET)
    }
}

/// Bytes one probe holds from the budget, returned when it is dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: BodyBudget,
    bytes: u64,
}

impl Reservation {
    /// Reserves `more` bytes; false (and nothing reserved) when the budget has no room.
    pub fn grow(&mut self, more: u64) -> bool {
        let granted = self.budget.take(more);
        if granted {
            self.bytes += more;
        }
        granted
    }

    /// Makes the reservation hold at least `total` bytes, growing by doubling (so a tree charged
    /// node by node takes the budget's lock a logarithmic number of times), else by exactly
    /// what is missing; false when the budget has no room for that either.
    pub fn cover(&mut self, total: u64) -> bool {
        let held = self.bytes;
        if total <= held {
            return true;
        }
        let missing = total - held;
        self.grow(missing.max(held)) || self.grow(missing)
    }

    /// Returns what it holds past `bytes` to the budget (what a dropped tree was charged).
    pub fn release_to(&mut self, bytes: u64) {
        let extra = self.bytes.saturating_sub(bytes);
        self.budget.0.held.fetch_sub(extra, Ordering::AcqRel);
        self.bytes -= extra;
    }

    /// Bytes this reservation holds.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The budget it draws on.
    pub fn budget(&self) -> &BodyBudget {
        &self.budget
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.0.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_default_is_the_default() {
        let parsed = crate::api::parse_quantity(DEFAULT_BODY_BUFFER_BUDGET_FLAG);
        assert_eq!(parsed, Some(DEFAULT_BODY_BUFFER_BUDGET));
    }

    #[test]
    fn reservations_never_exceed_the_budget_and_return_their_bytes() {
        let budget = BodyBudget::new(100);
        let mut a = budget.reserve();
        let mut b = budget.reserve();
        assert!(a.grow(60));
        assert!(!b.grow(41), "60 + 41 > 100");
        assert_eq!(b.bytes(), 0);
        assert!(b.grow(40));
        assert_eq!(budget.held(), 100);
        assert!(!a.grow(1));
        drop(a);
        assert_eq!(budget.held(), 40);
        assert!(b.grow(60));
        drop(b);
        assert_eq!(budget.held(), 0);
    }
}
