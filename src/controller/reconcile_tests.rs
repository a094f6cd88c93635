//! The core promise, as a property: for any interleaving of events from several namespace
//! watches (lists, relists with objects added, changed and gone meanwhile, applies, deletes)
//! and of ring changes, once the events are applied and the ring settles, the checks running
//! are exactly the live objects this replica owns; and at every step nothing runs that is not
//! live and owned.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use kube::runtime::watcher::Event;
use proptest::prelude::*;

use super::*;
use crate::controller::{
    fixtures::{CheckFixture, check, context},
    shard::{Assignment, Ring, Standing},
};

const NAMESPACES: [&str; 3] = ["a", "b", "c"];
const MEMBERS: [&str; 3] = ["r0", "r1", "r2"];

/// What one namespace's watch does next.
#[derive(Debug, Clone)]
enum NsOp {
    /// A relist listing these objects (name index, generation).
    Relist(Vec<(usize, i64)>),
    Apply(usize, i64),
    Delete(usize),
}

/// A scope this replica may be given.
#[derive(Debug, Clone)]
enum ScopeOp {
    All,
    Nothing,
    Share {
        members: Vec<usize>,
        standing: Standing,
        may_gain: bool,
    },
}

impl ScopeOp {
    fn scope(&self) -> Scope {
        match self {
            Self::All => Scope::All,
            Self::Nothing => Scope::Nothing,
            Self::Share {
                members,
                standing,
                may_gain,
            } => Scope::Share(Assignment {
                identity: Arc::from("r0"),
                ring: Arc::new(Ring::new(members.iter().map(|m| MEMBERS[*m].to_string()))),
                standing: *standing,
                may_gain: *may_gain,
                quiet_after: None,
            }),
        }
    }

    /// The same scope once every member acknowledged it.
    fn settled(&self) -> Self {
        match self {
            Self::Share {
                members, standing, ..
            } => Self::Share {
                members: members.clone(),
                standing: *standing,
                may_gain: true,
            },
            other => other.clone(),
        }
    }
}

fn ns_op() -> impl Strategy<Value = NsOp> {
    let object = (0..4usize, 1..3i64);
    prop_oneof![
        proptest::collection::vec(object.clone(), 0..4).prop_map(NsOp::Relist),
        object.prop_map(|(name, generation)| NsOp::Apply(name, generation)),
        (0..4usize).prop_map(NsOp::Delete),
    ]
}

fn scope_op() -> impl Strategy<Value = ScopeOp> {
    let standing = prop_oneof![
        4 => Just(Standing::Member),
        1 => Just(Standing::Candidate),
        1 => Just(Standing::SteppedDown),
    ];
    let share = (
        proptest::collection::btree_set(0..3usize, 0..=3),
        standing,
        any::<bool>(),
    )
        .prop_map(|(members, standing, may_gain)| ScopeOp::Share {
            members: members.into_iter().collect(),
            standing,
            may_gain,
        });
    prop_oneof![1 => Just(ScopeOp::All), 1 => Just(ScopeOp::Nothing), 4 => share]
}

/// One low-level step: an event of a namespace's watch, a scope change, or the worker running.
#[derive(Debug, Clone)]
enum Step {
    Watch(usize, Box<Event<HealthCheck>>),
    Scope(ScopeOp),
    Settle,
}

/// The events of one namespace's watch: its first list, then its operations.
fn expand(ns: usize, first: Vec<(usize, i64)>, ops: Vec<NsOp>) -> Vec<Step> {
    let namespace = NAMESPACES[ns];
    let object =
        |name: usize, generation: i64| check(namespace, &format!("c{name}")).generation(generation);
    let mut steps = Vec::new();
    let relist = |steps: &mut Vec<Step>, objects: &[(usize, i64)]| {
        steps.push(Step::Watch(ns, Box::new(Event::Init)));
        let mut seen = BTreeSet::new();
        for (name, generation) in objects {
            if seen.insert(*name) {
                steps.push(Step::Watch(
                    ns,
                    Box::new(Event::InitApply(object(*name, *generation))),
                ));
            }
        }
        steps.push(Step::Watch(ns, Box::new(Event::InitDone)));
    };
    relist(&mut steps, &first);
    for op in ops {
        match op {
            NsOp::Relist(objects) => relist(&mut steps, &objects),
            NsOp::Apply(name, generation) => steps.push(Step::Watch(
                ns,
                Box::new(Event::Apply(object(name, generation))),
            )),
            NsOp::Delete(name) => {
                steps.push(Step::Watch(ns, Box::new(Event::Delete(object(name, 1)))))
            }
        }
    }
    steps
}

