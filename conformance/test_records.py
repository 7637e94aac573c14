"""PutRecord / PutRecords / GetShardIterator / GetRecords through boto3: binary data, size limits,
routing, iterator types and sequence-number ordering."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import Counter

import pytest
from botocore.exceptions import ClientError

import riffle_harness as h

ALL_BYTES = bytes(range(256))
RECORD_LIMIT_ERRORS = ("ValidationException", "InvalidArgumentException")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _assert_put_ack(response: dict, expected_shard: str | None = None) -> int:
    assert h.SHARD_ID_RE.match(response["ShardId"])
    if expected_shard is not None:
        assert response["ShardId"] == expected_shard
    assert response.get("EncryptionType", "NONE") == "NONE"
    return h.assert_sequence_number(response["SequenceNumber"])


def _assert_read_record(record: dict, data: bytes, partition_key: str, sequence_number: str):
    assert record["Data"] == data
    assert record["PartitionKey"] == partition_key
    assert record["SequenceNumber"] == sequence_number
    assert record.get("EncryptionType", "NONE") == "NONE"
    arrival = record["ApproximateArrivalTimestamp"]
    assert isinstance(arrival, dt.datetime)
    assert abs((_now() - arrival).total_seconds()) < 300


def _hash_for_shard(shards: list[dict], ordinal: int) -> str:
    """An ExplicitHashKey inside shard `ordinal` (its starting key)."""
    return shards[ordinal]["HashKeyRange"]["StartingHashKey"]


# --- binary data -------------------------------------------------------------------------------


def test_put_record_binary_round_trip(kinesis, new_stream):
    name = new_stream()
    payloads = [
        ALL_BYTES,
        bytes(reversed(ALL_BYTES)) * 16,
        b"\x00",
        b"\xff\xfe\x00\x80not utf-8\xc3\x28",
        "unicode ✓ ключ 🔑".encode("utf-8"),
    ]
    acks = []
    for index, data in enumerate(payloads):
        response = kinesis.put_record(StreamName=name, Data=data, PartitionKey=f"bin-{index}")
        acks.append(response["SequenceNumber"])
        _assert_put_ack(response, h.shard_id(0))
    records = h.read_shard(kinesis, name, h.shard_id(0))
    assert len(records) == len(payloads)
    for record, data, index, sequence_number in zip(records, payloads, range(len(payloads)), acks):
        _assert_read_record(record, data, f"bin-{index}", sequence_number)


def test_put_records_every_byte_value(kinesis, new_stream):
    name = new_stream()
    entries = [{"Data": bytes([value]), "PartitionKey": f"byte-{value}"} for value in range(256)]
    entries.append({"Data": ALL_BYTES, "PartitionKey": "all"})
    response = kinesis.put_records(StreamName=name, Records=entries)
    assert response.get("FailedRecordCount", 0) == 0
    assert len(response["Records"]) == len(entries)
    for ack in response["Records"]:
        assert "ErrorCode" not in ack
        _assert_put_ack(ack, h.shard_id(0))
    by_sequence = {
        ack["SequenceNumber"]: entry for ack, entry in zip(response["Records"], entries)
    }
    assert len(by_sequence) == len(entries), "sequence numbers must be unique"

    records = h.read_shard(kinesis, name, h.shard_id(0))
    assert len(records) == len(entries)
    for record in records:
        entry = by_sequence[record["SequenceNumber"]]
        _assert_read_record(record, entry["Data"], entry["PartitionKey"], record["SequenceNumber"])
    # (No request-order check: AWS documents that PutRecords does not guarantee ordering.)
    numbers = [int(r["SequenceNumber"]) for r in records]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


def test_empty_data_round_trip(kinesis, new_stream):
    name = new_stream()
    ack = kinesis.put_record(StreamName=name, Data=b"", PartitionKey="empty")
    records = h.read_shard(kinesis, name, h.shard_id(0))
    assert len(records) == 1
    _assert_read_record(records[0], b"", "empty", ack["SequenceNumber"])


# --- partition keys and routing ------------------------------------------------------------------


def test_partition_key_routing_by_md5(kinesis, new_stream):
    name = new_stream(shard_count=4)
    shards = h.list_all_shards(kinesis, name)
    keys = [f"customer-{i}" for i in range(40)] + ["ключ", "🔑-emoji", "é" * 256, "x" * 256, " "]
    expected: dict[str, list[str]] = {s["ShardId"]: [] for s in shards}
    for key in keys:
        owner = h.shard_for_hash(shards, h.partition_key_hash(key))
        response = kinesis.put_record(StreamName=name, Data=key.encode(), PartitionKey=key)
        _assert_put_ack(response, owner)
        expected[owner].append(key)
    assert sum(1 for owned in expected.values() if owned) >= 3, "keys should spread over shards"
    for shard in shards:
        records = h.read_shard(kinesis, name, shard["ShardId"])
        assert [r["PartitionKey"] for r in records] == expected[shard["ShardId"]]
        assert all(r["Data"] == r["PartitionKey"].encode() for r in records)


def test_partition_key_length_limits(kinesis, kinesis_unvalidated, new_stream):
    name = new_stream()
    kinesis.put_record(StreamName=name, Data=b"ok", PartitionKey="k" * h.PARTITION_KEY_CHARS_MAX)
    # The limit counts characters, not UTF-8 bytes.
    kinesis.put_record(StreamName=name, Data=b"ok", PartitionKey="é" * h.PARTITION_KEY_CHARS_MAX)

    too_long = "k" * (h.PARTITION_KEY_CHARS_MAX + 1)
    with pytest.raises(ClientError) as excinfo:
        kinesis.put_record(StreamName=name, Data=b"x", PartitionKey=too_long)
    h.assert_client_error(
        excinfo,
        "ValidationException",
        f"1 validation error detected: Value '{too_long}' at 'partitionKey' failed to satisfy "
        "constraint: Member must have length less than or equal to 256",
    )
    entries = [{"Data": b"x", "PartitionKey": "fine"} for _ in range(4)]
    entries[2]["PartitionKey"] = too_long
    with pytest.raises(ClientError) as excinfo:
        kinesis.put_records(StreamName=name, Records=entries)
    h.assert_client_error(
        excinfo,
        "ValidationException",
        f"1 validation error detected: Value '{too_long}' at 'records.3.member.partitionKey' "
        "failed to satisfy constraint: Member must have length less than or equal to 256",
    )
    with pytest.raises(ClientError) as excinfo:
        kinesis_unvalidated.put_record(StreamName=name, Data=b"x", PartitionKey="")
    h.assert_client_error(
        excinfo,
        "ValidationException",
        "1 validation error detected: Value '' at 'partitionKey' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1",
    )
    # Only the two valid records were stored; the rejected batch stored nothing.
    assert len(h.read_shard(kinesis, name, h.shard_id(0))) == 2


def test_partition_key_is_required(kinesis, new_stream):
    """Only AUTO distribution makes PartitionKey optional; a provisioned stream routes by it."""
    name = new_stream(shard_count=2)
    with pytest.raises(ClientError) as excinfo:
        kinesis.put_record(StreamName=name, Data=b"x")
    h.assert_client_error(
        excinfo,
        "ValidationException",
        "1 validation error detected: Value null at 'partitionKey' failed to satisfy constraint: "
        "Member must not be null",
    )
    with pytest.raises(ClientError) as excinfo:
        kinesis.put_records(
            StreamName=name,
            Records=[{"Data": b"keyed", "PartitionKey": "k"}, {"Data": b"keyless"}],
        )
    h.assert_client_error(
        excinfo,
        "ValidationException",
        "1 validation error detected: Value null at 'records.2.member.partitionKey' failed to "
        "satisfy constraint: Member must not be null",
    )
    for shard in (h.shard_id(0), h.shard_id(1)):
        assert h.read_shard(kinesis, name, shard) == []


# --- record distribution (UpdateStreamRecordDistributionStrategy) ------------------------------


def _distribution(kinesis, name: str) -> str | None:
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    return summary.get("RecordDistributionStrategy")


def _put_one_key(kinesis, name: str, count: int) -> Counter:
    """PutRecords of `count` records that all share one partition key; records per shard."""
    records = [{"Data": f"one-key {i}".encode(), "PartitionKey": "one-key"} for i in range(count)]
    response = kinesis.put_records(StreamName=name, Records=records)
    assert response.get("FailedRecordCount", 0) == 0, response
    return Counter(ack["ShardId"] for ack in response["Records"])


def test_auto_distribution_spreads_one_key_until_switched_back(kinesis, new_stream):
    name = new_stream(on_demand=True)
    arn = h.stream_arn(name)
    shards = h.list_all_shards(kinesis, name)
    assert len(shards) == h.ON_DEMAND_INITIAL_SHARDS
    keyed_shard = h.shard_for_hash(shards, h.partition_key_hash("one-key"))
    assert _distribution(kinesis, name) == "USER_PARTITION_KEY"
    assert _put_one_key(kinesis, name, 20) == {keyed_shard: 20}

    response = kinesis.update_stream_record_distribution_strategy(
        StreamARN=arn, RecordDistributionStrategy="AUTO"
    )
    assert set(response) == {"ResponseMetadata"}, "a void operation"
    assert _distribution(kinesis, name) == "AUTO"
    spread = _put_one_key(kinesis, name, 40)
    assert sorted(spread.values()) == [10] * len(shards), f"evenly over the open shards: {spread}"
    # No partition key, an ExplicitHashKey that would pick shard 0: neither decides the shard.
    placed = Counter(
        kinesis.put_record(StreamName=name, Data=f"keyless {i}".encode(), ExplicitHashKey="0")["ShardId"]
        for i in range(len(shards))
    )
    assert len(placed) == len(shards), placed
    keyless = [
        record
        for shard in shards
        for record in h.read_shard(kinesis, name, shard["ShardId"])
        if record["Data"].startswith(b"keyless")
    ]
    assert len(keyless) == len(shards)
    assert all("PartitionKey" not in record for record in keyless), keyless
    with pytest.raises(ClientError) as excinfo:
        kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k", SequenceNumberForOrdering="0")
    h.assert_client_error(excinfo, "InvalidArgumentException")

    kinesis.update_stream_record_distribution_strategy(
        StreamARN=arn, RecordDistributionStrategy="USER_PARTITION_KEY"
    )
    assert _distribution(kinesis, name) == "USER_PARTITION_KEY"
    assert _put_one_key(kinesis, name, 20) == {keyed_shard: 20}
    with pytest.raises(ClientError) as excinfo:
        kinesis.put_record(StreamName=name, Data=b"no key")
    h.assert_client_error(
        excinfo,
        "ValidationException",
        "1 validation error detected: Value null at 'partitionKey' failed to satisfy constraint: "
        "Member must not be null",
    )


def test_record_distribution_errors(kinesis, kinesis_unvalidated, new_stream):
    name = new_stream(shard_count=2)
    arn = h.stream_arn(name)
    with pytest.raises(ClientError) as excinfo:
        kinesis.update_stream_record_distribution_strategy(
            StreamARN=arn, RecordDistributionStrategy="AUTO"
        )
    h.assert_client_error(
        excinfo,
        "InvalidArgumentException",
        "The AUTO record distribution strategy is only supported for streams in ON_DEMAND "
        "capacity mode.",
    )
    # What a PROVISIONED stream does anyway is accepted; the summary shows the strategy only
    # for ON_DEMAND streams.
    kinesis.update_stream_record_distribution_strategy(
        StreamARN=arn, RecordDistributionStrategy="USER_PARTITION_KEY"
    )
    assert _distribution(kinesis, name) is None

    missing = h.unique_stream_name("missing")
    with pytest.raises(ClientError) as excinfo:
        kinesis.update_stream_record_distribution_strategy(
            StreamARN=h.stream_arn(missing), RecordDistributionStrategy="AUTO"
        )
    h.assert_client_error(excinfo, "ResourceNotFoundException", h.not_found_message(missing))
    with pytest.raises(ClientError) as excinfo:
        kinesis_unvalidated.update_stream_record_distribution_strategy(
            StreamARN=arn, RecordDistributionStrategy="RANDOM"
        )
    h.assert_client_error(
        excinfo,
        "ValidationException",
        "1 validation error detected: Value 'RANDOM' at 'recordDistributionStrategy' failed to "
        "satisfy constraint: Member must satisfy enum value set: [AUTO, USER_PARTITION_KEY]",
    )
    with pytest.raises(ClientError) as excinfo:
        kinesis_unvalidated.update_stream_record_distribution_strategy(StreamARN=arn)
    h.assert_client_error(
        excinfo,
        "ValidationException",
        "1 validation error detected: Value null at 'recordDistributionStrategy' failed to "
        "satisfy constraint: Member must not be null",
    )


def test_explicit_hash_key_routing(kinesis, new_stream):
    name = new_stream(shard_count=4)
    shards = h.list_all_shards(kinesis, name)
    partition_key = "route-me"
    md5_owner = h.shard_for_hash(shards, h.partition_key_hash(partition_key))
    hash_keys = [0, h.HASH_KEY_MAX]
    for shard in shards:
        start = int(shard["HashKeyRange"]["StartingHashKey"])
        end = int(shard["HashKeyRange"]["EndingHashKey"])
        hash_keys += [start, end, (start + end) // 2]
    expected: dict[str, list[str]] = {s["ShardId"]: [] for s in shards}
    for hash_key in hash_keys:
        owner = h.shard_for_hash(shards, hash_key)
        response = kinesis.put_record(
            StreamName=name,
            Data=str(hash_key).encode(),
            PartitionKey=partition_key,
            ExplicitHashKey=str(hash_key),
        )
        _assert_put_ack(response, owner)
        expected[owner].append(str(hash_key))
    # PutRecords honours ExplicitHashKey per entry too.
    batch = [
        {"Data": f"batch-{s['ShardId']}".encode(), "PartitionKey": partition_key,
         "ExplicitHashKey": s["HashKeyRange"]["EndingHashKey"]}
        for s in shards
    ]
    response = kinesis.put_records(StreamName=name, Records=batch)
    assert response.get("FailedRecordCount", 0) == 0
    for ack, shard in zip(response["Records"], shards):
        _assert_put_ack(ack, shard["ShardId"])
        expected[shard["ShardId"]].append(f"batch-{shard['ShardId']}")
    for shard in shards:
        records = h.read_shard(kinesis, name, shard["ShardId"])
        assert [r["Data"].decode() for r in records] == expected[shard["ShardId"]]
        assert {r["PartitionKey"] for r in records} == {partition_key}
    # Sanity: the explicit keys really overrode the MD5 placement somewhere.
    assert any(expected[s["ShardId"]] for s in shards if s["ShardId"] != md5_owner)


def test_explicit_hash_key_errors(kinesis, new_stream):
    name = new_stream(shard_count=2)
    with pytest.raises(ClientError) as excinfo:
        kinesis.put_record(
            StreamName=name, Data=b"x", PartitionKey="k", ExplicitHashKey=str(h.HASH_KEY_SPACE)
        )
    h.assert_client_error(
        excinfo,
        "InvalidArgumentException",
        "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. "
        f"Specified value was {h.HASH_KEY_SPACE}",
    )
    with pytest.raises(ClientError) as excinfo:
        kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k", ExplicitHashKey="abc")
    message = h.assert_client_error(excinfo, "ValidationException")
    assert "Value 'abc' at 'explicitHashKey' failed to satisfy constraint" in message
    # Negative: outside the model's pattern and outside the range; either check may reject it.
    with pytest.raises(ClientError) as excinfo:
        kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k", ExplicitHashKey="-1")
    code, message = h.error_of(excinfo)
    assert code in ("ValidationException", "InvalidArgumentException"), (code, message)
    for shard in ("shardId-000000000000", "shardId-000000000001"):
        assert h.read_shard(kinesis, name, shard) == []


# --- record size limits -------------------------------------------------------------------------


def test_record_size_limit_put_record(kinesis, new_stream, record_property, capsys):
    name = new_stream(shard_count=4)
    shards = h.list_all_shards(kinesis, name)
    key = "k" * 10
    at_limit = bytes(i % 256 for i in range(h.RECORD_BYTES_MAX - len(key)))
    ack = kinesis.put_record(
        StreamName=name, Data=at_limit, PartitionKey=key, ExplicitHashKey=_hash_for_shard(shards, 0)
    )
    _assert_put_ack(ack, h.shard_id(0))

    # Multi-byte partition keys count in UTF-8 bytes: 5 characters, 10 bytes.
    wide_key = "é" * 5
    ack_wide = kinesis.put_record(
        StreamName=name,
        Data=at_limit,
        PartitionKey=wide_key,
        ExplicitHashKey=_hash_for_shard(shards, 1),
    )
    _assert_put_ack(ack_wide, h.shard_id(1))

    codes = set()
    over = at_limit + b"!"
    for partition_key, shard in ((key, 2), (wide_key, 3)):
        with pytest.raises(ClientError) as excinfo:
            kinesis.put_record(
                StreamName=name,
                Data=over,
                PartitionKey=partition_key,
                ExplicitHashKey=_hash_for_shard(shards, shard),
            )
        code, message = h.error_of(excinfo)
        assert code in RECORD_LIMIT_ERRORS, (code, message)
        assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        codes.add((code, message))
    # Data alone at 1 MiB plus a one-character key is over as well.
    with pytest.raises(ClientError) as excinfo:
        kinesis.put_record(
            StreamName=name,
            Data=bytes(h.RECORD_BYTES_MAX),
            PartitionKey="k",
            ExplicitHashKey=_hash_for_shard(shards, 2),
        )
    code, message = h.error_of(excinfo)
    assert code in RECORD_LIMIT_ERRORS, (code, message)
    codes.add((code, message))
    assert len({c for c, _ in codes}) == 1, f"inconsistent over-limit errors: {codes}"
    record_property("put_record_over_limit_error", sorted(codes))
    with capsys.disabled():
        print(f"\n[conformance] PutRecord over 1 MiB -> {sorted(codes)}")

    first = h.read_shard(kinesis, name, h.shard_id(0))
    assert len(first) == 1
    _assert_read_record(first[0], at_limit, key, ack["SequenceNumber"])
    second = h.read_shard(kinesis, name, h.shard_id(1))
    assert len(second) == 1
    _assert_read_record(second[0], at_limit, wide_key, ack_wide["SequenceNumber"])
    assert h.read_shard(kinesis, name, h.shard_id(2)) == []
    assert h.read_shard(kinesis, name, h.shard_id(3)) == []


def test_record_size_limit_put_records(kinesis, new_stream, record_property, capsys):
    name = new_stream(shard_count=3)
    shards = h.list_all_shards(kinesis, name)
    key = "pk"
    at_limit = bytes((i * 7) % 256 for i in range(h.RECORD_BYTES_MAX - len(key)))
    ok = kinesis.put_records(
        StreamName=name,
        Records=[
            {"Data": at_limit, "PartitionKey": key, "ExplicitHashKey": _hash_for_shard(shards, 0)},
            {"Data": b"small", "PartitionKey": key, "ExplicitHashKey": _hash_for_shard(shards, 1)},
        ],
    )
    assert ok.get("FailedRecordCount", 0) == 0
    _assert_put_ack(ok["Records"][0], h.shard_id(0))
    _assert_put_ack(ok["Records"][1], h.shard_id(1))

    with pytest.raises(ClientError) as excinfo:
        kinesis.put_records(
            StreamName=name,
            Records=[
                {"Data": b"small", "PartitionKey": key, "ExplicitHashKey": _hash_for_shard(shards, 2)},
                {"Data": at_limit + b"!", "PartitionKey": key,
                 "ExplicitHashKey": _hash_for_shard(shards, 2)},
            ],
        )
    code, message = h.error_of(excinfo)
    assert code in RECORD_LIMIT_ERRORS, (code, message)
    record_property("put_records_over_limit_error", (code, message))
    with capsys.disabled():
        print(f"\n[conformance] PutRecords entry over 1 MiB -> {(code, message)}")
    # A rejected request stores nothing, not even its valid entries.
    assert h.read_shard(kinesis, name, h.shard_id(2)) == []
    records = h.read_shard(kinesis, name, h.shard_id(0))
    assert [r["Data"] for r in records] == [at_limit]


def test_put_records_nine_mebibytes(kinesis, new_stream):
    """A PutRecords near the 10 MiB request limit: about 12.6 MB of JSON on the wire."""
    name = new_stream(shard_count=9)
    shards = h.list_all_shards(kinesis, name)
    key = "big"
    entries = []
    for ordinal in range(9):
        data = bytes([ordinal]) * 7 + bytes(h.RECORD_BYTES_MAX - len(key) - 7)
        entries.append(
            {"Data": data, "PartitionKey": key, "ExplicitHashKey": _hash_for_shard(shards, ordinal)}
        )
    response = kinesis.put_records(StreamName=name, Records=entries)
    assert response.get("FailedRecordCount", 0) == 0
    for ordinal, ack in enumerate(response["Records"]):
        _assert_put_ack(ack, h.shard_id(ordinal))
    for ordinal in range(9):
        records = h.read_shard(kinesis, name, h.shard_id(ordinal))
        assert len(records) == 1
        assert records[0]["Data"] == entries[ordinal]["Data"]


def test_put_records_entry_count_limits(kinesis, kinesis_unvalidated, new_stream):
    name = new_stream()
    entries = [{"Data": b"x", "PartitionKey": str(i)} for i in range(h.PUT_RECORDS_ENTRIES_MAX + 1)]
    with pytest.raises(ClientError) as excinfo:
        kinesis.put_records(StreamName=name, Records=entries)
    message = h.assert_client_error(excinfo, "ValidationException")
    assert message.startswith("1 validation error detected: ")
    assert (
        "at 'records' failed to satisfy constraint: "
        "Member must have length less than or equal to 500" in message
    )
    with pytest.raises(ClientError) as excinfo:
        kinesis_unvalidated.put_records(StreamName=name, Records=[])
    message = h.assert_client_error(excinfo, "ValidationException")
    assert (
        "at 'records' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1" in message
    )
    ok = kinesis.put_records(StreamName=name, Records=entries[: h.PUT_RECORDS_ENTRIES_MAX])
    assert ok.get("FailedRecordCount", 0) == 0
    assert len(ok["Records"]) == h.PUT_RECORDS_ENTRIES_MAX
    assert len(h.read_shard(kinesis, name, h.shard_id(0))) == h.PUT_RECORDS_ENTRIES_MAX


def test_put_records_batch_routing(kinesis, new_stream):
    name = new_stream(shard_count=4)
    shards = h.list_all_shards(kinesis, name)
    entries = [
        {"Data": f"payload-{i}".encode() + ALL_BYTES[i % 256 :], "PartitionKey": f"user-{i % 97}"}
        for i in range(h.PUT_RECORDS_ENTRIES_MAX)
    ]
    response = kinesis.put_records(StreamName=name, Records=entries)
    assert response.get("FailedRecordCount", 0) == 0
    assert len(response["Records"]) == len(entries)
    expected = {}
    for entry, ack in zip(entries, response["Records"]):
        owner = h.shard_for_hash(shards, h.partition_key_hash(entry["PartitionKey"]))
        _assert_put_ack(ack, owner)
        expected[ack["SequenceNumber"]] = (owner, entry)
    assert len(expected) == len(entries)
    seen = 0
    for shard in shards:
        for record in h.read_shard(kinesis, name, shard["ShardId"]):
            owner, entry = expected[record["SequenceNumber"]]
            assert owner == shard["ShardId"]
            assert record["Data"] == entry["Data"]
            assert record["PartitionKey"] == entry["PartitionKey"]
            seen += 1
    assert seen == len(entries)


# --- sequence numbers ---------------------------------------------------------------------------


def test_sequence_numbers_strictly_increase_per_shard(kinesis, new_stream):
    name = new_stream(shard_count=3)
    shards = h.list_all_shards(kinesis, name)
    acked: dict[str, list[str]] = {s["ShardId"]: [] for s in shards}
    for i in range(90):
        shard = shards[i % 3]
        response = kinesis.put_record(
            StreamName=name,
            Data=f"{i}".encode(),
            PartitionKey=f"p{i}",
            ExplicitHashKey=shard["HashKeyRange"]["EndingHashKey"],
        )
        _assert_put_ack(response, shard["ShardId"])
        acked[shard["ShardId"]].append(response["SequenceNumber"])
    # A later batch: every entry lands after the shard's earlier records (its order within the
    # batch is not guaranteed by AWS, so it is not checked).
    batch = kinesis.put_records(
        StreamName=name,
        Records=[
            {"Data": b"b", "PartitionKey": "b",
             "ExplicitHashKey": shards[j % 3]["HashKeyRange"]["StartingHashKey"]}
            for j in range(30)
        ],
    )
    assert batch.get("FailedRecordCount", 0) == 0
    batch_acks: dict[str, list[str]] = {s["ShardId"]: [] for s in shards}
    for j, ack in enumerate(batch["Records"]):
        _assert_put_ack(ack, shards[j % 3]["ShardId"])
        batch_acks[shards[j % 3]["ShardId"]].append(ack["SequenceNumber"])

    all_numbers = [n for d in (acked, batch_acks) for numbers in d.values() for n in numbers]
    assert len(set(all_numbers)) == len(all_numbers)
    for shard in shards:
        numbers = acked[shard["ShardId"]]
        as_ints = [h.assert_sequence_number(n) for n in numbers]
        assert all(a < b for a, b in zip(as_ints, as_ints[1:])), "acks must increase per shard"
        assert numbers == sorted(numbers), "fixed-width numbers must also sort as strings"
        batch_ints = [h.assert_sequence_number(n) for n in batch_acks[shard["ShardId"]]]
        assert min(batch_ints) > as_ints[-1]
        starting = int(shard["SequenceNumberRange"]["StartingSequenceNumber"])
        assert starting <= as_ints[0]
        read = [r["SequenceNumber"] for r in h.read_shard(kinesis, name, shard["ShardId"])]
        assert read == numbers + sorted(batch_acks[shard["ShardId"]], key=int)


def test_sequence_number_for_ordering(kinesis, new_stream):
    name = new_stream()
    previous = kinesis.put_record(StreamName=name, Data=b"0", PartitionKey="same")["SequenceNumber"]
    for i in range(1, 10):
        current = kinesis.put_record(
            StreamName=name,
            Data=str(i).encode(),
            PartitionKey="same",
            SequenceNumberForOrdering=previous,
        )["SequenceNumber"]
        assert int(current) > int(previous)
        previous = current
    assert [r["Data"] for r in h.read_shard(kinesis, name, h.shard_id(0))] == [
        str(i).encode() for i in range(10)
    ]


def _sequence_number_arriving_at(arrival_s: int) -> str:
    """A number in the production layout (kinesis-api.md §3.2): shard 0 created at epoch 0,
    counter 0, arriving at `arrival_s` - the shape kinesalite's recorded tests use."""
    return str(int(f"2{0:09x}0{0:016x}00{arrival_s:09x}{0:08x}2", 16))


