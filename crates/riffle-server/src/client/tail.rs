//! `riffle tail`: a stream's records, from every shard, in lineage order.
//!
//! One task per shard polls GetRecords and hands its pages to the printer over one channel,
//! then, when the shard is closed and read to its end, the shard's children (GetRecords'
//! `ChildShards`, or ListShards when a server sends none). A child starts — at TRIM_HORIZON —
//! only once every parent it has among the shards being read has ended and its records have
//! been printed: a split's children wait for their parent, a merge's child for both parents.
//! That is the order AWS asks consumers to keep, and what keeps the records of a key in order
//! across a reshard. Records of different shards interleave as they come.
//!
//! A shard asks again `--poll-ms` after an empty answer, and never more than five times a
//! second (AWS's GetRecords limit per shard); a throttled call waits and tries again; an
//! expired iterator is renewed after the last record seen.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::{Record, Shard, ShardFilter, ShardFilterType, ShardIteratorType};
use tokio::sync::mpsc;

use super::admin::{list_shards, write_stdout};
use super::connect::{ConnectArgs, Connection};
use super::kpl::{self, Deaggregated};
use super::output::{self, Format, Printed, Progress};
use super::{CliError, CliResult};

/// GetRecords' largest `Limit`.
const GET_RECORDS_LIMIT_MAX: u64 = 10_000;
/// The least time between two GetRecords calls on one shard (AWS allows five a second).
const CALL_SPACING: Duration = Duration::from_millis(200);
/// The longest wait after a throttled GetRecords.
pub(super) const THROTTLE_WAIT_MAX: Duration = Duration::from_secs(5);
/// Pages in flight between the shard readers and the printer.
const PAGES_IN_FLIGHT: usize = 16;

