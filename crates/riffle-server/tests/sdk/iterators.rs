//! GetShardIterator (all five types and their argument errors) and GetRecords (limits,
//! chaining, lag, arrival timestamps, bad iterators).

use std::time::Duration;

use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;

use crate::common::*;

const SEQUENCE_ARGUMENT_RULE: &str = "Must either specify (1) AT_SEQUENCE_NUMBER or \
     AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no \
     StartingSequenceNumber.";

/// Puts `data` with partition key `k` to a one-shard stream, returning the sequence number.
async fn put(client: &Client, stream: &str, data: &str) -> String {
    client
        .put_record()
        .stream_name(stream)
        .partition_key("k")
        .data(Blob::new(data))
        .send()
        .await
        .unwrap()
        .sequence_number()
        .to_string()
}

async fn iterator_at(
    client: &Client,
    stream: &str,
    kind: ShardIteratorType,
    sequence_number: &str,
) -> String {
    client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard_id(0))
        .shard_iterator_type(kind)
        .starting_sequence_number(sequence_number)
        .send()
        .await
        .unwrap()
        .shard_iterator()
        .unwrap()
        .to_string()
}

async fn iterator_at_timestamp(client: &Client, stream: &str, millis: i64) -> String {
    client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard_id(0))
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(DateTime::from_millis(millis))
        .send()
        .await
        .unwrap()
        .shard_iterator()
        .unwrap()
        .to_string()
}

fn data_of(records: &[aws_sdk_kinesis::types::Record]) -> Vec<String> {
    records
        .iter()
        .map(|record| String::from_utf8(record.data().as_ref().to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn every_iterator_type_starts_where_aws_says() {
    // Limits off: many GetShardIterator/GetRecords calls on one shard, faster than its read limits.
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    create_stream(&client, "types", 1).await;

    let before_ms = now_millis();
    let mut sequence_numbers = Vec::new();
    for data in ["r0", "r1"] {
        sequence_numbers.push(put(&client, "types", data).await);
    }
    // A gap on both sides of `middle_ms`, wider than any clock rounding, so AT_TIMESTAMP has a
    // single right answer.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let middle_ms = now_millis();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for data in ["r2", "r3", "r4"] {
        sequence_numbers.push(put(&client, "types", data).await);
    }
    let after_ms = now_millis();

    let latest = shard_iterator(&client, "types", &shard_id(0), ShardIteratorType::Latest).await;
    let trim = shard_iterator(
        &client,
        "types",
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
    )
    .await;
    let all = read_until_caught_up(&client, trim).await;
    assert_eq!(data_of(&all), ["r0", "r1", "r2", "r3", "r4"]);
    for (record, sequence_number) in all.iter().zip(&sequence_numbers) {
        assert_eq!(record.sequence_number(), sequence_number);
        assert_eq!(record.partition_key(), Some("k"));
        let arrival = record
            .approximate_arrival_timestamp()
            .expect("records carry ApproximateArrivalTimestamp")
            .to_millis()
            .unwrap();
        assert!(
            arrival >= before_ms - 1_000 && arrival <= after_ms + 1_000,
            "arrival {arrival} not within [{before_ms}, {after_ms}]"
        );
    }

    let at = iterator_at(
        &client,
        "types",
        ShardIteratorType::AtSequenceNumber,
        &sequence_numbers[2],
    )
    .await;
    assert_eq!(
        data_of(&read_until_caught_up(&client, at).await),
        ["r2", "r3", "r4"]
    );
    let after = iterator_at(
        &client,
        "types",
        ShardIteratorType::AfterSequenceNumber,
        &sequence_numbers[2],
    )
    .await;
    assert_eq!(
        data_of(&read_until_caught_up(&client, after).await),
        ["r3", "r4"]
    );
    let after_last = iterator_at(
        &client,
        "types",
        ShardIteratorType::AfterSequenceNumber,
        &sequence_numbers[4],
    )
    .await;
    assert!(read_until_caught_up(&client, after_last.clone())
        .await
        .is_empty());

    let at_middle = iterator_at_timestamp(&client, "types", middle_ms).await;
    assert_eq!(
        data_of(&read_until_caught_up(&client, at_middle).await),
        ["r2", "r3", "r4"]
    );
    // Long before the stream existed: the trim horizon.
    let at_old = iterator_at_timestamp(&client, "types", 1_000_000_000).await;
    assert_eq!(
        data_of(&read_until_caught_up(&client, at_old).await).len(),
        5
    );

    // LATEST was taken after r4: it sees only what comes next, as does AFTER r4.
    assert!(read_until_caught_up(&client, latest.clone())
        .await
        .is_empty());
    put(&client, "types", "r5").await;
    assert_eq!(
        data_of(&read_until_caught_up(&client, latest).await),
        ["r5"]
    );
    assert_eq!(
        data_of(&read_until_caught_up(&client, after_last).await),
        ["r5"]
    );
}

#[tokio::test]
async fn shard_iterators_can_be_reused() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "reuse", 1).await;
    put(&client, "reuse", "a").await;
    put(&client, "reuse", "b").await;
    let iterator = shard_iterator(
        &client,
        "reuse",
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
    )
    .await;
    for _ in 0..2 {
        let page = client
            .get_records()
            .shard_iterator(&iterator)
            .send()
            .await
            .unwrap();
        assert_eq!(data_of(page.records()), ["a", "b"]);
    }
}

