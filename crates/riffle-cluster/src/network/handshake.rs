//! The handshake that opens every peer connection: a mutual challenge–response on the
//! cluster secret, before either side reads a single RPC.
//!
//! ```text
//! client -> server   hello_c  = "RFLP" | version | 0 0 0 | client node id (u64 BE) | nonce_c (32 random bytes)
//! server -> client   hello_s  = "RFLP" | version | 0 0 0 | server node id           | nonce_s
//!                    proof_s  = HMAC-SHA256(secret, SERVER_LABEL | hello_c | hello_s)
//! client -> server   proof_c  = HMAC-SHA256(secret, CLIENT_LABEL | hello_c | hello_s)
//! ```
//!
//! Each proof covers both nonces (so it cannot be replayed on another connection), both node
//! ids and versions, and a label naming its direction (so a server's proof cannot be
//! reflected back to it as a client's). The client checks the server's proof before it sends
//! its own or any request, so a stranger listening at a peer's address learns nothing
//! either; the server reads nothing past the hello until the client's proof checks out.
//! Every message has a fixed size, so a stranger controls no length here. The magic and the
//! version byte stay first in every future version, so two riffles of different protocol
//! versions name the mismatch instead of failing on garbage: a server that does not speak
//! the client's version answers with its own hello (no proof) and closes.

use std::fmt;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::secret::ClusterSecret;

/// The peer protocol version this build speaks (the handshake and the frames after it).
pub const PROTOCOL_VERSION: u8 = 1;

/// How long either side waits for the other's part of the handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

const MAGIC: [u8; 4] = *b"RFLP";
const HELLO_BYTES: usize = 48;
const PROOF_BYTES: usize = 32;
const SERVER_LABEL: &[u8] = b"riffle peer v1: server proof";
const CLIENT_LABEL: &[u8] = b"riffle peer v1: client proof";

/// Why a handshake failed.
#[derive(Debug)]
pub enum HandshakeError {
    /// The connection failed or closed.
    Io(io::Error),
    /// The other side does not speak riffle's peer protocol at all.
    NotRiffle,
    /// The other side speaks another version of it.
    Version {
        /// The version the other side announced.
        theirs: u8,
    },
    /// The other side does not know the cluster secret (or uses another one).
    BadProof {
        /// The node id the other side announced (unproven).
        claimed: u64,
    },
    /// The client closed the connection once it had the server's proof, instead of sending
    /// its own: what a riffle with another cluster secret does.
    Abandoned {
        /// The node id the client announced (unproven).
        claimed: u64,
    },
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Io(error) => write!(f, "handshake failed: {error}"),
            HandshakeError::NotRiffle => f.write_str("not a riffle peer (bad magic)"),
            HandshakeError::Version { theirs } => write!(
                f,
                "speaks peer protocol version {theirs}, this riffle speaks {PROTOCOL_VERSION}"
            ),
            HandshakeError::BadProof { claimed } => write!(
                f,
                "claims to be node {claimed} but does not prove the cluster secret (another \
                 cluster's secret, or not a member)"
            ),
            HandshakeError::Abandoned { claimed } => write!(
                f,
                "claims to be node {claimed} but closed the connection instead of proving the \
                 cluster secret (it likely has another cluster's secret)"
            ),
        }
    }
}

impl std::error::Error for HandshakeError {}

impl From<io::Error> for HandshakeError {
    fn from(error: io::Error) -> Self {
        HandshakeError::Io(error)
    }
}

fn hello(node_id: u64) -> io::Result<[u8; HELLO_BYTES]> {
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce)
        .map_err(|error| io::Error::other(format!("no randomness for a nonce: {error}")))?;
    let mut out = [0u8; HELLO_BYTES];
    out[..4].copy_from_slice(&MAGIC);
    out[4] = PROTOCOL_VERSION;
    out[8..16].copy_from_slice(&node_id.to_be_bytes());
    out[16..].copy_from_slice(&nonce);
    Ok(out)
}

/// The node id in a hello, once its magic and version are checked.
fn check_hello(hello: &[u8; HELLO_BYTES]) -> Result<u64, HandshakeError> {
    if hello[..4] != MAGIC {
        return Err(HandshakeError::NotRiffle);
    }
    if hello[4] != PROTOCOL_VERSION {
        return Err(HandshakeError::Version { theirs: hello[4] });
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&hello[8..16]);
    Ok(u64::from_be_bytes(id))
}

/// Runs the client's side on a fresh connection; the server's node id once it proved the
/// secret.
pub(crate) async fn client<S>(
    stream: &mut S,
    secret: &ClusterSecret,
    node_id: u64,
) -> Result<u64, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hello_c = hello(node_id)?;
    stream.write_all(&hello_c).await?;
    stream.flush().await?;
    let mut hello_s = [0u8; HELLO_BYTES];
    stream.read_exact(&mut hello_s).await?;
    let server_id = check_hello(&hello_s)?;
    let mut proof_s = [0u8; PROOF_BYTES];
    stream.read_exact(&mut proof_s).await?;
    if !secret.verify(&[SERVER_LABEL, &hello_c, &hello_s], &proof_s) {
        return Err(HandshakeError::BadProof { claimed: server_id });
    }
    let proof_c = secret.mac(&[CLIENT_LABEL, &hello_c, &hello_s]);
    stream.write_all(&proof_c).await?;
    stream.flush().await?;
    Ok(server_id)
}

