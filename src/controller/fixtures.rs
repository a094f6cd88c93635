//! Test fixtures that read as the domain: HealthCheck objects as the watch reports them, and
//! a reconcile context that needs no API server (specs without references never call it).

use std::{sync::Arc, time::Duration};

use super::{reconcile::Context, refs::RefCache, writer};
use crate::{
    api::{HealthCheck, HealthCheckSpec},
    metrics::Metrics,
    probe::ProbeContext,
    runner::{Scheduler, SchedulerConfig},
};

/// A TCP check of a closed loopback port, every minute, as the API server stores it
/// (uid, generation 1).
pub fn check(namespace: &str, name: &str) -> HealthCheck {
    let spec: HealthCheckSpec = serde_json::from_value(serde_json::json!({
        "interval": "60s", "timeout": "5s", "tcp": {"host": "127.0.0.1", "port": 9}
    }))
    .expect("a valid spec");
    let mut object = HealthCheck::new(name, spec);
    object.metadata.namespace = Some(namespace.into());
    object.metadata.uid = Some(format!("uid-{namespace}-{name}"));
    object.metadata.generation = Some(1);
    object
}

/// Builder steps on a fixture object.
pub trait CheckFixture: Sized {
    /// A new spec generation.
    fn generation(self, generation: i64) -> Self;
    /// The run-now annotation set to `value`.
    fn run_now(self, value: &str) -> Self;
    /// A status as our writer would have written it.
    fn written(self, consecutive_failures: i64) -> Self;
    /// A heartbeat spec, whose token is a reference to a Secret.
    fn heartbeat(self) -> Self;
}

impl CheckFixture for HealthCheck {
    fn generation(mut self, generation: i64) -> Self {
        self.metadata.generation = Some(generation);
        self
    }

    fn run_now(mut self, value: &str) -> Self {
        (self.metadata.annotations.get_or_insert_default())
            .insert(super::index::RUN_NOW.into(), value.into());
        self
    }

    fn written(mut self, consecutive_failures: i64) -> Self {
        let status = self.status.get_or_insert_default();
        status.consecutive_failures = consecutive_failures;
        self
    }

    fn heartbeat(mut self) -> Self {
        self.spec = serde_json::from_value(serde_json::json!({"heartbeat": {
            "tokenSecretRef": {"name": "ping-token", "key": "token"},
            "period": "1h", "grace": "5m"
        }}))
        .expect("a valid heartbeat spec");
        self
    }
}

/// A client whose every request fails at once (no connector, no TLS roots to load).
pub fn unreachable_client() -> kube::Client {
    let service = tower::service_fn(|_: http::Request<kube::client::Body>| async {
        Err::<http::Response<kube::client::Body>, _>(std::io::Error::other(
            "no API server in this test",
        ))
    });
    kube::Client::new(service, "default")
}

/// A reconcile context on a fresh scheduler, with a client that is never called.
pub fn context() -> Context {
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let client = unreachable_client();
    let config = writer::WriterConfig {
        qps: 1,
        burst: 1,
        first_qps: 1,
        first_burst: 1,
        heartbeat: Duration::from_secs(300),
        history: Duration::from_secs(3600),
        stall: Duration::from_secs(300),
    };
    Context {
        scheduler: Scheduler::new(SchedulerConfig::default(), vec![]),
        writer: writer::StatusWriter::new(client.clone(), config, metrics.clone()),
        refs: RefCache::new(client, Duration::from_secs(30), None),
        probe: Arc::new(ProbeContext::default()),
        metrics,
        synced: Default::default(),
        applied: None,
    }
}
