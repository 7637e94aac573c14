//! `riffle bench fanout`: put → push latency through enhanced fan-out.
//!
//! Registers `--subscribers` consumers, opens one SubscribeToShard stream (HTTP/1.1, LATEST)
//! per consumer and shard, waits until every stream has sent its `initial-response`, then
//! writes stamped records at `--rate` exactly as the `e2e` workload does. Each subscriber
//! decodes the event-stream frames as they arrive and times every stamped record from its send
//! to its push, so one put is measured once per subscriber. The run ends when every subscriber
//! has seen every acknowledged record (or after a grace period), and the consumers are
//! deregistered.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use hdrhistogram::Histogram;
use http_body_util::BodyExt;
use serde::Deserialize;

use crate::client::{CallError, Client, Endpoint, Operation};
use crate::put::{self, nanos_since, Pace, PutPlan};
use crate::read::Visibility;
use crate::stats::{merge_histogram, new_histogram, LatencySummary, Stats};

/// How long a subscriber waits for a consumer to become ACTIVE.
const CONSUMER_ACTIVE_WAIT_MAX: Duration = Duration::from_secs(30);
/// How long the run waits for the last pushes after the last put.
const PUSH_WAIT_MAX: Duration = Duration::from_secs(5);

/// What a fan-out run measured.
pub struct FanoutOutcome {
    pub put_stats: Stats,
    pub put_elapsed: Duration,
    pub sends_late: u64,
    pub push_latency_us: Histogram<u64>,
    pub pushes_seen: u64,
    pub pushes_expected: u64,
    pub subscriptions: u64,
}

#[derive(Deserialize)]
struct ConsumerAnswer {
    #[serde(rename = "Consumer")]
    consumer: ConsumerShape,
}

#[derive(Deserialize)]
struct ConsumerShape {
    #[serde(rename = "ConsumerARN")]
    arn: String,
}

#[derive(Deserialize)]
struct DescribeAnswer {
    #[serde(rename = "ConsumerDescription")]
    description: DescribedConsumer,
}

#[derive(Deserialize)]
struct DescribedConsumer {
    #[serde(rename = "ConsumerStatus")]
    status: String,
}

#[derive(Deserialize)]
struct SummaryAnswer {
    #[serde(rename = "StreamDescriptionSummary")]
    summary: Summary,
}

#[derive(Deserialize)]
struct Summary {
    #[serde(rename = "StreamARN")]
    arn: String,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "Records", default)]
    records: Vec<EventRecord>,
}

#[derive(Deserialize)]
struct EventRecord {
    #[serde(rename = "Data")]
    data: String,
}

fn json(value: serde_json::Value) -> bytes::Bytes {
    bytes::Bytes::from(value.to_string())
}

