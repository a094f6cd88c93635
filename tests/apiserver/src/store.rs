//! In-memory object storage with one global resourceVersion counter and a bounded event history.

use crate::registry::Registry;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Watch event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventType {
    /// Name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the history and sent to watchers.
#[derive(Debug, Clone)]
pub struct Event {
    /// What happened.
    pub kind: EventType,
    /// Storage id of the resource type.
    pub resource: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// The object after the change (before it, for deletions), with its new resourceVersion.
    pub object: Value,
    /// The resourceVersion of the change.
    pub rv: u64,
    /// The object before a modification (to turn selector transitions into ADDED/DELETED).
    pub previous: Option<Value>,
}

/// Events after a version plus a receiver for later ones.
pub type Subscription = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

/// Key of an object inside one resource type.
pub type ObjectKey = (String, String);

/// Everything the server stores, behind one lock.
#[derive(Debug)]
pub struct Store {
    /// Last resourceVersion handed out.
    pub rv: u64,
    /// Served types.
    pub registry: Registry,
    objects: BTreeMap<String, BTreeMap<ObjectKey, Value>>,
    history: VecDeque<Arc<Event>>,
    history_cap: usize,
    /// Events at or below this resourceVersion were dropped from the history.
    pub compacted: u64,
    events: broadcast::Sender<Arc<Event>>,
}

impl Store {
    /// An empty store keeping at most `history_cap` events.
    pub fn new(history_cap: usize) -> Self {
        let (events, _) = broadcast::channel(16_384);
        Self {
            rv: 1,
            registry: Registry::default(),
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            compacted: 0,
            events,
        }
    }

    /// Next resourceVersion.
    pub fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// One object.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(resource)?
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// All objects of a type, optionally in one namespace, ordered by namespace then name.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(map) = self.objects.get(resource) else {
            return vec![];
        };
        map.iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Like [`Store::list`], borrowed (for the authorizer, which reads RBAC objects per request).
    pub fn objects_in(&self, resource: &str, namespace: Option<&str>) -> Vec<&Value> {
        let Some(map) = self.objects.get(resource) else {
            return vec![];
        };
        map.iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
            .map(|(_, v)| v)
            .collect()
    }

    /// Every stored object with its resource id.
    pub fn all_objects(&self) -> Vec<(String, Value)> {
        self.objects
            .iter()
            .flat_map(|(id, map)| map.values().map(move |v| (id.clone(), v.clone())))
            .collect()
    }

    /// Stores `object` (whose resourceVersion must already be set to `rv`) and records the event.
    pub fn put(&mut self, resource: &str, namespace: &str, name: &str, object: Value, rv: u64) {
        let key = (namespace.to_string(), name.to_string());
        let map = self.objects.entry(resource.to_string()).or_default();
        let previous = map.insert(key, object.clone());
        let kind = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(kind, resource, namespace, object, rv, previous);
    }

    /// Removes an object; `object` is its final state, with the deletion's resourceVersion.
    pub fn remove(&mut self, resource: &str, namespace: &str, name: &str, object: Value, rv: u64) {
        if let Some(map) = self.objects.get_mut(resource) {
            map.remove(&(namespace.to_string(), name.to_string()));
        }
        self.record(EventType::Deleted, resource, namespace, object, rv, None);
    }

    /// Drops all objects of a resource type without events (the type itself is going away).
    pub fn drop_resource(&mut self, resource: &str) -> Vec<Value> {
        self.objects
            .remove(resource)
            .map(|m| m.into_values().collect())
            .unwrap_or_default()
    }

    fn record(
        &mut self,
        kind: EventType,
        resource: &str,
        namespace: &str,
        object: Value,
        rv: u64,
        previous: Option<Value>,
    ) {
        let event = Arc::new(Event {
            kind,
            resource: resource.to_string(),
            namespace: namespace.to_string(),
            object,
            rv,
            previous,
        });
        self.history.push_back(event.clone());
        while self.history.len() > self.history_cap {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
    }

    /// Forgets the whole history and moves past the current version, so that resuming any watch
    /// from a version seen so far gets 410 Gone (a fresh list is fine).
    pub fn compact(&mut self) {
        self.history.clear();
        self.rv += 1;
        self.compacted = self.rv;
    }

    /// Events after `from` plus a receiver for later ones, or the oldest usable version if `from` is too old.
    pub fn subscribe_from(&self, from: u64) -> Result<Subscription, u64> {
        if from < self.compacted {
            return Err(self.compacted);
        }
        let backlog = self
            .history
            .iter()
            .filter(|e| e.rv > from)
            .cloned()
            .collect();
        Ok((backlog, self.events.subscribe()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn history_is_bounded_and_old_versions_expire() {
        let mut store = Store::new(2);
        for i in 0..3 {
            let rv = store.next_rv();
            store.put("configmaps", "default", &format!("c{i}"), json!({}), rv);
        }
        assert!(store.subscribe_from(1).is_err());
        let (backlog, _) = store
            .subscribe_from(store.compacted)
            .expect("recent version");
        assert_eq!(backlog.len(), 2);
    }
}
