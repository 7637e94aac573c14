//! The cluster secret: the key every node proves it holds before a peer reads a single RPC
//! from it (see [`super::handshake`]).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// HMAC-SHA256, the proof of the secret.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Fewest bytes a cluster secret has: 256 bits, as many as the HMAC's output.
pub const SECRET_BYTES_MIN: usize = 32;

/// Most bytes a secret file may hold; anything longer is not a secret file.
const SECRET_FILE_BYTES_MAX: u64 = 4096;

/// Random bytes [`ClusterSecret::create`] draws (written as twice as many hex digits).
const CREATED_SECRET_BYTES: usize = 32;

/// The secret shared by every node of a cluster, as read from its file.
///
/// The file's content, with leading and trailing ASCII white space removed (so an editor's
/// final newline on one node does not split the cluster), is the HMAC key, used as is: a
/// file made by [`ClusterSecret::create`] holds 64 hex digits, and any other source of at
/// least [`SECRET_BYTES_MIN`] bytes works too (`head -c 48 /dev/urandom | base64`). Every node
/// must have the same file. The secret is never printed: `Debug` shows a placeholder, and
/// errors name the file, never its content.
#[derive(Clone)]
pub struct ClusterSecret {
    key: HmacSha256,
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

fn invalid(path: &Path, what: impl fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("cluster secret file {}: {what}", path.display()),
    )
}

fn with_path(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("cluster secret file {}: {error}", path.display()),
    )
}

impl ClusterSecret {
    /// Reads the secret from `path`.
    ///
    /// Refused: a file that is not a regular file, one that its group or other users may
    /// read or write (on Unix; `chmod 600` it: a secret others could read may already be
    /// known to them, so riffle does not quietly narrow it), one longer than 4 KiB, and one
    /// holding fewer than [`SECRET_BYTES_MIN`] bytes once white space is trimmed.
    pub fn load(path: &Path) -> io::Result<ClusterSecret> {
        let file = File::open(path).map_err(|error| with_path(path, error))?;
        let metadata = file.metadata().map_err(|error| with_path(path, error))?;
        if !metadata.is_file() {
            return Err(invalid(path, "not a regular file"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "cluster secret file {}: its group or other users have access (mode \
                         {:03o}); make it readable by its owner only (chmod 600) and, if \
                         others may have read it, create a new secret for every node",
                        path.display(),
                        mode & 0o777
                    ),
                ));
            }
        }
        if metadata.len() > SECRET_FILE_BYTES_MAX {
            return Err(invalid(
                path,
                format_args!("{} bytes; a secret file holds at most 4096", metadata.len()),
            ));
        }
        let mut content = Vec::new();
        file.take(SECRET_FILE_BYTES_MAX + 1)
            .read_to_end(&mut content)
            .map_err(|error| with_path(path, error))?;
        Self::from_bytes(&content).map_err(|error| invalid(path, error))
    }

    /// Writes a new random secret (32 bytes from the operating system, as 64 hex digits and
    /// a newline) to `path`, readable and writable by its owner only, and returns it. Refuses
    /// to replace an existing file (`AlreadyExists`): overwriting a cluster's secret on one
    /// node would cut it off from the others.
    pub fn create(path: &Path) -> io::Result<ClusterSecret> {
        let mut random = [0u8; CREATED_SECRET_BYTES];
        getrandom::fill(&mut random).map_err(|error| {
            io::Error::other(format!("no randomness for a cluster secret: {error}"))
        })?;
        let mut text: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
        text.push('\n');
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        let mut file = riffle_log::owner_only_options(&mut options)
            .open(path)
            .map_err(|error| with_path(path, error))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|error| with_path(path, error))?;
        // The file's name must survive a crash too; best effort where directories cannot be
        // opened for it.
        if let Some(parent) = path.parent() {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            if let Ok(dir) = File::open(parent) {
                let _ = dir.sync_all();
            }
        }
        Self::from_bytes(text.as_bytes())
    }

    /// The secret whose text is `content` (white space around it trimmed), as
    /// [`ClusterSecret::load`] reads a file. Refused when fewer than [`SECRET_BYTES_MIN`]
    /// bytes remain.
    pub fn from_bytes(content: &[u8]) -> io::Result<ClusterSecret> {
        let key = content.trim_ascii();
        if key.len() < SECRET_BYTES_MIN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} bytes; a cluster secret needs at least {SECRET_BYTES_MIN} (64 hex \
                     digits of randomness will do: `openssl rand -hex 32`)",
                    key.len()
                ),
            ));
        }
        // HMAC takes a key of any length; the error case cannot occur.
        let key = HmacSha256::new_from_slice(key).map_err(io::Error::other)?;
        Ok(ClusterSecret { key })
    }

    /// The HMAC-SHA256 of the concatenated `parts` under the secret.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.key.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Whether `proof` is the HMAC-SHA256 of the concatenated `parts`, compared in constant
    /// time.
    pub(crate) fn verify(&self, parts: &[&[u8]], proof: &[u8]) -> bool {
        let mut mac = self.key.clone();
        for part in parts {
            mac.update(part);
        }
        mac.verify_slice(proof).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn create_writes_an_owner_only_random_secret_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let created = ClusterSecret::create(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65, "{text:?}");
        assert!(text.trim_end().bytes().all(|b| b.is_ascii_hexdigit()));
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);

        let loaded = ClusterSecret::load(&path).unwrap();
        assert_eq!(created.mac(&[b"x"]), loaded.mac(&[b"x"]));
        assert!(loaded.verify(&[b"x"], &created.mac(&[b"x"])));
        assert!(!loaded.verify(&[b"y"], &created.mac(&[b"x"])));

        let error = ClusterSecret::create(&path).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "untouched");

        let other = dir.path().join("other");
        let second = ClusterSecret::create(&other).unwrap();
        assert_ne!(second.mac(&[b"x"]), created.mac(&[b"x"]), "random");
    }

    #[test]
    fn short_empty_loose_or_huge_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, content: &[u8], mode: u32| {
            let path = dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            #[cfg(not(unix))]
            let _ = mode;
            path
        };
        let empty = write("empty", b"", 0o600);
        assert_eq!(
            ClusterSecret::load(&empty).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // 31 characters once the newline and spaces are trimmed.
        let short = write("short", b"  0123456789abcdef0123456789abcde\n", 0o600);
        let error = ClusterSecret::load(&short).unwrap_err();
        assert!(error.to_string().contains("31 bytes"), "{error}");
        assert!(
            !error.to_string().contains("0123"),
            "never echoes the secret"
        );

        let huge = write("huge", &[b'a'; 5000], 0o600);
        assert!(ClusterSecret::load(&huge).is_err());

        let good = b"0123456789abcdef0123456789abcdef\n";
        #[cfg(unix)]
        {
            let loose = write("loose", good, 0o640);
            let error = ClusterSecret::load(&loose).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
            assert!(error.to_string().contains("chmod 600"), "{error}");
            assert_eq!(mode(&loose), 0o640, "left for the operator to fix");
        }
        let fine = write("fine", good, 0o600);
        let secret = ClusterSecret::load(&fine).unwrap();
        // Trimming: the same key with or without the newline.
        let bare = ClusterSecret::from_bytes(&good[..32]).unwrap();
        assert_eq!(secret.mac(&[b"m"]), bare.mac(&[b"m"]));
        assert_eq!(format!("{secret:?}"), "ClusterSecret(..)");

        assert!(ClusterSecret::load(dir.path()).is_err(), "a directory");
        assert_eq!(
            ClusterSecret::load(&dir.path().join("missing"))
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
    }
}
