//! Server-side encryption of streams: StartStreamEncryption and StopStreamEncryption with
//! AWS's rules, what a put seals with, and how a stream's keys are persisted and restored.
//!
//! The cryptography and the key store are in [`crate::crypto`]; this module is the control
//! plane around them.
//!
//! **Semantics.** StartStreamEncryption takes EncryptionType `KMS` (NONE is an
//! InvalidArgumentException) and a KeyId that resolves to an enabled key (KMSNotFoundException,
//! KMSDisabledException); the stream must be ACTIVE (ResourceInUseException). Calling it on an
//! encrypted stream changes the key, as on AWS. The choice is persisted in the catalogue before
//! it is published, so every put that starts after the call returns is sealed; AWS takes a few
//! seconds to get there, riffle none. Afterwards the stream shows `UPDATING` for
//! `--update-window-ms`, as after a reshard. StopStreamEncryption wants the same EncryptionType
//! and a KeyId naming the key in use (the KeyId as given, or any other form of the same key);
//! AWS's answer to a mismatch is not documented, so riffle is strict and refuses it with
//! InvalidArgumentException, as it refuses stopping a stream that is not encrypted. Each call
//! may succeed 25 times per stream in a rolling 24 hours (LimitExceededException), counted in
//! memory like UpdateShardCount's ten.
//!
//! **Keys across restarts.** The catalogue lists every key a stream ever sealed frames with
//! and its check value (HMAC of a constant under the key). A start that cannot provide one of
//! them, or provides other material under its id, is refused with the stream and key named:
//! AWS cannot lose a key, and serving errors (or nothing) for records a key file forgot is
//! worse than not starting. A key that is present but `disabled` is the operator's way to cut
//! access: puts to a stream sealing with it and reads of frames sealed with it answer
//! KMSDisabledException, as AWS does for a disabled KMS key.

use std::sync::{Arc, Mutex};

use riffle_proto::ops::EncryptionType;

use crate::control::{self, Caller};
use crate::crypto::{self, CurrentKey, KeyId, KeyStore, StreamCrypto};
use crate::meta::{EncryptionMeta, SealingKeyMeta, StreamMeta};
use crate::node::{now_ms, Node, Stream, StreamState};
use crate::Error;

/// StartStreamEncryption (and StopStreamEncryption) successes per stream per rolling 24 h.
pub const ENCRYPTION_CHANGES_PER_DAY_MAX: u32 = 25;

const DAY_MS: u64 = 24 * 3_600_000;

/// When StartStreamEncryption and StopStreamEncryption succeeded within the last 24 hours.
/// In memory only: a restart forgets them, which errs on the side of allowing a change.
#[derive(Debug, Default)]
pub struct ChangeLog {
    starts_ms: Mutex<Vec<u64>>,
    stops_ms: Mutex<Vec<u64>>,
}

impl ChangeLog {
    fn list(&self, stop: bool) -> std::sync::MutexGuard<'_, Vec<u64>> {
        let list = if stop {
            &self.stops_ms
        } else {
            &self.starts_ms
        };
        list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a change at `now_ms`; refuses it (and forgets it) past the daily limit.
    fn admit(&self, stop: bool, now_ms: u64) -> bool {
        let mut list = self.list(stop);
        list.retain(|at| now_ms.saturating_sub(*at) < DAY_MS);
        if list.len() as u32 >= ENCRYPTION_CHANGES_PER_DAY_MAX {
            return false;
        }
        list.push(now_ms);
        true
    }

    /// Takes back the change just admitted (it failed).
    fn forget_last(&self, stop: bool) {
        self.list(stop).pop();
    }
}

fn encryption_type_invalid(operation: &str, given: &str) -> Error {
    Error::invalid_argument(format!(
        "EncryptionType {given} is not valid for {operation}: the only valid value is KMS."
    ))
}

fn too_many_changes(operation: &str, stream: &Stream) -> Error {
    Error::limit_exceeded(format!(
        "Exceeded the limit of {ENCRYPTION_CHANGES_PER_DAY_MAX} {operation} calls per rolling 24 \
         hours for stream {} under account {}.",
        stream.name, stream.account
    ))
}

