//! `riffle copy`: a stream's definition and records, from one Kinesis endpoint into another.
//!
//! It is how a single node's streams move into a cluster (a cluster node does not open a
//! single node's data directory): serve the old directory as a single node, start the cluster,
//! and copy. It works between any two endpoints (riffle or AWS), through the public API only.
//!
//! For each stream: the destination stream is created with the source's capacity mode and open
//! shard count, retention period, tags and server-side encryption (a stream that already exists
//! on the destination is refused, so that a second run cannot write records twice). Then every
//! shard of the source is read from TRIM_HORIZON in lineage order — a shard only after all its
//! parents — and its records are written with PutRecords, one batch at a time, with the same
//! partition key and data. So the records of a key arrive in the order they were written, across
//! splits and merges. A shard still open is read up to its newest record.
//!
//! What changes: sequence numbers and arrival times are the destination's own; a record that was
//! written with an explicit hash key lands by its partition key (GetRecords does not return the
//! hash key); KPL aggregates are copied as the records they are stored as. What is not copied
//! (said on stdout): enhanced fan-out consumers, the resource policy, queues and channels.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    EncryptionType, PutRecordsRequestEntry, Record, Shard, ShardIteratorType, StreamMode,
    StreamModeDetails, StreamStatus,
};

use super::admin::{list_shards, wait_for, write_stdout};
use super::connect::{ConnectArgs, Connection};
use super::output::Progress;
use super::put::{backoff, human_bytes, BATCH_BYTES_MAX, BATCH_RECORDS_MAX};
use super::tail::{parents_of, THROTTLE_WAIT_MAX};
use super::{CliError, CliResult};

/// GetRecords' largest `Limit`.
const GET_RECORDS_LIMIT: i32 = 10_000;
/// The retention every stream starts with, in hours.
const DEFAULT_RETENTION_HOURS: i32 = 24;
/// AddTagsToStream takes at most this many tags per call.
const TAGS_PER_CALL: usize = 10;
/// Sends of a refused PutRecords entry before the copy gives up.
const PUT_ATTEMPTS: u32 = 10;

pub const COPY_HELP: &str = concat!(
    "\
Copies each named stream (every stream of the source when none is named) from the endpoint
--from to the endpoint --endpoint: the stream is created there with the source's capacity mode
and open shard count, retention period, tags and encryption, then every record is read (from
the oldest kept, every shard, parents before children) and written with the same partition key
and data. The records of a key keep their order. Stop the producers first: records written to
the source during the copy may or may not be copied.

A stream that already exists on the destination is refused (nothing is written to it twice).
Sequence numbers and arrival times are new: consumers start again from TRIM_HORIZON (or a time
after the copy). Not copied, and listed when present: enhanced fan-out consumers, the resource
policy, queues and channels.

Moving a single node's data into a cluster:
  riffle serve --data-dir old-data --listen 127.0.0.1:4570 &
  riffle copy --from http://127.0.0.1:4570 --endpoint http://127.0.0.1:4567

Both endpoints use the same credentials and region (below).

",
    super::connect_help!()
);

