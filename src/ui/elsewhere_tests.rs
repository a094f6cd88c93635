//! The page of a replica that does not probe a check, against a fake ring and real pages.

use std::sync::{Arc, atomic::AtomicBool};

use http::{Request, StatusCode};

use super::super::{
    Forwarding, Owner, Owners, Ui, bind, forward::default_cidrs, model::Source, seal::Key,
};
use crate::{
    api::CheckKey,
    runner::{Scheduler, SchedulerConfig},
};

/// A ring where every check is `owner`'s (none when `owner` is `None`).
struct Ring {
    me: &'static str,
    owner: Option<Owner>,
}

impl Owners for Ring {
    fn elsewhere(&self, _: &CheckKey) -> Option<Owner> {
        self.owner.clone()
    }
    fn peers(&self) -> Vec<String> {
        vec!["r2".into()]
    }
    fn identity(&self) -> String {
        self.me.into()
    }
}

fn ui(me: &'static str, owner: Option<Owner>, key: Option<[u8; 32]>, redact: bool) -> Ui {
    Ui {
        source: Source {
            scheduler: Scheduler::new(SchedulerConfig::default(), vec![]),
            redact,
            located: None,
        },
        standby: Arc::new(AtomicBool::new(false)),
        owners: Some(Arc::new(Ring { me, owner })),
        prometheus: None,
        forwarding: key.map(|key| {
            Arc::new(Forwarding {
                key: Key::new(key.to_vec()).unwrap(),
                allow: default_cidrs(),
                deny: crate::probe::default_deny(),
            })
        }),
    }
}

fn get(path: &str) -> Request<()> {
    Request::get(path).body(()).unwrap()
}

fn text(reply: &super::Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

/// Replica r2's real page (sealing with `key`), probing nothing: it answers 404 itself.
fn owner_page(key: Option<[u8; 32]>) -> (Owner, crate::ui::Serving) {
    let bound = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = bound.addr;
    let serving = bound.start(ui("r2", None, key, false)).unwrap();
    let owner = Owner {
        identity: "r2".into(),
        address: Some(address),
    };
    (owner, serving)
}

/// Off by default: nothing is relayed; the page says which replica probes the check.
#[tokio::test]
async fn without_forwarding_the_page_names_the_owner_and_relays_nothing() {
    let (owner, _serving) = owner_page(None);
    let page = ui("r1", Some(owner.clone()), None, false);
    let reply = page.elsewhere(&get("/checks/shop/api"), &[]).await.unwrap();
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let body = text(&reply);
    assert!(body.contains("probed by replica r2"), "{body}");
    assert!(body.contains("served by that replica"), "{body}");
    assert!(!body.contains("127.0.0.1"), "no address: {body}");
    let api = page
        .elsewhere(&get("/api/v1/checks/shop/api"), &[])
        .await
        .unwrap();
    assert_eq!(api.content_type, "application/json");
    assert!(text(&api).contains("r2"));
    let hidden = ui("r1", Some(owner), None, true);
    let reply = hidden
        .elsewhere(&get("/checks/shop/api"), &[])
        .await
        .unwrap();
    assert!(!text(&reply).contains("r2"), "{}", text(&reply));
}

/// With the same key on both sides the owner's reply is relayed (its own 404 here); with
/// another key it is not, and under `--ui-redact` the error names neither replica nor address.
#[tokio::test]
async fn only_replies_sealed_with_the_shared_key_are_relayed() {
    let key = [5; 32];
    let (owner, _serving) = owner_page(Some(key));
    let page = ui("r1", Some(owner.clone()), Some(key), false);
    let reply = page
        .elsewhere(&get("/api/v1/checks/shop/api"), &[])
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", text(&reply));
    assert!(
        text(&reply).contains("no check shop/api on this page"),
        "{}",
        text(&reply)
    );
    let forged = ui("r1", Some(owner.clone()), Some([6; 32]), false);
    let reply = forged
        .elsewhere(&get("/checks/shop/api"), &[])
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(text(&reply).contains("no valid seal"), "{}", text(&reply));
    let redacted = ui("r1", Some(owner), Some([6; 32]), true);
    let reply = redacted
        .elsewhere(&get("/checks/shop/api"), &[])
        .await
        .unwrap();
    let body = text(&reply);
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    for leak in ["r2", "127.0.0.1", "seal"] {
        assert!(!body.contains(leak), "{leak} in {body}");
    }
}
