//! `riffle put`: the lines of stdin as records, in PutRecords batches, like kcat's producer.
//!
//! Lines are read as bytes (a line ends at `\n`, which is not part of the record; nothing
//! else is changed, so `riffle tail --format text` gives the same bytes back). Empty lines are
//! skipped. Records are gathered into batches of at most 500 records and 5 MiB (data and
//! partition keys), which go out when full, at the end of input, or when no line has come for
//! `--linger-ms` — so `tail -f log | riffle put` sends as it reads.
//!
//! Batches go one at a time, in input order, so records of one key land in order. A
//! PutRecords answer may refuse single entries (throttled: ProvisionedThroughputExceeded, or
//! InternalFailure); those, and only those, are sent again after an exponential backoff with
//! jitter, before the next batch, up to `--attempts` times. As with any PutRecords client, a
//! retried record lands after the records of its batch that were accepted the first time.
//! Anything that cannot be delivered stops the command with exit status 1 and says which
//! lines were delivered.

use std::io::{BufRead, IsTerminal};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use tokio::sync::mpsc;

use super::connect::{ConnectArgs, Connection};
use super::output::Progress;
use super::{CliError, CliResult};

/// PutRecords' limit on records per call.
pub const BATCH_RECORDS_MAX: usize = 500;
/// The bytes (data and partition keys) of one call: half of AWS's 10 MiB request limit, which
/// keeps a call's upload short and well inside what older servers accept.
pub const BATCH_BYTES_MAX: usize = 5 * 1024 * 1024;
/// Kinesis's limit on a partition key's length, in Unicode characters.
const PARTITION_KEY_CHARS_MAX: usize = 256;
/// The first retry waits about this long; each further one twice as long, up to the cap.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Lines read ahead of the batcher.
const READ_AHEAD_LINES: usize = 4096;

