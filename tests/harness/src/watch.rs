//! A `kubectl get --watch` of HealthChecks that records every version it sees, restarted
//! whenever the watch ends (dropped watches, API server restarts): the witness of every status
//! the operator wrote.

use std::{
    collections::BTreeMap,
    io::Read,
    process::{Child, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    cluster::{describe, ready},
    tools::Kubectl,
};

/// What the watch has seen.
#[derive(Default)]
pub struct Seen {
    /// Latest version of each HealthCheck, by name (namespace/name with `all_namespaces`).
    pub objects: BTreeMap<String, Value>,
    /// Every event in arrival order: (when, type, object).
    pub history: Vec<(Instant, String, Value)>,
    /// kubectl sessions started (1 + restarts).
    pub sessions: usize,
}

impl Seen {
    /// The latest version of `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.objects.get(name)
    }

    /// The latest version of `name` when it shows Ready=`status` with `reason`; else what it
    /// shows.
    pub fn ready_as(&self, name: &str, status: &str, reason: &str) -> Result<Value, String> {
        let check = self.get(name).ok_or(format!("{name} not seen"))?;
        match ready(check) {
            Some((s, r, _)) if s == status && r == reason => Ok(check.clone()),
            _ => Err(describe(check)),
        }
    }

    /// Every version of `name` seen, oldest first.
    pub fn versions<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.history
            .iter()
            .filter(move |(_, _, o)| o["metadata"]["name"] == name)
            .map(|(_, _, o)| o)
    }
}

/// The background watch; stops (and kills kubectl) when dropped.
pub struct Watch {
    seen: Arc<Mutex<Seen>>,
    notify: Arc<tokio::sync::Notify>,
    stop: Arc<AtomicBool>,
    child: Arc<Mutex<Option<Child>>>,
}

impl Watch {
    /// Watches HealthChecks in `namespace` (all namespaces when `None`).
    pub fn start(kubectl: Arc<Kubectl>, namespace: Option<&str>) -> Self {
        let mut args: Vec<String> = vec![
            "get".into(),
            "healthchecks.canary.dev".into(),
            "--watch".into(),
            "--output-watch-events".into(),
            "-o".into(),
            "json".into(),
        ];
        match namespace {
            Some(ns) => args.extend(["-n".into(), ns.into()]),
            None => args.push("--all-namespaces".into()),
        }
        let keyed_by_namespace = namespace.is_none();
        let watch = Self {
            seen: Arc::default(),
            notify: Arc::default(),
            stop: Arc::default(),
            child: Arc::default(),
        };
        let (seen, notify, stop, slot) = (
            watch.seen.clone(),
            watch.notify.clone(),
            watch.stop.clone(),
            watch.child.clone(),
        );
        std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            while !stop.load(Ordering::SeqCst) {
                let mut cmd = kubectl.command(&args);
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null());
                let Ok(mut child) = cmd.spawn() else {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                };
                let stdout = child.stdout.take().expect("stdout");
                *slot.lock().unwrap() = Some(child);
                if stop.load(Ordering::SeqCst) {
                    // Dropped while starting: do not leave a watch behind.
                    if let Some(mut child) = slot.lock().unwrap().take() {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    return;
                }
                seen.lock().unwrap().sessions += 1;
                read_events(stdout, &seen, &notify, keyed_by_namespace);
                if let Some(mut child) = slot.lock().unwrap().take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                // The watch ended (dropped, server restarting): try again shortly.
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        watch
    }

    /// Runs `f` on what has been seen.
    pub fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap())
    }

    /// Waits until `f` returns `Ok` on what has been seen, failing after `deadline` with `what`
    /// and `f`'s last complaint.
    pub async fn until<T>(
        &self,
        deadline: Duration,
        what: &str,
        mut f: impl FnMut(&Seen) -> Result<T, String>,
    ) -> T {
        let until = Instant::now() + deadline;
        loop {
            let notified = self.notify.notified();
            let last = match self.with(&mut f) {
                Ok(value) => return value,
                Err(last) => last,
            };
            let now = Instant::now();
            if now >= until {
                panic!("timed out after {deadline:?} waiting for {what}; last seen: {last}");
            }
            let _ =
                tokio::time::timeout((until - now).min(Duration::from_millis(250)), notified).await;
        }
    }
}

impl Watch {
    /// Waits (20s at most) until `name` shows Ready=`status` with `reason`; returns that version.
    pub async fn ready_as(&self, name: &str, status: &str, reason: &str) -> Value {
        self.ready_within(Duration::from_secs(20), name, status, reason)
            .await
    }

    /// Like [`Watch::ready_as`] with a deadline of its own.
    pub async fn ready_within(
        &self,
        deadline: Duration,
        name: &str,
        status: &str,
        reason: &str,
    ) -> Value {
        let what = format!("{name} Ready={status} {reason}");
        (self.until(deadline, &what, |seen| seen.ready_as(name, status, reason))).await
    }
}

fn read_events(
    stdout: impl Read,
    seen: &Mutex<Seen>,
    notify: &tokio::sync::Notify,
    keyed_by_namespace: bool,
) {
    let stream =
        serde_json::Deserializer::from_reader(std::io::BufReader::new(stdout)).into_iter::<Value>();
    for event in stream {
        let Ok(mut event) = event else { return };
        let kind = event["type"].as_str().unwrap_or_default().to_string();
        let object = event["object"].take();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = if keyed_by_namespace {
            format!(
                "{}/{name}",
                object["metadata"]["namespace"].as_str().unwrap_or_default()
            )
        } else {
            name
        };
        {
            let mut seen = seen.lock().unwrap();
            if kind == "DELETED" {
                seen.objects.remove(&key);
            } else {
                seen.objects.insert(key, object.clone());
            }
            seen.history.push((Instant::now(), kind, object));
        }
        notify.notify_waiters();
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(child) = self.child.lock().unwrap().as_mut() {
            let _ = child.kill();
        }
    }
}
