//! The ring as the status page reads it: who owns a check and where that replica's page
//! answers. The membership task replaces it whenever it publishes an assignment.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, RwLock},
};

use super::ring::Ring;
use crate::{
    api::CheckKey,
    ui::{Owner, Owners},
};

/// Shared between the membership task (writer) and the status page (reader).
#[derive(Debug)]
pub struct Directory {
    identity: String,
    view: RwLock<View>,
}

#[derive(Debug, Default)]
struct View {
    ring: Arc<Ring>,
    /// Pages of the alive members that published one.
    pages: BTreeMap<String, SocketAddr>,
}

impl Directory {
    pub fn new(identity: String) -> Self {
        Self {
            identity,
            view: RwLock::default(),
        }
    }

    /// The ring this replica now follows, and its members' pages.
    pub fn update(&self, ring: Arc<Ring>, pages: BTreeMap<String, SocketAddr>) {
        let mut view = self.view.write().unwrap_or_else(|e| e.into_inner());
        *view = View { ring, pages };
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Owners for Directory {
    fn elsewhere(&self, key: &CheckKey) -> Option<Owner> {
        let view = self.read();
        let owner = view.ring.owner(key).filter(|o| *o != self.identity)?;
        Some(Owner {
            identity: owner.to_string(),
            address: view.pages.get(owner).copied(),
        })
    }

    fn peers(&self) -> Vec<String> {
        let view = self.read();
        let members = view.ring.members().iter();
        members.filter(|m| **m != self.identity).cloned().collect()
    }

    fn identity(&self) -> String {
        self.identity.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> CheckKey {
        CheckKey {
            namespace: "default".into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_check_owned_elsewhere_names_its_owner_and_page_and_an_own_check_is_not_forwarded() {
        let directory = Directory::new("r1".into());
        assert_eq!(directory.elsewhere(&key("c0")), None, "no ring yet");
        let ring = Arc::new(Ring::new(["r1".to_string(), "r2".to_string()]));
        let page: SocketAddr = "10.0.0.2:8082".parse().unwrap();
        directory.update(ring.clone(), [("r2".to_string(), page)].into());
        assert_eq!(directory.peers(), ["r2"]);
        let checks: Vec<CheckKey> = (0..50).map(|i| key(&format!("c{i}"))).collect();
        for check in &checks {
            let expected = (ring.owner(check) == Some("r2")).then(|| Owner {
                identity: "r2".into(),
                address: Some(page),
            });
            assert_eq!(directory.elsewhere(check), expected, "{check}");
        }
        assert!(checks.iter().any(|c| directory.elsewhere(c).is_some()));
        assert!(checks.iter().any(|c| directory.elsewhere(c).is_none()));
    }
}