def test_sequence_number_for_ordering_from_the_future(kinesis, new_stream):
    name = new_stream()
    now_s = int(time.time())
    past = _sequence_number_arriving_at(now_s - 2)
    assert len(past) == h.SEQUENCE_NUMBER_DIGITS
    kinesis.put_record(StreamName=name, Data=b"ok", PartitionKey="k", SequenceNumberForOrdering=past)
    future = _sequence_number_arriving_at(now_s + 3600)
    with pytest.raises(ClientError) as excinfo:
        kinesis.put_record(
            StreamName=name, Data=b"no", PartitionKey="k", SequenceNumberForOrdering=future
        )
    h.assert_client_error(
        excinfo,
        "InvalidArgumentException",
        f"ExclusiveMinimumSequenceNumber {future} used in PutRecord on stream {name} under "
        f"account {h.DEFAULT_ACCOUNT_ID} is invalid.",
    )
    assert [r["Data"] for r in h.read_shard(kinesis, name, h.shard_id(0))] == [b"ok"]


# --- iterators ---------------------------------------------------------------------------------


def test_all_iterator_types(kinesis, new_stream):
    name = new_stream()
    shard = h.shard_id(0)

    def put(data: bytes) -> str:
        return kinesis.put_record(StreamName=name, Data=data, PartitionKey="it")["SequenceNumber"]

    s1 = put(b"r1")
    time.sleep(0.2)
    s2 = put(b"r2")
    s3 = put(b"r3")

    def data_from(iterator_type, **kwargs):
        return [r["Data"] for r in h.read_shard(kinesis, name, shard, iterator_type, **kwargs)]

    assert data_from("TRIM_HORIZON") == [b"r1", b"r2", b"r3"]
    assert data_from("AT_SEQUENCE_NUMBER", StartingSequenceNumber=s2) == [b"r2", b"r3"]
    assert data_from("AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=s2) == [b"r3"]
    assert data_from("AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=s3) == []
    assert data_from("AT_SEQUENCE_NUMBER", StartingSequenceNumber=s1) == [b"r1", b"r2", b"r3"]

    latest = h.shard_iterator(kinesis, name, shard, "LATEST")
    caught_up = h.drain_iterator(kinesis, h.shard_iterator(kinesis, name, shard, "TRIM_HORIZON"))[1]
    s4 = put(b"r4")
    assert [r["Data"] for r in h.drain_iterator(kinesis, latest)[0]] == [b"r4"]
    # A NextShardIterator taken at the tip sees later records too.
    assert [r["SequenceNumber"] for r in h.drain_iterator(kinesis, caught_up)[0]] == [s4]

    records = h.read_shard(kinesis, name, shard, "TRIM_HORIZON")
    arrivals = [r["ApproximateArrivalTimestamp"] for r in records]
    assert arrivals[1] - arrivals[0] >= dt.timedelta(milliseconds=100)
    between = arrivals[0] + (arrivals[1] - arrivals[0]) / 2
    assert data_from("AT_TIMESTAMP", Timestamp=between) == [b"r2", b"r3", b"r4"]
    assert data_from("AT_TIMESTAMP", Timestamp=arrivals[0]) == [b"r1", b"r2", b"r3", b"r4"]
    # Before the stream existed: the trim horizon.
    long_ago = dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc)
    assert data_from("AT_TIMESTAMP", Timestamp=long_ago) == [b"r1", b"r2", b"r3", b"r4"]
    time.sleep(0.05)
    assert data_from("AT_TIMESTAMP", Timestamp=_now()) == []


def test_iterator_argument_errors(kinesis, new_stream):
    name = new_stream()
    shard = h.shard_id(0)
    sequence_number = kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k")[
        "SequenceNumber"
    ]
    must = (
        "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and "
        "StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. "
    )
    for iterator_type in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
        with pytest.raises(ClientError) as excinfo:
            kinesis.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType=iterator_type)
        h.assert_client_error(
            excinfo,
            "InvalidArgumentException",
            must + f"Request specified {iterator_type} and no StartingSequenceNumber.",
        )
    for iterator_type in ("TRIM_HORIZON", "LATEST"):
        with pytest.raises(ClientError) as excinfo:
            kinesis.get_shard_iterator(
                StreamName=name,
                ShardId=shard,
                ShardIteratorType=iterator_type,
                StartingSequenceNumber=sequence_number,
            )
        h.assert_client_error(
            excinfo,
            "InvalidArgumentException",
            must + f"Request specified {iterator_type} and also a StartingSequenceNumber.",
        )

    with pytest.raises(ClientError) as excinfo:
        kinesis.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="AT_TIMESTAMP")
    h.assert_client_error(
        excinfo,
        "InvalidArgumentException",
        "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current "
        "request has no timestamp parameter.",
    )
    future = _now() + dt.timedelta(hours=1)
    with pytest.raises(ClientError) as excinfo:
        kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard, ShardIteratorType="AT_TIMESTAMP", Timestamp=future
        )
    message = h.assert_client_error(excinfo, "InvalidArgumentException")
    match = re.fullmatch(
        r"The timestampInMillis parameter cannot be greater than the currentTimestampInMillis\. "
        r"timestampInMillis: ([0-9]+(?:\.[0-9]+)?), currentTimestampInMillis: ([0-9]+)",
        message,
    )
    assert match, message
    asked, current = float(match.group(1)), int(match.group(2))
    assert abs(asked - future.timestamp() * 1000) < 2, "the requested time is echoed in ms"
    assert abs(current - time.time() * 1000) < 60_000 and current < asked

    with pytest.raises(ClientError) as excinfo:
        kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard, ShardIteratorType="BOGUS_TYPE"
        )
    message = h.assert_client_error(excinfo, "ValidationException")
    assert "Value 'BOGUS_TYPE' at 'shardIteratorType' failed to satisfy constraint: " in message
    assert "Member must satisfy enum value set: [" in message


