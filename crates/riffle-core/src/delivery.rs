//! Channel delivery: one task per channel reads its stream through the shard readers (like a
//! consumer: preads of the shard logs up to the visible tail, never the put path's locks),
//! batches the records into objects and writes them to an [`ObjectStore`].
//!
//! **Batches.** Records are formatted as they are read (JSON and STRING records are checked
//! and written one per line, BYTE_ARRAY records are concatenated as they are) and held until
//! the channel's DataFreshnessInSeconds has passed since the first of them was read, or until
//! the batch reaches the size threshold; then the batch is compressed (NONE, GZIP, ZSTD) and
//! written as one object named by the key template. Records that fail the check go, with the
//! reason, to a dead-letter object under the dead-letter prefix in the same flush.
//!
//! **At least once, no gaps.** A channel's read positions (one per shard) and the number of
//! the next object are its checkpoint, `DATA/channels/<channel id>/checkpoint.json`, written
//! owner-only and fsynced (file, then directory) *after* the batch's objects are written. A
//! crash between the two re-reads the batch from the old checkpoint, so every record is in
//! some object; the retried object has the same number and, its oldest record being the same,
//! the same key, so it replaces the first attempt instead of duplicating it.
//!
//! **Start.** A new channel starts at the tail of each open shard (AWS: only records written
//! once the channel is ACTIVE are delivered), records that as its first checkpoint, and only
//! then becomes ACTIVE. Shards created later (resharding) are read from their first record.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use riffle_proto::ops::{RecordFormatType, S3CompressionType};
use serde::{Deserialize, Serialize};

use crate::catalogue::Command;
use crate::channels::{compression_of, ChannelMeta};
use crate::data::{self, Position};
use crate::node::{now_ms, Node, Shard, Stream};

/// One object to write.
#[derive(Debug, Clone)]
pub struct PutObject {
    pub bucket: String,
    pub key: String,
    pub body: Vec<u8>,
    pub content_type: &'static str,
    pub content_encoding: Option<&'static str>,
    /// The account the bucket must belong to (S3's `x-amz-expected-bucket-owner`).
    pub expected_bucket_owner: String,
    pub storage_class: Option<String>,
    /// SSE-KMS key for the object, if the channel has one.
    pub kms_key_id: Option<String>,
}

/// Why an object was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Worth retrying as it is (network, throttling, 5xx).
    Retry(String),
    /// Retrying alone will not help (no such bucket, access denied, a key the store cannot
    /// hold): the channel shows FAILED with this reason while it lasts.
    Permanent(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Retry(reason) | StoreError::Permanent(reason) => f.write_str(reason),
        }
    }
}

pub type StoreFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// Where a channel's objects go: `DATA/buckets/` ([`LocalStore`]) or an S3-compatible
/// service (the server's `--s3-endpoint`).
pub trait ObjectStore: Send + Sync + 'static {
    /// Writes one object durably (it survives a crash once this returns `Ok`).
    fn put(&self, object: PutObject) -> StoreFuture<'_>;
}

/// Objects as files: `ROOT/<bucket>/<key>`, directories 0700, files 0600, each written to a
/// temporary name, fsynced, renamed into place and its directory fsynced.
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: PathBuf) -> LocalStore {
        LocalStore { root }
    }

    fn put_blocking(root: &Path, object: &PutObject) -> Result<(), StoreError> {
        let bad_key = object.key.is_empty()
            || object
                .key
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..");
        let bad_bucket = object.bucket.is_empty()
            || object.bucket.starts_with('.')
            || object.bucket.contains('/');
        if bad_key || bad_bucket {
            return Err(StoreError::Permanent(format!(
                "object key {:?} of bucket {:?} cannot be stored as a file (empty, '.' or '..' \
                 path segments)",
                object.key, object.bucket
            )));
        }
        let path = root.join(&object.bucket).join(&object.key);
        let dir = path.parent().unwrap_or(root).to_path_buf();
        let io = |what: &str, error: std::io::Error| {
            StoreError::Retry(format!("{what} {}: {error}", path.display()))
        };
        riffle_log::create_owner_only_dirs(&dir)
            .map_err(|e| io("cannot create the folder of", e))?;
        let file_name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temporary = dir.join(format!(
            ".{file_name}.{}.tmp",
            uuid::Uuid::new_v4().simple()
        ));
        let result = (|| {
            let mut file = owner_only_file(&temporary)?;
            file.write_all(&object.body)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)?;
            crate::meta::sync_dir(&dir)
        })();
        if let Err(error) = result {
            let _ = std::fs::remove_file(&temporary);
            return Err(io("cannot write", error));
        }
        Ok(())
    }
}