pub const PUT_HELP: &str = concat!(
    "\
Each line of stdin (without its \\n) becomes one record; empty lines are skipped. The partition
key is --key, or the field --key-field of the line read as a JSON object (a top-level name, or
a JSON Pointer such as /user/id; strings are taken as they are, numbers and booleans as
written), or else a random key per record, which spreads records over all shards.

Records go in PutRecords batches of at most 500 records and 5 MiB, one batch at a time, so
the records of a key keep their order. Entries refused as throttled or failed are retried with
exponential backoff (--attempts). When records cannot be delivered, riffle put stops with exit
status 1 and says which lines were delivered. Progress shows on a terminal; in a pipe nothing
is printed unless something fails.

Example: printf '%s\\n' '{\"user\":\"ann\",\"n\":1}' | riffle put orders --key-field user

",
    super::connect_help!()
);

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("partition_key").args(["key", "key_field"]))]
pub struct PutArgs {
    /// The stream's name.
    stream: String,
    /// The partition key of every record.
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// Read each line as a JSON object and take its partition key from this field (a name, or
    /// a JSON Pointer starting with /).
    #[arg(long, value_name = "FIELD")]
    key_field: Option<String>,
    /// Sends of a refused entry before giving up (1 = no retry).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    attempts: u32,
    /// Send a partial batch when no line has come for this many milliseconds.
    #[arg(long, default_value_t = 100)]
    linger_ms: u64,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Where partition keys come from.
enum KeySource {
    Fixed(String),
    Field(String),
    Random,
}

impl KeySource {
    /// The partition key of line `line_number`, or why it has none.
    fn key_of(&self, line: &[u8]) -> Result<String, String> {
        let key = match self {
            KeySource::Fixed(key) => key.clone(),
            KeySource::Random => uuid::Uuid::new_v4().simple().to_string(),
            KeySource::Field(field) => {
                let value: serde_json::Value =
                    serde_json::from_slice(line).map_err(|error| format!("not JSON ({error})"))?;
                if !value.is_object() {
                    return Err("not a JSON object".into());
                }
                let found = if field.starts_with('/') {
                    value.pointer(field)
                } else {
                    value.get(field)
                };
                match found {
                    Some(serde_json::Value::String(text)) => text.clone(),
                    Some(number @ serde_json::Value::Number(_)) => number.to_string(),
                    Some(boolean @ serde_json::Value::Bool(_)) => boolean.to_string(),
                    Some(other) => {
                        return Err(format!(
                            "field {field} is {}, not a string or number",
                            json_kind(other)
                        ))
                    }
                    None => return Err(format!("no field {field}")),
                }
            }
        };
        let chars = key.chars().count();
        if chars == 0 {
            return Err("the partition key is empty".into());
        }
        if chars > PARTITION_KEY_CHARS_MAX {
            return Err(format!(
                "the partition key has {chars} characters (at most {PARTITION_KEY_CHARS_MAX})"
            ));
        }
        Ok(key)
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A record waiting to be sent, with the input line it came from.
struct Pending {
    line_number: u64,
    partition_key: String,
    data: Vec<u8>,
}

impl Pending {
    fn bytes(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// Counts for the progress line and the messages.
#[derive(Default)]
struct Tally {
    records: u64,
    bytes: u64,
    retried: u64,
    /// The last input line all of whose records (and all before) are delivered.
    delivered_through_line: u64,
    /// `records` when `delivered_through_line` was set.
    records_through_line: u64,
}

/// What the stdin reader hands over.
enum Input {
    Line { number: u64, bytes: Vec<u8> },
    Failed(std::io::Error),
}

pub async fn run(args: PutArgs) -> CliResult<()> {
    let connection = Connection::open(&args.connect).await?;
    let keys = match (&args.key, &args.key_field) {
        (Some(key), _) => KeySource::Fixed(key.clone()),
        (None, Some(field)) => KeySource::Field(field.clone()),
        (None, None) => KeySource::Random,
    };
    if let KeySource::Fixed(key) = &keys {
        keys.key_of(b"")
            .map_err(|error| CliError::new(format!("--key {key:?}: {error}")))?;
    }
    let mut progress = Progress::on_terminal();
    if progress.enabled() && std::io::stdin().is_terminal() {
        progress.note("reading records from stdin, one per line; Ctrl-D ends");
    }

    let (sender, mut receiver) = mpsc::channel(READ_AHEAD_LINES);
    std::thread::Builder::new()
        .name("riffle-put-stdin".into())
        .spawn(move || read_lines(sender))
        .map_err(|error| CliError::new(format!("cannot start the stdin reader: {error}")))?;

    let started = Instant::now();
    let linger = Duration::from_millis(args.linger_ms);
    let mut putter = Putter {
        connection: &connection,
        stream: &args.stream,
        attempts: args.attempts,
        tally: Tally::default(),
        progress,
    };
    let mut batch: Vec<Pending> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut deadline = tokio::time::Instant::now();
    loop {
        let input = if batch.is_empty() {
            receiver.recv().await
        } else {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(input) => input,
                Err(_) => {
                    putter.send(std::mem::take(&mut batch)).await?;
                    batch_bytes = 0;
                    continue;
                }
            }
        };
        let (number, line) = match input {
            None => break,
            Some(Input::Failed(error)) => {
                putter.send(std::mem::take(&mut batch)).await?;
                return Err(putter.stopped(format!("cannot read stdin: {error}")));
            }
            Some(Input::Line { number, bytes }) => (number, bytes),
        };
        if line.is_empty() {
            continue;
        }
        let partition_key = match keys.key_of(&line) {
            Ok(key) => key,
            Err(error) => {
                putter.send(std::mem::take(&mut batch)).await?;
                return Err(putter.stopped(format!("line {number}: {error}")));
            }
        };
        let record = Pending {
            line_number: number,
            partition_key,
            data: line,
        };
        if !batch.is_empty()
            && (batch.len() == BATCH_RECORDS_MAX || batch_bytes + record.bytes() > BATCH_BYTES_MAX)
        {
            putter.send(std::mem::take(&mut batch)).await?;
            batch_bytes = 0;
        }
        if batch.is_empty() {
            deadline = tokio::time::Instant::now() + linger;
        }
        batch_bytes += record.bytes();
        batch.push(record);
    }
    putter.send(batch).await?;
    let tally = &putter.tally;
    let summary = format!(
        "put {} record{} ({}) into {} in {:.1} s{}",
        tally.records,
        if tally.records == 1 { "" } else { "s" },
        human_bytes(tally.bytes),
        args.stream,
        started.elapsed().as_secs_f64(),
        retried_note(tally.retried)
    );
    putter.progress.finish(Some(summary));
    Ok(())
}

/// Reads stdin line by line (bytes, any encoding) into the channel. A thread of its own, not
/// a tokio blocking task: when the command stops early, the process must not wait at exit for
/// a read that may never return (a terminal, `tail -f`).
fn read_lines(sender: mpsc::Sender<Input>) {
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, std::io::stdin().lock());
    let mut number = 0u64;
    loop {
        let mut bytes = Vec::new();
        match reader.read_until(b'\n', &mut bytes) {
            Ok(0) => return,
            Ok(_) => {
                number += 1;
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                }
                if sender.blocking_send(Input::Line { number, bytes }).is_err() {
                    return;
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                let _ = sender.blocking_send(Input::Failed(error));
                return;
            }
        }
    }
}

/// Sends batches, retrying refused entries.
struct Putter<'a> {
    connection: &'a Connection,
    stream: &'a str,
    attempts: u32,
    tally: Tally,
    progress: Progress,
}

impl Putter<'_> {
    /// The error that stops the command, saying what was delivered before.
    fn stopped(&mut self, what: String) -> CliError {
        self.progress.finish(None);
        let tally = &self.tally;
        let plural = |n: u64| if n == 1 { "record was" } else { "records were" };
        let delivered = match (tally.records, tally.delivered_through_line) {
            (0, _) => "nothing was delivered".to_owned(),
            (records, 0) => format!("{records} {} delivered", plural(records)),
            (records, line) if records == tally.records_through_line => format!(
                "{records} {} delivered: every line up to line {line}",
                plural(records)
            ),
            (records, line) => format!(
                "{records} {} delivered: every line up to line {line}, and {} after it",
                plural(records),
                records - tally.records_through_line
            ),
        };
        CliError::new(format!("{what}; {delivered}"))
    }

