//! Enhanced fan-out through the real `aws-sdk-kinesis`: the consumer operations
//! (Register/Describe/List/DeregisterStreamConsumer, DeleteStream's EnforceConsumerDeletion) and
//! SubscribeToShard read through the SDK's own event receiver (kinesis-api.md §1.6, §1.7, §3.7).
//!
//! Subscriptions are tested over HTTP/1.1 (what the SDK speaks on an `http://` endpoint) and over
//! HTTP/2 with prior knowledge (h2c): the SDK takes any [`HttpClient`], so [`H2cClient`] plugs a
//! hyper-util client built with `http2_only(true)` into it and records the HTTP version of every
//! response, so a test can prove it never fell back to HTTP/1.1.
//!
//! The expectations are AWS's: every StartingPosition type starts where GetShardIterator's would,
//! a subscription delivers exactly the records the shard holds from there (sequence numbers, data,
//! partition keys), ContinuationSequenceNumber resumes without gap or duplicate (also from an
//! idle keep-alive event), a subscription ends cleanly after its lifetime, a closed shard ends
//! with ChildShards and no continuation number, a second subscription within 5 s is refused and a
//! later one takes over, and bad starting positions get GetShardIterator's texts.
//!
//! Servers here run with short keep-alives (`--subscription-keep-alive-ms`), so a reader knows it
//! has everything when an empty event follows the records: each read asserts the exact records,
//! then one more empty event.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::operation::subscribe_to_shard::{
    SubscribeToShardError, SubscribeToShardOutput,
};
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::error::SubscribeToShardEventStreamError;
use aws_sdk_kinesis::types::{
    ChildShard, ConsumerStatus, PutRecordsRequestEntry, ShardIteratorType, StartingPosition,
    SubscribeToShardEvent, SubscribeToShardEventStream,
};
use aws_sdk_kinesis::Client;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

use crate::common::*;

/// Idle subscriptions hear from the server this often, so "caught up" shows quickly.
const KEEP_ALIVE_MS: &str = "200";
/// The longest a test waits for one event (a loaded CI machine may be slow; riffle is not).
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest one read of a subscription may take in all.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// AWS refuses a second subscription for the same consumer and shard this soon after one.
const TAKEOVER_AFTER: Duration = Duration::from_secs(5);
const SEQUENCE_ARGUMENT_RULE: &str = "Must either specify (1) AT_SEQUENCE_NUMBER or \
     AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no \
     StartingSequenceNumber.";

// ----- An HTTP/2-only (h2c prior knowledge) client for the SDK -----

/// A hyper-util legacy client that speaks only HTTP/2, plugged into the SDK as its
/// [`HttpClient`]. aws-smithy-http-client keeps its own hyper builder private
/// (`hyper_builder` is `pub(crate)`), but the SDK accepts any `HttpClient`, and the request and
/// response conversions it needs (`try_into_http1x`, `HttpResponse::try_from`,
/// `SdkBody::from_body_1_x`) are public.
#[derive(Clone, Debug)]
pub(crate) struct H2cClient {
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        SdkBody,
    >,
    versions: Arc<Mutex<Vec<http::Version>>>,
}

impl H2cClient {
    pub(crate) fn new() -> H2cClient {
        // As the SDK's own connector does: without TCP_NODELAY each request's last small
        // frame waits for the server's delayed ACK (about 40 ms a call).
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_nodelay(true);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(true)
                .build(connector);
        H2cClient {
            client,
            versions: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Asserts that responses arrived and every one of them over HTTP/2.
    pub(crate) fn assert_all_http2(&self) {
        let versions = self.versions.lock().unwrap();
        assert!(
            !versions.is_empty(),
            "no response went through the h2c client"
        );
        assert!(
            versions
                .iter()
                .all(|version| *version == http::Version::HTTP_2),
            "responses not over HTTP/2: {versions:?}"
        );
    }
}

impl HttpConnector for H2cClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(error) => {
                return HttpConnectorFuture::ready(Err(ConnectorError::user(error.into())))
            }
        };
        let client = self.client.clone();
        let versions = Arc::clone(&self.versions);
        HttpConnectorFuture::new(async move {
            let response = client
                .request(request)
                .await
                .map_err(|error| ConnectorError::io(error.into()))?;
            versions.lock().unwrap().push(response.version());
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|error| ConnectorError::other(error.into(), None))
        })
    }
}

impl HttpClient for H2cClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// The SDK's default HTTP client, which speaks HTTP/1.1 to an `http://` endpoint.
    Http1,
    /// [`H2cClient`]: HTTP/2 with prior knowledge.
    H2c,
}

/// A client of `server` over `transport`; with h2c, also the connector that saw the responses.
fn client_over(server: &Server, transport: Transport) -> (Client, Option<H2cClient>) {
    match transport {
        Transport::Http1 => (server.client(), None),
        Transport::H2c => {
            let h2c = H2cClient::new();
            let config = aws_sdk_kinesis::Config::builder()
                .endpoint_url(server.endpoint())
                .region(Region::new(REGION))
                .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
                .behavior_version(BehaviorVersion::latest())
                .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
                .http_client(h2c.clone())
                .build();
            (Client::from_conf(config), Some(h2c))
        }
    }
}

fn fanout_server(extra: &[&str]) -> Server {
    let mut flags = vec![
        "--limits",
        "off",
        "--subscription-keep-alive-ms",
        KEEP_ALIVE_MS,
    ];
    flags.extend_from_slice(extra);
    Server::in_memory_with(&flags)
}

// ----- Records -----

/// A record as the tests compare it: sequence number, partition key, data.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    seq: String,
    key: String,
    data: Vec<u8>,
}

impl Rec {
    fn of(record: &aws_sdk_kinesis::types::Record) -> Rec {
        Rec {
            seq: record.sequence_number().to_string(),
            key: record.partition_key().expect("PartitionKey").to_string(),
            data: record.data().as_ref().to_vec(),
        }
    }
}

/// PutRecords of `(partition key, data)` pairs, asserting every entry was stored; returns them
/// with their sequence numbers and shards.
async fn put(client: &Client, stream: &str, entries: &[(String, String)]) -> Vec<(Rec, String)> {
    let request = entries.iter().fold(
        client.put_records().stream_name(stream),
        |request, (key, data)| {
            request.records(
                PutRecordsRequestEntry::builder()
                    .partition_key(key)
                    .data(Blob::new(data.as_bytes()))
                    .build()
                    .unwrap(),
            )
        },
    );
    let output = request
        .send()
        .await
        .unwrap_or_else(|error| panic!("PutRecords to {stream}: {error:?}"));
    assert_eq!(output.failed_record_count(), Some(0), "{output:?}");
    entries
        .iter()
        .zip(output.records())
        .map(|((key, data), result)| {
            let seq = result.sequence_number().expect("stored entry").to_string();
            assert_sequence_number(&seq);
            let rec = Rec {
                seq,
                key: key.clone(),
                data: data.as_bytes().to_vec(),
            };
            (rec, result.shard_id().expect("stored entry").to_string())
        })
        .collect()
}

/// Puts `count` records with keys `k0..k{keys}` and data `{tag}-{i}`; returns them in order.
async fn put_batch(
    client: &Client,
    stream: &str,
    tag: &str,
    count: usize,
    keys: usize,
) -> Vec<Rec> {
    let entries: Vec<(String, String)> = (0..count)
        .map(|i| (format!("k{}", i % keys), format!("{tag}-{i}")))
        .collect();
    put(client, stream, &entries)
        .await
        .into_iter()
        .map(|(rec, _)| rec)
        .collect()
}

// ----- Consumers -----

/// Registers `name` on `stream_arn` and returns its ARN.
async fn register(client: &Client, stream_arn: &str, name: &str) -> String {
    let output = client
        .register_stream_consumer()
        .stream_arn(stream_arn)
        .consumer_name(name)
        .send()
        .await
        .unwrap_or_else(|error| panic!("RegisterStreamConsumer {name}: {error:?}"));
    let consumer = output.consumer().expect("Consumer in the answer");
    assert_eq!(consumer.consumer_name(), name);
    consumer.consumer_arn().to_string()
}

