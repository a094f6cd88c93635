//! The index called directly: relists per watch, sync, changes, scopes.

use std::sync::Arc;

use kube::runtime::watcher::Event;

use super::*;
use crate::controller::{
    fixtures::{CheckFixture, check},
    shard::{Assignment, Ring, Standing},
};

fn key(namespace: &str, name: &str) -> CheckKey {
    CheckKey {
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn upsert(namespace: &str, name: &str) -> Change {
    Change::Upsert {
        key: key(namespace, name),
        run_now: false,
    }
}

/// An index of namespaces a and b, both listed with the given objects, running everything.
fn listed(a: &[&str], b: &[&str]) -> (Index, [WatchScope; 2]) {
    let watches = [WatchScope::namespace("a"), WatchScope::namespace("b")];
    let mut index = Index::new(&watches);
    index.set_scope(Scope::All);
    for (watch, names) in watches.iter().zip([a, b]) {
        relist(&mut index, watch, names);
    }
    (index, watches)
}

fn relist(index: &mut Index, watch: &WatchScope, names: &[&str]) -> Vec<Change> {
    let namespace = watch
        .namespace_name()
        .expect("a namespace watch")
        .to_string();
    let mut changes = index.apply(watch, Event::Init);
    for name in names {
        changes.extend(index.apply(watch, Event::InitApply(check(&namespace, name))));
    }
    changes.extend(index.apply(watch, Event::InitDone));
    changes
}

fn kept(index: &Index) -> Vec<String> {
    let mut keys: Vec<String> = (index.runnable(|_| true)).map(|k| k.to_string()).collect();
    keys.sort();
    keys
}

#[test]
fn a_relist_of_one_namespace_replaces_its_objects_and_nothing_else() {
    let (mut index, [a, _]) = listed(&["c0", "c1"], &["c0", "c1"]);
    let changes = relist(&mut index, &a, &["c1", "c2"]);
    assert_eq!(
        changes,
        vec![Change::Deleted(key("a", "c0")), upsert("a", "c2")],
        "c1 is unchanged, c0 gone, c2 new"
    );
    assert_eq!(kept(&index), ["a/c1", "a/c2", "b/c0", "b/c1"]);
}

#[test]
fn relists_interleaved_across_watches_keep_each_watchs_objects() {
    let (mut index, [a, b]) = listed(&["c0"], &["c0"]);
    index.apply(&a, Event::Init);
    index.apply(&b, Event::Init);
    index.apply(&a, Event::InitApply(check("a", "c0")));
    index.apply(&b, Event::InitApply(check("b", "c1")));
    // While both relist, the objects of the last complete lists stay.
    assert_eq!(kept(&index), ["a/c0", "b/c0"]);
    index.apply(&a, Event::InitDone);
    assert_eq!(kept(&index), ["a/c0", "b/c0"]);
    index.apply(&b, Event::InitDone);
    assert_eq!(kept(&index), ["a/c0", "b/c1"]);
}

#[test]
fn synced_only_once_every_watch_has_listed() {
    let watches = [WatchScope::namespace("a"), WatchScope::namespace("b")];
    let mut index = Index::new(&watches);
    relist(&mut index, &watches[0], &["c0"]);
    assert!(!index.synced(), "b has not listed");
    relist(&mut index, &watches[1], &[]);
    assert!(index.synced());
}

#[test]
fn our_own_status_write_changes_nothing_a_spec_change_does() {
    let (mut index, [a, _]) = listed(&["c0"], &[]);
    let status_only = index.apply(&a, Event::Apply(check("a", "c0").written(3)));
    assert_eq!(status_only, vec![]);
    assert_eq!(
        index.object(&key("a", "c0")).map(|o| o.status.is_some()),
        Some(true),
        "the latest object is kept"
    );
    let spec = index.apply(&a, Event::Apply(check("a", "c0").generation(2)));
    assert_eq!(spec, vec![upsert("a", "c0")]);
}

#[test]
fn a_new_run_now_value_asks_for_a_run_and_one_seen_first_does_not() {
    let watches = [WatchScope::all()];
    let mut index = Index::new(&watches);
    index.set_scope(Scope::All);
    let first = index.apply(&watches[0], Event::Apply(check("a", "c0").run_now("t1")));
    assert_eq!(
        first,
        vec![upsert("a", "c0")],
        "seen first: already handled"
    );
    let again = index.apply(&watches[0], Event::Apply(check("a", "c0").run_now("t2")));
    assert_eq!(again, vec![Change::RunNow(key("a", "c0"))]);
    let both = (index.apply(
        &watches[0],
        Event::Apply(check("a", "c0").run_now("t3").generation(2)),
    ))
    .into_iter()
    .collect::<Vec<_>>();
    assert_eq!(
        both,
        vec![Change::Upsert {
            key: key("a", "c0"),
            run_now: true
        }]
    );
}

#[test]
fn a_delete_reports_the_key_once() {
    let (mut index, [a, _]) = listed(&["c0"], &[]);
    assert_eq!(
        index.apply(&a, Event::Delete(check("a", "c0"))),
        vec![Change::Deleted(key("a", "c0"))]
    );
    assert_eq!(index.apply(&a, Event::Delete(check("a", "c0"))), vec![]);
}

fn share(members: &[&str], standing: Standing, may_gain: bool) -> Scope {
    Scope::Share(Assignment {
        identity: Arc::from("r0"),
        ring: Arc::new(Ring::new(members.iter().map(|m| m.to_string()))),
        standing,
        may_gain,
        quiet_after: None,
    })
}

#[test]
fn a_shard_member_keeps_its_share_and_starts_gains_only_once_acknowledged() {
    let names: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (mut index, _) = listed(&names, &[]);
    index.set_scope(share(&["r0", "r1"], Standing::Member, false));
    let owned: Vec<CheckKey> = (names.iter().map(|n| key("a", n)))
        .filter(|k| index.keeps(k))
        .collect();
    assert!(!owned.is_empty() && owned.len() < 20, "a share: {owned:?}");
    assert_eq!(index.owned_count(), owned.len());
    assert!(
        owned.iter().all(|k| !index.may_start(k, false)),
        "not acknowledged yet"
    );
    assert!(
        owned.iter().all(|k| index.may_start(k, true)),
        "running ones keep running"
    );
    index.set_scope(share(&["r0", "r1"], Standing::Member, true));
    assert!(owned.iter().all(|k| index.may_start(k, false)));
    index.set_scope(share(&["r0", "r1"], Standing::Candidate, true));
    assert_eq!(index.owned_count(), 0, "a candidate runs nothing");
}

#[test]
fn slim_drops_managed_fields_and_the_last_applied_copy_only() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    let mut object = check("a", "c0");
    object.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
        manager: Some("canary".into()),
        ..Default::default()
    }]);
    let annotations = object.metadata.annotations.get_or_insert_default();
    annotations.insert(LAST_APPLIED.into(), "{\"spec\":{}}".into());
    annotations.insert(RUN_NOW.into(), "1".into());
    let spec = object.spec.clone();
    slim(&mut object);
    assert_eq!(object.metadata.managed_fields, None);
    let annotations = object.metadata.annotations.as_ref().unwrap();
    assert!(!annotations.contains_key(LAST_APPLIED));
    assert_eq!(
        annotations.get(RUN_NOW).map(String::as_str),
        Some("1"),
        "Canary's own stay"
    );
    assert_eq!(object.spec, spec);
}