/// Registers `count` consumers on the stream and waits until they are ACTIVE.
async fn register_consumers(
    admin: &mut Client,
    stream: &str,
    count: usize,
) -> Result<Vec<String>, String> {
    let summary = admin
        .call_once_more(
            Operation::DescribeStreamSummary,
            json(serde_json::json!({ "StreamName": stream })),
        )
        .await
        .map_err(|error| format!("DescribeStreamSummary: {error}"))?;
    let stream_arn = serde_json::from_slice::<SummaryAnswer>(&summary)
        .map_err(|error| format!("DescribeStreamSummary answer: {error}"))?
        .summary
        .arn;
    let mut arns = Vec::with_capacity(count);
    for index in 0..count {
        let name = format!("riffle-bench-{}-{index}", std::process::id());
        let answer = admin
            .call(
                Operation::RegisterStreamConsumer,
                json(serde_json::json!({ "StreamARN": stream_arn, "ConsumerName": name })),
            )
            .await
            .map_err(|error| format!("RegisterStreamConsumer: {error}"))?;
        let arn = serde_json::from_slice::<ConsumerAnswer>(&answer)
            .map_err(|error| format!("RegisterStreamConsumer answer: {error}"))?
            .consumer
            .arn;
        arns.push(arn);
    }
    let started = Instant::now();
    for arn in &arns {
        loop {
            let answer = admin
                .call(
                    Operation::DescribeStreamConsumer,
                    json(serde_json::json!({ "ConsumerARN": arn })),
                )
                .await
                .map_err(|error| format!("DescribeStreamConsumer: {error}"))?;
            let status = serde_json::from_slice::<DescribeAnswer>(&answer)
                .map_err(|error| format!("DescribeStreamConsumer answer: {error}"))?
                .description
                .status;
            if status == "ACTIVE" {
                break;
            }
            if started.elapsed() > CONSUMER_ACTIVE_WAIT_MAX {
                return Err(format!("consumer {arn} is still {status}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(arns)
}

/// Deregisters the consumers (best effort: failures are reported, not fatal).
pub async fn deregister_consumers(admin: &mut Client, arns: &[String]) {
    for arn in arns {
        if let Err(error) = admin
            .call(
                Operation::DeregisterStreamConsumer,
                json(serde_json::json!({ "ConsumerARN": arn })),
            )
            .await
        {
            eprintln!("riffle bench: DeregisterStreamConsumer {arn}: {error}");
        }
    }
}

/// One subscription: reads frames until the stream ends or the task is aborted, timing every
/// stamped record it is pushed.
async fn subscriber(
    endpoint: Arc<Endpoint>,
    timeout: Duration,
    consumer_arn: String,
    shard: String,
    mut visibility: Visibility,
    ready: Arc<AtomicUsize>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Visibility, CallError> {
    let mut client = Client::new(endpoint, timeout);
    let request = json(serde_json::json!({
        "ConsumerARN": consumer_arn,
        "ShardId": shard,
        "StartingPosition": { "Type": "LATEST" },
    }));
    let mut body = client
        .open_stream(Operation::SubscribeToShard, request)
        .await?;
    let mut buffer = BytesMut::new();
    let mut initial_seen = false;
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            _ = stop.changed() => return Ok(visibility),
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|error| CallError::Transport(error.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buffer.extend_from_slice(&data);
        let now_ns = nanos_since(visibility.clock_base);
        loop {
            let (message, used) = match riffle_proto::eventstream::decode(&buffer) {
                Ok(decoded) => decoded,
                Err(riffle_proto::eventstream::DecodeError::Incomplete) => break,
                Err(error) => return Err(CallError::Transport(error.to_string())),
            };
            buffer.advance(used);
            match message.header(":event-type") {
                Some("initial-response") if !initial_seen => {
                    initial_seen = true;
                    ready.fetch_add(1, Ordering::SeqCst);
                }
                Some("SubscribeToShardEvent") => {
                    let event: Event =
                        serde_json::from_slice(&message.payload).map_err(|error| {
                            CallError::Transport(format!("bad SubscribeToShardEvent: {error}"))
                        })?;
                    for record in &event.records {
                        visibility.observe(&record.data, now_ns);
                    }
                }
                _ => {
                    if message.header(":message-type") == Some("exception") {
                        return Err(CallError::Api {
                            error_type: message
                                .header(":exception-type")
                                .unwrap_or("exception")
                                .to_owned(),
                            message: String::from_utf8_lossy(&message.payload).into_owned(),
                        });
                    }
                }
            }
        }
    }
    Ok(visibility)
}

/// Runs the fan-out workload on `shards` of the plan's stream.
pub async fn run(
    endpoint: &Arc<Endpoint>,
    admin: &mut Client,
    plan: &PutPlan,
    rate: f64,
    subscribers: usize,
    shards: &[String],
) -> Result<(FanoutOutcome, Vec<String>), String> {
    let consumers = register_consumers(admin, &plan.stream, subscribers).await?;
    let clock_base = Instant::now();
    let seen = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for consumer in &consumers {
        for shard in shards {
            tasks.push(tokio::spawn(subscriber(
                Arc::clone(endpoint),
                plan.timeout,
                consumer.clone(),
                shard.clone(),
                Visibility::new(clock_base, Arc::clone(&seen)),
                Arc::clone(&ready),
                stopped.clone(),
            )));
        }
    }
    let subscriptions = tasks.len();
    let waiting_since = Instant::now();
    while ready.load(Ordering::SeqCst) < subscriptions {
        if waiting_since.elapsed() > plan.timeout || tasks.iter().any(|task| task.is_finished()) {
            for task in &tasks {
                task.abort();
            }
            return Err("not every subscription started (see the server log)".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pace = Pace {
        records_per_s: rate,
        clock_base,
        stamped: true,
    };
    let outcome = put::paced(endpoint, plan, &pace).await;
    let expected = outcome.stats.records_ok * subscribers as u64;
    let waited_since = Instant::now();
    while seen.load(Ordering::Relaxed) < expected && waited_since.elapsed() < PUSH_WAIT_MAX {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = stop.send(true);
    let mut push_latency_us = new_histogram();
    for task in tasks {
        match task.await {
            Ok(Ok(visibility)) => merge_histogram(&mut push_latency_us, &visibility.latency_us),
            Ok(Err(error)) => eprintln!("riffle bench: a subscription failed: {error}"),
            Err(error) => eprintln!("riffle bench: a subscriber panicked: {error}"),
        }
    }
    Ok((
        FanoutOutcome {
            put_stats: outcome.stats,
            put_elapsed: outcome.elapsed,
            sends_late: outcome.sends_late,
            push_latency_us,
            pushes_seen: seen.load(Ordering::Relaxed),
            pushes_expected: expected,
            subscriptions: subscriptions as u64,
        },
        consumers,
    ))
}

impl FanoutOutcome {
    pub fn latency(&self) -> LatencySummary {
        LatencySummary::of(&self.push_latency_us)
    }
}