async fn consumer_status(client: &Client, consumer_arn: &str) -> ConsumerStatus {
    client
        .describe_stream_consumer()
        .consumer_arn(consumer_arn)
        .send()
        .await
        .unwrap_or_else(|error| panic!("DescribeStreamConsumer {consumer_arn}: {error:?}"))
        .consumer_description()
        .expect("ConsumerDescription")
        .consumer_status()
        .clone()
}

async fn consumer_count(client: &Client, stream: &str) -> Option<i32> {
    client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .unwrap_or_else(|error| panic!("DescribeStreamSummary {stream}: {error:?}"))
        .stream_description_summary()
        .expect("StreamDescriptionSummary")
        .consumer_count()
}

/// Splits `{stream ARN}/consumer/{name}:{epoch seconds}` into name and seconds.
fn parse_consumer_arn<'a>(arn: &'a str, stream_arn: &str) -> (&'a str, i64) {
    let rest = arn
        .strip_prefix(stream_arn)
        .and_then(|rest| rest.strip_prefix("/consumer/"))
        .unwrap_or_else(|| panic!("{arn} is not {stream_arn}/consumer/NAME:EPOCH"));
    let (name, seconds) = rest
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{arn} has no :EPOCH"));
    (
        name,
        seconds.parse().unwrap_or_else(|_| panic!("epoch of {arn}")),
    )
}

// ----- Subscriptions -----

fn position(kind: ShardIteratorType) -> StartingPosition {
    StartingPosition::builder().r#type(kind).build().unwrap()
}

fn position_at(kind: ShardIteratorType, sequence_number: &str) -> StartingPosition {
    StartingPosition::builder()
        .r#type(kind)
        .sequence_number(sequence_number)
        .build()
        .unwrap()
}

fn position_at_time(millis: i64) -> StartingPosition {
    StartingPosition::builder()
        .r#type(ShardIteratorType::AtTimestamp)
        .timestamp(DateTime::from_millis(millis))
        .build()
        .unwrap()
}

async fn try_subscribe(
    client: &Client,
    consumer_arn: &str,
    shard: &str,
    position: StartingPosition,
) -> Result<SubscribeToShardOutput, SdkError<SubscribeToShardError>> {
    let call = client
        .subscribe_to_shard()
        .consumer_arn(consumer_arn)
        .shard_id(shard)
        .starting_position(position)
        .send();
    match tokio::time::timeout(EVENT_TIMEOUT, call).await {
        Ok(answer) => answer,
        Err(_) => panic!("SubscribeToShard {consumer_arn} {shard} did not answer"),
    }
}

async fn subscribe(
    client: &Client,
    consumer_arn: &str,
    shard: &str,
    position: StartingPosition,
) -> Subscription {
    let output = try_subscribe(client, consumer_arn, shard, position.clone())
        .await
        .unwrap_or_else(|error| {
            panic!("SubscribeToShard {consumer_arn} {shard} {position:?}: {error:?}")
        });
    Subscription {
        output,
        what: format!("{shard} of {consumer_arn} from {position:?}"),
    }
}

/// What the SDK's event receiver hands out next.
#[derive(Debug)]
enum Next {
    Event(SubscribeToShardEvent),
    /// `recv()` returned `Ok(None)`: the response ended cleanly.
    End,
    /// A modeled exception event (`Err(SdkError::ServiceError)`).
    Exception(SubscribeToShardEventStreamError),
}

struct Subscription {
    output: SubscribeToShardOutput,
    what: String,
}

impl Subscription {
    async fn next(&mut self) -> Next {
        let received =
            match tokio::time::timeout(EVENT_TIMEOUT, self.output.event_stream.recv()).await {
                Ok(received) => received,
                Err(_) => panic!("no event within {EVENT_TIMEOUT:?} on {}", self.what),
            };
        match received {
            Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event))) => {
                Next::Event(event)
            }
            Ok(Some(other)) => panic!("unexpected event {other:?} on {}", self.what),
            Ok(None) => Next::End,
            Err(SdkError::ServiceError(context)) => Next::Exception(context.into_err()),
            Err(other) => panic!("event stream of {} failed: {other:?}", self.what),
        }
    }

    /// The next message, which must be an event.
    async fn event(&mut self) -> SubscribeToShardEvent {
        match self.next().await {
            Next::Event(event) => event,
            other => panic!("expected an event on {}, got {other:?}", self.what),
        }
    }

    /// Reads events until it has at least `at_least` records and an empty event follows them,
    /// checking each event's own invariants; returns the records and the continuation number of
    /// the last (empty) event.
    async fn read_until_idle(&mut self, at_least: usize) -> (Vec<Rec>, String) {
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut records: Vec<Rec> = Vec::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "{} gave {} records, expected at least {at_least}: {records:?}",
                self.what,
                records.len()
            );
            let event = self.event().await;
            check_open_event(&event, records.last());
            let empty = event.records().is_empty();
            records.extend(event.records().iter().map(Rec::of));
            if empty && records.len() >= at_least {
                assert_eq!(
                    event.millis_behind_latest(),
                    0,
                    "an idle event is caught up: {event:?}"
                );
                return (records, event.continuation_sequence_number().to_string());
            }
        }
    }

    /// Asserts the subscription delivers exactly `expected` and then falls idle; returns the
    /// continuation number of the idle event.
    async fn expect_records(&mut self, expected: &[Rec]) -> String {
        let (records, continuation) = self.read_until_idle(expected.len()).await;
        assert_eq!(records, expected, "records of {}", self.what);
        // Nothing more was waiting behind the idle event.
        let event = self.event().await;
        assert!(
            event.records().is_empty(),
            "{} delivered more than expected: {event:?}",
            self.what
        );
        continuation
    }

    /// Reads a closed shard to its end: events with records and continuation numbers, then one
    /// with ChildShards and no continuation number, then the end of the response.
    async fn read_to_shard_end(&mut self) -> (Vec<Rec>, Vec<ChildShard>) {
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut records: Vec<Rec> = Vec::new();
        loop {
            assert!(Instant::now() < deadline, "{} never ended", self.what);
            let event = self.event().await;
            check_records(&event, records.last());
            records.extend(event.records().iter().map(Rec::of));
            if event.child_shards().is_empty() {
                assert_sequence_number(event.continuation_sequence_number());
                continue;
            }
            // AWS: the last event of a closed shard has ChildShards and no continuation number;
            // the SDK shows the missing (required) member as "".
            assert_eq!(
                event.continuation_sequence_number(),
                "",
                "the shard-end event has no continuation number: {event:?}"
            );
            assert_eq!(event.millis_behind_latest(), 0, "{event:?}");
            let children = event.child_shards().to_vec();
            match self.next().await {
                Next::End => return (records, children),
                other => panic!("after ChildShards {} must end, got {other:?}", self.what),
            }
        }
    }

    /// Reads (skipping events) until the subscription stops; returns how.
    async fn until_stopped(&mut self) -> Next {
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            assert!(Instant::now() < deadline, "{} never stopped", self.what);
            match self.next().await {
                Next::Event(event) => check_open_event(&event, None),
                stopped => return stopped,
            }
        }
    }
}

/// Records of one event strictly increase and follow the previous ones.
fn check_records(event: &SubscribeToShardEvent, previous: Option<&Rec>) {
    let mut last = previous.map(|rec| rec.seq.clone());
    for record in event.records() {
        assert_sequence_number(record.sequence_number());
        if let Some(last) = &last {
            assert_sequence_before(last, record.sequence_number());
        }
        last = Some(record.sequence_number().to_string());
        assert!(
            record.approximate_arrival_timestamp().is_some(),
            "{record:?} has no ApproximateArrivalTimestamp"
        );
    }
}