#[tokio::test]
async fn get_records_limit_and_chaining() {
    // Limits off: more than five GetRecords calls a second on one shard.
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    create_stream(&client, "chain", 1).await;
    for i in 0..10 {
        put(&client, "chain", &format!("{i}")).await;
    }
    let mut iterator = shard_iterator(
        &client,
        "chain",
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
    )
    .await;
    let mut sizes = Vec::new();
    let mut data = Vec::new();
    for _ in 0..5 {
        let page = client
            .get_records()
            .shard_iterator(&iterator)
            .limit(3)
            .send()
            .await
            .unwrap();
        sizes.push(page.records().len());
        data.extend(data_of(page.records()));
        iterator = page
            .next_shard_iterator()
            .expect("an open shard always has a NextShardIterator")
            .to_string();
        assert!(
            page.child_shards().is_empty(),
            "no ChildShards on an open shard"
        );
        if page.records().is_empty() {
            assert_eq!(page.millis_behind_latest(), Some(0), "caught up: {page:?}");
        }
    }
    assert_eq!(sizes, [3, 3, 3, 1, 0]);
    let expected: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    assert_eq!(data, expected);

    // The last NextShardIterator keeps working for records written later.
    put(&client, "chain", "10").await;
    let page = client
        .get_records()
        .shard_iterator(&iterator)
        .send()
        .await
        .unwrap();
    assert_eq!(data_of(page.records()), ["10"]);
    assert_eq!(page.millis_behind_latest(), Some(0));
}

#[tokio::test]
async fn get_records_on_an_empty_shard() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "empty", 2).await;
    for shard in [shard_id(0), shard_id(1)] {
        let iterator =
            shard_iterator(&client, "empty", &shard, ShardIteratorType::TrimHorizon).await;
        let page = client
            .get_records()
            .shard_iterator(iterator)
            .send()
            .await
            .unwrap();
        assert!(page.records().is_empty());
        assert_eq!(page.millis_behind_latest(), Some(0));
        assert!(page.next_shard_iterator().is_some());
    }
}

#[tokio::test]
async fn millis_behind_latest_reports_lag() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "lag", 1).await;
    put(&client, "lag", "old").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    put(&client, "lag", "new").await;
    let iterator =
        shard_iterator(&client, "lag", &shard_id(0), ShardIteratorType::TrimHorizon).await;
    let page = client
        .get_records()
        .shard_iterator(iterator)
        .limit(1)
        .send()
        .await
        .unwrap();
    assert_eq!(data_of(page.records()), ["old"]);
    let behind = page
        .millis_behind_latest()
        .expect("GetRecords reports MillisBehindLatest");
    assert!(
        behind >= 200,
        "a reader one record behind a 400 ms gap is {behind} ms behind"
    );
    let page = client
        .get_records()
        .shard_iterator(page.next_shard_iterator().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(data_of(page.records()), ["new"]);
    assert_eq!(page.millis_behind_latest(), Some(0));
}

