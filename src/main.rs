//! The `stowage` binary: parses arguments, sets up logging and the TLS provider, and hands
//! over to [`stowage::cli`].

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = stowage::cli::Cli::parse();
    let filter = EnvFilter::try_from_env("STOWAGE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // One process-wide TLS provider (aws-lc-rs), used by Docker TLS connections.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    stowage::cli::run(cli).await
}
