//! The client commands: `riffle streams`, `describe`, `create`, `delete`, `put`, `tail` and
//! `copy`.
//!
//! They talk to any Kinesis endpoint — a riffle server or AWS — through the AWS SDK for Rust
//! (`aws-sdk-kinesis`), so they sign, retry and parse exactly as every other SDK client does,
//! and take credentials and region from the standard AWS chain (`connect.rs`). Nothing here
//! uses riffle's own crates: what works against riffle works against AWS.
//!
//! - `connect.rs`: `--endpoint`, `--region`, `--profile`, `--ca-bundle`; the SDK client, the
//!   credential chain and the fallback to placeholder credentials for a local riffle.
//! - `admin.rs`: `streams`, `describe` (shards and their lineage as a tree), `create`, `delete`.
//! - `put.rs`: stdin lines into PutRecords batches, retrying failed entries.
//! - `tail.rs`: follows every shard of a stream in lineage order (parents before children).
//! - `copy.rs`: streams (definition and records, lineage order) from one endpoint to another.
//! - `kpl.rs`: de-aggregation of KPL aggregated records (pure, no I/O).
//! - `output.rs`: how a record is printed (text, json, hex), the progress line, terminal checks.
//!
//! Output contract: data goes to stdout, one record or row per line; progress and notes go to
//! stderr and only when stderr is a terminal, so pipes see nothing but the data. Errors go to
//! stderr as `riffle COMMAND: what went wrong`, with exit status 1.

use std::process::ExitCode;

use clap::Subcommand;

/// How the client commands find the endpoint, credentials and region: a string literal, so
/// that each command's help can end with it (`concat!`).
macro_rules! connect_help {
    () => {
        "\
Endpoint: --endpoint, else RIFFLE_ENDPOINT, else http://127.0.0.1:4567 (a local `riffle serve`).
`--endpoint aws` uses AWS's own endpoint for the region.

Credentials and region come from the standard AWS chain: AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), AWS_REGION or AWS_DEFAULT_REGION, the profile
named by --profile or AWS_PROFILE in ~/.aws/config and ~/.aws/credentials (role_arn and
credential_process included; SSO profiles are not supported: export their credentials first),
web identity and container credentials, and, for endpoints that are not on this machine, the
EC2 instance metadata service. When the chain finds no credentials, riffle signs with the
placeholder key `riffle`/`riffle`, and without a region it uses us-east-1: a riffle server
without --credentials accepts both, so a local riffle needs no AWS setup at all."
    };
}
pub(crate) use connect_help;

const CREDENTIALS_HELP: &str = connect_help!();

mod admin;
mod connect;
mod copy;
mod kpl;
mod output;
mod put;
mod tail;

/// The client subcommands, flattened into `riffle`'s own.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// List the streams with their status, capacity mode and open shard count.
    #[command(after_long_help = CREDENTIALS_HELP)]
    Streams(admin::StreamsArgs),
    /// Show a stream and its shards, with the lineage of splits and merges as a tree.
    #[command(after_long_help = CREDENTIALS_HELP)]
    Describe(admin::DescribeArgs),
    /// Create a stream and wait until it is ACTIVE.
    #[command(after_long_help = CREDENTIALS_HELP)]
    Create(admin::CreateArgs),
    /// Delete a stream and wait until it is gone.
    #[command(after_long_help = CREDENTIALS_HELP)]
    Delete(admin::DeleteArgs),
    /// Put the lines of stdin into a stream as records (batched PutRecords, with retries).
    #[command(after_long_help = put::PUT_HELP)]
    Put(put::PutArgs),
    /// Print a stream's records, following every shard through splits and merges.
    #[command(after_long_help = tail::TAIL_HELP)]
    Tail(tail::TailArgs),
    /// Copy streams (definition and records) from one endpoint to another: how a single
    /// node's streams move into a cluster.
    #[command(after_long_help = copy::COPY_HELP)]
    Copy(copy::CopyArgs),
}

impl ClientCommand {
    fn name(&self) -> &'static str {
        match self {
            ClientCommand::Streams(_) => "streams",
            ClientCommand::Describe(_) => "describe",
            ClientCommand::Create(_) => "create",
            ClientCommand::Delete(_) => "delete",
            ClientCommand::Put(_) => "put",
            ClientCommand::Tail(_) => "tail",
            ClientCommand::Copy(_) => "copy",
        }
    }
}

/// Runs a client command to its end; errors are printed here, once.
pub fn run(command: ClientCommand, runtime: &tokio::runtime::Runtime) -> ExitCode {
    let name = command.name();
    let result = runtime.block_on(async move {
        match command {
            ClientCommand::Streams(args) => admin::streams(args).await,
            ClientCommand::Describe(args) => admin::describe(args).await,
            ClientCommand::Create(args) => admin::create(args).await,
            ClientCommand::Delete(args) => admin::delete(args).await,
            ClientCommand::Put(args) => put::run(args).await,
            ClientCommand::Tail(args) => tail::run(args).await,
            ClientCommand::Copy(args) => copy::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever read stdout has gone (`riffle tail | head`): nothing more to do or say.
        Err(error) if error.stdout_closed => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("riffle {name}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// What a client command failed with, phrased for the person who ran it.
#[derive(Debug)]
pub struct CliError {
    message: String,
    /// The reader of stdout went away: the command ends quietly, with success.
    stdout_closed: bool,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            stdout_closed: false,
        }
    }

    /// Stdout is a pipe whose reader has closed it.
    pub fn stdout_closed() -> CliError {
        CliError {
            message: "stdout was closed".into(),
            stdout_closed: true,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> CliError {
        CliError::new(error.to_string())
    }
}

pub type CliResult<T> = Result<T, CliError>;