pub const TAIL_HELP: &str = concat!(
    "\
Every shard is read, and after a split or merge its children, each child only once all its
parents have been read to their end: the records of a key come out in the order they were
written. KPL-aggregated records are split into their user records (--raw keeps them whole).

Output, one record per line:
  text  the data as it is when it is UTF-8 without control characters other than tab (the
        lines `riffle put` sent come back byte for byte); other records are escaped onto one
        line: \\\\ \\n \\r \\t, \\xNN for other control characters and bytes that are not UTF-8
  json  {\"shard_id\", \"sequence_number\", \"sub_sequence_number\" (KPL user records),
        \"partition_key\", \"explicit_hash_key\" (KPL, if set), \"arrival\" (RFC 3339, UTC),
        \"data\" (a string, when UTF-8) or \"data_base64\"}: exact, for programs
  hex   the data in hexadecimal
On a terminal (or with --meta) text and hex lines start with the arrival time (UTC), the shard
and the partition key.

--from: trim-horizon (the oldest record), latest (only new records; the default), a time
(2026-05-01T12:00:00Z, or -30s / -10m / -2h / -1d for that long ago), or a sequence number
(reads the shard holding it, from that record on, and that shard's children).

",
    super::connect_help!()
);

#[derive(clap::Args)]
pub struct TailArgs {
    /// The stream's name.
    stream: String,
    /// Where to start: trim-horizon, latest, a time (RFC 3339, or -10m for ten minutes ago),
    /// or a sequence number.
    #[arg(long, default_value = "latest", allow_hyphen_values = true, value_parser = parse_start)]
    from: Start,
    /// Read only this shard (a shard id, or its number); repeat for more. Their children are
    /// not followed: riffle tail ends when these shards end.
    #[arg(long = "shard", value_name = "ID")]
    shards: Vec<String>,
    /// How records are printed.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Stop after this many records.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max: Option<u64>,
    /// Stop once every shard is read up to its newest record, instead of waiting for more.
    #[arg(long)]
    no_follow: bool,
    /// Start text and hex lines with the arrival time, shard and partition key (the default
    /// when stdout is a terminal).
    #[arg(long, overrides_with = "no_meta")]
    meta: bool,
    /// Print the data alone, even on a terminal.
    #[arg(long, overrides_with = "meta")]
    no_meta: bool,
    /// Print KPL aggregates as the single records they are stored as.
    #[arg(long)]
    raw: bool,
    /// Milliseconds to wait before asking a shard again after it had nothing new.
    #[arg(long, default_value_t = 500)]
    poll_ms: u64,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// `--from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    TrimHorizon,
    Latest,
    /// Milliseconds since the epoch.
    Timestamp(i64),
    Sequence(String),
}

impl Start {
    fn describe(&self) -> String {
        match self {
            Start::TrimHorizon => "the oldest record".into(),
            Start::Latest => "new records".into(),
            Start::Timestamp(ms) => output::rfc3339_ms(*ms),
            Start::Sequence(sequence) => format!("sequence number {sequence}"),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// Parses `--from`.
pub fn parse_start(text: &str) -> Result<Start, String> {
    let lower = text.trim().to_ascii_lowercase().replace('_', "-");
    match lower.as_str() {
        "trim-horizon" | "oldest" | "earliest" => return Ok(Start::TrimHorizon),
        "latest" | "now" => return Ok(Start::Latest),
        _ => {}
    }
    if !lower.is_empty() && lower.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Start::Sequence(lower));
    }
    if let Some(ago) = lower.strip_prefix('-') {
        let split = ago.find(|c: char| !c.is_ascii_digit()).unwrap_or(ago.len());
        let (number, unit) = ago.split_at(split);
        let unit_ms: i64 = match unit {
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => {
                return Err(format!(
                    "{text:?}: a time ago is a number and s, m, h or d, as -10m"
                ))
            }
        };
        let number: i64 = number
            .parse()
            .map_err(|_| format!("{text:?}: a time ago is a number and s, m, h or d, as -10m"))?;
        return Ok(Start::Timestamp(
            now_ms().saturating_sub(number.saturating_mul(unit_ms)),
        ));
    }
    match time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339) {
        Ok(at) => Ok(Start::Timestamp(
            (at.unix_timestamp_nanos() / 1_000_000).clamp(0, i128::from(i64::MAX)) as i64,
        )),
        Err(_) => Err(format!(
            "{text:?} is not trim-horizon, latest, a time (RFC 3339 such as \
             2026-05-01T12:00:00Z, or -10m) or a sequence number"
        )),
    }
}

/// Where a shard reader starts.
#[derive(Clone, Debug)]
enum Position {
    TrimHorizon,
    Latest,
    AtTimestamp(i64),
    AtSequence(String),
    AfterSequence(String),
}

impl Position {
    fn from_start(start: &Start) -> Position {
        match start {
            Start::TrimHorizon => Position::TrimHorizon,
            Start::Latest => Position::Latest,
            Start::Timestamp(ms) => Position::AtTimestamp(*ms),
            Start::Sequence(sequence) => Position::AtSequence(sequence.clone()),
        }
    }
}

/// What a shard reader tells the printer.
enum Event {
    Records {
        shard_id: Arc<str>,
        records: Vec<Record>,
    },
    /// The shard is closed and read to its end; these are its children and their parents.
    Ended {
        shard_id: Arc<str>,
        children: Vec<(String, Vec<String>)>,
    },
    /// `--no-follow`: the shard is read up to its newest record.
    CaughtUp,
    Failed(CliError),
}

/// What every shard reader shares.
struct Readers {
    connection: Connection,
    stream: String,
    poll: Duration,
    no_follow: bool,
    limit: i32,
    events: mpsc::Sender<Event>,
}

/// The lineage bookkeeping: which shards are known, started and ended.
struct Lineage {
    /// Known shards and their parents.
    parents: HashMap<String, Vec<String>>,
    started: HashSet<String>,
    ended: HashSet<String>,
    /// Start children of ended shards (not with `--shard`).
    follow_children: bool,
}

impl Lineage {
    /// Shards known but not started whose known parents have all ended, in id order.
    fn ready(&self) -> Vec<String> {
        let mut ready: Vec<String> = self
            .parents
            .iter()
            .filter(|(shard, parents)| {
                !self.started.contains(*shard)
                    && parents.iter().all(|parent| {
                        self.ended.contains(parent) || !self.parents.contains_key(parent)
                    })
            })
            .map(|(shard, _)| shard.clone())
            .collect();
        ready.sort();
        ready
    }
}

pub(super) fn parents_of(shard: &Shard) -> Vec<String> {
    [shard.parent_shard_id(), shard.adjacent_parent_shard_id()]
        .into_iter()
        .flatten()
        .map(str::to_owned)
        .collect()
}

/// The trailing number of a shard id (`shardId-000000000007`, `shard-7` and `7` are all 7),
/// which is how AWS reads shard ids.
fn shard_number(id: &str) -> Option<u64> {
    id.rsplit('-').next().and_then(|digits| digits.parse().ok())
}

/// The listed shards `wanted` names (exactly, or by number).
fn pick_shards(stream: &str, listed: &[Shard], wanted: &[String]) -> CliResult<Vec<Shard>> {
    let mut picked: Vec<Shard> = Vec::new();
    for name in wanted {
        let found = listed
            .iter()
            .find(|shard| shard.shard_id() == name)
            .or_else(|| {
                let number = shard_number(name)?;
                listed
                    .iter()
                    .find(|shard| shard_number(shard.shard_id()) == Some(number))
            });
        match found {
            Some(shard) => {
                if !picked.iter().any(|p| p.shard_id() == shard.shard_id()) {
                    picked.push(shard.clone());
                }
            }
            None => {
                let ids: Vec<&str> = listed.iter().map(Shard::shard_id).collect();
                return Err(CliError::new(format!(
                    "stream {stream} has no shard {name} (it has {})",
                    ids.join(", ")
                )));
            }
        }
    }
    Ok(picked)
}

pub async fn run(args: TailArgs) -> CliResult<()> {
    let connection = Connection::open(&args.connect).await?;
    let stdout_is_terminal = std::io::stdout().is_terminal();
    let meta = (args.meta || stdout_is_terminal) && !args.no_meta;
    let mut progress = Progress::on_terminal();

    // The shards to start with, and where.
    let filter = match (&args.from, args.shards.is_empty()) {
        (Start::Latest, true) => Some(ShardFilterType::AtLatest),
        (Start::Timestamp(_), true) => Some(ShardFilterType::FromTimestamp),
        _ => None,
    };
    let filter = match filter {
        Some(kind) => {
            let mut builder = ShardFilter::builder().r#type(kind);
            if let Start::Timestamp(ms) = &args.from {
                builder = builder.timestamp(DateTime::from_millis(*ms));
            }
            Some(
                builder
                    .build()
                    .map_err(|error| CliError::new(error.to_string()))?,
            )
        }
        None => None,
    };
    let listed = list_shards(&connection, &args.stream, filter).await?;
    let candidates = if args.shards.is_empty() {
        listed.clone()
    } else {
        pick_shards(&args.stream, &listed, &args.shards)?
    };
    let mut lineage = Lineage {
        parents: HashMap::new(),
        started: HashSet::new(),
        ended: HashSet::new(),
        follow_children: args.shards.is_empty(),
    };
    let roots: Vec<String> = match &args.from {
        Start::Sequence(sequence) => {
            vec![find_shard_of_sequence(&connection, &args.stream, &candidates, sequence).await?]
        }
        _ => {
            for shard in &candidates {
                lineage
                    .parents
                    .insert(shard.shard_id().to_owned(), parents_of(shard));
            }
            if lineage.follow_children {
                lineage.ready()
            } else {
                candidates.iter().map(|s| s.shard_id().to_owned()).collect()
            }
        }
    };
    for root in &roots {
        lineage.parents.entry(root.clone()).or_default();
    }

    let limit = args
        .max
        .unwrap_or(GET_RECORDS_LIMIT_MAX)
        .clamp(1, GET_RECORDS_LIMIT_MAX) as i32;
    let (events, mut receiver) = mpsc::channel(PAGES_IN_FLIGHT);
    let readers = Arc::new(Readers {
        connection,
        stream: args.stream.clone(),
        poll: Duration::from_millis(args.poll_ms),
        no_follow: args.no_follow,
        limit,
        events,
    });
    let mut tasks = tokio::task::JoinSet::new();
    let start = Position::from_start(&args.from);
    for root in &roots {
        lineage.started.insert(root.clone());
        tasks.spawn(read_shard(
            Arc::clone(&readers),
            Arc::from(root.as_str()),
            start.clone(),
        ));
    }
    let mut running = roots.len();
    progress.note(&format!(
        "following {} shard{} of {} from {}{}",
        running,
        if running == 1 { "" } else { "s" },
        args.stream,
        args.from.describe(),
        if args.max.is_none() && !args.no_follow {
            " (Ctrl-C stops)"
        } else {
            ""
        }
    ));

    let mut printer = Printer {
        format: args.format,
        meta,
        dim: meta && stdout_is_terminal,
        deaggregate: !args.raw,
        remaining: args.max,
    };
    while running > 0 {
        let Some(event) = receiver.recv().await else {
            break;
        };
        match event {
            Event::Records { shard_id, records } => {
                let mut out = Vec::new();
                let done = printer.print(&shard_id, &records, &mut out);
                write_stdout(&out)?;
                if done {
                    return Ok(());
                }
            }
            Event::Ended { shard_id, children } => {
                running -= 1;
                lineage.ended.insert(shard_id.to_string());
                if !lineage.follow_children {
                    continue;
                }
                for (child, parents) in children {
                    lineage.parents.entry(child).or_insert(parents);
                }
                let ready = lineage.ready();
                if ready.is_empty() {
                    progress.note(&format!("{shard_id} ended"));
                } else {
                    progress.note(&format!("{shard_id} ended; reading {}", ready.join(", ")));
                }
                for child in ready {
                    lineage.started.insert(child.clone());
                    running += 1;
                    tasks.spawn(read_shard(
                        Arc::clone(&readers),
                        Arc::from(child.as_str()),
                        Position::TrimHorizon,
                    ));
                }
            }
            Event::CaughtUp => running -= 1,
            Event::Failed(error) => return Err(error),
        }
    }
    Ok(())
}

/// Turns records into output lines and counts them against `--max`.
struct Printer {
    format: Format,
    meta: bool,
    dim: bool,
    deaggregate: bool,
    remaining: Option<u64>,
}

impl Printer {
    /// Appends the lines of `records`; true once `--max` records are printed.
    fn print(&mut self, shard_id: &str, records: &[Record], out: &mut Vec<u8>) -> bool {
        for record in records {
            let arrival_ms = record
                .approximate_arrival_timestamp()
                .and_then(|at| at.to_millis().ok());
            let data = record.data().as_ref();
            let outer = Printed {
                shard_id,
                sequence_number: record.sequence_number(),
                sub_sequence_number: None,
                partition_key: record.partition_key().unwrap_or_default(),
                explicit_hash_key: None,
                arrival_ms,
                data,
            };
            let deaggregated = if self.deaggregate {
                kpl::deaggregate(data)
            } else {
                Deaggregated::Plain
            };
            match deaggregated {
                Deaggregated::Records(users) => {
                    for (index, user) in users.iter().enumerate() {
                        let inner = Printed {
                            sub_sequence_number: Some(index as u64),
                            partition_key: &user.partition_key,
                            explicit_hash_key: user.explicit_hash_key.as_deref(),
                            data: &user.data,
                            ..outer
                        };
                        if self.line(&inner, out) {
                            return true;
                        }
                    }
                }
                Deaggregated::Malformed(error) => {
                    eprintln!(
                        "riffle tail: record {} of {shard_id} looks like a KPL aggregate but \
                         cannot be read ({error}); printed whole",
                        record.sequence_number()
                    );
                    if self.line(&outer, out) {
                        return true;
                    }
                }
                Deaggregated::Plain => {
                    if self.line(&outer, out) {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Appends one record's line; true once `--max` records are printed.
    fn line(&mut self, record: &Printed<'_>, out: &mut Vec<u8>) -> bool {
        if self.remaining == Some(0) {
            return true;
        }
        match self.format {
            Format::Json => out.extend_from_slice(output::json_line(record).as_bytes()),
            Format::Text | Format::Hex => {
                if self.meta {
                    if self.dim {
                        out.extend_from_slice(b"\x1b[2m");
                    }
                    let time = record.arrival_ms.map(output::clock_ms).unwrap_or_default();
                    out.extend_from_slice(format!("{time} {} ", record.shard_id).as_bytes());
                    output::push_escaped(out, record.partition_key.as_bytes());
                    out.push(b' ');
                    if self.dim {
                        out.extend_from_slice(b"\x1b[0m");
                    }
                }
                if self.format == Format::Text {
                    output::push_text(out, record.data);
                } else {
                    output::push_hex(out, record.data);
                }
            }
        }
        out.push(b'\n');
        if let Some(remaining) = &mut self.remaining {
            *remaining -= 1;
            return *remaining == 0;
        }
        false
    }
}

/// The shard that holds `sequence` (AWS refuses a sequence number on any other shard).
async fn find_shard_of_sequence(
    connection: &Connection,
    stream: &str,
    candidates: &[Shard],
    sequence: &str,
) -> CliResult<String> {
    let mut last_refusal = None;
    for shard in candidates {
        let result = connection
            .client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(sequence)
            .send()
            .await;
        match result {
            Ok(_) => return Ok(shard.shard_id().to_owned()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_invalid_argument_exception()) =>
            {
                last_refusal = Some(connection.error(error));
            }
            Err(error) => return Err(connection.error(error)),
        }
    }
    Err(CliError::new(match last_refusal {
        Some(refusal) => {
            format!("no shard of {stream} holds sequence number {sequence} ({refusal})")
        }
        None => format!("no shard of {stream} holds sequence number {sequence}"),
    }))
}

async fn shard_iterator(
    readers: &Readers,
    shard_id: &str,
    position: &Position,
) -> CliResult<String> {
    let request = readers
        .connection
        .client
        .get_shard_iterator()
        .stream_name(&readers.stream)
        .shard_id(shard_id);
    let request = match position {
        Position::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        Position::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
        Position::AtTimestamp(ms) => request
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(DateTime::from_millis(*ms)),
        Position::AtSequence(sequence) => request
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(sequence),
        Position::AfterSequence(sequence) => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(sequence),
    };
    let output = request
        .send()
        .await
        .map_err(|e| readers.connection.error(e))?;
    output.shard_iterator().map(str::to_owned).ok_or_else(|| {
        CliError::new(format!(
            "GetShardIterator on {shard_id} returned no iterator"
        ))
    })
}

/// Reads one shard until it ends (or, with `--no-follow`, until it is caught up), sending
/// its pages to the printer. Errors are sent too.
async fn read_shard(readers: Arc<Readers>, shard_id: Arc<str>, start: Position) {
    let event = match read_shard_pages(&readers, &shard_id, start).await {
        Ok(event) => event,
        Err(error) => Event::Failed(error),
    };
    let _ = readers.events.send(event).await;
}

async fn read_shard_pages(
    readers: &Readers,
    shard_id: &Arc<str>,
    start: Position,
) -> CliResult<Event> {
    let mut iterator = shard_iterator(readers, shard_id, &start).await?;
    let mut last_sequence: Option<String> = None;
    let mut throttle_wait = CALL_SPACING;
    loop {
        let call_started = Instant::now();
        let result = readers
            .connection
            .client
            .get_records()
            .shard_iterator(&iterator)
            .limit(readers.limit)
            .send()
            .await;
        let page = match result {
            Ok(page) => page,
            Err(error) => {
                let service_error = error.as_service_error();
                if service_error.is_some_and(|e| e.is_expired_iterator_exception()) {
                    let position = match &last_sequence {
                        Some(sequence) => Position::AfterSequence(sequence.clone()),
                        None => start.clone(),
                    };
                    iterator = shard_iterator(readers, shard_id, &position).await?;
                    continue;
                }
                if service_error.is_some_and(|e| e.is_provisioned_throughput_exceeded_exception()) {
                    tokio::time::sleep(throttle_wait).await;
                    throttle_wait = (throttle_wait * 2).min(THROTTLE_WAIT_MAX);
                    continue;
                }
                return Err(readers.connection.error(error));
            }
        };
        throttle_wait = CALL_SPACING;
        let records = page.records();
        if let Some(last) = records.last() {
            last_sequence = Some(last.sequence_number().to_owned());
            let event = Event::Records {
                shard_id: Arc::clone(shard_id),
                records: records.to_vec(),
            };
            if readers.events.send(event).await.is_err() {
                // The printer is done (--max reached).
                return Ok(Event::CaughtUp);
            }
        }
        let Some(next) = page.next_shard_iterator() else {
            let mut children: Vec<(String, Vec<String>)> = page
                .child_shards()
                .iter()
                .map(|child| (child.shard_id().to_owned(), child.parent_shards().to_vec()))
                .collect();
            if children.is_empty() {
                children = children_from_listing(readers, shard_id).await?;
            }
            return Ok(Event::Ended {
                shard_id: Arc::clone(shard_id),
                children,
            });
        };
        iterator = next.to_owned();
        if records.is_empty() {
            if readers.no_follow && page.millis_behind_latest().unwrap_or(0) == 0 {
                return Ok(Event::CaughtUp);
            }
            tokio::time::sleep(readers.poll.max(CALL_SPACING)).await;
        } else {
            tokio::time::sleep_until((call_started + CALL_SPACING).into()).await;
        }
    }
}

/// The children of an ended shard, from ListShards, for servers whose GetRecords sends no
/// ChildShards.
async fn children_from_listing(
    readers: &Readers,
    shard_id: &str,
) -> CliResult<Vec<(String, Vec<String>)>> {
    let shards = list_shards(&readers.connection, &readers.stream, None).await?;
    Ok(shards
        .iter()
        .filter(|shard| parents_of(shard).iter().any(|parent| parent == shard_id))
        .map(|shard| (shard.shard_id().to_owned(), parents_of(shard)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starting_positions_parse() {
        assert_eq!(parse_start("trim-horizon"), Ok(Start::TrimHorizon));
        assert_eq!(parse_start("TRIM_HORIZON"), Ok(Start::TrimHorizon));
        assert_eq!(parse_start("latest"), Ok(Start::Latest));
        let sequence = "49590338271490256608559692538361571095921575989136588898";
        assert_eq!(parse_start(sequence), Ok(Start::Sequence(sequence.into())));
        assert_eq!(
            parse_start("2024-05-01T12:00:00.5Z"),
            Ok(Start::Timestamp(1_714_564_800_500))
        );
        assert_eq!(
            parse_start("2024-05-01T14:00:00+02:00"),
            Ok(Start::Timestamp(1_714_564_800_000))
        );
        let Ok(Start::Timestamp(ago)) = parse_start("-10m") else {
            panic!("-10m is a time");
        };
        let expected = now_ms() - 600_000;
        assert!((ago - expected).abs() < 5_000, "{ago} vs {expected}");
        for bad in ["", "yesterday", "-10", "-10y", "2024-05-01", "12abc"] {
            assert!(parse_start(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn children_wait_for_every_parent() {
        let mut lineage = Lineage {
            parents: HashMap::from([
                ("p0".to_owned(), vec![]),
                ("a".to_owned(), vec!["p0".to_owned()]),
                ("b".to_owned(), vec!["p0".to_owned()]),
                ("m".to_owned(), vec!["a".to_owned(), "b".to_owned()]),
                ("orphan".to_owned(), vec!["expired".to_owned()]),
            ]),
            started: HashSet::new(),
            ended: HashSet::new(),
            follow_children: true,
        };
        assert_eq!(lineage.ready(), ["orphan", "p0"]);
        lineage
            .started
            .extend(["orphan".to_owned(), "p0".to_owned()]);
        assert!(lineage.ready().is_empty());
        lineage.ended.insert("p0".to_owned());
        assert_eq!(lineage.ready(), ["a", "b"]);
        lineage.started.extend(["a".to_owned(), "b".to_owned()]);
        lineage.ended.insert("a".to_owned());
        assert!(lineage.ready().is_empty(), "a merge waits for both parents");
        lineage.ended.insert("b".to_owned());
        assert_eq!(lineage.ready(), ["m"]);
    }

    #[test]
    fn shards_are_picked_by_id_or_number() {
        let listed: Vec<Shard> = ["shardId-000000000000", "shardId-000000000007"]
            .iter()
            .map(|id| Shard::builder().shard_id(*id).build().unwrap())
            .collect();
        let ids = |wanted: &[&str]| -> Vec<String> {
            let wanted: Vec<String> = wanted.iter().map(|w| w.to_string()).collect();
            pick_shards("s", &listed, &wanted)
                .unwrap()
                .iter()
                .map(|s| s.shard_id().to_owned())
                .collect()
        };
        assert_eq!(ids(&["7"]), ["shardId-000000000007"]);
        assert_eq!(ids(&["shard-0", "shardId-000000000007", "0"]).len(), 2);
        let error = pick_shards("s", &listed, &["3".to_owned()]).unwrap_err();
        assert!(error.to_string().contains("has no shard 3"), "{error}");
    }
}