#[derive(clap::Args)]
pub struct CopyArgs {
    /// The streams to copy (default: every stream of the source).
    streams: Vec<String>,
    /// The endpoint to copy from: a riffle server's URL (`host:port` means http://host:port),
    /// or `aws`.
    #[arg(long, value_name = "ENDPOINT")]
    from: String,
    /// How long to wait for a created stream to become ACTIVE (seconds).
    #[arg(long, default_value_t = 300)]
    timeout_s: u64,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// What one stream's copy did.
#[derive(Default)]
struct Copied {
    shards: usize,
    records: u64,
    bytes: u64,
    retried: u64,
    /// Entries retried after a later entry of the same key in their batch was accepted: the
    /// one case in which a key's order can change.
    reordered: u64,
}

pub async fn run(args: CopyArgs) -> CliResult<()> {
    let destination = Connection::open(&args.connect).await?;
    let mut source_args = args.connect.clone();
    source_args.endpoint = args.from.clone();
    let source = Connection::open(&source_args).await?;
    let streams = if args.streams.is_empty() {
        list_streams(&source).await?
    } else {
        args.streams.clone()
    };
    if streams.is_empty() {
        write_stdout(format!("{} has no streams: nothing to copy\n", args.from).as_bytes())?;
        return Ok(());
    }
    let mut progress = Progress::on_terminal();
    for stream in &streams {
        let started = Instant::now();
        let not_copied = create_like(
            &source,
            &destination,
            stream,
            Duration::from_secs(args.timeout_s),
        )
        .await?;
        let copied = copy_records(&source, &destination, stream, &mut progress).await?;
        progress.finish(None);
        let mut line = format!(
            "{stream}: {} record{} ({}) from {} shard{} in {:.1} s",
            copied.records,
            if copied.records == 1 { "" } else { "s" },
            human_bytes(copied.bytes),
            copied.shards,
            if copied.shards == 1 { "" } else { "s" },
            started.elapsed().as_secs_f64()
        );
        if copied.retried > 0 {
            line.push_str(&format!(", {} retried", copied.retried));
        }
        if copied.reordered > 0 {
            line.push_str(&format!(
                "; {} record{} retried after a later record of the same key was accepted (its \
                 order may differ)",
                copied.reordered,
                if copied.reordered == 1 { "" } else { "s" }
            ));
        }
        if !not_copied.is_empty() {
            line.push_str(&format!("; not copied: {}", not_copied.join(", ")));
        }
        line.push('\n');
        write_stdout(line.as_bytes())?;
    }
    Ok(())
}

/// Every stream name of an endpoint (ListStreams, all pages).
async fn list_streams(connection: &Connection) -> CliResult<Vec<String>> {
    let mut names = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let page = connection
            .client
            .list_streams()
            .set_next_token(next_token.clone())
            .send()
            .await
            .map_err(|e| connection.error(e))?;
        names.extend(page.stream_names().iter().cloned());
        match page.next_token() {
            Some(token) if page.has_more_streams() => next_token = Some(token.to_owned()),
            _ => return Ok(names),
        }
    }
}

/// Creates `stream` on the destination like the source's; returns what exists on the source
/// and is not copied.
async fn create_like(
    source: &Connection,
    destination: &Connection,
    stream: &str,
    timeout: Duration,
) -> CliResult<Vec<String>> {
    let summary = source
        .client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .map_err(|e| CliError::new(format!("{stream} on the source: {}", source.error(e))))?;
    let Some(summary) = summary.stream_description_summary() else {
        return Err(CliError::new(format!(
            "{stream} on the source: DescribeStreamSummary returned no summary"
        )));
    };
    if !matches!(
        summary.stream_status(),
        StreamStatus::Active | StreamStatus::Updating
    ) {
        return Err(CliError::new(format!(
            "{stream} on the source is {}, not ACTIVE",
            summary.stream_status().as_str()
        )));
    }
    let exists = destination
        .client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await;
    match exists {
        Ok(_) => {
            return Err(CliError::new(format!(
                "{stream} already exists on the destination; riffle copy only creates streams \
                 (delete it there first, or name the other streams)"
            )))
        }
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) => {}
        Err(error) => return Err(destination.error(error)),
    }

    let on_demand = summary
        .stream_mode_details()
        .is_some_and(|details| details.stream_mode() == &StreamMode::OnDemand);
    let mut request = destination.client.create_stream().stream_name(stream);
    if on_demand {
        request = request.stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .map_err(|error| CliError::new(error.to_string()))?,
        );
    } else {
        request = request.shard_count(summary.open_shard_count().max(1));
    }
    request
        .send()
        .await
        .map_err(|e| CliError::new(format!("creating {stream}: {}", destination.error(e))))?;
    wait_active(destination, stream, timeout).await?;

    let retention = summary.retention_period_hours();
    if retention > DEFAULT_RETENTION_HOURS {
        destination
            .client
            .increase_stream_retention_period()
            .stream_name(stream)
            .retention_period_hours(retention)
            .send()
            .await
            .map_err(|e| {
                CliError::new(format!(
                    "setting {stream}'s retention to {retention} h: {}",
                    destination.error(e)
                ))
            })?;
        wait_active(destination, stream, timeout).await?;
    }

    let tags = source_tags(source, stream).await?;
    for chunk in tags.chunks(TAGS_PER_CALL) {
        destination
            .client
            .add_tags_to_stream()
            .stream_name(stream)
            .set_tags(Some(chunk.iter().cloned().collect()))
            .send()
            .await
            .map_err(|e| CliError::new(format!("tagging {stream}: {}", destination.error(e))))?;
    }

    if summary.encryption_type() == Some(&EncryptionType::Kms) {
        let key = summary.key_id().unwrap_or_default();
        destination
            .client
            .start_stream_encryption()
            .stream_name(stream)
            .encryption_type(EncryptionType::Kms)
            .key_id(key)
            .send()
            .await
            .map_err(|e| {
                CliError::new(format!(
                    "{stream} is encrypted on the source (key {key}) and the destination \
                     refused to encrypt it, so no record was copied; {stream} exists there \
                     empty: {}",
                    destination.error(e)
                ))
            })?;
        wait_active(destination, stream, timeout).await?;
    }

    let mut not_copied = Vec::new();
    let consumers = summary.consumer_count().unwrap_or(0);
    if consumers > 0 {
        not_copied.push(format!(
            "{consumers} enhanced fan-out consumer{}",
            if consumers == 1 { "" } else { "s" }
        ));
    }
    let policy = source
        .client
        .get_resource_policy()
        .resource_arn(summary.stream_arn())
        .send()
        .await;
    if let Ok(policy) = policy {
        if !policy.policy().trim().is_empty() && policy.policy().trim() != "{}" {
            not_copied.push("the resource policy".to_owned());
        }
    }
    Ok(not_copied)
}