#[tokio::test]
async fn at_timestamp_argument_errors() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "ts", 1).await;
    let future_ms = now_millis() + 3_600_000;
    let result = client
        .get_shard_iterator()
        .stream_name("ts")
        .shard_id(shard_id(0))
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(DateTime::from_millis(future_ms))
        .send()
        .await;
    let error = expect_error(result, "InvalidArgumentException", None);
    assert!(error.is_invalid_argument_exception());
    let message = error.meta().message().unwrap_or_default();
    let prefix = format!(
        "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. \
         timestampInMillis: {future_ms}, currentTimestampInMillis: "
    );
    assert!(message.starts_with(&prefix), "{message:?}");

    let result = client
        .get_shard_iterator()
        .stream_name("ts")
        .shard_id(shard_id(0))
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .send()
        .await;
    let message = "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. \
                   Current request has no timestamp parameter.";
    assert!(
        expect_error(result, "InvalidArgumentException", Some(message))
            .is_invalid_argument_exception()
    );
}

#[tokio::test]
async fn sequence_number_arguments_must_match_the_type() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "seqargs", 1).await;
    let sequence_number = put(&client, "seqargs", "x").await;

    for kind in [ShardIteratorType::TrimHorizon, ShardIteratorType::Latest] {
        let result = client
            .get_shard_iterator()
            .stream_name("seqargs")
            .shard_id(shard_id(0))
            .shard_iterator_type(kind.clone())
            .starting_sequence_number(&sequence_number)
            .send()
            .await;
        let message = format!(
            "{SEQUENCE_ARGUMENT_RULE} Request specified {} and also a StartingSequenceNumber.",
            kind.as_str()
        );
        assert!(
            expect_error(result, "InvalidArgumentException", Some(&message))
                .is_invalid_argument_exception()
        );
    }
    for kind in [
        ShardIteratorType::AtSequenceNumber,
        ShardIteratorType::AfterSequenceNumber,
    ] {
        let result = client
            .get_shard_iterator()
            .stream_name("seqargs")
            .shard_id(shard_id(0))
            .shard_iterator_type(kind.clone())
            .send()
            .await;
        let message = format!(
            "{SEQUENCE_ARGUMENT_RULE} Request specified {} and no StartingSequenceNumber.",
            kind.as_str()
        );
        assert!(
            expect_error(result, "InvalidArgumentException", Some(&message))
                .is_invalid_argument_exception()
        );
    }
}

#[tokio::test]
async fn sequence_number_of_another_shard_is_rejected() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "other", 2).await;
    let put = client
        .put_record()
        .stream_name("other")
        .partition_key("k")
        .explicit_hash_key("0")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.shard_id(), shard_id(0));
    let result = client
        .get_shard_iterator()
        .stream_name("other")
        .shard_id(shard_id(1))
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(put.sequence_number())
        .send()
        .await;
    let message = format!(
        "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard \
         with {}",
        shard_id(0),
        shard_id(1)
    );
    assert!(
        expect_error(result, "InvalidArgumentException", Some(&message))
            .is_invalid_argument_exception()
    );
}

#[tokio::test]
async fn unknown_shards_and_streams_are_not_found() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "known", 2).await;
    let result = client
        .get_shard_iterator()
        .stream_name("known")
        .shard_id(shard_id(9))
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await;
    let message = shard_not_found("known", &shard_id(9));
    assert!(
        expect_error(result, "ResourceNotFoundException", Some(&message))
            .is_resource_not_found_exception()
    );

    let result = client
        .get_shard_iterator()
        .stream_name("unknown")
        .shard_id(shard_id(0))
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await;
    let error = expect_error(result, "ResourceNotFoundException", None);
    assert!(error.is_resource_not_found_exception());
    assert_iterator_stream_not_found(&error, "unknown");
}

