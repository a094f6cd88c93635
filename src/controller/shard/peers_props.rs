//! Whatever the Leases do (renew or not, declare any duration, vanish from lists, get
//! deleted by a watch event) and however lists are spaced: a peer counts as a member only
//! if its record changed within its clamped duration, a peer never seen renewing is waited
//! for at most one duration, a deleted Lease counts for nothing, and a peer that keeps
//! renewing and acknowledging stays a member. The clock is explicit (list times).

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const PEERS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone, Copy)]
enum Act {
    Renew,
    Same,
    Absent,
    WatchDelete,
}

#[derive(Debug, Clone)]
struct Step {
    advance_ms: u64,
    acts: [(Act, u64, bool); 3],
}

fn act() -> impl Strategy<Value = (Act, u64, bool)> {
    let act = prop_oneof![
        3 => Just(Act::Renew),
        3 => Just(Act::Same),
        1 => Just(Act::Absent),
        1 => Just(Act::WatchDelete),
    ];
    let seconds = prop_oneof![Just(1u64), Just(3), Just(9), Just(3_600)];
    (act, seconds, any::<bool>())
}

fn step() -> impl Strategy<Value = Step> {
    (0..4_000u64, [act(), act(), act()]).prop_map(|(advance_ms, acts)| Step { advance_ms, acts })
}

/// What the test knows of one peer.
#[derive(Debug, Default, Clone)]
struct Model {
    renewed_at: i64,
    /// When its record last changed in a list, or was first seen.
    changed: Option<Instant>,
    first_seen: Option<Instant>,
    seen_changing: bool,
    /// In the last list (and not deleted after it).
    present: bool,
    /// In the list before this one, with a record this one changed.
    renewed_now: bool,
    acks: bool,
    seconds: u64,
}

fn apply(peers: &mut Peers, models: &mut BTreeMap<&str, Model>, step: &Step, at: Instant) {
    let mut leases = Vec::new();
    for (peer, (act, seconds, acks)) in PEERS.iter().zip(step.acts) {
        let model = models.entry(peer).or_default();
        let was_present = model.present;
        model.renewed_now = false;
        match act {
            Act::Absent | Act::WatchDelete => model.present = false,
            Act::Renew | Act::Same => {
                let renew = matches!(act, Act::Renew) || model.first_seen.is_none();
                if renew {
                    model.renewed_at += 1;
                    model.seen_changing |= model.first_seen.is_some();
                    model.renewed_now = was_present && model.first_seen.is_some();
                    model.changed = Some(at);
                }
                model.first_seen.get_or_insert(at);
                (model.present, model.acks, model.seconds) = (true, acks, seconds);
                let name = format!("canary-shard-{peer}");
                leases.push(lease_for(&name, peer, model.renewed_at, true, seconds));
            }
        }
    }
    peers.observe(&leases, at, at);
    let acking: Vec<String> = (models.iter())
        .filter(|(_, m)| m.acks)
        .map(|(p, _)| p.to_string())
        .collect();
    peers.note_acks(|claim| acking.contains(&claim.identity));
    for (peer, (act, ..)) in PEERS.iter().zip(step.acts) {
        if matches!(act, Act::WatchDelete) {
            peers.deleted(&format!("canary-shard-{peer}"));
        }
    }
}

fn check(
    peers: &Peers,
    models: &BTreeMap<&str, Model>,
    (first, at): (Instant, Instant),
) -> Result<(), TestCaseError> {
    let members: Vec<&str> = peers.members().map(|c| c.identity.as_str()).collect();
    let waited: Vec<&str> = peers.alive_claims().map(|c| c.identity.as_str()).collect();
    for (peer, model) in models {
        let clamped = Duration::from_secs(model.seconds).min(D * 4);
        let since_change = model.changed.map(|c| at.saturating_duration_since(c));
        let fresh = since_change.is_some_and(|d| d < clamped);
        if members.contains(peer) {
            prop_assert!(
                model.present && model.seen_changing && fresh,
                "{peer}: {model:?}"
            );
        }
        if waited.contains(peer) {
            prop_assert!(model.present && fresh, "{peer} waited for: {model:?}");
            let probation = model.first_seen.map(|f| at.saturating_duration_since(f));
            let predates = model.first_seen == Some(first);
            prop_assert!(
                model.seen_changing || (predates && probation < Some(D)),
                "{peer}: {model:?}"
            );
        }
        if model.renewed_now && model.acks {
            prop_assert!(
                members.contains(peer),
                "{peer} renews and acknowledges: {model:?}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn only_live_peers_count(steps in prop::collection::vec(step(), 1..60)) {
        let mut peers = table();
        let mut models = BTreeMap::new();
        let mut at = Instant::now();
        let first = at + Duration::from_millis(steps[0].advance_ms);
        for step in &steps {
            at += Duration::from_millis(step.advance_ms);
            apply(&mut peers, &mut models, step, at);
            check(&peers, &models, (first, at))?;
        }
    }
}
