//! Who a request is: the `--credentials` file, and [`Auth::caller`], which the HTTP layer asks
//! for every request once its body is in and before anything runs.
//!
//! **With a credentials file** every request must carry a valid SigV4 signature
//! ([`riffle_proto::sigv4::verify`]: header or presigned query form, 5-minute clock skew);
//! the key's account owns what the request creates and is all it can see, and its principal
//! (`arn:aws:iam::ACCOUNT:user/NAME`, or `…:root` for a key without a name) is handed on for
//! resource policies. A refusal is AWS's error (MissingAuthenticationToken,
//! IncompleteSignature, UnrecognizedClient, InvalidSignature) and nothing is executed.
//!
//! **Without one** (anonymous mode) any signature, or none, is accepted, as kinesalite and
//! kinesis-mock do: a 12-digit access key id names the account, anything else is the
//! `--account-id` account. `main.rs` refuses to listen on a non-loopback address in this mode
//! unless `--allow-anonymous` is given.
//!
//! **The file** has one access key per line, fields separated by spaces or tabs:
//!
//! ```text
//! # ACCESS_KEY_ID         SECRET_ACCESS_KEY                          ACCOUNT_ID    [PRINCIPAL]
//! AKIAIOSFODNN7EXAMPLE    wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY   123456789012  alice
//! AKIAI44QH8DHBEXAMPLE    je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY   210987654321
//! ```
//!
//! Blank lines and lines starting with `#` are ignored. Key ids are 1–128 letters, digits,
//! `_` or `-`; account ids exactly 12 digits; principal names IAM user names (1–64 of letters,
//! digits and `+=,.@_-`). A malformed line, a duplicate key id or a file without keys refuses
//! the start with the file and line; secrets never appear in a message, a log line or a
//! `Debug` output.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use riffle_core::service::Caller;
use riffle_core::Node;
use riffle_proto::sigv4::{self, SecretKey, SignedRequest};
use riffle_proto::KinesisError;

/// Longest access key id accepted (AWS: 16–128 characters).
const ACCESS_KEY_ID_CHARS_MAX: usize = 128;
/// Longest IAM user name.
const PRINCIPAL_NAME_CHARS_MAX: usize = 64;
/// What a credentials line holds, for error messages.
const LINE_SHAPE: &str = "ACCESS_KEY_ID SECRET_ACCESS_KEY ACCOUNT_ID [PRINCIPAL_NAME]";

/// One configured access key.
pub struct AccessKey {
    access_key_id: String,
    secret_access_key: String,
    account: String,
    principal_name: Option<String>,
}

impl SecretKey for AccessKey {
    fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("account", &self.account)
            .field("principal_name", &self.principal_name)
            .finish()
    }
}

/// The access keys of a credentials file, by key id.
#[derive(Debug)]
pub struct Credentials {
    keys: HashMap<String, AccessKey>,
}

impl Credentials {
    /// Reads and parses `path`. The second value is a warning to log when the file is
    /// readable by its group or by others.
    pub fn load(path: &Path) -> Result<(Credentials, Option<String>), String> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read the credentials file {shown}: {error}"))?;
        let credentials = Credentials::parse(&text)
            .map_err(|error| format!("credentials file {shown}: {error}"))?;
        Ok((credentials, permissions_warning(path)))
    }

    /// Parses the file's text; an error about a line starts with it (`line 3: …`).
    pub fn parse(text: &str) -> Result<Credentials, String> {
        let mut keys: HashMap<String, AccessKey> = HashMap::new();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = trimmed.split_ascii_whitespace().collect();
            let key = parse_line(&fields).map_err(|message| format!("line {number}: {message}"))?;
            if let Some(earlier) = first_line.get(&key.access_key_id) {
                return Err(format!(
                    "line {number}: access key id {} is already defined on line {earlier}",
                    key.access_key_id
                ));
            }
            first_line.insert(key.access_key_id.clone(), number);
            keys.insert(key.access_key_id.clone(), key);
        }
        if keys.is_empty() {
            return Err(format!(
                "no access keys in the file (one per line: {LINE_SHAPE})"
            ));
        }
        Ok(Credentials { keys })
    }

    /// How many keys the file defines.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    fn get(&self, access_key_id: &str) -> Option<&AccessKey> {
        self.keys.get(access_key_id)
    }
}

/// One non-comment line, already split into fields. Messages never quote the secret.
fn parse_line(fields: &[&str]) -> Result<AccessKey, String> {
    let (access_key_id, secret, account, principal_name) = match fields {
        [id, secret, account] => (*id, *secret, *account, None),
        [id, secret, account, principal] => (*id, *secret, *account, Some(*principal)),
        _ => {
            return Err(format!(
                "expected {LINE_SHAPE}, found {} field(s)",
                fields.len()
            ))
        }
    };
    let id_ok = (1..=ACCESS_KEY_ID_CHARS_MAX).contains(&access_key_id.len())
        && access_key_id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if !id_ok {
        return Err(format!(
            "access key id {access_key_id:?} must be 1 to {ACCESS_KEY_ID_CHARS_MAX} letters, \
             digits, '_' or '-'"
        ));
    }
    if account.len() != 12 || !account.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!(
            "account id {account:?} of access key {access_key_id} must be exactly 12 digits"
        ));
    }
    if let Some(name) = principal_name {
        let name_ok = (1..=PRINCIPAL_NAME_CHARS_MAX).contains(&name.chars().count())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        if !name_ok {
            return Err(format!(
                "principal name {name:?} of access key {access_key_id} must be an IAM user \
                 name: 1 to {PRINCIPAL_NAME_CHARS_MAX} letters, digits or +=,.@_-"
            ));
        }
    }
    Ok(AccessKey {
        access_key_id: access_key_id.to_owned(),
        secret_access_key: secret.to_owned(),
        account: account.to_owned(),
        principal_name: principal_name.map(str::to_owned),
    })
}

