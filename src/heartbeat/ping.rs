//! `canary ping --url URL --token-file F [--rid ID] -- COMMAND ARGS...`: runs a command and
//! reports it to a heartbeat check, so any image can report: `/start` before, then
//! `/{exit code}` with the last KiB of its output, each retried within a deadline; the exit
//! code is the command's own (128 + the signal when one ended it, 127 when it cannot start).

use std::{
    collections::VecDeque,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::MAX_MESSAGE;
use crate::lock;

/// How long `/start` is retried before the command runs anyway.
pub const START_DEADLINE: Duration = Duration::from_secs(10);
/// Default deadline of the final ping.
pub const FINISH_DEADLINE: Duration = Duration::from_secs(60);
/// One request's limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What `canary ping` does.
#[derive(Debug, Clone)]
pub struct PingConfig {
    /// The check's ping URL (`http://HOST:PORT/api/v1/ping/NAMESPACE/NAME`).
    pub url: url::Url,
    pub token_file: PathBuf,
    pub run_id: Option<String>,
    /// How long the final ping is retried.
    pub deadline: Duration,
    /// The command and its arguments.
    pub command: Vec<String>,
}

/// Why `canary ping` could not run.
#[derive(Debug, thiserror::Error)]
pub enum PingError {
    #[error("--url must be an http:// URL of /api/v1/ping/NAMESPACE/NAME, not {0}")]
    Url(String),
    #[error("reading --token-file {path}: {source}")]
    Token {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no command given after --")]
    NoCommand,
}

/// Runs the command between its two pings; returns its exit code. A reporting problem (a bad
/// URL, an unreadable token file, an unreachable listener) is logged and never keeps the
/// command from running: the check then reports the run as missed.
pub async fn run(config: &PingConfig) -> Result<u8, PingError> {
    let Some((program, args)) = config.command.split_first() else {
        return Err(PingError::NoCommand);
    };
    let target = Target::of(config)
        .inspect_err(|error| {
            let message = format!("canary ping: not reporting this run: {error}\n");
            crate::logging::write_line(&message);
        })
        .ok();
    if let Some(target) = &target {
        target.send("start", Bytes::new(), START_DEADLINE).await;
    }
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(MAX_MESSAGE)));
    let code = run_command(program, args, &tail).await;
    if let Some(target) = &target {
        let output = Bytes::from(lock(&tail).iter().copied().collect::<Vec<u8>>());
        (target.send(&code.to_string(), output, config.deadline)).await;
    }
    Ok(code)
}

/// Runs `program`, passing its output through and keeping the last KiB of it.
async fn run_command(program: &str, args: &[String], tail: &Arc<Mutex<VecDeque<u8>>>) -> u8 {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            let message = format!("canary ping: cannot run {program}: {error}\n");
            crate::logging::write_line(&message);
            keep(tail, message.as_bytes());
            return 127;
        }
    };
    let out = child
        .stdout
        .take()
        .map(|o| copy(o, tokio::io::stdout(), tail.clone()));
    let err = child
        .stderr
        .take()
        .map(|e| copy(e, tokio::io::stderr(), tail.clone()));
    let status = child.wait().await;
    for task in [out, err].into_iter().flatten() {
        let _ = task.await;
    }
    match status {
        Ok(status) => exit_code(status),
        Err(_) => 1,
    }
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(255),
        (None, None) => 1,
    }
}

fn copy(
    mut from: impl AsyncRead + Unpin + Send + 'static,
    mut to: impl AsyncWrite + Unpin + Send + 'static,
    tail: Arc<Mutex<VecDeque<u8>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 8192];
        while let Ok(n @ 1..) = from.read(&mut buffer).await {
            keep(&tail, &buffer[..n]);
            // Our own output may be closed: the command still runs and is reported.
            let _ = to.write_all(&buffer[..n]).await;
            let _ = to.flush().await;
        }
    })
}

