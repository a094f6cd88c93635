//! The `canary` binary: parse the command line, dispatch, map results to exit codes. Errors
//! reach stderr only through `logging` (bounded: a stuck pipe never holds up the exit).

use std::{io::IsTerminal, process::ExitCode};

use canary_operator::{
    api,
    check::{self, CheckError},
    cli::{
        CheckArgs, Cli, Command, DiscoverArgs, OperatorArgs, PingArgs, SelftestArgs, StandaloneArgs,
    },
    discover::{self, DiscoverError},
    logging, report,
};
use clap::Parser;

/// Exit code for invalid input (files, specs, references).
const EXIT_INVALID: u8 = 2;

/// jemalloc rather than glibc's allocator (feature `jemalloc`, on in the shipped image): it gives
/// freed memory back to the system (decay), where glibc kept tens of MiB after the burst of first
/// runs at start-up.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    logging::set_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage(&error),
    };
    // Held to the end: dropping it flushes the log queue.
    let _log_queue = logging::init(cli.log_format, &cli.log_level, cli.log_queue_lines);
    match cli.command {
        Command::Crd(args) => match api::crd_yaml_named(&args.name) {
            Some(Ok(yaml)) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Some(Err(e)) => fail(1, &format!("cannot render the CRD: {e}")),
            None => fail(EXIT_INVALID, &format!("no CRD named {}", args.name)),
        },
        Command::Discover(args) => run_discover(args),
        Command::Check(args) => run_check(args),
        Command::Standalone(args) => run_standalone(*args),
        Command::Operator(args) => run_operator(*args),
        Command::Selftest(args) => run_selftest(args),
        Command::Ping(args) => run_ping(args),
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    logging::write_line(&format!("error: {message}\n"));
    ExitCode::from(code)
}

/// `--help` and `--version` on stdout; a usage error on stderr, bounded like every error.
fn usage(error: &clap::Error) -> ExitCode {
    if !error.use_stderr() {
        error.exit();
    }
    let rendered = error.render();
    let text = match std::io::stderr().is_terminal() {
        true => rendered.ansi().to_string(),
        false => rendered.to_string(),
    };
    logging::write_line(&text);
    ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(EXIT_INVALID))
}

fn run_check(args: CheckArgs) -> ExitCode {
    let output = args.output;
    let results = match check::run(&args.into()) {
        Ok(results) => results,
        Err(error @ CheckError::Invalid(_)) => return fail(EXIT_INVALID, &error.to_string()),
        Err(error) => return fail(1, &error.to_string()),
    };
    if let Err(e) = report::write(&mut std::io::stdout().lock(), output, &results) {
        return fail(1, &e.to_string());
    }
    if results.iter().all(|(_, outcome)| outcome.success()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `canary discover`: print the generated checks and skips, or run the checks (`--run`) with
/// `canary check`'s exit codes.
fn run_discover(args: DiscoverArgs) -> ExitCode {
    let settings = canary_operator::discovery::Settings {
        cluster_domain: args.cluster_domain,
        assume_accepted: args.assume_accepted,
    };
    let generated = match discover::generate(&args.files, &settings) {
        Ok(generated) => generated,
        Err(e) => return fail(EXIT_INVALID, &e.to_string()),
    };
    let mut out = std::io::stdout().lock();
    // Skips go to stderr unless the output is the table of checks and skips.
    let mut skips = Vec::new();
    let written = match (args.run, args.output) {
        (false, discover::Format::Table) => discover::write_checks(&mut out, &generated)
            .and_then(|()| discover::write_skips(&mut out, &generated)),
        (run, _) => discover::write_skips(&mut skips, &generated).and_then(|()| match run {
            true => Ok(()),
            false => discover::write_yaml(&mut out, &generated),
        }),
    };
    if let Err(e) = written {
        return fail(1, &e.to_string());
    }
    if !skips.is_empty() {
        logging::write_line(&String::from_utf8_lossy(&skips));
    }
    if !args.run {
        return ExitCode::SUCCESS;
    }
    let references: canary_operator::files::DirReferences = args.references.into();
    let policy: canary_operator::probe::ProbePolicy = args.policy.into();
    let results = match discover::run(&generated, &references, &policy) {
        Ok(results) => results,
        Err(DiscoverError::Check(CheckError::Runtime(e))) => return fail(1, &e.to_string()),
        Err(e) => return fail(EXIT_INVALID, &e.to_string()),
    };
    let format = match args.output {
        discover::Format::Table => report::Format::Table,
        discover::Format::Yaml => report::Format::Yaml,
    };
    if let Err(e) = report::write(&mut out, format, &results) {
        return fail(1, &e.to_string());
    }
    match results.iter().all(|(_, outcome)| outcome.success()) {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    }
}

/// Runs a long-lived service (standalone or operator) on a fresh runtime.
/// jemalloc's background thread returns freed pages on its decay schedule (10 s) while nothing
/// allocates: without it, a service idle between probes kept the pages of its start-up burst
/// (or of a relist) until its next allocations.
fn purge_in_the_background() {
    #[cfg(feature = "jemalloc")]
    if let Err(error) = tikv_jemalloc_ctl::background_thread::write(true) {
        logging::write_line(&format!(
            "jemalloc background thread not started: {error}\n"
        ));
    }
}

fn run_service<E: std::fmt::Display>(
    service: impl std::future::Future<Output = Result<(), E>>,
    exit_code: impl Fn(&E) -> u8,
) -> ExitCode {
    // Reserve descriptors before anything else so they get the lowest numbers.
    canary_operator::admin::reserve_descriptors(canary_operator::admin::RESERVED);
    purge_in_the_background();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(1, &format!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(service);
    // Runner tasks may be mid-probe; do not wait for them beyond a moment.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(exit_code(&e), &e.to_string()),
    }
}

fn run_standalone(args: StandaloneArgs) -> ExitCode {
    run_service(canary_operator::standalone::run(args.into()), |e| match e {
        canary_operator::standalone::StandaloneError::Load(_) => EXIT_INVALID,
        _ => 1,
    })
}

fn run_selftest(args: SelftestArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(1, &format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(canary_operator::selftest::run(
        &args.readyz_url,
        &args.namespaces,
        args.timeout.0,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &e.to_string()),
    }
}

/// `canary ping`: the command's exit code, or 2 for bad flags.
fn run_ping(args: PingArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(1, &format!("cannot start the async runtime: {e}")),
    };
    let config = args.into();
    match runtime.block_on(canary_operator::heartbeat::ping::run(&config)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(EXIT_INVALID, &e.to_string()),
    }
}

fn run_operator(args: OperatorArgs) -> ExitCode {
    match args.into_config() {
        Ok(config) => run_service(canary_operator::controller::run(config), |_| 1),
        Err(message) => fail(EXIT_INVALID, &message),
    }
}
