//! What a probe costs Canary, the client alone: the targets run in a child process (this binary
//! re-executed with `PROBE_COST_SERVE`), serving an RSA-2048 chain (root, intermediate, leaf)
//! made with the `openssl` command, so the CPU read from `/proc/self` is the prober's only.
//!
//! 1. In-process probes of HTTPS GET, TLS only, plain HTTP and TCP at concurrency 1, 8 and 64:
//!    probes/s and CPU-ms per probe (`PROBES` per run, default 2000). Then the floor: the same
//!    HTTPS GET from a bare blocking rustls client on one thread (no runtime, no HTTP library,
//!    the request sent with the client's Finished), and the machine's crypto from
//!    `openssl speed`.
//! 2. `canary standalone` with 400 and 800 HTTPS checks at 1 s (`SECONDS`, default 20): CPU-ms per
//!    probe and RSS of that process, as issue 13 measured it.
//! 3. Idle memory: `canary standalone` with `IDLE` (default 10,000) HTTPS checks at 1 h, each run
//!    once, without a caBundle and with one shared caBundle: RSS per check.
//! 4. blackbox_exporter (Debian package `prometheus-blackbox-exporter`) probing the same HTTPS
//!    target through `/probe` at concurrency 1 and 8, as issue 13 compared it: CPU-ms per probe
//!    of its process, and section 1's figure as a share of it.
//!
//! `CANARY_BIN` runs another `canary` build in sections 2 and 3 (to compare before and after).
//! `PROFILE=1` writes a flamegraph of HTTPS GET at concurrency 8 to `target/perf/https-c8.svg`.
//! `SECTIONS=1,2,3,4` picks sections. Run: `cargo bench --bench probe_cost` (bench profile: fat LTO, as shipped).

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use canary_operator::{
    api::Reason,
    probe::{self, Probe, ProbeContext},
};
use canary_test_harness::{
    env_or,
    http::get,
    procfs::{cpu, memory_mib},
    refs::{MapRefs, build, spec},
    targets::{Reply, TestServer, Transport, tls_config},
    wait::eventually,
};
use futures::{StreamExt, stream};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use serde_json::json;

const SERVE_ENV: &str = "PROBE_COST_SERVE";

fn main() {
    if let Ok(dir) = std::env::var(SERVE_ENV) {
        return serve(Path::new(&dir));
    }
    let sections: String = env_or("SECTIONS", "1,2,3,4".to_string());
    let pki = tempfile::tempdir().unwrap();
    make_chain(pki.path());
    let targets = Targets::start(pki.path());
    println!(
        "cores: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "targets in process {} (RSA-2048 chain, TLS 1.3)",
        targets.child.0.id()
    );
    let canary_c8 = sections
        .contains('1')
        .then(|| client_only(&targets, pki.path()));
    if sections.contains('2') {
        for checks in [400, 800] {
            standalone_at_one_second(&targets, pki.path(), checks);
        }
    }
    if sections.contains('3') {
        idle_memory(&targets, pki.path());
    }
    if sections.contains('4') {
        beside_blackbox(&targets, pki.path(), canary_c8);
    }
}

/// Root, intermediate and leaf (`localhost`), RSA-2048, written as PEM into `dir`.
fn make_chain(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output();
        let out = out.expect("openssl is installed (Debian package openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("ca.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    fn key(name: &str) -> [&str; 5] {
        ["-newkey", "rsa:2048", "-nodes", "-keyout", name]
    }
    openssl(
        &[
            &["req", "-x509"][..],
            &key("root.key"),
            &["-out", "root.crt", "-days", "30", "-subj", "/CN=Bench Root"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &key("int.key"),
            &["-out", "int.csr", "-subj", "/CN=Bench Intermediate"],
        ]
        .concat(),
    );
    openssl(&[
        "x509",
        "-req",
        "-in",
        "int.csr",
        "-CA",
        "root.crt",
        "-CAkey",
        "root.key",
        "-CAcreateserial",
        "-out",
        "int.crt",
        "-days",
        "30",
        "-extfile",
        "ca.ext",
    ]);
    openssl(
        &[
            &["req"][..],
            &key("leaf.key"),
            &["-out", "leaf.csr", "-subj", "/CN=localhost"],
        ]
        .concat(),
    );
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "int.crt",
        "-CAkey",
        "int.key",
        "-CAcreateserial",
        "-out",
        "leaf.crt",
        "-days",
        "30",
        "-extfile",
        "leaf.ext",
    ]);
}