async fn wait_active(destination: &Connection, stream: &str, timeout: Duration) -> CliResult<()> {
    wait_for(destination, stream, "creating", timeout, |status| {
        status == Some(&StreamStatus::Active)
    })
    .await
    .map(|_| ())
}

/// The source stream's tags (ListTagsForStream, all pages).
async fn source_tags(source: &Connection, stream: &str) -> CliResult<Vec<(String, String)>> {
    let mut tags = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = source
            .client
            .list_tags_for_stream()
            .stream_name(stream)
            .set_exclusive_start_tag_key(after.clone())
            .send()
            .await
            .map_err(|e| CliError::new(format!("{stream}'s tags: {}", source.error(e))))?;
        for tag in page.tags() {
            tags.push((
                tag.key().to_owned(),
                tag.value().unwrap_or_default().to_owned(),
            ));
        }
        match tags.last() {
            Some((key, _)) if page.has_more_tags() && !page.tags().is_empty() => {
                after = Some(key.clone())
            }
            _ => return Ok(tags),
        }
    }
}

/// The shards in an order that puts every shard after its listed parents (a parent no longer
/// listed, trimmed away, does not hold a child back), ties by shard id.
fn lineage_order(shards: &[Shard]) -> Vec<String> {
    let listed: HashSet<&str> = shards.iter().map(Shard::shard_id).collect();
    let mut waiting: Vec<(&str, Vec<String>)> = shards
        .iter()
        .map(|shard| (shard.shard_id(), parents_of(shard)))
        .collect();
    waiting.sort_by(|a, b| a.0.cmp(b.0));
    let mut done: HashSet<String> = HashSet::new();
    let mut ordered: Vec<String> = Vec::with_capacity(shards.len());
    while !waiting.is_empty() {
        let (ready, held): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|(_, parents)| {
            parents
                .iter()
                .all(|parent| done.contains(parent) || !listed.contains(parent.as_str()))
        });
        if ready.is_empty() {
            // A cycle cannot come from a real listing; should one appear, its shards are still
            // copied, in id order.
            ordered.extend(held.into_iter().map(|(shard, _)| shard.to_owned()));
            break;
        }
        for (shard, _) in ready {
            done.insert(shard.to_owned());
            ordered.push(shard.to_owned());
        }
        waiting = held;
    }
    ordered
}