def test_unknown_shard(kinesis, new_stream):
    name = new_stream(shard_count=2)
    with pytest.raises(ClientError) as excinfo:
        kinesis.get_shard_iterator(
            StreamName=name, ShardId=h.shard_id(9), ShardIteratorType="TRIM_HORIZON"
        )
    h.assert_client_error(
        excinfo,
        "ResourceNotFoundException",
        f"Shard {h.shard_id(9)} in stream {name} under account {h.DEFAULT_ACCOUNT_ID} does not exist",
    )


def test_shard_id_arguments_read_like_aws(kinesis, new_stream):
    """AWS reads the number after the last '-' (cases kinesalite recorded against production)."""
    name = new_stream(shard_count=2)
    kinesis.put_record(
        StreamName=name, Data=b"one", PartitionKey="k", ExplicitHashKey=str(h.HASH_KEY_MAX)
    )
    for argument in ("shardId-1", "shard-1", "1", "any-name-0001"):
        records = h.read_shard(kinesis, name, argument)
        assert [r["Data"] for r in records] == [b"one"], argument
    missing = h.unique_stream_name("absent")
    for stream, argument, canonical in (
        (name, "shardId-5", h.shard_id(5)),
        (missing, "shard-3", h.shard_id(3)),
    ):
        with pytest.raises(ClientError) as excinfo:
            kinesis.get_shard_iterator(
                StreamName=stream, ShardId=argument, ShardIteratorType="LATEST"
            )
        h.assert_client_error(
            excinfo,
            "ResourceNotFoundException",
            f"Shard {canonical} in stream {stream} under account {h.DEFAULT_ACCOUNT_ID} does not "
            "exist",
        )
    for stream, argument in ((name, "ABKLFD8"), (name, "2147483648"), (missing, "2.14E4")):
        with pytest.raises(ClientError) as excinfo:
            kinesis.get_shard_iterator(
                StreamName=stream, ShardId=argument, ShardIteratorType="LATEST"
            )
        h.assert_client_error(
            excinfo,
            "ResourceNotFoundException",
            f"Could not find shard {argument} in stream {stream} under account "
            f"{h.DEFAULT_ACCOUNT_ID}.",
        )


