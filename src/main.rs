//! The `stowage` binary: parses arguments, sets up logging and the TLS provider, and hands
//! over to [`stowage::cli`].

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = stowage::cli::Cli::parse();
    stowage::log::init();
    // One process-wide TLS provider (aws-lc-rs), used by Docker TLS connections.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    stowage::cli::run(cli).await
}
