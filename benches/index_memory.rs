//! What one HealthCheck costs in a replica's reconcile index, part by part. Every replica keeps
//! every object its watches report (sharding places checks by key, and the peer audit reads
//! every check's status), so this cost is paid N times over a fleet of N replicas.
//! A real object first: applied with `kubectl apply` (client-side, so it carries kubectl's
//! last-applied annotation, as most users' objects do) to the local API server, probed by an
//! operator until its status is written, then read back. Then `CHECKS` (default 10,000)
//! copies of it under distinct names are deserialized into an index-like map, once per variant,
//! and jemalloc's allocated bytes give the cost per object of:
//! - `as read`: the object as the API server sends it;
//! - `slim`: what the index keeps (`controller::slim`: no managedFields, no last-applied);
//! - `slim, no status`, `metadata and key only`: what is left to cut;
//! - `slim, with a full status.history`: the same object carrying 30 days of hourly history of
//!   a check every 10s (issue 28), as the runner stores it.
//!
//! Run: `cargo bench --features jemalloc --bench index_memory` (needs the tools of
//! `scripts/test` for kubectl).

use std::{collections::HashMap, sync::Arc, time::Duration};

use canary_operator::{
    api::{CheckKey, HealthCheck, Reason},
    controller::{shard::Watched, slim},
    probe::Outcome,
    runner::History,
};
use canary_test_harness::{
    cluster::{Cluster, http_check},
    env_or,
    operator::Launch,
    targets::{Reply, TestServer, Transport},
    wait::eventually,
};
use serde_json::{Value, json};
use tikv_jemalloc_ctl::{epoch, stats};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CANARY: &str = env!("CARGO_BIN_EXE_canary");

fn allocated() -> usize {
    epoch::advance().expect("jemalloc epoch");
    stats::allocated::read().expect("jemalloc stats")
}

/// A HealthCheck as a user's cluster holds it once it has run.
async fn live_object() -> Value {
    let cluster = Cluster::start().await;
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let operator = Launch::operator(CANARY, cluster.kubeconfig())
        .process()
        .await;
    let mut check = http_check("default", "sample", &target.url("/healthz"), json!({}));
    check["metadata"]["labels"] = json!({"team": "payments", "tier": "critical"});
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), check.to_string()).expect("write");
    let path = file.path().to_string_lossy().into_owned();
    cluster.kubectl.ok(&["apply", "-f", &path]).await;
    let object = eventually(
        Duration::from_secs(60),
        "a status with a last result",
        Duration::from_millis(200),
        async || {
            let object = cluster.check("default", "sample").await;
            let runs = object["status"]["consecutiveSuccesses"]
                .as_i64()
                .unwrap_or(0);
            if runs >= 1 {
                Ok(object)
            } else {
                Err(object["status"].to_string())
            }
        },
    )
    .await;
    // As a watch sends it: kubectl hides managedFields unless asked.
    let args = [
        "get",
        "--show-managed-fields",
        "-o",
        "json",
        "-n",
        "default",
    ];
    let text = cluster
        .kubectl
        .ok(&[&args[..], &["healthchecks.canary.dev", "sample"]].concat())
        .await;
    let _ = operator.terminate().await;
    drop(object);
    serde_json::from_str(&text).expect("the object as JSON")
}

/// Bytes per object of `checks` copies of `object` in an index-like map, each cut by `cut`.
fn cost(object: &Value, checks: usize, cut: Cut) -> f64 {
    let texts: Vec<String> = (0..checks)
        .map(|i| {
            let mut copy = object.clone();
            copy["metadata"]["name"] = json!(format!("check-{i:05}"));
            copy["metadata"]["uid"] = json!(format!("00000000-0000-0000-0000-{i:012}"));
            copy.to_string()
        })
        .collect();
    let before = allocated();
    let mut index: HashMap<CheckKey, Arc<HealthCheck>> = HashMap::with_capacity(checks);
    for text in &texts {
        let mut check: HealthCheck = serde_json::from_str(text).expect("a HealthCheck");
        cut(&mut check);
        index.insert(CheckKey::of(&check), Arc::new(check));
    }
    let after = allocated();
    drop(index);
    after.saturating_sub(before) as f64 / checks as f64
}

/// What the index keeps of a packed object: its JSON and the facts the passes read (the peer
/// audit's, located, probes, references).
type Packed = (Box<[u8]>, Option<Watched>, [bool; 3]);