/// Appends `bytes`, keeping the last [`MAX_MESSAGE`].
fn keep(tail: &Mutex<VecDeque<u8>>, bytes: &[u8]) {
    let mut tail = lock(tail);
    tail.extend(bytes);
    let excess = tail.len().saturating_sub(MAX_MESSAGE);
    tail.drain(..excess);
}

/// Where pings go.
struct Target {
    url: url::Url,
    token: String,
    run_id: Option<String>,
}

impl Target {
    fn of(config: &PingConfig) -> Result<Self, PingError> {
        let url = &config.url;
        let ping_path = url.path().starts_with("/api/v1/ping/");
        if url.scheme() != "http" || url.host_str().is_none() || !ping_path {
            return Err(PingError::Url(crate::api::redact(url)));
        }
        let token =
            std::fs::read_to_string(&config.token_file).map_err(|source| PingError::Token {
                path: config.token_file.clone(),
                source,
            })?;
        Ok(Self {
            url: url.clone(),
            token: token.trim().to_string(),
            run_id: config.run_id.clone(),
        })
    }

    /// Sends `/{suffix}` with `body`, retrying (1 s, doubling to 8 s) within `deadline` while
    /// the listener cannot be reached or answers 429 or 5xx. Failures are logged, never fatal.
    async fn send(&self, suffix: &str, body: Bytes, deadline: Duration) {
        let url = self.url_of(suffix);
        let until = Instant::now() + deadline;
        let mut pause = Duration::from_secs(1);
        loop {
            let result = post(&url, &self.token, body.clone()).await;
            let retry = match &result {
                Ok(StatusCode::OK) => return,
                Ok(status) => status.as_u16() == 429 || status.is_server_error(),
                Err(_) => true,
            };
            let what = match result {
                Ok(status) => format!("answered {status}"),
                Err(error) => error,
            };
            if !retry || Instant::now() + pause > until {
                let message = format!("canary ping: /{suffix} not recorded: {what}\n");
                crate::logging::write_line(&message);
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(8));
        }
    }

    fn url_of(&self, suffix: &str) -> url::Url {
        let mut url = self.url.clone();
        let path = format!("{}/{suffix}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        if let Some(run_id) = &self.run_id {
            url.query_pairs_mut().append_pair("rid", run_id);
        }
        url
    }
}

/// One POST on a fresh connection; the status, or why there is none.
async fn post(url: &url::Url, token: &str, body: Bytes) -> Result<StatusCode, String> {
    let exchange = async {
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(80);
        let stream = (tokio::net::TcpStream::connect((host, port)).await)
            .map_err(|e| format!("connect {host}:{port}: {e}"))?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        let connection = tokio::spawn(connection);
        let path = &url[url::Position::BeforePath..];
        let request = Request::post(path)
            .header(header::HOST, host)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let result = async {
            let response = (sender.send_request(request).await).map_err(|e| e.to_string())?;
            let status = response.status();
            let _ = Limited::new(response.into_body(), 4096).collect().await;
            Ok(status)
        }
        .await;
        connection.abort();
        result
    };
    (tokio::time::timeout(REQUEST_TIMEOUT, exchange).await)
        .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_kib_of_output_is_kept() {
        let tail = Mutex::new(VecDeque::new());
        keep(&tail, &[b'a'; 1000]);
        keep(&tail, &[b'b'; 100]);
        let kept: Vec<u8> = lock(&tail).iter().copied().collect();
        assert_eq!(kept.len(), MAX_MESSAGE);
        assert!(kept.ends_with(&[b'b'; 100]));
    }

    #[test]
    fn pings_go_to_the_suffix_with_the_run_id() {
        let target = Target {
            url: "http://canary:8083/api/v1/ping/shop/backup/"
                .parse()
                .unwrap(),
            token: String::new(),
            run_id: Some("job 7".into()),
        };
        let url = target.url_of("start");
        assert_eq!(
            url.as_str(),
            "http://canary:8083/api/v1/ping/shop/backup/start?rid=job+7"
        );
    }
}