#[tokio::test]
async fn shard_id_arguments_are_read_as_aws_reads_them() {
    // Limits off: many GetShardIterator calls on one shard, faster than 5 a second.
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    create_stream(&client, "ids", 2).await;
    client
        .put_record()
        .stream_name("ids")
        .partition_key("k")
        .explicit_hash_key(u128::MAX.to_string())
        .data(Blob::new("on shard 1"))
        .send()
        .await
        .unwrap();
    // AWS reads the number after the last `-` (kinesalite recorded these against production).
    for argument in [
        "shardId-000000000001",
        "shardId-1",
        "shard-1",
        "1",
        "any-name-0001",
    ] {
        let iterator = client
            .get_shard_iterator()
            .stream_name("ids")
            .shard_id(argument)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap_or_else(|error| panic!("ShardId {argument:?}: {error:?}"))
            .shard_iterator
            .unwrap();
        assert_eq!(
            data_of(&read_until_caught_up(&client, iterator).await),
            ["on shard 1"],
            "ShardId {argument:?} names shard 1"
        );
    }

    let iterator_of = |stream: &'static str, argument: &'static str| {
        client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(argument)
            .shard_iterator_type(ShardIteratorType::Latest)
            .send()
    };
    // A readable number names the shard in its canonical form, even when the stream is missing.
    for (stream, argument, canonical) in [
        ("ids", "shardId-5", shard_id(5)),
        ("ids", "2147483647", "shardId-002147483647".to_string()),
        ("absent", "shard-3", shard_id(3)),
    ] {
        let result = iterator_of(stream, argument).await;
        let message = shard_not_found(stream, &canonical);
        assert!(
            expect_error(result, "ResourceNotFoundException", Some(&message))
                .is_resource_not_found_exception(),
            "ShardId {argument:?}"
        );
    }
    // Anything else, including numbers above Java's Integer.MAX_VALUE, cannot be found at all.
    for (stream, argument) in [
        ("ids", "ABKLFD8"),
        ("ids", "2.14E4"),
        ("ids", "2147483648"),
        ("ids", "shardId-002147483648"),
        ("absent", "ABKLFD8"),
    ] {
        let result = iterator_of(stream, argument).await;
        let message =
            format!("Could not find shard {argument} in stream {stream} under account {ACCOUNT}.");
        assert!(
            expect_error(result, "ResourceNotFoundException", Some(&message))
                .is_resource_not_found_exception(),
            "ShardId {argument:?}"
        );
    }
}

/// Re-seals a genuine iterator as if it had been issued `age_ms` earlier than it was.
fn aged_iterator(key: &[u8; 32], iterator: &str, age_ms: u64) -> (String, u64) {
    let mut token = riffle_proto::iterator::IteratorToken::decode(iterator, key)
        .unwrap_or_else(|error| panic!("a genuine iterator decodes under the node key: {error}"));
    token.issued_ms -= age_ms;
    (token.encode(key), token.issued_ms)
}

#[tokio::test]
async fn iterators_expire_after_five_minutes() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = Server::on_data_dir(data_dir.path());
    let client = server.client();
    create_stream(&client, "expiry", 1).await;
    put(&client, "expiry", "r0").await;
    let key = token_key(data_dir.path());
    let genuine = shard_iterator(
        &client,
        "expiry",
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
    )
    .await;

    // Just inside the lifetime: still good.
    let (young, _) = aged_iterator(&key, &genuine, 290_000);
    let page = client
        .get_records()
        .shard_iterator(&young)
        .send()
        .await
        .unwrap();
    assert_eq!(data_of(page.records()), ["r0"]);

    // Past it, for GetShardIterator's iterator and for a NextShardIterator alike.
    let next = page.next_shard_iterator().unwrap().to_string();
    for iterator in [genuine, next] {
        let (old, issued_ms) = aged_iterator(&key, &iterator, 301_000);
        let before_ms = now_millis();
        let result = client.get_records().shard_iterator(&old).send().await;
        let after_ms = now_millis();
        let error = expect_error(result, "ExpiredIteratorException", None);
        assert!(error.is_expired_iterator_exception(), "{error:?}");
        let message = error.meta().message().unwrap_or_default();
        // Java's Date.toString() in UTC, as production prints it (kinesis-api.md §5).
        let java = |ms: i64| riffle_proto::time::java_date(ms);
        let prefix = format!(
            "Iterator expired. The iterator was created at time {} while right now it is ",
            java(issued_ms as i64)
        );
        let suffix = " which is further in the future than the tolerated delay of 300000 \
                      milliseconds.";
        let now_text = message
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .unwrap_or_else(|| panic!("{message:?}"));
        assert!(
            (before_ms / 1000..=after_ms / 1000).any(|s| java(s * 1000) == now_text),
            "{now_text:?} is not the time of the call: {message:?}"
        );
    }
}