def test_foreign_and_malformed_sequence_numbers(kinesis, new_stream):
    name = new_stream(shard_count=2)
    shards = h.list_all_shards(kinesis, name)
    on_shard_1 = kinesis.put_record(
        StreamName=name,
        Data=b"x",
        PartitionKey="k",
        ExplicitHashKey=shards[1]["HashKeyRange"]["StartingHashKey"],
    )["SequenceNumber"]
    with pytest.raises(ClientError) as excinfo:
        kinesis.get_shard_iterator(
            StreamName=name,
            ShardId=h.shard_id(0),
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=on_shard_1,
        )
    h.assert_client_error(
        excinfo,
        "InvalidArgumentException",
        f"Invalid StartingSequenceNumber. It encodes {h.shard_id(1)}, while it was used in a call "
        f"to a shard with {h.shard_id(0)}",
    )

    with pytest.raises(ClientError) as excinfo:
        kinesis.get_shard_iterator(
            StreamName=name,
            ShardId=h.shard_id(0),
            ShardIteratorType="AFTER_SEQUENCE_NUMBER",
            StartingSequenceNumber="12345",
        )
    message = h.assert_client_error(excinfo, "InvalidArgumentException")
    # Whether a short number counts as unparseable or as naming another shard is up to the
    # decoder; both answers are production texts (kinesis-api.md §5).
    assert message == (
        f"StartingSequenceNumber 12345 used in GetShardIterator on shard {h.shard_id(0)} in "
        f"stream {name} under account {h.DEFAULT_ACCOUNT_ID} is invalid."
    ) or message.startswith("Invalid StartingSequenceNumber. It encodes "), message

    # A number from another stream's shard 0 (created a second later, so its shards' creation
    # time differs).
    time.sleep(1.1)
    other = new_stream(shard_count=2)
    foreign = kinesis.put_record(
        StreamName=other,
        Data=b"y",
        PartitionKey="k",
        ExplicitHashKey=shards[0]["HashKeyRange"]["StartingHashKey"],
    )["SequenceNumber"]
    with pytest.raises(ClientError) as excinfo:
        kinesis.get_shard_iterator(
            StreamName=name,
            ShardId=h.shard_id(0),
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=foreign,
        )
    h.assert_client_error(
        excinfo,
        "InvalidArgumentException",
        f"StartingSequenceNumber {foreign} used in GetShardIterator on shard {h.shard_id(0)} in "
        f"stream {name} under account {h.DEFAULT_ACCOUNT_ID} is invalid because it did not come "
        "from this stream.",
    )


