//! SubscribeToShard: enhanced fan-out pushes a shard's records to a consumer over one long
//! response of event-stream messages.
//!
//! **Lifecycle of one subscription.** [`Subscriptions::begin`] registers it under (consumer ARN,
//! shard): a second call within 5 s of a live one is refused with ResourceInUseException, a
//! later one takes over (the old stream ends with a ResourceInUseException event). Then
//! [`start`] spawns the task that feeds the response: first an `initial-response` event, then
//! `SubscribeToShardEvent`s, each with the records from the current position up to the shard's
//! visible tail (at most [`EVENT_RECORDS_MAX`] records and [`EVENT_BYTES_MAX`] bytes), the
//! `ContinuationSequenceNumber` to resume from (the position after the last record delivered,
//! see `data::continuation_sequence_number`), and `MillisBehindLatest`. When it has caught
//! up, the task sleeps on the shard's tail `watch` — the same wake-up every subscriber of the
//! shard shares, once per committed batch, no polling — or until the keep-alive interval passes
//! (an empty event, so idle checkpoints advance). A node holding no replica of the shard
//! reads through one of its replicas instead, which holds each read until a record arrives or
//! [`REMOTE_WAIT_MAX`] passes (a long poll), and builds the events itself. A closed shard
//! ends with an event carrying `ChildShards` and no continuation number. The subscription ends cleanly after its lifetime
//! (5 minutes; the client subscribes again), or with an exception event when it is taken over,
//! its consumer is deregistered, or its stream or shard disappears.
//!
//! **Memory and flow control.** The task hands frames to the HTTP body through a channel of
//! capacity one, so it produces the next event only once the previous one has been taken by the
//! connection: a slow subscriber (HTTP/2 flow control, a full TCP window) holds at most one
//! event in memory. With AWS limits on, each subscription is also paced to 2 MiB/s of record
//! data, the per-consumer, per-shard rate AWS grants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use riffle_proto::eventstream;
use riffle_proto::ops::SubscribeToShardEvent;
use tokio::sync::{mpsc, watch};

use crate::consumers::FoundConsumer;
use crate::data::{self, Position};
use crate::node::{now_ms, Node, Shard};
use crate::throttle::Limits;
use crate::Error;

/// Records one event carries at most.
pub const EVENT_RECORDS_MAX: usize = 10_000;
/// Record bytes (data plus partition keys) one event carries at most (one record may exceed it).
pub const EVENT_BYTES_MAX: usize = 1024 * 1024;
/// A second subscription for the same consumer and shard within this of a live one is refused.
pub const TAKEOVER_AFTER_MS: u64 = 5_000;
/// How long a replica holds a subscription's read of a shard this node holds no replica of
/// while nothing new arrives (the entry node then asks again).
const REMOTE_WAIT_MAX: Duration = Duration::from_secs(2);
/// Record bytes per second one subscription delivers with AWS limits on.
pub const SUBSCRIPTION_BYTES_PER_SECOND: u64 = 2 * 1024 * 1024;

const JSON: &str = "application/json";

/// Why a live subscription must stop early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// A newer subscription for the same consumer and shard took over.
    TakenOver,
    /// The consumer was deregistered.
    ConsumerGone,
}

struct Entry {
    generation: u64,
    started_ms: u64,
    live: bool,
    stop: watch::Sender<Option<Stop>>,
}

/// Every subscription of the node, by (consumer ARN, shard ordinal).
#[derive(Default)]
pub struct Subscriptions {
    entries: Mutex<HashMap<(String, u32), Entry>>,
    next_generation: std::sync::atomic::AtomicU64,
}

/// A registered subscription; the task that owns it ends it.
pub struct Ticket {
    key: (String, u32),
    generation: u64,
    stop: watch::Receiver<Option<Stop>>,
}