impl ObjectStore for LocalStore {
    fn put(&self, object: PutObject) -> StoreFuture<'_> {
        let root = self.root.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || LocalStore::put_blocking(&root, &object))
                .await
                .map_err(|error| StoreError::Retry(format!("object writer failed: {error}")))?
        })
    }
}

fn owner_only_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// How delivery runs on this node.
#[derive(Clone)]
pub struct DeliveryConfig {
    pub store: Arc<dyn ObjectStore>,
    /// Holds a batch at most this long, whatever the channel's freshness (tests, laptops).
    pub max_wait: Option<Duration>,
    /// A batch is written once its records reach this many bytes (before compression).
    pub object_bytes_max: usize,
}

/// The default size threshold of an object, before compression.
pub const OBJECT_BYTES_MAX_DEFAULT: usize = 64 << 20;

/// A channel's durable read state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Checkpoint {
    /// When delivery started: shards created after it are read from their first record.
    started_ms: u64,
    /// The next record of each shard, by ordinal: (log index, slot).
    positions: BTreeMap<u32, (u64, u16)>,
    /// Closed shards read to their end.
    #[serde(default)]
    ended: Vec<u32>,
    /// The number of the next object (the unique part of its key).
    next_object: u64,
}

fn channel_dir(node: &Node, channel: &ChannelMeta) -> PathBuf {
    node.config
        .data_dir
        .join("channels")
        .join(&channel.channel_id)
}

const CHECKPOINT_FILE: &str = "checkpoint.json";

fn load_checkpoint(dir: &Path) -> Result<Option<Checkpoint>, String> {
    let path = dir.join(CHECKPOINT_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| format!("{} is damaged: {error}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(format!("cannot read {}: {error}", path.display())),
    }
}

/// Writes the checkpoint owner-only and durably: temporary file, fsync, rename, fsync dir.
fn store_checkpoint(dir: &Path, checkpoint: &Checkpoint, durable: bool) -> std::io::Result<()> {
    riffle_log::create_owner_only_dirs(dir)?;
    let temporary = dir.join("checkpoint.json.tmp");
    let mut file = owner_only_file(&temporary)?;
    file.write_all(&serde_json::to_vec(checkpoint).map_err(std::io::Error::other)?)?;
    if durable {
        file.sync_all()?;
    }
    std::fs::rename(&temporary, dir.join(CHECKPOINT_FILE))?;
    if durable {
        crate::meta::sync_dir(dir)?;
    }
    Ok(())
}

/// Starts the delivery manager: it runs a task per channel, starts and stops them as channels
/// come and go, and finishes DeleteChannel. Runs until the node is dropped.
pub fn start(node: &Arc<Node>, config: DeliveryConfig) {
    let weak = Arc::downgrade(node);
    let mut changes = node.watch_channels();
    tokio::spawn(async move {
        let mut tasks: BTreeMap<String, tokio::task::JoinHandle<()>> = BTreeMap::new();
        loop {
            let Some(node) = weak.upgrade() else {
                break;
            };
            if !node.decides() {
                // In a cluster, the catalogue's leader delivers (its checkpoints are its own,
                // so a new leader starts from its own and delivers at least once).
                for (_, task) in std::mem::take(&mut tasks) {
                    task.abort();
                }
                drop(node);
                let _ = tokio::time::timeout(Duration::from_secs(1), changes.changed()).await;
                continue;
            }
            let channels = node.channels();
            // Channels gone from the catalogue: stop their tasks. (A deleting channel's task
            // is stopped and awaited below, before its state is removed.)
            tasks.retain(|id, task| {
                let known = channels.iter().any(|c| &c.channel_id == id);
                if !known {
                    task.abort();
                }
                known
            });
            for channel in channels {
                if channel.deleting_ms.is_some() {
                    if let Some(task) = tasks.remove(&channel.channel_id) {
                        task.abort();
                        let _ = task.await;
                    }
                    finish_delete(&node, &channel).await;
                    continue;
                }
                let running = tasks
                    .get(&channel.channel_id)
                    .is_some_and(|task| !task.is_finished());
                if !running {
                    let task = tokio::spawn(run_channel(
                        Arc::downgrade(&node),
                        channel.clone(),
                        config.clone(),
                    ));
                    tasks.insert(channel.channel_id.clone(), task);
                }
            }
            drop(node);
            let _ = tokio::time::timeout(Duration::from_secs(1), changes.changed()).await;
        }
        for task in tasks.values() {
            task.abort();
        }
    });
}

/// Removes a deleted channel's delivery state, then its catalogue entry.
async fn finish_delete(node: &Arc<Node>, channel: &ChannelMeta) {
    let window = node.config.update_window.as_millis() as u64;
    if now_ms() < channel.deleting_ms.unwrap_or(0).saturating_add(window) {
        return;
    }
    let dir = channel_dir(node, channel);
    let _ = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(dir = %dir.display(), %error, "cannot remove a deleted channel's state");
        }
        _ => {}
    })
    .await;
    let _control = node.control().await;
    let command = Command::RemoveChannel {
        account: channel.account.clone(),
        name: channel.name.clone(),
        channel_id: channel.channel_id.clone(),
    };
    if let Err(error) = node.propose(command).await {
        tracing::warn!(channel = %channel.name, %error, "cannot remove a deleted channel");
    }
}