    /// Sends a batch until every record is accepted, or fails.
    async fn send(&mut self, batch: Vec<Pending>) -> CliResult<()> {
        let Some(last_line) = batch.last().map(|record| record.line_number) else {
            return Ok(());
        };
        let mut pending = batch;
        let mut attempt = 1u32;
        loop {
            let entries = pending
                .iter()
                .map(|record| {
                    PutRecordsRequestEntry::builder()
                        .data(Blob::new(record.data.clone()))
                        .partition_key(&record.partition_key)
                        .build()
                        .map_err(|error| CliError::new(error.to_string()))
                })
                .collect::<CliResult<Vec<_>>>()?;
            let result = self
                .connection
                .client
                .put_records()
                .stream_name(self.stream)
                .set_records(Some(entries))
                .send()
                .await;
            let output = match result {
                Ok(output) => output,
                Err(error) => {
                    let first = pending.first().map_or(0, |record| record.line_number);
                    let what = format!(
                        "{} (the batch of lines {first} to {last_line} was not delivered)",
                        self.connection.error(error)
                    );
                    return Err(self.stopped(what));
                }
            };
            let results = output.records();
            if results.len() != pending.len() {
                return Err(self.stopped(format!(
                    "the server answered {} results for {} records",
                    results.len(),
                    pending.len()
                )));
            }
            let mut refused = Vec::new();
            let mut last_refusal = None;
            for (record, result) in pending.into_iter().zip(results) {
                match result.error_code() {
                    None => {
                        self.tally.records += 1;
                        self.tally.bytes += record.data.len() as u64;
                    }
                    Some(code) => {
                        let message = result.error_message().unwrap_or_default().to_owned();
                        let retriable = matches!(
                            code,
                            "ProvisionedThroughputExceededException" | "InternalFailure"
                        );
                        if !retriable {
                            let what = format!("line {}: {code}: {message}", record.line_number);
                            return Err(self.stopped(what));
                        }
                        last_refusal = Some((code.to_owned(), message, record.line_number));
                        refused.push(record);
                    }
                }
            }
            self.report_progress();
            if refused.is_empty() {
                self.tally.delivered_through_line = last_line;
                self.tally.records_through_line = self.tally.records;
                return Ok(());
            }
            if attempt >= self.attempts {
                let (code, message, line) = last_refusal.unwrap_or_default();
                let what = format!(
                    "{} record{} could not be delivered after {attempt} attempt{} (line {line}: \
                     {code}: {message})",
                    refused.len(),
                    if refused.len() == 1 { "" } else { "s" },
                    if attempt == 1 { "" } else { "s" },
                );
                return Err(self.stopped(what));
            }
            self.tally.retried += refused.len() as u64;
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
            pending = refused;
        }
    }

