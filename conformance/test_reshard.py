"""Resharding through boto3 and the AWS CLI (kinesis-api.md §3.3, §3.4, §3.6, §5).

The central test writes from several producer threads while the stream is split, merged and
re-scaled, then reads it the way KCL does (each shard to its end before its children, both
parents before a merge child, children found through ChildShards) and demands that every
acknowledged record comes back exactly once, with its sequence number, in per-key order. The
others pin how a closed shard ends, the hash-range invariants, ListShards filters over a reshard
history, AWS's error types and texts, the UPDATING window, the shard limit, restarts, and the
AWS CLI's split-shard / merge-shards / update-shard-count.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import defaultdict
from datetime import datetime, timezone

import pytest
from botocore.exceptions import ClientError

import riffle_harness as h

# Flags for every server this file starts. These tests reshard several times a second, above
# the control-plane rates AWS allows, which is not what they test: limits are off (the quotas
# still apply).
SERVER_FLAGS: list[str] = ["--limits", "off"]

THROTTLED = "ProvisionedThroughputExceededException"
ACCOUNT = h.DEFAULT_ACCOUNT_ID
READ_CALLS_MAX = 1000
UNIFORM = "UNIFORM_SCALING"


@pytest.fixture
def own_server(tmp_path):
    """own_server(*flags, data_dir=None) -> a server of the test's own with SERVER_FLAGS + flags."""
    started: list[h.RiffleServer] = []

    def start(*flags: str, data_dir=None) -> h.RiffleServer:
        server = h.start_server(
            tmp_path / f"riffle-{len(started)}", [*SERVER_FLAGS, *flags], data_dir=data_dir
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# ---------------------------------------------------------------------------------------------
# Calls and listing facts


def with_throttle_retries(fn, **kwargs):
    for _ in range(100):
        try:
            return fn(**kwargs)
        except ClientError as err:
            if err.response["Error"]["Code"] != THROTTLED:
                raise
            time.sleep(0.1)
    return fn(**kwargs)


def split(client, stream: str, shard: str, key: int) -> None:
    response = client.split_shard(
        StreamName=stream, ShardToSplit=shard, NewStartingHashKey=str(key)
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def merge(client, stream: str, lower: str, upper: str) -> None:
    response = client.merge_shards(
        StreamName=stream, ShardToMerge=lower, AdjacentShardToMerge=upper
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def rescale(client, stream: str, target: int) -> tuple[int, int]:
    response = client.update_shard_count(
        StreamName=stream, TargetShardCount=target, ScalingType=UNIFORM
    )
    assert response["StreamName"] == stream
    assert response["StreamARN"] == h.stream_arn(stream)
    return response["CurrentShardCount"], response["TargetShardCount"]


def list_shards(client, stream: str, **kwargs) -> list[dict]:
    """Every shard ListShards returns, following NextToken."""
    page = client.list_shards(StreamName=stream, **kwargs)
    shards = list(page["Shards"])
    while page.get("NextToken"):
        page = client.list_shards(NextToken=page["NextToken"])
        shards.extend(page["Shards"])
    return shards


def ids(shards: list[dict]) -> list[str]:
    return [shard["ShardId"] for shard in shards]


def key_range(shard: dict) -> tuple[int, int]:
    return int(shard["HashKeyRange"]["StartingHashKey"]), int(
        shard["HashKeyRange"]["EndingHashKey"]
    )


def is_closed(shard: dict) -> bool:
    return "EndingSequenceNumber" in shard["SequenceNumberRange"]


def open_shards(shards: list[dict]) -> list[dict]:
    return sorted((s for s in shards if not is_closed(s)), key=lambda s: key_range(s)[0])


def open_ranges(shards: list[dict]) -> list[tuple[int, int]]:
    return [key_range(s) for s in open_shards(shards)]


def by_id(shards: list[dict], shard: str) -> dict:
    found = [s for s in shards if s["ShardId"] == shard]
    assert len(found) == 1, f"{shard} in {ids(shards)}"
    return found[0]


def middle(shard: dict) -> int:
    start, end = key_range(shard)
    return start + (end - start) // 2 + 1


def parents(shard: dict) -> list[str]:
    return [p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p]


def listed_children(shards: list[dict], parent: str) -> list[tuple]:
    """The children of `parent` per ListShards, as GetRecords' ChildShards must show them."""
    return sorted(
        (s["ShardId"], tuple(parents(s)), key_range(s)) for s in shards if parent in parents(s)
    )


def child_views(children: list[dict]) -> list[tuple]:
    return sorted((c["ShardId"], tuple(c["ParentShards"]), key_range(c)) for c in children)


def assert_lineage_invariants(shards: list[dict]) -> None:
    """What holds after any sequence of reshards: ids 0..n in order; the open shards partition
    [0, 2^128); a closed shard has two split children partitioning it or one merge child whose
    ParentShardId is the lower and AdjacentParentShardId the upper of two adjacent shards,
    covering both exactly; parents are listed, closed and older than their children."""
    assert ids(shards) == [h.shard_id(i) for i in range(len(shards))]
    for shard in shards:
        start, end = key_range(shard)
        assert 0 <= start <= end <= h.HASH_KEY_MAX, shard
        h.assert_sequence_number(shard["SequenceNumberRange"]["StartingSequenceNumber"])
        if is_closed(shard):
            ending = h.assert_sequence_number(shard["SequenceNumberRange"]["EndingSequenceNumber"])
            assert ending >= int(shard["SequenceNumberRange"]["StartingSequenceNumber"])
    ranges = open_ranges(shards)
    assert ranges[0][0] == 0, ranges
    assert all(a[1] + 1 == b[0] for a, b in zip(ranges, ranges[1:])), ranges
    assert ranges[-1][1] == h.HASH_KEY_MAX, ranges
    for shard in shards:
        for parent_id in parents(shard):
            parent = by_id(shards, parent_id)
            assert is_closed(parent), parent
            assert int(parent_id[-12:]) < int(shard["ShardId"][-12:])
        children = [s for s in shards if shard["ShardId"] in parents(s)]
        if not is_closed(shard):
            assert children == [], shard
            continue
        start, end = key_range(shard)
        if len(children) == 2 and not any("AdjacentParentShardId" in c for c in children):
            (a0, a1), (b0, b1) = sorted(key_range(c) for c in children)
            assert (a0, a1 + 1, b1) == (start, b0, end), (shard, children)
        else:
            assert len(children) == 1 and "AdjacentParentShardId" in children[0], (shard, children)
            child = children[0]
            lower = key_range(by_id(shards, child["ParentShardId"]))
            upper = key_range(by_id(shards, child["AdjacentParentShardId"]))
            assert lower[1] + 1 == upper[0], child
            assert key_range(child) == (lower[0], upper[1]), child


# ---------------------------------------------------------------------------------------------
# Reading


def shard_iterator(client, stream: str, shard: str, kind: str, **kwargs) -> str:
    return with_throttle_retries(
        client.get_shard_iterator,
        StreamName=stream,
        ShardId=shard,
        ShardIteratorType=kind,
        **kwargs,
    )["ShardIterator"]


def read_from(client, iterator: str, closed: bool, limit: int | None = None):
    """Reads a closed shard until a response has no NextShardIterator (it must carry
    ChildShards), an open one until a response is empty and caught up. ChildShards appear on
    exactly the response without NextShardIterator. Returns (records, ChildShards or None,
    responses)."""
    records: list[dict] = []
    for pages in range(1, READ_CALLS_MAX + 1):
        kwargs = {"ShardIterator": iterator}
        if limit is not None:
            kwargs["Limit"] = limit
        page = with_throttle_retries(client.get_records, **kwargs)
        for record in page["Records"]:
            if records:
                assert int(record["SequenceNumber"]) > int(records[-1]["SequenceNumber"])
            records.append(record)
        following = page.get("NextShardIterator")
        if following is None:
            assert page.get(
                "ChildShards"
            ), f"no NextShardIterator must come with ChildShards: {page}"
            assert closed, f"an open shard ended: {page}"
            return records, page["ChildShards"], pages
        assert "ChildShards" not in page, f"ChildShards without the end of the shard: {page}"
        if not closed and not page["Records"] and page["MillisBehindLatest"] == 0:
            return records, None, pages
        iterator = following
    raise AssertionError(f"shard not read to its end in {READ_CALLS_MAX} GetRecords calls")


def read_lineage(client, stream: str, shards: list[dict], limit: int | None = None):
    """Reads a stream the way KCL does: from the shards with no listed parent, each shard from
    TRIM_HORIZON to its end before its children, a merge child after both parents; children
    come from each end's ChildShards, which must match ListShards. Returns [(shard, records)]
    in read order."""
    listed = {s["ShardId"]: s for s in shards}

    def listed_parents(shard):
        return [p for p in parents(shard) if p in listed]

    ready = [s["ShardId"] for s in shards if not listed_parents(s)]
    waiting: set[str] = set()
    done: set[str] = set()
    order = []
    while ready:
        shard_id = ready.pop(0)
        shard = listed[shard_id]
        records, children, _ = read_from(
            client,
            shard_iterator(client, stream, shard_id, "TRIM_HORIZON"),
            is_closed(shard),
            limit,
        )
        start = int(shard["SequenceNumberRange"]["StartingSequenceNumber"])
        ending = shard["SequenceNumberRange"].get("EndingSequenceNumber")
        for record in records:
            assert start <= int(record["SequenceNumber"]), (shard, record)
            assert ending is None or int(record["SequenceNumber"]) <= int(ending), (shard, record)
        if children is None:
            assert listed_children(shards, shard_id) == []
        else:
            assert child_views(children) == listed_children(shards, shard_id), shard_id
            waiting.update(c["ShardId"] for c in children)
        assert shard_id not in done
        done.add(shard_id)
        order.append((shard_id, records))
        for child in sorted(waiting):
            if all(p in done for p in listed_parents(listed[child])):
                waiting.discard(child)
                ready.append(child)
    assert not waiting, waiting
    assert done == set(listed), "lineage reaches every listed shard"
    return order


def assert_reads_match_acks(shards: list[dict], order, acks: list[dict]) -> None:
    """Every acked record read once, from its shard, with its sequence number, in the shard
    whose range holds its key; nothing unacked; per key the counters read are 0, 1, 2, …"""
    found = {}
    per_key = defaultdict(list)
    for shard_id, records in order:
        start, end = key_range(by_id(shards, shard_id))
        for record in records:
            key, counter = record["Data"].decode().rsplit("#", 1)
            assert record["PartitionKey"] == key
            assert start <= h.partition_key_hash(key) <= end, (shard_id, key)
            assert (key, int(counter)) not in found, f"{key}#{counter} read twice"
            found[(key, int(counter))] = (shard_id, record["SequenceNumber"])
            per_key[key].append(int(counter))
    acked = defaultdict(int)
    for ack in acks:
        assert found.get((ack["key"], ack["counter"])) == (ack["shard"], ack["sequence"]), ack
        acked[ack["key"]] += 1
    assert len(found) == len(acks), "records read that were never acknowledged"
    for key, counters in per_key.items():
        assert counters == list(range(acked[key])), f"records of {key} out of order: {counters}"


# ---------------------------------------------------------------------------------------------
# 1. Writes during resharding

PRODUCERS = 4
KEYS_PER_PRODUCER = 3
PRODUCER_PACE_SECONDS = 0.01


def produce(endpoint: str, stream: str, producer: int, stop: threading.Event, acks, failures, lock):
    """Writes key#counter records for its own keys, one at a time per key (the next only after
    the previous was acknowledged); every third call a PutRecords of distinct keys, so a
    throttled entry is retried without reordering."""
    client = h.make_client(endpoint)
    keys = [f"p{producer}-k{k}" for k in range(KEYS_PER_PRODUCER)]
    counters = [0] * len(keys)
    rng = random.Random(producer)
    calls = 0
    try:
        while not stop.is_set():
            calls += 1
            if calls % 3 == 0:
                chosen = [k for k in range(len(keys)) if rng.random() < 0.7] or [0]
                try:
                    response = client.put_records(
                        StreamName=stream,
                        Records=[
                            {"PartitionKey": keys[k], "Data": f"{keys[k]}#{counters[k]}".encode()}
                            for k in chosen
                        ],
                    )
                except ClientError as err:
                    if err.response["Error"]["Code"] != THROTTLED:
                        raise
                    time.sleep(0.1)
                    continue
                assert len(response["Records"]) == len(chosen), response
                for k, entry in zip(chosen, response["Records"]):
                    if entry.get("ErrorCode") == THROTTLED:
                        continue
                    assert "ErrorCode" not in entry, entry
                    with lock:
                        acks.append(
                            {
                                "key": keys[k],
                                "counter": counters[k],
                                "shard": entry["ShardId"],
                                "sequence": entry["SequenceNumber"],
                            }
                        )
                    counters[k] += 1
            else:
                k = rng.randrange(len(keys))
                try:
                    response = client.put_record(
                        StreamName=stream,
                        PartitionKey=keys[k],
                        Data=f"{keys[k]}#{counters[k]}".encode(),
                    )
                except ClientError as err:
                    if err.response["Error"]["Code"] != THROTTLED:
                        raise
                    time.sleep(0.1)
                    continue
                with lock:
                    acks.append(
                        {
                            "key": keys[k],
                            "counter": counters[k],
                            "shard": response["ShardId"],
                            "sequence": response["SequenceNumber"],
                        }
                    )
                counters[k] += 1
            time.sleep(PRODUCER_PACE_SECONDS)
    except Exception as err:  # reported by the test, which fails on any
        failures.append(f"producer {producer}: {err!r}")


def test_split_and_merge_during_concurrent_writes_lose_and_reorder_nothing(own_server):
    server = own_server()
    client = h.make_client(server.endpoint)
    stream = "busy"
    client.create_stream(StreamName=stream, ShardCount=2)
    stop = threading.Event()
    acks: list[dict] = []
    failures: list[str] = []
    lock = threading.Lock()
    threads = [
        threading.Thread(
            target=produce,
            args=(server.endpoint, stream, p, stop, acks, failures, lock),
            daemon=True,
        )
        for p in range(PRODUCERS)
    ]
    for thread in threads:
        thread.start()
    step = 0.3
    try:
        # Producers (boto3 clients take a while to build) must be writing before the first
        # reshard, so that the original shards hold records too.
        deadline = time.monotonic() + 30
        while len(acks) < 40 and not failures:
            assert time.monotonic() < deadline, f"producers acknowledged only {len(acks)} records"
            time.sleep(0.05)
        first = list_shards(client, stream)
        split(client, stream, h.shard_id(0), middle(first[0]))  # -> 2, 3
        time.sleep(step)
        split(client, stream, h.shard_id(1), middle(first[1]))  # -> 4, 5
        time.sleep(step)
        merge(client, stream, h.shard_id(2), h.shard_id(3))  # -> 6
        time.sleep(step)
        assert rescale(client, stream, 6) == (3, 6)
        assert open_ranges(list_shards(client, stream)) == h.expected_hash_ranges(6)
        time.sleep(step)
        assert rescale(client, stream, 3) == (6, 3)
        assert open_ranges(list_shards(client, stream)) == h.expected_hash_ranges(3)
        time.sleep(step)
        lower, upper = open_shards(list_shards(client, stream))[:2]
        merge(client, stream, lower["ShardId"], upper["ShardId"])
        time.sleep(step)
        assert rescale(client, stream, 4) == (2, 4)
        time.sleep(step)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not failures, failures

    shards = list_shards(client, stream)
    assert_lineage_invariants(shards)
    assert open_ranges(shards) == h.expected_hash_ranges(4)
    merged = by_id(shards, h.shard_id(6))
    assert (merged["ParentShardId"], merged["AdjacentParentShardId"]) == (
        h.shard_id(2),
        h.shard_id(3),
    )
    summary = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 4
    assert len(acks) >= 50, f"only {len(acks)} records acknowledged"
    acked_shards = {ack["shard"] for ack in acks}
    assert {h.shard_id(0), h.shard_id(1), h.shard_id(6)} <= acked_shards, acked_shards
    assert acked_shards & set(ids(open_shards(shards))), "the final shards acknowledged nothing"

    order = read_lineage(client, stream, shards, limit=40)
    assert_reads_match_acks(shards, order, acks)


# ---------------------------------------------------------------------------------------------
# 2. How a closed shard ends


def test_closed_shard_returns_its_records_then_child_shards(own_server):
    server = own_server()
    client = h.make_client(server.endpoint)
    stream = "ends"
    client.create_stream(StreamName=stream, ShardCount=1)
    written = [
        client.put_record(StreamName=stream, PartitionKey=f"key-{i}", Data=f"key-{i}#0".encode())
        for i in range(5)
    ]
    latest_before = shard_iterator(client, stream, h.shard_id(0), "LATEST")
    written += [
        client.put_record(StreamName=stream, PartitionKey=f"key-{i}", Data=f"key-{i}#0".encode())
        for i in range(5, 8)
    ]
    assert {w["ShardId"] for w in written} == {h.shard_id(0)}
    half = 2**127
    split(client, stream, h.shard_id(0), half)

    shards = list_shards(client, stream)
    assert_lineage_invariants(shards)
    parent, left, right = shards
    assert ids(shards) == [h.shard_id(0), h.shard_id(1), h.shard_id(2)]
    assert (key_range(left), key_range(right)) == ((0, half - 1), (half, h.HASH_KEY_MAX))
    for child in (left, right):
        assert child["ParentShardId"] == h.shard_id(0)
        assert "AdjacentParentShardId" not in child
        assert not is_closed(child)
        h.assert_sequence_number(child["SequenceNumberRange"]["StartingSequenceNumber"])
    ending = int(parent["SequenceNumberRange"]["EndingSequenceNumber"])
    assert all(int(w["SequenceNumber"]) < ending for w in written)
    described = client.describe_stream(StreamName=stream)["StreamDescription"]
    assert described["Shards"] == shards
    assert described["StreamStatus"] == "ACTIVE"

    expected = listed_children(shards, h.shard_id(0))
    sequence_numbers = [w["SequenceNumber"] for w in written]
    records, children, pages = read_from(
        client, shard_iterator(client, stream, h.shard_id(0), "TRIM_HORIZON"), True, limit=3
    )
    assert [r["SequenceNumber"] for r in records] == sequence_numbers
    assert pages >= 3
    assert child_views(children) == expected
    # The iterator from before the split: what came after it, then the end.
    records, children, _ = read_from(client, latest_before, True)
    assert [r["SequenceNumber"] for r in records] == sequence_numbers[5:]
    assert child_views(children) == expected
    # At or past the end: the end at once, with the same ChildShards.
    time.sleep(0.02)
    for kind, extra in [
        ("LATEST", {}),
        ("AFTER_SEQUENCE_NUMBER", {"StartingSequenceNumber": sequence_numbers[-1]}),
        ("AT_TIMESTAMP", {"Timestamp": datetime.now(timezone.utc)}),
    ]:
        page = client.get_records(
            ShardIterator=shard_iterator(client, stream, h.shard_id(0), kind, **extra)
        )
        assert page["Records"] == [], kind
        assert page.get("NextShardIterator") is None, kind
        assert child_views(page["ChildShards"]) == expected, kind
    records, children, _ = read_from(
        client,
        shard_iterator(
            client,
            stream,
            h.shard_id(0),
            "AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=sequence_numbers[-1],
        ),
        True,
    )
    assert [r["SequenceNumber"] for r in records] == sequence_numbers[-1:]

    # New writes go to the children, above their StartingSequenceNumber, growing per shard.
    last = {}
    for i in range(10):
        key = f"after-{i}"
        put = client.put_record(StreamName=stream, PartitionKey=key, Data=b"x")
        assert put["ShardId"] == h.shard_for_hash(shards, h.partition_key_hash(key))
        child = by_id(shards, put["ShardId"])
        assert int(put["SequenceNumber"]) >= int(
            child["SequenceNumberRange"]["StartingSequenceNumber"]
        )
        assert int(put["SequenceNumber"]) > last.get(put["ShardId"], 0)
        last[put["ShardId"]] = int(put["SequenceNumber"])

    # A shard closed with no record, and a merge: ChildShards name both parents, lower first.
    quarter = 2**126
    split(client, stream, h.shard_id(1), quarter)  # -> 3, 4
    merge(client, stream, h.shard_id(3), h.shard_id(4))  # -> 5
    shards = list_shards(client, stream)
    assert_lineage_invariants(shards)
    page = client.get_records(
        ShardIterator=shard_iterator(client, stream, h.shard_id(3), "TRIM_HORIZON")
    )
    assert page["Records"] == [] and page.get("NextShardIterator") is None
    assert child_views(page["ChildShards"]) == [
        (h.shard_id(5), (h.shard_id(3), h.shard_id(4)), (0, half - 1))
    ]
    assert client.describe_stream(StreamName=stream)["StreamDescription"]["Shards"] == shards


# ---------------------------------------------------------------------------------------------
# 3. Hash ranges after random reshards


def test_random_reshards_keep_the_key_space_partitioned(own_server):
    server = own_server()
    client = h.make_client(server.endpoint)
    stream = "random"
    client.create_stream(StreamName=stream, ShardCount=3)
    rng = random.Random(20261201)
    rescales = 0
    before = list_shards(client, stream)
    for _ in range(12):
        opened = open_shards(before)
        nxt = len(before)
        choice = rng.randrange(10)
        if choice < 5 or len(opened) == 1:
            shard = rng.choice([s for s in opened if key_range(s)[1] - key_range(s)[0] >= 3])
            start, end = key_range(shard)
            key = rng.randrange(start + 2, end)
            split(client, stream, shard["ShardId"], key)
            after = list_shards(client, stream)
            assert [(s["ShardId"], s["ParentShardId"], key_range(s)) for s in after[nxt:]] == [
                (h.shard_id(nxt), shard["ShardId"], (start, key - 1)),
                (h.shard_id(nxt + 1), shard["ShardId"], (key, end)),
            ]
        elif choice < 8 or rescales == 3:
            at = rng.randrange(len(opened) - 1)
            lower, upper = opened[at], opened[at + 1]
            merge(client, stream, lower["ShardId"], upper["ShardId"])
            after = list_shards(client, stream)
            child = after[nxt]
            assert len(after) == nxt + 1
            assert (child["ParentShardId"], child["AdjacentParentShardId"]) == (
                lower["ShardId"],
                upper["ShardId"],
            )
            assert key_range(child) == (key_range(lower)[0], key_range(upper)[1])
        else:
            current = len(opened)
            target = rng.randint((current + 1) // 2, min(2 * current, current + 4))
            assert rescale(client, stream, target) == (current, target)
            rescales += 1
            after = list_shards(client, stream)
            assert open_ranges(after) == h.expected_hash_ranges(target)
        for old, new in zip(before, after):
            assert {k: v for k, v in old.items() if k != "SequenceNumberRange"} == {
                k: v for k, v in new.items() if k != "SequenceNumberRange"
            }
            if is_closed(old):
                assert old == new
        assert_lineage_invariants(after)
        summary = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
        assert summary["OpenShardCount"] == len(open_shards(after))
        # Routing agrees with the listing at both ends of every open range.
        targets = [(edge, s["ShardId"]) for s in open_shards(after) for edge in key_range(s)]
        response = client.put_records(
            StreamName=stream,
            Records=[
                {"PartitionKey": "routed", "ExplicitHashKey": str(edge), "Data": b"r"}
                for edge, _ in targets
            ],
        )
        assert response["FailedRecordCount"] == 0
        assert [r["ShardId"] for r in response["Records"]] == [shard for _, shard in targets]
        before = after


# ---------------------------------------------------------------------------------------------
# 4. ListShards filters after several reshards


def test_list_shards_filters_after_several_reshards(own_server):
    server = own_server()
    client = h.make_client(server.endpoint)
    stream = "history"
    client.create_stream(StreamName=stream, ShardCount=2)
    first = list_shards(client, stream)
    gap = 0.06

    def stamp():
        time.sleep(gap)
        moment = datetime.now(timezone.utc)
        time.sleep(gap)
        return moment

    t1 = stamp()  # 0, 1 open
    split(client, stream, h.shard_id(0), middle(first[0]))  # 0 -> 2, 3
    t2 = stamp()  # 1, 2, 3 open
    merge(client, stream, h.shard_id(2), h.shard_id(3))  # -> 4
    t3 = stamp()  # 1, 4 open
    split(client, stream, h.shard_id(1), middle(first[1]))  # 1 -> 5, 6
    t4 = stamp()  # 4, 5, 6 open

    def named(*ordinals):
        return [h.shard_id(o) for o in ordinals]

    every = named(*range(7))
    cases = [
        ({"Type": "AT_LATEST"}, named(4, 5, 6)),
        ({"Type": "FROM_TRIM_HORIZON"}, every),
        ({"Type": "AT_TRIM_HORIZON"}, named(0, 1)),
        ({"Type": "AFTER_SHARD_ID", "ShardId": h.shard_id(3)}, named(4, 5, 6)),
        ({"Type": "AFTER_SHARD_ID", "ShardId": h.shard_id(6)}, []),
        ({"Type": "AT_TIMESTAMP", "Timestamp": t1}, named(0, 1)),
        ({"Type": "AT_TIMESTAMP", "Timestamp": t2}, named(1, 2, 3)),
        ({"Type": "AT_TIMESTAMP", "Timestamp": t3}, named(1, 4)),
        ({"Type": "AT_TIMESTAMP", "Timestamp": t4}, named(4, 5, 6)),
        ({"Type": "FROM_TIMESTAMP", "Timestamp": t1}, every),
        ({"Type": "FROM_TIMESTAMP", "Timestamp": t2}, named(1, 2, 3, 4, 5, 6)),
        ({"Type": "FROM_TIMESTAMP", "Timestamp": t3}, named(1, 4, 5, 6)),
        ({"Type": "FROM_TIMESTAMP", "Timestamp": t4}, named(4, 5, 6)),
        ({"Type": "FROM_TIMESTAMP", "Timestamp": datetime(2000, 1, 1, tzinfo=timezone.utc)}, every),
    ]
    for shard_filter, expected in cases:
        response = client.list_shards(StreamName=stream, ShardFilter=shard_filter)
        assert ids(response["Shards"]) == expected, shard_filter
        assert "NextToken" not in response
    assert ids(list_shards(client, stream)) == every
    # Paging keeps the filter.
    page = client.list_shards(
        StreamName=stream, ShardFilter={"Type": "FROM_TIMESTAMP", "Timestamp": t3}, MaxResults=3
    )
    assert ids(page["Shards"]) == named(1, 4, 5)
    rest = client.list_shards(NextToken=page["NextToken"])
    assert ids(rest["Shards"]) == named(6)
    assert "NextToken" not in rest


# ---------------------------------------------------------------------------------------------
# 5. Errors


def split_error(client, stream, shard, key):
    with pytest.raises(ClientError) as excinfo:
        client.split_shard(StreamName=stream, ShardToSplit=shard, NewStartingHashKey=str(key))
    return excinfo


def merge_error(client, stream, lower, upper):
    with pytest.raises(ClientError) as excinfo:
        client.merge_shards(StreamName=stream, ShardToMerge=lower, AdjacentShardToMerge=upper)
    return excinfo


def rescale_error(client, stream, target):
    with pytest.raises(ClientError) as excinfo:
        client.update_shard_count(StreamName=stream, TargetShardCount=target, ScalingType=UNIFORM)
    return excinfo


def test_split_shard_hash_key_errors(kinesis, new_stream):
    stream = new_stream(shard_count=3)
    ranges = h.expected_hash_ranges(3)

    def text(key, ordinal):
        start, end = ranges[ordinal]
        return (
            f"NewStartingHashKey {key} used in SplitShard() on shard {h.shard_id(ordinal)} in "
            f"stream {stream} under account {ACCOUNT} is not both greater than one plus the "
            f"shard's StartingHashKey {start} and less than the shard's EndingHashKey {end}."
        )

    for key, ordinal in [
        ("0", 0),
        ("1", 0),
        (str(ranges[0][1]), 0),
        (str(ranges[1][0] + 1), 1),
        (str(ranges[1][0]), 1),
        (str(h.HASH_KEY_MAX), 2),
        ("999999999999999999999999999999999999999", 2),
    ]:
        h.assert_client_error(
            split_error(kinesis, stream, h.shard_id(ordinal), key),
            "InvalidArgumentException",
            text(key, ordinal),
        )
    assert len(list_shards(kinesis, stream)) == 3
    split(kinesis, stream, "anything-0", 2)
    split(kinesis, stream, h.shard_id(1), ranges[1][0] + 2)
    shards = list_shards(kinesis, stream)
    assert_lineage_invariants(shards)
    assert [key_range(s) for s in shards[3:]] == [
        (0, 1),
        (2, ranges[0][1]),
        (ranges[1][0], ranges[1][0] + 1),
        (ranges[1][0] + 2, ranges[1][1]),
    ]


def test_reshard_named_shard_errors(kinesis, new_stream):
    stream = new_stream(shard_count=2)
    split(kinesis, stream, h.shard_id(0), 2**100)  # -> 2, 3
    closed = (
        f"Shard {h.shard_id(0)} in stream {stream} under account {ACCOUNT} has already been merged "
        "or split, and thus is not eligible for merging or splitting."
    )
    h.assert_client_error(
        split_error(kinesis, stream, h.shard_id(0), 12345), "InvalidArgumentException", closed
    )
    h.assert_client_error(
        merge_error(kinesis, stream, h.shard_id(0), h.shard_id(1)),
        "InvalidArgumentException",
        closed,
    )
    h.assert_client_error(
        merge_error(kinesis, stream, h.shard_id(3), h.shard_id(0)),
        "InvalidArgumentException",
        closed,
    )
    for argument, named in [
        ("shardId-000000000009", h.shard_id(9)),
        ("shardId-5", h.shard_id(5)),
        ("ABKLFD8", "ABKLFD8"),
        ("shardId-002147483648", "shardId-002147483648"),
    ]:
        text = f"Could not find shard {named} in stream {stream} under account {ACCOUNT}."
        h.assert_client_error(
            split_error(kinesis, stream, argument, 12345), "ResourceNotFoundException", text
        )
        h.assert_client_error(
            merge_error(kinesis, stream, argument, h.shard_id(1)), "ResourceNotFoundException", text
        )
        h.assert_client_error(
            merge_error(kinesis, stream, h.shard_id(3), argument), "ResourceNotFoundException", text
        )
    missing = h.unique_stream_name("missing")
    h.assert_client_error(
        split_error(kinesis, missing, h.shard_id(0), 12345),
        "ResourceNotFoundException",
        h.not_found_message(missing),
    )
    h.assert_client_error(
        rescale_error(kinesis, missing, 2),
        "ResourceNotFoundException",
        h.not_found_message(missing),
    )
    assert len(list_shards(kinesis, stream)) == 4


def test_merge_shards_adjacency_errors(kinesis, new_stream):
    stream = new_stream(shard_count=3)
    for a, b in [(0, 2), (2, 0), (1, 0), (1, 1)]:
        text = (
            f"Shards {h.shard_id(a)} and {h.shard_id(b)} in stream {stream} under account "
            f"{ACCOUNT} are not an adjacent pair of shards eligible for merging"
        )
        h.assert_client_error(
            merge_error(kinesis, stream, h.shard_id(a), h.shard_id(b)),
            "InvalidArgumentException",
            text,
        )
    merge(kinesis, stream, h.shard_id(0), h.shard_id(1))
    child = by_id(list_shards(kinesis, stream), h.shard_id(3))
    assert (child["ParentShardId"], child["AdjacentParentShardId"]) == (
        h.shard_id(0),
        h.shard_id(1),
    )
    assert key_range(child) == (0, h.expected_hash_ranges(3)[1][1])


def test_update_shard_count_bounds(kinesis, new_stream):
    stream = new_stream(shard_count=4)
    for target, text in [
        (
            9,
            "UpdateShardCount cannot scale up over double your current open shard count. "
            "Current open shard count: 4, Target shard count: 9",
        ),
        (
            1,
            "UpdateShardCount cannot scale down below half your current open shard count. "
            "Current open shard count: 4, Target shard count: 1",
        ),
    ]:
        h.assert_client_error(
            rescale_error(kinesis, stream, target), "LimitExceededException", text
        )
    assert rescale(kinesis, stream, 8) == (4, 8)
    assert open_ranges(list_shards(kinesis, stream)) == h.expected_hash_ranges(8)
    assert rescale(kinesis, stream, 4) == (8, 4)
    assert rescale(kinesis, stream, 3) == (4, 3)
    shards = list_shards(kinesis, stream)
    assert open_ranges(shards) == h.expected_hash_ranges(3)
    assert_lineage_invariants(shards)


def test_on_demand_streams_refuse_manual_resharding(kinesis, new_stream):
    stream = new_stream(on_demand=True)
    for excinfo in (
        split_error(kinesis, stream, h.shard_id(0), 12345),
        merge_error(kinesis, stream, h.shard_id(0), h.shard_id(1)),
        rescale_error(kinesis, stream, 5),
    ):
        message = h.assert_client_error(excinfo, "ValidationException")
        assert stream in message and "ON_DEMAND" in message, message
    assert len(list_shards(kinesis, stream)) == h.ON_DEMAND_INITIAL_SHARDS
    kinesis.update_stream_mode(
        StreamARN=h.stream_arn(stream), StreamModeDetails={"StreamMode": "PROVISIONED"}
    )
    assert rescale(kinesis, stream, 5) == (4, 5)
    assert open_ranges(list_shards(kinesis, stream)) == h.expected_hash_ranges(5)


def statuses(client, stream):
    summary = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    described = client.describe_stream(StreamName=stream)["StreamDescription"]
    listed = [s for s in client.list_streams()["StreamSummaries"] if s["StreamName"] == stream]
    return summary["StreamStatus"], described["StreamStatus"], listed[0]["StreamStatus"]


def test_a_second_reshard_while_updating_is_refused(own_server):
    server = own_server("--update-window-ms", "3000")
    client = h.make_client(server.endpoint)
    stream = "window"
    client.create_stream(StreamName=stream, ShardCount=2)
    assert statuses(client, stream) == ("ACTIVE",) * 3
    split(client, stream, h.shard_id(0), 2**126)
    resharded = time.monotonic()
    status = statuses(client, stream)
    # AWS lists the layout from before the split until the stream is ACTIVE again.
    listed_while_updating = [s["ShardId"] for s in list_shards(client, stream)]
    in_use = f"Stream {stream} under account {ACCOUNT} not ACTIVE, instead in state UPDATING"

    def attempt(fn, **kwargs):
        try:
            return fn(**kwargs)
        except ClientError as err:
            return err

    refusals = [
        attempt(
            client.split_shard,
            StreamName=stream,
            ShardToSplit=h.shard_id(1),
            NewStartingHashKey=str(2**127 + 5),
        ),
        attempt(
            client.merge_shards,
            StreamName=stream,
            ShardToMerge=h.shard_id(2),
            AdjacentShardToMerge=h.shard_id(3),
        ),
        attempt(
            client.update_shard_count, StreamName=stream, TargetShardCount=2, ScalingType=UNIFORM
        ),
        attempt(
            client.update_stream_mode,
            StreamARN=h.stream_arn(stream),
            StreamModeDetails={"StreamMode": "ON_DEMAND"},
        ),
    ]
    # Reads and writes go on while UPDATING.
    put = client.put_record(
        StreamName=stream, PartitionKey="during", Data=b"updating", ExplicitHashKey="7"
    )
    assert put["ShardId"] == h.shard_id(2)
    records, _ = h.drain_iterator(
        client,
        shard_iterator(
            client,
            stream,
            h.shard_id(2),
            "AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=put["SequenceNumber"],
        ),
    )
    assert [r["Data"] for r in records] == [b"updating"]
    if time.monotonic() - resharded < 2.0:  # a stalled machine may legitimately see ACTIVE
        assert status == ("UPDATING",) * 3
        for refusal in refusals:
            assert isinstance(refusal, ClientError), refusal
            error = refusal.response["Error"]
            assert (error["Code"], error["Message"]) == ("ResourceInUseException", in_use)
            assert refusal.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert listed_while_updating == [h.shard_id(0), h.shard_id(1)]
    deadline = time.monotonic() + 30
    while statuses(client, stream) != ("ACTIVE",) * 3:
        assert time.monotonic() < deadline, "still UPDATING 30 s after the reshard"
        time.sleep(0.2)
    # The window runs from before the SplitShard response was sent; allow a slow response.
    assert time.monotonic() - resharded >= 2.0
    assert len(list_shards(client, stream)) == 4
    merge(client, stream, h.shard_id(2), h.shard_id(3))
    while statuses(client, stream) != ("ACTIVE",) * 3:
        assert time.monotonic() < deadline + 30, "still UPDATING 30 s after the merge"
        time.sleep(0.2)
    shards = list_shards(client, stream)
    assert len(shards) == 5
    assert_lineage_invariants(shards)


def test_the_account_shard_limit_refuses_a_split(own_server):
    server = own_server("--shard-limit", "4")
    client = h.make_client(server.endpoint)
    stream = "limited"
    client.create_stream(StreamName=stream, ShardCount=3)
    split(client, stream, h.shard_id(0), 2**100)
    limits = client.describe_limits()
    assert (limits["ShardLimit"], limits["OpenShardCount"]) == (4, 4)
    text = (
        f"This request would exceed the shard limit for the account {ACCOUNT} in {h.REGION}. "
        "Current shard count for the account: 4. Limit: 4. Number of additional shards that "
        "would have resulted from this request: 1. Refer to the AWS Service Limits page "
        "(http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits "
        "and how to request higher limits."
    )
    shards = list_shards(client, stream)
    h.assert_client_error(
        split_error(client, stream, h.shard_id(1), middle(shards[1])),
        "LimitExceededException",
        text,
    )
    merge(client, stream, h.shard_id(3), h.shard_id(4))
    split(client, stream, h.shard_id(1), middle(shards[1]))
    assert len(open_shards(list_shards(client, stream))) == 4


# ---------------------------------------------------------------------------------------------
# 6. Restarts


def write_round(client, stream, counters, count, acks):
    for i in range(count):
        k = i % len(counters)
        key = f"k{k}"
        put = with_throttle_retries(
            client.put_record,
            StreamName=stream,
            PartitionKey=key,
            Data=f"{key}#{counters[k]}".encode(),
        )
        acks.append(
            {
                "key": key,
                "counter": counters[k],
                "shard": put["ShardId"],
                "sequence": put["SequenceNumber"],
            }
        )
        counters[k] += 1


def test_reshards_survive_a_restart(own_server, tmp_path):
    data_dir = tmp_path / "data"
    server = own_server(data_dir=data_dir)
    client = h.make_client(server.endpoint)
    stream = "durable"
    client.create_stream(StreamName=stream, ShardCount=2)
    counters, acks = [0] * 8, []
    write_round(client, stream, counters, 24, acks)
    first = list_shards(client, stream)
    split(client, stream, h.shard_id(0), middle(first[0]))
    write_round(client, stream, counters, 24, acks)
    merge(client, stream, h.shard_id(2), h.shard_id(3))
    write_round(client, stream, counters, 24, acks)
    assert rescale(client, stream, 3) == (2, 3)
    write_round(client, stream, counters, 24, acks)
    shards = list_shards(client, stream)
    described = client.describe_stream(StreamName=stream)["StreamDescription"]["Shards"]
    order = read_lineage(client, stream, shards)
    assert_reads_match_acks(shards, order, acks)

    assert server.stop() == 0, server.stderr_tail()
    server = own_server(data_dir=data_dir)
    client = h.make_client(server.endpoint)
    assert list_shards(client, stream) == shards
    assert client.describe_stream(StreamName=stream)["StreamDescription"]["Shards"] == described
    assert read_lineage(client, stream, shards) == order
    opened = open_shards(shards)
    last = {sid: int(records[-1]["SequenceNumber"]) for sid, records in order if records}
    new_from = len(acks)
    write_round(client, stream, counters, 24, acks)
    for ack in acks[new_from:]:
        assert ack["shard"] == h.shard_for_hash(opened, h.partition_key_hash(ack["key"]))
        assert int(ack["sequence"]) > last.get(ack["shard"], 0)
    split(client, stream, opened[0]["ShardId"], middle(opened[0]))
    shards = list_shards(client, stream)
    assert_lineage_invariants(shards)
    assert_reads_match_acks(shards, read_lineage(client, stream, shards), acks)


def test_stream_mode_round_trip_survives_restarts(own_server, tmp_path):
    data_dir = tmp_path / "data"
    server = own_server(data_dir=data_dir)
    client = h.make_client(server.endpoint)
    stream = "modal"
    client.create_stream(StreamName=stream, ShardCount=2)
    counters, acks = [0] * 4, []
    write_round(client, stream, counters, 8, acks)
    shards = list_shards(client, stream)

    def mode():
        summary = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
        described = client.describe_stream(StreamName=stream)["StreamDescription"]
        listed = client.list_streams()["StreamSummaries"][0]
        return (
            summary["StreamModeDetails"]["StreamMode"],
            described["StreamModeDetails"]["StreamMode"],
            listed["StreamModeDetails"]["StreamMode"],
        )

    assert mode() == ("PROVISIONED",) * 3
    client.update_stream_mode(
        StreamARN=h.stream_arn(stream), StreamModeDetails={"StreamMode": "ON_DEMAND"}
    )
    assert mode() == ("ON_DEMAND",) * 3
    server.stop(signal.SIGKILL)
    server = own_server(data_dir=data_dir)
    client = h.make_client(server.endpoint)
    assert mode() == ("ON_DEMAND",) * 3
    assert list_shards(client, stream) == shards
    h.assert_client_error(split_error(client, stream, h.shard_id(0), 12345), "ValidationException")
    write_round(client, stream, counters, 8, acks)
    client.update_stream_mode(
        StreamARN=h.stream_arn(stream), StreamModeDetails={"StreamMode": "PROVISIONED"}
    )
    assert mode() == ("PROVISIONED",) * 3
    server.stop(signal.SIGKILL)
    server = own_server(data_dir=data_dir)
    client = h.make_client(server.endpoint)
    assert mode() == ("PROVISIONED",) * 3
    split(client, stream, h.shard_id(0), middle(shards[0]))
    shards = list_shards(client, stream)
    assert_lineage_invariants(shards)
    assert_reads_match_acks(shards, read_lineage(client, stream, shards), acks)


# ---------------------------------------------------------------------------------------------
# 7. The AWS CLI


def test_cli_split_merge_and_update_shard_count(aws, kinesis, new_stream):
    stream = new_stream(shard_count=2)
    half = 2**127
    split_done = aws(
        "split-shard",
        "--stream-name",
        stream,
        "--shard-to-split",
        h.shard_id(0),
        "--new-starting-hash-key",
        str(half // 2),
    )
    assert split_done.returncode == 0, split_done.stderr
    assert split_done.stdout.strip() == ""
    merged = aws(
        "merge-shards",
        "--stream-name",
        stream,
        "--shard-to-merge",
        h.shard_id(2),
        "--adjacent-shard-to-merge",
        h.shard_id(3),
    )
    assert merged.returncode == 0, merged.stderr
    assert merged.stdout.strip() == ""
    updated = aws(
        "update-shard-count",
        "--stream-name",
        stream,
        "--target-shard-count",
        "4",
        "--scaling-type",
        UNIFORM,
    ).json()
    assert updated == {
        "StreamName": stream,
        "CurrentShardCount": 2,
        "TargetShardCount": 4,
        "StreamARN": h.stream_arn(stream),
    }
    listed = aws("list-shards", "--stream-name", stream).json()["Shards"]
    assert listed == list_shards(kinesis, stream)
    assert_lineage_invariants(listed)
    assert open_ranges(listed) == h.expected_hash_ranges(4)
    assert (
        by_id(listed, h.shard_id(4))["ParentShardId"],
        by_id(listed, h.shard_id(4))["AdjacentParentShardId"],
    ) == (
        h.shard_id(2),
        h.shard_id(3),
    )
    refused = aws(
        "split-shard",
        "--stream-name",
        stream,
        "--shard-to-split",
        h.shard_id(0),
        "--new-starting-hash-key",
        "12345",
    )
    assert refused.returncode != 0
    assert "(InvalidArgumentException)" in refused.stderr
    assert refused.stderr.strip().endswith(
        f"Shard {h.shard_id(0)} in stream {stream} under account {ACCOUNT} has already been merged "
        "or split, and thus is not eligible for merging or splitting."
    ), refused.stderr
