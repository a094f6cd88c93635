//! List (selectors, pagination) and watch (history replay, bookmarks, timeouts, 410 Gone).

use crate::error::ApiError;
use crate::meta;
use crate::selectors::Selector;
use crate::state::{Shared, Target};
use crate::store::{Event, EventType};
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Query parameters of list and watch.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    labels: Selector,
    fields: Selector,
    limit: Option<usize>,
    cont: Option<String>,
    /// `resourceVersion` as given.
    pub resource_version: Option<String>,
    timeout: Option<Duration>,
    bookmarks: bool,
    initial_events: bool,
    /// For Events: each field label mapped to the core/v1 selectable field it reads.
    event_fields: Option<HashMap<String, &'static str>>,
}

impl ListQuery {
    /// From the parsed query string of a request for `t`. Events accept only the field labels
    /// kube registers for their API (400 otherwise); other types accept any dotted path.
    pub fn parse(t: &Target, q: &HashMap<String, String>) -> Result<Self, ApiError> {
        let sel = |k: &str| {
            Selector::parse(q.get(k).map(String::as_str).unwrap_or_default())
                .map_err(|e| ApiError::bad_request(e.to_string()))
        };
        let fields = sel("fieldSelector")?;
        let event_fields = if crate::events::is_event(&t.rt) {
            let labels = fields.keys().map(|label| {
                crate::events::field_label(&t.rt, label).map(|core| (label.to_string(), core))
            });
            Some(labels.collect::<Result<_, _>>()?)
        } else {
            None
        };
        Ok(Self {
            labels: sel("labelSelector")?,
            fields,
            event_fields,
            limit: q
                .get("limit")
                .and_then(|l| l.parse().ok())
                .filter(|l| *l > 0),
            cont: q.get("continue").filter(|c| !c.is_empty()).cloned(),
            resource_version: q.get("resourceVersion").cloned(),
            timeout: q
                .get("timeoutSeconds")
                .and_then(|s| s.parse().ok())
                .map(Duration::from_secs),
            bookmarks: q
                .get("allowWatchBookmarks")
                .is_some_and(|v| v == "true" || v == "1"),
            initial_events: q.get("sendInitialEvents").is_some_and(|v| v == "true"),
        })
    }

    fn matches(&self, obj: &Value) -> bool {
        let fields = match &self.event_fields {
            Some(labels) => self.fields.matches_with(|label| {
                let core = labels.get(label)?;
                Some(crate::events::selectable_field(obj, core))
            }),
            None => self.fields.matches_fields(obj),
        };
        self.labels.matches_labels(obj) && fields
    }
}

/// A stored object as the client asked for it: its API's shape (see [`crate::events`]) and
/// the requested apiVersion/kind.
pub fn present(t: &Target, obj: Value) -> Value {
    let mut obj = crate::events::for_answer(t, obj);
    if obj.is_object() {
        obj["apiVersion"] = json!(t.api_version());
        obj["kind"] = json!(t.rt.kind);
    }
    obj
}

fn list_scope(t: &Target) -> Option<&str> {
    (!t.namespace.is_empty()).then_some(t.namespace.as_str())
}

/// Matching objects, in key order, before pagination.
pub fn matching(shared: &Shared, t: &Target, q: &ListQuery) -> (Vec<Value>, u64) {
    let store = shared.store();
    let items = store
        .list(&t.rt.storage_id(), list_scope(t))
        .into_iter()
        .filter(|o| q.matches(o))
        .collect();
    (items, store.rv)
}

/// A list response with `limit`/`continue` pagination.
pub fn list(shared: &Shared, t: &Target, q: &ListQuery) -> Result<Value, ApiError> {
    let (items, rv) = matching(shared, t, q);
    let key = |o: &Value| format!("{}/{}", meta::namespace_of(o), meta::name_of(o));
    let start = match &q.cont {
        Some(token) => {
            // Compare as (namespace, name), the store's order; names never contain '/'.
            let after = token.split_once('/').unwrap_or(("", token));
            items
                .iter()
                .position(|o| (meta::namespace_of(o), meta::name_of(o)) > after)
                .unwrap_or(items.len())
        }
        None => 0,
    };
    let rest = &items[start..];
    let take = q.limit.unwrap_or(rest.len()).min(rest.len());
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if take < rest.len() {
        metadata["continue"] = json!(key(&rest[take - 1]));
        metadata["remainingItemCount"] = json!(rest.len() - take);
    }
    let page: Vec<Value> = rest[..take].iter().map(|o| present(t, o.clone())).collect();
    Ok(
        json!({"apiVersion": t.api_version(), "kind": format!("{}List", t.rt.kind), "metadata": metadata, "items": page}),
    )
}

/// Converts each watched object (e.g. into a Table) before it is sent.
pub type Convert = Box<dyn Fn(Value) -> Value + Send + Sync>;

struct Watch {
    shared: Arc<Shared>,
    t: Target,
    storage: String,
    q: ListQuery,
    convert: Convert,
    tx: mpsc::Sender<Bytes>,
    last_rv: u64,
}

impl Watch {
    async fn send(&self, kind: &str, obj: Value) -> bool {
        let line = json!({"type": kind, "object": (self.convert)(present(&self.t, obj))});
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        self.tx.send(Bytes::from(bytes)).await.is_ok()
    }