/// StartStreamEncryption: seal every record written from now on with the key `key_id` names.
pub async fn start(
    node: &Node,
    caller: &Caller,
    stream: &Arc<Stream>,
    encryption_type: &str,
    key_id: &str,
) -> Result<(), Error> {
    const OPERATION: &str = "StartStreamEncryption";
    if encryption_type != "KMS" {
        return Err(encryption_type_invalid(OPERATION, encryption_type));
    }
    let _control = node.control().await;
    control::check_active(node, stream)?;
    refuse_unusable(stream)?;
    if node.cluster().is_some()
        && node.keys.managed().is_none()
        && KeyStore::names_managed(key_id, &caller.region, &caller.account)
    {
        record_managed_key(node).await?;
    }
    let key = node
        .keys
        .resolve_for_use(key_id, &caller.region, &caller.account)?;
    if !stream.encryption_changes.admit(false, now_ms()) {
        return Err(too_many_changes(OPERATION, stream));
    }
    let state = stream.state();
    let mut keys = state
        .crypto
        .as_ref()
        .map(|crypto| crypto.keys().to_vec())
        .unwrap_or_default();
    if !keys.iter().any(|known| known.id() == key.id()) {
        keys.push(Arc::clone(&key));
    }
    let crypto = StreamCrypto::new(
        &stream.dir_id,
        keys,
        Some(CurrentKey {
            key_id_given: key_id.to_owned(),
            key,
        }),
    );
    let result = node
        .update_stream(stream, |state| state.crypto = Some(Arc::new(crypto)))
        .await;
    if result.is_err() {
        stream.encryption_changes.forget_last(false);
    }
    result?;
    stream.mark_updating(node.config.update_window);
    Ok(())
}

/// StopStreamEncryption: records written from now on are stored as they are; those sealed
/// before stay sealed and readable.
pub async fn stop(
    node: &Node,
    caller: &Caller,
    stream: &Arc<Stream>,
    encryption_type: &str,
    key_id: &str,
) -> Result<(), Error> {
    const OPERATION: &str = "StopStreamEncryption";
    if encryption_type != "KMS" {
        return Err(encryption_type_invalid(OPERATION, encryption_type));
    }
    let _control = node.control().await;
    control::check_active(node, stream)?;
    refuse_unusable(stream)?;
    let state = stream.state();
    let Some(crypto) = state.crypto.as_ref() else {
        return Err(not_encrypted(stream));
    };
    let Some(current) = crypto.current() else {
        return Err(not_encrypted(stream));
    };
    let names_current = key_id == current.key_id_given
        || node
            .keys
            .find(key_id, &caller.region, &caller.account)
            .is_some_and(|key| key.id() == current.key.id());
    if !names_current {
        return Err(Error::invalid_argument(format!(
            "KeyId {key_id} is not the key stream {} under account {} is encrypted with.",
            stream.name, stream.account
        )));
    }
    if !stream.encryption_changes.admit(true, now_ms()) {
        return Err(too_many_changes(OPERATION, stream));
    }
    let stopped = StreamCrypto::new(&stream.dir_id, crypto.keys().to_vec(), None);
    let result = node
        .update_stream(stream, |state| state.crypto = Some(Arc::new(stopped)))
        .await;
    if result.is_err() {
        stream.encryption_changes.forget_last(true);
    }
    result?;
    stream.mark_updating(node.config.update_window);
    Ok(())
}

/// In a cluster, the first use of `alias/aws/kinesis` proposes a new AWS-managed key to the
/// catalogue. The catalogue keeps the first one any node proposed, and every node installs
/// that one as it applies it (`Node::apply_catalogue`), this one included before `propose`
/// returns; so two nodes that raced to make it end up with the same key, and no node ever
/// seals with a key the others do not have.
async fn record_managed_key(node: &Node) -> Result<(), Error> {
    let candidate = KeyStore::make_managed().map_err(|error| {
        tracing::error!(%error, "cannot make the AWS-managed key");
        Error::internal(riffle_proto::error::INTERNAL_SERVICE_FAILURE)
    })?;
    if let Err(error) = node
        .propose(crate::catalogue::Command::SetManagedKey { key: candidate })
        .await
    {
        // Refused when another node's key was recorded first, which is as good.
        tracing::debug!(%error, "the AWS-managed key proposed here was not recorded");
    }
    if node.keys.managed().is_none() {
        return Err(Error::internal(
            "the cluster has not recorded the AWS-managed key yet; try again",
        ));
    }
    Ok(())
}

