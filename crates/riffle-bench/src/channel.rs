//! `riffle bench channel`: how fast a channel delivers a stream's records to a bucket.
//!
//! Makes an ON_DEMAND stream (4 shards) and a channel from it to a bucket (JSON records, AWS's
//! default key template, compression NONE unless asked otherwise), waits until the channel is
//! ACTIVE, then puts `count` records from 8 connections in PutRecords of 500, each record a
//! JSON object carrying its number. Meanwhile it reads the objects the server writes under
//! `DATA/buckets/<bucket>/<the key template's fixed prefix>` until every number has been seen,
//! and reports records/s from the first put to the poll that saw the last record, with the
//! objects and bytes written. The channel and the stream are deleted at the end.
//!
//! Why the objects rather than an API: DescribeChannel (AWS's shape) shows no delivered
//! position, and counting the records in the objects measures what a reader of the bucket
//! gets, the object's write, fsync and rename included; a record missing or delivered twice
//! shows. So the benchmark runs on the server's machine, against the embedded object store
//! (no `--s3-endpoint`), and is given the server's `--data-dir`.

use std::collections::HashSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::json;

use crate::client::{CallError, Client, Endpoint, Operation};
use crate::queue::{call, create_on_demand_stream, fill, DataOf};

/// How often the objects are looked for; bounds how late the last record can be noticed.
const POLL: Duration = Duration::from_millis(20);
/// How often the channel's status is checked while waiting for objects.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// The run fails when no new record showed up for this long.
const STALL_MAX: Duration = Duration::from_secs(30);
/// How long CreateChannel and DeleteChannel may take to settle.
const SETTLE_MAX: Duration = Duration::from_secs(30);
/// Most records one run may put (the numbers seen are kept as a bitmap).
pub const COUNT_MAX: u64 = 100_000_000;
/// Fewest bytes a record can have: `{"n":N,"p":""}` with N up to [`COUNT_MAX`].
pub const RECORD_BYTES_MIN: usize = 24;

/// The channel's CompressionType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn as_aws(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Gzip => "GZIP",
            Self::Zstd => "ZSTD",
        }
    }
}

/// What one run does.
#[derive(Debug, Clone)]
pub struct Plan {
    pub stream: String,
    pub bucket: String,
    /// The server's `--data-dir`.
    pub data_dir: PathBuf,
    pub compression: Compression,
    pub count: u64,
    pub record_bytes: usize,
    pub timeout: Duration,
}

pub async fn run(endpoint: &Arc<Endpoint>, plan: &Plan) -> Result<(), String> {
    let buckets = plan.data_dir.join("buckets");
    if !plan.data_dir.is_dir() {
        return Err(format!(
            "--data-dir {}: no such directory (give the server's --data-dir)",
            plan.data_dir.display()
        ));
    }
    let mut admin = Client::new(Arc::clone(endpoint), plan.timeout);
    let stream_arn = create_on_demand_stream(&mut admin, &plan.stream).await?;
    let channel_name = format!("{}-channel", plan.stream);
    let outcome = match create_channel(&mut admin, plan, &stream_arn, &channel_name).await {
        Ok(channel) => {
            let outcome = measure(endpoint, &mut admin, plan, &buckets, &channel).await;
            if let Err(error) = delete_channel(&mut admin, &channel.arn).await {
                eprintln!("riffle bench: {error}");
            }
            outcome
        }
        Err(error) => Err(error),
    };
    if let Err(error) = call(
        &mut admin,
        Operation::DeleteStream,
        json!({"StreamName": plan.stream}),
    )
    .await
    {
        eprintln!("riffle bench: {error}");
    }
    outcome
}

/// A channel as the run needs it.
struct Channel {
    arn: String,
    /// Where its objects appear, relative to the bucket.
    prefix: String,
}