#[cfg(unix)]
fn permissions_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o044 != 0).then(|| {
        format!(
            "the credentials file {} is readable by its group or by others (mode {:o}); \
             `chmod 600` it so only the server's user can read the secrets",
            path.display(),
            mode & 0o777
        )
    })
}

#[cfg(not(unix))]
fn permissions_warning(_path: &Path) -> Option<String> {
    None
}

/// How requests are authenticated: the one type the HTTP layer consults.
pub enum Auth {
    /// No credentials file: any signature (or none) is accepted.
    Anonymous,
    /// Every request must be signed by one of these keys.
    Keys(Credentials),
}

impl Auth {
    /// The caller of a request whose head is `parts` and whose whole body is `body`, or the
    /// AWS error that refuses it.
    pub fn caller(
        &self,
        node: &Node,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Result<Caller, KinesisError> {
        let headers: Vec<(&str, &[u8])> = parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .collect();
        let request = SignedRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or_default(),
            authority: parts.uri.authority().map(|authority| authority.as_str()),
            headers: &headers,
            body,
        };
        let region = node.config.region.clone();
        match self {
            Auth::Anonymous => {
                let access_key_id = sigv4::claimed_access_key_id(&request).unwrap_or_default();
                let names_account = access_key_id.len() == 12
                    && access_key_id.bytes().all(|byte| byte.is_ascii_digit());
                let account = if names_account {
                    access_key_id
                } else {
                    node.config.default_account.clone()
                };
                Ok(Caller::new(account, region, None))
            }
            Auth::Keys(credentials) => {
                let verified = sigv4::verify(&request, now_ms(), |id| credentials.get(id))?;
                if verified.region != region {
                    tracing::debug!(
                        signed_region = %verified.region,
                        access_key_id = %verified.access_key_id,
                        "request signed for another region; serving it in {region}"
                    );
                }
                let key = verified.key;
                Ok(Caller::new(
                    key.account.clone(),
                    region,
                    key.principal_name.as_deref(),
                ))
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credentials_file_parses_with_comments_and_principals() {
        let credentials = Credentials::parse(
            "# riffle keys\n\
             \n\
             AKIAALICE  s3cr3t/with+slash  123456789012  alice\n\
             \tAKIA_BOB-2\tother\t210987654321   \n",
        )
        .expect("valid file");
        assert_eq!(credentials.len(), 2);
        let alice = credentials.get("AKIAALICE").expect("alice");
        assert_eq!(alice.secret_access_key(), "s3cr3t/with+slash");
        assert_eq!(alice.account, "123456789012");
        assert_eq!(alice.principal_name.as_deref(), Some("alice"));
        let bob = credentials.get("AKIA_BOB-2").expect("bob");
        assert_eq!(bob.principal_name, None);
        assert!(
            credentials.get("AKIAalice").is_none(),
            "key ids are case-sensitive"
        );
    }

    #[test]
    fn malformed_files_are_refused_with_the_line_and_without_the_secret() {
        let cases = [
            ("AKID topsecret\n", "line 1: expected"),
            (
                "# c\nAKID topsecret 123456789012 alice extra\n",
                "line 2: expected",
            ),
            (
                "AKID topsecret 12345678901\n",
                "line 1: account id \"12345678901\"",
            ),
            ("AKID topsecret 12345678901a\n", "line 1: account id"),
            (
                "AK/ID topsecret 123456789012\n",
                "line 1: access key id \"AK/ID\"",
            ),
            (
                "AKID topsecret 123456789012 al!ce\n",
                "line 1: principal name \"al!ce\"",
            ),
            (
                "AKID topsecret 123456789012\n\nAKID topsecret2 210987654321\n",
                "line 3: access key id AKID is already defined on line 1",
            ),
            ("# only a comment\n\n", "no access keys in the file"),
        ];
        for (text, expected) in cases {
            let error = Credentials::parse(text).expect_err(text);
            assert!(error.starts_with(expected), "{text:?}: {error}");
            assert!(
                !error.contains("topsecret"),
                "{text:?} leaks the secret: {error}"
            );
        }
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let credentials = Credentials::parse("AKID topsecret 123456789012\n").unwrap();
        let shown = format!("{credentials:?}");
        assert!(
            shown.contains("AKID") && !shown.contains("topsecret"),
            "{shown}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn group_or_world_readable_files_get_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(&path, "AKID secret 123456789012\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (_, warning) = Credentials::load(&path).unwrap();
        assert_eq!(warning, None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_, warning) = Credentials::load(&path).unwrap();
        assert!(warning.unwrap().contains("mode 644"));
        let missing = Credentials::load(&dir.path().join("absent")).unwrap_err();
        assert!(
            missing.starts_with("cannot read the credentials file"),
            "{missing}"
        );
    }
}
