//! The objects a fresh server starts with.

use crate::store::Store;
use serde_json::json;

/// A store holding the `default`, `kube-system`, `kube-public` and `kube-node-lease` namespaces.
pub fn seeded_store(history: usize) -> Store {
    let mut store = Store::new(history);
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let rv = store.next_rv();
        let ns = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": crate::meta::new_uid(), "resourceVersion": rv.to_string(),
                "creationTimestamp": crate::meta::now(), "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        store.put("namespaces", "", name, ns, rv);
    }
    store
}

/// Adds kube's bootstrap RBAC policy ([`crate::rbac::bootstrap`]) to `store`.
pub fn seed_rbac(store: &mut Store) {
    for mut object in crate::rbac::bootstrap::objects() {
        let rv = store.next_rv();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let id = match object["kind"].as_str() {
            Some("ClusterRole") => "clusterroles.rbac.authorization.k8s.io",
            _ => "clusterrolebindings.rbac.authorization.k8s.io",
        };
        let meta = &mut object["metadata"];
        meta["uid"] = json!(crate::meta::new_uid());
        meta["resourceVersion"] = json!(rv.to_string());
        meta["creationTimestamp"] = json!(crate::meta::now());
        store.put(id, "", &name, object, rv);
    }
}