/// Changes the catalogue entry of `channel` (if it is still the same channel, not deleting).
async fn change_channel(node: &Node, channel: &ChannelMeta, change: impl FnOnce(&mut ChannelMeta)) {
    let _control = node.control().await;
    let Some(mut current) = node
        .channel(&channel.account, &channel.name)
        .filter(|current| {
            current.channel_id == channel.channel_id && current.deleting_ms.is_none()
        })
    else {
        return;
    };
    let before = current.clone();
    change(&mut current);
    if current == before {
        return;
    }
    if let Err(error) = node
        .propose(Command::ReplaceChannel {
            meta: Box::new(current),
        })
        .await
    {
        tracing::warn!(channel = %channel.name, %error, "cannot record a channel's state");
    }
}

/// The records of one batch, formatted.
#[derive(Default)]
struct Batch {
    body: Vec<u8>,
    records: usize,
    dead: Vec<u8>,
    dead_records: usize,
    oldest_ms: Option<u64>,
    since: Option<Instant>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.records == 0 && self.dead_records == 0
    }

    fn note_arrival(&mut self, arrival_ms: u64) {
        self.oldest_ms = Some(
            self.oldest_ms
                .map_or(arrival_ms, |oldest| oldest.min(arrival_ms)),
        );
        self.since.get_or_insert_with(Instant::now);
    }
}

/// Why a record cannot be delivered in the channel's format, if it cannot.
fn check_record(format: RecordFormatType, data: &[u8]) -> Result<(), (&'static str, String)> {
    match format {
        RecordFormatType::Json => serde_json::from_slice::<serde::de::IgnoredAny>(data)
            .map(|_| ())
            .map_err(|error| {
                (
                    "InvalidJSON",
                    format!("The record is not valid JSON: {error}"),
                )
            }),
        RecordFormatType::String => std::str::from_utf8(data).map(|_| ()).map_err(|error| {
            (
                "InvalidUTF8",
                format!("The record is not valid UTF-8: {error}"),
            )
        }),
        RecordFormatType::ByteArray | RecordFormatType::GsrJson => Ok(()),
    }
}

/// Appends `data` as the format lays records out: one per line for JSON and STRING (a record
/// already ending in a newline gets no second one), as they are for BYTE_ARRAY.
fn append_record(format: RecordFormatType, body: &mut Vec<u8>, data: &[u8]) {
    body.extend_from_slice(data);
    let lines = matches!(format, RecordFormatType::Json | RecordFormatType::String);
    if lines && !data.ends_with(b"\n") {
        body.push(b'\n');
    }
}