impl Subscriptions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u32), Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a subscription, taking over an older one, or refuses it while a live one is
    /// younger than [`TAKEOVER_AFTER_MS`]. With AWS limits, a consumer may subscribe to a shard
    /// at most once a second.
    pub fn begin(&self, consumer_arn: &str, ordinal: u32, limits: Limits) -> Result<Ticket, Error> {
        let now = now_ms();
        let key = (consumer_arn.to_owned(), ordinal);
        let mut entries = self.lock();
        if let Some(entry) = entries.get(&key) {
            let age_ms = now.saturating_sub(entry.started_ms);
            if entry.live && age_ms < TAKEOVER_AFTER_MS {
                return Err(Error::resource_in_use(format!(
                    "Another active subscription exists for this consumer: {consumer_arn}"
                )));
            }
            if limits == Limits::Aws && age_ms < 1_000 {
                return Err(Error::limit_exceeded(format!(
                    "Rate exceeded for consumer {consumer_arn} and shard {}: SubscribeToShard \
                     is allowed once per second per consumer and shard.",
                    riffle_proto::shard_id::shard_id(ordinal)
                )));
            }
            if entry.live {
                entry.stop.send_replace(Some(Stop::TakenOver));
            }
        }
        let generation = self
            .next_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (stop, stop_receiver) = watch::channel(None);
        entries.insert(
            key.clone(),
            Entry {
                generation,
                started_ms: now,
                live: true,
                stop,
            },
        );
        Ok(Ticket {
            key,
            generation,
            stop: stop_receiver,
        })
    }

    /// Ends every subscription of a consumer (it was deregistered) and forgets them.
    pub fn end_consumer(&self, consumer_arn: &str) {
        self.lock().retain(|(arn, _), entry| {
            if arn == consumer_arn {
                entry.stop.send_replace(Some(Stop::ConsumerGone));
                false
            } else {
                true
            }
        });
    }

    /// Marks a subscription over (if no newer one replaced it). The entry stays to remember
    /// when it started, for the once-a-second rule.
    fn finish(&self, ticket: &Ticket) {
        if let Some(entry) = self.lock().get_mut(&ticket.key) {
            if entry.generation == ticket.generation {
                entry.live = false;
            }
        }
    }

    /// Live subscriptions (for tests and metrics).
    pub fn live_count(&self) -> usize {
        self.lock().values().filter(|entry| entry.live).count()
    }
}

/// How long subscriptions last and how often idle ones hear from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionConfig {
    /// AWS ends a subscription after 5 minutes; the client subscribes again.
    pub lifetime: Duration,
    /// An idle subscription gets an empty event this often.
    pub keep_alive: Duration,
}

impl Default for SubscriptionConfig {
    fn default() -> SubscriptionConfig {
        SubscriptionConfig {
            lifetime: Duration::from_millis(riffle_proto::limits::SUBSCRIPTION_LIFETIME_MS),
            keep_alive: Duration::from_secs(5),
        }
    }
}

/// Starts feeding a subscription from `position`; the frames arrive on the returned channel,
/// which ends when the subscription does.
pub fn start(
    node: Arc<Node>,
    found: FoundConsumer,
    ordinal: u32,
    position: Position,
    ticket: Ticket,
) -> mpsc::Receiver<Bytes> {
    let (frames, receiver) = mpsc::channel(1);
    let task = async move {
        let outcome = feed(
            &node,
            &found,
            ordinal,
            position,
            &frames,
            ticket.stop.clone(),
        )
        .await;
        if let Err(exception) = outcome {
            // Best effort: the client may be gone already, or have stopped reading; the last
            // frame must not hold the task (and its connection) longer than a keep-alive.
            let _ =
                tokio::time::timeout(node.config.subscriptions.keep_alive, frames.send(exception))
                    .await;
        }
        node.subscriptions.finish(&ticket);
    };
    // The task logs under the request that started it (its request id).
    tokio::spawn(tracing::Instrument::instrument(
        task,
        tracing::Span::current(),
    ));
    receiver
}