    /// The event type to send for `e`, if any: a modification that makes an object enter or
    /// leave the selectors is sent as ADDED or DELETED, as kube-apiserver does.
    fn wanted(&self, e: &Event) -> Option<&'static str> {
        if e.resource != self.storage || list_scope(&self.t).is_some_and(|ns| ns != e.namespace) {
            return None;
        }
        let now = self.q.matches(&e.object);
        let before = e.previous.as_ref().map(|p| self.q.matches(p));
        match (e.kind, before, now) {
            (EventType::Modified, Some(false), true) => Some("ADDED"),
            (EventType::Modified, Some(true), false) => Some("DELETED"),
            (kind, _, true) => Some(kind.as_str()),
            _ => None,
        }
    }

    /// kube's ERROR event for a watch whose history is gone (the client must relist).
    async fn send_expired(&self) {
        let status = ApiError::expired(self.last_rv, self.last_rv + 1).to_status();
        let line = json!({"type": "ERROR", "object": status});
        let _ = self.tx.send(Bytes::from(format!("{line}\n"))).await;
    }

    async fn bookmark(&self, initial_end: bool) -> bool {
        let mut md = json!({"resourceVersion": self.last_rv.to_string()});
        if initial_end {
            md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let line = json!({"type": "BOOKMARK", "object": {"apiVersion": self.t.api_version(), "kind": self.t.rt.kind, "metadata": md}});
        self.tx.send(Bytes::from(format!("{line}\n"))).await.is_ok()
    }

    async fn run(
        mut self,
        initial: Vec<Value>,
        backlog: Vec<Arc<Event>>,
        mut rx: broadcast::Receiver<Arc<Event>>,
    ) {
        for obj in initial {
            if !self.send("ADDED", obj).await {
                return;
            }
        }
        if self.q.initial_events && self.q.bookmarks && !self.bookmark(true).await {
            return;
        }
        for e in &backlog {
            if let Some(kind) = self.wanted(e)
                && !self.send(kind, e.object.clone()).await
            {
                return;
            }
        }
        self.last_rv = backlog
            .last()
            .map_or(self.last_rv, |e| e.rv.max(self.last_rv));
        let timeout = tokio::time::sleep(self.q.timeout.unwrap_or(Duration::from_secs(1800)));
        tokio::pin!(timeout);
        let mut ticker = tokio::time::interval(self.shared.bookmark_interval);
        ticker.tick().await;
        let mut dropped = self.shared.drop_watches.subscribe();
        let mut expired = self.shared.expire_watches.subscribe();
        expired.mark_unchanged();
        let path = self.t.collection_path();
        loop {
            let ok = tokio::select! {
                _ = &mut timeout => false,
                _ = dropped.changed() => false,
                _ = expired.changed() => {
                    let hit = self.shared.take_expiry(&path);
                    if hit {
                        self.send_expired().await;
                    }
                    !hit
                }
                _ = self.tx.closed() => false,
                _ = ticker.tick(), if self.q.bookmarks => self.bookmark(false).await,
                ev = rx.recv() => match ev {
                    Ok(e) => {
                        self.last_rv = e.rv;
                        match self.wanted(&e) {
                            Some(kind) => self.send(kind, e.object.clone()).await,
                            None => true,
                        }
                    }
                    Err(_) => false,
                },
            };
            if !ok {
                return;
            }
        }
    }
}

/// Starts a watch; its lines arrive on the returned channel. A too-old resourceVersion yields one ERROR line.
pub fn watch(
    shared: Arc<Shared>,
    t: Target,
    q: ListQuery,
    convert: Convert,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(256);
    let from = q
        .resource_version
        .as_deref()
        .filter(|v| !v.is_empty() && *v != "0")
        .and_then(|v| v.parse::<u64>().ok());
    if from.is_some() && shared.take_expiry(&t.collection_path()) {
        let rv = from.unwrap_or_default();
        let status = ApiError::expired(rv, rv + 1).to_status();
        let _ = tx.try_send(Bytes::from(format!(
            "{}\n",
            json!({"type": "ERROR", "object": status})
        )));
        return rx;
    }
    let setup = {
        let store = shared.store();
        let start = from.unwrap_or(store.rv);
        let initial: Vec<Value> = if from.is_none() || q.initial_events {
            store
                .list(&t.rt.storage_id(), list_scope(&t))
                .into_iter()
                .filter(|o| q.matches(o))
                .collect()
        } else {
            vec![]
        };
        store
            .subscribe_from(start)
            .map(|(backlog, rx)| (initial, backlog, rx, start))
    };
    match setup {
        Ok((initial, backlog, events, start)) => {
            let w = Watch {
                shared,
                storage: t.rt.storage_id(),
                t,
                q,
                convert,
                tx,
                last_rv: start,
            };
            tokio::spawn(w.run(initial, backlog, events));
        }
        Err(oldest) => {
            let status = ApiError::expired(from.unwrap_or_default(), oldest).to_status();
            let line = json!({"type": "ERROR", "object": status});
            // The channel has room for one line; a full or closed channel means nobody listens.
            let _ = tx.try_send(Bytes::from(format!("{line}\n")));
        }
    }
    rx
}
