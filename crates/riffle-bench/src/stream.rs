//! Stream housekeeping around a run: create and wait for ACTIVE, list shards, get iterators,
//! delete afterwards.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;

use crate::body::json_string;
use crate::client::{CallError, Client, Operation};

/// How long a new stream may stay CREATING (kinesalite's default is 500 ms, AWS's ~a minute).
const ACTIVE_WAIT_MAX: Duration = Duration::from_secs(120);
const ACTIVE_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Pages of ListShards followed before concluding the server loops on NextToken.
const LIST_SHARDS_PAGES_MAX: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IteratorType {
    TrimHorizon,
    Latest,
}

impl IteratorType {
    fn as_str(self) -> &'static str {
        match self {
            Self::TrimHorizon => "TRIM_HORIZON",
            Self::Latest => "LATEST",
        }
    }
}

fn stream_body(stream: &str) -> Bytes {
    Bytes::from(format!("{{\"StreamName\":{}}}", json_string(stream)))
}

/// Makes sure `stream` exists and is ACTIVE, creating it with `shards` shards when `create` is
/// set and it is missing. Returns whether this call created it.
pub async fn prepare(
    client: &mut Client,
    stream: &str,
    shards: u32,
    create: bool,
) -> Result<bool, String> {
    let mut created = false;
    if create {
        let body = format!(
            "{{\"StreamName\":{},\"ShardCount\":{shards}}}",
            json_string(stream)
        );
        match client
            .call_once_more(Operation::CreateStream, Bytes::from(body))
            .await
        {
            Ok(_) => created = true,
            Err(CallError::Api { error_type, .. }) if error_type == "ResourceInUseException" => {
                eprintln!("riffle bench: stream {stream} already exists; using it as it is");
            }
            Err(error) => return Err(format!("CreateStream {stream}: {error}")),
        }
    }
    wait_active(client, stream, create).await?;
    Ok(created)
}

#[derive(Deserialize)]
struct SummaryOutput {
    #[serde(rename = "StreamDescriptionSummary")]
    summary: StatusOnly,
}

#[derive(Deserialize)]
struct DescribeOutput {
    #[serde(rename = "StreamDescription")]
    description: StatusOnly,
}

#[derive(Deserialize)]
struct StatusOnly {
    #[serde(rename = "StreamStatus")]
    status: String,
}

async fn stream_status(client: &mut Client, stream: &str) -> Result<String, CallError> {
    match client
        .call_once_more(Operation::DescribeStreamSummary, stream_body(stream))
        .await
    {
        Ok(body) => parse_status::<SummaryOutput>(&body).map(|out| out.summary.status),
        // Older emulators lack DescribeStreamSummary; DescribeStream carries the status too.
        Err(CallError::Api { error_type, .. }) if error_type == "UnknownOperationException" => {
            let body = client
                .call_once_more(Operation::DescribeStream, stream_body(stream))
                .await?;
            parse_status::<DescribeOutput>(&body).map(|out| out.description.status)
        }
        Err(error) => Err(error),
    }
}

fn parse_status<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, CallError> {
    serde_json::from_slice(body).map_err(|error| CallError::Api {
        error_type: "MalformedResponse".into(),
        message: error.to_string(),
    })
}

async fn wait_active(client: &mut Client, stream: &str, create: bool) -> Result<(), String> {
    let started = Instant::now();
    loop {
        match stream_status(client, stream).await {
            Ok(status) if status == "ACTIVE" || status == "UPDATING" => return Ok(()),
            Ok(status) if status == "CREATING" && started.elapsed() < ACTIVE_WAIT_MAX => {
                tokio::time::sleep(ACTIVE_POLL_INTERVAL).await;
            }
            Ok(status) => {
                return Err(format!(
                    "stream {stream} is {status}, not ACTIVE (waited {:.1} s)",
                    started.elapsed().as_secs_f64()
                ))
            }
            Err(CallError::Api { error_type, .. })
                if error_type == "ResourceNotFoundException" && !create =>
            {
                return Err(format!(
                    "stream {stream} does not exist; pass --create to create it"
                ))
            }
            Err(error) => return Err(format!("DescribeStreamSummary {stream}: {error}")),
        }
    }
}

#[derive(Deserialize)]
struct ListShardsOutput {
    #[serde(rename = "Shards", default)]
    shards: Vec<ShardOnly>,
    #[serde(rename = "NextToken")]
    next_token: Option<String>,
}

#[derive(Deserialize)]
struct ShardOnly {
    #[serde(rename = "ShardId")]
    shard_id: String,
}

/// Every shard id of the stream, in the server's order.
pub async fn list_shards(client: &mut Client, stream: &str) -> Result<Vec<String>, String> {
    let mut shards = Vec::new();
    let mut body = stream_body(stream);
    for _ in 0..LIST_SHARDS_PAGES_MAX {
        let answer = client
            .call_once_more(Operation::ListShards, body)
            .await
            .map_err(|error| format!("ListShards {stream}: {error}"))?;
        let page: ListShardsOutput = serde_json::from_slice(&answer)
            .map_err(|error| format!("ListShards {stream}: unreadable answer: {error}"))?;
        shards.extend(page.shards.into_iter().map(|shard| shard.shard_id));
        match page.next_token {
            Some(token) => {
                body = Bytes::from(format!("{{\"NextToken\":{}}}", json_string(&token)));
            }
            None => return Ok(shards),
        }
    }
    Err(format!(
        "ListShards {stream}: more than {LIST_SHARDS_PAGES_MAX} pages"
    ))
}

#[derive(Deserialize)]
struct IteratorOutput {
    #[serde(rename = "ShardIterator")]
    iterator: String,
}

pub fn shard_iterator_body(stream: &str, shard_id: &str, kind: IteratorType) -> Bytes {
    Bytes::from(format!(
        "{{\"StreamName\":{},\"ShardId\":{},\"ShardIteratorType\":\"{}\"}}",
        json_string(stream),
        json_string(shard_id),
        kind.as_str()
    ))
}

pub async fn shard_iterator(
    client: &mut Client,
    stream: &str,
    shard_id: &str,
    kind: IteratorType,
) -> Result<String, CallError> {
    let answer = client
        .call(
            Operation::GetShardIterator,
            shard_iterator_body(stream, shard_id, kind),
        )
        .await?;
    parse_status::<IteratorOutput>(&answer).map(|out| out.iterator)
}

pub async fn delete(client: &mut Client, stream: &str) -> Result<(), String> {
    client
        .call_once_more(Operation::DeleteStream, stream_body(stream))
        .await
        .map(|_| ())
        .map_err(|error| format!("DeleteStream {stream}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterator_requests_name_stream_shard_and_type() {
        let body = shard_iterator_body("s", "shardId-000000000001", IteratorType::TrimHorizon);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["StreamName"], "s");
        assert_eq!(json["ShardId"], "shardId-000000000001");
        assert_eq!(json["ShardIteratorType"], "TRIM_HORIZON");
        let body = shard_iterator_body("s", "x", IteratorType::Latest);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["ShardIteratorType"], "LATEST");
    }
}
