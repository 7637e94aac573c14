//! `riffle serve --cluster-listen ADDR [--join ADDR]`: a node of a cluster, and
//! `riffle cluster status`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use riffle_cluster::cluster::{Cluster, ClusterConfig, Identity, NodeStatus};
use riffle_cluster::network::{ClusterSecret, PeerNetwork, PeerServer};
use riffle_core::{Node, NodeConfig};
use tokio::net::TcpListener;

/// Where the cluster secret is kept when `--cluster-secret-file` is not given: in the
/// user's configuration directory, so that nodes started by one user on one machine share
/// it with nothing to copy; nodes on other machines need a copy of the same file.
pub fn default_secret_file() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("riffle").join("cluster.secret")
}

/// Loads the cluster secret; the first node of a new cluster (no `--join`) creates it when
/// it does not exist yet.
fn secret(path: &Path, joining: bool) -> Result<ClusterSecret, String> {
    match ClusterSecret::load(path) {
        Ok(secret) => Ok(secret),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !joining => {
            if let Some(parent) = path.parent() {
                riffle_log::create_owner_only_dirs(parent)
                    .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
            }
            let secret = ClusterSecret::create(path).map_err(|error| error.to_string())?;
            tracing::info!(file = %path.display(), "created a new cluster secret; every node of this cluster needs a copy of this file");
            Ok(secret)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "{error}: a node that joins needs the cluster's secret file (copy it from a \
             member, keep it mode 0600, and pass --cluster-secret-file if it is elsewhere)"
        )),
        Err(error) => Err(error.to_string()),
    }
}

/// What `serve` needs to start a cluster node.
pub struct ClusterArgs {
    pub listen: String,
    /// The address peers are told (`--cluster-advertise`); `None`: the listen address.
    pub advertise: Option<String>,
    pub join: Option<String>,
    pub secret_file: Option<PathBuf>,
}

/// Opens `config.data_dir` as a cluster node: the peer listener, the node (empty until the
/// metadata group's catalogue is applied) and its groups.
pub async fn open(
    args: ClusterArgs,
    config: NodeConfig,
) -> Result<(Arc<Node>, Arc<Cluster>, PeerServer), String> {
    let data_dir = config.data_dir.clone();
    if data_dir.join("meta.json").exists() {
        return Err(format!(
            "{} holds a single node's data (meta.json); a cluster node starts from an empty \
             directory. Serve it without --cluster-listen (moving a single node's streams \
             into a cluster is not built yet)",
            data_dir.display()
        ));
    }
    riffle_log::create_owner_only_dirs(&data_dir)
        .map_err(|error| format!("cannot create {}: {error}", data_dir.display()))?;
    let secret_file = args.secret_file.unwrap_or_else(default_secret_file);
    let secret = secret(&secret_file, args.join.is_some())?;
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|error| format!("cannot listen for peers on {}: {error}", args.listen))?;
    let addr = match (args.advertise, listener.local_addr()) {
        (Some(advertised), _) => advertised,
        (None, Ok(local)) if args.listen.ends_with(":0") => local.to_string(),
        (None, _) => args.listen.clone(),
    };
    let identity = Identity::load_or_create(&data_dir, &addr)
        .map_err(|error| format!("cannot read or write the node's identity: {error}"))?;
    let network = PeerNetwork::new(identity.id, secret.clone());
    let server = PeerServer::start(listener, network.clone())
        .map_err(|error| format!("cannot serve peers: {error}"))?;
    let token_key = secret.derive_key(b"riffle iterator and token key v1");
    let log_options = config.log_options;
    let node = Node::open_cluster(config, token_key).map_err(|error| error.to_string())?;
    let cluster = Cluster::start(
        ClusterConfig {
            data_dir,
            addr,
            join: args.join,
            log_options,
        },
        identity,
        network,
        &node,
    )
    .await
    .map_err(|error| error.to_string())?;
    Ok((node, cluster, server))
}

/// `riffle cluster status`: asks a node's API endpoint for its view and prints it.
pub fn status(
    endpoint: &str,
    json: bool,
    runtime: &tokio::runtime::Runtime,
) -> std::process::ExitCode {
    let url = format!("{}/cluster/status", endpoint.trim_end_matches('/'));
    let fetched = runtime.block_on(fetch(&url));
    match fetched {
        Ok(body) => {
            if json {
                println!("{body}");
                return std::process::ExitCode::SUCCESS;
            }
            match serde_json::from_str::<NodeStatus>(&body) {
                Ok(status) => {
                    print!("{}", render(&status));
                    std::process::ExitCode::SUCCESS
                }
                Err(_) => {
                    eprintln!("riffle cluster status: {body}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Err(error) => {
            eprintln!("riffle cluster status: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn fetch(url: &str) -> Result<String, String> {
    let uri: hyper::Uri = url.parse().map_err(|error| format!("{url}: {error}"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("{url}: no host"))?
        .to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| format!("{url}: no answer within 5 s"))?
    .map_err(|error| format!("{url}: {error}"))?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|error| error.to_string())?;
    tokio::spawn(connection);
    let request = hyper::Request::get(uri.path())
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|error| error.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .map_err(|error| error.to_string())?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if status.is_success() {
        Ok(text)
    } else {
        Err(format!("{status}: {text}"))
    }
}

fn render(status: &NodeStatus) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "node {} at {}", status.id, status.addr);
    let _ = writeln!(out, "members:");
    for (id, addr) in &status.members {
        let mut roles = Vec::new();
        if status.meta_leader == Some(*id) {
            roles.push("catalogue leader");
        }
        roles.push(if status.voters.contains(id) {
            "voter"
        } else {
            "learner"
        });
        let _ = writeln!(out, "  {id:>20}  {addr:<22} {}", roles.join(", "));
    }
    let _ = writeln!(
        out,
        "catalogue applied through Raft index {}",
        status.meta_applied
    );
    let _ = writeln!(out, "shards ({}):", status.shards.len());
    for shard in &status.shards {
        let leader = shard
            .leader
            .map_or_else(|| "none".to_owned(), |leader| leader.to_string());
        let lag = if shard.lag.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = shard
                .lag
                .iter()
                .map(|(id, behind)| format!("{id}:{behind}"))
                .collect();
            format!("  lag {}", parts.join(" "))
        };
        let _ = writeln!(
            out,
            "  {}/shardId-{:012}  leader {leader}  replicas {:?}  applied {}{lag}",
            shard.stream, shard.ordinal, shard.replicas, shard.applied
        );
    }
    out
}