/// An event of an open shard: a continuation number past its last record (AWS's is the
/// position after the last record delivered, not that record's own number), no ChildShards.
fn check_open_event(event: &SubscribeToShardEvent, previous: Option<&Rec>) {
    check_records(event, previous);
    let continuation = event.continuation_sequence_number();
    assert_sequence_number(continuation);
    assert!(
        event.child_shards().is_empty(),
        "ChildShards on an open shard: {event:?}"
    );
    if let Some(last) = event.records().last() {
        assert_sequence_before(last.sequence_number(), continuation);
    } else if let Some(previous) = previous {
        assert_ne!(
            compare_sequence_numbers(continuation, &previous.seq),
            std::cmp::Ordering::Less,
            "an idle continuation number never goes back: {event:?} after {previous:?}"
        );
    }
}

/// The exception type (from the SDK's modeled variant) and message of an exception event.
fn exception_of(next: Next) -> (String, String) {
    let error = match next {
        Next::Exception(error) => error,
        other => panic!("expected an exception event, got {other:?}"),
    };
    let kind = if error.is_resource_in_use_exception() {
        "ResourceInUseException"
    } else if error.is_resource_not_found_exception() {
        "ResourceNotFoundException"
    } else if error.is_internal_failure_exception() {
        "InternalFailureException"
    } else {
        panic!("an exception event the SDK did not recognise: {error:?}")
    };
    let message = error.message().unwrap_or_default().to_string();
    (kind.to_string(), message)
}

/// A timestamp to the nearest millisecond. JSON carries epoch seconds as a decimal fraction
/// that a double cannot always hold exactly (`.514` parses as `.513999…`), so truncating, as
/// `DateTime::to_millis` does, can land a millisecond early.
fn millis_of(time: &DateTime) -> i64 {
    time.secs() * 1000 + (i64::from(time.subsec_nanos()) + 500_000) / 1_000_000
}

/// The stream ARN of `name` and a one-shard (or `shards`) stream created under it.
async fn stream_with(client: &Client, name: &str, shards: i32) -> String {
    create_stream(client, name, shards).await;
    stream_arn(name)
}

// ===== Consumers =====

#[tokio::test]
async fn consumers_register_describe_deregister_and_register_again() {
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    let stream_arn = stream_with(&client, "orders", 1).await;
    assert_eq!(consumer_count(&client, "orders").await, Some(0));

    let before_s = now_millis() / 1000;
    let output = client
        .register_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name("app-1")
        .send()
        .await
        .unwrap();
    let after_s = now_millis() / 1000;
    let consumer = output.consumer().unwrap();
    // AWS always answers CREATING, whatever happens next.
    assert_eq!(consumer.consumer_status(), &ConsumerStatus::Creating);
    assert_eq!(consumer.consumer_name(), "app-1");
    let arn = consumer.consumer_arn().to_string();
    let (name, epoch_s) = parse_consumer_arn(&arn, &stream_arn);
    assert_eq!(name, "app-1");
    assert!(
        (before_s..=after_s + 1).contains(&epoch_s),
        "epoch {epoch_s} of {arn} is the registration second ({before_s}..={after_s})"
    );
    assert_eq!(consumer.consumer_creation_timestamp().secs(), epoch_s);

    // By ARN, and by stream ARN and name: the same ACTIVE consumer (no update window).
    let by_arn = client
        .describe_stream_consumer()
        .consumer_arn(&arn)
        .send()
        .await
        .unwrap();
    let by_name = client
        .describe_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name("app-1")
        .send()
        .await
        .unwrap();
    for description in [
        by_arn.consumer_description(),
        by_name.consumer_description(),
    ] {
        let description = description.unwrap();
        assert_eq!(description.consumer_name(), "app-1");
        assert_eq!(description.consumer_arn(), arn);
        assert_eq!(description.consumer_status(), &ConsumerStatus::Active);
        assert_eq!(description.stream_arn(), stream_arn);
        assert_eq!(description.consumer_creation_timestamp().secs(), epoch_s);
    }
    assert_eq!(consumer_count(&client, "orders").await, Some(1));

    // The same name again on the same stream.
    let duplicate = client
        .register_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name("app-1")
        .send()
        .await;
    let message =
        format!("Consumer app-1 under stream orders already exists for account {ACCOUNT}.");
    assert!(
        expect_error(duplicate, "ResourceInUseException", Some(&message))
            .is_resource_in_use_exception()
    );

    // Deregister by ARN: gone, by either name.
    client
        .deregister_stream_consumer()
        .consumer_arn(&arn)
        .send()
        .await
        .unwrap();
    let gone = client
        .describe_stream_consumer()
        .consumer_arn(&arn)
        .send()
        .await;
    let message = format!("Consumer {arn} not found.");
    assert!(
        expect_error(gone, "ResourceNotFoundException", Some(&message))
            .is_resource_not_found_exception()
    );
    let gone = client
        .describe_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name("app-1")
        .send()
        .await;
    expect_error(
        gone,
        "ResourceNotFoundException",
        Some("Consumer app-1 not found."),
    );
    let again = client
        .deregister_stream_consumer()
        .consumer_arn(&arn)
        .send()
        .await;
    expect_error(again, "ResourceNotFoundException", Some(&message));
    assert_eq!(consumer_count(&client, "orders").await, Some(0));

    // Registered again (even within the same second): a new consumer with a new ARN; the old
    // ARN names nothing.
    let new_arn = register(&client, &stream_arn, "app-1").await;
    assert_ne!(new_arn, arn, "a re-registered consumer gets a new ARN");
    let (name, new_epoch_s) = parse_consumer_arn(&new_arn, &stream_arn);
    assert_eq!(name, "app-1");
    assert!(new_epoch_s > epoch_s, "{new_arn} after {arn}");
    let old = client
        .describe_stream_consumer()
        .consumer_arn(&arn)
        .send()
        .await;
    expect_error(old, "ResourceNotFoundException", Some(&message));
    assert_eq!(
        consumer_status(&client, &new_arn).await,
        ConsumerStatus::Active
    );

    // Deregister by stream ARN and name.
    client
        .deregister_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name("app-1")
        .send()
        .await
        .unwrap();
    assert_eq!(consumer_count(&client, "orders").await, Some(0));
    let listed = client
        .list_stream_consumers()
        .stream_arn(&stream_arn)
        .send()
        .await
        .unwrap();
    assert!(listed.consumers().is_empty(), "{listed:?}");
}

#[tokio::test]
async fn consumers_list_in_pages_and_stop_at_twenty() {
    // Limits off: 20 registrations in a row are above RegisterStreamConsumer's 5 a second.
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    let stream_arn = stream_with(&client, "wide", 1).await;
    let mut registered = Vec::new();
    for i in 0..20 {
        registered.push(register(&client, &stream_arn, &format!("c{i:02}")).await);
    }
    assert_eq!(consumer_count(&client, "wide").await, Some(20));

    let extra = client
        .register_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name("c20")
        .send()
        .await;
    let message = format!(
        "Stream wide under account {ACCOUNT} has reached its limit of 20 registered consumers."
    );
    assert!(
        expect_error(extra, "LimitExceededException", Some(&message)).is_limit_exceeded_exception()
    );

    // Pages of 7: 7, 7, 6, each but the last with a NextToken, together every consumer once.
    let mut listed = Vec::new();
    let mut page_sizes = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let page = client
            .list_stream_consumers()
            .stream_arn(&stream_arn)
            .max_results(7)
            .set_next_token(next_token.clone())
            .send()
            .await
            .unwrap();
        page_sizes.push(page.consumers().len());
        for consumer in page.consumers() {
            assert_eq!(consumer.consumer_status(), &ConsumerStatus::Active);
            let (name, _) = parse_consumer_arn(consumer.consumer_arn(), &stream_arn);
            assert_eq!(name, consumer.consumer_name());
            listed.push(consumer.consumer_arn().to_string());
        }
        match page.next_token() {
            Some(token) => next_token = Some(token.to_string()),
            None => break,
        }
        assert!(page_sizes.len() < 10, "paging does not end: {page_sizes:?}");
    }
    assert_eq!(page_sizes, [7, 7, 6]);
    let mut expected = registered.clone();
    expected.sort();
    let mut got = listed.clone();
    got.sort();
    assert_eq!(got, expected, "every consumer exactly once");

    // Without MaxResults (default 100): all in one page.
    let all = client
        .list_stream_consumers()
        .stream_arn(&stream_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(all.consumers().len(), 20);
    assert_eq!(all.next_token(), None);

    // Freeing a place lets the 21st in.
    client
        .deregister_stream_consumer()
        .consumer_arn(&registered[0])
        .send()
        .await
        .unwrap();
    register(&client, &stream_arn, "c20").await;
    assert_eq!(consumer_count(&client, "wide").await, Some(20));
}