/// The child: an HTTPS server presenting leaf + intermediate and a plain one; prints their
/// ports, serves until stdin closes.
fn serve(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pem = |name: &str| std::fs::read(dir.join(name)).unwrap();
        let chain = [pem("leaf.crt"), pem("int.crt")]
            .iter()
            .map(|p| CertificateDer::from_pem_slice(p).unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_slice(&pem("leaf.key")).unwrap();
        let config = tls_config(chain, key, &[&rustls::version::TLS13], None);
        let body = "{\"status\":\"ok\"}";
        let https = TestServer::start(Transport::Tls(config), move |_| Reply::ok(body)).await;
        let plain = TestServer::start(Transport::Plain, move |_| Reply::ok(body)).await;
        println!("{} {}", https.port(), plain.port());
        std::io::stdout().flush().unwrap();
        tokio::task::spawn_blocking(|| std::io::stdin().lines().count())
            .await
            .unwrap();
    });
}

struct Targets {
    child: Killed,
    https: u16,
    plain: u16,
}

impl Targets {
    fn start(pki: &Path) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(SERVE_ENV, pki)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ports: Vec<u16> = line
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        Self {
            child: Killed(child),
            https: ports[0],
            plain: ports[1],
        }
    }
}

fn ca_refs(pki: &Path) -> MapRefs {
    let root = std::fs::read_to_string(pki.join("root.crt")).unwrap();
    MapRefs::default().config_map("ca", "ca.crt", root)
}