/// The object name extension of a format and compression.
pub fn extension(format: RecordFormatType, compression: S3CompressionType) -> String {
    let base = match format {
        RecordFormatType::Json | RecordFormatType::GsrJson => ".json",
        RecordFormatType::String => ".txt",
        RecordFormatType::ByteArray => ".bin",
    };
    let compressed = match compression {
        S3CompressionType::None => "",
        S3CompressionType::Gzip => ".gz",
        S3CompressionType::Zstd => ".zst",
    };
    format!("{base}{compressed}")
}

/// Expands a key template for one object: the time variables from `time_ms` (UTC), and the
/// object's unique number placed before `!{extension}` (or at the end if the template has
/// none), so that keys never collide and a retried object keeps its key.
pub fn object_key(
    template: &str,
    channel: &ChannelMeta,
    time_ms: u64,
    number: u64,
    extension: &str,
) -> String {
    let time = riffle_proto::time::civil_from_epoch_ms(i64::try_from(time_ms).unwrap_or(0));
    let unique = format!("-{number:012}");
    let template = if template.contains("!{extension}") {
        template.replacen("!{extension}", &format!("{unique}!{{extension}}"), 1)
    } else {
        format!("{template}{unique}")
    };
    template
        .replace("!{channel-name}", &channel.name)
        .replace("!{channel-id}", &channel.channel_id)
        .replace("!{yyyy}", &format!("{:04}", time.year))
        .replace("!{MM}", &format!("{:02}", time.month))
        .replace("!{dd}", &format!("{:02}", time.day))
        .replace("!{HH}", &format!("{:02}", time.hour))
        .replace("!{mm}", &format!("{:02}", time.minute))
        .replace("!{extension}", extension)
}

fn compress(compression: S3CompressionType, body: Vec<u8>) -> std::io::Result<Vec<u8>> {
    match compression {
        S3CompressionType::None => Ok(body),
        S3CompressionType::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(&body)?;
            encoder.finish()
        }
        S3CompressionType::Zstd => zstd::bulk::compress(&body, 3),
    }
}

/// The stream a channel reads (this incarnation), if it is there.
fn source_stream(node: &Node, channel: &ChannelMeta) -> Option<Arc<Stream>> {
    node.stream(&channel.account, &channel.stream_name)
        .filter(|stream| stream.created_ms == channel.stream_created_ms)
}

const READ_RECORDS_MAX: usize = 10_000;
const READ_BYTES_MAX: usize = 4 << 20;
const IDLE_POLL: Duration = Duration::from_millis(100);

/// One channel's delivery loop; ends when the node or the channel goes.
async fn run_channel(node: std::sync::Weak<Node>, channel: ChannelMeta, config: DeliveryConfig) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let Some(strong) = node.upgrade() else {
            return;
        };
        match deliver(&strong, &channel, &config).await {
            Ok(()) => return,
            Err(reason) => {
                tracing::warn!(channel = %channel.name, %reason, "channel delivery stopped; retrying");
            }
        }
        drop(strong);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Delivers until the channel is gone; an `Err` (a checkpoint that cannot be read or written)
