//! `/proc` readers: open descriptors of this process, CPU time, memory and per-thread CPU of
//! any process (`"self"` or a pid), and the kernel's send queues of the sockets of a port.

use std::{fmt::Display, process::Command, sync::OnceLock, time::Duration};

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Waits (bounded) until the open descriptor count drops to `target`, returning the last count.
pub async fn settle_fds(target: usize, deadline: Duration) -> usize {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let now = open_fds();
        if now <= target || tokio::time::Instant::now() >= until {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Clock ticks (user + system) of a `stat` line, after the command name.
fn ticks(stat: &str) -> Option<u64> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command name: state is field 3, utime 14, stime 15 (1-based in proc(5)).
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// USER_HZ (clock ticks per second) from `getconf CLK_TCK`, 100 when unavailable.
fn clock_ticks() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(|| {
        (Command::new("getconf").arg("CLK_TCK").output().ok())
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// User + system CPU time of a process (`"self"` or a pid); zero when it is gone.
pub fn cpu(pid: impl Display) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let ticks = ticks(&stat).unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

/// A memory field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`) in MiB; zero when absent.
pub fn memory_mib(pid: impl Display, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    (status.lines().find(|l| l.starts_with(&format!("{field}:"))))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// CPU clock ticks (user + system) per thread of a process, by thread name, busiest first.
pub fn thread_ticks(pid: impl Display) -> Vec<(String, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out: Vec<(String, u64)> = tasks
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.ok()?.path().join("stat")).ok()?;
            let name = stat.split_once('(')?.1.rsplit_once(')')?.0.to_string();
            Some((name, ticks(&stat)?))
        })
        .collect();
    out.sort_by_key(|t| std::cmp::Reverse(t.1));
    out
}

/// Bytes queued in the kernel to be sent on the TCP sockets bound to local port `port` (IPv4
/// and IPv6): what a server's unread replies hold outside its own memory (charged to its
/// cgroup all the same).
pub fn tcp_send_queue(port: u16) -> u64 {
    let local = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| {
            let rows: Vec<u64> = (table.lines().skip(1))
                .filter_map(|row| {
                    let fields: Vec<&str> = row.split_whitespace().collect();
                    let queues = fields.get(4)?.split_once(':')?.0;
                    (fields.get(1)?.ends_with(&local))
                        .then(|| u64::from_str_radix(queues, 16).ok())?
                })
                .collect();
            rows
        })
        .sum()
}

#[test]
fn this_process_has_descriptors_cpu_and_memory() {
    assert!(open_fds() > 0);
    assert!(memory_mib("self", "VmRSS") > 0.0);
    let _ = cpu("self");
    assert!(!thread_ticks("self").is_empty());
}

/// Waits (up to `deadline`, else panics naming `what`) for `child` to exit, sampling its peak
/// RSS (`VmHWM` only grows: the last reading before it exits is its peak). Its output and the
/// peak in MiB.
pub async fn wait_with_peak(
    child: tokio::process::Child,
    deadline: Duration,
    what: &str,
) -> (std::process::Output, f64) {
    let pid = child.id().expect("running");
    let sampler = tokio::spawn(async move {
        let mut peak: f64 = 0.0;
        loop {
            let hwm = memory_mib(pid, "VmHWM");
            if hwm == 0.0 && peak > 0.0 {
                return peak;
            }
            peak = peak.max(hwm);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let out = tokio::time::timeout(deadline, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what}: still running after {deadline:?}"))
        .expect("the child's output");
    (out, sampler.await.expect("the sampler"))
}
