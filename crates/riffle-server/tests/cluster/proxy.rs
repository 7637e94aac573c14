//! A fault-injecting TCP proxy in front of each node's cluster port: peers reach node `i`
//! only through proxy `i` (the node advertises the proxy's address), so the test can delay,
//! drop and cut node-to-node traffic without touching the kernel's packet filter.
//!
//! Each connection starts with riffle's peer handshake, whose first message from each side
//! names that side's node id (`"RFLP" | version | 0 0 0 | id (u64 BE) | nonce`). The proxy
//! reads both hellos, so it knows which node is talking to which and can cut a link one
//! way: the messages `from` sends to `to` travel as `from`'s requests on its connections to
//! `to` and as `from`'s replies on `to`'s connections to it; both are held while the link
//! is cut (the bytes wait in the proxy, as a stalled TCP stream's would) and flow again
//! once it heals.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// The handshake's first message from either side.
const HELLO_BYTES: usize = 48;

/// Faults in force, for all proxies.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Extra latency of every byte through proxy `i`, both ways.
    pub delay: BTreeMap<usize, Duration>,
    /// Proxies that close every new connection at once.
    pub refuse: BTreeSet<usize>,
    /// Directed links (from node id, to node id) whose messages are held.
    pub cut: BTreeSet<(u64, u64)>,
    /// Bumped to close every open connection of proxy `i`.
    pub drops: BTreeMap<usize, u64>,
}

/// The faults every proxy obeys, and counters.
pub struct Control {
    faults: watch::Sender<Faults>,
    connections: AtomicU64,
}

impl Control {
    pub fn new() -> Arc<Control> {
        Arc::new(Control {
            faults: watch::channel(Faults::default()).0,
            connections: AtomicU64::new(0),
        })
    }

    pub fn change(&self, change: impl FnOnce(&mut Faults)) {
        self.faults.send_modify(change);
    }

    /// Back to a clean network (open connections stay open).
    pub fn heal(&self) {
        self.faults.send_modify(|faults| {
            faults.delay.clear();
            faults.refuse.clear();
            faults.cut.clear();
        });
    }

    /// Node-to-node connections the proxies carried so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

/// Starts proxy `index`: listens on a free loopback port and forwards to `upstream`.
pub async fn start(index: usize, upstream: SocketAddr, control: Arc<Control>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a proxy");
    let addr = listener.local_addr().expect("proxy address");
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            if control.faults.borrow().refuse.contains(&index) {
                drop(client);
                continue;
            }
            let control = Arc::clone(&control);
            tokio::spawn(async move {
                let _ = connection(client, upstream, index, control).await;
            });
        }
    });
    addr
}

fn hello_id(hello: &[u8; HELLO_BYTES]) -> u64 {
    u64::from_be_bytes(hello[8..16].try_into().expect("eight bytes"))
}

/// One proxied connection: both hellos, then a pump each way, until either side closes or
/// the proxy's connections are dropped.
async fn connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    index: usize,
    control: Arc<Control>,
) -> std::io::Result<()> {
    let mut faults = control.faults.subscribe();
    let epoch = faults.borrow().drops.get(&index).copied().unwrap_or(0);
    let handshake = async {
        let mut hello_c = [0u8; HELLO_BYTES];
        client.read_exact(&mut hello_c).await?;
        let mut server = TcpStream::connect(upstream).await?;
        server.write_all(&hello_c).await?;
        let mut hello_s = [0u8; HELLO_BYTES];
        server.read_exact(&mut hello_s).await?;
        client.write_all(&hello_s).await?;
        Ok::<_, std::io::Error>((server, hello_id(&hello_c), hello_id(&hello_s)))
    };
    let (server, client_id, server_id) =
        match tokio::time::timeout(Duration::from_secs(5), handshake).await {
            Ok(done) => done?,
            Err(_) => return Ok(()),
        };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    control.connections.fetch_add(1, Ordering::Relaxed);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let requests = pump(
        client_read,
        server_write,
        (client_id, server_id),
        index,
        Arc::clone(&control),
    );
    let replies = pump(
        server_read,
        client_write,
        (server_id, client_id),
        index,
        Arc::clone(&control),
    );
    let dropped = async {
        loop {
            if faults.changed().await.is_err() {
                return;
            }
            if faults.borrow().drops.get(&index).copied().unwrap_or(0) != epoch {
                return;
            }
        }
    };
    tokio::select! {
        _ = async { tokio::join!(requests, replies) } => {}
        _ = dropped => {}
    }
    Ok(())
}

/// Copies one direction, holding bytes while `link` is cut and delaying them as proxy
/// `index`'s latency says; ends (closing its write side) when the read side ends.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    link: (u64, u64),
    index: usize,
    control: Arc<Control>,
) {
    let (sender, mut receiver) = mpsc::channel::<(Instant, Vec<u8>)>(256);
    let reading = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(read) = from.read(&mut buffer).await {
            if read == 0
                || sender
                    .send((Instant::now(), buffer[..read].to_vec()))
                    .await
                    .is_err()
            {
                break;
            }
        }
    };
    let writing = async move {
        let mut faults = control.faults.subscribe();
        while let Some((arrived, bytes)) = receiver.recv().await {
            loop {
                let (delay, cut) = {
                    let now = faults.borrow_and_update();
                    (
                        now.delay.get(&index).copied().unwrap_or_default(),
                        now.cut.contains(&link),
                    )
                };
                if cut {
                    if faults.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
                let due = arrived + delay;
                if Instant::now() >= due {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    changed = faults.changed() => if changed.is_err() { return },
                }
            }
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reading, writing);
}
