//! `riffle serve --cluster-listen ADDR [--join ADDR]`: a node of a cluster, and
//! `riffle cluster status`, `leave` and `remove`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use riffle_cluster::cluster::{
    admin_proof, read_proof_headers, AdminRequest, Cluster, ClusterConfig, Identity, NodeStatus,
    ADMIN_PROOF_HEADER,
};
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
             directory. To move its streams into a cluster, serve it as a single node \
             (without --cluster-listen) and run `riffle copy --from THAT_NODE_URL --endpoint \
             A_CLUSTER_NODE_URL` (README: \"Move a single node's streams into a cluster\")",
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
    secret_file: Option<PathBuf>,
    runtime: &tokio::runtime::Runtime,
) -> std::process::ExitCode {
    // A node with --credentials asks for the cluster secret's proof; one without ignores it.
    // The default file is used when it exists, a file named on the command line must load.
    let secret = match secret_file {
        Some(path) => match ClusterSecret::load(&path) {
            Ok(secret) => Some(secret),
            Err(error) => {
                eprintln!("riffle cluster status: {}: {error}", path.display());
                return std::process::ExitCode::FAILURE;
            }
        },
        None => ClusterSecret::load(&default_secret_file()).ok(),
    };
    let url = format!("{}/cluster/status", endpoint.trim_end_matches('/'));
    let fetched = runtime.block_on(fetch(&url, secret.as_ref()));
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

/// GETs `url`, with the proof of `secret` if given (see `read_proof_headers`).
async fn fetch(url: &str, secret: Option<&ClusterSecret>) -> Result<String, String> {
    send(url, None, secret).await
}

/// GETs `url`, or POSTs `(body, proof)` to it; the body of a 2xx answer, else an error
/// naming the status and the node's answer.
async fn send(
    url: &str,
    post: Option<(Vec<u8>, String)>,
    read_secret: Option<&ClusterSecret>,
) -> Result<String, String> {
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
    let builder = match &post {
        Some((_, proof)) => hyper::Request::post(uri.path())
            .header(ADMIN_PROOF_HEADER, proof)
            .header(hyper::header::CONTENT_TYPE, "application/json"),
        None => {
            let mut get = hyper::Request::get(uri.path());
            if let Some(secret) = read_secret {
                for (name, value) in read_proof_headers(secret, uri.path()) {
                    get = get.header(name, value);
                }
            }
            get
        }
    };
    let body = post.map(|(body, _)| body).unwrap_or_default();
    let request = builder
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
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

/// What `riffle cluster leave` and `remove` are asked.
pub struct MembershipArgs {
    /// The node's API endpoint (`leave`: the node that leaves; `remove`: any live node).
    pub endpoint: String,
    /// The node to remove (`remove` only).
    pub node: Option<u64>,
    pub secret_file: Option<PathBuf>,
    /// How long to wait for the replicas to move.
    pub wait: Duration,
}

/// `riffle cluster leave` (`args.node` is `None`) or `riffle cluster remove NODE_ID`: asks the
/// node at the endpoint, then follows its status until the node is out, and says so.
pub fn change_membership(
    args: MembershipArgs,
    runtime: &tokio::runtime::Runtime,
) -> std::process::ExitCode {
    let command = if args.node.is_some() {
        "remove"
    } else {
        "leave"
    };
    match runtime.block_on(run_membership_change(&args)) {
        Ok(message) => {
            println!("{message}");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("riffle cluster {command}: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn node_status(endpoint: &str, secret: &ClusterSecret) -> Result<NodeStatus, String> {
    let body = fetch(&format!("{endpoint}/cluster/status"), Some(secret)).await?;
    serde_json::from_str(&body).map_err(|_| format!("{endpoint} answered {body}"))
}

/// The shards whose catalogue replicas include `node`, as `stream/shardId`.
fn held_by(status: &NodeStatus, node: u64) -> Vec<String> {
    status
        .placement
        .iter()
        .filter(|shard| shard.replicas.contains(&node))
        .map(|shard| format!("{}/shardId-{:012}", shard.stream, shard.ordinal))
        .collect()
}

async fn run_membership_change(args: &MembershipArgs) -> Result<String, String> {
    let endpoint = args.endpoint.trim_end_matches('/');
    let secret_file = args.secret_file.clone().unwrap_or_else(default_secret_file);
    let secret = ClusterSecret::load(&secret_file).map_err(|error| {
        format!(
            "{}: {error} (the cluster's secret file authorizes this request; pass \
             --cluster-secret-file if it is elsewhere)",
            secret_file.display()
        )
    })?;
    let before = node_status(endpoint, &secret).await?;
    let node = args.node.unwrap_or(before.id);
    let (path, request) = match args.node {
        Some(id) => (
            "/cluster/remove",
            AdminRequest {
                node: Some(id),
                at_ms: now_ms(),
            },
        ),
        None => (
            "/cluster/leave",
            AdminRequest {
                node: None,
                at_ms: now_ms(),
            },
        ),
    };
    if args.node.is_none() && before.left {
        return Ok(format!("node {node} has left the cluster already"));
    }
    let body = serde_json::to_vec(&request).map_err(|error| error.to_string())?;
    let proof = admin_proof(&secret, path, &body);
    send(&format!("{endpoint}{path}"), Some((body, proof)), None).await?;
    let holding = held_by(&before, node);
    eprintln!(
        "node {node} is leaving the cluster: moving its replicas of {} shard(s) to other nodes",
        holding.len()
    );
    let deadline = tokio::time::Instant::now() + args.wait;
    let mut last = holding.len();
    loop {
        let now = node_status(endpoint, &secret).await?;
        let done = match args.node {
            None => now.left,
            Some(id) => now.removed.contains(&id) && !now.members.contains_key(&id),
        };
        if done {
            return Ok(match args.node {
                None => format!(
                    "node {node} left the cluster: its replicas are on the other nodes. It \
                     answers API calls with an error from now on and refuses to start again: \
                     stop it, and delete its data directory when you no longer need it"
                ),
                Some(_) => format!(
                    "node {node} was removed from the cluster: its replicas are on the other \
                     nodes. Started again it refuses to serve; to use its machine again, \
                     start it with an empty data directory and --join"
                ),
            });
        }
        let holding = held_by(&now, node);
        if holding.len() != last {
            eprintln!("{} shard(s) still to move", holding.len());
            last = holding.len();
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "node {node} is still leaving after {} s; still on it: {}",
                args.wait.as_secs(),
                if holding.is_empty() {
                    "no shard (it is being dropped from the metadata group)".to_owned()
                } else {
                    holding.join(", ")
                }
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
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
        if status.leaving.contains(id) {
            roles.push("leaving");
        }
        let _ = writeln!(out, "  {id:>20}  {addr:<22} {}", roles.join(", "));
    }
    if status.left {
        let _ = writeln!(out, "this node has left the cluster: it serves nothing");
    }
    if !status.removed.is_empty() {
        let removed: Vec<String> = status.removed.iter().map(u64::to_string).collect();
        let _ = writeln!(out, "removed: {}", removed.join(", "));
    }
    let _ = writeln!(
        out,
        "catalogue applied through Raft index {}",
        status.meta_applied
    );
    let mut held: std::collections::BTreeMap<u64, usize> =
        status.members.keys().map(|id| (*id, 0)).collect();
    for shard in status.placement.iter().filter(|shard| !shard.closed) {
        for replica in &shard.replicas {
            *held.entry(*replica).or_default() += 1;
        }
    }
    let held: Vec<String> = held
        .iter()
        .map(|(id, count)| format!("{id}:{count}"))
        .collect();
    let _ = writeln!(out, "open shard replicas per node: {}", held.join(" "));
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
