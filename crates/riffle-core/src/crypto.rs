//! Encryption at rest: the KMS key store, and sealing and opening of frame payloads.
//!
//! **Keys.** `riffle serve --kms-keys FILE` names the keys StartStreamEncryption may use (the
//! format is in the README and on [`KeyStore::parse`]): a key id in UUID form, a state (enabled
//! or disabled), 256 bits of key material, and any aliases. A KeyId resolves as AWS resolves it:
//! a key id, a key ARN `arn:aws:kms:REGION:ACCOUNT:key/ID`, an alias name `alias/NAME` or an
//! alias ARN `arn:aws:kms:REGION:ACCOUNT:alias/NAME`; an ARN must name the server's region and
//! the caller's account, and the keys of the file serve every account of the node.
//! `alias/aws/kinesis`, the key Kinesis manages itself, needs no entry: the first
//! StartStreamEncryption that names it generates a key and keeps it in the catalogue
//! (`meta.json`, written readable by its owner only), as AWS keeps its managed key for you. It
//! protects nothing from someone who can read the data directory, only lets clients that ask
//! for the managed key work; keys that must stay off the data disk belong in the key file.
//! Material is held in memory only (inside `ring`'s key schedules) and never logged, printed or
//! echoed in an error: key file errors name the line and the field, never its text.
//!
//! **Sealed payloads.** A data frame of an encrypted stream carries, instead of the records,
//!
//! ```text
//! key_id [16] | nonce [12] | AES-256-GCM(records) | tag [16]
//! ```
//!
//! and the frame flag [`FRAME_FLAG_SEALED`]. The key id makes a frame readable after a key
//! rotation or after StopStreamEncryption; the nonce is fresh from the OS for every frame (one
//! put batch for one shard), so a key seals one frame per record batch, not per record. The
//! additional authenticated data binds the ciphertext to its place: the key id, the stream's
//! directory id, the shard ordinal, the log index and the header fields readers use (flags,
//! record count, timestamps), so a frame copied into another shard, stream or position, or
//! given other timestamps, fails its tag. A tag that does not verify is corruption: readers
//! answer an internal error and never serve what they could not authenticate.
//!
//! **Replicated shards.** A shard of a cluster gets a frame's index from its Raft group, when
//! the group's leader appends it, after the frame has left the node the put entered. That
//! node seals the frame (so plaintext never reaches another node's disk, the Raft log being
//! the shard's data) with flag [`FRAME_FLAG_SEALED_UNINDEXED`] and additional data that binds
//! everything above except the index. The tag then still catches a frame moved to another
//! shard or stream, changed header fields and every changed byte, but not a frame copied to
//! another position of the same shard by someone who can write the data directory; each
//! replica's log checksums and the Raft log's term/index chain are what keep positions there.
//! The index-bound form stays the single node's.
//!
//! Random 96-bit nonces stay collision-safe for about 2^32 frames per key (NIST SP 800-38D);
//! rotate a key well before a stream writes four billion batches under it.
//!
//! **Why `ring`.** Its AES-GCM is constant-time, uses AES-NI/PMULL where the CPU has them, and
//! is already built for rustls, so encryption adds no crate to the build; RustCrypto's
//! `aes-gcm` would add half a dozen.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use riffle_log::{Entry, EntryMeta};
use riffle_proto::{ErrorKind, KinesisError};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

/// Frame flag (`riffle_log::EntryMeta::flags`): the payload is sealed (see the module doc).
pub const FRAME_FLAG_SEALED: u16 = 0x0001;
/// Frame flag: the payload is sealed, by the node a put entered, before the shard's group
/// gave the frame its index (a replicated shard; see the module doc).
pub const FRAME_FLAG_SEALED_UNINDEXED: u16 = 0x0002;

/// Bytes of a key id (a UUID) in a sealed payload.
pub const KEY_ID_BYTES: usize = 16;
/// Bytes of an AES-GCM nonce.
pub const NONCE_BYTES: usize = 12;
/// Bytes of an AES-GCM tag.
pub const TAG_BYTES: usize = 16;
/// Bytes in front of the ciphertext: key id and nonce.
pub const SEALED_HEADER_BYTES: usize = KEY_ID_BYTES + NONCE_BYTES;
/// Bytes a sealed payload has beyond its records.
pub const SEALED_OVERHEAD_BYTES: usize = SEALED_HEADER_BYTES + TAG_BYTES;
/// Bytes of key material: AES-256.
pub const KEY_MATERIAL_BYTES: usize = 32;

/// The KeyId of the key Kinesis manages itself.
pub const AWS_MANAGED_ALIAS: &str = "alias/aws/kinesis";

/// Longest alias AWS KMS accepts.
const ALIAS_CHARS_MAX: usize = 256;

/// Domain separation of the additional authenticated data.
const AAD_CONTEXT: &[u8] = b"riffle frame AES-256-GCM v1";
/// Domain separation of the additional authenticated data of a frame sealed before its index
/// was known.
const AAD_CONTEXT_UNINDEXED: &[u8] = b"riffle unindexed frame AES-256-GCM v1";

/// What the key check value is an HMAC of.
const CHECK_CONTEXT: &[u8] = b"riffle key check v1";

/// A KMS key id: a UUID, as AWS key ids are.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; KEY_ID_BYTES]);

impl KeyId {
    /// The UUID `8-4-4-4-12` hex digits (either case), or `None`.
    pub fn parse(text: &str) -> Option<KeyId> {
        let bytes = text.as_bytes();
        if bytes.len() != 36 {
            return None;
        }
        let mut id = [0u8; KEY_ID_BYTES];
        let mut nibble = 0usize;
        for (position, &byte) in bytes.iter().enumerate() {
            if matches!(position, 8 | 13 | 18 | 23) {
                if byte != b'-' {
                    return None;
                }
                continue;
            }
            let value = (byte as char).to_digit(16)? as u8;
            id[nibble / 2] |= if nibble.is_multiple_of(2) {
                value << 4
            } else {
                value
            };
            nibble += 1;
        }
        Some(KeyId(id))
    }