async fn create_channel(
    admin: &mut Client,
    plan: &Plan,
    stream_arn: &str,
    name: &str,
) -> Result<Channel, String> {
    let account = stream_arn.split(':').nth(4).unwrap_or_default();
    let created = call(
        admin,
        Operation::CreateChannel,
        json!({
            "ChannelName": name,
            "ServiceExecutionRoleARN": format!("arn:aws:iam::{account}:role/riffle-bench"),
            "StreamConfigurationList": [{
                "StreamARN": stream_arn,
                "RecordConfiguration": {"RecordFormatType": "JSON"},
            }],
            "S3DestinationConfiguration": {"StorageConfiguration": {
                "BucketARN": format!("arn:aws:s3:::{}", plan.bucket),
                "ExpectedBucketOwner": account,
                "CompressionType": plan.compression.as_aws(),
            }},
        }),
    )
    .await?;
    let arn = created["ChannelDescription"]["ChannelARN"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let began = Instant::now();
    loop {
        let described = call(
            admin,
            Operation::DescribeChannel,
            json!({"ChannelARN": arn}),
        )
        .await?;
        let description = &described["ChannelDescription"];
        match description["ChannelStatus"].as_str().unwrap_or_default() {
            "ACTIVE" => {
                let template = description["S3DestinationConfiguration"]["StorageConfiguration"]
                    ["OutputKeyTemplate"]
                    .as_str()
                    .unwrap_or_default();
                let prefix = fixed_prefix(
                    template,
                    description["ChannelName"].as_str().unwrap_or_default(),
                    description["ChannelId"].as_str().unwrap_or_default(),
                );
                return Ok(Channel { arn, prefix });
            }
            "FAILED" => {
                return Err(format!(
                    "channel {name} FAILED: {}",
                    description["ChannelStatusReason"]
                ))
            }
            _ if began.elapsed() > SETTLE_MAX => {
                return Err(format!(
                    "channel {name} not ACTIVE after {} s",
                    SETTLE_MAX.as_secs()
                ))
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// DeleteChannel, then waits until the channel is gone (a stream with a channel cannot be
/// deleted).
async fn delete_channel(admin: &mut Client, arn: &str) -> Result<(), String> {
    call(admin, Operation::DeleteChannel, json!({"ChannelARN": arn})).await?;
    let body = Bytes::from(json!({"ChannelARN": arn}).to_string());
    let began = Instant::now();
    while began.elapsed() < SETTLE_MAX {
        match admin.call(Operation::DescribeChannel, body.clone()).await {
            Err(CallError::Api { error_type, .. }) if error_type == "ResourceNotFoundException" => {
                return Ok(())
            }
            Err(error) => return Err(format!("DescribeChannel: {error}")),
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    Err(format!(
        "channel {arn} still there {} s after DeleteChannel",
        SETTLE_MAX.as_secs()
    ))
}

/// The part of an object key every object of the channel shares: the key template with the
/// channel's name and id filled in, up to the last `/` before the first other variable.
fn fixed_prefix(template: &str, name: &str, id: &str) -> String {
    let filled = template
        .replace("!{channel-name}", name)
        .replace("!{channel-id}", id);
    let fixed = filled.split("!{").next().unwrap_or_default();
    fixed
        .rfind('/')
        .map_or_else(String::new, |end| fixed[..=end].to_owned())
}

/// Record `n` of the run: a JSON object of exactly `record_bytes` bytes (at least
/// [`RECORD_BYTES_MIN`]), base64 for PutRecords.
fn record_data(n: u64, record_bytes: usize) -> String {
    let head = format!("{{\"n\":{n},\"p\":\"");
    let pad = record_bytes.saturating_sub(head.len() + 2);
    let mut json = head.into_bytes();
    json.resize(json.len() + pad, b'x');
    json.extend_from_slice(b"\"}");
    base64::engine::general_purpose::STANDARD.encode(json)
}

/// The number of a line written by [`record_data`].
fn record_number(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"n\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if rest.get(digits) != Some(&b',') {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

async fn measure(
    endpoint: &Arc<Endpoint>,
    admin: &mut Client,
    plan: &Plan,
    buckets: &Path,
    channel: &Channel,
) -> Result<(), String> {
    let root = buckets.join(&plan.bucket).join(&channel.prefix);
    eprintln!(
        "riffle bench: channel against {}: {} records of {} bytes into {}, objects under \
         buckets/{}/{}",
        endpoint.address(),
        plan.count,
        plan.record_bytes,
        plan.stream,
        plan.bucket,
        channel.prefix
    );
    let started = Instant::now();
    let tally = Tally::new(root, plan.count, started);
    let puts = {
        let (endpoint, stream, count, timeout, record_bytes) = (
            Arc::clone(endpoint),
            plan.stream.clone(),
            plan.count,
            plan.timeout,
            plan.record_bytes,
        );
        tokio::spawn(async move {
            let data_of: DataOf = Arc::new(move |n: u64| record_data(n, record_bytes));
            fill(&endpoint, &stream, count, timeout, data_of)
                .await
                .map(|()| started.elapsed())
        })
    };
    let (put_time, delivered, tally) = watch(admin, channel, tally, puts).await?;
    let rate = tally.distinct as f64 / delivered.as_secs_f64();
    println!(
        "channel: {} records delivered in {:.2} s = {rate:.0} records/s (first put to last \
         record seen in an object; puts took {:.2} s, the last record showed {:.2} s after \
         the last put was answered; {} objects, {} bytes stored, {} bytes of records, \
         compression {})",
        tally.distinct,
        delivered.as_secs_f64(),
        put_time.as_secs_f64(),
        delivered.saturating_sub(put_time).as_secs_f64(),
        tally.objects.len(),
        tally.stored_bytes,
        tally.record_bytes,
        plan.compression.as_aws(),
    );
    if tally.duplicates > 0 || tally.foreign > 0 {
        println!(
            "channel: also {} records delivered more than once and {} lines that are no record \
             of this run",
            tally.duplicates, tally.foreign
        );
    }
    Ok(())
}

/// Polls the objects until every record was seen; returns how long the puts took and when the
/// last record was seen, both from the first put, and what the objects held.
async fn watch(
    admin: &mut Client,
    channel: &Channel,
    mut tally: Tally,
    mut puts: tokio::task::JoinHandle<Result<Duration, String>>,
) -> Result<(Duration, Duration, Tally), String> {
    let mut put_time = None;
    let mut last_progress = Instant::now();
    let mut last_status = Instant::now();
    let result = loop {
        if put_time.is_none() && puts.is_finished() {
            match (&mut puts).await {
                Ok(Ok(took)) => put_time = Some(took),
                Ok(Err(error)) => break Err(error),
                Err(error) => break Err(format!("the puts stopped: {error}")),
            }
        }
        let scanned = tokio::task::spawn_blocking(move || {
            let outcome = tally.scan();
            (tally, outcome)
        })
        .await;
        let outcome;
        (tally, outcome) = match scanned {
            Ok(scanned) => scanned,
            Err(error) => {
                puts.abort();
                return Err(format!("the object scan stopped: {error}"));
            }
        };
        match outcome {
            Ok(true) => last_progress = Instant::now(),
            Ok(false) => {}
            Err(error) => break Err(error),
        }
        if tally.distinct == tally.count {
            if let Some(put_time) = put_time {
                break Ok((put_time, tally.seen_at));
            }
            // Every record is in an object, so the puts were all answered, or are about to be.
            match (&mut puts).await {
                Ok(Ok(took)) => break Ok((took, tally.seen_at)),
                Ok(Err(error)) => break Err(error),
                Err(error) => break Err(format!("the puts stopped: {error}")),
            }
        }
        if last_progress.elapsed() > STALL_MAX {
            break Err(format!(
                "no new record in the objects for {} s ({} of {} seen): run the server with \
                 --channel-max-wait-ms 1000 (else a channel waits DataFreshnessInSeconds, 300 s), \
                 without --s3-endpoint, and give this benchmark the server's --data-dir",
                STALL_MAX.as_secs(),
                tally.distinct,
                tally.count
            ));
        }
        if last_status.elapsed() >= STATUS_EVERY {
            last_status = Instant::now();
            let described = call(
                admin,
                Operation::DescribeChannel,
                json!({"ChannelARN": channel.arn}),
            )
            .await?;
            let description = &described["ChannelDescription"];
            if description["ChannelStatus"] == "FAILED" {
                break Err(format!(
                    "the channel FAILED: {}",
                    description["ChannelStatusReason"]
                ));
            }
        }
        tokio::time::sleep(POLL).await;
    };
    puts.abort();
    result.map(|(put_time, seen_at)| (put_time, seen_at, tally))
}

/// What the objects read so far hold.
#[derive(Debug)]
struct Tally {
    /// The directory holding the channel's objects (and nothing else of the run).
    root: PathBuf,
    count: u64,
    /// One bit per record number.
    seen: Vec<u64>,
    distinct: u64,
    duplicates: u64,
    /// Lines that are not a record of this run.
    foreign: u64,
    /// Objects read, and their bytes as stored and once decompressed.
    objects: HashSet<PathBuf>,
    stored_bytes: u64,
    record_bytes: u64,
    /// When the last new record was found, from `started` (the first put).
    seen_at: Duration,
    started: Instant,
}

impl Tally {
    fn new(root: PathBuf, count: u64, started: Instant) -> Tally {
        Tally {
            root,
            count,
            seen: vec![0; count.div_ceil(64) as usize],
            distinct: 0,
            duplicates: 0,
            foreign: 0,
            objects: HashSet::new(),
            stored_bytes: 0,
            record_bytes: 0,
            seen_at: Duration::ZERO,
            started,
        }
    }

    /// Reads the objects not read yet; true if they held a record not seen before. Files
    /// whose names start with `.` are the store's temporaries, renamed into place when whole.
    fn scan(&mut self) -> Result<bool, String> {
        let before = self.distinct;
        let mut folders = vec![self.root.clone()];
        while let Some(folder) = folders.pop() {
            let entries = match std::fs::read_dir(&folder) {
                Ok(entries) => entries,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(format!("cannot list {}: {error}", folder.display())),
            };
            for entry in entries {
                let entry =
                    entry.map_err(|error| format!("cannot list {}: {error}", folder.display()))?;
                let path = entry.path();
                if entry.file_name().to_string_lossy().starts_with('.')
                    || self.objects.contains(&path)
                {
                    continue;
                }
                let kind = entry
                    .file_type()
                    .map_err(|error| format!("cannot stat {}: {error}", path.display()))?;
                if kind.is_dir() {
                    folders.push(path);
                } else if kind.is_file() {
                    let stored = match std::fs::read(&path) {
                        Ok(stored) => stored,
                        Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(error) => {
                            return Err(format!("cannot read {}: {error}", path.display()))
                        }
                    };
                    let body = decompress(&path, &stored)?;
                    self.stored_bytes += stored.len() as u64;
                    self.record_bytes += body.len() as u64;
                    let distinct = self.distinct;
                    self.count_lines(&body);
                    if self.distinct > distinct {
                        self.seen_at = self.started.elapsed();
                    }
                    self.objects.insert(path);
                }
            }
        }
        Ok(self.distinct > before)
    }

    fn count_lines(&mut self, body: &[u8]) {
        for line in body.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
            match record_number(line).filter(|&n| n < self.count) {
                Some(n) => {
                    let (word, bit) = ((n / 64) as usize, 1u64 << (n % 64));
                    if self.seen[word] & bit == 0 {
                        self.seen[word] |= bit;
                        self.distinct += 1;
                    } else {
                        self.duplicates += 1;
                    }
                }
                None => self.foreign += 1,
            }
        }
    }
}

/// An object's records, decompressed as its extension says (`.gz`, `.zst`).
fn decompress(path: &Path, stored: &[u8]) -> Result<Vec<u8>, String> {
    let name = path.to_string_lossy();
    let failed = |error: std::io::Error| format!("cannot decompress {name}: {error}");
    if name.ends_with(".gz") {
        let mut body = Vec::new();
        flate2::read::MultiGzDecoder::new(stored)
            .read_to_end(&mut body)
            .map_err(failed)?;
        Ok(body)
    } else if name.ends_with(".zst") {
        zstd::stream::decode_all(stored).map_err(failed)
    } else {
        Ok(stored.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::io::Write as _;

    fn decoded(n: u64, record_bytes: usize) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(record_data(n, record_bytes))
            .unwrap()
    }

    #[test]
    fn records_are_json_of_the_asked_size_carrying_their_number() {
        for n in [0, 7, 199_999, COUNT_MAX - 1] {
            let data = decoded(n, 100);
            assert_eq!(data.len(), 100);
            let value: Value = serde_json::from_slice(&data).unwrap();
            assert_eq!(value["n"], n);
            assert_eq!(record_number(&data), Some(n));
        }
        assert_eq!(
            decoded(COUNT_MAX - 1, RECORD_BYTES_MIN).len(),
            RECORD_BYTES_MIN
        );
        assert_eq!(record_number(b"{\"n\":12}"), None);
        assert_eq!(record_number(b"{\"errorCode\":\"InvalidJSON\"}"), None);
    }

    #[test]
    fn the_fixed_prefix_of_the_default_template_is_the_channels_folder() {
        let template = "kinesis-channel/!{channel-name}/!{channel-id}/!{yyyy}/!{MM}/!{dd}/!{HH}/!{channel-name}-!{channel-id}-!{yyyy}-!{MM}-!{dd}-!{HH}-!{mm}!{extension}";
        assert_eq!(
            fixed_prefix(template, "c", "id-1"),
            "kinesis-channel/c/id-1/"
        );
        assert_eq!(fixed_prefix("!{yyyy}/x!{extension}", "c", "i"), "");
        assert_eq!(fixed_prefix("out/!{channel-name}-!{mm}", "c", "i"), "out/");
    }

    #[test]
    fn a_scan_counts_new_objects_once_in_every_compression_and_skips_temporaries() {
        let root = std::env::temp_dir().join(format!(
            "riffle-bench-channel-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        let folder = root.join("2026/12/07");
        std::fs::create_dir_all(&folder).unwrap();
        let lines = |numbers: &[u64]| {
            let mut body = Vec::new();
            for &n in numbers {
                body.extend_from_slice(&decoded(n, 40));
                body.push(b'\n');
            }
            body
        };
        std::fs::write(folder.join("a.json"), lines(&[0, 1])).unwrap();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&lines(&[2, 1])).unwrap();
        std::fs::write(folder.join("b.json.gz"), gzip.finish().unwrap()).unwrap();
        std::fs::write(folder.join(".c.json.zst.tmp"), b"partial").unwrap();
        let mut tally = Tally::new(root.clone(), 5, Instant::now());
        assert!(tally.scan().unwrap());
        assert_eq!(
            (tally.distinct, tally.duplicates, tally.objects.len()),
            (3, 1, 2)
        );
        assert!(
            !tally.scan().unwrap(),
            "objects already read are not read again"
        );
        let zstd = zstd::stream::encode_all(&lines(&[3, 4])[..], 1).unwrap();
        std::fs::write(folder.join("c.json.zst"), zstd).unwrap();
        std::fs::write(folder.join("d.json"), b"{\"n\":9,\"p\":\"\"}\nnot json\n").unwrap();
        assert!(tally.scan().unwrap());
        assert_eq!(
            (tally.distinct, tally.foreign, tally.objects.len()),
            (5, 2, 4)
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_missing_folder_is_no_object_yet() {
        let absent =
            std::env::temp_dir().join(format!("riffle-bench-absent-{}", std::process::id()));
        let mut tally = Tally::new(absent, 1, Instant::now());
        assert!(!tally.scan().unwrap());
        assert_eq!(tally.distinct, 0);
    }
}