/// AWS takes ConsumerARN together with StreamARN (LocalStack's suite recorded
/// DescribeStreamConsumer so against AWS): the consumer ARN names the consumer, and the stream
/// ARN must be its stream.
#[tokio::test]
async fn consumers_are_found_by_consumer_and_stream_arn_together() {
    let server = fanout_server(&[]);
    let client = server.client();
    let stream_arn = stream_with(&client, "both", 1).await;
    let other_arn = stream_with(&client, "elsewhere", 1).await;
    let consumer_arn = register(&client, &stream_arn, "app").await;
    let described = client
        .describe_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_arn(&consumer_arn)
        .send()
        .await
        .expect("DescribeStreamConsumer with StreamARN and ConsumerARN");
    let description = described
        .consumer_description()
        .expect("ConsumerDescription");
    assert_eq!(description.consumer_name(), "app");
    assert_eq!(description.consumer_arn(), consumer_arn);
    assert_eq!(description.stream_arn(), stream_arn);
    // The consumer's name may come along too, if it is the consumer's.
    client
        .describe_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name("app")
        .consumer_arn(&consumer_arn)
        .send()
        .await
        .expect("all three members, agreeing");

    let mismatch =
        format!("StreamARN {other_arn} does not match the stream of ConsumerARN {consumer_arn}.");
    let result = client
        .describe_stream_consumer()
        .stream_arn(&other_arn)
        .consumer_arn(&consumer_arn)
        .send()
        .await;
    expect_error(result, "InvalidArgumentException", Some(&mismatch));
    let result = client
        .deregister_stream_consumer()
        .stream_arn(&other_arn)
        .consumer_arn(&consumer_arn)
        .send()
        .await;
    expect_error(result, "InvalidArgumentException", Some(&mismatch));
    let result = client
        .describe_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name("other-name")
        .consumer_arn(&consumer_arn)
        .send()
        .await;
    expect_error(
        result,
        "InvalidArgumentException",
        Some(&format!(
            "ConsumerName other-name does not match the name of ConsumerARN {consumer_arn}."
        )),
    );
    assert_eq!(
        consumer_status(&client, &consumer_arn).await,
        ConsumerStatus::Active,
        "a refused DeregisterStreamConsumer leaves the consumer"
    );

    client
        .deregister_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_arn(&consumer_arn)
        .send()
        .await
        .expect("DeregisterStreamConsumer with StreamARN and ConsumerARN");
    let gone = client
        .describe_stream_consumer()
        .consumer_arn(&consumer_arn)
        .send()
        .await;
    expect_error(
        gone,
        "ResourceNotFoundException",
        Some(&format!("Consumer {consumer_arn} not found.")),
    );
}

#[tokio::test]
async fn unknown_consumers_and_streams_are_not_found() {
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    let stream_arn = stream_with(&client, "known", 1).await;
    let ghost = format!("{stream_arn}/consumer/ghost:1700000000");
    let message = format!("Consumer {ghost} not found.");
    let describe = client
        .describe_stream_consumer()
        .consumer_arn(&ghost)
        .send()
        .await;
    expect_error(describe, "ResourceNotFoundException", Some(&message));
    let deregister = client
        .deregister_stream_consumer()
        .consumer_arn(&ghost)
        .send()
        .await;
    expect_error(deregister, "ResourceNotFoundException", Some(&message));
    let subscribe = try_subscribe(
        &client,
        &ghost,
        &shard_id(0),
        position(ShardIteratorType::Latest),
    )
    .await;
    expect_error(subscribe, "ResourceNotFoundException", Some(&message));

    let by_name = client
        .describe_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name("ghost")
        .send()
        .await;
    expect_error(
        by_name,
        "ResourceNotFoundException",
        Some("Consumer ghost not found."),
    );

    let missing_arn = self::stream_arn("missing");
    let register = client
        .register_stream_consumer()
        .stream_arn(&missing_arn)
        .consumer_name("c")
        .send()
        .await;
    expect_error(
        register,
        "ResourceNotFoundException",
        Some(&stream_not_found("missing")),
    );
    let list = client
        .list_stream_consumers()
        .stream_arn(&missing_arn)
        .send()
        .await;
    expect_error(
        list,
        "ResourceNotFoundException",
        Some(&stream_not_found("missing")),
    );
}

#[tokio::test]
async fn delete_stream_with_consumers_needs_enforce_consumer_deletion() {
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    let stream_arn = stream_with(&client, "owned", 1).await;
    let arn = register(&client, &stream_arn, "reader").await;
    let mut subscription = subscribe(
        &client,
        &arn,
        &shard_id(0),
        position(ShardIteratorType::Latest),
    )
    .await;
    subscription.event().await;

    let refused = client.delete_stream().stream_name("owned").send().await;
    let message = format!(
        "Stream owned under account {ACCOUNT} has registered consumers. Deregister them first, \
         or set EnforceConsumerDeletion."
    );
    assert!(
        expect_error(refused, "ResourceInUseException", Some(&message))
            .is_resource_in_use_exception()
    );
    assert_eq!(consumer_status(&client, &arn).await, ConsumerStatus::Active);

    client
        .delete_stream()
        .stream_name("owned")
        .enforce_consumer_deletion(true)
        .send()
        .await
        .unwrap();
    let gone = client
        .describe_stream_summary()
        .stream_name("owned")
        .send()
        .await;
    expect_error(
        gone,
        "ResourceNotFoundException",
        Some(&stream_not_found("owned")),
    );
    // The subscription stops: its consumer went with the stream.
    let (code, message) = exception_of(subscription.until_stopped().await);
    assert_eq!(code, "ResourceNotFoundException");
    assert_eq!(message, format!("Consumer {arn} was deregistered."));
    assert!(matches!(subscription.next().await, Next::End));
    // The consumer went with the stream, and does not come back with a new stream of that name.
    create_stream(&client, "owned", 1).await;
    let describe = client
        .describe_stream_consumer()
        .consumer_arn(&arn)
        .send()
        .await;
    expect_error(
        describe,
        "ResourceNotFoundException",
        Some(&format!("Consumer {arn} not found.")),
    );
    assert_eq!(consumer_count(&client, "owned").await, Some(0));
}