    fn report_progress(&mut self) {
        let tally = &self.tally;
        let (records, bytes, retried) = (tally.records, tally.bytes, tally.retried);
        self.progress.update(|| {
            format!(
                "put {records} records ({}){}",
                human_bytes(bytes),
                retried_note(retried)
            )
        });
    }
}

/// The wait before retry number `attempt` (1-based): half the exponential step plus a random
/// part of the other half, so that many producers throttled together do not retry together.
pub(super) fn backoff(attempt: u32) -> Duration {
    let step = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(BACKOFF_MAX);
    let random = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
    step / 2 + step / 2 * random / 1000
}

fn retried_note(retried: u64) -> String {
    if retried == 0 {
        String::new()
    } else {
        format!(", {retried} retried")
    }
}

/// `1.2 MiB`, `512 B`.
pub(super) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys_come_from_the_chosen_source() {
        let field = KeySource::Field("user".into());
        assert_eq!(field.key_of(br#"{"user":"ann","n":1}"#).unwrap(), "ann");
        assert_eq!(field.key_of(br#"{"user":42}"#).unwrap(), "42");
        assert_eq!(field.key_of(br#"{"user":true}"#).unwrap(), "true");
        assert!(field
            .key_of(br#"{"name":"ann"}"#)
            .unwrap_err()
            .contains("no field user"));
        assert!(field
            .key_of(br#"{"user":null}"#)
            .unwrap_err()
            .contains("null"));
        assert!(field
            .key_of(br#"{"user":""}"#)
            .unwrap_err()
            .contains("empty"));
        assert!(field
            .key_of(b"[1,2]")
            .unwrap_err()
            .contains("not a JSON object"));
        assert!(field.key_of(b"plain").unwrap_err().contains("not JSON"));
        let long = format!(r#"{{"user":"{}"}}"#, "x".repeat(257));
        assert!(field.key_of(long.as_bytes()).unwrap_err().contains("257"));

        let pointer = KeySource::Field("/user/id".into());
        assert_eq!(pointer.key_of(br#"{"user":{"id":"u-7"}}"#).unwrap(), "u-7");

        assert_eq!(KeySource::Fixed("k".into()).key_of(b"x").unwrap(), "k");
        let random = KeySource::Random;
        assert_ne!(random.key_of(b"x").unwrap(), random.key_of(b"x").unwrap());
    }

    #[test]
    fn backoff_grows_to_its_cap() {
        for attempt in 1..20 {
            let wait = backoff(attempt);
            let step = BACKOFF_BASE
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(BACKOFF_MAX);
            assert!(wait >= step / 2 && wait <= step, "{attempt}: {wait:?}");
        }
        assert!(backoff(30) <= BACKOFF_MAX);
    }

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
