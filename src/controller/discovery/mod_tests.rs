use std::sync::Arc;

use super::*;
use crate::controller::shard::{Assignment, Standing, ring::Ring};

fn key(name: &str) -> CheckKey {
    CheckKey {
        namespace: "shop".into(),
        name: name.into(),
    }
}

#[test]
fn one_replica_generates_for_a_discovery_the_ring_owner_with_shards() {
    assert!(owns(&Scope::All, &key("web")));
    assert!(!owns(&Scope::Nothing, &key("web")));
    let ring = Arc::new(Ring::new(["r1".to_string(), "r2".to_string()]));
    let view = |identity: &str| {
        Scope::Share(Assignment {
            identity: Arc::from(identity),
            ring: ring.clone(),
            standing: Standing::Member,
            may_gain: true,
            quiet_after: None,
        })
    };
    for name in ["web", "api", "shop", "payments", "a", "b"] {
        let owners: Vec<bool> = ["r1", "r2"].map(|r| owns(&view(r), &key(name))).into();
        assert_eq!(
            owners.iter().filter(|o| **o).count(),
            1,
            "{name}: {owners:?}"
        );
        let owner = ring.owner(&key(name)).unwrap();
        assert!(
            owns(&view(owner), &key(name)),
            "the ring's owner, as for checks"
        );
    }
}

#[test]
fn an_unserved_gateway_api_holds_the_route_kinds_a_discovery_reads() {
    let mut discovery = CheckDiscovery::new("web", crate::api::CheckDiscoverySpec::everything());
    discovery.spec.sources.grpc_route = None;
    let unavailable = BTreeSet::from([GATEWAY, HTTP_ROUTE, GRPC_ROUTE]);
    let found = unavailable_for(&discovery, &unavailable);
    assert_eq!(found, BTreeSet::from([GATEWAY, HTTP_ROUTE]));
    assert_eq!(
        held(&found),
        BTreeSet::from([GATEWAY, HTTP_ROUTE, GRPC_ROUTE])
    );
    discovery.spec.sources.http_route = None;
    assert!(unavailable_for(&discovery, &unavailable).is_empty());
}

#[test]
fn changes_mark_their_namespace_and_shared_objects_mark_all() {
    let mut dirty = Dirty::default();
    assert!(dirty.is_empty());
    dirty.add(Some("shop".into()));
    assert!(dirty.covers("shop") && !dirty.covers("payments"));
    dirty.add(None);
    assert!(dirty.covers("payments"));
}