/// KMSNotFoundException for a change to a stream whose keys this node cannot use: the
/// change would drop the keys it does not have from the catalogue.
fn refuse_unusable(stream: &Stream) -> Result<(), Error> {
    match stream
        .state()
        .crypto
        .as_deref()
        .and_then(StreamCrypto::unusable_reason)
    {
        Some(unusable) => Err(unusable_error(unusable)),
        None => Ok(()),
    }
}

fn unusable_error(unusable: &crypto::Unusable) -> Error {
    Error::new(
        riffle_proto::ErrorKind::KMSNotFoundException,
        Some(format!(
            "{}. Every node of a riffle cluster needs the same --kms-keys file.",
            unusable.reason
        )),
    )
}

fn not_encrypted(stream: &Stream) -> Error {
    Error::invalid_argument(format!(
        "Stream {} under account {} is not encrypted.",
        stream.name, stream.account
    ))
}

/// What a put to a stream in `state` seals its frames with: `None` for a stream that is not
/// encrypted (nothing changes on its path), KMSDisabledException if the key is disabled.
pub fn sealing<'a>(
    node: &Node,
    stream: &Stream,
    state: &'a StreamState,
) -> Result<Option<&'a StreamCrypto>, Error> {
    let Some(crypto) = state.crypto.as_deref() else {
        return Ok(None);
    };
    if let Some(unusable) = crypto.unusable_reason() {
        if unusable.encryption.is_some() {
            // Never store a record unsealed that the stream means to seal.
            return Err(unusable_error(unusable));
        }
    }
    let Some(current) = crypto.current() else {
        return Ok(None);
    };
    if !current.key.is_enabled() {
        return Err(crypto::key_disabled(
            &current.key,
            &node.config.region,
            &stream.account,
        ));
    }
    Ok(Some(crypto))
}

/// The EncryptionType a put answers: KMS when its records were sealed.
pub fn put_encryption_type(sealing: Option<&StreamCrypto>) -> EncryptionType {
    match sealing {
        Some(_) => EncryptionType::Kms,
        None => EncryptionType::None,
    }
}

/// DescribeStream's and DescribeStreamSummary's EncryptionType and KeyId (as given).
pub fn described(state: &StreamState) -> (EncryptionType, Option<String>) {
    if let Some(unusable) = state
        .crypto
        .as_deref()
        .and_then(StreamCrypto::unusable_reason)
    {
        return match &unusable.encryption {
            Some(encryption) => (EncryptionType::Kms, Some(encryption.key_id.clone())),
            None => (EncryptionType::None, None),
        };
    }
    match state.crypto.as_deref().and_then(StreamCrypto::current) {
        Some(current) => (EncryptionType::Kms, Some(current.key_id_given.clone())),
        None => (EncryptionType::None, None),
    }
}

/// The error a read answers for a frame it cannot open: KMSDisabledException for a disabled
/// key, else an internal error (the frame is corrupt or forged; never served).
pub fn open_failure(
    crypto: &StreamCrypto,
    shard_ordinal: u32,
    index: u64,
    error: crypto::OpenError,
) -> Error {
    if let Some(unusable) = crypto.unusable_reason() {
        if matches!(error, crypto::OpenError::UnknownKey(_)) {
            return unusable_error(unusable);
        }
    }
    if let crypto::OpenError::Disabled(id) = error {
        return Error::new(
            riffle_proto::ErrorKind::KMSDisabledException,
            Some(format!(
                "KMS key {id} is disabled: the records it encrypted cannot be read."
            )),
        );
    }
    tracing::error!(
        stream_dir = crypto.dir_id(),
        shard = shard_ordinal,
        index,
        %error,
        "a sealed frame cannot be opened"
    );
    Error::internal(riffle_proto::error::INTERNAL_SERVICE_FAILURE)
}

