//! `riffle-bench-nats`: the NATS JetStream publisher of scripts/bench-peers.sh; see
//! `riffle_bench::nats`. Built only with the `nats` feature, as an example so that `cargo run`
//! in the workspace has one binary to run (`riffle`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = riffle_bench::nats::NatsArgs::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("riffle-bench-nats: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(riffle_bench::nats::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("riffle-bench-nats: {error}");
            ExitCode::FAILURE
        }
    }
}