#[tokio::test]
async fn garbage_and_forged_iterators_are_invalid() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "forged", 1).await;
    put(&client, "forged", "secret").await;
    let genuine = shard_iterator(
        &client,
        "forged",
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
    )
    .await;
    assert!(
        genuine.len() <= 512,
        "iterators are at most 512 characters: {genuine}"
    );

    // One character changed in the middle of a genuine iterator.
    let mut forged: Vec<char> = genuine.chars().collect();
    let middle = forged.len() / 2;
    forged[middle] = if forged[middle] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    let truncated = genuine[..genuine.len() / 2].to_string();
    let candidates = [
        "garbage".to_string(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string(),
        forged,
        truncated,
    ];
    for iterator in candidates {
        let result = client.get_records().shard_iterator(&iterator).send().await;
        let error = expect_error(
            result,
            "InvalidArgumentException",
            Some("Invalid ShardIterator."),
        );
        assert!(
            error.is_invalid_argument_exception(),
            "iterator {iterator:?}"
        );
    }

    let too_long = "A".repeat(513);
    let result = client.get_records().shard_iterator(&too_long).send().await;
    let error = expect_error(result, "ValidationException", None);
    let message = error.meta().message().unwrap_or_default();
    assert!(
        message.contains(
            "at 'shardIterator' failed to satisfy constraint: \
             Member must have length less than or equal to 512"
        ),
        "{message:?}"
    );

    // The genuine one still works.
    let page = client
        .get_records()
        .shard_iterator(&genuine)
        .send()
        .await
        .unwrap();
    assert_eq!(data_of(page.records()), ["secret"]);
}

#[tokio::test]
async fn get_records_limit_below_one_is_a_validation_error() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "limit", 1).await;
    let iterator = shard_iterator(
        &client,
        "limit",
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
    )
    .await;
    let result = client
        .get_records()
        .shard_iterator(&iterator)
        .limit(0)
        .send()
        .await;
    let message = "1 validation error detected: Value '0' at 'limit' failed to satisfy \
                   constraint: Member must have value greater than or equal to 1";
    expect_error(result, "ValidationException", Some(message));
    let result = client
        .get_records()
        .shard_iterator(&iterator)
        .limit(10_001)
        .send()
        .await;
    let message = "1 validation error detected: Value '10001' at 'limit' failed to satisfy \
                   constraint: Member must have value less than or equal to 10000";
    expect_error(result, "ValidationException", Some(message));
    // The largest Limit is fine.
    let page = client
        .get_records()
        .shard_iterator(&iterator)
        .limit(10_000)
        .send()
        .await
        .unwrap();
    assert!(page.records().is_empty());
}

/// AWS (and the AWS CLI) accept a shard iterator wrapped in one pair of double quotes, as a
/// shell script that pastes `--query ShardIterator` output without `--output text` passes it
/// (LocalStack's suite recorded this against AWS). Only one whole pair is taken off.
#[tokio::test]
async fn an_iterator_in_double_quotes_is_accepted() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "quoted", 1).await;
    put(&client, "quoted", "q0").await;
    put(&client, "quoted", "q1").await;
    let iterator = shard_iterator(
        &client,
        "quoted",
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
    )
    .await;
    let page = client
        .get_records()
        .shard_iterator(format!("\"{iterator}\""))
        .limit(1)
        .send()
        .await
        .expect("a quoted iterator is read like the bare one");
    assert_eq!(data_of(page.records()), ["q0"]);
    let next = page.next_shard_iterator().expect("NextShardIterator");
    assert!(!next.starts_with('"'), "iterators are issued bare: {next}");
    let page = client
        .get_records()
        .shard_iterator(format!("\"{next}\""))
        .send()
        .await
        .expect("a quoted NextShardIterator is read too");
    assert_eq!(data_of(page.records()), ["q1"]);

    for bad in [
        format!("\"{iterator}"),
        format!("{iterator}\""),
        format!("\"\"{iterator}\"\""),
        "\"\"".to_string(),
    ] {
        let result = client.get_records().shard_iterator(&bad).send().await;
        expect_error(
            result,
            "InvalidArgumentException",
            Some("Invalid ShardIterator."),
        );
    }
}

