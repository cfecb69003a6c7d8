//! The `stowage` binary: parses arguments, sets up logging, the scheduling policy
//! ([`stowage::pipeline::sched`]) and the TLS provider, starts the runtime and hands
//! over to [`stowage::cli`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = stowage::cli::Cli::parse();
    let format = match stowage::log::Format::from_env() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("stowage: {e}");
            return ExitCode::from(2);
        }
    };
    stowage::log::init(format);
    // Before any other thread exists, so all of them inherit it.
    let scheduling = stowage::pipeline::sched::enter_batch();
    tracing::debug!(?scheduling, "scheduling policy");
    // One process-wide TLS provider (aws-lc-rs), used by Docker TLS connections.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("stowage: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(stowage::cli::run(cli))
}
