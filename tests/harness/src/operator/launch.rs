//! What to run ([`Launch`]) and running it as a child process whose logs are kept.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;

use super::{Operator, Process, Run};
use crate::chart;

/// What to run: the binary, its arguments and its whole environment.
#[derive(Debug, Clone)]
pub struct Launch {
    binary: PathBuf,
    /// A program (and its arguments) the binary is run through, such as `chroot`; empty: none.
    wrapper: Vec<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// (metrics, health) when the flags name them; `None`: read from the log line naming them.
    admin: Option<Admin>,
    /// Stop reading stdout and stderr once the admin addresses are announced (pipes kept open).
    stall_output: bool,
}

/// Admin endpoints and the status page on free loopback ports, announced in the JSON logs.
const LOOPBACK_ADMIN: [&str; 8] = [
    "--log-format",
    "json",
    "--metrics-bind-address",
    "127.0.0.1:0",
    "--health-probe-bind-address",
    "127.0.0.1:0",
    "--ui-bind-address",
    "127.0.0.1:0",
];

impl Launch {
    /// `canary operator` against `kubeconfig` (`binary`: `env!("CARGO_BIN_EXE_canary")`).
    pub fn operator(binary: &str, kubeconfig: &Path) -> Self {
        Self::new(binary, "operator", &LOOPBACK_ADMIN).kubeconfig(kubeconfig)
    }

    /// `canary standalone -f path`.
    pub fn standalone(binary: &str, path: &Path) -> Self {
        let path = path.display().to_string();
        Self::new(binary, "standalone", &["-f", &path]).args(&LOOPBACK_ADMIN)
    }

    fn new(binary: &str, subcommand: &str, args: &[&str]) -> Self {
        Self {
            binary: binary.into(),
            wrapper: Vec::new(),
            args: vec![subcommand.to_string()],
            env: Vec::new(),
            admin: None,
            stall_output: false,
        }
        .args(args)
    }

    /// As the rendered chart's Deployment runs it, against `kubeconfig`: its args (every
    /// `--*-bind-address` moved to a free loopback port) and its env (the Downward API filled in
    /// for pod `pod_name`). Fails when the ports the probes and the metrics Service use are not
    /// bound by some flag.
    pub fn as_deployed(binary: &str, kubeconfig: &Path, objects: &[Value], pod_name: &str) -> Self {
        let c = chart::container(objects);
        let namespace = chart::one(objects, "Deployment")["metadata"]["namespace"].as_str();
        let env = chart::container_env(c, pod_name, namespace.expect("namespace"));
        let (args, local) = loopback_binds(&chart::args(objects));
        let bound = |what: &str, port: u64| {
            *local.get(&port).unwrap_or_else(|| {
                panic!("no bind-address flag serves the {what} port {port}: {args:?}")
            })
        };
        let health_port = chart::container_port(c, &c["livenessProbe"]["httpGet"]["port"]);
        let ready_port = chart::container_port(c, &c["readinessProbe"]["httpGet"]["port"]);
        assert_eq!(
            health_port, ready_port,
            "liveness and readiness share a port"
        );
        let service = chart::one(objects, "Service");
        let metrics_port = chart::container_port(c, &service["spec"]["ports"][0]["targetPort"]);
        let admin = Some(Admin {
            metrics: bound("metrics", metrics_port),
            health: bound("probes'", health_port),
            ui: ui_port(objects).map(|port| bound("status page", port)),
            heartbeat: None,
        });
        let mut launch = Self {
            binary: binary.into(),
            wrapper: Vec::new(),
            args,
            env,
            admin,
            stall_output: false,
        };
        launch
            .env
            .push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
        launch
    }

    /// With the status page off (`--ui-bind-address ""`).
    pub fn ui_off(mut self) -> Self {
        if let Some(i) = self.args.iter().position(|a| a == "--ui-bind-address") {
            self.args[i + 1] = String::new();
        }
        self
    }

    /// Never reads the output after the admin addresses are announced, keeping the pipes open:
    /// a log pipeline that stopped draining. Lines after that are not kept.
    pub fn stall_output(mut self) -> Self {
        self.stall_output = true;
        self
    }

    /// More arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Runs the binary through `program` and its `args` (for example `chroot --userspec=U:G
    /// ROOT`, for which the binary is a path inside ROOT). When `program` execs the binary, as
    /// chroot does, the process id is the engine's.
    pub fn through(mut self, program: &Path, args: &[&str]) -> Self {
        self.wrapper = std::iter::once(program.display().to_string())
            .chain(args.iter().map(|a| a.to_string()))
            .collect();
        self
    }

