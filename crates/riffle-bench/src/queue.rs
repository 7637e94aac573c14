//! `riffle bench queue`: how fast a queue delivers and acknowledges.
//!
//! Makes an ON_DEMAND stream (4 shards), fills it with `count` records of random keys, creates
//! a queue from TRIM_HORIZON, then runs `consumers` concurrent consumers, each looping
//! ReceiveQueueRecords (Limit 10) → AcknowledgeQueueRecords of what it got, until every record
//! is acknowledged. Reports records acknowledged per second over the drain, and the calls'
//! latencies. The stream and queue are deleted at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

use crate::client::{Client, Endpoint, Operation};

const PUT_BATCH: usize = 500;
const PRODUCERS: usize = 8;

fn parse(body: &Bytes) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|error| format!("unparseable answer: {error}"))
}

pub(crate) async fn call(
    client: &mut Client,
    operation: Operation,
    body: Value,
) -> Result<Value, String> {
    let bytes = Bytes::from(body.to_string());
    let answer = client
        .call(operation, bytes)
        .await
        .map_err(|error| format!("{operation:?}: {error:?}"))?;
    if answer.is_empty() {
        return Ok(Value::Null);
    }
    parse(&answer)
}

pub async fn run(
    endpoint: &Arc<Endpoint>,
    stream: &str,
    count: u64,
    consumers: usize,
    record_bytes: usize,
    timeout: Duration,
) -> Result<(), String> {
    let consumers = consumers.max(1);
    let mut admin = Client::new(Arc::clone(endpoint), timeout);
    let arn = create_on_demand_stream(&mut admin, stream).await?;
    eprintln!(
        "riffle bench: queue against {}: filling {stream} with {count} records of {record_bytes} \
         bytes",
        endpoint.address()
    );
    let data = base64_of(&vec![b'x'; record_bytes]);
    fill(
        endpoint,
        stream,
        count,
        timeout,
        Arc::new(move |_| data.clone()),
    )
    .await?;
    let queue = call(
        &mut admin,
        Operation::CreateQueue,
        json!({
            "QueueName": format!("{stream}-queue"),
            "StreamConfigurationList": [{"StreamARN": arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}],
        }),
    )
    .await?;
    let queue_arn = queue["QueueDescription"]["QueueARN"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    eprintln!("riffle bench: draining with {consumers} consumers (Receive Limit 10 + Acknowledge)");
    let acked = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..consumers {
        let (endpoint, acked, queue_arn) =
            (Arc::clone(endpoint), Arc::clone(&acked), queue_arn.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = Client::new(endpoint, timeout);
            let mut latencies = Vec::new();
            while acked.load(Ordering::Relaxed) < count {
                let began = Instant::now();
                let got = call(
                    &mut client,
                    Operation::ReceiveQueueRecords,
                    json!({"QueueARN": queue_arn, "Limit": 10, "WaitTimeSeconds": 1}),
                )
                .await?;
                let entries: Vec<Value> = got["QueueRecords"]
                    .as_array()
                    .map(|records| {
                        records
                            .iter()
                            .map(|record| json!({"ReceiptHandle": record["ReceiptHandle"]}))
                            .collect()
                    })
                    .unwrap_or_default();
                if entries.is_empty() {
                    continue;
                }
                let answer = call(
                    &mut client,
                    Operation::AcknowledgeQueueRecords,
                    json!({"QueueARN": queue_arn, "Entries": entries}),
                )
                .await?;
                let done = answer["Successful"].as_array().map_or(0, Vec::len) as u64;
                acked.fetch_add(done, Ordering::Relaxed);
                latencies.push(began.elapsed());
            }
            Ok::<Vec<Duration>, String>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.map_err(|error| error.to_string())??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let total = acked.load(Ordering::Relaxed);
    println!(
        "queue: {total} records received and acknowledged in {:.2} s = {:.0} records/s \
         ({consumers} consumers; receive+ack round trip p50 {:.2} ms, p99 {:.2} ms)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        at(0.5),
        at(0.99)
    );
    let _ = call(
        &mut admin,
        Operation::DeleteQueue,
        json!({"QueueARN": queue_arn}),
    )
    .await;
    let _ = call(
        &mut admin,
        Operation::DeleteStream,
        json!({"StreamName": stream}),
    )
    .await;
    Ok(())
}

/// Creates an ON_DEMAND stream (4 shards) and returns its ARN once it is ACTIVE.
pub(crate) async fn create_on_demand_stream(
    admin: &mut Client,
    stream: &str,
) -> Result<String, String> {
    call(
        admin,
        Operation::CreateStream,
        json!({"StreamName": stream, "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
    )
    .await?;
    loop {
        let summary = call(
            admin,
            Operation::DescribeStreamSummary,
            json!({"StreamName": stream}),
        )
        .await?;
        let summary = &summary["StreamDescriptionSummary"];
        if summary["StreamStatus"] == "ACTIVE" {
            return Ok(summary["StreamARN"].as_str().unwrap_or_default().to_owned());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The base64 data of record `n` of a fill.
pub(crate) type DataOf = Arc<dyn Fn(u64) -> String + Send + Sync>;

/// Puts records `0..count` (partition key `key-N`, data `data_of(N)`) from [`PRODUCERS`]
/// connections in PutRecords of [`PUT_BATCH`]; any refused entry fails the run.
pub(crate) async fn fill(
    endpoint: &Arc<Endpoint>,
    stream: &str,
    count: u64,
    timeout: Duration,
    data_of: DataOf,
) -> Result<(), String> {
    let next = Arc::new(AtomicU64::new(0));
    let mut producers = Vec::new();
    for _ in 0..PRODUCERS {
        let (endpoint, next, data_of, stream) = (
            Arc::clone(endpoint),
            Arc::clone(&next),
            Arc::clone(&data_of),
            stream.to_owned(),
        );
        producers.push(tokio::spawn(async move {
            let mut client = Client::new(endpoint, timeout);
            loop {
                let start = next.fetch_add(PUT_BATCH as u64, Ordering::Relaxed);
                if start >= count {
                    return Ok::<(), String>(());
                }
                let end = (start + PUT_BATCH as u64).min(count);
                let records: Vec<Value> = (start..end)
                    .map(|n| json!({"PartitionKey": format!("key-{n}"), "Data": data_of(n)}))
                    .collect();
                let answer = call(
                    &mut client,
                    Operation::PutRecords,
                    json!({"StreamName": stream, "Records": records}),
                )
                .await?;
                if answer["FailedRecordCount"].as_u64().unwrap_or(0) > 0 {
                    return Err(
                        "PutRecords refused records (run the server with --limits off)".into(),
                    );
                }
            }
        }));
    }
    for producer in producers {
        producer.await.map_err(|error| error.to_string())??;
    }
    Ok(())
}

fn base64_of(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
