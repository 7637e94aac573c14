//! `riffle streams`, `describe`, `create` and `delete`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::{Shard, ShardFilter, StreamMode, StreamModeDetails, StreamStatus};
use serde_json::json;

use super::connect::{ConnectArgs, Connection};
use super::output::{rfc3339_s, Progress};
use super::{CliError, CliResult};

/// Streams described at once by `riffle streams` (AWS allows 20 DescribeStreamSummary a second).
const DESCRIBE_CONCURRENCY: usize = 8;
/// How often `create` and `delete` look at the stream while they wait.
const WAIT_POLL: Duration = Duration::from_millis(250);

#[derive(clap::Args)]
pub struct StreamsArgs {
    /// One JSON object per stream and line instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(clap::Args)]
pub struct DescribeArgs {
    /// The stream's name.
    stream: String,
    /// One JSON document (the summary and every shard, with exact hash keys and sequence
    /// numbers) instead of the tree.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("capacity").required(true).args(["shards", "on_demand"]))]
pub struct CreateArgs {
    /// The stream's name.
    stream: String,
    /// A PROVISIONED stream with this many shards.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    shards: Option<i32>,
    /// An ON_DEMAND stream (its shards split and merge with the load).
    #[arg(long)]
    on_demand: bool,
    /// Return once the stream is requested, without waiting for it to be ACTIVE.
    #[arg(long)]
    no_wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_s: u64,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(clap::Args)]
pub struct DeleteArgs {
    /// The stream's name.
    stream: String,
    /// Delete it even if it has enhanced fan-out consumers (EnforceConsumerDeletion).
    #[arg(long)]
    force: bool,
    /// Return once the deletion is requested, without waiting for the stream to be gone.
    #[arg(long)]
    no_wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_s: u64,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// One row of `riffle streams`.
struct StreamRow {
    name: String,
    status: String,
    mode: String,
    open_shards: Option<i32>,
}

pub async fn streams(args: StreamsArgs) -> CliResult<()> {
    let connection = Arc::new(Connection::open(&args.connect).await?);
    let mut rows: Vec<StreamRow> = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let mut request = connection.client.list_streams();
        request = match &next_token {
            Some(token) => request.next_token(token),
            None => request,
        };
        let page = request.send().await.map_err(|e| connection.error(e))?;
        let summaries = page.stream_summaries();
        if summaries.is_empty() {
            // Older servers list names only.
            rows.extend(page.stream_names().iter().map(|name| StreamRow {
                name: name.clone(),
                status: String::new(),
                mode: String::new(),
                open_shards: None,
            }));
        } else {
            rows.extend(summaries.iter().map(|summary| {
                StreamRow {
                    name: summary.stream_name().to_owned(),
                    status: summary.stream_status().as_str().to_owned(),
                    mode: summary
                        .stream_mode_details()
                        .map(|details| details.stream_mode().as_str().to_owned())
                        .unwrap_or_default(),
                    open_shards: None,
                }
            }));
        }
        match (page.has_more_streams(), page.next_token()) {
            (true, Some(token)) => next_token = Some(token.to_owned()),
            _ => break,
        }
    }

