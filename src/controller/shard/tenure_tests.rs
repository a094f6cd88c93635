//! A replica's tenure on tokio's paused clock: step-down at the renew deadline, rejoining as a
//! candidate, the join delay's hysteresis and its reset.

use std::time::Duration;

use tokio::time::{Instant, advance};

use super::{Tenure, Turn, next_wake};
use crate::controller::shard::{ShardConfig, Standing};

/// A 3s Lease: renewals every 1s, renew deadline 2s, join delay 1s at start, at most 48s.
const D: Duration = Duration::from_secs(3);
const MS: Duration = Duration::from_millis(1);

fn tenure() -> Tenure {
    Tenure::new(&ShardConfig::new("ring", "ns".into(), "r1".into(), D))
}

/// Renews (a confirmed write sent now, claiming what the tenure admits) and says so.
fn renew(tenure: &mut Tenure) -> Turn {
    let now = Instant::now();
    tenure.check_deadline(now);
    let member = tenure.admits(now);
    tenure.confirmed(member, now)
}

/// Renews every renew period for `span`; returns whether it was admitted meanwhile.
async fn renew_for(tenure: &mut Tenure, span: Duration) -> bool {
    let end = Instant::now() + span;
    let mut admitted = false;
    while Instant::now() < end {
        admitted |= renew(tenure) == Turn::Admitted;
        advance(D / 3).await;
    }
    admitted
}

/// Admitted: renewed for the join delay of a replica that just started.
async fn admitted() -> Tenure {
    let mut tenure = tenure();
    assert!(renew_for(&mut tenure, D / 3 + MS).await);
    assert_eq!(tenure.standing(Instant::now()), Standing::Member);
    tenure
}

/// Cut off until past its renew deadline: steps down.
async fn step_down(tenure: &mut Tenure) {
    advance(D * 2 / 3).await;
    assert_eq!(tenure.check_deadline(Instant::now()), Turn::SteppedDown);
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_cannot_renew_steps_down_at_its_renew_deadline() {
    let mut tenure = admitted().await;
    let renewed = Instant::now();
    assert_eq!(renew(&mut tenure), Turn::Same);
    assert_eq!(tenure.deadline(), Some(renewed + D * 2 / 3));
    // Renewals stop coming back: a member, probing, until the last one's deadline.
    advance(D * 2 / 3 - MS).await;
    let now = Instant::now();
    assert_eq!(tenure.check_deadline(now), Turn::Same);
    assert_eq!(tenure.standing(now), Standing::Member);
    assert_eq!(tenure.probe_until(now), renewed + D * 2 / 3);
    advance(MS).await;
    let now = Instant::now();
    assert_eq!(
        tenure.standing(now),
        Standing::SteppedDown,
        "even unchecked"
    );
    assert_eq!(tenure.probe_until(now), now, "probes nothing");
    assert_eq!(tenure.check_deadline(now), Turn::SteppedDown);
    assert_eq!(tenure.check_deadline(now), Turn::Same, "announced once");
    assert!(!tenure.admits(now), "the next write says candidate");
    assert!(tenure.renewal_due(now));
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_stepped_down_rejoins_as_a_candidate_until_its_join_delay_passed() {
    let mut tenure = admitted().await;
    step_down(&mut tenure).await;
    assert_eq!(
        tenure.join_delay(),
        D,
        "one duration after the first step-down"
    );
    // It renews again: a candidate, probing nothing, claiming no membership.
    assert_eq!(renew(&mut tenure), Turn::Same);
    let back = Instant::now();
    assert_eq!(tenure.standing(back), Standing::Candidate);
    assert_eq!(tenure.probe_until(back), back);
    assert!(!renew_for(&mut tenure, D - MS).await);
    assert_eq!(tenure.standing(Instant::now()), Standing::Candidate);
    // A renewal of a candidate is due at the renew period and admission at the join delay.
    let [_, _, admission] = tenure.due();
    assert_eq!(admission, Some(back + D));
    advance(back + D - Instant::now()).await;
    assert_eq!(renew(&mut tenure), Turn::Admitted);
    assert_eq!(tenure.standing(Instant::now()), Standing::Member);
}

#[tokio::test(start_paused = true)]
async fn each_step_down_doubles_the_join_delay_up_to_sixteen_durations() {
    let mut tenure = admitted().await;
    let mut delays = Vec::new();
    for _ in 0..6 {
        step_down(&mut tenure).await;
        delays.push(tenure.join_delay() / D.as_secs() as u32);
        // Back for a moment (shorter than the delay): renews as a candidate, not admitted.
        assert!(!renew_for(&mut tenure, D / 3).await);
    }
    let secs: Vec<u64> = delays.iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 16], "in durations");
}

#[tokio::test(start_paused = true)]
async fn sixteen_durations_admitted_reset_the_join_delay() {
    let mut tenure = admitted().await;
    step_down(&mut tenure).await;
    step_down_again_after_renewing(&mut tenure).await;
    assert_eq!(tenure.join_delay(), 2 * D);
    // Steady again: admitted after its 2 durations, then in for 16 durations minus a bit.
    assert!(renew_for(&mut tenure, 2 * D + MS).await);
    let admitted_at = Instant::now() - D / 3;
    renew_for(&mut tenure, admitted_at + 16 * D - Instant::now() - MS).await;
    assert_eq!(tenure.join_delay(), 2 * D, "not yet");
    renew_for(&mut tenure, D).await;
    assert_eq!(
        tenure.join_delay(),
        D / 3,
        "reset to the delay of a fresh start"
    );
    // So the next step-down costs one duration again, not four.
    step_down(&mut tenure).await;
    assert_eq!(tenure.join_delay(), D);
}

/// Renews once (a candidate) and is cut off again.
async fn step_down_again_after_renewing(tenure: &mut Tenure) {
    renew(tenure);
    step_down(tenure).await;
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_never_renewed_is_stepped_down_and_due_for_a_renewal() {
    let mut tenure = tenure();
    let now = Instant::now();
    assert_eq!(tenure.standing(now), Standing::SteppedDown);
    assert!(tenure.renewal_due(now) && !tenure.admits(now));
    assert_eq!(
        tenure.check_deadline(now),
        Turn::Same,
        "nothing to step down from"
    );
    assert_eq!(tenure.due(), [None, None, None]);
    // Its first confirmed write: a candidate, admitted after a third of the duration.
    assert_eq!(tenure.confirmed(false, now), Turn::Same);
    assert_eq!(tenure.standing(now), Standing::Candidate);
    assert_eq!(
        tenure.due(),
        [Some(now + D / 3), Some(now + D * 2 / 3), Some(now + D / 3)]
    );
}

#[test]
fn the_next_wake_is_the_earliest_moment_still_ahead() {
    let now = Instant::now();
    let (past, soon, later) = (now - MS, now + MS, now + D);
    let fallback = now + D / 6;
    assert_eq!(
        next_wake(now, [Some(later), None, Some(soon), Some(past)], fallback),
        soon
    );
    assert_eq!(next_wake(now, [Some(past), Some(now)], fallback), fallback);
    assert_eq!(next_wake(now, [None], fallback), fallback);
}
