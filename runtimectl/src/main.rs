//! `runtimectl`: a docker-like client of `runtimed`, talking only gRPC.

mod auth;
mod cli;
mod client;
mod commands;
mod error;
mod output;
mod ports;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    // Like other Unix filters, end quietly when the reader of our output
    // goes away (`runtimectl ps | head`) instead of panicking on EPIPE.
    // SAFETY: no other thread exists yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let code = match commands::dispatch(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("runtimectl: {}", err.message);
            err.exit_code
        }
    };
    std::process::ExitCode::from(code.clamp(0, 255) as u8)
}

/// Help and version print as usual; a command line that does not parse is
/// one line in docker's words and exit code 125, as docker's CLI does.
fn usage_error(err: clap::Error) -> std::process::ExitCode {
    use clap::error::{ContextKind, ErrorKind};
    if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = err.print();
        return std::process::ExitCode::SUCCESS;
    }
    let message = match (err.kind(), err.get(ContextKind::InvalidArg)) {
        (ErrorKind::UnknownArgument, Some(arg)) => {
            format!("unknown flag: {}", arg.to_string().split('=').next().unwrap_or_default())
        }
        // clap's text up to its usage block, on one line.
        _ => {
            let text = err.render().to_string();
            let lines = text.lines().map(str::trim).take_while(|l| !l.is_empty() && !l.starts_with("Usage:"));
            lines.collect::<Vec<_>>().join(" ").trim_start_matches("error: ").to_string()
        }
    };
    eprintln!("runtimectl: {message}\nSee 'runtimectl --help'.");
    std::process::ExitCode::from(125)
}
