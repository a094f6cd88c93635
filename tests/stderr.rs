//! Nothing writes to stderr synchronously: with stderr a pipe that is full and that nobody
//! reads (a stalled log pipeline), the real binary still exits within a bound, with the right
//! exit code, after a usage error, an invalid file (`canary check`) and a panic in a supervised
//! task (`CANARY_FAULT_INJECT_PANIC`). Without the bound each of them would block forever.

use std::{
    io::{ErrorKind, Write},
    os::fd::OwnedFd,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::{net::unix::pipe, process::Command};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");
/// What the process may take to exit: the documented 1.1 s of `logging`, start-up, and for the
/// panic its one second of delay and the service's shutdown, with room for a busy machine.
const BOUND: Duration = Duration::from_secs(8);

/// A pipe already full, in blocking mode (as a child's stderr would be), and its read end,
/// which nobody reads: keep it alive or writes fail with EPIPE instead of blocking.
fn full_pipe() -> (OwnedFd, pipe::Receiver) {
    let (sender, receiver) = pipe::pipe().expect("a pipe");
    // Filled through the non-blocking descriptor until the kernel says EAGAIN.
    let mut file = std::fs::File::from(sender.into_nonblocking_fd().expect("the descriptor"));
    let mut written = 0;
    for chunk in [&[b'x'; 65_536][..], b"x"] {
        loop {
            match file.write(chunk) {
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("filling the pipe: {e}"),
            }
        }
    }
    assert!(written >= 4096, "the pipe took {written} bytes");
    let sender = pipe::Sender::from_file(file).expect("a pipe's write end");
    (sender.into_blocking_fd().expect("blocking mode"), receiver)
}

/// Runs `canary args` with `env` and a full stderr; returns its exit code and how long it took.
async fn exit_with_stuck_stderr(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, Duration) {
    let (stderr, _unread) = full_pipe();
    let started = Instant::now();
    let mut child = Command::new(CANARY)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true)
        .spawn()
        .expect("start canary");
    match tokio::time::timeout(BOUND, child.wait()).await {
        Ok(status) => (status.expect("wait").code(), started.elapsed()),
        Err(_) => panic!("canary {args:?} still running after {BOUND:?} with a stuck stderr"),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn a_usage_error_exits_2_with_a_stuck_stderr() {
    let (code, took) = exit_with_stuck_stderr(&["check", "--no-such-flag"], &[]).await;
    assert_eq!(code, Some(2), "after {took:?}");
}

#[tokio::test]
async fn the_final_error_line_does_not_block_exit() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "bad.yaml",
        "kind: HealthCheck\nspec: [not, a, spec]\n",
    );
    let (code, took) = exit_with_stuck_stderr(&["check", "-f", &file], &[]).await;
    assert_eq!(code, Some(2), "invalid input, after {took:?}");
}

/// Standalone mode whose scheduler ticker panics a second after start, listening on loopback.
fn standalone_args(file: &str) -> Vec<String> {
    let loopback = "127.0.0.1:0";
    ["standalone", "-f", file, "--metrics-bind-address", loopback]
        .into_iter()
        .chain([
            "--health-probe-bind-address",
            loopback,
            "--ui-bind-address=",
        ])
        .map(String::from)
        .collect()
}

fn tcp_check(dir: &Path) -> String {
    let check = "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {name: db, namespace: shop}\nspec:\n  interval: 60s\n  timeout: 1s\n  tcp: {host: 127.0.0.1, port: 9}\n";
    write(dir, "check.yaml", check)
}

#[tokio::test]
async fn a_panic_does_not_block_exit() {
    let dir = tempfile::tempdir().unwrap();
    let args = standalone_args(&tcp_check(dir.path()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = [("CANARY_FAULT_INJECT_PANIC", "ticker")];
    let (code, took) = exit_with_stuck_stderr(&args, &env).await;
    assert_eq!(code, Some(1), "the supervisor's verdict, after {took:?}");
}

/// With a stderr that drains, the panic is logged once, as an ERROR event with its message,
/// and the final error line names the task.
#[tokio::test]
async fn a_panic_is_logged_through_the_log_queue() {
    let dir = tempfile::tempdir().unwrap();
    let args = standalone_args(&tcp_check(dir.path()));
    let output = Command::new(CANARY)
        .args(&args)
        .env("CANARY_FAULT_INJECT_PANIC", "ticker")
        .env("CANARY_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(BOUND, output)
        .await
        .expect("exits")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let panics: Vec<serde_json::Value> = (stderr.lines())
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| {
            event["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("panicked:"))
        })
        .collect();
    assert_eq!(panics.len(), 1, "{stderr}");
    let panic = &panics[0];
    assert_eq!(panic["level"], "ERROR", "{panic}");
    let message = panic["fields"]["message"].as_str().unwrap();
    assert!(
        message.contains("fault injected into task ticker"),
        "{panic}"
    );
    assert!(
        panic["fields"]["location"]
            .as_str()
            .unwrap()
            .contains("supervisor.rs"),
        "{panic}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: task ticker ended unexpectedly"),
        "{stderr}"
    );
    assert_eq!(output.status.code(), Some(1));
}
