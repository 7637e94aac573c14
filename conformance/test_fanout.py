"""Enhanced fan-out through boto3 (kinesis-api.md §1.6, §1.7, §3.7): the consumer operations and
subscribe_to_shard, which botocore speaks over HTTP/1.1 with a streamed
application/vnd.amazon.eventstream body (it insists on the initial-response event first).

The servers here send idle keep-alive events every 200 ms (`--subscription-keep-alive-ms`), so a
reader knows it has everything once an empty event follows the records: each read asserts the
exact records (sequence numbers, data, partition keys), then one more empty event.
"""

from __future__ import annotations

import threading
import time

import pytest
from botocore.exceptions import ClientError, EventStreamError

import riffle_harness as h

ACCOUNT = h.DEFAULT_ACCOUNT_ID
KEEP_ALIVE = ["--subscription-keep-alive-ms", "200"]
SERVER_FLAGS = ["--limits", "off", *KEEP_ALIVE]
READ_DEADLINE_SECONDS = 60.0
TAKEOVER_AFTER_SECONDS = 5.0


@pytest.fixture(scope="module")
def fanout_server(tmp_path_factory):
    server = h.start_server(tmp_path_factory.mktemp("riffle-fanout"), SERVER_FLAGS)
    yield server
    server.stop()


@pytest.fixture
def client(fanout_server):
    assert fanout_server.is_running(), fanout_server.stderr_tail()
    return h.make_client(fanout_server.endpoint)


@pytest.fixture
def own_server(tmp_path):
    """own_server(*flags) -> a server of the test's own with SERVER_FLAGS + flags."""
    started: list[h.RiffleServer] = []

    def start(*flags: str) -> h.RiffleServer:
        server = h.start_server(tmp_path / f"riffle-{len(started)}", [*SERVER_FLAGS, *flags])
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def make_stream(client, shards: int = 1) -> tuple[str, str]:
    name = h.unique_stream_name("efo")
    client.create_stream(StreamName=name, ShardCount=shards)
    client.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20}
    )
    return name, h.stream_arn(name)


def register(client, stream_arn: str, name: str) -> str:
    consumer = client.register_stream_consumer(StreamARN=stream_arn, ConsumerName=name)["Consumer"]
    assert consumer["ConsumerName"] == name
    return consumer["ConsumerARN"]


def put(client, stream: str, tag: str, count: int, keys: int = 4) -> list[tuple[str, str, bytes]]:
    """PutRecords `count` records; returns (sequence number, partition key, data) in order."""
    entries = [
        {"PartitionKey": f"k{i % keys}", "Data": f"{tag}-{i}".encode()} for i in range(count)
    ]
    answer = client.put_records(StreamName=stream, Records=entries)
    assert answer.get("FailedRecordCount", 0) == 0, answer
    stored = []
    for entry, result in zip(entries, answer["Records"]):
        h.assert_sequence_number(result["SequenceNumber"])
        stored.append((result["SequenceNumber"], entry["PartitionKey"], entry["Data"]))
    return stored


def as_triples(records: list[dict]) -> list[tuple[str, str, bytes]]:
    return [(r["SequenceNumber"], r["PartitionKey"], r["Data"]) for r in records]


class Subscription:
    """One subscribe_to_shard call and its event stream, read event by event."""

    def __init__(self, client, consumer_arn: str, shard: str, **position):
        self.response = client.subscribe_to_shard(
            ConsumerARN=consumer_arn, ShardId=shard, StartingPosition=position
        )
        assert self.response["ResponseMetadata"]["HTTPStatusCode"] == 200
        self.events = iter(self.response["EventStream"])
        self.what = f"{shard} of {consumer_arn} from {position}"

    def next(self):
        """The next SubscribeToShardEvent, or None at the end of the response. Exception events
        raise EventStreamError."""
        try:
            event = next(self.events)
        except StopIteration:
            return None
        assert set(event) == {"SubscribeToShardEvent"}, f"unexpected event {event!r}"
        return event["SubscribeToShardEvent"]

    def event(self) -> dict:
        event = self.next()
        assert event is not None, f"{self.what} ended, expected an event"
        return event

    def read_until_idle(self, at_least: int) -> tuple[list[tuple[str, str, bytes]], str]:
        """Records until at least `at_least` arrived and an empty event followed; returns them
        and the continuation number of that idle event."""
        deadline = time.monotonic() + READ_DEADLINE_SECONDS
        got: list[tuple[str, str, bytes]] = []
        while True:
            assert time.monotonic() < deadline, f"{self.what}: {len(got)} records, want {at_least}"
            event = self.event()
            check_open_event(event)
            got.extend(as_triples(event["Records"]))
            if not event["Records"] and len(got) >= at_least:
                assert event["MillisBehindLatest"] == 0, event
                return got, event["ContinuationSequenceNumber"]

    def expect_records(self, expected: list[tuple[str, str, bytes]]) -> str:
        got, continuation = self.read_until_idle(len(expected))
        assert got == expected, f"records of {self.what}"
        extra = self.event()
        assert not extra["Records"], f"{self.what} delivered more: {extra}"
        return continuation

    def close(self) -> None:
        self.response["EventStream"].close()


