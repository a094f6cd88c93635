//! A few of kube-apiserver's defaults for built-in types (the ones clients commonly read back).

use serde_json::{Value, json};

fn set_default(obj: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for p in parents {
        if !cur[*p].is_object() {
            cur[*p] = json!({});
        }
        cur = &mut cur[*p];
    }
    if cur.get(*last).is_none_or(Value::is_null) {
        cur[*last] = value;
    }
}

fn default_ports(ports: Option<&mut Value>) {
    for port in ports.and_then(Value::as_array_mut).into_iter().flatten() {
        set_default(port, &["protocol"], json!("TCP"));
    }
}

fn default_pod_spec(spec: &mut Value) {
    set_default(spec, &["restartPolicy"], json!("Always"));
    set_default(spec, &["dnsPolicy"], json!("ClusterFirst"));
    set_default(spec, &["terminationGracePeriodSeconds"], json!(30));
    for kind in ["containers", "initContainers"] {
        for c in spec
            .get_mut(kind)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            set_default(
                c,
                &["terminationMessagePath"],
                json!("/dev/termination-log"),
            );
            set_default(c, &["imagePullPolicy"], json!("IfNotPresent"));
            default_ports(c.get_mut("ports"));
        }
    }
}

/// Keeps server-assigned fields an update omitted (a Service's cluster IPs are immutable).
pub fn carry_over(plural: &str, old: &Value, new: &mut Value) {
    if plural == "services" {
        for key in ["clusterIP", "clusterIPs"] {
            if let Some(v) = old["spec"].get(key) {
                set_default(new, &["spec", key], v.clone());
            }
        }
    }
}

/// Applies defaults for `plural` (a core or apps resource) to a new or updated object.
pub fn apply(plural: &str, obj: &mut Value, uid_seed: u64) {
    match plural {
        "namespaces" => {
            let name = obj["metadata"]["name"].clone();
            set_default(
                obj,
                &["metadata", "labels", "kubernetes.io/metadata.name"],
                name,
            );
            set_default(obj, &["spec", "finalizers"], json!(["kubernetes"]));
            set_default(obj, &["status", "phase"], json!("Active"));
        }
        "secrets" => set_default(obj, &["type"], json!("Opaque")),
        "services" => {
            set_default(obj, &["spec", "type"], json!("ClusterIP"));
            set_default(obj, &["spec", "sessionAffinity"], json!("None"));
            let ip = format!("10.96.{}.{}", (uid_seed >> 8) % 256, uid_seed % 254 + 1);
            if obj["spec"]["clusterIP"] != json!("None") {
                set_default(obj, &["spec", "clusterIP"], json!(ip));
                set_default(obj, &["spec", "clusterIPs"], json!([ip]));
            }
            default_ports(obj["spec"].get_mut("ports"));
        }
        "deployments" => {
            set_default(obj, &["spec", "replicas"], json!(1));
            set_default(obj, &["spec", "revisionHistoryLimit"], json!(10));
            set_default(obj, &["spec", "progressDeadlineSeconds"], json!(600));
            set_default(obj, &["spec", "strategy", "type"], json!("RollingUpdate"));
            if let Some(pod) = obj["spec"]["template"].get_mut("spec") {
                default_pod_spec(pod);
            }
        }
        "pods" => {
            if let Some(spec) = obj.get_mut("spec") {
                default_pod_spec(spec);
            }
            set_default(obj, &["status", "phase"], json!("Pending"));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_only_missing_fields() {
        let mut dep = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}]}]}}}});
        apply("deployments", &mut dep, 7);
        assert_eq!(dep["spec"]["replicas"], 3);
        assert_eq!(
            dep["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"],
            "TCP"
        );
        let mut svc = json!({"spec": {"clusterIP": "None"}});
        apply("services", &mut svc, 7);
        assert_eq!(
            (
                svc["spec"]["type"].as_str(),
                svc["spec"]["clusterIP"].as_str()
            ),
            (Some("ClusterIP"), Some("None"))
        );
        let mut ns = json!({"metadata": {"name": "team"}});
        apply("namespaces", &mut ns, 0);
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team"
        );
    }
}
