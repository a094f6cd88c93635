//! What discovery reads, kept in kube-runtime reflector stores: CheckDiscoveries, Ingresses,
//! Services, HTTPRoutes and GRPCRoutes of the watched namespaces; IngressClasses, Gateways and
//! Namespaces of the whole cluster (routes attach to Gateways anywhere); and the metadata of every
//! HealthCheck of the watched namespaces (to see what exists, what is detached, what is not ours).
//! Each watcher has its own task and backoff and sends a [`Trigger`] per change. A kind whose
//! API is not served (404: the Gateway API CRDs are not installed) is marked unavailable and
//! retried with the backoff, so installing the CRDs later is picked up.

use std::{
    collections::BTreeSet,
    fmt::Debug,
    hash::Hash,
    sync::{Arc, Mutex},
};

use futures::{Stream, StreamExt};
use k8s_openapi::api::{
    core::v1::{Namespace, Service},
    networking::v1::{Ingress, IngressClass},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ApiResource, DynamicObject, GroupVersionKind, PartialObjectMeta},
    runtime::{
        reflector::{self, Store, store::Writer},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tokio::{sync::mpsc, task::JoinSet};

use crate::{
    api::{CheckDiscovery, HealthCheck},
    controller::{
        api_error::{api_code, describe_watch},
        index::WatchScope,
        watch::with_backoff,
    },
    discovery::{Inputs, gateway_api},
    lock,
};

/// What changed: one namespace's objects, or something every namespace reads (`None`).
pub(super) type Trigger = Option<String>;

/// The Gateway API kinds, which may not be served.
pub(super) const GATEWAY: &str = "Gateway";
pub(super) const HTTP_ROUTE: &str = "HTTPRoute";
pub(super) const GRPC_ROUTE: &str = "GRPCRoute";

/// Whether each watch has listed once, or found its API not served.
#[derive(Debug, Default)]
struct Progress {
    /// (kind, synced, unavailable) per watch.
    watches: Vec<(&'static str, bool, bool)>,
}

/// The stores, and the state of their watches.
#[derive(Clone)]
pub(super) struct Sources {
    pub discoveries: Vec<Store<CheckDiscovery>>,
    pub checks: Vec<Store<PartialObjectMeta<HealthCheck>>>,
    ingresses: Vec<Store<Ingress>>,
    services: Vec<Store<Service>>,
    http_routes: Vec<Store<DynamicObject>>,
    grpc_routes: Vec<Store<DynamicObject>>,
    ingress_classes: Store<IngressClass>,
    gateways: Store<DynamicObject>,
    namespaces: Store<Namespace>,
    progress: Arc<Mutex<Progress>>,
}

/// Starts the watches.
struct Starter<'a> {
    scopes: &'a [WatchScope],
    tasks: &'a mut JoinSet<&'static str>,
    triggers: mpsc::UnboundedSender<Trigger>,
    progress: Arc<Mutex<Progress>>,
}

impl Sources {
    /// Starts every watch on `tasks` (a task ending is a bug: the caller ends with it).
    pub fn start(
        client: &Client,
        scopes: &[WatchScope],
        tasks: &mut JoinSet<&'static str>,
        triggers: mpsc::UnboundedSender<Trigger>,
    ) -> Self {
        let progress = Arc::new(Mutex::new(Progress::default()));
        let mut s = Starter {
            scopes,
            tasks,
            triggers,
            progress: progress.clone(),
        };
        let http = gateway_resource("HTTPRoute", "httproutes");
        let grpc = gateway_resource("GRPCRoute", "grpcroutes");
        let gateways = gateway_resource("Gateway", "gateways");
        let dynamic = |resource: &ApiResource| {
            let resource = resource.clone();
            move |ns: Option<&str>| match ns {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                None => Api::all_with(client.clone(), &resource),
            }
        };
        Self {
            discoveries: s.namespaced("CheckDiscovery", typed(client), Writer::default),
            checks: s.namespaced("HealthCheck", typed(client), Writer::default),
            ingresses: s.namespaced("Ingress", typed(client), Writer::default),
            services: s.namespaced("Service", typed(client), Writer::default),
            http_routes: s.namespaced(HTTP_ROUTE, dynamic(&http), || Writer::new(http.clone())),
            grpc_routes: s.namespaced(GRPC_ROUTE, dynamic(&grpc), || Writer::new(grpc.clone())),
            ingress_classes: s.watch(
                "IngressClass",
                Api::all(client.clone()),
                Writer::default(),
                true,
            ),
            gateways: s.watch(
                GATEWAY,
                Api::all_with(client.clone(), &gateways),
                Writer::new(gateways.clone()),
                true,
            ),
            namespaces: s.watch(
                "Namespace",
                Api::all(client.clone()),
                Writer::default(),
                true,
            ),
            progress,
        }
    }

    /// Whether every watch has listed once or found its API not served: before that, a
    /// missing object may only be not listed yet, and pruning would delete its checks.
    pub fn synced(&self) -> bool {
        (lock(&self.progress).watches.iter())
            .all(|(_, synced, unavailable)| *synced || *unavailable)
    }

    /// The kinds whose API is not served, in order, each once.
    pub fn unavailable(&self) -> BTreeSet<&'static str> {
        (lock(&self.progress).watches.iter())
            .filter(|(_, _, unavailable)| *unavailable)
            .map(|(kind, _, _)| *kind)
            .collect()
    }

    /// The source objects a discovery in `namespace` reads.
    pub fn inputs(&self, namespace: &str) -> Inputs {
        Inputs {
            ingresses: in_namespace(&self.ingresses, namespace),
            ingress_classes: cloned(&self.ingress_classes),
            gateways: converted(self.gateways.state().iter().map(|o| &**o)),
            http_routes: converted(&in_namespace(&self.http_routes, namespace)),
            grpc_routes: converted(&in_namespace(&self.grpc_routes, namespace)),
            services: in_namespace(&self.services, namespace),
            namespaces: cloned(&self.namespaces),
        }
    }
}