/// Copies every record of `stream`, shard by shard in lineage order.
async fn copy_records(
    source: &Connection,
    destination: &Connection,
    stream: &str,
    progress: &mut Progress,
) -> CliResult<Copied> {
    let shards = list_shards(source, stream, None).await?;
    let mut copied = Copied {
        shards: shards.len(),
        ..Copied::default()
    };
    for shard in lineage_order(&shards) {
        copy_shard(source, destination, stream, &shard, &mut copied, progress).await?;
    }
    Ok(copied)
}

/// A GetShardIterator on the source: from the oldest record, or after `after`.
async fn iterator(
    source: &Connection,
    stream: &str,
    shard: &str,
    after: Option<&str>,
) -> CliResult<String> {
    let request = source
        .client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard);
    let request = match after {
        Some(sequence) => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(sequence),
        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
    };
    let output = request.send().await.map_err(|e| {
        CliError::new(format!(
            "{stream}/{shard} on the source: {}",
            source.error(e)
        ))
    })?;
    output.shard_iterator().map(str::to_owned).ok_or_else(|| {
        CliError::new(format!(
            "GetShardIterator on {stream}/{shard} returned no iterator"
        ))
    })
}

/// Reads one shard of the source to its end (a closed shard) or to its newest record (an
/// open one), writing each page to the destination before reading the next.
async fn copy_shard(
    source: &Connection,
    destination: &Connection,
    stream: &str,
    shard: &str,
    copied: &mut Copied,
    progress: &mut Progress,
) -> CliResult<()> {
    let mut current = iterator(source, stream, shard, None).await?;
    let mut last_sequence: Option<String> = None;
    let mut throttle_wait = Duration::from_millis(200);
    loop {
        let result = source
            .client
            .get_records()
            .shard_iterator(&current)
            .limit(GET_RECORDS_LIMIT)
            .send()
            .await;
        let page = match result {
            Ok(page) => page,
            Err(error) => {
                let service_error = error.as_service_error();
                if service_error.is_some_and(|e| e.is_expired_iterator_exception()) {
                    current = iterator(source, stream, shard, last_sequence.as_deref()).await?;
                    continue;
                }
                if service_error.is_some_and(|e| e.is_provisioned_throughput_exceeded_exception()) {
                    tokio::time::sleep(throttle_wait).await;
                    throttle_wait = (throttle_wait * 2).min(THROTTLE_WAIT_MAX);
                    continue;
                }
                return Err(CliError::new(format!(
                    "reading {stream}/{shard} on the source: {}",
                    source.error(error)
                )));
            }
        };
        throttle_wait = Duration::from_millis(200);
        let records = page.records();
        if let Some(last) = records.last() {
            last_sequence = Some(last.sequence_number().to_owned());
            put_all(destination, stream, shard, records, copied).await?;
            let (count, bytes) = (copied.records, copied.bytes);
            progress.update(|| format!("{stream}: {count} records ({})", human_bytes(bytes)));
        }
        let Some(next) = page.next_shard_iterator() else {
            return Ok(()); // closed, and read to its end
        };
        if records.is_empty() && page.millis_behind_latest().unwrap_or(0) == 0 {
            return Ok(()); // open, and read to its newest record
        }
        current = next.to_owned();
    }
}

fn key_of(record: &Record) -> &str {
    record.partition_key().unwrap_or_default()
}

/// Writes a page of records to the destination in PutRecords batches, one at a time, retrying
/// refused entries; every record is accepted or the copy fails.
async fn put_all(
    destination: &Connection,
    stream: &str,
    shard: &str,
    records: &[Record],
    copied: &mut Copied,
) -> CliResult<()> {
    let mut start = 0;
    while start < records.len() {
        let mut end = start;
        let mut bytes = 0usize;
        while end < records.len() && end - start < BATCH_RECORDS_MAX {
            let record = &records[end];
            let size = record.data().as_ref().len() + key_of(record).len();
            if end > start && bytes + size > BATCH_BYTES_MAX {
                break;
            }
            bytes += size;
            end += 1;
        }
        put_batch(destination, stream, shard, &records[start..end], copied).await?;
        start = end;
    }
    Ok(())
}