    fn random() -> Result<KeyId, SealError> {
        let mut id = random_bytes::<KEY_ID_BYTES>()?;
        // A version-4 UUID, like the ids AWS gives its keys.
        id[6] = (id[6] & 0x0f) | 0x40;
        id[8] = (id[8] & 0x3f) | 0x80;
        Ok(KeyId(id))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, byte) in self.0.iter().enumerate() {
            if matches!(position, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// One key: its id, aliases and state, and its AES-256-GCM key schedule. The material itself
/// is not kept, and `Debug` never shows it.
pub struct Key {
    id: KeyId,
    aliases: Vec<String>,
    enabled: bool,
    aead: LessSafeKey,
    /// HMAC-SHA256 of [`CHECK_CONTEXT`] under the material, cut to 16 bytes: the catalogue
    /// keeps it for every key a stream sealed frames with, so a start with other material under
    /// the same id is refused instead of failing every read.
    check: [u8; 16],
}

impl Key {
    fn new(
        id: KeyId,
        material: &[u8; KEY_MATERIAL_BYTES],
        enabled: bool,
        aliases: Vec<String>,
    ) -> Key {
        let unbound =
            UnboundKey::new(&AES_256_GCM, material).expect("AES-256-GCM takes any 32-byte key");
        let mac = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, material),
            CHECK_CONTEXT,
        );
        let mut check = [0u8; 16];
        check.copy_from_slice(&mac.as_ref()[..16]);
        Key {
            id,
            aliases,
            enabled,
            aead: LessSafeKey::new(unbound),
            check,
        }
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// `arn:aws:kms:REGION:ACCOUNT:key/ID`.
    pub fn arn(&self, region: &str, account: &str) -> String {
        format!("arn:aws:kms:{region}:{account}:key/{}", self.id)
    }

    /// The key check value, in hex (see [`Key::check`]).
    pub fn check_hex(&self) -> String {
        hex(&self.check)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("aliases", &self.aliases)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// Why the key file cannot be used. Never carries key material: only the line and the field.
#[derive(Debug)]
pub struct KeyFileError {
    pub path: Option<PathBuf>,
    pub line: Option<usize>,
    pub reason: String,
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "key file {}: ", path.display())?;
        }
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for KeyFileError {}

/// The AWS-managed key as the catalogue keeps it.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManagedKey {
    pub key_id: String,
    pub material_hex: String,
}

/// The keys a node knows: the key file's, and the AWS-managed key once it exists.
#[derive(Default)]
pub struct KeyStore {
    keys: Vec<Arc<Key>>,
    managed: OnceLock<(Arc<Key>, ManagedKey)>,
}

impl fmt::Debug for ManagedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("keys", &self.keys)
            .field("managed", &self.managed.get().map(|(key, _)| key.id))
            .finish()
    }
}

impl KeyStore {
    /// No key file: only `alias/aws/kinesis` resolves.
    pub fn empty() -> KeyStore {
        KeyStore::default()
    }