/// Interleaves the queues in the order `picks` chooses (each queue keeps its own order).
fn interleave(mut queues: Vec<std::collections::VecDeque<Step>>, picks: &[usize]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut picks = picks.iter().cycle();
    while queues.iter().any(|q| !q.is_empty()) {
        let open: Vec<usize> = (0..queues.len())
            .filter(|i| !queues[*i].is_empty())
            .collect();
        let pick = open[picks.next().copied().unwrap_or(0) % open.len()];
        steps.extend(queues[pick].pop_front());
    }
    steps
}

fn scenario() -> impl Strategy<Value = (Vec<Step>, ScopeOp)> {
    let namespace = (
        proptest::collection::vec((0..4usize, 1..3i64), 0..4),
        proptest::collection::vec(ns_op(), 0..6),
    );
    let namespaces = proptest::collection::vec(namespace, 2..=3);
    let scopes = proptest::collection::vec(
        prop_oneof![4 => scope_op().prop_map(Step::Scope), 1 => Just(Step::Settle)],
        0..6,
    );
    let picks = proptest::collection::vec(0..8usize, 1..64);
    (namespaces, scopes, picks, scope_op()).prop_map(|(namespaces, scopes, picks, last)| {
        let mut queues: Vec<_> = (namespaces.into_iter().enumerate())
            .map(|(ns, (first, ops))| expand(ns, first, ops).into())
            .collect();
        queues.push(scopes.into());
        (interleave(queues, &picks), last.settled())
    })
}

/// What the watches said: each namespace's committed objects (generation by name).
#[derive(Default)]
struct Model {
    committed: BTreeMap<usize, BTreeMap<usize, i64>>,
    relisting: BTreeMap<usize, BTreeMap<usize, i64>>,
}

impl Model {
    fn apply(&mut self, ns: usize, event: &Event<HealthCheck>) {
        let name = |o: &HealthCheck| {
            o.metadata.name.as_deref().unwrap_or("c0")[1..]
                .parse::<usize>()
                .unwrap_or(0)
        };
        match event {
            Event::Init => {
                self.relisting.insert(ns, BTreeMap::new());
            }
            Event::InitApply(o) => {
                (self.relisting.entry(ns).or_default())
                    .insert(name(o), o.metadata.generation.unwrap_or(1));
            }
            Event::InitDone => {
                let listed = self.relisting.remove(&ns).unwrap_or_default();
                self.committed.insert(ns, listed);
            }
            Event::Apply(o) => {
                (self.committed.entry(ns).or_default())
                    .insert(name(o), o.metadata.generation.unwrap_or(1));
            }
            Event::Delete(o) => {
                self.committed.entry(ns).or_default().remove(&name(o));
            }
        }
    }

    /// The live objects `scope` gives this replica.
    fn owned(&self, scope: &Scope) -> BTreeSet<String> {
        (self.committed.iter())
            .flat_map(|(ns, objects)| objects.keys().map(move |name| (NAMESPACES[*ns], *name)))
            .map(|(ns, name)| CheckKey {
                namespace: ns.into(),
                name: format!("c{name}"),
            })
            .filter(|key| match scope {
                Scope::All => true,
                Scope::Nothing => false,
                Scope::Share(assignment) => assignment.keeps(key),
            })
            .map(|key| key.to_string())
            .collect()
    }
}

fn running(core: &Core) -> BTreeSet<String> {
    core.ctx
        .scheduler
        .keys()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn run_scenario(steps: Vec<Step>, last: ScopeOp) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let namespaces = steps
            .iter()
            .filter_map(|s| match s {
                Step::Watch(ns, _) => Some(*ns),
                _ => None,
            })
            .max()
            .unwrap_or(0)
            + 1;
        let watches: Vec<WatchScope> = (0..namespaces)
            .map(|ns| WatchScope::namespace(NAMESPACES[ns]))
            .collect();
        let core = Core::new(context(), &watches);
        let mut model = Model::default();
        let mut scope = Scope::All;
        core.set_scope(scope.clone());
        for step in steps {
            match step {
                Step::Watch(ns, event) => {
                    model.apply(ns, &event);
                    core.on_event(&watches[ns], *event);
                }
                Step::Scope(op) => {
                    scope = op.scope();
                    core.set_scope(scope.clone());
                }
                Step::Settle => core.settle().await,
            }
            let owned = model.owned(&scope);
            let stray: Vec<String> = running(&core).difference(&owned).cloned().collect();
            prop_assert!(
                stray.is_empty(),
                "running without being live and owned: {stray:?}"
            );
        }
        let last = last.scope();
        core.set_scope(last.clone());
        core.settle().await;
        prop_assert_eq!(running(&core), model.owned(&last));
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn running_checks_are_exactly_the_live_objects_this_replica_owns((steps, last) in scenario()) {
        run_scenario(steps, last)?;
    }
}