    // The open shard counts, a few streams at a time.
    let semaphore = Arc::new(tokio::sync::Semaphore::new(DESCRIBE_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, row) in rows.iter().enumerate() {
        let connection = Arc::clone(&connection);
        let semaphore = Arc::clone(&semaphore);
        let name = row.name.clone();
        tasks.spawn(async move {
            let _permit = semaphore.acquire().await;
            let result = connection
                .client
                .describe_stream_summary()
                .stream_name(&name)
                .send()
                .await;
            (index, result)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (index, result) = joined.map_err(|e| CliError::new(e.to_string()))?;
        match result {
            Ok(output) => {
                if let Some(summary) = output.stream_description_summary() {
                    let row = &mut rows[index];
                    row.open_shards = Some(summary.open_shard_count());
                    row.status = summary.stream_status().as_str().to_owned();
                    if let Some(details) = summary.stream_mode_details() {
                        row.mode = details.stream_mode().as_str().to_owned();
                    }
                }
            }
            // Deleted since it was listed: show it as the listing had it.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) => {}
            Err(error) => return Err(connection.error(error)),
        }
    }

    let mut out = Vec::new();
    if args.json {
        for row in &rows {
            let line = json!({
                "stream_name": row.name,
                "stream_status": row.status,
                "stream_mode": row.mode,
                "open_shard_count": row.open_shards,
            });
            writeln!(out, "{line}")?;
        }
    } else {
        let table: Vec<[String; 4]> = rows
            .iter()
            .map(|row| {
                [
                    row.name.clone(),
                    row.status.clone(),
                    row.mode.clone(),
                    row.open_shards.map(|n| n.to_string()).unwrap_or_default(),
                ]
            })
            .collect();
        write_table(&mut out, ["NAME", "STATUS", "MODE", "SHARDS"], &table)?;
    }
    write_stdout(&out)
}

/// Writes an aligned table with a header; columns are separated by two spaces.
fn write_table<const N: usize>(
    out: &mut Vec<u8>,
    header: [&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = header.map(|title| title.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header = header.map(str::to_owned);
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            if index + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Writes to stdout; a closed pipe (`| head`) ends the command quietly (see [`CliError`]).
pub fn write_stdout(bytes: &[u8]) -> CliResult<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            Err(CliError::stdout_closed())
        }
        Err(error) => Err(CliError::new(format!("cannot write to stdout: {error}"))),
    }
}

/// Every shard of a stream (ListShards, all pages), optionally filtered.
pub async fn list_shards(
    connection: &Connection,
    stream: &str,
    filter: Option<ShardFilter>,
) -> CliResult<Vec<Shard>> {
    let mut shards = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let request = match &next_token {
            Some(token) => connection.client.list_shards().next_token(token),
            None => connection
                .client
                .list_shards()
                .stream_name(stream)
                .set_shard_filter(filter.clone()),
        };
        let page = request.send().await.map_err(|e| connection.error(e))?;
        shards.extend_from_slice(page.shards());
        match page.next_token() {
            Some(token) if !page.shards().is_empty() => next_token = Some(token.to_owned()),
            _ => return Ok(shards),
        }
    }
}

/// A decimal hash key as the share of the key space below it, for people: `33.33%`.
fn hash_key_percent(key: &str, past_the_end: bool) -> String {
    let Ok(value) = key.parse::<u128>() else {
        return key.to_owned();
    };
    // 2^128 as f64 is exact; the division loses only digits nobody reads.
    let mut share = value as f64 / 2f64.powi(128) * 100.0;
    if past_the_end {
        share = (value as f64 + 1.0) / 2f64.powi(128) * 100.0;
    }
    let text = format!("{share:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// The one-line description of a shard in the tree.
fn shard_line(shard: &Shard) -> String {
    let state = match shard
        .sequence_number_range()
        .and_then(|range| range.ending_sequence_number())
    {
        Some(_) => "closed",
        None => "open",
    };
    let keys = match shard.hash_key_range() {
        Some(range) => format!(
            "keys {}–{}",
            hash_key_percent(range.starting_hash_key(), false),
            hash_key_percent(range.ending_hash_key(), true)
        ),
        None => String::new(),
    };
    format!("{}  {state:<6}  {keys}", shard.shard_id())
        .trim_end()
        .to_owned()
}

/// The shards as a forest: each shard under its parent (the `ParentShardId`, else the
/// `AdjacentParentShardId` when only that one is listed); a merged shard also appears, as a
/// reference, under its other parent. Shards whose parents have expired are roots.
pub fn lineage_tree(shards: &[Shard]) -> String {
    let listed: HashSet<&str> = shards.iter().map(Shard::shard_id).collect();
    // Children of each shard, in listing order: (child index, whether it is the child's home).
    let mut children: HashMap<&str, Vec<(usize, bool)>> = HashMap::new();
    let mut roots = Vec::new();
    for (index, shard) in shards.iter().enumerate() {
        let home = [shard.parent_shard_id(), shard.adjacent_parent_shard_id()]
            .into_iter()
            .flatten()
            .find(|parent| listed.contains(parent));
        match home {
            Some(parent) => children.entry(parent).or_default().push((index, true)),
            None => roots.push(index),
        }
        if let Some(other) = shard.adjacent_parent_shard_id() {
            if listed.contains(other) && home != Some(other) {
                children.entry(other).or_default().push((index, false));
            }
        }
    }

    fn walk(
        shards: &[Shard],
        children: &HashMap<&str, Vec<(usize, bool)>>,
        index: usize,
        prefix: &str,
        depth_left: usize,
        out: &mut String,
    ) {
        let Some(kids) = children.get(shards[index].shard_id()) else {
            return;
        };
        for (position, &(child, is_home)) in kids.iter().enumerate() {
            let last = position + 1 == kids.len();
            let (branch, continuation) = if last {
                ("└── ", "    ")
            } else {
                ("├── ", "│   ")
            };
            let child_shard = &shards[child];
            if is_home {
                out.push_str(&format!("{prefix}{branch}{}\n", shard_line(child_shard)));
                if depth_left > 0 {
                    let deeper = format!("{prefix}{continuation}");
                    walk(shards, children, child, &deeper, depth_left - 1, out);
                }
            } else {
                let home = child_shard.parent_shard_id().unwrap_or_default();
                out.push_str(&format!(
                    "{prefix}{branch}{} (merged; shown under {home})\n",
                    child_shard.shard_id()
                ));
            }
        }
    }

    let mut out = String::new();
    for root in roots {
        let shard = &shards[root];
        let mut line = shard_line(shard);
        let expired: Vec<&str> = [shard.parent_shard_id(), shard.adjacent_parent_shard_id()]
            .into_iter()
            .flatten()
            .collect();
        if !expired.is_empty() {
            line.push_str(&format!("  (parent {} expired)", expired.join(" and ")));
        }
        out.push_str(&line);
        out.push('\n');
        walk(shards, &children, root, "", shards.len(), &mut out);
    }
    out
}

pub async fn describe(args: DescribeArgs) -> CliResult<()> {
    let connection = Connection::open(&args.connect).await?;
    let summary = connection
        .client
        .describe_stream_summary()
        .stream_name(&args.stream)
        .send()
        .await
        .map_err(|e| connection.error(e))?;
    let Some(summary) = summary.stream_description_summary() else {
        return Err(CliError::new("the server sent no StreamDescriptionSummary"));
    };
    let shards = list_shards(&connection, &args.stream, None).await?;
    let mode = summary
        .stream_mode_details()
        .map(|details| details.stream_mode().as_str().to_owned())
        .unwrap_or_default();
    let encryption = summary
        .encryption_type()
        .map(|kind| kind.as_str().to_owned())
        .unwrap_or_else(|| "NONE".into());
    let created = rfc3339_s(summary.stream_creation_timestamp().secs());

    let mut out = String::new();
    if args.json {
        let shards: Vec<serde_json::Value> = shards
            .iter()
            .map(|shard| {
                json!({
                    "shard_id": shard.shard_id(),
                    "parent_shard_id": shard.parent_shard_id(),
                    "adjacent_parent_shard_id": shard.adjacent_parent_shard_id(),
                    "starting_hash_key": shard.hash_key_range().map(|r| r.starting_hash_key()),
                    "ending_hash_key": shard.hash_key_range().map(|r| r.ending_hash_key()),
                    "starting_sequence_number": shard
                        .sequence_number_range()
                        .map(|r| r.starting_sequence_number()),
                    "ending_sequence_number": shard
                        .sequence_number_range()
                        .and_then(|r| r.ending_sequence_number()),
                })
            })
            .collect();
        let document = json!({
            "stream_name": summary.stream_name(),
            "stream_arn": summary.stream_arn(),
            "stream_status": summary.stream_status().as_str(),
            "stream_mode": mode,
            "open_shard_count": summary.open_shard_count(),
            "retention_period_hours": summary.retention_period_hours(),
            "encryption_type": encryption,
            "key_id": summary.key_id(),
            "consumer_count": summary.consumer_count(),
            "stream_creation_timestamp": created,
            "shards": shards,
        });
        let text = serde_json::to_string_pretty(&document)
            .map_err(|error| CliError::new(error.to_string()))?;
        out.push_str(&text);
        out.push('\n');
    } else {
        let mut fields: BTreeMap<usize, (&str, String)> = BTreeMap::new();
        let mut add = |label: &'static str, value: String| {
            fields.insert(fields.len(), (label, value));
        };
        add("stream", summary.stream_name().to_owned());
        add("arn", summary.stream_arn().to_owned());
        add("status", summary.stream_status().as_str().to_owned());
        add("mode", mode);
        add(
            "shards",
            format!(
                "{} open, {} listed",
                summary.open_shard_count(),
                shards.len()
            ),
        );
        add(
            "retention",
            format!("{} hours", summary.retention_period_hours()),
        );
        let encryption = match summary.key_id() {
            Some(key) => format!("{encryption} ({key})"),
            None => encryption,
        };
        add("encryption", encryption);
        if let Some(consumers) = summary.consumer_count() {
            add("consumers", consumers.to_string());
        }
        add("created", created);
        for (label, value) in fields.values() {
            out.push_str(&format!("{label:<11}{value}\n"));
        }
        out.push('\n');
        out.push_str(&lineage_tree(&shards));
    }
    write_stdout(out.as_bytes())
}

/// Waits until `done` says the stream reached the state wanted, showing `verb` and the
/// stream's status on a terminal.
pub(super) async fn wait_for<F>(
    connection: &Connection,
    stream: &str,
    verb: &str,
    timeout: Duration,
    mut done: F,
) -> CliResult<Option<(StreamStatus, i32)>>
where
    F: FnMut(Option<&StreamStatus>) -> bool,
{
    let started = Instant::now();
    let mut progress = Progress::on_terminal();
    loop {
        let result = connection
            .client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await;
        let state = match result {
            Ok(output) => output
                .stream_description_summary()
                .map(|summary| (summary.stream_status().clone(), summary.open_shard_count())),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(error) => {
                progress.finish(None);
                return Err(connection.error(error));
            }
        };
        if done(state.as_ref().map(|(status, _)| status)) {
            progress.finish(None);
            return Ok(state);
        }
        if started.elapsed() >= timeout {
            progress.finish(None);
            let status = state.map_or("gone".to_owned(), |(status, _)| status.as_str().to_owned());
            return Err(CliError::new(format!(
                "gave up after {} s: {stream} is still {status}",
                timeout.as_secs()
            )));
        }
        progress.update(|| {
            let status = state.as_ref().map_or("gone", |(status, _)| status.as_str());
            format!(
                "{verb} {stream}: {status} ({} s)",
                started.elapsed().as_secs()
            )
        });
        tokio::time::sleep(WAIT_POLL).await;
    }
}

pub async fn create(args: CreateArgs) -> CliResult<()> {
    let connection = Connection::open(&args.connect).await?;
    let mut request = connection.client.create_stream().stream_name(&args.stream);
    if args.on_demand {
        request = request.stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .map_err(|error| CliError::new(error.to_string()))?,
        );
    } else if let Some(shards) = args.shards {
        request = request.shard_count(shards);
    }
    request.send().await.map_err(|e| connection.error(e))?;
    if args.no_wait {
        return Ok(());
    }
    let state = wait_for(
        &connection,
        &args.stream,
        "creating",
        Duration::from_secs(args.timeout_s),
        |status| status == Some(&StreamStatus::Active),
    )
    .await?;
    let mut progress = Progress::on_terminal();
    if let Some((_, shards)) = state {
        progress.finish(Some(format!(
            "{} is ACTIVE with {shards} shard{}",
            args.stream,
            if shards == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

pub async fn delete(args: DeleteArgs) -> CliResult<()> {
    let connection = Connection::open(&args.connect).await?;
    let mut request = connection.client.delete_stream().stream_name(&args.stream);
    if args.force {
        request = request.enforce_consumer_deletion(true);
    }
    request.send().await.map_err(|e| connection.error(e))?;
    if args.no_wait {
        return Ok(());
    }
    wait_for(
        &connection,
        &args.stream,
        "deleting",
        Duration::from_secs(args.timeout_s),
        |status| status.is_none(),
    )
    .await?;
    Progress::on_terminal().finish(Some(format!("{} is deleted", args.stream)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::types::{HashKeyRange, SequenceNumberRange};

    fn shard(id: &str, parents: [Option<&str>; 2], range: (u128, u128), open: bool) -> Shard {
        let sequence = SequenceNumberRange::builder().starting_sequence_number("1");
        let sequence = if open {
            sequence
        } else {
            sequence.ending_sequence_number("2")
        };
        Shard::builder()
            .shard_id(id)
            .set_parent_shard_id(parents[0].map(str::to_owned))
            .set_adjacent_parent_shard_id(parents[1].map(str::to_owned))
            .hash_key_range(
                HashKeyRange::builder()
                    .starting_hash_key(range.0.to_string())
                    .ending_hash_key(range.1.to_string())
                    .build()
                    .unwrap(),
            )
            .sequence_number_range(sequence.build().unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn hash_keys_show_as_shares_of_the_key_space() {
        assert_eq!(hash_key_percent("0", false), "0%");
        assert_eq!(hash_key_percent(&u128::MAX.to_string(), true), "100%");
        assert_eq!(hash_key_percent(&(u128::MAX / 2).to_string(), true), "50%");
        assert_eq!(
            hash_key_percent(&(u128::MAX / 3).to_string(), true),
            "33.33%"
        );
        assert_eq!(hash_key_percent("not a number", false), "not a number");
    }

    #[test]
    fn the_tree_shows_splits_and_merges() {
        let half = u128::MAX / 2;
        // 0 splits into 1 and 2, which merge into 3; 4's parent has expired.
        let shards = vec![
            shard("s0", [None, None], (0, u128::MAX), false),
            shard("s1", [Some("s0"), None], (0, half), false),
            shard("s2", [Some("s0"), None], (half + 1, u128::MAX), false),
            shard("s3", [Some("s1"), Some("s2")], (0, u128::MAX), true),
            shard("s4", [Some("gone"), None], (0, 1), true),
        ];
        let tree = lineage_tree(&shards);
        let expected = "\
s0  closed  keys 0%–100%
├── s1  closed  keys 0%–50%
│   └── s3  open    keys 0%–100%
└── s2  closed  keys 50%–100%
    └── s3 (merged; shown under s1)
s4  open    keys 0%–0%  (parent gone expired)
";
        assert_eq!(tree, expected);
    }

    #[test]
    fn tables_align_their_columns() {
        let mut out = Vec::new();
        let rows = [
            ["orders".to_owned(), "ACTIVE".to_owned(), "2".to_owned()],
            ["a".to_owned(), "CREATING".to_owned(), String::new()],
        ];
        write_table(&mut out, ["NAME", "STATUS", "SHARDS"], &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME    STATUS    SHARDS\norders  ACTIVE    2\na       CREATING\n"
        );
    }
}
