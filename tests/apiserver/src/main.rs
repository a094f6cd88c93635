//! `canary-test-apiserver`: runs the local API server until SIGTERM or SIGINT.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Local Kubernetes API server for tests.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write a kubeconfig for kubectl, helm and kube-rs.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Bearer token clients must present.
    #[arg(long)]
    token: Option<String>,
    /// Authorize requests with RBAC (the kubeconfig's token is then the admin's).
    #[arg(long)]
    rbac: bool,
    /// Accept custom resources without schema validation.
    #[arg(long)]
    no_validation: bool,
    /// Validate updates without ratcheting, as kube 1.28 and 1.29 do.
    #[arg(long)]
    no_ratcheting: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let opts = canary_test_apiserver::Options {
        listen: args.listen,
        token: args.token,
        rbac: args.rbac,
        validation: !args.no_validation,
        ratcheting: !args.no_ratcheting,
        kubeconfig: args.kubeconfig,
        ..Default::default()
    };
    let server = match canary_test_apiserver::start(opts).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "serving on {} (kubeconfig {})",
        server.url(),
        server.kubeconfig_path().display()
    );
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return std::process::ExitCode::FAILURE;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(server);
    std::process::ExitCode::SUCCESS
}