#[tokio::test]
async fn existing_objects_of_two_namespaces_all_run_after_the_first_lists() {
    let watches = [WatchScope::namespace("a"), WatchScope::namespace("b")];
    let core = Core::new(context(), &watches);
    core.set_scope(Scope::All);
    // select_all interleaves the two first lists: the old loop kept one relist set for both.
    for (watch, event) in [
        (0, Event::Init),
        (0, Event::InitApply(check("a", "c0"))),
        (1, Event::Init),
        (1, Event::InitApply(check("b", "c0"))),
        (0, Event::InitDone),
        (1, Event::InitDone),
    ] {
        core.on_event(&watches[watch], event);
    }
    core.settle().await;
    assert_eq!(
        running(&core),
        BTreeSet::from(["a/c0".into(), "b/c0".into()])
    );
    assert!(core.ctx.synced.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_410_relist_of_one_namespace_keeps_the_other_running() {
    let watches = [WatchScope::namespace("a"), WatchScope::namespace("b")];
    let core = Core::new(context(), &watches);
    core.set_scope(Scope::All);
    for (watch, namespace) in watches.iter().zip(["a", "b"]) {
        core.on_event(watch, Event::Init);
        core.on_event(watch, Event::InitApply(check(namespace, "c0")));
        core.on_event(watch, Event::InitDone);
    }
    core.settle().await;
    // a's watch expired: kube-runtime relists it alone.
    core.on_event(&watches[0], Event::Init);
    core.on_event(&watches[0], Event::InitApply(check("a", "c1")));
    core.on_event(&watches[0], Event::InitDone);
    core.settle().await;
    assert_eq!(
        running(&core),
        BTreeSet::from(["a/c1".into(), "b/c0".into()])
    );
}

#[tokio::test]
async fn a_check_deleted_while_its_references_are_read_is_not_started() {
    let watch = WatchScope::all();
    let core = Core::new(context(), std::slice::from_ref(&watch));
    core.set_scope(Scope::All);
    core.on_event(&watch, Event::Init);
    core.on_event(&watch, Event::InitApply(check("a", "c0")));
    core.on_event(&watch, Event::InitDone);
    // The worker took the job; the object is deleted before it upserts.
    let job = lock(&core.work).queued.pop_first().expect("queued");
    core.on_event(&watch, Event::Delete(check("a", "c0")));
    core.build(&job.0, job.1).await;
    assert!(running(&core).is_empty(), "a deleted check was started");
}

#[tokio::test]
async fn the_resync_rebuilds_only_what_has_references_or_no_runner() {
    let watch = WatchScope::all();
    let core = Core::new(context(), std::slice::from_ref(&watch));
    core.set_scope(Scope::All);
    core.on_event(&watch, Event::Init);
    core.on_event(&watch, Event::InitApply(check("a", "c0")));
    // Its token cannot be read here (no API server): it has references and no runner.
    core.on_event(&watch, Event::InitApply(check("a", "h0").heartbeat()));
    core.on_event(&watch, Event::InitDone);
    core.settle().await;
    assert_eq!(running(&core), BTreeSet::from(["a/c0".into()]));
    let queued = |core: &Core| -> Vec<String> {
        (lock(&core.work).queued.keys())
            .map(ToString::to_string)
            .collect()
    };
    core.resync();
    assert_eq!(queued(&core), ["a/h0"], "c0 would be rebuilt the same");
    core.settle().await;
    core.ctx.scheduler.remove(&check_key("a", "c0"));
    core.resync();
    assert_eq!(
        queued(&core),
        ["a/c0", "a/h0"],
        "a check without a runner is"
    );
}

fn check_key(namespace: &str, name: &str) -> CheckKey {
    CheckKey::of(&check(namespace, name))
}