/// The catalogue's view of a stream's keys.
pub fn to_meta(crypto: Option<&StreamCrypto>) -> (Option<EncryptionMeta>, Vec<SealingKeyMeta>) {
    let Some(crypto) = crypto else {
        return (None, Vec::new());
    };
    if let Some(unusable) = crypto.unusable_reason() {
        return (unusable.encryption.clone(), unusable.sealing_keys.clone());
    }
    let encryption = crypto.current().map(|current| EncryptionMeta {
        key_id: current.key_id_given.clone(),
        key: current.key.id().to_string(),
    });
    let sealing_keys = crypto
        .keys()
        .iter()
        .map(|key| SealingKeyMeta {
            key: key.id().to_string(),
            check_hex: key.check_hex(),
        })
        .collect();
    (encryption, sealing_keys)
}

/// A stream's keys from the catalogue, or why the node must not start: a key the stream's
/// frames are sealed with is missing from the key store or has other material.
pub fn restore(keys: &KeyStore, meta: &StreamMeta) -> Result<Option<Arc<StreamCrypto>>, String> {
    let stream = format!("stream {} of account {}", meta.name, meta.account);
    if meta.sealing_keys.is_empty() {
        if meta.encryption.is_some() {
            return Err(format!(
                "{stream} is encrypted but the catalogue lists no key"
            ));
        }
        return Ok(None);
    }
    let mut found = Vec::with_capacity(meta.sealing_keys.len());
    for sealing in &meta.sealing_keys {
        let id = KeyId::parse(&sealing.key)
            .ok_or_else(|| format!("{stream} names a KMS key that is not a UUID"))?;
        let key = keys.by_id(id).ok_or_else(|| {
            format!(
                "{stream} has records encrypted with KMS key {id}, which no --kms-keys file \
                 given to this start lists; start riffle with the key file that holds it"
            )
        })?;
        if key.check_hex() != sealing.check_hex {
            return Err(format!(
                "{stream} has records encrypted with KMS key {id}, and the key file's key {id} \
                 has other material; restore the key it had"
            ));
        }
        found.push(key);
    }
    let current = match &meta.encryption {
        None => None,
        Some(encryption) => {
            let key = KeyId::parse(&encryption.key)
                .and_then(|id| found.iter().find(|key| key.id() == id).cloned())
                .ok_or_else(|| {
                    format!("{stream} is encrypted with a key its catalogue entry does not list")
                })?;
            Some(CurrentKey {
                key_id_given: encryption.key_id.clone(),
                key,
            })
        }
    };
    Ok(Some(Arc::new(StreamCrypto::new(
        &meta.dir_id,
        found,
        current,
    ))))
}

/// A cluster's stream's keys from the catalogue: as [`restore`], but a key this node cannot
/// provide makes the keys [unusable](StreamCrypto::unusable) here instead of failing, since the
/// other nodes already agreed on the entry.
pub fn restore_replicated(keys: &KeyStore, meta: &StreamMeta) -> Option<Arc<StreamCrypto>> {
    match restore(keys, meta) {
        Ok(crypto) => crypto,
        Err(reason) => {
            tracing::error!(
                stream = %meta.name,
                account = %meta.account,
                %reason,
                "this node cannot use the stream's KMS keys: its puts and reads of sealed \
                 records fail here until riffle is restarted with the cluster's key file"
            );
            let usable = meta
                .sealing_keys
                .iter()
                .filter_map(|sealing| {
                    let key = keys.by_id(KeyId::parse(&sealing.key)?)?;
                    (key.check_hex() == sealing.check_hex).then_some(key)
                })
                .collect();
            Some(Arc::new(StreamCrypto::unusable(
                &meta.dir_id,
                usable,
                crypto::Unusable {
                    reason,
                    encryption: meta.encryption.clone(),
                    sealing_keys: meta.sealing_keys.clone(),
                },
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_limit_counts_each_operation_and_forgets_refusals() {
        let log = ChangeLog::default();
        let now = 10 * DAY_MS;
        for call in 0..ENCRYPTION_CHANGES_PER_DAY_MAX {
            assert!(log.admit(false, now + u64::from(call)), "start {call}");
        }
        assert!(!log.admit(false, now + 100), "the 26th start");
        assert!(log.admit(true, now + 100), "stops count on their own");
        log.forget_last(true);
        assert_eq!(log.list(true).len(), 0);
        assert!(
            log.admit(false, now + DAY_MS),
            "a day later the first expired"
        );
        assert!(!log.admit(false, now + DAY_MS), "but not the second");
    }
}
