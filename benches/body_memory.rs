//! Memory a body expectation may cost: 64 concurrent probes of 64 MiB bodies of 0xFF bytes
//! (not UTF-8) with each body expectation kind, peak RSS growth per kind measured in a fresh
//! process each (VmHWM only grows). Targets: < 64 MiB for bodyContains/bodyNotContains,
//! < 64 x regexBodyLimit + 32 MiB for bodyRegex (1Mi) and, for `regexBodyLimit: 4Mi`, the
//! default body buffer budget (64 MiB) + 32 MiB: 64 x 4 MiB no longer fits. The `hoard` kinds
//! face a target that sends 5 MiB and then pauses until the 5 s deadline, with the default
//! budget and with the budget lifted (the code before the budget).
//! The `json` kinds: 64 probes with `expect.json` against 1 MiB JSON bodies (an array of
//! objects, and the worst case for the parsed tree: an array of zeros), whose buffers and
//! parsed trees are charged to the default budget: growth must stay under it + 32 MiB, the
//! probes the budget cannot hold failing with BodyBudgetExceeded.
//! The `cel` kinds: the same bodies with `expect.json` and `expect.cel` (a `filter` over every
//! element), 64 checks (each with its own one-evaluation latch): the buffer, the parsed tree
//! and the CEL values are charged to the same budget, so growth must stay under it + 32 MiB;
//! `cel-256mi` lifts the budget to 256 MiB (target: it + 32 MiB).
//! Run on the shipped allocator (the CEL meter reads its counters):
//! `cargo bench --features jemalloc --bench body_memory` (bench profile: fat LTO, as shipped; prints its figures); a word after
//! `--` runs only the kinds containing it (`cargo bench --bench body_memory -- json`).

use std::{process::Command, sync::Arc, time::Instant};

use canary_operator::{
    api::{Reason, validate},
    probe::{self, BodyBudget, ProbeContext, ReferenceError, ReferenceSource},
};
use futures::{StreamExt, stream};
use serde_json::json;
use tokio::{io::AsyncWriteExt, net::TcpListener};

/// The shipped allocator: jemalloc returns freed buffers, and the CEL meter reads its counters.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const MIB: usize = 1 << 20;
const BODY: usize = 64 * MIB;
const CONCURRENCY: usize = 64;

/// No references: the specs here read none.
struct NoRefs;

impl ReferenceSource for NoRefs {
    fn read(&self, value: &canary_operator::api::ValueRef) -> Result<Vec<u8>, ReferenceError> {
        Err(ReferenceError::missing(value, false))
    }
}

fn mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    (status.lines().find(|l| l.starts_with(field)))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// A JSON body just under 1 MiB: objects, or (`zeros`) the densest tree, `[0,0,...]`.
fn json_body(zeros: bool) -> Vec<u8> {
    let mut body = b"[".to_vec();
    let item: &[u8] = if zeros {
        b"0,"
    } else {
        br#"{"name":"node-0042","status":"UP","ready":true,"latencyMs":12.5,"tags":["a","b"]},"#
    };
    while body.len() + item.len() < MIB - 16 {
        body.extend_from_slice(item);
    }
    body.extend_from_slice(b"0]");
    body
}

/// Serves one JSON body to every request.
async fn serve_json(listener: TcpListener, body: &'static [u8]) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if stream.write_all(head.as_bytes()).await.is_ok() {
                let _ = stream.write_all(body).await;
            }
        });
    }
}

/// Serves 64 MiB of 0xFF to every request from one static buffer (constant server memory);
/// with `pause`, only the first 5 MiB, then nothing until the client leaves.
async fn serve(listener: TcpListener, pause: bool) {
    static CHUNK: [u8; 64 * 1024] = [0xFF; 64 * 1024];
    let chunks = if pause { 5 * MIB } else { BODY } / CHUNK.len();
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await;
            let head =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\nConnection: close\r\n\r\n");
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for _ in 0..chunks {
                if stream.write_all(&CHUNK).await.is_err() {
                    return;
                }
            }
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await;
        });
    }
}

