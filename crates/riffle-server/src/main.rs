//! `riffle`: a durable, Kinesis-compatible streaming server in one binary.
//!
//! `riffle serve` runs the server; `riffle bench` drives a running one with a load generator;
//! `riffle dev-cert` makes a local CA and certificate for `serve --tls-cert`; `riffle streams`,
//! `describe`, `create`, `delete`, `put` and `tail` are clients of any Kinesis endpoint
//! (`client/`).
//! See README.md for a tour and ARCHITECTURE.md for how the pieces fit.

mod auth;
mod client;
mod cluster_node;
mod console;
mod devcert;
mod fdlimit;
mod http;
mod metrics;
mod s3;
mod send;
mod transport;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use riffle_core::{Durability, Limits, Node, NodeConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "riffle",
    version,
    about = "A durable, Kinesis-compatible streaming server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Drive a running server with a put/get load and report throughput and latency.
    Bench(riffle_bench::BenchArgs),
    /// Write a local CA and a TLS certificate for localhost, 127.0.0.1 and ::1 (for
    /// `serve --tls-cert`), reusing the CA already in the directory.
    DevCert(devcert::DevCertArgs),
    /// Look at a cluster (see the README, "Run a cluster").
    #[command(subcommand)]
    Cluster(ClusterCommand),
    #[command(flatten)]
    Client(client::ClientCommand),
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Members, roles, shard replicas and leaders, and replication lag, as the node at
    /// --endpoint sees them.
    Status {
        /// A node's API endpoint.
        #[arg(long, default_value = "http://127.0.0.1:4567")]
        endpoint: String,
        /// Print the node's JSON answer as it is.
        #[arg(long)]
        json: bool,
        /// The cluster secret, which a node with --credentials asks of this read (default: as
        /// for `riffle serve`, when that file exists).
        #[arg(long, value_name = "FILE")]
        cluster_secret_file: Option<PathBuf>,
    },
    /// Make the node at --endpoint leave the cluster: its replicas move to other nodes and
    /// its leaderships to other replicas, then it leaves the metadata group and serves
    /// nothing more (stop it afterwards). Waits until it is out.
    Leave(MembershipArgs),
    /// Remove node NODE_ID (a dead one, typically) through the live node at --endpoint: its
    /// replicas are made again on other nodes from the surviving copies, then it is dropped.
    /// Waits until it is out.
    Remove {
        /// The id of the node to remove (`riffle cluster status` lists them).
        node_id: u64,
        #[command(flatten)]
        args: MembershipArgs,
    },
}

#[derive(clap::Args)]
struct MembershipArgs {
    /// A node's API endpoint.
    #[arg(long, default_value = "http://127.0.0.1:4567")]
    endpoint: String,
    /// The cluster secret, which authorizes the request (default: as for `riffle serve`).
    #[arg(long, value_name = "FILE")]
    cluster_secret_file: Option<PathBuf>,
    /// How long to wait for the replicas to move before giving up (seconds).
    #[arg(long, default_value_t = 600)]
    wait_s: u64,
}

