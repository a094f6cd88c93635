//! `ui.prometheus`: the page reads uptime from Prometheus, with the URL passed, a bearer-token
//! Secret and a CA (ConfigMap or Secret) mounted as files (directory mounts, so a rotated token
//! reaches the file); off by default and with the page off.

use canary_test_harness::chart::{args, container, pod, render, render_error};
use serde_json::{Value, json};

/// The pod's volume `name`.
fn volume<'a>(objects: &'a [Value], name: &str) -> &'a Value {
    (pod(objects)["volumes"].as_array().into_iter().flatten())
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no volume {name}: {}", pod(objects)))
}

fn prometheus_args(objects: &[Value]) -> Vec<String> {
    (args(objects).into_iter())
        .filter(|a| a.starts_with("--prometheus"))
        .collect()
}

#[tokio::test]
async fn the_page_reads_prometheus_with_a_mounted_token_and_ca() {
    let values = "ui.prometheus.url=https://prom.monitoring.svc:9090,\
                  ui.prometheus.bearerTokenSecret=prom-token,\
                  ui.prometheus.caSecret=prom-ca,ui.prometheus.caKey=root.pem";
    let objects = render(&["--set", values]).await;
    assert_eq!(
        prometheus_args(&objects),
        [
            "--prometheus-url=https://prom.monitoring.svc:9090",
            "--prometheus-cache-ttl=30s",
            "--prometheus-bearer-token-file=/etc/canary/prometheus-token/token",
            "--prometheus-ca-file=/etc/canary/prometheus-ca/ca.crt",
        ]
    );
    let mounts = container(&objects)["volumeMounts"].clone();
    for (name, path) in [
        ("prometheus-token", "/etc/canary/prometheus-token"),
        ("prometheus-ca", "/etc/canary/prometheus-ca"),
    ] {
        let mount = (mounts.as_array().into_iter().flatten())
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no mount {name}: {mounts}"));
        assert_eq!(mount["mountPath"], path);
        assert_eq!(mount["readOnly"], true);
        assert!(
            mount.get("subPath").is_none(),
            "a subPath mount misses rotations"
        );
    }
    assert_eq!(
        volume(&objects, "prometheus-token")["secret"],
        json!({"secretName": "prom-token", "items": [{"key": "token", "path": "token"}]})
    );
    assert_eq!(
        volume(&objects, "prometheus-ca")["secret"],
        json!({"secretName": "prom-ca", "items": [{"key": "root.pem", "path": "ca.crt"}]})
    );

    let values = "ui.prometheus.url=http://prom:9090/prefix,ui.prometheus.caConfigMap=prom-ca,\
                  ui.prometheus.cacheTTL=1m";
    let objects = render(&["--set", values]).await;
    assert_eq!(
        prometheus_args(&objects),
        [
            "--prometheus-url=http://prom:9090/prefix",
            "--prometheus-cache-ttl=1m",
            "--prometheus-ca-file=/etc/canary/prometheus-ca/ca.crt",
        ]
    );
    assert_eq!(
        volume(&objects, "prometheus-ca")["configMap"],
        json!({"name": "prom-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]})
    );
}

#[tokio::test]
async fn prometheus_is_off_by_default_and_with_the_page_off_and_urls_are_checked() {
    assert_eq!(prometheus_args(&render(&[]).await), Vec::<String>::new());
    let page_off = "ui.enabled=false,ui.prometheus.url=http://prom:9090,\
                    ui.prometheus.bearerTokenSecret=t";
    let objects = render(&["--set", page_off]).await;
    assert_eq!(prometheus_args(&objects), Vec::<String>::new());
    assert!(pod(&objects).get("volumes").is_none(), "{}", pod(&objects));
    let error = render_error(&["--set", "ui.prometheus.url=prom:9090"]).await;
    assert!(error.contains("url"), "{error}");
    let error = render_error(&["--set", "ui.prometheus.cacheTTL=soon"]).await;
    assert!(error.contains("cacheTTL"), "{error}");
}