/// restarts it from the last checkpoint.
async fn deliver(
    node: &Arc<Node>,
    channel: &ChannelMeta,
    config: &DeliveryConfig,
) -> Result<(), String> {
    let dir = channel_dir(node, channel);
    let durable = node.config.durability != crate::shard_log::Durability::None;
    let mut checkpoint = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || load_checkpoint(&dir))
            .await
            .map_err(|error| error.to_string())??
    };
    let mut checkpoint = match checkpoint.take() {
        Some(checkpoint) => checkpoint,
        None => {
            // Start at the tail of every open shard; closed shards hold only older records.
            let stream = source_stream(node, channel)
                .ok_or_else(|| "the source stream is gone".to_owned())?;
            let state = stream.state();
            let mut first = Checkpoint {
                started_ms: now_ms(),
                ..Checkpoint::default()
            };
            for shard in &state.shards {
                if shard.is_open() {
                    let tail = shard.log.tail();
                    first
                        .positions
                        .insert(shard.meta.ordinal, (tail.visible_index + 1, 0));
                } else {
                    first.ended.push(shard.meta.ordinal);
                }
            }
            let (dir, stored) = (dir.clone(), first.clone());
            tokio::task::spawn_blocking(move || store_checkpoint(&dir, &stored, durable))
                .await
                .map_err(|error| error.to_string())?
                .map_err(|error| format!("cannot write the first checkpoint: {error}"))?;
            first
        }
    };
    if channel.active_ms.is_none() {
        let started = checkpoint.started_ms;
        change_channel(node, channel, |current| {
            current.active_ms.get_or_insert(started);
        })
        .await;
    }
    let format =
        RecordFormatType::parse(&channel.record_format).unwrap_or(RecordFormatType::ByteArray);
    let mut batch = Batch::default();
    // Positions after the batch's records (the checkpoint still has those before them).
    let mut pending = checkpoint.clone();
    let mut failing_since: Option<Instant> = None;
    loop {
        let Some(current) = node
            .channel(&channel.account, &channel.name)
            .filter(|current| current.channel_id == channel.channel_id)
        else {
            return Ok(());
        };
        if current.deleting_ms.is_some() {
            return Ok(());
        }
        let mut read_any = false;
        if let Some(stream) = source_stream(node, &current) {
            let state = stream.state();
            for shard in &state.shards {
                let ordinal = shard.meta.ordinal;
                if pending.ended.contains(&ordinal) {
                    continue;
                }
                let position = match pending.positions.get(&ordinal) {
                    Some(&(index, slot)) => Position { index, slot },
                    None if shard.meta.created_ms >= pending.started_ms => Position {
                        index: shard.log.first_index(),
                        slot: 0,
                    },
                    None => {
                        // Older than the channel and never recorded: nothing of it is ours.
                        pending.ended.push(ordinal);
                        continue;
                    }
                };
                let caught_up = position.index > shard.log.tail().visible_index;
                let closed_end = shard
                    .meta
                    .closed
                    .is_some_and(|closed| position.index > closed.last_index);
                if caught_up && !closed_end {
                    continue;
                }
                let read = read_shard(&state, shard, position).await?;
                for (number, stored) in &read.records {
                    batch.note_arrival(stored.arrival_ms);
                    match check_record(format, &stored.data) {
                        Ok(()) => {
                            append_record(format, &mut batch.body, &stored.data);
                            batch.records += 1;
                        }
                        Err((code, message)) => {
                            let entry = serde_json::json!({
                                "errorCode": code,
                                "errorMessage": message,
                                "streamARN": current.stream_arn,
                                "shardId": shard.id(),
                                "sequenceNumber": number,
                                "partitionKey": crate::service::stored_partition_key(&stored.partition_key),
                                "approximateArrivalTimestamp": stored.arrival_ms,
                                "rawData": base64::engine::general_purpose::STANDARD.encode(&stored.data),
                            });
                            batch.dead.extend_from_slice(entry.to_string().as_bytes());
                            batch.dead.push(b'\n');
                            batch.dead_records += 1;
                        }
                    }
                }
                read_any |= !read.records.is_empty();
                pending
                    .positions
                    .insert(ordinal, (read.next.index, read.next.slot));
                if read.ended {
                    pending.ended.push(ordinal);
                    pending.positions.remove(&ordinal);
                }
            }
            // Shards dropped by retention are forgotten.
            pending
                .positions
                .retain(|ordinal, _| state.shard(*ordinal).is_some());
            pending
                .ended
                .retain(|ordinal| state.shard(*ordinal).is_some());
        }
        let freshness = Duration::from_secs(u64::from(current.s3.freshness_s));
        let wait = config.max_wait.map_or(freshness, |max| max.min(freshness));
        let full = batch.body.len() + batch.dead.len() >= config.object_bytes_max;
        let due = batch.since.is_some_and(|since| since.elapsed() >= wait);
        if !batch.is_empty() && (full || due) {
            match flush(
                node,
                &current,
                format,
                &batch,
                checkpoint.next_object,
                config,
            )
            .await
            {
                Ok(()) => {
                    pending.next_object = checkpoint.next_object + 1;
                    let (dir, stored) = (dir.clone(), pending.clone());
                    tokio::task::spawn_blocking(move || store_checkpoint(&dir, &stored, durable))
                        .await
                        .map_err(|error| error.to_string())?
                        .map_err(|error| format!("cannot write the checkpoint: {error}"))?;
                    checkpoint = pending.clone();
                    batch = Batch::default();
                    if failing_since.take().is_some() || current.failure.is_some() {
                        change_channel(node, &current, |c| c.failure = None).await;
                    }
                }
                Err(StoreError::Retry(reason)) => {
                    tracing::warn!(channel = %current.name, %reason, "object not written; retrying");
                    failing_since.get_or_insert_with(Instant::now);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(StoreError::Permanent(reason)) => {
                    tracing::warn!(channel = %current.name, %reason, "object refused; channel FAILED");
                    failing_since.get_or_insert_with(Instant::now);
                    change_channel(node, &current, |c| c.failure = Some(reason.clone())).await;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
            continue;
        }
        if !read_any {
            let sleep = batch.since.map_or(IDLE_POLL, |since| {
                wait.saturating_sub(since.elapsed()).min(IDLE_POLL)
            });
            tokio::time::sleep(sleep.max(Duration::from_millis(5))).await;
        }
    }
}

async fn read_shard(
    state: &Arc<crate::node::StreamState>,
    shard: &Arc<Shard>,
    position: Position,
) -> Result<data::Read, String> {
    let read = if shard.log.stored_here() {
        let (state, shard) = (Arc::clone(state), Arc::clone(shard));
        tokio::task::spawn_blocking(move || {
            data::read_from(
                &state,
                &shard,
                position,
                READ_RECORDS_MAX,
                READ_BYTES_MAX,
                now_ms(),
            )
        })
        .await
        .map_err(|error| error.to_string())?
    } else {
        // A shard this node holds no replica of: read through one that does.
        data::read_anywhere(
            state,
            shard,
            position,
            READ_RECORDS_MAX,
            READ_BYTES_MAX,
            now_ms(),
            0,
        )
        .await
    };
    read.map_err(|error| {
        format!(
            "cannot read shard: {}",
            error.log_message().unwrap_or("error")
        )
    })
}

/// Writes the batch's object and, if any record failed its check, the dead-letter object.
async fn flush(
    node: &Node,
    channel: &ChannelMeta,
    format: RecordFormatType,
    batch: &Batch,
    number: u64,
    config: &DeliveryConfig,
) -> Result<(), StoreError> {
    let time_ms = batch.oldest_ms.unwrap_or_else(now_ms);
    let compression = compression_of(&channel.s3.compression);
    if batch.records > 0 {
        let extension = extension(format, compression);
        let key = object_key(channel.key_template(), channel, time_ms, number, &extension);
        let body = batch.body.clone();
        let body = tokio::task::spawn_blocking(move || compress(compression, body))
            .await
            .map_err(|error| StoreError::Retry(error.to_string()))?
            .map_err(|error| StoreError::Retry(format!("cannot compress: {error}")))?;
        config
            .store
            .put(PutObject {
                bucket: channel.bucket().to_owned(),
                key,
                body,
                content_type: match format {
                    RecordFormatType::Json | RecordFormatType::GsrJson => "application/json",
                    RecordFormatType::String => "text/plain; charset=utf-8",
                    RecordFormatType::ByteArray => "application/octet-stream",
                },
                content_encoding: None,
                expected_bucket_owner: channel.s3.expected_bucket_owner.clone(),
                storage_class: channel.s3.storage_class.clone(),
                kms_key_id: channel.kms_key_id.clone(),
            })
            .await?;
    }
    if batch.dead_records > 0 {
        let (bucket, prefix) = channel.dead_letter();
        let template = format!(
            "{prefix}!{{channel-name}}/!{{yyyy}}/!{{MM}}/!{{dd}}/!{{HH}}/!{{channel-name}}-!{{channel-id}}-!{{yyyy}}-!{{MM}}-!{{dd}}-!{{HH}}-!{{mm}}!{{extension}}"
        );
        let key = object_key(&template, channel, time_ms, number, ".json");
        let owner = channel
            .s3
            .dead_letter
            .as_ref()
            .map_or(&channel.s3.expected_bucket_owner, |dlq| {
                &dlq.expected_bucket_owner
            })
            .clone();
        config
            .store
            .put(PutObject {
                bucket,
                key,
                body: batch.dead.clone(),
                content_type: "application/json",
                content_encoding: None,
                expected_bucket_owner: owner,
                storage_class: None,
                kms_key_id: channel.kms_key_id.clone(),
            })
            .await?;
    }
    let _ = node;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::{LoggingMeta, S3Meta, DEFAULT_KEY_TEMPLATE};

    fn channel() -> ChannelMeta {
        ChannelMeta {
            account: "123456789012".into(),
            name: "orders-to-s3".into(),
            channel_id: "c0ffee".into(),
            created_ms: 0,
            role_arn: String::new(),
            stream_arn: String::new(),
            stream_name: "orders".into(),
            stream_created_ms: 0,
            record_format: "JSON".into(),
            gsr_schema_arn: None,
            s3: S3Meta {
                bucket_arn: "arn:aws:s3:::bucket".into(),
                expected_bucket_owner: "123456789012".into(),
                key_template: None,
                storage_class: None,
                compression: "GZIP".into(),
                freshness_s: 300,
                dead_letter: None,
            },
            kms_key_id: None,
            logging: LoggingMeta::default(),
            tags: BTreeMap::new(),
            active_ms: None,
            updated_ms: None,
            deleting_ms: None,
            failure: None,
        }
    }

    #[test]
    fn keys_follow_the_template_with_a_unique_number() {
        // 2026-03-04T05:06:07Z
        let ms = 1_772_600_767_000;
        let key = object_key(DEFAULT_KEY_TEMPLATE, &channel(), ms, 7, ".json.gz");
        assert_eq!(
            key,
            "kinesis-channel/orders-to-s3/c0ffee/2026/03/04/05/\
             orders-to-s3-c0ffee-2026-03-04-05-06-000000000007.json.gz"
        );
        assert_eq!(
            object_key("x/!{yyyy}", &channel(), ms, 1, ".json"),
            "x/2026-000000000001"
        );
    }

    #[test]
    fn formats_check_and_lay_out_records() {
        let mut body = Vec::new();
        assert!(check_record(RecordFormatType::Json, b"{\"a\":1}").is_ok());
        assert_eq!(
            check_record(RecordFormatType::Json, b"{oops")
                .unwrap_err()
                .0,
            "InvalidJSON"
        );
        assert_eq!(
            check_record(RecordFormatType::String, &[0xff])
                .unwrap_err()
                .0,
            "InvalidUTF8"
        );
        assert!(check_record(RecordFormatType::ByteArray, &[0xff]).is_ok());
        append_record(RecordFormatType::Json, &mut body, b"{\"a\":1}");
        append_record(RecordFormatType::String, &mut body, b"line\n");
        append_record(RecordFormatType::ByteArray, &mut body, b"\x00\x01");
        assert_eq!(body, b"{\"a\":1}\nline\n\x00\x01");
        assert_eq!(
            extension(RecordFormatType::String, S3CompressionType::Zstd),
            ".txt.zst"
        );
    }

    #[test]
    fn compression_round_trips() {
        let body = b"{\"n\":1}\n".repeat(1000);
        let gz = compress(S3CompressionType::Gzip, body.clone()).unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out).unwrap();
        assert_eq!(out, body);
        let zst = compress(S3CompressionType::Zstd, body.clone()).unwrap();
        assert_eq!(zstd::bulk::decompress(&zst, body.len()).unwrap(), body);
        assert!(gz.len() < body.len() && zst.len() < body.len());
    }

    #[test]
    fn local_store_writes_owner_only_and_refuses_traversal() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("buckets"));
        let object = |key: &str| PutObject {
            bucket: "b".into(),
            key: key.into(),
            body: b"x".to_vec(),
            content_type: "application/json",
            content_encoding: None,
            expected_bucket_owner: "123456789012".into(),
            storage_class: None,
            kms_key_id: None,
        };
        LocalStore::put_blocking(&dir.path().join("buckets"), &object("a/b.json")).unwrap();
        let path = dir.path().join("buckets/b/a/b.json");
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        for bad in ["../x", "a/../../x", "a//b", ""] {
            assert!(matches!(
                LocalStore::put_blocking(&dir.path().join("buckets"), &object(bad)),
                Err(StoreError::Permanent(_))
            ));
        }
        let _ = store;
    }
}
