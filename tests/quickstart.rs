//! The README's first command as a new user runs it: the binary the suite builds, with the
//! README's arguments, inside a network namespace holding only loopback (`unshare --net`, as
//! root), shows every quickstart check passing within 30 s of the start and stops within a
//! second of SIGTERM; and a port that is taken stops it with an error naming the flag that
//! moves it.

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader, Read},
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use canary_operator::files;
use canary_test_harness::{read, repo};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");
/// Every check passes within this much of the start.
const DEADLINE: Duration = Duration::from_secs(30);

/// The arguments of the README's first command: the first line of its first code block,
/// `cargo run --release -- ARGS  # comment`.
fn readme_first_command() -> Vec<String> {
    let readme = read(&repo().join("README.md"));
    let (_, block) = readme
        .split_once("```sh\n")
        .expect("a sh code block in README.md");
    let line = block.lines().next().unwrap_or_default();
    let command = line.split('#').next().unwrap_or_default();
    let args = command.strip_prefix("cargo run --release -- ");
    let args = args.unwrap_or_else(|| {
        panic!("README's first command is not `cargo run --release -- ...`: {line}")
    });
    args.split_whitespace().map(String::from).collect()
}

/// `namespace/name` of every check the command's `-f` arguments load.
fn checks_of(args: &[String]) -> BTreeSet<String> {
    let files: Vec<PathBuf> = (args.windows(2))
        .filter(|pair| pair[0] == "-f" || pair[0] == "--filename")
        .map(|pair| repo().join(&pair[1]))
        .collect();
    assert!(!files.is_empty(), "no -f in {args:?}");
    let loaded = files::load(&files).expect("the quickstart loads");
    loaded.iter().map(|item| item.key().to_string()).collect()
}

/// Sends every stderr line of `child` with the time it arrived.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The `check=` field of a text log line saying `event`.
fn check_of<'a>(line: &'a str, event: &str) -> Option<&'a str> {
    let (_, fields) = line.split_once(event)?;
    fields
        .split_whitespace()
        .find_map(|f| f.strip_prefix("check="))
}

#[test]
fn the_readmes_first_command_passes_every_check_on_loopback_alone_within_30s() {
    let args = readme_first_command();
    let mut waiting = checks_of(&args);
    assert!(
        waiting.len() >= 5,
        "a quickstart worth the name: {waiting:?}"
    );
    let started = Instant::now();
    // A network namespace of its own: only `lo` exists, so nothing beyond loopback is reachable.
    let mut child = Command::new("unshare")
        .args([
            "--net",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(CANARY)
        .args(&args)
        .current_dir(repo())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) and ip (iproute2); scripts/test installs both");
    let rx = lines(&mut child);
    let mut log = Vec::new();
    let verdict = loop {
        let left = DEADLINE.saturating_sub(started.elapsed());
        let Ok(line) = rx.recv_timeout(left) else {
            break Err(format!("still not passing after {DEADLINE:?}: {waiting:?}"));
        };
        log.push(line.clone());
        if let Some(check) = check_of(&line, "check is failing") {
            break Err(format!("{check} failed"));
        }
        if let Some(check) = check_of(&line, "check is ready") {
            waiting.remove(check);
        }
        if waiting.is_empty() {
            break Ok(started.elapsed());
        }
    };
    let stopped = verdict.is_ok().then(|| stop(&mut child));
    let _ = child.kill();
    let _ = child.wait();
    let log = log.join("\n");
    let took = verdict.unwrap_or_else(|why| {
        panic!("needs root, unshare and ip (scripts/test installs them); {why}; log:\n{log}")
    });
    println!("every quickstart check passed {took:?} after the start, on loopback alone");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI colours on a log that is not a terminal:\n{log}"
    );
    // The README: "SIGTERM or SIGINT stops it within a second".
    let stopped = stopped.flatten();
    println!("stopped {stopped:?} after SIGTERM");
    assert!(
        stopped.is_some_and(|t| t < Duration::from_secs(1)),
        "{stopped:?}"
    );
}

/// Sends SIGTERM to `child` and waits (2 s at most) for it to exit: how long it took.
fn stop(child: &mut Child) -> Option<Duration> {
    let sent = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(kill.is_ok_and(|s| s.success()), "kill -TERM");
    while sent.elapsed() < Duration::from_secs(2) {
        if child.try_wait().expect("wait").is_some() {
            return Some(sent.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Runs `canary standalone` of the quickstart with `flags`; its exit code and stderr, which it
/// must reach within 10 s.
fn standalone_exit(flags: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(CANARY)
        .args(["standalone", "-f", "examples/quickstart/"])
        .args(flags)
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run canary");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr);
    let status = status.unwrap_or_else(|| panic!("still running with a port taken:\n{stderr}"));
    (status.code(), stderr)
}

#[test]
fn a_taken_port_stops_standalone_with_the_flag_that_moves_it() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = taken.local_addr().expect("addr").to_string();
    let free = "127.0.0.1:0";
    let cases = [
        ("--metrics-bind-address", [&taken[..], free, free]),
        ("--health-probe-bind-address", [free, &taken[..], free]),
        ("--ui-bind-address", [free, free, &taken[..]]),
    ];
    for (flag, [metrics, health, ui]) in cases {
        let (code, stderr) = standalone_exit(&[
            "--metrics-bind-address",
            metrics,
            "--health-probe-bind-address",
            health,
            "--ui-bind-address",
            ui,
        ]);
        assert_eq!(code, Some(1), "{flag}: {stderr}");
        let error = (stderr.lines())
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("{flag}: no error line:\n{stderr}"));
        assert!(
            error.contains(&taken) && error.contains(&format!("pass {flag} ")),
            "{flag}: {error}"
        );
    }
}