    /// Reads and parses a key file. Warns (never refuses) when other users may read it.
    pub fn load(path: &Path) -> Result<KeyStore, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|error| KeyFileError {
            path: Some(path.to_path_buf()),
            line: None,
            reason: error.to_string(),
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(metadata) = std::fs::metadata(path) {
                if metadata.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(
                        path = %path.display(),
                        "the KMS key file is readable by other users; chmod 600 it"
                    );
                }
            }
        }
        KeyStore::parse(&text).map_err(|error| KeyFileError {
            path: Some(path.to_path_buf()),
            ..error
        })
    }

    /// Parses a key file: one key per line, fields separated by white space, `#` to the end
    /// of a line is a comment, blank lines are skipped:
    ///
    /// ```text
    /// # KEY_ID                              STATE    MATERIAL                                                          ALIASES
    /// 3f0b1c52-8a4e-4d36-9a57-0c2f1e6d8b41  enabled  9c0d5f8e2b7a41c6d3e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e  alias/orders
    /// ```
    ///
    /// `KEY_ID` is a UUID; `STATE` is `enabled` or `disabled`; `MATERIAL` is the 256-bit key,
    /// 64 hex digits or 44 characters of standard base64; each `ALIAS` is `alias/` and a name
    /// of letters, digits, `/`, `_` and `-` (not `alias/aws/…`, which AWS reserves). Key ids
    /// and aliases are unique in the file.
    pub fn parse(text: &str) -> Result<KeyStore, KeyFileError> {
        let mut keys: Vec<(usize, Arc<Key>)> = Vec::new();
        for (number, raw) in text.lines().enumerate() {
            let line = number + 1;
            let fail = |reason: String| KeyFileError {
                path: None,
                line: Some(line),
                reason,
            };
            let content = raw.split('#').next().unwrap_or_default();
            let fields: Vec<&str> = content.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            if fields.len() < 3 {
                return Err(fail(format!(
                    "expected KEY_ID STATE MATERIAL [ALIAS ...], found {} field(s)",
                    fields.len()
                )));
            }
            let id = KeyId::parse(fields[0]).ok_or_else(|| {
                fail(
                    "the key id (field 1) is not a UUID like 1234abcd-12ab-34cd-56ef-1234567890ab"
                        .into(),
                )
            })?;
            let enabled = match fields[1] {
                state if state.eq_ignore_ascii_case("enabled") => true,
                state if state.eq_ignore_ascii_case("disabled") => false,
                _ => {
                    return Err(fail(
                        "the state (field 2) must be enabled or disabled".into(),
                    ))
                }
            };
            let material = decode_material(fields[2]).ok_or_else(|| {
                fail(format!(
                    "the key material (field 3) must be {KEY_MATERIAL_BYTES} bytes: 64 hex \
                     digits or 44 characters of base64"
                ))
            })?;
            let mut aliases = Vec::new();
            for (position, alias) in fields[3..].iter().enumerate() {
                check_alias(alias, position + 4).map_err(fail)?;
                aliases.push((*alias).to_owned());
            }
            for (earlier_line, earlier) in &keys {
                if earlier.id == id {
                    return Err(fail(format!(
                        "key id {id} is already defined on line {earlier_line}"
                    )));
                }
                if let Some(alias) = aliases.iter().find(|alias| earlier.aliases.contains(alias)) {
                    return Err(fail(format!(
                        "alias {alias} already names the key on line {earlier_line}"
                    )));
                }
            }
            if let Some((position, alias)) = aliases
                .iter()
                .enumerate()
                .find(|(position, alias)| aliases[..*position].contains(alias))
            {
                return Err(fail(format!(
                    "alias {alias} (field {}) is listed twice",
                    position + 4
                )));
            }
            keys.push((line, Arc::new(Key::new(id, &material, enabled, aliases))));
        }
        Ok(KeyStore {
            keys: keys.into_iter().map(|(_, key)| key).collect(),
            managed: OnceLock::new(),
        })
    }

    /// How many keys the key file listed.
    pub fn file_key_count(&self) -> usize {
        self.keys.len()
    }

    /// The key with this id: a key file's, or the AWS-managed key.
    pub fn by_id(&self, id: KeyId) -> Option<Arc<Key>> {
        self.keys
            .iter()
            .find(|key| key.id == id)
            .cloned()
            .or_else(|| {
                self.managed
                    .get()
                    .filter(|(key, _)| key.id == id)
                    .map(|(key, _)| Arc::clone(key))
            })
    }

    /// The key `given` names (a key id, key ARN, alias or alias ARN), enabled or not. ARNs must
    /// name `region` and `account`. The AWS-managed key is found only once it exists.
    pub fn find(&self, given: &str, region: &str, account: &str) -> Option<Arc<Key>> {
        match parse_key_ref(given, region, account)? {
            KeyRef::Id(id) => self.keys.iter().find(|key| key.id == id).cloned(),
            KeyRef::Alias(alias) if alias == AWS_MANAGED_ALIAS => {
                self.managed.get().map(|(key, _)| Arc::clone(key))
            }
            KeyRef::Alias(alias) => self
                .keys
                .iter()
                .find(|key| key.aliases.iter().any(|known| known == alias))
                .cloned(),
        }
    }

    /// The key StartStreamEncryption may seal with: it must exist and be enabled, with AWS's
    /// error kinds. `alias/aws/kinesis` makes the AWS-managed key on first use; the caller
    /// persists the catalogue (which then holds it) before any frame is sealed with it.
    pub fn resolve_for_use(
        &self,
        given: &str,
        region: &str,
        account: &str,
    ) -> Result<Arc<Key>, KinesisError> {
        let managed = Self::names_managed(given, region, account);
        let key = match self.find(given, region, account) {
            Some(key) => key,
            None if managed => self.managed_or_create().map_err(|error| {
                tracing::error!(%error, "cannot make the AWS-managed key");
                KinesisError::internal(riffle_proto::error::INTERNAL_SERVICE_FAILURE)
            })?,
            None => return Err(key_not_found(given)),
        };
        if !key.enabled {
            return Err(key_disabled(&key, region, account));
        }
        Ok(key)
    }

    /// Whether `given` names the AWS-managed key (`alias/aws/kinesis`, or its alias ARN).
    pub fn names_managed(given: &str, region: &str, account: &str) -> bool {
        matches!(
            parse_key_ref(given, region, account),
            Some(KeyRef::Alias(AWS_MANAGED_ALIAS))
        )
    }

    /// A new AWS-managed key for the catalogue, not installed: a cluster node proposes it, and
    /// every node installs whichever the catalogue records first ([`KeyStore::install_managed`]).
    pub fn make_managed() -> Result<ManagedKey, SealError> {
        let id = KeyId::random()?;
        let material = random_bytes::<KEY_MATERIAL_BYTES>()?;
        Ok(ManagedKey {
            key_id: id.to_string(),
            material_hex: hex(&material),
        })
    }

    /// The AWS-managed key, made now if it does not exist yet.
    fn managed_or_create(&self) -> Result<Arc<Key>, SealError> {
        if let Some((key, _)) = self.managed.get() {
            return Ok(Arc::clone(key));
        }
        let id = KeyId::random()?;
        let material = random_bytes::<KEY_MATERIAL_BYTES>()?;
        let made = (
            Arc::new(Key::new(
                id,
                &material,
                true,
                vec![AWS_MANAGED_ALIAS.into()],
            )),
            ManagedKey {
                key_id: id.to_string(),
                material_hex: hex(&material),
            },
        );
        // The control-plane lock serialises callers; should two race, both get the winner.
        let _ = self.managed.set(made);
        Ok(self
            .managed
            .get()
            .map(|(key, _)| Arc::clone(key))
            .expect("set just now"))
    }

    /// Installs the AWS-managed key the catalogue kept.
    pub fn install_managed(&self, kept: &ManagedKey) -> Result<(), String> {
        let id = KeyId::parse(&kept.key_id)
            .ok_or("the AWS-managed key's id is not a UUID".to_owned())?;
        let material = parse_hex_material(&kept.material_hex)
            .ok_or("the AWS-managed key's material is not 64 hex digits".to_owned())?;
        if self.keys.iter().any(|key| key.id == id) {
            return Err(format!(
                "the key file defines key {id}, the id of the AWS-managed key"
            ));
        }
        let key = Arc::new(Key::new(
            id,
            &material,
            true,
            vec![AWS_MANAGED_ALIAS.into()],
        ));
        match self.managed.set((key, kept.clone())) {
            Ok(()) => Ok(()),
            Err(_) if self.managed.get().map(|(_, known)| known) == Some(kept) => Ok(()),
            Err(_) => Err("another AWS-managed key is installed already".into()),
        }
    }

    /// The AWS-managed key for the catalogue, once it exists.
    pub fn managed(&self) -> Option<&ManagedKey> {
        self.managed.get().map(|(_, kept)| kept)
    }
}

/// What a KeyId names, once its ARN (if any) is checked.
enum KeyRef<'a> {
    Id(KeyId),
    Alias(&'a str),
}

fn parse_key_ref<'a>(given: &'a str, region: &str, account: &str) -> Option<KeyRef<'a>> {
    let Some(rest) = given.strip_prefix("arn:") else {
        if given.starts_with("alias/") {
            return Some(KeyRef::Alias(given));
        }
        return KeyId::parse(given).map(KeyRef::Id);
    };
    let mut parts = rest.splitn(5, ':');
    let (partition, service, arn_region, arn_account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if !partition.starts_with("aws")
        || service != "kms"
        || arn_region != region
        || arn_account != account
    {
        return None;
    }
    if resource.starts_with("alias/") {
        return Some(KeyRef::Alias(resource));
    }
    KeyId::parse(resource.strip_prefix("key/")?).map(KeyRef::Id)
}

