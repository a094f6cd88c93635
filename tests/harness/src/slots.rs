//! A bound on how many heavy scenarios (an API server, an operator, kubectl) run at once in one
//! test binary, and a way for timing-sensitive ones (CPU shares, write rates) to run alone.
//! The bound is process-wide and fair: a scenario waiting to run alone is not overtaken.

use std::sync::OnceLock;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Heavy scenarios allowed at once.
pub const HEAVY: u32 = 3;

fn semaphore() -> std::sync::Arc<Semaphore> {
    static SLOTS: OnceLock<std::sync::Arc<Semaphore>> = OnceLock::new();
    (SLOTS.get_or_init(|| std::sync::Arc::new(Semaphore::new(HEAVY as usize)))).clone()
}

/// A held slot; released when dropped.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// One of [`HEAVY`] slots, shared with other heavy scenarios.
pub async fn shared() -> Slot {
    let _permit = semaphore()
        .acquire_many_owned(1)
        .await
        .expect("never closed");
    Slot { _permit }
}

/// Every slot: no other heavy scenario runs until this one is dropped.
pub async fn alone() -> Slot {
    let _permit = (semaphore().acquire_many_owned(HEAVY).await).expect("never closed");
    Slot { _permit }
}

#[tokio::test]
async fn a_scenario_running_alone_waits_for_the_shared_ones() {
    use std::time::Duration;
    let first = shared().await;
    let beside = tokio::time::timeout(Duration::from_millis(50), alone()).await;
    assert!(beside.is_err(), "ran alone beside a shared slot");
    drop(first);
    let after = tokio::time::timeout(Duration::from_secs(5), alone()).await;
    assert!(after.is_ok(), "alone once the shared slot is released");
}