def test_get_records_limit_and_errors(kinesis, kinesis_unvalidated, new_stream):
    name = new_stream()
    empty = kinesis.get_records(ShardIterator=h.shard_iterator(kinesis, name, h.shard_id(0), "TRIM_HORIZON"))
    assert empty["Records"] == []
    assert empty["MillisBehindLatest"] == 0
    assert empty["NextShardIterator"]
    assert "ChildShards" not in empty

    sent = [f"rec-{i}".encode() for i in range(7)]
    kinesis.put_records(StreamName=name, Records=[{"Data": d, "PartitionKey": "k"} for d in sent])
    iterator = h.shard_iterator(kinesis, name, h.shard_id(0), "TRIM_HORIZON")
    sizes = []
    got = []
    for _ in range(4):
        page = kinesis.get_records(ShardIterator=iterator, Limit=3)
        sizes.append(len(page["Records"]))
        got += [r["Data"] for r in page["Records"]]
        assert page["NextShardIterator"]
        assert isinstance(page["MillisBehindLatest"], int) and page["MillisBehindLatest"] >= 0
        iterator = page["NextShardIterator"]
    assert sizes == [3, 3, 1, 0]
    assert got == sent
    assert page["MillisBehindLatest"] == 0

    with pytest.raises(ClientError) as excinfo:
        kinesis.get_records(ShardIterator="bm90LWEtcmVhbC1pdGVyYXRvcg==")
    h.assert_client_error(excinfo, "InvalidArgumentException", "Invalid ShardIterator.")

    good = h.shard_iterator(kinesis, name, h.shard_id(0), "TRIM_HORIZON")
    with pytest.raises(ClientError) as excinfo:
        kinesis_unvalidated.get_records(ShardIterator=good, Limit=10001)
    h.assert_client_error(
        excinfo,
        "ValidationException",
        "1 validation error detected: Value '10001' at 'limit' failed to satisfy constraint: "
        "Member must have value less than or equal to 10000",
    )
    with pytest.raises(ClientError) as excinfo:
        kinesis_unvalidated.get_records(ShardIterator=good, Limit=0)
    h.assert_client_error(
        excinfo,
        "ValidationException",
        "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1",
    )
    # The iterator is still good after those rejections.
    assert len(kinesis.get_records(ShardIterator=good)["Records"]) == len(sent)