fn check_alias(alias: &str, field: usize) -> Result<(), String> {
    let Some(name) = alias.strip_prefix("alias/") else {
        return Err(format!(
            "field {field} is not an alias: aliases start with alias/"
        ));
    };
    if name.is_empty()
        || alias.chars().count() > ALIAS_CHARS_MAX
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_-".contains(c))
    {
        return Err(format!(
            "alias {} (field {field}) must be alias/ and up to {} letters, digits, /, _ or -",
            alias.escape_default(),
            ALIAS_CHARS_MAX - "alias/".len()
        ));
    }
    if alias.starts_with("alias/aws/") {
        return Err(format!(
            "alias {alias} (field {field}) is reserved for AWS-managed keys"
        ));
    }
    Ok(())
}

fn decode_material(text: &str) -> Option<[u8; KEY_MATERIAL_BYTES]> {
    if text.len() == 2 * KEY_MATERIAL_BYTES {
        return parse_hex_material(text);
    }
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    bytes.try_into().ok()
}

fn parse_hex_material(text: &str) -> Option<[u8; KEY_MATERIAL_BYTES]> {
    if text.len() != 2 * KEY_MATERIAL_BYTES {
        return None;
    }
    let mut material = [0u8; KEY_MATERIAL_BYTES];
    for (position, byte) in material.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(position * 2..position * 2 + 2)?, 16).ok()?;
    }
    Some(material)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn random_bytes<const N: usize>() -> Result<[u8; N], SealError> {
    let mut bytes = [0u8; N];
    // Never a fallback: a nonce or key from a guessable source would break the encryption.
    getrandom::fill(&mut bytes).map_err(|_| SealError::NoRandomness)?;
    Ok(bytes)
}

/// KMSNotFoundException for a KeyId nothing resolves.
pub fn key_not_found(given: &str) -> KinesisError {
    KinesisError::new(
        ErrorKind::KMSNotFoundException,
        Some(format!(
            "KMS key {given} does not exist: no key of the server's key file (--kms-keys) has \
             this key id, key ARN, alias or alias ARN."
        )),
    )
}

/// KMSDisabledException: KMS's own text (`<key ARN> is disabled.`).
pub fn key_disabled(key: &Key, region: &str, account: &str) -> KinesisError {
    KinesisError::new(
        ErrorKind::KMSDisabledException,
        Some(format!("{} is disabled.", key.arn(region, account))),
    )
}

/// Why a payload could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealError {
    /// The OS had no randomness for a nonce (never replaced by something guessable).
    NoRandomness,
    /// The payload is beyond what AES-GCM seals (frames are far smaller; a bug).
    TooLarge,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::NoRandomness => f.write_str("the OS gave no randomness for a nonce"),
            SealError::TooLarge => f.write_str("payload too large to seal"),
        }
    }
}

impl std::error::Error for SealError {}

/// Why a sealed payload could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Frame flags this version does not know.
    UnknownFlags(u16),
    /// Shorter than key id, nonce and tag.
    Short(usize),
    /// Sealed with a key the stream never used (the catalogue lists every key it did).
    UnknownKey(KeyId),
    /// The key is disabled in the key file: AWS answers KMSDisabledException.
    Disabled(KeyId),
    /// The tag does not verify: wrong material, or bytes changed or moved.
    Forged,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::UnknownFlags(flags) => write!(f, "unknown frame flags {flags:#06x}"),
            OpenError::Short(bytes) => write!(f, "sealed payload of {bytes} bytes is too short"),
            OpenError::UnknownKey(id) => write!(f, "sealed with key {id}, unknown to the stream"),
            OpenError::Disabled(id) => write!(f, "sealed with key {id}, which is disabled"),
            OpenError::Forged => f.write_str("the payload fails authentication"),
        }
    }
}

impl std::error::Error for OpenError {}

/// The key new frames are sealed with, and the KeyId as the client gave it.
#[derive(Debug, Clone)]
pub struct CurrentKey {
    pub key_id_given: String,
    pub key: Arc<Key>,
}

/// A stream's keys: every key its frames may be sealed with (kept for the stream's life, so
/// that frames stay readable after a rotation or StopStreamEncryption), and the one new frames
/// get while encryption is on.
#[derive(Debug, Clone)]
pub struct StreamCrypto {
    dir_id: String,
    keys: Vec<Arc<Key>>,
    current: Option<CurrentKey>,
    /// Set when this node cannot use the keys the catalogue lists (see
    /// [`StreamCrypto::unusable`]).
    unusable: Option<Box<Unusable>>,
}

/// The catalogue's keys of a stream this node cannot use, and why.
#[derive(Debug, Clone)]
pub struct Unusable {
    /// Why (names the stream and the key, never material).
    pub reason: String,
    /// The catalogue's entry, kept as it is so that this node never proposes it changed.
    pub encryption: Option<crate::meta::EncryptionMeta>,
    pub sealing_keys: Vec<crate::meta::SealingKeyMeta>,
}

impl StreamCrypto {
    pub fn new(dir_id: &str, keys: Vec<Arc<Key>>, current: Option<CurrentKey>) -> StreamCrypto {
        if let Some(current) = &current {
            assert!(
                keys.iter().any(|key| key.id == current.key.id),
                "the current key is one of the stream's keys"
            );
        }
        StreamCrypto {
            dir_id: dir_id.to_owned(),
            keys,
            current,
            unusable: None,
        }
    }

    /// The keys of a cluster's stream whose catalogue entry names a key this node's key file
    /// lacks (or holds other material under its id): the catalogue is already agreed, so the
    /// node cannot refuse it as a single node refuses to start. Puts refuse to store records
    /// unsealed, frames sealed with the missing key cannot be read, and the entry is kept
    /// as the catalogue has it. `keys` are the stream's keys this node does have.
    pub fn unusable(dir_id: &str, keys: Vec<Arc<Key>>, unusable: Unusable) -> StreamCrypto {
        StreamCrypto {
            dir_id: dir_id.to_owned(),
            keys,
            current: None,
            unusable: Some(Box::new(unusable)),
        }
    }

