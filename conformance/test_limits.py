"""Throughput and call-rate limits through boto3 (kinesis-api.md §4, §5): per-entry
ProvisionedThroughputExceededException on a shard over 1,000 records/s, GetRecords over 5 calls/s,
LimitExceededException on a control-plane burst, none of it with `--limits off`, and
UpdateMaxRecordSize.

Each test starts its own server (the session server runs without limits). A shard's buckets
start full and refill at the published rate with a burst of one second, so over an elapsed time
`t` at most `rate * (1 + t)` calls or records get through. The assertions hold for any `t`: never
more than that accepted, and at least one refusal whenever the demand exceeded it."""

from __future__ import annotations

import threading
import time

import pytest
from botocore.exceptions import ClientError

import riffle_harness as h

THROTTLED = "ProvisionedThroughputExceededException"
LIMIT_EXCEEDED = "LimitExceededException"
WRITE_RECORDS_PER_SECOND = 1000
READ_CALLS_PER_SECOND = 5
DESCRIBE_STREAM_PER_SECOND = 10
MIB = 1024 * 1024


def admissible(rate: float, elapsed: float) -> int:
    """The most a bucket of `rate` per second with a one-second burst admits within `elapsed`
    seconds, plus one for rounding at the edges of the measurement."""
    return int(rate + rate * elapsed) + 1


@pytest.fixture
def server_with(tmp_path):
    """server_with(limits) -> endpoint of a server of the test's own started with `--limits`."""
    servers = []

    def start(limits: str) -> str:
        server = h.start_server(tmp_path / f"riffle-{len(servers)}", ["--limits", limits])
        servers.append(server)
        return server.endpoint

    yield start
    for server in servers:
        server.stop()


def _create(client, name: str, shard_count: int = 1) -> None:
    client.create_stream(StreamName=name, ShardCount=shard_count)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})