#[tokio::test]
async fn consumer_status_follows_the_update_window() {
    let server = fanout_server(&["--update-window-ms", "1500"]);
    let client = server.client();
    let stream_arn = stream_with(&client, "slow", 1).await;

    let registered_at = Instant::now();
    let arn = register(&client, &stream_arn, "late").await;
    let status = consumer_status(&client, &arn).await;
    let subscribe_early = try_subscribe(
        &client,
        &arn,
        &shard_id(0),
        position(ShardIteratorType::Latest),
    )
    .await;
    // Both answers came within the window, so the server saw a CREATING consumer.
    if registered_at.elapsed() < Duration::from_millis(1_500) {
        assert_eq!(status, ConsumerStatus::Creating);
        let message = format!("Consumer {arn} is not ACTIVE, instead in state CREATING.");
        expect_error(subscribe_early, "ResourceInUseException", Some(&message));
    } else {
        eprintln!("skipped the CREATING checks: the machine took over 1.5 s to answer");
    }

    // ACTIVE once the window has passed, not before.
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumer_status(&client, &arn).await != ConsumerStatus::Active {
        assert!(Instant::now() < deadline, "{arn} never became ACTIVE");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        registered_at.elapsed() >= Duration::from_millis(1_400),
        "ACTIVE after {:?}, before the 1.5 s window passed",
        registered_at.elapsed()
    );
    let mut subscription = subscribe(
        &client,
        &arn,
        &shard_id(0),
        position(ShardIteratorType::Latest),
    )
    .await;
    subscription.event().await;

    // Deregistering: DELETING for the window (its subscriptions end now), then gone.
    let deregistered_at = Instant::now();
    client
        .deregister_stream_consumer()
        .consumer_arn(&arn)
        .send()
        .await
        .unwrap();
    let status = consumer_status(&client, &arn).await;
    let listed = client
        .list_stream_consumers()
        .stream_arn(&stream_arn)
        .send()
        .await
        .unwrap();
    let subscribe_deleting = try_subscribe(
        &client,
        &arn,
        &shard_id(0),
        position(ShardIteratorType::Latest),
    )
    .await;
    if deregistered_at.elapsed() < Duration::from_millis(1_500) {
        assert_eq!(status, ConsumerStatus::Deleting);
        assert_eq!(listed.consumers().len(), 1, "{listed:?}");
        assert_eq!(
            listed.consumers()[0].consumer_status(),
            &ConsumerStatus::Deleting
        );
        let message = format!("Consumer {arn} is not ACTIVE, instead in state DELETING.");
        expect_error(subscribe_deleting, "ResourceInUseException", Some(&message));
    } else {
        eprintln!("skipped the DELETING checks: the machine took over 1.5 s to answer");
    }
    let stopped = subscription.until_stopped().await;
    let (code, message) = exception_of(stopped);
    assert_eq!(code, "ResourceNotFoundException");
    assert_eq!(message, format!("Consumer {arn} was deregistered."));

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let describe = client
            .describe_stream_consumer()
            .consumer_arn(&arn)
            .send()
            .await;
        if describe.is_err() {
            expect_error(
                describe,
                "ResourceNotFoundException",
                Some(&format!("Consumer {arn} not found.")),
            );
            break;
        }
        assert!(Instant::now() < deadline, "{arn} stays DELETING");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(deregistered_at.elapsed() >= Duration::from_millis(1_400));
    assert_eq!(consumer_count(&client, "slow").await, Some(0));
}

// ===== SubscribeToShard, over both transports =====