/// An exception message for an error that ends a subscription.
fn exception_frame(error: &Error) -> Bytes {
    // The type travels in the `:exception-type` header (botocore, the Java SDK); the Rust SDK
    // reads the code from `__type` in the payload, as in an error response. An internal
    // failure keeps its modeled type here (InternalFailureException is a member of the event
    // stream) but not its detail, which goes to the log.
    let message = if error.is_internal() {
        tracing::error!(detail = ?error.message, "subscription failed");
        riffle_proto::error::INTERNAL_FAILURE_MESSAGE
    } else {
        error.message.as_deref().unwrap_or_default()
    };
    let payload = serde_json::json!({
        "__type": error.type_name(),
        "message": message,
    });
    Bytes::from(eventstream::exception(
        error.type_name(),
        JSON,
        payload.to_string().as_bytes(),
    ))
}

/// The subscription's main loop. `Ok` ends the stream cleanly; `Err` carries a last exception
/// frame to send.
async fn feed(
    node: &Node,
    found: &FoundConsumer,
    ordinal: u32,
    mut position: Position,
    frames: &mpsc::Sender<Bytes>,
    mut stop: watch::Receiver<Option<Stop>>,
) -> Result<(), Bytes> {
    let config = node.config.subscriptions;
    let started = tokio::time::Instant::now();
    let deadline = started + config.lifetime;
    let stream = &found.stream;
    let consumer_arn = found.arn();
    let paced = node.config.limits == Limits::Aws;
    let mut bytes_sent: u64 = 0;

    let initial = eventstream::event("initial-response", JSON, b"{}");
    if frames.send(Bytes::from(initial)).await.is_err() {
        return Ok(());
    }
    let mut tail = match stream.state().shard(ordinal) {
        Some(shard) => shard.log.subscribe(),
        None => return Err(exception_frame(&shard_gone(found, ordinal))),
    };
    let mut last_event = tokio::time::Instant::now();
    let mut first = true;
    // Set once caught up with a shard read through a replica: the next read waits there.
    let mut waiting = false;
    loop {
        if let Some(stop) = *stop.borrow() {
            return Err(exception_frame(&stopped(stop, &consumer_arn)));
        }
        if stop.has_changed().is_err() {
            // The registry forgot this subscription without a reason: nothing to say, end.
            return Ok(());
        }
        let state = stream.state();
        let current = node.stream(&stream.account, &stream.name);
        if !current.is_some_and(|current| Arc::ptr_eq(&current, stream)) {
            return Err(exception_frame(&Error::stream_not_found(
                &stream.name,
                &stream.account,
            )));
        }
        let Some(shard) = state.shard(ordinal).cloned() else {
            return Err(exception_frame(&shard_gone(found, ordinal)));
        };
        let remote = !shard.log.stored_here();
        let read = if remote {
            // A shard this node holds no replica of: one of its replicas holds the poll
            // until a record arrives (or the keep-alive is due), in place of the tail watch.
            let wait_ms = if waiting {
                let due = (last_event + config.keep_alive)
                    .saturating_duration_since(tokio::time::Instant::now());
                due.min(REMOTE_WAIT_MAX).as_millis() as u64
            } else {
                0
            };
            tokio::select! {
                read = data::read_anywhere(
                    &state,
                    &shard,
                    position,
                    EVENT_RECORDS_MAX,
                    EVENT_BYTES_MAX,
                    now_ms(),
                    wait_ms,
                ) => read,
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
                _ = stop.changed() => continue,
                _ = frames.closed() => return Ok(()),
            }
        } else {
            // Mark the tail seen *before* reading, so a batch committed after the read
            // wakes us.
            tail.borrow_and_update();
            data::read_from(
                &state,
                &shard,
                position,
                EVENT_RECORDS_MAX,
                EVENT_BYTES_MAX,
                now_ms(),
            )
        }
        .map_err(|error| exception_frame(&error))?;
        waiting = false;
        position = read.next;
        let idle_due = last_event.elapsed() >= config.keep_alive;
        if !read.records.is_empty() || read.ended || idle_due || first {
            first = false;
            let record_bytes: u64 = read
                .records
                .iter()
                .map(|(_, stored)| (stored.data.len() + stored.partition_key.len()) as u64)
                .sum();
            let record_count = read.records.len() as u64;
            let event = SubscribeToShardEvent {
                records: read
                    .records
                    .into_iter()
                    .map(|(sequence_number, stored)| {
                        crate::service::record_shape(sequence_number, stored)
                    })
                    .collect(),
                // As AWS's, the position after the last record delivered (or, idle, the
                // current position): resuming AT or AFTER it repeats and skips nothing.
                continuation_sequence_number: (!read.ended)
                    .then(|| data::continuation_sequence_number(&shard, position)),
                millis_behind_latest: read.millis_behind_latest,
                child_shards: read.ended.then(|| {
                    data::children(&state, &shard)
                        .iter()
                        .map(|child| crate::service::child_shape(child))
                        .collect()
                }),
            };
            let payload = riffle_proto::encode_json(&event);
            let frame = eventstream::event("SubscribeToShardEvent", JSON, &payload);
            if paced {
                bytes_sent += record_bytes;
                pace(started, bytes_sent).await;
            }
            tokio::select! {
                sent = frames.send(Bytes::from(frame)) => {
                    if sent.is_err() {
                        return Ok(()); // the client hung up
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
                _ = stop.changed() => continue,
            }
            let behind = read.millis_behind_latest;
            stream
                .metrics
                .subscribe_event(&shard, record_bytes, record_count, behind);
            last_event = tokio::time::Instant::now();
            if read.ended {
                return Ok(());
            }
            let visible_index = if remote {
                read.visible_index
            } else {
                shard.log.tail().visible_index
            };
            if position.index <= visible_index {
                continue; // more to send right away
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        if remote {
            waiting = true;
            continue;
        }
        tokio::select! {
            changed = tail.changed() => {
                if changed.is_err() {
                    return Err(exception_frame(&shard_gone(found, ordinal)));
                }
            }
            _ = tokio::time::sleep_until(last_event + config.keep_alive) => {}
            _ = tokio::time::sleep_until(deadline) => return Ok(()),
            _ = stop.changed() => {}
            // The client hung up: free the subscription now, not at the next send.
            _ = frames.closed() => return Ok(()),
        }
    }
}

/// Waits until `bytes_sent` is within what [`SUBSCRIPTION_BYTES_PER_SECOND`] allows since
/// `started`, with one second's worth of burst.
async fn pace(started: tokio::time::Instant, bytes_sent: u64) {
    let rate = SUBSCRIPTION_BYTES_PER_SECOND as f64;
    let allowed_at = started + Duration::from_secs_f64((bytes_sent as f64 - rate).max(0.0) / rate);
    tokio::time::sleep_until(allowed_at).await;
}

fn stopped(stop: Stop, consumer_arn: &str) -> Error {
    match stop {
        Stop::TakenOver => Error::resource_in_use(format!(
            "Another subscription for consumer {consumer_arn} and this shard took over."
        )),
        Stop::ConsumerGone => {
            Error::resource_not_found(format!("Consumer {consumer_arn} was deregistered."))
        }
    }
}

fn shard_gone(found: &FoundConsumer, ordinal: u32) -> Error {
    Error::shard_not_found(
        &riffle_proto::shard_id::shard_id(ordinal),
        &found.stream.name,
        &found.stream.account,
    )
}

/// Whether `shard` still exists in the stream (used to validate a subscription request).
pub fn shard_of(found: &FoundConsumer, ordinal: u32) -> Option<Arc<Shard>> {
    found.stream.state().shard(ordinal).cloned()
}
