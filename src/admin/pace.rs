//! Blocking work (rendering the status page and the metrics exposition) held to a share of
//! one core, whatever the request rate: jobs run one at a time on a blocking thread, and after
//! a job that took `d` the next one starts no sooner than `d × (1 − share) / share` later.
//! Probes, which run on the main runtime's threads, keep the rest of the machine.

use std::{sync::Arc, time::Duration};

use tokio::{sync::Mutex, time::Instant};

/// Why a paced job did not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum PaceError {
    #[error("no turn to render within {0:?}")]
    Busy(Duration),
    #[error("the job panicked or was cancelled: {0}")]
    Job(#[source] tokio::task::JoinError),
}

/// One queue of paced jobs.
pub struct Pace {
    /// Share of one core the jobs may take, in (0, 1].
    share: f64,
    /// When the next job may start; locked for a job's whole turn, so jobs never overlap.
    next: Mutex<Instant>,
}

impl Pace {
    /// A queue whose jobs take at most `share` (clamped to 1%..100%) of one core.
    pub fn new(share: f64) -> Arc<Self> {
        Arc::new(Self {
            share: share.clamp(0.01, 1.0),
            next: Mutex::new(Instant::now()),
        })
    }

    /// Runs `job` on a blocking thread in its turn; gives up when the turn does not come
    /// within `wait`. The turn is kept even if the caller goes away (the job runs to its end
    /// and is paid for), so a client that disconnects cannot make jobs overlap.
    pub async fn run<T, F>(self: &Arc<Self>, wait: Duration, job: F) -> Result<T, PaceError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let deadline = Instant::now() + wait;
        let pace = self.clone();
        let turn = tokio::spawn(async move {
            let mut next = tokio::time::timeout_at(deadline, pace.next.lock())
                .await
                .map_err(|_| PaceError::Busy(wait))?;
            if *next > deadline {
                return Err(PaceError::Busy(wait));
            }
            tokio::time::sleep_until(*next).await;
            let start = Instant::now();
            let result = tokio::task::spawn_blocking(job).await;
            *next = Instant::now() + pace.rest(start.elapsed());
            result.map_err(PaceError::Job)
        });
        turn.await.map_err(PaceError::Job)?
    }

    /// The pause owed after a job that took `took`.
    fn rest(&self, took: Duration) -> Duration {
        took.mul_f64((1.0 - self.share) / self.share)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each job records when it started and ended; jobs that take 20 ms at a 25 % share
    /// start at least 60 ms after the previous one ended.
    #[tokio::test]
    async fn jobs_run_one_at_a_time_and_rest_three_times_their_length_at_a_quarter() {
        let pace = Pace::new(0.25);
        let job = || {
            let start = std::time::Instant::now();
            std::thread::sleep(Duration::from_millis(20));
            (start, std::time::Instant::now())
        };
        let runs = futures::future::join_all((0..3).map(|_| pace.run(Duration::from_secs(5), job)));
        let mut spans: Vec<_> = runs.await.into_iter().map(Result::unwrap).collect();
        spans.sort();
        for pair in spans.windows(2) {
            let ((start, end), (next, _)) = (pair[0], pair[1]);
            assert!(next >= end, "jobs overlapped");
            assert!(
                next - end >= (end - start) * 3,
                "rested {:?} after a job of {:?}",
                next - end,
                end - start
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_beyond_the_wait_is_refused() {
        let pace = Pace::new(0.01);
        *pace.next.lock().await = Instant::now() + Duration::from_secs(60);
        let refused = pace.run(Duration::from_secs(1), || ()).await;
        assert!(matches!(refused, Err(PaceError::Busy(_))), "{refused:?}");
    }
}