/// Every StartingPosition type delivers exactly the records GetShardIterator's would.
async fn starting_positions(transport: Transport) {
    let server = fanout_server(&[]);
    let (client, h2c) = client_over(&server, transport);
    let stream_arn = stream_with(&client, "positions", 1).await;
    let shard = shard_id(0);

    let first = put_batch(&client, "positions", "one", 5, 5).await;
    // Two frames with distinct arrival times, for AT_TIMESTAMP.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = put_batch(&client, "positions", "two", 5, 5).await;
    let all: Vec<Rec> = first.iter().chain(&second).cloned().collect();
    let stored = read_shard(&client, "positions", &shard).await;
    assert_eq!(stored.iter().map(Rec::of).collect::<Vec<_>>(), all);
    let arrival_ms =
        |index: usize| millis_of(stored[index].approximate_arrival_timestamp().unwrap());
    let at_or_after = |millis: i64| -> Vec<Rec> {
        all.iter()
            .enumerate()
            .filter(|(index, _)| arrival_ms(*index) >= millis)
            .map(|(_, rec)| rec.clone())
            .collect()
    };
    let second_ms = arrival_ms(5);
    assert!(
        arrival_ms(4) < second_ms,
        "the batches arrived at distinct times"
    );

    let cases: Vec<(&str, StartingPosition, Vec<Rec>)> = vec![
        (
            "trim",
            position(ShardIteratorType::TrimHorizon),
            all.clone(),
        ),
        (
            "at-seq",
            position_at(ShardIteratorType::AtSequenceNumber, &all[3].seq),
            all[3..].to_vec(),
        ),
        (
            "after-seq",
            position_at(ShardIteratorType::AfterSequenceNumber, &all[3].seq),
            all[4..].to_vec(),
        ),
        (
            "after-last",
            position_at(ShardIteratorType::AfterSequenceNumber, &all[9].seq),
            Vec::new(),
        ),
        ("at-time", position_at_time(second_ms), second.clone()),
        (
            "at-time-before",
            position_at_time(second_ms - 1),
            at_or_after(second_ms - 1),
        ),
        (
            "at-time-after",
            position_at_time(second_ms + 1),
            at_or_after(second_ms + 1),
        ),
        ("at-time-zero", position_at_time(0), all.clone()),
    ];
    assert_eq!(cases[5].2, second);
    for (name, start, expected) in cases {
        // GetShardIterator with the same position reads the same records.
        let mut iterator = client
            .get_shard_iterator()
            .stream_name("positions")
            .shard_id(&shard)
            .shard_iterator_type(start.r#type().clone())
            .set_starting_sequence_number(start.sequence_number().map(str::to_string));
        if let Some(time) = start.timestamp() {
            iterator = iterator.timestamp(*time);
        }
        let iterator = iterator
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .unwrap()
            .to_string();
        let polled = read_until_caught_up(&client, iterator).await;
        assert_eq!(
            polled.iter().map(Rec::of).collect::<Vec<_>>(),
            expected,
            "GetRecords from {name}"
        );
        let arn = register(&client, &stream_arn, name).await;
        let mut subscription = subscribe(&client, &arn, &shard, start).await;
        let continuation = subscription.expect_records(&expected).await;
        // Idle, the continuation number is where the reader stands: not before the last record.
        assert_ne!(
            compare_sequence_numbers(&continuation, &all[9].seq),
            std::cmp::Ordering::Less,
            "continuation {continuation} of {name} once idle"
        );
    }

    // LATEST: nothing already stored; records put while subscribed arrive, promptly.
    let arn = register(&client, &stream_arn, "latest").await;
    let mut subscription =
        subscribe(&client, &arn, &shard, position(ShardIteratorType::Latest)).await;
    let first_event = subscription.event().await;
    assert!(first_event.records().is_empty(), "{first_event:?}");
    let put_at = Instant::now();
    let third = put_batch(&client, "positions", "three", 3, 3).await;
    let (records, _) = subscription.read_until_idle(1).await;
    let latency = put_at.elapsed();
    eprintln!("{transport:?}: put -> pushed and then one keep-alive in {latency:?}");
    assert_eq!(records, third);

    if let Some(h2c) = h2c {
        h2c.assert_all_http2();
    }
}

#[tokio::test]
async fn every_starting_position_over_http1() {
    starting_positions(Transport::Http1).await;
}

#[tokio::test]
async fn every_starting_position_over_http2() {
    starting_positions(Transport::H2c).await;
}

/// Records put while subscribed arrive one by one; a continuation number, also one from an idle
/// event and one from an empty shard, resumes with no gap and no duplicate.
async fn live_records_and_continuation(transport: Transport) {
    let server = fanout_server(&[]);
    let (client, h2c) = client_over(&server, transport);
    let stream_arn = stream_with(&client, "live", 2).await;
    // Explicit hash keys pin every record to shard 0; shard 1 stays empty at first.
    let put_to = |shard: u32, data: String| {
        let client = client.clone();
        async move {
            let key = if shard == 0 {
                "0"
            } else {
                "340282366920938463463374607431768211455"
            };
            let output = client
                .put_record()
                .stream_name("live")
                .partition_key(format!("pk-{data}"))
                .explicit_hash_key(key)
                .data(Blob::new(data.as_bytes()))
                .send()
                .await
                .unwrap();
            assert_eq!(output.shard_id(), shard_id(shard));
            Rec {
                seq: output.sequence_number().to_string(),
                key: format!("pk-{data}"),
                data: data.into_bytes(),
            }
        }
    };
    let mut written = Vec::new();
    for i in 0..4 {
        written.push(put_to(0, format!("a{i}")).await);
    }
    let a = register(&client, &stream_arn, "a").await;
    let mut subscription = subscribe(
        &client,
        &a,
        &shard_id(0),
        position(ShardIteratorType::TrimHorizon),
    )
    .await;
    let idle_continuation = subscription.expect_records(&written).await;
    // Live: each record put now is pushed without another request.
    let mut live = Vec::new();
    for i in 0..3 {
        let put_at = Instant::now();
        let rec = put_to(0, format!("live{i}")).await;
        let acknowledged = put_at.elapsed();
        let pushed = loop {
            let event = subscription.event().await;
            check_open_event(&event, None);
            if !event.records().is_empty() {
                break event;
            }
        };
        eprintln!(
            "{transport:?}: record {i} acknowledged in {acknowledged:?}, pushed {:?} after the put",
            put_at.elapsed()
        );
        assert_eq!(
            pushed.records().iter().map(Rec::of).collect::<Vec<_>>(),
            std::slice::from_ref(&rec)
        );
        let (more, _) = subscription.read_until_idle(0).await;
        assert!(more.is_empty(), "{more:?}");
        live.push(rec);
    }
    drop(subscription);

    // Resume after the idle continuation number seen before the live records.
    let b = register(&client, &stream_arn, "b").await;
    let mut resumed = subscribe(
        &client,
        &b,
        &shard_id(0),
        position_at(ShardIteratorType::AfterSequenceNumber, &idle_continuation),
    )
    .await;
    let last_continuation = resumed.expect_records(&live).await;
    drop(resumed);
    // A continuation number is a checkpoint for polling readers too: GetShardIterator at it and
    // after it both start at the first record it did not cover.
    for kind in [
        ShardIteratorType::AtSequenceNumber,
        ShardIteratorType::AfterSequenceNumber,
    ] {
        let iterator = client
            .get_shard_iterator()
            .stream_name("live")
            .shard_id(shard_id(0))
            .shard_iterator_type(kind.clone())
            .starting_sequence_number(&idle_continuation)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .unwrap()
            .to_string();
        let records: Vec<Rec> = read_until_caught_up(&client, iterator)
            .await
            .iter()
            .map(Rec::of)
            .collect();
        assert_eq!(
            records, live,
            "GetShardIterator {kind:?} the continuation number"
        );
    }
    for i in 0..2 {
        written.push(put_to(0, format!("later{i}")).await);
    }
    let c = register(&client, &stream_arn, "c").await;
    let mut resumed = subscribe(
        &client,
        &c,
        &shard_id(0),
        position_at(ShardIteratorType::AfterSequenceNumber, &last_continuation),
    )
    .await;
    resumed.expect_records(&written[4..]).await;

    // An empty shard: the idle continuation number is valid and loses nothing put after it.
    let d = register(&client, &stream_arn, "d").await;
    let mut empty = subscribe(
        &client,
        &d,
        &shard_id(1),
        position(ShardIteratorType::Latest),
    )
    .await;
    let (none, empty_continuation) = empty.read_until_idle(0).await;
    assert!(none.is_empty());
    assert_sequence_number(&empty_continuation);
    drop(empty);
    let first_on_one = vec![put_to(1, "b0".into()).await, put_to(1, "b1".into()).await];
    let e = register(&client, &stream_arn, "e").await;
    let mut resumed = subscribe(
        &client,
        &e,
        &shard_id(1),
        position_at(ShardIteratorType::AfterSequenceNumber, &empty_continuation),
    )
    .await;
    resumed.expect_records(&first_on_one).await;

    if let Some(h2c) = h2c {
        h2c.assert_all_http2();
    }
}

#[tokio::test]
async fn live_records_and_continuation_over_http1() {
    live_records_and_continuation(Transport::Http1).await;
}

#[tokio::test]
async fn live_records_and_continuation_over_http2() {
    live_records_and_continuation(Transport::H2c).await;
}

/// With a 2 s lifetime, subscriptions end cleanly and a consumer that resubscribes from its
/// continuation number, with `resume` (AT_ or AFTER_SEQUENCE_NUMBER: clients use both), sees
/// every record a concurrent producer wrote exactly once, in order.
async fn renewal(transport: Transport, resume: ShardIteratorType) {
    let server = fanout_server(&["--subscription-lifetime-s", "2"]);
    let (client, h2c) = client_over(&server, transport);
    let stream_arn = stream_with(&client, "renew", 1).await;
    let arn = register(&client, &stream_arn, "renewer").await;

    let producer_client = client.clone();
    let producer = tokio::spawn(async move {
        let mut produced = Vec::new();
        let started = Instant::now();
        let mut i = 0;
        while started.elapsed() < Duration::from_millis(6_500) {
            let entries: Vec<(String, String)> = (0..(1 + i % 3))
                .map(|j| (format!("k{}", (i + j) % 4), format!("r{i}-{j}")))
                .collect();
            produced.extend(
                put(&producer_client, "renew", &entries)
                    .await
                    .into_iter()
                    .map(|(rec, _)| rec),
            );
            i += 1;
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        produced
    });

    let deadline = Instant::now() + Duration::from_secs(90);
    let mut producer = producer;
    let mut produced: Option<Vec<Rec>> = None;
    let mut received: Vec<Rec> = Vec::new();
    let mut continuation: Option<String> = None;
    let mut open: Option<Subscription> = None;
    let mut clean_ends = 0;
    let mut subscriptions = 0;
    loop {
        if produced.is_none() && producer.is_finished() {
            produced = Some((&mut producer).await.expect("the producer ran"));
        }
        if let Some(produced) = &produced {
            // Everything arrived, and at least three subscriptions lived out their lifetime.
            if received.len() >= produced.len() && clean_ends >= 3 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} records arrived, the producer wrote {:?}",
            received.len(),
            produced.as_ref().map(Vec::len)
        );
        let subscription = match &mut open {
            Some(subscription) => subscription,
            None => {
                let start = match &continuation {
                    Some(seq) => position_at(resume.clone(), seq),
                    None => position(ShardIteratorType::TrimHorizon),
                };
                subscriptions += 1;
                open.insert(subscribe(&client, &arn, &shard_id(0), start).await)
            }
        };
        match subscription.next().await {
            Next::Event(event) => {
                check_open_event(&event, received.last());
                received.extend(event.records().iter().map(Rec::of));
                continuation = Some(event.continuation_sequence_number().to_string());
            }
            Next::End => {
                clean_ends += 1;
                open = None;
            }
            Next::Exception(error) => panic!("renewal: exception event {error:?}"),
        }
    }
    let produced = produced.unwrap();
    eprintln!(
        "{transport:?}, resuming {resume:?}: {} records over {subscriptions} subscriptions, \
         {clean_ends} clean ends",
        produced.len()
    );
    assert_eq!(received, produced, "every record exactly once, in order");
    if let Some(h2c) = h2c {
        h2c.assert_all_http2();
    }
}

#[tokio::test]
async fn renewal_over_http1() {
    renewal(Transport::Http1, ShardIteratorType::AfterSequenceNumber).await;
}

#[tokio::test]
async fn renewal_over_http2() {
    renewal(Transport::H2c, ShardIteratorType::AfterSequenceNumber).await;
}

#[tokio::test]
async fn renewal_at_the_continuation_number_over_http1() {
    renewal(Transport::Http1, ShardIteratorType::AtSequenceNumber).await;
}

#[tokio::test]
async fn renewal_at_the_continuation_number_over_http2() {
    renewal(Transport::H2c, ShardIteratorType::AtSequenceNumber).await;
}

/// Subscribing to a shard that is split: its records, then a last event with the ChildShards
/// (as ListShards shows them) and no continuation number, then the end; the children deliver
/// the rest, and every partition key reads in order.
async fn across_a_split(transport: Transport) {
    let server = fanout_server(&[]);
    let (client, h2c) = client_over(&server, transport);
    let stream_arn = stream_with(&client, "split", 1).await;
    let parent = shard_id(0);
    let reader = register(&client, &stream_arn, "reader").await;
    let mut on_parent = subscribe(
        &client,
        &reader,
        &parent,
        position(ShardIteratorType::TrimHorizon),
    )
    .await;

    let before = put_batch(&client, "split", "before", 24, 8).await;
    let (records, _) = on_parent.read_until_idle(before.len()).await;
    assert_eq!(records, before);

    client
        .split_shard()
        .stream_name("split")
        .shard_to_split(&parent)
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    let after: Vec<(Rec, String)> = put(
        &client,
        "split",
        &(0..24)
            .map(|i| (format!("k{}", i % 8), format!("after-{i}")))
            .collect::<Vec<_>>(),
    )
    .await;

    let (rest, children) = on_parent.read_to_shard_end().await;
    assert!(
        rest.is_empty(),
        "the parent's records came before the split: {rest:?}"
    );
    let shards = list_all_shards(&client, "split").await;
    let listed: Vec<_> = shards
        .iter()
        .filter(|shard| shard.parent_shard_id() == Some(parent.as_str()))
        .collect();
    assert_eq!(listed.len(), 2, "{shards:?}");
    assert_eq!(children.len(), 2, "{children:?}");
    for (child, shard) in children.iter().zip(&listed) {
        assert_eq!(child.shard_id(), shard.shard_id());
        assert_eq!(child.parent_shards(), std::slice::from_ref(&parent));
        let range = child.hash_key_range().expect("HashKeyRange");
        let (start, end) = hash_range(shard);
        assert_eq!(range.starting_hash_key(), start.to_string());
        assert_eq!(range.ending_hash_key(), end.to_string());
    }

    // A fresh subscription to the closed parent, from its start: the same records and end.
    let second = register(&client, &stream_arn, "second").await;
    let mut again = subscribe(
        &client,
        &second,
        &parent,
        position(ShardIteratorType::TrimHorizon),
    )
    .await;
    let (records, again_children) = again.read_to_shard_end().await;
    assert_eq!(records, before);
    assert_eq!(again_children, children);
    // LATEST on the closed parent: nothing more will come, so straight to the end.
    let third = register(&client, &stream_arn, "third").await;
    let mut latest = subscribe(
        &client,
        &third,
        &parent,
        position(ShardIteratorType::Latest),
    )
    .await;
    let (records, latest_children) = latest.read_to_shard_end().await;
    assert!(records.is_empty(), "{records:?}");
    assert_eq!(latest_children, children);

    // The children deliver exactly what was routed to each.
    let mut from_children: Vec<Rec> = Vec::new();
    for child in &children {
        let expected: Vec<Rec> = after
            .iter()
            .filter(|(_, shard)| shard == child.shard_id())
            .map(|(rec, _)| rec.clone())
            .collect();
        assert!(!expected.is_empty(), "keys k0..k7 reach both children");
        for rec in &expected {
            let owner = shard_for_hash_key(&shards[1..], md5_hash_key(rec.key.as_bytes()));
            assert_eq!(owner, child.shard_id(), "routing of {rec:?}");
            assert_sequence_before(&before.last().unwrap().seq, &rec.seq);
        }
        let mut on_child = subscribe(
            &client,
            &reader,
            child.shard_id(),
            position(ShardIteratorType::TrimHorizon),
        )
        .await;
        on_child.expect_records(&expected).await;
        from_children.extend(expected);
    }
    // Per partition key: the parent's records, then the children's, in the order put.
    for key in (0..8).map(|k| format!("k{k}")) {
        let read: Vec<&Vec<u8>> = before
            .iter()
            .chain(&from_children)
            .filter(|rec| rec.key == key)
            .map(|rec| &rec.data)
            .collect();
        let put_order: Vec<&Vec<u8>> = before
            .iter()
            .chain(after.iter().map(|(rec, _)| rec))
            .filter(|rec| rec.key == key)
            .map(|rec| &rec.data)
            .collect();
        assert_eq!(read, put_order, "order of {key}");
    }
    if let Some(h2c) = h2c {
        h2c.assert_all_http2();
    }
}

#[tokio::test]
async fn across_a_split_over_http1() {
    across_a_split(Transport::Http1).await;
}

#[tokio::test]
async fn across_a_split_over_http2() {
    across_a_split(Transport::H2c).await;
}

/// A second subscription for the same consumer and shard within 5 s is refused with an error
/// response; after 5 s it takes over and the first ends with a ResourceInUseException event.
/// With AWS's limits on (the server's default).
async fn takeover(transport: Transport) {
    let server = Server::in_memory_with(&["--subscription-keep-alive-ms", KEEP_ALIVE_MS]);
    let (client, h2c) = client_over(&server, transport);
    let stream_arn = stream_with(&client, "shared", 1).await;
    let arn = register(&client, &stream_arn, "one").await;
    let shard = shard_id(0);

    let before_first = Instant::now();
    let mut first = subscribe(&client, &arn, &shard, position(ShardIteratorType::Latest)).await;
    let first_at = Instant::now();
    first.event().await;
    let refused = try_subscribe(&client, &arn, &shard, position(ShardIteratorType::Latest)).await;
    // The server's clock for the first subscription started after `before_first`.
    if before_first.elapsed() < TAKEOVER_AFTER {
        let message = format!("Another active subscription exists for this consumer: {arn}");
        let error = expect_error(refused, "ResourceInUseException", Some(&message));
        assert!(error.is_resource_in_use_exception(), "{error:?}");
    }
    // Another shard or another consumer is no conflict.
    let other = register(&client, &stream_arn, "two").await;
    let mut other_subscription =
        subscribe(&client, &other, &shard, position(ShardIteratorType::Latest)).await;
    other_subscription.event().await;

    tokio::time::sleep_until((first_at + TAKEOVER_AFTER + Duration::from_millis(300)).into()).await;
    let mut second = subscribe(&client, &arn, &shard, position(ShardIteratorType::Latest)).await;
    let stopped = first.until_stopped().await;
    let (code, message) = exception_of(stopped);
    assert_eq!(code, "ResourceInUseException");
    assert_eq!(
        message,
        format!("Another subscription for consumer {arn} and this shard took over.")
    );
    // After the exception the SDK's receiver is done.
    assert!(matches!(first.next().await, Next::End));

    let rec = put_batch(&client, "shared", "x", 1, 1).await;
    let (records, _) = second.read_until_idle(1).await;
    assert_eq!(records, rec);
    let (records, _) = other_subscription.read_until_idle(1).await;
    assert_eq!(records, rec, "the other consumer was not disturbed");
    if let Some(h2c) = h2c {
        h2c.assert_all_http2();
    }
}

#[tokio::test]
async fn takeover_after_five_seconds_over_http1() {
    takeover(Transport::Http1).await;
}

#[tokio::test]
async fn takeover_after_five_seconds_over_http2() {
    takeover(Transport::H2c).await;
}

// ===== SubscribeToShard, HTTP/1.1 =====

#[tokio::test]
async fn idle_subscriptions_get_keep_alive_events() {
    let server = fanout_server(&[]);
    let client = server.client();
    let stream_arn = stream_with(&client, "quiet", 1).await;
    let arn = register(&client, &stream_arn, "waiter").await;
    let mut subscription = subscribe(
        &client,
        &arn,
        &shard_id(0),
        position(ShardIteratorType::Latest),
    )
    .await;
    let started = Instant::now();
    let mut continuations = Vec::new();
    for _ in 0..5 {
        let event = subscription.event().await;
        check_open_event(&event, None);
        assert!(event.records().is_empty(), "{event:?}");
        assert_eq!(event.millis_behind_latest(), 0);
        continuations.push(event.continuation_sequence_number().to_string());
    }
    // Five events at a 200 ms cadence (the first at once): about 0.8 s, well under 15 s.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "keep-alives took {:?}",
        started.elapsed()
    );
    assert!(
        continuations.windows(2).all(|pair| pair[0] == pair[1]),
        "nothing arrived, so the idle position stays put: {continuations:?}"
    );
    let rec = put_batch(&client, "quiet", "wake", 2, 2).await;
    let (records, continuation) = subscription.read_until_idle(2).await;
    assert_eq!(records, rec);
    assert_ne!(
        compare_sequence_numbers(&continuation, &rec[1].seq),
        std::cmp::Ordering::Less,
        "idle again, the continuation {continuation} is not before the last record"
    );
}

