//! Waiting for a condition with a deadline instead of sleeping: every failure message names
//! what was awaited and what was last seen.

use std::time::{Duration, Instant};

/// Polls `probe` every `every` until it returns `Ok`, failing after `deadline` with `what` and
/// the last observation.
pub async fn eventually<T>(
    deadline: Duration,
    what: &str,
    every: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let until = Instant::now() + deadline;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= until => {
                panic!("timed out after {deadline:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// Polls `observe` every `every` until its value has stayed the same for `hold`, failing after
/// `deadline` with `what` and the last value. Returns the steady value.
pub async fn steady<T: PartialEq + std::fmt::Debug>(
    deadline: Duration,
    hold: Duration,
    what: &str,
    every: Duration,
    mut observe: impl AsyncFnMut() -> T,
) -> T {
    let mut last = observe().await;
    let mut since = Instant::now();
    eventually(deadline, what, every, async || {
        let now = observe().await;
        if now != last {
            (last, since) = (now, Instant::now());
        }
        if since.elapsed() >= hold {
            Ok(())
        } else {
            Err(format!("{last:?} for {:?}", since.elapsed()))
        }
    })
    .await;
    last
}