/// Runs the server's side on an accepted connection; the client's node id once it proved
/// the secret.
pub(crate) async fn server<S>(
    stream: &mut S,
    secret: &ClusterSecret,
    node_id: u64,
) -> Result<u64, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut hello_c = [0u8; HELLO_BYTES];
    stream.read_exact(&mut hello_c).await?;
    let hello_s = hello(node_id)?;
    let client_id = match check_hello(&hello_c) {
        Ok(id) => id,
        Err(error @ HandshakeError::Version { .. }) => {
            // Tell the client which version this side speaks, then close.
            let _ = stream.write_all(&hello_s).await;
            let _ = stream.flush().await;
            return Err(error);
        }
        Err(error) => return Err(error),
    };
    let proof_s = secret.mac(&[SERVER_LABEL, &hello_c, &hello_s]);
    let mut out = [0u8; HELLO_BYTES + PROOF_BYTES];
    out[..HELLO_BYTES].copy_from_slice(&hello_s);
    out[HELLO_BYTES..].copy_from_slice(&proof_s);
    stream.write_all(&out).await?;
    stream.flush().await?;
    let mut proof_c = [0u8; PROOF_BYTES];
    match stream.read_exact(&mut proof_c).await {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(HandshakeError::Abandoned { claimed: client_id })
        }
        Err(error) => return Err(error.into()),
    }
    if !secret.verify(&[CLIENT_LABEL, &hello_c, &hello_s], &proof_c) {
        return Err(HandshakeError::BadProof { claimed: client_id });
    }
    Ok(client_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(fill: u8) -> &'static ClusterSecret {
        Box::leak(Box::new(ClusterSecret::from_bytes(&[fill; 32]).unwrap()))
    }

    #[tokio::test]
    async fn the_same_secret_passes_and_names_both_nodes() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let (client, server) =
            tokio::join!(client(&mut a, secret(1), 7), server(&mut b, secret(1), 9));
        assert_eq!(client.unwrap(), 9);
        assert_eq!(server.unwrap(), 7);
    }

    #[tokio::test]
    async fn another_secret_fails_on_both_sides() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let (client, server) = tokio::join!(
            async {
                let result = client(&mut a, secret(1), 7).await;
                // A client that refuses the server closes the connection.
                drop(a);
                result
            },
            server(&mut b, secret(2), 9)
        );
        assert!(matches!(
            client,
            Err(HandshakeError::BadProof { claimed: 9 })
        ));
        // The client never sent its proof: the server saw the connection close.
        assert!(
            matches!(server, Err(HandshakeError::Abandoned { claimed: 7 })),
            "{server:?}"
        );
    }

    #[tokio::test]
    async fn a_client_that_sends_a_proof_anyway_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let forger = async {
            let hello_c = hello(5).unwrap();
            a.write_all(&hello_c).await.unwrap();
            let mut reply = [0u8; HELLO_BYTES + PROOF_BYTES];
            a.read_exact(&mut reply).await.unwrap();
            // A proof under the wrong secret, and then the server's own proof reflected.
            let forged = secret(3).mac(&[CLIENT_LABEL, &hello_c, &reply[..HELLO_BYTES]]);
            a.write_all(&forged).await.unwrap();
        };
        let (_, result) = tokio::join!(forger, server(&mut b, secret(1), 9));
        assert!(matches!(
            result,
            Err(HandshakeError::BadProof { claimed: 5 })
        ));

        let (mut a, mut b) = tokio::io::duplex(1024);
        let reflector = async {
            let hello_c = hello(5).unwrap();
            a.write_all(&hello_c).await.unwrap();
            let mut reply = [0u8; HELLO_BYTES + PROOF_BYTES];
            a.read_exact(&mut reply).await.unwrap();
            a.write_all(&reply[HELLO_BYTES..]).await.unwrap();
        };
        let (_, result) = tokio::join!(reflector, server(&mut b, secret(1), 9));
        assert!(matches!(result, Err(HandshakeError::BadProof { .. })));
    }

    #[tokio::test]
    async fn garbage_and_other_versions_are_named() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&[b'G'; HELLO_BYTES]).await.unwrap();
        let result = server(&mut b, secret(1), 9).await;
        assert!(matches!(result, Err(HandshakeError::NotRiffle)));

        let (mut a, mut b) = tokio::io::duplex(1024);
        let mut newer = hello(5).unwrap();
        newer[4] = PROTOCOL_VERSION + 1;
        a.write_all(&newer).await.unwrap();
        let result = server(&mut b, secret(1), 9).await;
        assert!(
            matches!(result, Err(HandshakeError::Version { theirs }) if theirs == PROTOCOL_VERSION + 1)
        );
        // The server told the client its own version before closing.
        let mut answer = [0u8; HELLO_BYTES];
        a.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer[4], PROTOCOL_VERSION);
    }
}