fn kinds(targets: &Targets) -> Vec<(&'static str, serde_json::Value)> {
    let ca = json!({"caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}}});
    vec![
        (
            "HTTPS GET",
            json!({"http": {"url": format!("https://localhost:{}/healthz", targets.https), "expect": {"bodyContains": "ok"}}, "tlsPolicy": ca}),
        ),
        (
            "TLS only",
            json!({"tls": {"host": "localhost", "port": targets.https}, "tlsPolicy": ca}),
        ),
        (
            "plain HTTP",
            json!({"http": {"url": format!("http://127.0.0.1:{}/healthz", targets.plain)}}),
        ),
        (
            "TCP",
            json!({"tcp": {"host": "127.0.0.1", "port": targets.plain}}),
        ),
    ]
}

/// Runs `probes` probes of `check`, `concurrency` at once: (seconds, CPU-seconds of this process).
async fn run(
    check: &Arc<Probe>,
    ctx: &Arc<ProbeContext>,
    probes: usize,
    concurrency: usize,
) -> (f64, f64) {
    let (cpu0, t0) = (cpu("self").as_secs_f64(), Instant::now());
    let ok = stream::iter(0..probes)
        .map(|_| {
            let (check, ctx) = (check.clone(), ctx.clone());
            async move { probe::run(&check, &ctx).await }
        })
        .buffer_unordered(concurrency)
        .filter(|outcome| std::future::ready(outcome.reason == Reason::Succeeded))
        .count()
        .await;
    assert_eq!(ok, probes, "every probe must succeed");
    (t0.elapsed().as_secs_f64(), cpu("self").as_secs_f64() - cpu0)
}

/// Section 1; returns CPU-ms per HTTPS GET at concurrency 8.
fn client_only(targets: &Targets, pki: &Path) -> f64 {
    let probes: usize = env_or("PROBES", 2000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let refs = ca_refs(pki);
    let ctx = Arc::new(ProbeContext::default());
    let mut https_c8 = 0.0;
    println!("\n1. client only, {probes} probes per run (CPU of this process; targets elsewhere)");
    for (kind, spec_json) in kinds(targets) {
        let check = Arc::new(build(&spec(spec_json), &refs));
        for concurrency in [1, 8, 64] {
            let profile =
                kind == "HTTPS GET" && concurrency == 8 && std::env::var("PROFILE").is_ok();
            let guard = profile.then(|| {
                pprof::ProfilerGuardBuilder::default()
                    .frequency(999)
                    .build()
                    .unwrap()
            });
            let (seconds, cpu) = runtime.block_on(run(&check, &ctx, probes, concurrency));
            if let Some(guard) = guard {
                flamegraph(&guard, "https-c8");
            }
            let per_probe = cpu / probes as f64 * 1000.0;
            if kind == "HTTPS GET" && concurrency == 8 {
                https_c8 = per_probe;
            }
            println!(
                "{kind:>10}, concurrency {concurrency:>2}: {:>6.0} probes/s, {per_probe:.3} CPU-ms per probe",
                probes as f64 / seconds,
            );
        }
    }
    println!(
        "peak RSS of the client: {:.1} MiB",
        memory_mib("self", "VmHWM")
    );
    let floor = bare_client(targets, pki, probes);
    println!(
        "\n bare rustls client, one thread: {floor:.3} CPU-ms per HTTPS GET (the least a client does here)"
    );
    openssl_speed();
    https_c8
}

/// CPU-ms per HTTPS GET of the least a client can do on this machine with Canary's TLS stack:
/// blocking sockets on one thread, `localhost` resolved by the system, a full TLS 1.3 handshake
/// with Canary's provider verifying the chain, the request queued before the handshake so it
/// leaves with the client's Finished, the response read to the end, close_notify sent.
fn bare_client(targets: &Targets, pki: &Path, probes: usize) -> f64 {
    use std::{io::Read, net::TcpStream};
    let mut roots = rustls::RootCertStore::empty();
    let root = std::fs::read(pki.join("root.crt")).unwrap();
    roots
        .add(CertificateDer::from_pem_slice(&root).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(probe::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    let config = Arc::new(config);
    let request = "GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";
    let cpu0 = cpu("self").as_secs_f64();
    for _ in 0..probes {
        let mut socket = TcpStream::connect(("localhost", targets.https)).unwrap();
        socket.set_nodelay(true).unwrap();
        let name = "localhost".try_into().unwrap();
        let mut tls = rustls::ClientConnection::new(config.clone(), name).unwrap();
        tls.writer().write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        let mut stream = rustls::Stream::new(&mut tls, &mut socket);
        match stream.read_to_end(&mut response) {
            Ok(_) => {}
            // The target closes without close_notify after `connection: close`.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => panic!("bare client: {e}"),
        }
        assert!(
            response.starts_with(b"HTTP/1.1 200"),
            "bare client response"
        );
        tls.send_close_notify();
        let _ = tls.write_tls(&mut socket);
    }
    (cpu("self").as_secs_f64() - cpu0) / probes as f64 * 1000.0
}

/// The crypto a TLS 1.3 handshake here cannot avoid, from `openssl speed`: two X25519
/// operations and three RSA-2048 verifications (CertificateVerify, leaf, intermediate).
fn openssl_speed() {
    let out = Command::new("openssl")
        .args(["speed", "-seconds", "3", "ecdhx25519", "rsa2048"])
        .output()
        .expect("openssl is installed (Debian package openssl)");
    let text = String::from_utf8_lossy(&out.stdout);
    // `rsa 2048 bits 0.000577s 0.000016s 1733.5 61054.9` and `253 bits ecdh (X25519) 0.0000s 31168.0`
    let last = |prefix: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.trim_start().starts_with(prefix))?;
        line.split_whitespace().last()?.parse().ok()
    };
    let (Some(verify), Some(x25519)) = (last("rsa 2048 bits"), last("253 bits ecdh")) else {
        panic!("openssl speed printed no figures:\n{text}");
    };
    let floor = 2.0 / x25519 + 3.0 / verify;
    println!(
        " openssl speed: {x25519:.0} X25519 ops/s, {verify:.0} RSA-2048 verifications/s: {:.3} ms of crypto per handshake",
        floor * 1000.0
    );
}

fn flamegraph(guard: &pprof::ProfilerGuard<'_>, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/perf");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.svg"));
    let report = guard.report().build().unwrap();
    report
        .flamegraph(std::fs::File::create(&path).unwrap())
        .unwrap();
    println!("flamegraph: {}", path.display());
}

/// `count` HealthCheck documents of HTTPS GET on the target, at `interval`.
fn https_checks(targets: &Targets, count: usize, interval: &str, bundle: bool) -> String {
    let policy = if bundle {
        "  tlsPolicy: {caBundle: {configMapKeyRef: {name: ca, key: ca.crt}}}\n"
    } else {
        "  tlsPolicy: {verify: false}\n"
    };
    (0..count)
        .map(|i| format!(
            "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {{name: c{i}, namespace: bench}}\nspec:\n  interval: {interval}\n  timeout: 800ms\n  http: {{url: 'https://localhost:{}/healthz'}}\n{policy}",
            targets.https
        ))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// A `canary standalone` on `checks` (a YAML stream) with the CA ConfigMap folder.
struct Standalone {
    child: Killed,
    _dir: tempfile::TempDir,
}

impl Standalone {
    fn start(checks: &str, pki: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("checks.yaml"), checks).unwrap();
        let maps = dir.path().join("configmaps/ca");
        std::fs::create_dir_all(&maps).unwrap();
        std::fs::copy(pki.join("root.crt"), maps.join("ca.crt")).unwrap();
        // CANARY_BIN: another build to compare (a copy of an earlier build of canary).
        let binary = std::env::var("CANARY_BIN").unwrap_or(env!("CARGO_BIN_EXE_canary").into());
        let child = Command::new(binary)
            .args(["standalone", "-f"])
            .arg(dir.path().join("checks.yaml"))
            .arg("--configmaps-dir")
            .arg(dir.path().join("configmaps"))
            .args([
                "--metrics-bind-address",
                "127.0.0.1:0",
                "--health-probe-bind-address",
                "127.0.0.1:0",
                "--ui-bind-address",
                "",
                "--log-level",
                "warn",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child: Killed(child),
            _dir: dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }
}

fn standalone_at_one_second(targets: &Targets, pki: &Path, checks: usize) {
    let seconds: u64 = env_or("SECONDS", 20);
    let canary = Standalone::start(&https_checks(targets, checks, "1s", true), pki);
    std::thread::sleep(Duration::from_secs(8)); // start-up and the first, jittered runs
    let (cpu0, t0) = (cpu(canary.pid()).as_secs_f64(), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let (cpu, wall) = (
        cpu(canary.pid()).as_secs_f64() - cpu0,
        t0.elapsed().as_secs_f64(),
    );
    let probes = checks as f64 * wall;
    println!(
        "\n2. canary standalone, {checks} HTTPS checks at 1s: {:.3} CPU-ms per probe, RSS {:.1} MiB",
        cpu / probes * 1000.0,
        memory_mib(canary.pid(), "VmRSS")
    );
}

fn idle_memory(targets: &Targets, pki: &Path) {
    let idle: usize = env_or("IDLE", 10_000);
    let mut per = Vec::new();
    for bundle in [false, true] {
        let empty = Standalone::start("", pki);
        std::thread::sleep(Duration::from_secs(2));
        let base = memory_mib(empty.pid(), "VmRSS");
        drop(empty);
        let canary = Standalone::start(&https_checks(targets, idle, "1h", bundle), pki);
        // Every check runs once within seconds of start (quick jitter), then idles for an hour.
        std::thread::sleep(Duration::from_secs(15));
        let rss = memory_mib(canary.pid(), "VmRSS");
        let per_check = (rss - base) * 1024.0 / idle as f64;
        per.push(per_check);
        println!(
            "\n3. {idle} idle HTTPS checks {}: RSS {rss:.1} MiB, {per_check:.1} KiB per check",
            if bundle {
                "sharing one caBundle"
            } else {
                "without a caBundle"
            }
        );
    }
    println!(
        "a shared caBundle costs {:.1} KiB per check more",
        per[1] - per[0]
    );
}

/// Section 4: blackbox_exporter's CPU per HTTPS probe of the same target, driven through
/// `/probe` (a fresh connection per request, as Prometheus' scrapes are short-lived here).
fn beside_blackbox(targets: &Targets, pki: &Path, canary_c8: Option<f64>) {
    let probes: usize = env_or("PROBES", 2000) / 2;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("blackbox.yml");
    let module = format!(
        "modules:\n  https:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n      fail_if_body_not_matches_regexp: [ok]\n      tls_config: {{ca_file: {}}}\n",
        pki.join("root.crt").display()
    );
    std::fs::write(&config, module).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let binary = "prometheus-blackbox-exporter";
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=error")
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{binary}: {e} (apt-get install prometheus-blackbox-exporter)"));
    let blackbox = Killed(child);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let path = format!(
        "/probe?module=https&target=https://localhost:{}/healthz",
        targets.https
    );
    runtime.block_on(eventually(
        Duration::from_secs(10),
        "blackbox_exporter answers",
        Duration::from_millis(100),
        async || get(addr, "/-/healthy").await.map(drop),
    ));
    println!("\n4. blackbox_exporter, {probes} HTTPS probes through /probe (CPU of its process)");
    for concurrency in [1, 8] {
        let cpu0 = cpu(blackbox.0.id()).as_secs_f64();
        let ok = runtime.block_on(
            stream::iter(0..probes)
                .map(|_| get(addr, &path))
                .buffer_unordered(concurrency)
                .filter(|r| {
                    let success = r
                        .as_ref()
                        .is_ok_and(|r| r.body.contains("\nprobe_success 1"));
                    std::future::ready(success)
                })
                .count(),
        );
        assert_eq!(ok, probes, "every blackbox_exporter probe must succeed");
        let per_probe = (cpu(blackbox.0.id()).as_secs_f64() - cpu0) / probes as f64 * 1000.0;
        let share = canary_c8.map_or(String::new(), |canary| {
            format!(
                ", Canary (section 1, concurrency 8) spends {:.2} of it",
                canary / per_probe
            )
        });
        println!(
            "blackbox_exporter, concurrency {concurrency}: {per_probe:.3} CPU-ms per probe{share}"
        );
    }
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