/// Whether the index keeps `key` parsed (not packed as JSON).
fn parsed(index: &Index, key: &CheckKey) -> bool {
    matches!(index.objects[key].kept, entry::Kept::Parsed(_))
}

/// Twenty checks in namespace a: c0..c9 without references, h0..h9 heartbeats (a Secret
/// reference each), listed while running everything.
fn mixed() -> (Index, WatchScope, Vec<CheckKey>) {
    let watches = [WatchScope::namespace("a")];
    let mut index = Index::new(&watches);
    index.set_scope(Scope::All);
    let mut objects: Vec<HealthCheck> = (0..10).map(|i| check("a", &format!("c{i}"))).collect();
    objects.extend((0..10).map(|i| check("a", &format!("h{i}")).heartbeat()));
    index.apply(&watches[0], Event::Init);
    for object in &objects {
        index.apply(&watches[0], Event::InitApply(object.clone()));
    }
    index.apply(&watches[0], Event::InitDone);
    let keys = objects.iter().map(CheckKey::of).collect();
    let [watch] = watches;
    (index, watch, keys)
}

#[test]
fn a_member_keeps_parsed_only_what_it_rebuilds_at_each_resync_and_every_object_reads_back_the_same()
{
    let (mut index, a, keys) = mixed();
    let before: Vec<Arc<HealthCheck>> = keys.iter().map(|k| index.object(k).unwrap()).collect();
    index.set_scope(share(&["r0", "r1"], Standing::Member, true));
    for (key, object) in keys.iter().zip(&before) {
        let rebuilt = index.keeps(key) && index.has_references(key);
        assert_eq!(parsed(&index, key), rebuilt, "{key}");
        assert_eq!(index.object(key).as_deref(), Some(object.as_ref()), "{key}");
    }
    assert!(keys.iter().any(|k| index.keeps(k) && parsed(&index, k)));
    // A peer's status write to a packed object changes nothing; a relist packs as it lists.
    let other = (keys.iter()).find(|k| !index.keeps(k)).unwrap().clone();
    let mut written = (before.iter())
        .find(|o| CheckKey::of(o.as_ref()) == other)
        .map(|o| o.as_ref().clone())
        .unwrap();
    written.status = Some(Default::default());
    assert_eq!(index.apply(&a, Event::Apply(written)), vec![]);
    assert!(!parsed(&index, &other));
    index.apply(&a, Event::Init);
    for object in &before {
        index.apply(&a, Event::InitApply(object.as_ref().clone()));
    }
    assert_eq!(index.apply(&a, Event::InitDone), vec![]);
    assert!(!parsed(&index, &other));
    assert_eq!(
        index.watched().count(),
        20,
        "the audit still sees every check"
    );
    // Everything gained (the other member left): what has references is parsed again.
    index.set_scope(share(&["r0"], Standing::Member, true));
    for key in &keys {
        assert_eq!(parsed(&index, key), index.has_references(key), "{key}");
    }
    index.set_scope(share(&["r0", "r1"], Standing::Candidate, true));
    assert!(
        keys.iter().all(|k| !parsed(&index, k)),
        "a candidate runs nothing"
    );
}