    /// Why this node cannot use the stream's keys, if it cannot.
    pub fn unusable_reason(&self) -> Option<&Unusable> {
        self.unusable.as_deref()
    }

    /// The stream's directory id, which the authenticated data binds.
    pub fn dir_id(&self) -> &str {
        &self.dir_id
    }

    /// Every key the stream's frames may be sealed with.
    pub fn keys(&self) -> &[Arc<Key>] {
        &self.keys
    }

    /// The key new frames get, `None` once encryption is stopped.
    pub fn current(&self) -> Option<&CurrentKey> {
        self.current.as_ref()
    }

    /// The sealer for one shard's frames, while encryption is on.
    pub fn sealer(&self, ordinal: u32) -> Option<Sealer<'_>> {
        self.current.as_ref().map(|current| Sealer {
            key: &current.key,
            dir_id: &self.dir_id,
            ordinal,
        })
    }

    /// The records of a sealed frame of shard `ordinal`, authenticated.
    pub fn open(&self, ordinal: u32, entry: &Entry) -> Result<Bytes, OpenError> {
        let index = match entry.meta.flags {
            FRAME_FLAG_SEALED => Some(entry.index),
            FRAME_FLAG_SEALED_UNINDEXED => None,
            flags => return Err(OpenError::UnknownFlags(flags)),
        };
        let payload = &entry.payload;
        if payload.len() < SEALED_OVERHEAD_BYTES {
            return Err(OpenError::Short(payload.len()));
        }
        let mut id = KeyId([0; KEY_ID_BYTES]);
        id.0.copy_from_slice(&payload[..KEY_ID_BYTES]);
        let key = self
            .keys
            .iter()
            .find(|key| key.id == id)
            .ok_or(OpenError::UnknownKey(id))?;
        if !key.enabled {
            return Err(OpenError::Disabled(id));
        }
        let nonce = Nonce::try_assume_unique_for_key(&payload[KEY_ID_BYTES..SEALED_HEADER_BYTES])
            .map_err(|_| OpenError::Forged)?;
        let aad = additional_data(id, &self.dir_id, ordinal, index, &entry.meta);
        let mut buffer = payload[SEALED_HEADER_BYTES..].to_vec();
        let plain_len = key
            .aead
            .open_in_place(nonce, Aad::from(&aad[..]), &mut buffer)
            .map_err(|_| OpenError::Forged)?
            .len();
        buffer.truncate(plain_len);
        Ok(Bytes::from(buffer))
    }
}

/// Seals the frames of one shard of an encrypted stream: [`Sealer::begin`] before the records
/// are encoded, [`Sealer::finish`] once the frame's index and header are known (under the
/// shard's writer lock).
#[derive(Debug, Clone, Copy)]
pub struct Sealer<'a> {
    key: &'a Key,
    dir_id: &'a str,
    ordinal: u32,
}

impl Sealer<'_> {
    /// Writes the key id and a fresh random nonce to the empty `payload`; the records follow.
    pub fn begin(&self, payload: &mut Vec<u8>) -> Result<(), SealError> {
        assert!(
            payload.is_empty(),
            "a sealed payload starts with its header"
        );
        let nonce = random_bytes::<NONCE_BYTES>()?;
        payload.extend_from_slice(&self.key.id.0);
        payload.extend_from_slice(&nonce);
        Ok(())
    }

    /// Seals the records that follow the header in place and appends the tag, for the frame
    /// `index` with header `meta`, whose flags it sets.
    pub fn finish(
        &self,
        payload: &mut Vec<u8>,
        index: u64,
        meta: &mut EntryMeta,
    ) -> Result<(), SealError> {
        self.seal(payload, Some(index), meta)
    }

    /// Seals as [`Sealer::finish`] does, for a frame whose index is not known yet (a frame
    /// for a replicated shard's group; see the module doc).
    pub fn finish_unindexed(
        &self,
        payload: &mut Vec<u8>,
        meta: &mut EntryMeta,
    ) -> Result<(), SealError> {
        self.seal(payload, None, meta)
    }

    fn seal(
        &self,
        payload: &mut Vec<u8>,
        index: Option<u64>,
        meta: &mut EntryMeta,
    ) -> Result<(), SealError> {
        assert!(
            payload.len() >= SEALED_HEADER_BYTES && payload[..KEY_ID_BYTES] == self.key.id.0,
            "finish follows begin"
        );
        meta.flags = match index {
            Some(_) => FRAME_FLAG_SEALED,
            None => FRAME_FLAG_SEALED_UNINDEXED,
        };
        let mut nonce = [0u8; NONCE_BYTES];
        nonce.copy_from_slice(&payload[KEY_ID_BYTES..SEALED_HEADER_BYTES]);
        let aad = additional_data(self.key.id, self.dir_id, self.ordinal, index, meta);
        let tag = self
            .key
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut payload[SEALED_HEADER_BYTES..],
            )
            .map_err(|_| SealError::TooLarge)?;
        payload.extend_from_slice(tag.as_ref());
        Ok(())
    }
}