fn expectation(kind: &str) -> serde_json::Value {
    match kind {
        "contains" => json!({"bodyContains": "healthy"}),
        "not-contains" => json!({"bodyNotContains": "unhealthy"}),
        "regex" => json!({"bodyRegex": "healthy|ok"}),
        "regex-4mi" | "hoard" | "hoard-unbudgeted" => {
            json!({"bodyRegex": "healthy|ok", "regexBodyLimit": "4Mi"})
        }
        "json" | "json-zeros" => json!({"json": [
            {"path": "$[*]", "count": {"min": 1}},
            {"path": "$[0]", "exists": true},
        ]}),
        "cel" | "cel-zeros" | "cel-256mi" => json!({
            "json": [{"path": "$[0]", "exists": true}],
            "cel": "size(body) > 1 && body.filter(n, n == 0).size() >= 1",
        }),
        _ => json!({}),
    }
}

/// One kind, in this process: prints `kind growth_mib seconds reasons`.
fn measure(kind: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hoard = kind.starts_with("hoard");
        if kind.starts_with("json") || kind.starts_with("cel") {
            let body: &'static [u8] = Vec::leak(json_body(kind.ends_with("-zeros")));
            tokio::spawn(serve_json(listener, body));
        } else {
            tokio::spawn(serve(listener, hoard));
        }
        let timeout = if hoard { "5s" } else { "50s" };
        let spec = serde_json::from_value(json!({
            "timeout": timeout, "interval": "60s",
            "http": {"url": format!("http://127.0.0.1:{port}/"), "maxBodyBytes": "64Mi", "expect": expectation(kind)},
        }))
        .unwrap();
        // One probe per check, as 64 HealthChecks would have (each its own CEL latch).
        let valid = validate(&spec).unwrap();
        let probes: Vec<_> = (0..CONCURRENCY)
            .map(|_| Arc::new(probe::build(&valid, &NoRefs).unwrap()))
            .collect();
        let mut ctx = ProbeContext::default();
        if kind == "hoard-unbudgeted" {
            ctx.body_budget = BodyBudget::new(u64::MAX);
        }
        if kind == "cel-256mi" {
            ctx.body_budget = BodyBudget::new(256 << 20);
        }
        let ctx = Arc::new(ctx);
        let baseline = mib("VmHWM:");
        let start = Instant::now();
        let reasons: Vec<Reason> = stream::iter(probes)
            .map(|probe| {
                let ctx = ctx.clone();
                async move { probe::run(&probe, &ctx).await.reason }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let growth = mib("VmHWM:") - baseline;
        let mut kinds: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
        kinds.sort_unstable();
        let counted: Vec<String> = (kinds.chunk_by(|a, b| a == b))
            .map(|run| format!("{}x{}", run[0], run.len()))
            .collect();
        println!("{kind} {growth:.1} {:.1} {}", start.elapsed().as_secs_f64(), counted.join(","));
    });
}

fn main() {
    if let Some(kind) = std::env::args().skip_while(|a| a != "--kind").nth(1) {
        measure(&kind);
        return;
    }
    let only = (std::env::args().skip(1)).find(|a| !a.starts_with('-'));
    println!(
        "{CONCURRENCY} concurrent probes of {} MiB bodies of 0xFF, peak RSS growth per kind:",
        BODY / MIB
    );
    println!(
        "{:<14} {:>12} {:>10} {:>12}  reasons",
        "expectation", "growth MiB", "target", "seconds"
    );
    for (kind, target) in [
        ("none", 64.0),
        ("contains", 64.0),
        ("not-contains", 64.0),
        ("regex", 96.0),
        ("regex-4mi", 96.0),
        ("hoard", 96.0),
        ("hoard-unbudgeted", 288.0),
        ("json", 96.0),
        ("json-zeros", 96.0),
        ("cel", 96.0),
        ("cel-zeros", 96.0),
        ("cel-256mi", 288.0),
    ] {
        if only.as_deref().is_some_and(|word| !kind.contains(word)) {
            continue;
        }
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--kind", kind])
            .output()
            .unwrap();
        let line = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (growth, seconds, reasons) = (
            fields.get(1).copied().unwrap_or("?"),
            fields.get(2).copied().unwrap_or("?"),
            fields.get(3).copied().unwrap_or("?"),
        );
        let verdict = match growth.parse::<f64>() {
            Ok(g) if g < target => "ok",
            _ => "OVER",
        };
        println!(
            "{kind:<14} {growth:>12} {:>10} {seconds:>12}  {reasons} {verdict}",
            format!("< {target}")
        );
    }
}
