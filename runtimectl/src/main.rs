//! `runtimectl`: a docker-like client of `runtimed`, talking only gRPC.

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
    let cli = cli::Cli::parse();
    let code = match commands::dispatch(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("runtimectl: {}", err.message);
            err.exit_code
        }
    };
    std::process::ExitCode::from(code.clamp(0, 255) as u8)
}