/// The objects of `namespace` in any of `stores`.
pub(super) fn in_namespace<K>(stores: &[Store<K>], namespace: &str) -> Vec<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    (stores.iter().flat_map(|s| s.state()))
        .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
        .map(|o| (*o).clone())
        .collect()
}

fn cloned<K>(store: &Store<K>) -> Vec<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store.state().iter().map(|o| (**o).clone()).collect()
}

/// Gateway API objects as discovery's serde types; one that does not parse is left out (it
/// would be refused by the upstream CRD's schema) and logged.
fn converted<'a, T: DeserializeOwned>(
    objects: impl IntoIterator<Item = &'a DynamicObject>,
) -> Vec<T> {
    let mut out = Vec::new();
    for object in objects {
        match serde_json::to_value(object).and_then(serde_json::from_value) {
            Ok(value) => out.push(value),
            Err(error) => {
                let name = object.name_any();
                tracing::warn!(%name, %error, "a Gateway API object does not parse; ignored");
            }
        }
    }
    out
}

/// Makes the Api of a namespaced typed kind for one namespace, or all.
fn typed<K>(client: &Client) -> impl Fn(Option<&str>) -> Api<K> + '_
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    move |ns| match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn gateway_resource(kind: &str, plural: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk(gateway_api::GROUP, "v1", kind);
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

impl Starter<'_> {
    /// One watch per watched namespace (or one for all); `api` makes the Api of one.
    fn namespaced<K>(
        &mut self,
        kind: &'static str,
        api: impl Fn(Option<&str>) -> Api<K>,
        writer: impl Fn() -> Writer<K>,
    ) -> Vec<Store<K>>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Eq + Hash + Clone + Send + Sync,
    {
        let scopes = self.scopes.to_vec();
        (scopes.iter())
            .map(|scope| self.watch(kind, api(scope.namespace_name()), writer(), false))
            .collect()
    }

    /// One watch; `global`: every namespace reads its objects (a change concerns all).
    fn watch<K>(
        &mut self,
        kind: &'static str,
        api: Api<K>,
        writer: Writer<K>,
        global: bool,
    ) -> Store<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Eq + Hash + Clone + Send + Sync,
    {
        let store = writer.as_reader();
        let stream = watcher::watcher(api, watcher::Config::default());
        self.spawn((kind, global), writer, stream);
        store
    }

    fn spawn<K>(
        &mut self,
        (kind, global): (&'static str, bool),
        writer: Writer<K>,
        stream: impl Stream<Item = Item<K>> + Send + 'static,
    ) where
        K: Resource + Clone + Debug + Send + Sync + 'static,
        K::DynamicType: Eq + Hash + Clone + Send + Sync,
    {
        let slot = {
            let mut progress = lock(&self.progress);
            progress.watches.push((kind, false, false));
            progress.watches.len() - 1
        };
        let watch = Watch {
            kind,
            global,
            slot,
            progress: self.progress.clone(),
            triggers: self.triggers.clone(),
        };
        let stream = reflector::reflector(writer, with_backoff(stream));
        self.tasks.spawn(watch.run(stream));
    }
}

type Item<K> = Result<watcher::Event<K>, watcher::Error>;

/// One watch's task: forwards changes as triggers and keeps its progress.
struct Watch {
    kind: &'static str,
    global: bool,
    slot: usize,
    progress: Arc<Mutex<Progress>>,
    triggers: mpsc::UnboundedSender<Trigger>,
}

impl Watch {
    async fn run<K: Resource>(self, stream: impl Stream<Item = Item<K>>) -> &'static str {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            let trigger = match item {
                Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => {
                    Some(o.meta().namespace.clone().filter(|_| !self.global))
                }
                // A (re)list may have added, changed or removed anything: a pass for all.
                Ok(watcher::Event::InitDone) => {
                    self.set(true, false);
                    Some(None)
                }
                Ok(_) => None,
                Err(error) => self.failed(&error).then_some(None),
            };
            if let Some(trigger) = trigger
                && self.triggers.send(trigger).is_err()
            {
                break;
            }
        }
        self.kind
    }

    /// Records (synced, unavailable); whether anything changed.
    fn set(&self, synced: bool, unavailable: bool) -> bool {
        let mut progress = lock(&self.progress);
        let entry = &mut progress.watches[self.slot];
        let changed = (entry.1, entry.2) != (synced, unavailable);
        (entry.1, entry.2) = (synced, unavailable);
        changed
    }

    /// Logs the error; a 404 marks the kind unavailable (whether that is news).
    fn failed(&self, error: &watcher::Error) -> bool {
        let kind = self.kind;
        if api_code(error) == Some(404) {
            let news = self.set(false, true);
            if news {
                tracing::warn!(
                    kind,
                    "discovery source not served (its CRD is not installed?); retrying with backoff"
                );
            }
            return news;
        }
        let error_text = describe_watch(error);
        tracing::warn!(kind, error = %error_text, "discovery watch failed; retrying with backoff");
        false
    }
}