#[tokio::test]
async fn deregistering_ends_the_subscription() {
    let server = fanout_server(&[]);
    let client = server.client();
    let stream_arn = stream_with(&client, "leaving", 1).await;
    let arn = register(&client, &stream_arn, "goner").await;
    let mut subscription = subscribe(
        &client,
        &arn,
        &shard_id(0),
        position(ShardIteratorType::TrimHorizon),
    )
    .await;
    subscription.event().await;
    client
        .deregister_stream_consumer()
        .consumer_arn(&arn)
        .send()
        .await
        .unwrap();
    let (code, message) = exception_of(subscription.until_stopped().await);
    assert_eq!(code, "ResourceNotFoundException");
    assert_eq!(message, format!("Consumer {arn} was deregistered."));
    assert!(matches!(subscription.next().await, Next::End));
    let again = try_subscribe(
        &client,
        &arn,
        &shard_id(0),
        position(ShardIteratorType::Latest),
    )
    .await;
    expect_error(
        again,
        "ResourceNotFoundException",
        Some(&format!("Consumer {arn} not found.")),
    );
}

/// SubscribeToShard refuses what GetShardIterator refuses, with the same texts.
#[tokio::test]
async fn bad_starting_positions_get_get_shard_iterator_texts() {
    let server = fanout_server(&[]);
    let client = server.client();
    // Sequence numbers carry their shard's creation second: another stream's shard 0 created in
    // the same second would hand out the very same numbers, so "elsewhere" is a second older.
    create_stream(&client, "elsewhere", 1).await;
    let elsewhere_seq = client
        .put_record()
        .stream_name("elsewhere")
        .partition_key("k")
        .data(Blob::new("e"))
        .send()
        .await
        .unwrap()
        .sequence_number()
        .to_string();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let stream_arn = stream_with(&client, "errs", 2).await;
    let arn = register(&client, &stream_arn, "checker").await;
    let on_zero = client
        .put_record()
        .stream_name("errs")
        .partition_key("k")
        .explicit_hash_key("0")
        .data(Blob::new("z"))
        .send()
        .await
        .unwrap();
    assert_eq!(on_zero.shard_id(), shard_id(0));
    let zero_seq = on_zero.sequence_number().to_string();
    assert_ne!(zero_seq, elsewhere_seq);

    /// One bad request, sent both ways; both must fail alike with `expected` (or, with `None`,
    /// just alike).
    struct Case<'a> {
        shard: String,
        kind: ShardIteratorType,
        sequence: Option<&'a str>,
        millis: Option<i64>,
        code: &'a str,
        expected: Option<String>,
    }
    let future_ms = now_millis() + 3_600_000;
    let cases = vec![
        Case {
            shard: shard_id(9),
            kind: ShardIteratorType::TrimHorizon,
            sequence: None,
            millis: None,
            code: "ResourceNotFoundException",
            expected: Some(shard_not_found("errs", &shard_id(9))),
        },
        Case {
            shard: shard_id(0),
            kind: ShardIteratorType::AtSequenceNumber,
            sequence: None,
            millis: None,
            code: "InvalidArgumentException",
            expected: Some(format!(
                "{SEQUENCE_ARGUMENT_RULE} Request specified AT_SEQUENCE_NUMBER and no \
                 StartingSequenceNumber."
            )),
        },
        Case {
            shard: shard_id(0),
            kind: ShardIteratorType::AfterSequenceNumber,
            sequence: None,
            millis: None,
            code: "InvalidArgumentException",
            expected: Some(format!(
                "{SEQUENCE_ARGUMENT_RULE} Request specified AFTER_SEQUENCE_NUMBER and no \
                 StartingSequenceNumber."
            )),
        },
        Case {
            shard: shard_id(0),
            kind: ShardIteratorType::Latest,
            sequence: Some(&zero_seq),
            millis: None,
            code: "InvalidArgumentException",
            expected: Some(format!(
                "{SEQUENCE_ARGUMENT_RULE} Request specified LATEST and also a \
                 StartingSequenceNumber."
            )),
        },
        Case {
            shard: shard_id(1),
            kind: ShardIteratorType::AtSequenceNumber,
            sequence: Some(&zero_seq),
            millis: None,
            code: "InvalidArgumentException",
            expected: Some(format!(
                "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a \
                 shard with {}",
                shard_id(0),
                shard_id(1)
            )),
        },
        Case {
            shard: shard_id(0),
            kind: ShardIteratorType::AfterSequenceNumber,
            sequence: Some(&elsewhere_seq),
            millis: None,
            code: "InvalidArgumentException",
            expected: Some(format!(
                "StartingSequenceNumber {elsewhere_seq} used in GetShardIterator on shard {} in \
                 stream errs under account {ACCOUNT} is invalid because it did not come from \
                 this stream.",
                shard_id(0)
            )),
        },
        Case {
            shard: shard_id(0),
            kind: ShardIteratorType::AtSequenceNumber,
            sequence: Some("12345"),
            millis: None,
            code: "InvalidArgumentException",
            expected: None,
        },
        Case {
            shard: shard_id(0),
            kind: ShardIteratorType::AtTimestamp,
            sequence: None,
            millis: None,
            code: "InvalidArgumentException",
            expected: Some(
                "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. \
                 Current request has no timestamp parameter."
                    .to_string(),
            ),
        },
    ];
    for case in cases {
        eprintln!("case {:?} {:?} on {}", case.kind, case.sequence, case.shard);
        let mut start = StartingPosition::builder().r#type(case.kind.clone());
        let mut iterator = client
            .get_shard_iterator()
            .stream_name("errs")
            .shard_id(&case.shard)
            .shard_iterator_type(case.kind.clone());
        if let Some(sequence) = case.sequence {
            start = start.sequence_number(sequence);
            iterator = iterator.starting_sequence_number(sequence);
        }
        if let Some(millis) = case.millis {
            start = start.timestamp(DateTime::from_millis(millis));
            iterator = iterator.timestamp(DateTime::from_millis(millis));
        }
        let subscribed = try_subscribe(&client, &arn, &case.shard, start.build().unwrap()).await;
        let subscribe_error = expect_error(subscribed, case.code, case.expected.as_deref());
        let iterator_error =
            expect_error(iterator.send().await, case.code, case.expected.as_deref());
        assert_eq!(
            subscribe_error.message(),
            iterator_error.message(),
            "SubscribeToShard and GetShardIterator say the same for {:?} {:?}",
            case.kind,
            case.sequence
        );
    }

    // AT_TIMESTAMP in the future: the text carries the server's clock.
    let prefix = format!(
        "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. \
         timestampInMillis: {future_ms}, currentTimestampInMillis: "
    );
    let before = now_millis();
    let subscribed = try_subscribe(&client, &arn, &shard_id(0), position_at_time(future_ms)).await;
    let error = expect_error(subscribed, "InvalidArgumentException", None);
    let after = now_millis();
    let message = error.message().unwrap_or_default();
    let current: i64 = message
        .strip_prefix(prefix.as_str())
        .unwrap_or_else(|| panic!("{message:?} does not start with {prefix:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("currentTimestampInMillis of {message:?}"));
    assert!(
        (before - 1_000..=after + 1_000).contains(&current),
        "{message}"
    );

    // None of these left a subscription behind: a valid one goes through at once.
    let mut subscription = subscribe(
        &client,
        &arn,
        &shard_id(0),
        position(ShardIteratorType::TrimHorizon),
    )
    .await;
    subscription
        .expect_records(&[Rec {
            seq: zero_seq.clone(),
            key: "k".into(),
            data: b"z".to_vec(),
        }])
        .await;
}