def _put_burst(client, name: str, requests: int) -> tuple[dict[str, bytes], list[bytes], float]:
    """`requests` PutRecords of 500 records sent at once from threads; returns the accepted
    payloads by sequence number, the refused payloads and the elapsed seconds. Checks each
    answer: FailedRecordCount counts the entries with an ErrorCode, each with AWS's texts."""
    message = f"Rate exceeded for shard {h.shard_id(0)} in stream {name} under account {h.DEFAULT_ACCOUNT_ID}."
    answers: list = [None] * requests
    payloads = [[f"burst-{r}-{i}".encode() for i in range(500)] for r in range(requests)]

    def send(request: int) -> None:
        entries = [{"Data": data, "PartitionKey": "k"} for data in payloads[request]]
        answers[request] = client.put_records(StreamName=name, Records=entries)

    threads = [threading.Thread(target=send, args=(r,)) for r in range(requests)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    accepted: dict[str, bytes] = {}
    refused: list[bytes] = []
    for request, answer in enumerate(answers):
        assert answer is not None, f"PutRecords {request} raised (see the thread's traceback)"
        assert len(answer["Records"]) == 500
        failed = 0
        for data, entry in zip(payloads[request], answer["Records"]):
            if "ErrorCode" in entry:
                assert entry["ErrorCode"] == THROTTLED, entry
                assert entry["ErrorMessage"] == message, entry
                assert "SequenceNumber" not in entry and "ShardId" not in entry, entry
                failed += 1
                refused.append(data)
            else:
                assert entry["ShardId"] == h.shard_id(0), entry
                h.assert_sequence_number(entry["SequenceNumber"])
                accepted[entry["SequenceNumber"]] = data
        assert answer.get("FailedRecordCount", 0) == failed, answer["FailedRecordCount"]
    return accepted, refused, elapsed


def test_write_burst_is_refused_per_entry_and_refused_records_are_not_stored(server_with):
    client = h.make_client(server_with("aws"))
    _create(client, "burst")
    accepted, refused, elapsed = _put_burst(client, "burst", 6)
    sent = 6 * 500
    bound = admissible(WRITE_RECORDS_PER_SECOND, elapsed)
    assert len(accepted) <= bound, f"{len(accepted)} of {sent} accepted in {elapsed:.2f} s"
    if sent > bound:
        assert refused, f"nothing refused in {elapsed:.2f} s"
    assert len(accepted) >= 1000, "a fresh shard takes a second's quota at once"
    assert len(accepted) + len(refused) == sent

    records = h.read_shard(client, "burst", h.shard_id(0))
    stored = {record["SequenceNumber"]: record["Data"] for record in records}
    assert stored == accepted
    assert not set(refused) & set(stored.values())


def test_get_records_over_five_calls_per_second_is_refused(server_with):
    client = h.make_client(server_with("aws"))
    _create(client, "reads")
    client.put_record(StreamName="reads", Data=b"one", PartitionKey="k")
    iterator = h.shard_iterator(client, "reads", h.shard_id(0), "TRIM_HORIZON")
    message = f"Rate exceeded for Shard - {h.DEFAULT_ACCOUNT_ID}/reads/{h.shard_id(0)}"
    calls, admitted, refused = 20, 0, 0
    started = time.monotonic()
    for _ in range(calls):
        try:
            client.get_records(ShardIterator=iterator)
            admitted += 1
        except ClientError as err:
            assert err.response["Error"]["Code"] == THROTTLED
            assert err.response["Error"]["Message"] == message
            assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            refused += 1
    elapsed = time.monotonic() - started
    bound = admissible(READ_CALLS_PER_SECOND, elapsed)
    assert admitted <= bound, f"{admitted} GetRecords in {elapsed:.2f} s"
    if calls > bound:
        assert refused, f"no GetRecords refused in {elapsed:.2f} s"


def _describe_burst(client, name: str, calls: int) -> tuple[int, list[str], float]:
    outcomes: list = [None] * calls

    def describe(index: int) -> None:
        try:
            client.describe_stream(StreamName=name)
            outcomes[index] = "ok"
        except ClientError as err:
            assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            outcomes[index] = (err.response["Error"]["Code"], err.response["Error"]["Message"])

    threads = [threading.Thread(target=describe, args=(i,)) for i in range(calls)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert None not in outcomes
    refusals = [outcome for outcome in outcomes if outcome != "ok"]
    return calls - len(refusals), refusals, elapsed


def test_control_plane_burst_gets_limit_exceeded(server_with):
    client = h.make_client(server_with("aws"))
    _create(client, "described")
    calls = 30
    admitted, refusals, elapsed = _describe_burst(client, "described", calls)
    bound = admissible(DESCRIBE_STREAM_PER_SECOND, elapsed)
    assert admitted <= bound, f"{admitted} DescribeStream in {elapsed:.2f} s"
    if calls > bound:
        assert refusals, f"no DescribeStream refused in {elapsed:.2f} s"
    message = f"Rate exceeded for stream described under account {h.DEFAULT_ACCOUNT_ID}."
    assert all(refusal == (LIMIT_EXCEEDED, message) for refusal in refusals), refusals


def test_with_limits_off_nothing_is_throttled(server_with):
    client = h.make_client(server_with("off"))
    _create(client, "free")
    accepted, refused, _ = _put_burst(client, "free", 6)
    assert not refused and len(accepted) == 3000
    assert len(h.read_shard(client, "free", h.shard_id(0))) == 3000
    iterator = h.shard_iterator(client, "free", h.shard_id(0), "LATEST")
    for _ in range(20):
        client.get_records(ShardIterator=iterator)
    admitted, refusals, _ = _describe_burst(client, "free", 30)
    assert (admitted, refusals) == (30, [])
    big = b"\x01" * (h.RECORD_BYTES_MAX - 1)
    for _ in range(2):
        client.put_record(StreamName="free", Data=big, PartitionKey="k")


def test_update_max_record_size_round_trip(server_with):
    endpoint = server_with("aws")
    client = h.make_client(endpoint)
    _create(client, "large")
    arn = h.stream_arn("large")

    def max_kib() -> int:
        summary = client.describe_stream_summary(StreamName="large")["StreamDescriptionSummary"]
        return summary["MaxRecordSizeInKiB"]

    assert max_kib() == 1024
    record = b"\x09" * (3 * MIB)
    with pytest.raises(ClientError) as excinfo:
        client.put_record(StreamName="large", Data=record, PartitionKey="k")
    h.assert_client_error(excinfo, "InvalidArgumentException")

    unvalidated = h.make_client(endpoint, validate_params=False)
    with pytest.raises(ClientError) as excinfo:
        unvalidated.update_max_record_size(StreamARN=h.stream_arn("nothing"), MaxRecordSizeInKiB=1023)
    h.assert_client_error(
        excinfo,
        "ValidationException",
        "1 validation error detected: Value '1023' at 'maxRecordSizeInKiB' failed to satisfy "
        "constraint: Member must have value greater than or equal to 1024",
    )

    client.update_max_record_size(StreamARN=arn, MaxRecordSizeInKiB=4096)
    assert max_kib() == 4096
    ack = client.put_record(StreamName="large", Data=record, PartitionKey="k")
    with pytest.raises(ClientError) as excinfo:
        client.put_record(StreamName="large", Data=b"\x00" * (4 * MIB), PartitionKey="k")
    h.assert_client_error(excinfo, "InvalidArgumentException")
    # One read: a 3 MiB answer leaves the shard in read debt for a while.
    iterator = h.shard_iterator(client, "large", h.shard_id(0), "TRIM_HORIZON")
    page = client.get_records(ShardIterator=iterator)
    assert [r["SequenceNumber"] for r in page["Records"]] == [ack["SequenceNumber"]]
    assert page["Records"][0]["Data"] == record


def test_on_demand_stream_under_rising_load_adds_shards_and_stops_throttling(tmp_path):
    """An ON_DEMAND stream (4 shards) written at 6,000 records/s, one and a half times what four
    shards take, must grow until two seconds pass without a throttled record (issue 3, item 4).
    The server looks at shard loads every 200 ms; nothing is asserted about when throttling
    happens, only that the stream grew and that throttling stopped."""
    server = h.start_server(
        tmp_path / "riffle-on-demand", ["--limits", "aws", "--on-demand-interval-ms", "200"]
    )
    try:
        client = h.make_client(server.endpoint)
        name = h.unique_stream_name("rising")
        client.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
        assert len(h.list_all_shards(client, name)) == 4
        rate, batch = 6000.0, 500
        started = time.monotonic()
        sent = 0
        window_start, window_throttled, quiet_windows = time.monotonic(), 0, 0
        settled = False
        while time.monotonic() - started < 30:
            due = started + sent / rate
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            records = [
                {"Data": b"x" * 100, "PartitionKey": f"key-{sent + i}"} for i in range(batch)
            ]
            response = client.put_records(StreamName=name, Records=records)
            sent += batch
            codes = {r.get("ErrorCode") for r in response["Records"]} - {None}
            assert codes <= {THROTTLED}, codes
            window_throttled += response.get("FailedRecordCount", 0)
            if time.monotonic() - window_start >= 0.5:
                quiet_windows = quiet_windows + 1 if window_throttled == 0 else 0
                if quiet_windows >= 4:
                    settled = True
                    break
                window_start, window_throttled = time.monotonic(), 0
        shards = h.list_all_shards(client, name)
        open_ranges = sorted(
            (int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]))
            for s in shards
            if "EndingSequenceNumber" not in s["SequenceNumberRange"]
        )
        assert settled, f"throttling never stopped; {len(open_ranges)} open shards"
        assert len(open_ranges) >= 6, open_ranges
        assert open_ranges[0][0] == 0 and open_ranges[-1][1] == 2**128 - 1
        assert all(a[1] + 1 == b[0] for a, b in zip(open_ranges, open_ranges[1:]))
        summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        assert summary["StreamStatus"] == "ACTIVE"
        assert summary["OpenShardCount"] == len(open_ranges)
    finally:
        server.stop()
