"""Every stream operation addressed by StreamARN instead of StreamName."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

import riffle_harness as h

WAIT_FAST = {"Delay": 1, "MaxAttempts": 20}


def test_stream_arn_addressing_end_to_end(kinesis):
    name = h.unique_stream_name("arn")
    kinesis.create_stream(StreamName=name, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig=WAIT_FAST)
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    assert arn == h.stream_arn(name)
    kinesis.get_waiter("stream_exists").wait(StreamARN=arn, WaiterConfig=WAIT_FAST)

    description = kinesis.describe_stream(StreamARN=arn)["StreamDescription"]
    assert description["StreamName"] == name and description["StreamARN"] == arn
    assert len(description["Shards"]) == 2
    summary = kinesis.describe_stream_summary(StreamARN=arn)["StreamDescriptionSummary"]
    assert summary["StreamName"] == name and summary["OpenShardCount"] == 2
    shards = kinesis.list_shards(StreamARN=arn)["Shards"]
    assert [s["ShardId"] for s in shards] == [h.shard_id(0), h.shard_id(1)]

    single = kinesis.put_record(
        StreamARN=arn,
        Data=b"by-arn",
        PartitionKey="k",
        ExplicitHashKey=shards[0]["HashKeyRange"]["StartingHashKey"],
    )
    assert single["ShardId"] == h.shard_id(0)
    batch = kinesis.put_records(
        StreamARN=arn,
        Records=[
            {"Data": b"batch-a", "PartitionKey": "k",
             "ExplicitHashKey": shards[0]["HashKeyRange"]["EndingHashKey"]},
            {"Data": b"batch-b", "PartitionKey": "k",
             "ExplicitHashKey": shards[1]["HashKeyRange"]["StartingHashKey"]},
        ],
    )
    assert batch.get("FailedRecordCount", 0) == 0
    assert [r["ShardId"] for r in batch["Records"]] == [h.shard_id(0), h.shard_id(1)]

    iterator = kinesis.get_shard_iterator(
        StreamARN=arn, ShardId=h.shard_id(0), ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    page = kinesis.get_records(ShardIterator=iterator, StreamARN=arn)
    assert [r["Data"] for r in page["Records"]] == [b"by-arn", b"batch-a"]
    assert page["Records"][0]["SequenceNumber"] == single["SequenceNumber"]
    # An iterator made with the ARN is usable without it, and the other way round.
    assert [r["Data"] for r in kinesis.get_records(ShardIterator=iterator)["Records"]] == [
        b"by-arn",
        b"batch-a",
    ]
    by_name = kinesis.get_shard_iterator(
        StreamName=name, ShardId=h.shard_id(1), ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    assert [r["Data"] for r in kinesis.get_records(ShardIterator=by_name, StreamARN=arn)["Records"]] == [
        b"batch-b"
    ]

    kinesis.increase_stream_retention_period(StreamARN=arn, RetentionPeriodHours=96)
    assert kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
        "RetentionPeriodHours"
    ] == 96
    kinesis.decrease_stream_retention_period(StreamARN=arn, RetentionPeriodHours=25)
    assert kinesis.describe_stream_summary(StreamARN=arn)["StreamDescriptionSummary"][
        "RetentionPeriodHours"
    ] == 25

    kinesis.add_tags_to_stream(StreamARN=arn, Tags={"a": "1", "b": "2"})
    tags = kinesis.list_tags_for_stream(StreamARN=arn)
    assert [(t["Key"], t["Value"]) for t in tags["Tags"]] == [("a", "1"), ("b", "2")]
    kinesis.remove_tags_from_stream(StreamARN=arn, TagKeys=["a"])
    assert [t["Key"] for t in kinesis.list_tags_for_stream(StreamName=name)["Tags"]] == ["b"]

    kinesis.delete_stream(StreamARN=arn)
    kinesis.get_waiter("stream_not_exists").wait(StreamARN=arn, WaiterConfig=WAIT_FAST)
    with pytest.raises(ClientError) as excinfo:
        kinesis.describe_stream_summary(StreamARN=arn)
    h.assert_client_error(excinfo, "ResourceNotFoundException", h.not_found_message(name))


def test_stream_arn_of_missing_stream(kinesis):
    name = h.unique_stream_name("arn-missing")
    arn = h.stream_arn(name)
    for call in (
        lambda: kinesis.describe_stream(StreamARN=arn),
        lambda: kinesis.put_record(StreamARN=arn, Data=b"x", PartitionKey="k"),
        lambda: kinesis.list_shards(StreamARN=arn),
        lambda: kinesis.delete_stream(StreamARN=arn),
    ):
        with pytest.raises(ClientError) as excinfo:
            call()
        h.assert_client_error(excinfo, "ResourceNotFoundException", h.not_found_message(name))