    /// One more environment variable (the environment is otherwise empty).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    fn kubeconfig(self, kubeconfig: &Path) -> Self {
        let path = kubeconfig.display().to_string();
        self.env("KUBECONFIG", &path)
    }

    /// Runs it as a child process; returns once its admin addresses are known.
    pub async fn process(self) -> Operator {
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&self.binary);
                command
            }
            None => Command::new(&self.binary),
        };
        let mut child = command
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.binary.display()));
        let logs = Logs::default();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = Arc::new(Mutex::new(Some(tx)));
        let stall = self.stall_output;
        if stall {
            shrink_pipe(child.stdout.as_ref().expect("stdout"));
            shrink_pipe(child.stderr.as_ref().expect("stderr"));
        }
        logs.collect(child.stdout.take().expect("stdout"), tx.clone(), stall);
        logs.collect(child.stderr.take().expect("stderr"), tx, stall);
        let process = Mutex::new(Process { child, exit: None });
        let mut operator = Operator {
            metrics: ([0, 0, 0, 0], 0).into(),
            health: ([0, 0, 0, 0], 0).into(),
            ui: None,
            heartbeat: None,
            logs,
            run: Run::Process(process),
        };
        let announced = async { rx.await.ok() };
        let admin = match self.admin {
            Some(admin) => Some(admin),
            None => tokio::time::timeout(Duration::from_secs(30), announced)
                .await
                .ok()
                .flatten(),
        };
        let Some(admin) = admin else {
            operator.kill();
            panic!(
                "{} did not log its admin addresses; logs:\n{}",
                self.args[0],
                operator.tail(50)
            );
        };
        (operator.metrics, operator.health) = (admin.metrics, admin.health);
        operator.ui = admin.ui;
        operator.heartbeat = admin.heartbeat;
        operator
    }
}

/// Shrinks a pipe to one page, so a stalled reader fills it after a few lines.
fn shrink_pipe(pipe: &impl std::os::fd::AsFd) {
    rustix::pipe::fcntl_setpipe_size(pipe, 4096).expect("F_SETPIPE_SZ");
}

/// `args` with every `--*-bind-address=HOST:PORT` moved to a free loopback port, and the
/// loopback address that now serves each original port.
fn loopback_binds(args: &[String]) -> (Vec<String>, BTreeMap<u64, SocketAddr>) {
    let mut local = BTreeMap::new();
    let moved = (args.iter())
        .map(|arg| {
            let Some((flag, address)) = arg.split_once('=') else {
                return arg.clone();
            };
            let port = (address.rsplit_once(':')).and_then(|(_, p)| p.parse::<u64>().ok());
            match port {
                Some(port) if flag.ends_with("-bind-address") => {
                    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
                    local.insert(port, addr);
                    format!("{flag}={addr}")
                }
                _ => arg.clone(),
            }
        })
        .collect();
    (moved, local)
}

/// A free port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Every line the engine wrote to stdout or stderr.
#[derive(Clone, Default)]
pub(super) struct Logs(pub(super) Arc<Mutex<Vec<String>>>);

type Announce = Arc<Mutex<Option<tokio::sync::oneshot::Sender<Admin>>>>;

/// Where the engine serves its endpoints.
#[derive(Debug, Clone, Copy)]
struct Admin {
    metrics: SocketAddr,
    health: SocketAddr,
    /// `None` when the status page is off.
    ui: Option<SocketAddr>,
    /// `None` when the heartbeat listener is off.
    heartbeat: Option<SocketAddr>,
}

/// The container port the chart's Service names `ui`, when the page is on.
fn ui_port(objects: &[Value]) -> Option<u64> {
    let c = chart::container(objects);
    let ports = c["ports"].as_array()?;
    let port = ports.iter().find(|p| p["name"] == "ui")?;
    port["containerPort"].as_u64()
}

impl Logs {
    /// Keeps every line of `stream`, announcing the admin addresses of the log line naming them;
    /// with `stall`, stops reading (and holds the stream open) once they are announced.
    fn collect(&self, stream: impl Read + Send + 'static, announce: Announce, stall: bool) {
        let sink = self.0.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stream).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                if let Some(admin) = admin_addresses(&line)
                    && let Some(tx) = announce.lock().unwrap().take()
                {
                    let _ = tx.send(admin);
                }
                sink.lock().unwrap().push(line);
                if stall && announce.lock().unwrap().is_none() {
                    // Never returns: the pipe stays open and fills up.
                    loop {
                        std::thread::park();
                    }
                }
            }
        });
    }
}

/// The addresses of the JSON log line announcing them (`ui` is `off` when the page is).
fn admin_addresses(line: &str) -> Option<Admin> {
    let log = serde_json::from_str::<Value>(line).ok()?;
    let field = |name: &str| log["fields"][name].as_str()?.parse::<SocketAddr>().ok();
    Some(Admin {
        metrics: field("metrics")?,
        health: field("health")?,
        ui: field("ui"),
        heartbeat: field("heartbeat"),
    })
}