/// The additional authenticated data of a frame (little-endian):
/// `AAD_CONTEXT | key_id [16] | dir_id_len u16 | dir_id | ordinal u32 | index u64 | flags u16 |
/// record_count u16 | ts_first_ms u64 | ts_max_ms u64`; for a frame sealed before its index was
/// known (`index` `None`), `AAD_CONTEXT_UNINDEXED` and the same without the index.
fn additional_data(
    id: KeyId,
    dir_id: &str,
    ordinal: u32,
    index: Option<u64>,
    meta: &EntryMeta,
) -> Vec<u8> {
    let context = match index {
        Some(_) => AAD_CONTEXT,
        None => AAD_CONTEXT_UNINDEXED,
    };
    let mut aad = Vec::with_capacity(context.len() + KEY_ID_BYTES + 2 + dir_id.len() + 32);
    aad.extend_from_slice(context);
    aad.extend_from_slice(&id.0);
    let dir_len = u16::try_from(dir_id.len()).expect("directory ids are short");
    aad.extend_from_slice(&dir_len.to_le_bytes());
    aad.extend_from_slice(dir_id.as_bytes());
    aad.extend_from_slice(&ordinal.to_le_bytes());
    if let Some(index) = index {
        aad.extend_from_slice(&index.to_le_bytes());
    }
    aad.extend_from_slice(&meta.flags.to_le_bytes());
    aad.extend_from_slice(&meta.record_count.to_le_bytes());
    aad.extend_from_slice(&meta.ts_first_ms.to_le_bytes());
    aad.extend_from_slice(&meta.ts_max_ms.to_le_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use riffle_log::FrameKind;
    use std::collections::HashSet;

    const ID_A: &str = "3f0b1c52-8a4e-4d36-9a57-0c2f1e6d8b41";
    const ID_B: &str = "0b4f5a5e-2d2e-4c56-9a57-1c2d3e4f5a6b";
    const HEX_A: &str = "9c0d5f8e2b7a41c6d3e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e";
    const REGION: &str = "us-east-1";
    const ACCOUNT: &str = "000000000000";

    fn store(text: &str) -> KeyStore {
        KeyStore::parse(text).unwrap_or_else(|error| panic!("{error}"))
    }

    fn key(id: &str, byte: u8) -> Arc<Key> {
        Arc::new(Key::new(
            KeyId::parse(id).unwrap(),
            &[byte; KEY_MATERIAL_BYTES],
            true,
            vec![],
        ))
    }

    fn meta() -> EntryMeta {
        EntryMeta {
            kind: FrameKind::Data,
            flags: 0,
            term: 1,
            leader: 1,
            record_count: 3,
            ts_first_ms: 1_700_000_000_000,
            ts_max_ms: 1_700_000_000_000,
        }
    }

    /// Seals `plaintext` as frame `index` of shard `ordinal` and returns the stored entry.
    fn seal(crypto: &StreamCrypto, ordinal: u32, index: u64, plaintext: &[u8]) -> Entry {
        let sealer = crypto.sealer(ordinal).expect("encryption is on");
        let mut payload = Vec::new();
        sealer.begin(&mut payload).unwrap();
        payload.extend_from_slice(plaintext);
        let mut meta = meta();
        sealer.finish(&mut payload, index, &mut meta).unwrap();
        assert_eq!(payload.len(), plaintext.len() + SEALED_OVERHEAD_BYTES);
        Entry {
            index,
            meta,
            payload: Bytes::from(payload),
        }
    }

    fn encrypted(dir_id: &str, key: &Arc<Key>) -> StreamCrypto {
        StreamCrypto::new(
            dir_id,
            vec![Arc::clone(key)],
            Some(CurrentKey {
                key_id_given: key.id.to_string(),
                key: Arc::clone(key),
            }),
        )
    }

    #[test]
    fn a_sealed_frame_opens_to_its_records_and_hides_them() {
        let key = key(ID_A, 7);
        let crypto = encrypted("dir", &key);
        let plaintext = b"plaintext marker, repeated: plaintext marker".repeat(10);
        let entry = seal(&crypto, 2, 41, &plaintext);
        assert_eq!(entry.meta.flags, FRAME_FLAG_SEALED);
        assert_eq!(&entry.payload[..KEY_ID_BYTES], &key.id.0);
        assert!(
            !entry
                .payload
                .windows(b"marker".len())
                .any(|window| window == b"marker"),
            "no plaintext in the sealed payload"
        );
        assert_eq!(crypto.open(2, &entry).unwrap(), Bytes::from(plaintext));
    }

    #[test]
    fn frames_stay_readable_after_a_rotation_and_after_stopping() {
        let (old, new) = (key(ID_A, 1), key(ID_B, 2));
        let before = encrypted("dir", &old);
        let entry = seal(&before, 0, 1, b"old");
        let rotated = StreamCrypto::new(
            "dir",
            vec![Arc::clone(&old), Arc::clone(&new)],
            Some(CurrentKey {
                key_id_given: "alias/new".into(),
                key: Arc::clone(&new),
            }),
        );
        let newer = seal(&rotated, 0, 2, b"new");
        assert_eq!(&newer.payload[..KEY_ID_BYTES], &new.id.0);
        let stopped = StreamCrypto::new("dir", vec![old, new], None);
        assert!(stopped.sealer(0).is_none());
        assert_eq!(&stopped.open(0, &entry).unwrap()[..], b"old");
        assert_eq!(&stopped.open(0, &newer).unwrap()[..], b"new");
    }

    #[test]
    fn the_wrong_key_is_rejected() {
        let entry = seal(&encrypted("dir", &key(ID_A, 1)), 0, 1, b"secret");
        // Same id, other material: the tag fails.
        let impostor = encrypted("dir", &key(ID_A, 2));
        assert_eq!(impostor.open(0, &entry), Err(OpenError::Forged));
        // A stream that never used the key cannot even name it.
        let other = encrypted("dir", &key(ID_B, 1));
        assert_eq!(
            other.open(0, &entry),
            Err(OpenError::UnknownKey(KeyId::parse(ID_A).unwrap()))
        );
    }

    #[test]
    fn every_tampered_byte_is_rejected() {
        let crypto = encrypted("dir", &key(ID_A, 1));
        let entry = seal(&crypto, 0, 1, b"some records");
        for position in 0..entry.payload.len() {
            let mut bytes = entry.payload.to_vec();
            bytes[position] ^= 0x01;
            let tampered = Entry {
                payload: Bytes::from(bytes),
                ..entry.clone()
            };
            assert!(
                crypto.open(0, &tampered).is_err(),
                "a flip at byte {position} went unnoticed"
            );
        }
        let short = Entry {
            payload: entry.payload.slice(..SEALED_OVERHEAD_BYTES - 1),
            ..entry.clone()
        };
        assert!(matches!(crypto.open(0, &short), Err(OpenError::Short(_))));
    }

    #[test]
    fn an_unindexed_frame_is_bound_to_its_shard_and_header_but_not_its_index() {
        let key = key(ID_A, 1);
        let crypto = encrypted("dir-a", &key);
        let sealer = crypto.sealer(3).expect("encryption is on");
        let mut payload = Vec::new();
        sealer.begin(&mut payload).unwrap();
        payload.extend_from_slice(b"replicated records");
        let mut meta = meta();
        sealer.finish_unindexed(&mut payload, &mut meta).unwrap();
        assert_eq!(meta.flags, FRAME_FLAG_SEALED_UNINDEXED);
        // The group gives it an index (and its term) afterwards: any index opens.
        let entry = |index, meta| Entry {
            index,
            meta,
            payload: Bytes::from(payload.clone()),
        };
        for index in [1, 77] {
            let stored = entry(index, EntryMeta { term: 9, ..meta });
            assert_eq!(&crypto.open(3, &stored).unwrap()[..], b"replicated records");
        }
        assert_eq!(crypto.open(4, &entry(1, meta)), Err(OpenError::Forged));
        let elsewhere = encrypted("dir-b", &key);
        assert_eq!(elsewhere.open(3, &entry(1, meta)), Err(OpenError::Forged));
        for changed in [
            EntryMeta {
                record_count: 4,
                ..meta
            },
            EntryMeta {
                ts_first_ms: meta.ts_first_ms + 1,
                ..meta
            },
            EntryMeta {
                ts_max_ms: meta.ts_max_ms + 1,
                ..meta
            },
            // Claiming the index-bound form does not verify either.
            EntryMeta {
                flags: FRAME_FLAG_SEALED,
                ..meta
            },
        ] {
            assert_eq!(
                crypto.open(3, &entry(1, changed)),
                Err(OpenError::Forged),
                "{changed:?}"
            );
        }
        // And an index-bound frame does not pass as an unindexed one.
        let bound = seal(&crypto, 3, 10, b"records");
        let relabelled = Entry {
            meta: EntryMeta {
                flags: FRAME_FLAG_SEALED_UNINDEXED,
                ..bound.meta
            },
            ..bound
        };
        assert_eq!(crypto.open(3, &relabelled), Err(OpenError::Forged));
    }

    #[test]
    fn a_frame_moved_to_another_place_or_header_is_rejected() {
        let key = key(ID_A, 1);
        let crypto = encrypted("dir-a", &key);
        let entry = seal(&crypto, 3, 10, b"records");
        assert!(crypto.open(3, &entry).is_ok());
        // Another shard of the same stream.
        assert_eq!(crypto.open(4, &entry), Err(OpenError::Forged));
        // Another log index.
        let moved = Entry {
            index: 11,
            ..entry.clone()
        };
        assert_eq!(crypto.open(3, &moved), Err(OpenError::Forged));
        // Another stream (directory) with the same key.
        let elsewhere = encrypted("dir-b", &key);
        assert_eq!(elsewhere.open(3, &entry), Err(OpenError::Forged));
        // Changed header fields.
        let changes = [
            EntryMeta {
                record_count: 4,
                ..entry.meta
            },
            EntryMeta {
                ts_first_ms: entry.meta.ts_first_ms + 1,
                ..entry.meta
            },
            EntryMeta {
                ts_max_ms: entry.meta.ts_max_ms + 1,
                ..entry.meta
            },
        ];
        for meta in changes {
            let changed = Entry {
                meta,
                ..entry.clone()
            };
            assert_eq!(crypto.open(3, &changed), Err(OpenError::Forged), "{meta:?}");
        }
        let unknown = Entry {
            meta: EntryMeta {
                flags: FRAME_FLAG_SEALED | 0x0100,
                ..entry.meta
            },
            ..entry.clone()
        };
        assert_eq!(
            crypto.open(3, &unknown),
            Err(OpenError::UnknownFlags(0x0101))
        );
    }

    #[test]
    fn nonces_are_unique() {
        let crypto = encrypted("dir", &key(ID_A, 1));
        let sealer = crypto.sealer(0).unwrap();
        let mut nonces = HashSet::new();
        for _ in 0..10_000 {
            let mut payload = Vec::new();
            sealer.begin(&mut payload).unwrap();
            assert!(nonces.insert(payload[KEY_ID_BYTES..SEALED_HEADER_BYTES].to_vec()));
        }
    }

    #[test]
    fn a_disabled_key_opens_nothing() {
        let id = KeyId::parse(ID_A).unwrap();
        let enabled = store(&format!("{ID_A} enabled {HEX_A}")).by_id(id).unwrap();
        let entry = seal(&encrypted("dir", &enabled), 0, 1, b"x");
        let disabled = store(&format!("{ID_A} disabled {HEX_A}"))
            .by_id(id)
            .unwrap();
        assert!(!disabled.is_enabled());
        let crypto = StreamCrypto::new("dir", vec![disabled], None);
        assert_eq!(crypto.open(0, &entry), Err(OpenError::Disabled(id)));
    }

    #[test]
    fn key_ids_parse_strictly_and_print_lowercase() {
        let id = KeyId::parse(&ID_A.to_uppercase()).unwrap();
        assert_eq!(id.to_string(), ID_A);
        for bad in [
            "",
            "3f0b1c528a4e4d369a570c2f1e6d8b41",
            "3f0b1c52-8a4e-4d36-9a57-0c2f1e6d8b4",
            "3f0b1c52-8a4e-4d36-9a57-0c2f1e6d8b411",
            "3f0b1c52_8a4e-4d36-9a57-0c2f1e6d8b41",
            "3f0b1c52-8a4e-4d36-9a57-0c2f1e6d8bx1",
            "{3f0b1c52-8a4e-4d36-9a57-0c2f1e6d8b4}",
        ] {
            assert!(KeyId::parse(bad).is_none(), "{bad:?}");
        }
        let random = KeyId::random().unwrap();
        assert_eq!(KeyId::parse(&random.to_string()), Some(random));
        assert_eq!(&random.to_string()[14..15], "4");
    }

    #[test]
    fn a_key_file_parses_with_comments_aliases_and_both_encodings() {
        use base64::Engine as _;
        let base64 = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
        let store = store(&format!(
            "# riffle keys\n\n  {ID_A}  enabled  {HEX_A}  alias/orders alias/team/billing # main\n\
             {ID_B}\tDisabled\t{base64}\n"
        ));
        assert_eq!(store.file_key_count(), 2);
        let a = store.find(ID_A, REGION, ACCOUNT).unwrap();
        assert!(a.is_enabled());
        let b = store.find(ID_B, REGION, ACCOUNT).unwrap();
        assert!(!b.is_enabled());
        // Same material, same check value, whichever encoding the file used.
        let again = KeyStore::parse(&format!("{ID_B} enabled {}", hex(&[5u8; 32]))).unwrap();
        assert_eq!(again.find(ID_B, REGION, ACCOUNT).unwrap().check, b.check);
        assert_ne!(a.check, b.check);
        assert!(format!("{store:?}").contains("alias/orders"));
        assert!(!format!("{store:?}").contains(HEX_A));
        assert!(!format!("{a:?}").contains(HEX_A));
    }

    #[test]
    fn key_file_errors_name_the_line_and_never_the_material() {
        let cases = [
            (format!("{ID_A} enabled"), 1, "found 2 field(s)"),
            (format!("\n{HEX_A} enabled {ID_A}"), 2, "key id (field 1)"),
            (format!("{ID_A} on {HEX_A}"), 1, "state (field 2)"),
            (
                format!("{ID_A} enabled {}", &HEX_A[1..]),
                1,
                "key material (field 3)",
            ),
            (
                format!("{ID_A} enabled {HEX_A}zz"),
                1,
                "key material (field 3)",
            ),
            (
                format!("{ID_A} enabled {HEX_A} {HEX_A}"),
                1,
                "field 4 is not an alias",
            ),
            (
                format!("{ID_A} enabled {HEX_A} alias/"),
                1,
                "must be alias/",
            ),
            (
                format!("{ID_A} enabled {HEX_A} alias/a*b"),
                1,
                "must be alias/",
            ),
            (
                format!("{ID_A} enabled {HEX_A} alias/aws/kinesis"),
                1,
                "reserved",
            ),
            (
                format!("{ID_A} enabled {HEX_A} alias/x alias/x"),
                1,
                "listed twice",
            ),
            (
                format!("{ID_A} enabled {HEX_A}\n# x\n{ID_A} enabled {HEX_A}"),
                3,
                "already defined on line 1",
            ),
            (
                format!("{ID_A} enabled {HEX_A} alias/x\n{ID_B} enabled {HEX_A} alias/x"),
                2,
                "already names the key on line 1",
            ),
        ];
        for (text, line, needle) in cases {
            let error = match KeyStore::parse(&text) {
                Ok(_) => panic!("{text:?} parsed"),
                Err(error) => error,
            };
            assert_eq!(error.line, Some(line), "{text:?}: {error}");
            let shown = error.to_string();
            assert!(shown.contains(needle), "{text:?}: {shown}");
            assert!(!shown.contains(&HEX_A[1..]), "material leaked: {shown}");
        }
        assert_eq!(store("").file_key_count(), 0);
        assert_eq!(store("# nothing\n   \n").file_key_count(), 0);
    }

    #[test]
    fn key_ids_resolve_in_every_form_aws_accepts() {
        let store = store(&format!("{ID_A} enabled {HEX_A} alias/orders"));
        let forms = [
            ID_A.to_owned(),
            ID_A.to_uppercase(),
            format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{ID_A}"),
            "alias/orders".to_owned(),
            format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/orders"),
        ];
        for given in forms {
            let found = store.find(&given, REGION, ACCOUNT);
            assert_eq!(
                found.map(|key| key.id.to_string()).as_deref(),
                Some(ID_A),
                "{given}"
            );
        }
        let misses = [
            ID_B.to_owned(),
            "alias/other".to_owned(),
            "alias/Orders".to_owned(),
            format!("arn:aws:kms:eu-west-1:{ACCOUNT}:key/{ID_A}"),
            format!("arn:aws:kms:{REGION}:111111111111:alias/orders"),
            format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:key/{ID_A}"),
            format!("arn:aws:kms:{REGION}:{ACCOUNT}:{ID_A}"),
            format!("key/{ID_A}"),
            "orders".to_owned(),
            String::new(),
        ];
        for given in misses {
            assert!(store.find(&given, REGION, ACCOUNT).is_none(), "{given}");
            let error = store.resolve_for_use(&given, REGION, ACCOUNT).unwrap_err();
            assert_eq!(error.kind, ErrorKind::KMSNotFoundException, "{given}");
        }
    }

    #[test]
    fn a_disabled_key_cannot_be_used() {
        let store = store(&format!("{ID_A} disabled {HEX_A} alias/off"));
        let error = store
            .resolve_for_use("alias/off", REGION, ACCOUNT)
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::KMSDisabledException);
        assert_eq!(
            error.message.as_deref(),
            Some(format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{ID_A} is disabled.").as_str())
        );
    }

    #[test]
    fn the_aws_managed_key_is_made_once_and_survives_in_the_catalogue() {
        let store = KeyStore::empty();
        assert!(store.find(AWS_MANAGED_ALIAS, REGION, ACCOUNT).is_none());
        assert!(store.managed().is_none());
        let made = store
            .resolve_for_use(AWS_MANAGED_ALIAS, REGION, ACCOUNT)
            .unwrap();
        let arn = format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/aws/kinesis");
        let again = store.resolve_for_use(&arn, REGION, ACCOUNT).unwrap();
        assert_eq!(made.id, again.id);
        let kept = store.managed().unwrap().clone();
        assert_eq!(kept.key_id, made.id.to_string());

        // A restart installs the kept key: same id, same material.
        let restarted = KeyStore::empty();
        restarted.install_managed(&kept).unwrap();
        let installed = restarted.by_id(made.id).unwrap();
        assert_eq!(installed.check, made.check);
        assert!(restarted.install_managed(&kept).is_ok(), "idempotent");
        let other = ManagedKey {
            key_id: ID_B.into(),
            material_hex: HEX_A.into(),
        };
        assert!(restarted.install_managed(&other).is_err());
        let entry = seal(&encrypted("dir", &made), 0, 1, b"managed");
        let reopened = StreamCrypto::new("dir", vec![installed], None);
        assert_eq!(&reopened.open(0, &entry).unwrap()[..], b"managed");
    }
}
