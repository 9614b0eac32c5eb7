//! `runtimed`: the container runtime daemon.
//!
//! The same binary is also the per-container shim (`runtimed shim ...`): the
//! daemon re-executes itself so that libcontainer's clone runs in a small
//! single-threaded process that outlives the daemon.

mod api;
mod cluster;
mod config;
mod container;
mod dns;
mod error;
mod events;
mod failpoint;
mod firewall;
mod ids;
mod image;
mod keeper;
mod netlink;
mod network;
mod private;
mod records;
mod shim;
mod store;
mod util;

use clap::{Parser, Subcommand};
use config::DaemonConfig;

#[derive(Parser)]
#[command(name = "runtimed", version, about = "Container runtime daemon")]
struct Cli {
    #[command(flatten)]
    config: DaemonConfig,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Internal: the per-container supervisor started by the daemon.
    #[command(hide = true)]
    Shim(Box<shim::ShimArgs>),
    /// Internal: holds the daemon's DNS sockets across its restarts.
    #[command(hide = true)]
    Keeper(keeper::KeeperArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        // No tokio here: the shim must stay single-threaded.
        Some(Command::Shim(args)) => shim::main(*args),
        Some(Command::Keeper(args)) => keeper::main(args),
        None => run_daemon(cli.config),
    }
}

fn run_daemon(config: DaemonConfig) -> std::process::ExitCode {
    if let Err(err) = init_tracing(&config.log_level) {
        eprintln!("runtimed: invalid log filter: {err}");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("runtimed: cannot start tokio: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(api::serve(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("runtimed: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// RUNTIMED_LOG wins over --log-level; a filter that does not parse is an
/// error rather than silently logging nothing.
fn init_tracing(level: &str) -> Result<(), tracing_subscriber::filter::ParseError> {
    let filter = match std::env::var("RUNTIMED_LOG") {
        Ok(env) => tracing_subscriber::EnvFilter::try_new(env)?,
        Err(_) => tracing_subscriber::EnvFilter::try_new(level)?,
    };
    // Colours only on a terminal: a log file gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(|| util::LossyStderr).init();
    Ok(())
}