def check_open_event(event: dict) -> None:
    """An event of an open shard: a continuation number past its last record (AWS's is the
    position after the last record delivered) and no ChildShards."""
    continuation = h.assert_sequence_number(event["ContinuationSequenceNumber"])
    assert not event.get("ChildShards"), event
    numbers = [h.assert_sequence_number(r["SequenceNumber"]) for r in event["Records"]]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), event
    if numbers:
        assert continuation > numbers[-1], event


# ---------------------------------------------------------------------------------------------


def test_consumer_round_trip(client):
    name, arn = make_stream(client)
    before = int(time.time())
    consumer = client.register_stream_consumer(StreamARN=arn, ConsumerName="app")["Consumer"]
    after = int(time.time())
    assert consumer["ConsumerStatus"] == "CREATING"
    consumer_arn = consumer["ConsumerARN"]
    prefix = f"{arn}/consumer/app:"
    assert consumer_arn.startswith(prefix), consumer_arn
    epoch = int(consumer_arn[len(prefix):])
    assert before <= epoch <= after + 1
    assert int(consumer["ConsumerCreationTimestamp"].timestamp()) == epoch

    by_arn = client.describe_stream_consumer(ConsumerARN=consumer_arn)["ConsumerDescription"]
    by_name = client.describe_stream_consumer(StreamARN=arn, ConsumerName="app")[
        "ConsumerDescription"
    ]
    for description in (by_arn, by_name):
        assert description["ConsumerARN"] == consumer_arn
        assert description["ConsumerStatus"] == "ACTIVE"
        assert description["StreamARN"] == arn
    listed = client.list_stream_consumers(StreamARN=arn)["Consumers"]
    assert [c["ConsumerARN"] for c in listed] == [consumer_arn]
    summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["ConsumerCount"] == 1

    with pytest.raises(ClientError) as excinfo:
        client.register_stream_consumer(StreamARN=arn, ConsumerName="app")
    h.assert_client_error(
        excinfo,
        "ResourceInUseException",
        f"Consumer app under stream {name} already exists for account {ACCOUNT}.",
    )
    with pytest.raises(ClientError) as excinfo:
        client.delete_stream(StreamName=name)
    h.assert_client_error(
        excinfo,
        "ResourceInUseException",
        f"Stream {name} under account {ACCOUNT} has registered consumers. Deregister them "
        "first, or set EnforceConsumerDeletion.",
    )

    client.deregister_stream_consumer(ConsumerARN=consumer_arn)
    with pytest.raises(ClientError) as excinfo:
        client.describe_stream_consumer(ConsumerARN=consumer_arn)
    h.assert_client_error(
        excinfo, "ResourceNotFoundException", f"Consumer {consumer_arn} not found."
    )
    assert client.list_stream_consumers(StreamARN=arn)["Consumers"] == []
    again = register(client, arn, "app")
    assert again != consumer_arn, "a re-registered consumer gets a new ARN"

    client.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    with pytest.raises(ClientError) as excinfo:
        client.describe_stream_consumer(ConsumerARN=again)
    h.assert_client_error(excinfo, "ResourceNotFoundException", f"Consumer {again} not found.")


def test_subscribe_trim_horizon_and_latest(client):
    name, arn = make_stream(client)
    shard = h.shard_id(0)
    stored = put(client, name, "old", 6)

    trim = Subscription(client, register(client, arn, "trim"), shard, Type="TRIM_HORIZON")
    trim.expect_records(stored)

    latest = Subscription(client, register(client, arn, "latest"), shard, Type="LATEST")
    first = latest.event()
    assert first["Records"] == [], first
    check_open_event(first)
    # Records put while subscribed are pushed to both subscribers.
    fresh = put(client, name, "new", 3)
    got, _ = latest.read_until_idle(3)
    assert got == fresh
    got, continuation = trim.read_until_idle(3)
    assert got == fresh
    trim.close()
    latest.close()

    # AFTER_SEQUENCE_NUMBER of a continuation number: no gap, no duplicate.
    more = put(client, name, "more", 2)
    resumed = Subscription(
        client,
        register(client, arn, "resumed"),
        shard,
        Type="AFTER_SEQUENCE_NUMBER",
        SequenceNumber=continuation,
    )
    resumed.expect_records(more)
    at = Subscription(
        client,
        register(client, arn, "at"),
        shard,
        Type="AT_SEQUENCE_NUMBER",
        SequenceNumber=stored[4][0],
    )
    at.expect_records(stored[4:] + fresh + more)
    resumed.close()
    at.close()