impl MembershipArgs {
    fn into_change(self, node: Option<u64>) -> cluster_node::MembershipArgs {
        cluster_node::MembershipArgs {
            endpoint: self.endpoint,
            node,
            secret_file: self.cluster_secret_file,
            wait: Duration::from_secs(self.wait_s),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum DurabilityArg {
    /// Acknowledge a write only after it is fdatasync'ed (default; loses nothing acknowledged).
    Sync,
    /// Acknowledge after write(2) and fdatasync in the background every --sync-interval-ms:
    /// faster, survives a process crash, but a power loss can lose the last moments of writes.
    Async,
}

#[derive(Clone, Copy, ValueEnum)]
enum LimitsArg {
    /// AWS's limits: per shard 1 MiB/s and 1,000 records/s of writes, 2 MiB/s and 5
    /// GetRecords/s of reads, 5 GetShardIterator/s; control-plane calls at their published
    /// rates (default).
    Aws,
    /// No throughput or call-rate limits (local testing, benchmarks). Record and request
    /// sizes and the account's shard quota are still checked.
    Off,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:4567")]
    listen: SocketAddr,
    /// Where streams are stored.
    #[arg(long, default_value = "./riffle-data")]
    data_dir: PathBuf,
    /// Keep data in a throwaway temporary directory, never fsync, delete it on exit (tests).
    #[arg(long, conflicts_with = "data_dir")]
    in_memory: bool,
    /// Start even though acknowledged records are missing or damaged, or the data directory
    /// holds data the catalogue does not name: the damaged or unknown data is moved into
    /// DATA/lost+found/ (never deleted) and a damaged open shard is closed at its last intact
    /// record, with a new shard taking its hash range. Without it such a start is refused.
    #[arg(long)]
    accept_data_loss: bool,
    /// When a write is acknowledged relative to fdatasync.
    #[arg(long, value_enum, default_value = "sync")]
    durability: DurabilityArg,
    /// Background fsync interval for --durability async.
    #[arg(long, default_value_t = 10)]
    sync_interval_ms: u64,
    /// Region used in ARNs.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Account for requests whose access key id is not a 12-digit account id.
    #[arg(long, default_value = "000000000000")]
    account_id: String,
    /// Throughput and call-rate limits.
    #[arg(long, value_enum, default_value = "aws")]
    limits: LimitsArg,
    /// Open shards allowed per account (DescribeLimits' ShardLimit).
    #[arg(long, default_value_t = riffle_core::node::SHARD_LIMIT_DEFAULT)]
    shard_limit: u32,
    /// Segment size at which a shard's log rolls to a new file.
    #[arg(long, default_value_t = 128 * 1024 * 1024)]
    segment_bytes_max: u64,
    /// Seconds between retention passes.
    #[arg(long, default_value_t = 60)]
    retention_interval_s: u64,
    /// Milliseconds a stream shows UPDATING after a reshard or capacity-mode change, during
    /// which further resharding gets ResourceInUseException (AWS takes seconds or more; 0, the
    /// default, keeps streams ACTIVE so waiters never sleep).
    #[arg(long, default_value_t = 0)]
    update_window_ms: u64,
    /// Milliseconds a new stream shows CREATING, listing no shards and refusing writes and
    /// iterators as AWS does (0, the default: ACTIVE when CreateStream returns).
    #[arg(long, default_value_t = 0)]
    create_window_ms: u64,
    /// ON_DEMAND scaling: how often shard write rates are measured.
    #[arg(long, default_value_t = 1000)]
    on_demand_interval_ms: u64,
    /// ON_DEMAND scaling: a shard writing above this fraction of its capacity is split.
    #[arg(long, default_value_t = 0.5)]
    on_demand_split_utilization: f64,
    /// ON_DEMAND scaling: adjacent shards below this fraction of capacity are merged...
    #[arg(long, default_value_t = 0.2)]
    on_demand_merge_utilization: f64,
    /// ...once both have stayed below it this many seconds.
    #[arg(long, default_value_t = 86_400)]
    on_demand_merge_after_s: u64,
    /// How long a SubscribeToShard stream lasts before the server ends it (AWS: 5 minutes).
    #[arg(long, default_value_t = 300)]
    subscription_lifetime_s: u64,
    /// How often an idle SubscribeToShard stream gets an empty event.
    #[arg(long, default_value_t = 5000)]
    subscription_keep_alive_ms: u64,
    /// MiB of request bodies held in memory at once across all connections; requests beyond
    /// it wait (up to 10 s, then get a retriable 500). At least one maximal request (16 MiB).
    #[arg(long, default_value_t = 256)]
    request_memory_mib: u64,
    /// MiB of answers held in memory at once across all connections, until each client has
    /// taken its answer; GetRecords returns fewer records when it is short. At least 27 MiB.
    #[arg(long, default_value_t = 256)]
    response_memory_mib: u64,
    /// Seconds an answer may go without its client taking any of it before the connection is
    /// closed (which frees it).
    #[arg(long, default_value_t = 30)]
    send_timeout_s: u64,
    /// Serve TLS only (HTTP/1.1 and h2 by ALPN) with this PEM certificate chain, server
    /// certificate first (`riffle dev-cert` makes one).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 RSA or SEC1 EC, unencrypted).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Access keys, one per line: ACCESS_KEY_ID SECRET ACCOUNT_ID [PRINCIPAL_NAME]. Every
    /// request must then carry a valid SigV4 signature by one of them.
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Without --credentials, listen on a non-loopback address anyway, accepting any
    /// signature (or none) from anyone who can reach it.
    #[arg(long, conflicts_with = "credentials")]
    allow_anonymous: bool,
    /// Serve Prometheus metrics (GET /metrics, plain HTTP) on this address, apart from the API
    /// (port 0 picks a free port, printed on stdout). Off unless given.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Seconds an On-demand Advantage commitment (UpdateAccountSettings) lasts at least before
    /// it can end (AWS: 24 hours).
    #[arg(long, default_value_t = 86_400)]
    commitment_minimum_s: u64,
    /// KMS keys for StartStreamEncryption: lines of `KEY_ID STATE MATERIAL [ALIAS ...]` (see
    /// the README). Without it only alias/aws/kinesis, a key riffle keeps itself, resolves.
    #[arg(long, value_name = "FILE")]
    kms_keys: Option<PathBuf>,
    /// Make this node part of a cluster: the address its peers reach it at (node-to-node
    /// traffic, authenticated with the cluster secret). Without it riffle is a single node.
    #[arg(long, value_name = "ADDR", conflicts_with = "in_memory")]
    cluster_listen: Option<String>,
    /// The cluster address peers are told to reach this node at, when it is not the one it
    /// listens on (a proxy, a NAT, a container's published port). Recorded in the data
    /// directory at the first start. Default: the --cluster-listen address.
    #[arg(long, value_name = "ADDR", requires = "cluster_listen")]
    cluster_advertise: Option<String>,
    /// On a node's first start, the cluster address of any member to join (a restarted node
    /// finds its peers in its data directory).
    #[arg(long, value_name = "ADDR", requires = "cluster_listen")]
    join: Option<String>,
    /// The cluster secret every node shares (default: riffle/cluster.secret in the user's
    /// configuration directory, created by the first node of a new cluster).
    #[arg(long, value_name = "FILE", requires = "cluster_listen")]
    cluster_secret_file: Option<PathBuf>,
    /// Do not serve the web console (GET /console/ then answers 404).
    #[arg(long)]
    no_console: bool,
    /// Where channels write their objects: an S3-compatible endpoint (AWS S3, MinIO, Ceph,
    /// ...), with credentials and region from the standard AWS chain. Without it, objects go
    /// to DATA/buckets/<bucket>/<key>.
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// Upper bound on how long a channel holds records before writing an object, whatever
    /// its DataFreshnessInSeconds (AWS accepts 300-900 s; this lets tests and laptops see
    /// objects sooner).
    #[arg(long, value_name = "MS")]
    channel_max_wait_ms: Option<u64>,
    /// A channel writes an object once its batch reaches this many KiB (before compression).
    #[arg(long, default_value_t = (riffle_core::delivery::OBJECT_BYTES_MAX_DEFAULT / 1024) as u64)]
    channel_object_kib: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("riffle: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(*args)),
        Command::Bench(args) => match runtime.block_on(riffle_bench::run(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("riffle bench: {error}");
                ExitCode::FAILURE
            }
        },
        Command::DevCert(args) => devcert::run(args),
        Command::Cluster(ClusterCommand::Status {
            endpoint,
            json,
            cluster_secret_file,
        }) => cluster_node::status(&endpoint, json, cluster_secret_file, &runtime),
        Command::Cluster(ClusterCommand::Leave(args)) => {
            cluster_node::change_membership(args.into_change(None), &runtime)
        }
        Command::Cluster(ClusterCommand::Remove { node_id, args }) => {
            cluster_node::change_membership(args.into_change(Some(node_id)), &runtime)
        }
        Command::Client(command) => client::run(command, &runtime),
    }
}

/// Whether log lines carry ANSI colours: only when they go to a terminal, and never when
/// `NO_COLOR` is set to anything but the empty string (<https://no-color.org>). A file, a
/// pipe or journald gets plain text, fatal errors included.
fn log_colours(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|value| value.is_empty())
}

async fn serve(args: ServeArgs) -> ExitCode {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(log_colours(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RIFFLE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    fdlimit::raise_open_file_limit();
    let auth = match authentication(&args) {
        Ok(auth) => std::sync::Arc::new(auth),
        Err(error) => {
            tracing::error!("refusing to start: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Held for the life of the process: it marks the throwaway directory as in use.
    let mut _in_memory_lock = None;
    let mut throwaway_root = None;
    let (data_dir, ephemeral) = if args.in_memory {
        match throwaway_data_dir() {
            Ok((dir, lock)) => {
                _in_memory_lock = Some(lock);
                // The store is a fresh, empty subdirectory: the lock file beside it is not
                // part of the data directory (which must be empty to be new).
                throwaway_root = Some(dir.clone());
                (dir.join("store"), true)
            }
            Err(error) => {
                tracing::error!("cannot create the --in-memory directory: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        (args.data_dir.clone(), false)
    };
    let mut config = NodeConfig::new(data_dir);
    config.ephemeral = ephemeral;
    config.accept_data_loss = args.accept_data_loss;
    config.durability = match (args.in_memory, args.durability) {
        (true, _) => Durability::None,
        (false, DurabilityArg::Sync) => Durability::Sync,
        (false, DurabilityArg::Async) => Durability::Async {
            interval_ms: args.sync_interval_ms.max(1),
        },
    };
    config.region = args.region;
    config.default_account = args.account_id;
    config.shard_limit = args.shard_limit;
    config.limits = match args.limits {
        LimitsArg::Aws => Limits::Aws,
        LimitsArg::Off => Limits::Off,
    };
    config.log_options.segment_bytes_max = args.segment_bytes_max;
    config.responses = std::sync::Arc::new(riffle_core::responses::ResponseBudget::new(
        args.response_memory_mib.saturating_mul(1024 * 1024),
    ));
    config.retention_interval = Duration::from_secs(args.retention_interval_s.max(1));
    config.update_window = Duration::from_millis(args.update_window_ms);
    config.create_window = Duration::from_millis(args.create_window_ms);
    config.commitment_minimum = Duration::from_secs(args.commitment_minimum_s);
    config.subscriptions = riffle_core::subscribe::SubscriptionConfig {
        lifetime: Duration::from_secs(args.subscription_lifetime_s.max(1)),
        keep_alive: Duration::from_millis(args.subscription_keep_alive_ms.max(10)),
    };
    config.on_demand = riffle_core::scaler::OnDemandConfig {
        interval: Duration::from_millis(args.on_demand_interval_ms.max(10)),
        split_utilization: args.on_demand_split_utilization,
        merge_utilization: args.on_demand_merge_utilization,
        merge_after: Duration::from_secs(args.on_demand_merge_after_s),
        ..riffle_core::scaler::OnDemandConfig::default()
    };

    if let Some(path) = &args.kms_keys {
        match riffle_core::crypto::KeyStore::load(path) {
            Ok(keys) => {
                tracing::info!(path = %path.display(), keys = keys.file_key_count(), "KMS keys loaded");
                config.kms_keys = std::sync::Arc::new(keys);
            }
            Err(error) => {
                tracing::error!("refusing to start: {error}");
                return ExitCode::FAILURE;
            }
        }
    }

    let transport = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match transport::TlsFiles::load(cert, key) {
            Ok(files) => transport::Transport::tls(files),
            Err(error) => {
                tracing::error!("refusing to start: {error}");
                return ExitCode::FAILURE;
            }
        },
        _ => transport::Transport::plain(),
    }
    .with_send_timeout(Duration::from_secs(args.send_timeout_s.max(1)));

    let on_demand = config.on_demand;
    let thresholds_sane = on_demand.split_utilization > 0.0
        && on_demand.merge_utilization >= 0.0
        && 2.0 * on_demand.merge_utilization <= on_demand.split_utilization;
    if !thresholds_sane {
        tracing::error!(
            split = on_demand.split_utilization,
            merge = on_demand.merge_utilization,
            "refusing to start: ON_DEMAND thresholds need split > 0 and 2 × merge ≤ split, or \
             merged shards would split again at once"
        );
        return ExitCode::FAILURE;
    }

    let started = std::time::Instant::now();
    let mut cluster = None;
    let mut _peer_server = None;
    let opened = match args.cluster_listen.clone() {
        Some(listen) => {
            let cluster_args = cluster_node::ClusterArgs {
                listen,
                advertise: args.cluster_advertise.clone(),
                join: args.join.clone(),
                secret_file: args.cluster_secret_file.clone(),
            };
            match cluster_node::open(cluster_args, config).await {
                Ok((node, started_cluster, server)) => {
                    cluster = Some(started_cluster);
                    _peer_server = Some(server);
                    Ok(Ok(node))
                }
                Err(error) => {
                    tracing::error!("refusing to start: {error}");
                    return ExitCode::FAILURE;
                }
            }
        }
        None => tokio::task::spawn_blocking(move || Node::open(config)).await,
    };
    let node = match opened {
        Ok(Ok(node)) => node,
        Ok(Err(error)) => {
            tracing::error!("refusing to start: {error}");
            return ExitCode::FAILURE;
        }
        Err(error) => {
            tracing::error!("refusing to start: recovery panicked: {error}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(listen = %args.listen, "cannot listen: {error}");
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().unwrap_or(args.listen);
    let metrics_listener = match args.metrics_listen {
        Some(addr) => match TcpListener::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::error!(metrics_listen = %addr, "cannot listen for metrics: {error}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    node.start_retention();
    node.start_scaler();
    node.start_watermarks();
    let store: std::sync::Arc<dyn riffle_core::delivery::ObjectStore> = match &args.s3_endpoint {
        Some(endpoint) => std::sync::Arc::new(s3::S3Store::connect(endpoint).await),
        None => std::sync::Arc::new(riffle_core::delivery::LocalStore::new(
            node.config.data_dir.join("buckets"),
        )),
    };
    riffle_core::delivery::start(
        &node,
        riffle_core::delivery::DeliveryConfig {
            store,
            max_wait: args.channel_max_wait_ms.map(Duration::from_millis),
            object_bytes_max: usize::try_from(args.channel_object_kib.max(1).saturating_mul(1024))
                .unwrap_or(usize::MAX),
        },
    );
    // Tests and scripts read the port from this line; keep its shape.
    println!("riffle listening on {local}");
    if let Some(listener) = &metrics_listener {
        if let Ok(addr) = listener.local_addr() {
            // Always after the line above, which stays the first.
            println!("{}{addr}", metrics::LISTENING_PREFIX);
        }
    }
    tracing::info!(
        %local,
        data_dir = %node.config.data_dir.display(),
        durability = ?node.config.durability,
        limits = ?node.config.limits,
        tls = transport.is_tls(),
        startup_ms = started.elapsed().as_millis() as u64,
        "riffle is serving"
    );

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    if let Some(listener) = metrics_listener {
        tokio::spawn(metrics::serve(
            listener,
            std::sync::Arc::clone(&node),
            shutdown_rx.clone(),
        ));
    }
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown_tx.send(true);
    });
    let budget = std::sync::Arc::new(http::RequestBudget::new(
        args.request_memory_mib.saturating_mul(1024 * 1024),
    ));
    let transport = std::sync::Arc::new(transport);
    let result = http::serve(
        listener,
        transport,
        std::sync::Arc::clone(&node),
        budget,
        auth,
        !args.no_console,
        shutdown_rx,
    )
    .await;
    if let Some(cluster) = &cluster {
        cluster.shutdown().await;
    }
    let final_node = std::sync::Arc::clone(&node);
    let _ = tokio::task::spawn_blocking(move || final_node.shut_down_cleanly()).await;
    drop(node);
    if let Some(root) = throwaway_root {
        let _ = std::fs::remove_dir_all(root);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("server failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Loads `--credentials`, or allows anonymous requests where that is safe: on a loopback
/// address, or anywhere with `--allow-anonymous`.
fn authentication(args: &ServeArgs) -> Result<auth::Auth, String> {
    let Some(path) = &args.credentials else {
        if !args.listen.ip().is_loopback() && !args.allow_anonymous {
            return Err(format!(
                "--listen {} is not a loopback address and no --credentials file is given, so \
                 anyone who can reach it could read and write every stream; give \
                 --credentials FILE, or --allow-anonymous to serve unauthenticated requests \
                 anyway",
                args.listen
            ));
        }
        tracing::info!("no --credentials: requests are not authenticated");
        return Ok(auth::Auth::Anonymous);
    };
    let (credentials, warning) = auth::Credentials::load(path)?;
    if let Some(warning) = warning {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        keys = credentials.len(),
        "requests must be SigV4-signed by a key of the credentials file"
    );
    Ok(auth::Auth::Keys(credentials))
}

/// Prefix of `--in-memory` directories in the system temporary directory.
const THROWAWAY_PREFIX: &str = "riffle-mem-";

/// Creates a fresh `--in-memory` directory and locks it. A clean exit deletes it; a server
/// killed with SIGKILL cannot, so each start first deletes the throwaway directories whose
/// lock no live process holds (the kernel drops a dead process's locks).
fn throwaway_data_dir() -> std::io::Result<(PathBuf, std::fs::File)> {
    let temp = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&temp) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with(THROWAWAY_PREFIX) {
                continue;
            }
            let path = entry.path();
            let Ok(lock) = std::fs::File::open(path.join(".lock")) else {
                continue;
            };
            if lock.try_lock().is_ok() {
                tracing::debug!(dir = %path.display(), "removing an abandoned --in-memory store");
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }
    let dir = temp.join(format!("{THROWAWAY_PREFIX}{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir)?;
    let lock = std::fs::File::create(dir.join(".lock"))?;
    lock.try_lock().map_err(std::io::Error::other)?;
    Ok((dir, lock))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::log_colours;

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        assert!(log_colours(true, None));
        // NO_COLOR set to the empty string counts as unset (no-color.org).
        assert!(log_colours(true, Some(OsStr::new(""))));
        assert!(!log_colours(true, Some(OsStr::new("1"))));
        assert!(!log_colours(true, Some(OsStr::new("false"))));
        assert!(!log_colours(false, None));
        assert!(!log_colours(false, Some(OsStr::new(""))));
    }
}
