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
