//! The page under hostile clients, with 1,000 checks (each card ~2 KiB, so an unpaginated
//! overview is ~2 MiB). Before issue 23: every connection held its own copy of the whole
//! overview until the client read it (128 clients that never read: hundreds of MiB), and pages
//! were rendered on the runtime that times probes. Now the overview is paginated, cached and
//! budgeted, and rendered on the page's own thread at a bounded share of one core.
//! (The release-build figures, 2,000 checks and the sentinel flood, are in
//! `cargo bench --bench status_page`.)

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Instant,
};

use canary_test_harness::{
    http,
    operator::{Launch, Operator},
    procfs::tcp_send_queue,
    targets::closed_port,
    wait::eventually,
};

use super::{CANARY, SEC, ui};

/// Checks in the fleet.
const CHECKS: usize = 1000;
/// Connections held open (the page's cap).
const CONNECTIONS: usize = 128;

/// `canary standalone` with [`CHECKS`] TCP checks of a closed port (failing, with a message,
/// at 1 h: each runs once within seconds), all of them run once.
async fn fleet(dir: &std::path::Path) -> Operator {
    let port = closed_port().await;
    let docs: Vec<String> = (0..CHECKS)
        .map(|i| {
            format!(
                "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {{namespace: team-{}, name: service-{i}}}\n\
                 spec: {{interval: 1h, timeout: 1s, tcp: {{host: 127.0.0.1, port: {port}}}}}\n",
                i % 20
            )
        })
        .collect();
    std::fs::write(dir.join("fleet.yaml"), docs.join("---\n")).unwrap();
    let canary = Launch::standalone(CANARY, dir).process().await;
    canary.wait_ready(30 * SEC).await;
    eventually(60 * SEC, "every check ran once", SEC, async || {
        let runs = canary.metric_sum("canary_check_runs_total", &[]).await;
        if runs >= CHECKS as f64 {
            Ok(())
        } else {
            Err(format!("{runs} runs"))
        }
    })
    .await;
    canary
}

/// Sends `GET target` on a new connection and reads the first bytes of the reply (so it was
/// rendered), then never reads again. Its receive buffer is 4 KiB, as a remote client that
/// wants the server to keep its reply would set it (on loopback the kernel would otherwise
/// take megabytes of it off the process).
fn unread(addr: SocketAddr, target: &str, gzip: bool) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .connect_timeout(&addr.into(), 2 * SEC)
        .expect("connect");
    let mut stream = TcpStream::from(socket);
    let encoding = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    let request = format!("GET {target} HTTP/1.1\r\nHost: canary\r\n{encoding}\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.set_read_timeout(Some(60 * SEC)).unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).expect("the reply starts");
    let head = String::from_utf8_lossy(&head);
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.1 503"),
        "{target}: {head}"
    );
    stream
}