def test_renewal_with_a_short_lifetime(own_server):
    server = own_server("--subscription-lifetime-s", "2")
    client = h.make_client(server.endpoint)
    name, arn = make_stream(client)
    consumer = register(client, arn, "renewer")
    produced: list[tuple[str, str, bytes]] = []
    done = threading.Event()

    def producer() -> None:
        producer_client = h.make_client(server.endpoint)
        started = time.monotonic()
        i = 0
        try:
            while time.monotonic() - started < 5.0:
                produced.extend(put(producer_client, name, f"r{i}", 1 + i % 3))
                i += 1
                time.sleep(0.02)
        finally:
            done.set()

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    received: list[tuple[str, str, bytes]] = []
    continuation = None
    clean_ends = 0
    deadline = time.monotonic() + 90
    while not (done.is_set() and len(received) >= len(produced) and clean_ends >= 2):
        assert time.monotonic() < deadline, f"{len(received)} of {len(produced)} records"
        if continuation is None:
            subscription = Subscription(client, consumer, h.shard_id(0), Type="TRIM_HORIZON")
        else:
            subscription = Subscription(
                client,
                consumer,
                h.shard_id(0),
                Type="AFTER_SEQUENCE_NUMBER",
                SequenceNumber=continuation,
            )
        while True:
            event = subscription.next()
            if event is None:  # the lifetime is over: the response ended cleanly
                clean_ends += 1
                break
            check_open_event(event)
            received.extend(as_triples(event["Records"]))
            continuation = event["ContinuationSequenceNumber"]
            if done.is_set() and len(received) >= len(produced) and clean_ends >= 2:
                subscription.close()
                break
    thread.join(timeout=30)
    assert received == produced, "every record exactly once, in order, across renewals"


def test_closed_shard_ends_with_child_shards(client):
    name, arn = make_stream(client)
    parent = h.shard_id(0)
    before = put(client, name, "before", 16, keys=8)
    client.split_shard(
        StreamName=name, ShardToSplit=parent, NewStartingHashKey=str(2**127)
    )
    children = [s for s in client.list_shards(StreamName=name)["Shards"] if s.get("ParentShardId") == parent]
    assert len(children) == 2

    subscription = Subscription(client, register(client, arn, "reader"), parent, Type="TRIM_HORIZON")
    got: list[tuple[str, str, bytes]] = []
    while True:
        event = subscription.event()
        got.extend(as_triples(event["Records"]))
        if event.get("ChildShards"):
            break
        check_open_event(event)
    assert got == before
    # The last event of a closed shard: ChildShards and no continuation number.
    assert "ContinuationSequenceNumber" not in event, event
    assert event["MillisBehindLatest"] == 0
    assert [
        (c["ShardId"], c["ParentShards"], c["HashKeyRange"]) for c in event["ChildShards"]
    ] == [(s["ShardId"], [parent], s["HashKeyRange"]) for s in children]
    assert subscription.next() is None, "the response ends after the ChildShards event"


def test_second_subscription_within_five_seconds_then_takeover(client):
    name, arn = make_stream(client)
    consumer = register(client, arn, "single")
    shard = h.shard_id(0)
    started = time.monotonic()
    first = Subscription(client, consumer, shard, Type="LATEST")
    first_at = time.monotonic()
    first.event()
    with pytest.raises(ClientError) as excinfo:
        client.subscribe_to_shard(
            ConsumerARN=consumer, ShardId=shard, StartingPosition={"Type": "LATEST"}
        )
    if time.monotonic() - started < TAKEOVER_AFTER_SECONDS:
        h.assert_client_error(
            excinfo,
            "ResourceInUseException",
            f"Another active subscription exists for this consumer: {consumer}",
        )

    time.sleep(max(0.0, first_at + TAKEOVER_AFTER_SECONDS + 0.3 - time.monotonic()))
    second = Subscription(client, consumer, shard, Type="LATEST")
    # The first stream ends with a ResourceInUseException event, which botocore raises.
    with pytest.raises(EventStreamError) as excinfo:
        while True:
            event = first.next()
            assert event is not None, "the first subscription ended without an exception"
            check_open_event(event)
    error = excinfo.value.response["Error"]
    assert error["Code"] == "ResourceInUseException", error
    assert error["Message"] == (
        f"Another subscription for consumer {consumer} and this shard took over."
    )
    rec = put(client, name, "x", 1)
    got, _ = second.read_until_idle(1)
    assert got == rec
    second.close()