async fn put_batch(
    destination: &Connection,
    stream: &str,
    shard: &str,
    batch: &[Record],
    copied: &mut Copied,
) -> CliResult<()> {
    let mut pending: Vec<&Record> = batch.iter().collect();
    let mut attempt = 1u32;
    loop {
        let entries = pending
            .iter()
            .map(|record| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(record.data().as_ref()))
                    .partition_key(key_of(record))
                    .build()
                    .map_err(|error| CliError::new(error.to_string()))
            })
            .collect::<CliResult<Vec<_>>>()?;
        let output = destination
            .client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .map_err(|e| {
                CliError::new(format!(
                    "writing {stream} on the destination (copying {shard}, {} records copied \
                     so far): {}",
                    copied.records,
                    destination.error(e)
                ))
            })?;
        let results = output.records();
        if results.len() != pending.len() {
            return Err(CliError::new(format!(
                "the destination answered {} results for {} records",
                results.len(),
                pending.len()
            )));
        }
        let mut refused: Vec<&Record> = Vec::new();
        let mut accepted_keys: HashSet<&str> = HashSet::new();
        let mut last_refusal = String::new();
        // From the last entry back, so that each refused entry knows whether a later entry of
        // its key got in ahead of it.
        for (record, result) in pending.iter().zip(results).rev() {
            match result.error_code() {
                None => {
                    copied.records += 1;
                    copied.bytes += record.data().as_ref().len() as u64;
                    accepted_keys.insert(key_of(record));
                }
                Some(code) => {
                    let message = result.error_message().unwrap_or_default();
                    if !matches!(
                        code,
                        "ProvisionedThroughputExceededException" | "InternalFailure"
                    ) {
                        return Err(CliError::new(format!(
                            "the destination refused record {} of {stream}/{shard}: {code}: \
                             {message} ({} records copied before it)",
                            record.sequence_number(),
                            copied.records
                        )));
                    }
                    if accepted_keys.contains(key_of(record)) {
                        copied.reordered += 1;
                    }
                    last_refusal = format!("{code}: {message}");
                    refused.push(record);
                }
            }
        }
        if refused.is_empty() {
            return Ok(());
        }
        refused.reverse();
        if attempt >= PUT_ATTEMPTS {
            return Err(CliError::new(format!(
                "{} records of {stream}/{shard} could not be written after {attempt} attempts \
                 ({last_refusal}); {} records copied",
                refused.len(),
                copied.records
            )));
        }
        copied.retried += refused.len() as u64;
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
        pending = refused;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parents: [Option<&str>; 2]) -> Shard {
        Shard::builder()
            .shard_id(id)
            .set_parent_shard_id(parents[0].map(str::to_owned))
            .set_adjacent_parent_shard_id(parents[1].map(str::to_owned))
            .build()
            .expect("a shard")
    }

    #[test]
    fn shards_come_after_their_parents_and_trimmed_parents_hold_nothing_back() {
        let shards = [
            // A merge of 1 and 2 (listed after it), a split of 0 into 1 and 2, and 5 whose
            // parent 4 is no longer listed.
            shard(
                "shardId-000000000003",
                [Some("shardId-000000000001"), Some("shardId-000000000002")],
            ),
            shard("shardId-000000000002", [Some("shardId-000000000000"), None]),
            shard("shardId-000000000001", [Some("shardId-000000000000"), None]),
            shard("shardId-000000000005", [Some("shardId-000000000004"), None]),
            shard("shardId-000000000000", [None, None]),
        ];
        assert_eq!(
            lineage_order(&shards),
            [
                "shardId-000000000000",
                "shardId-000000000005",
                "shardId-000000000001",
                "shardId-000000000002",
                "shardId-000000000003",
            ]
        );
    }
}