/// 96 clients ask for the overview (a third gzipped) and 32 for other pages of it (so a cache
/// cannot serve them all), read the start of the reply and stop reading. The process's RSS
/// plus the kernel's send queues of the page's sockets grow by less than 48 MiB (the budget is
/// 16 MiB, send buffers 160 KiB each; the rest is slack for a debug build's allocator), and the
/// page still answers others. Before: the whole ~2.2 MiB overview per connection, about
/// 280 MiB, in the kernel's send queues here (autotuned up to 4 MiB each, charged to the pod's
/// cgroup) and in RSS beyond that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_cost_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let canary = fleet(dir.path()).await;
    let addr = ui(&canary);
    http::get(addr, "/").await.expect("the overview answers");
    let before = canary.rss_mib();
    let held = tokio::task::spawn_blocking(move || {
        (0..CONNECTIONS)
            .map(|i| match i % 4 {
                0 => unread(addr, "/", true),
                1 | 2 => unread(addr, "/", false),
                _ => unread(addr, &format!("/?page={}&client={i}", i % 10 + 1), false),
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let rss = canary.rss_mib() - before;
    let queued = tcp_send_queue(addr.port()) as f64 / 1024.0 / 1024.0;
    let grown = rss + queued;
    eprintln!(
        "{CONNECTIONS} unread replies: RSS {before:.1} MiB + {rss:.1} MiB, kernel send queues {queued:.1} MiB"
    );
    let still = http::get(addr, "/?failing=1").await;
    assert_eq!(still.map(|r| r.status), Ok(200), "the page answers others");
    assert!(
        grown < 48.0,
        "{} unread replies grew RSS plus send queues by {grown:.1} MiB",
        held.len()
    );
}

/// Clients fetch uncacheable pages as fast as they can for a few seconds. The CPU goes to the
/// page's render thread, within its share of one core (25 %, plus one 10 ms clock tick of
/// slack per second), and not to the runtime whose threads time the probes. Before: no such
/// thread; the overview was rendered on the probing runtime's threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_on_their_own_thread_within_a_quarter_core() {
    let dir = tempfile::tempdir().unwrap();
    let canary = fleet(dir.path()).await;
    let addr = ui(&canary);
    let ticks = |name: &str| -> u64 {
        (canary.thread_ticks().into_iter())
            .filter(|(thread, _)| thread == name)
            .map(|(_, ticks)| ticks)
            .sum()
    };
    let (render0, probing0) = (ticks("canary-render"), ticks("tokio-rt-worker"));
    let start = Instant::now();
    let flood = (0..8).map(|client| async move {
        let mut answered = 0;
        for i in 0..15 {
            let path = format!("/?page={}&client={client}-{i}", i % 10 + 1);
            let status = http::get(addr, &path).await.map(|r| r.status);
            answered += usize::from(status == Ok(200));
        }
        answered
    });
    let answered: usize = futures::future::join_all(flood).await.iter().sum();
    let took = start.elapsed();
    let render = ticks("canary-render") - render0;
    let probing = ticks("tokio-rt-worker") - probing0;
    let allowed = (took.as_secs_f64() * (100.0 * 0.25 + 1.0)).ceil() as u64;
    eprintln!(
        "{answered} pages in {took:?}: render thread {render} ticks (allowed {allowed}), probing runtime {probing}"
    );
    assert!(answered > 0, "some pages were rendered");
    assert!(
        render > 0,
        "rendered on the page's thread: {:?}",
        canary.thread_ticks()
    );
    assert!(
        render <= allowed,
        "render thread took {render} ticks in {took:?} (allowed {allowed})"
    );
    assert!(
        probing * 4 <= render.max(8),
        "the probing runtime took {probing} ticks while pages took {render}"
    );
}

/// The overview of 1,000 checks comes in pages of 100 by group and name, a search finds one
/// check among them, and the list API still walks all of them with `limit` and `continue`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_comes_in_pages_and_searches_the_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let canary = fleet(dir.path()).await;
    let addr = ui(&canary);
    let page = async |path: &str| {
        let body = (http::get(addr, path).await).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(body.status, 200, "{path}");
        body.body
    };
    let cards = |html: &str| html.matches("<article class=\"card\"").count();
    let first = page("/").await;
    assert_eq!(cards(&first), 100, "a page holds 100 cards");
    assert!(first.contains("page 1 of 10"), "the pager counts pages");
    assert!(first.contains(r#"href="/?page=2""#), "and links the next");
    assert!(first.contains("1000 checks"), "the counts cover the fleet");
    let last = page("/?page=99").await;
    assert!(
        last.contains("page 10 of 10"),
        "past the end is the last page"
    );
    assert!(
        last.contains("/checks/team-9/service-989"),
        "ordered by group, then name"
    );
    let found = page("/?q=SERVICE-999+team-19").await;
    assert_eq!(cards(&found), 1, "a search finds the one check");
    assert!(
        found.contains(r#"value="SERVICE-999 team-19""#),
        "and keeps its words"
    );
    let found = page("/?q=service-999%20team-9").await;
    assert_eq!(cards(&found), 0, "every word must match");
    let failing = page("/?failing=1&page=2").await;
    assert_eq!(cards(&failing), 100, "the failing checks page too");
    let mut listed = 0;
    let mut next = String::from("/api/v1/checks?limit=500");
    loop {
        let list = http::get(addr, &next).await.unwrap().json();
        listed += list["items"].as_array().unwrap().len();
        assert_eq!(list["total"], 1000);
        match list["continue"].as_str() {
            Some(token) => next = format!("/api/v1/checks?limit=500&continue={token}"),
            None => break,
        }
    }
    assert_eq!(listed, 1000, "the list walks the fleet");
}