#[test]
fn an_owned_check_is_kept_packed_and_reads_back_the_same() {
    let (mut index, _, keys) = mixed();
    let plain = key("a", "c0");
    let before = index.object(&plain).unwrap();
    assert!(!index.has_references(&plain));
    for scope in [
        Scope::All,
        Scope::Nothing,
        share(&["r0"], Standing::Member, true),
    ] {
        index.set_scope(scope);
        assert!(index.keeps(&plain) || matches!(index.scope(), Scope::Nothing));
        assert!(!parsed(&index, &plain), "packed under {:?}", index.scope());
        assert_eq!(index.object(&plain), Some(before.clone()));
    }
    let heartbeat = key("a", "h0");
    assert!(index.has_references(&heartbeat) && parsed(&index, &heartbeat));
    index.set_scope(Scope::Nothing);
    assert!(!parsed(&index, &heartbeat), "a standby runs nothing");
    // The audits' facts are read without parsing: garbage instead of every packed object.
    index.set_scope(share(&["r0"], Standing::Member, true));
    for entry in index.objects.values_mut() {
        entry.kept = entry::Kept::Packed(Box::from(&b"not JSON"[..]));
    }
    assert_eq!(index.object(&plain), None, "the garbage does not parse");
    assert!(keys.iter().all(|k| index.probes(k) && index.keeps(k)));
    assert_eq!(index.runnable(|_| true).count(), 20);
    assert_eq!(index.watched().count(), 20);
}

#[test]
fn a_suspended_or_invalid_check_is_not_expected_to_probe() {
    let (mut index, a, _) = mixed();
    let mut suspended = check("a", "c0").generation(2);
    suspended.spec.suspend = true;
    let mut invalid = check("a", "c1").generation(2);
    invalid.spec = serde_json::from_value(serde_json::json!({
        "interval": "5s", "timeout": "10s", "tcp": {"host": "127.0.0.1", "port": 9}
    }))
    .expect("a spec the API accepts and validation rejects");
    index.apply(&a, Event::Apply(suspended));
    index.apply(&a, Event::Apply(invalid));
    assert!(!index.probes(&key("a", "c0")) && !index.probes(&key("a", "c1")));
    assert!(index.probes(&key("a", "c2")));
}

#[test]
fn a_relist_skips_unchanged_packed_objects_and_reports_changed_ones() {
    let (mut index, [a, _]) = listed(&["c0", "c1"], &[]);
    index.apply(&a, Event::Init);
    index.apply(&a, Event::InitApply(check("a", "c0")));
    index.apply(&a, Event::InitApply(check("a", "c1").generation(2)));
    assert_eq!(index.apply(&a, Event::InitDone), vec![upsert("a", "c1")]);
    assert!(!parsed(&index, &key("a", "c1")));
    let c1 = index.object(&key("a", "c1")).unwrap();
    assert_eq!(c1.metadata.generation, Some(2));
}

#[test]
fn the_version_changes_with_what_builds_the_runner_and_only_with_it() {
    let (mut index, [a, _]) = listed(&["c0"], &[]);
    let c0 = key("a", "c0");
    let first = index.version(&c0).unwrap();
    index.apply(&a, Event::Apply(check("a", "c0").written(1).run_now("t1")));
    relist(&mut index, &a, &["c0"]);
    assert_eq!(index.version(&c0), Some(first), "status, run-now, relist");
    index.apply(&a, Event::Apply(check("a", "c0").generation(2)));
    let second = index.version(&c0).unwrap();
    assert_ne!(second, first);
    index.apply(&a, Event::Delete(check("a", "c0")));
    assert_eq!(index.version(&c0), None);
    index.apply(&a, Event::Apply(check("a", "c0").generation(2)));
    assert!(
        ![first, second].contains(&index.version(&c0).unwrap()),
        "recreated"
    );
}