/// Bytes per object of `checks` copies of `object` kept packed, as the index keeps every check
/// but the located ones and those with references that run here: the slim object's JSON, and
/// the facts the passes read. Also prints how long parsing one back takes (an event's cost).
fn packed_cost(object: &Value, checks: usize) -> f64 {
    let texts: Vec<String> = (0..checks)
        .map(|i| {
            let mut copy = object.clone();
            copy["metadata"]["name"] = json!(format!("check-{i:05}"));
            copy.to_string()
        })
        .collect();
    let before = allocated();
    let mut index: HashMap<CheckKey, Packed> = HashMap::with_capacity(checks);
    for text in &texts {
        let mut check: HealthCheck = serde_json::from_str(text).expect("a HealthCheck");
        slim(&mut check);
        let json = serde_json::to_vec(&check).expect("JSON").into_boxed_slice();
        index.insert(
            CheckKey::of(&check),
            (
                json,
                Watched::of(
                    &check,
                    canary_operator::api::validate(&check.spec).ok().as_ref(),
                ),
                [false; 3],
            ),
        );
    }
    let after = allocated();
    let started = std::time::Instant::now();
    for (json, _, _) in index.values() {
        let parsed: HealthCheck = serde_json::from_slice(json).expect("it parses back");
        std::hint::black_box(parsed);
    }
    let parse = started.elapsed().as_secs_f64() * 1e6 / checks as f64;
    println!("  (packed: parsing one back takes {parse:.1} µs)");
    drop(index);
    after.saturating_sub(before) as f64 / checks as f64
}

/// What a variant keeps of each object.
type Cut = fn(&mut HealthCheck);

fn no_status(check: &mut HealthCheck) {
    slim(check);
    check.status = None;
}

fn metadata_only(check: &mut HealthCheck) {
    no_status(check);
    check.spec = serde_json::from_value(json!({"tcp": {"host": "x", "port": 1}}))
        .expect("the smallest spec");
    let metadata = &mut check.metadata;
    metadata.labels = None;
    metadata.annotations = None;
    metadata.creation_timestamp = None;
}

/// `status.history` of a check every 10s for 30 days: latency wandering between 40 and 62 ms,
/// one run in 500 failing.
fn full_history() -> String {
    let now = jiff::Timestamp::now().as_second();
    let start = now - 30 * 86_400 + 3600;
    let mut history = History::new(start);
    for i in 0..(30 * 8640 - 360) {
        let reason = if i % 500 == 7 {
            Reason::Timeout
        } else {
            Reason::Succeeded
        };
        let mut outcome = Outcome::not_run(reason, "");
        outcome.started_at = jiff::Timestamp::from_second(start + i * 10).expect("a time");
        outcome.duration = Duration::from_millis(40 + (i as u64 * 7919) % 23);
        history.record(&outcome);
    }
    history.stored()
}

fn json_bytes(value: &Value) -> usize {
    value.to_string().len()
}

#[tokio::main]
async fn main() {
    let checks: usize = env_or("CHECKS", 10_000);
    let object = live_object().await;
    let metadata = &object["metadata"];
    println!("one live object: {} bytes of JSON", json_bytes(&object));
    println!(
        "  managedFields: {} bytes",
        json_bytes(&metadata["managedFields"])
    );
    let last_applied = &metadata["annotations"]["kubectl.kubernetes.io/last-applied-configuration"];
    println!(
        "  last-applied annotation: {} bytes",
        json_bytes(last_applied)
    );
    println!(
        "  spec: {} bytes, status: {} bytes",
        json_bytes(&object["spec"]),
        json_bytes(&object["status"])
    );
    println!(
        "struct sizes: HealthCheck {} bytes (spec {}, status {}, metadata {})",
        size_of::<HealthCheck>(),
        size_of::<canary_operator::api::HealthCheckSpec>(),
        size_of::<Option<canary_operator::api::HealthCheckStatus>>(),
        size_of::<kube::api::ObjectMeta>(),
    );
    use canary_operator::api as a;
    println!(
        "  spec parts: http {}, tcp {}, tls {}, dns {}, grpc {}, tlsPolicy {}",
        size_of::<Option<a::HttpProbe>>(),
        size_of::<Option<a::SocketTarget>>(),
        size_of::<Option<a::SocketTarget>>(),
        size_of::<Option<a::DnsProbe>>(),
        size_of::<Option<a::GrpcProbe>>(),
        size_of::<Option<a::TlsPolicy>>(),
    );
    println!("in the index, {checks} objects (jemalloc allocated bytes per object):");
    let variants: [(&str, Cut); 4] = [
        ("as read", |_| {}),
        ("slim (what the index keeps)", slim),
        ("slim, no status", no_status),
        ("metadata and key only", metadata_only),
    ];
    for (name, cut) in variants {
        println!("  {name}: {:.0} bytes", cost(&object, checks, cut));
    }
    println!(
        "  packed (slim JSON and facts: how the index keeps most checks, owned or not): {:.0} bytes",
        packed_cost(&object, checks)
    );
    let history = full_history();
    let mut full = object.clone();
    full["status"]["history"] = json!(history);
    println!(
        "  slim, with a full status.history ({} bytes, 30 days at 10s): {:.0} bytes",
        history.len(),
        cost(&full, checks, slim)
    );
    println!(
        "  packed, with that history: {:.0} bytes",
        packed_cost(&full, checks)
    );
}