/// AWS issues a new iterator on every call. Many calls at once at the same position (some of
/// them within one millisecond) still each get an iterator of their own, and every one reads.
#[tokio::test]
async fn every_call_issues_an_iterator_of_its_own() {
    const CALLS: usize = 64;
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    create_stream(&client, "fresh", 1).await;
    put(&client, "fresh", "f0").await;
    let iterator = shard_iterator(
        &client,
        "fresh",
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
    )
    .await;

    let mut reads = tokio::task::JoinSet::new();
    for _ in 0..CALLS {
        let client = client.clone();
        let iterator = iterator.clone();
        reads.spawn(async move {
            let page = client
                .get_records()
                .shard_iterator(iterator)
                .send()
                .await
                .expect("GetRecords");
            assert_eq!(data_of(page.records()), ["f0"]);
            page.next_shard_iterator()
                .expect("NextShardIterator")
                .to_string()
        });
    }
    let mut next_iterators = std::collections::HashSet::new();
    while let Some(next) = reads.join_next().await {
        next_iterators.insert(next.expect("a reader task"));
    }
    assert_eq!(
        next_iterators.len(),
        CALLS,
        "{CALLS} GetRecords calls from one position must return {CALLS} different iterators"
    );

    let mut issued = tokio::task::JoinSet::new();
    for _ in 0..CALLS {
        let client = client.clone();
        issued.spawn(async move {
            shard_iterator(&client, "fresh", &shard_id(0), ShardIteratorType::Latest).await
        });
    }
    let mut iterators = std::collections::HashSet::new();
    while let Some(iterator) = issued.join_next().await {
        iterators.insert(iterator.expect("a GetShardIterator task"));
    }
    assert_eq!(
        iterators.len(),
        CALLS,
        "GetShardIterator repeats no iterator"
    );
    // Each of them is a working iterator at the same place: nothing after the first record.
    for iterator in iterators.iter().take(3) {
        let page = client
            .get_records()
            .shard_iterator(iterator)
            .send()
            .await
            .unwrap();
        assert!(page.records().is_empty());
    }
    put(&client, "fresh", "f1").await;
    for next in next_iterators.iter().take(3) {
        let page = client
            .get_records()
            .shard_iterator(next)
            .send()
            .await
            .unwrap();
        assert_eq!(data_of(page.records()), ["f1"]);
    }
}

/// An iterator of a deleted stream, or of a stream deleted and created again under its name,
/// gets AWS's ResourceNotFoundException naming the iterator's shard.
#[tokio::test]
async fn iterators_of_a_deleted_stream_name_their_shard() {
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    create_stream(&client, "ephemeral", 2).await;
    let iterator = shard_iterator(
        &client,
        "ephemeral",
        &shard_id(1),
        ShardIteratorType::TrimHorizon,
    )
    .await;
    client
        .delete_stream()
        .stream_name("ephemeral")
        .send()
        .await
        .unwrap();
    let message = shard_not_found("ephemeral", &shard_id(1));
    let result = client.get_records().shard_iterator(&iterator).send().await;
    let error = expect_error(result, "ResourceNotFoundException", Some(&message));
    assert!(error.is_resource_not_found_exception());

    create_stream(&client, "ephemeral", 2).await;
    let result = client.get_records().shard_iterator(&iterator).send().await;
    expect_error(result, "ResourceNotFoundException", Some(&message));
}
