"""The AWS CLI (v1) against riffle: a put/get round trip and the everyday stream commands."""

from __future__ import annotations

import base64

import riffle_harness as h


def test_cli_put_get_round_trip(aws, kinesis, new_stream, tmp_path):
    name = new_stream(shard_count=1)
    text = '{"total": 12.5, "note": "ünïcödé"}'
    put = aws(
        "put-record",
        "--stream-name", name,
        "--partition-key", "customer-42",
        *h.raw_text_blob_args(),
        "--data", text,
    ).json()
    assert put["ShardId"] == h.shard_id(0)
    h.assert_sequence_number(put["SequenceNumber"])

    # Binary data from a file: all 256 byte values.
    blob = tmp_path / "all-bytes.bin"
    blob.write_bytes(bytes(range(256)) * 2)
    put_binary = aws(
        "put-record",
        "--stream-name", name,
        "--partition-key", "binary",
        "--data", f"fileb://{blob}",
    ).json()
    assert int(put_binary["SequenceNumber"]) > int(put["SequenceNumber"])

    iterator = aws(
        "get-shard-iterator",
        "--stream-name", name,
        "--shard-id", h.shard_id(0),
        "--shard-iterator-type", "TRIM_HORIZON",
    ).json()["ShardIterator"]
    records = aws("get-records", "--shard-iterator", iterator).json()
    assert [r["SequenceNumber"] for r in records["Records"]] == [
        put["SequenceNumber"],
        put_binary["SequenceNumber"],
    ]
    first, second = records["Records"]
    assert base64.b64decode(first["Data"]) == text.encode("utf-8")
    assert first["PartitionKey"] == "customer-42"
    assert base64.b64decode(second["Data"]) == bytes(range(256)) * 2
    assert records["NextShardIterator"]
    assert records["MillisBehindLatest"] >= 0

    # The same records through boto3, to be sure the CLI sent what we think it sent.
    via_boto = h.read_shard(kinesis, name, h.shard_id(0))
    assert [r["Data"] for r in via_boto] == [text.encode("utf-8"), bytes(range(256)) * 2]

    # AT_SEQUENCE_NUMBER through the CLI.
    at_second = aws(
        "get-shard-iterator",
        "--stream-name", name,
        "--shard-id", h.shard_id(0),
        "--shard-iterator-type", "AT_SEQUENCE_NUMBER",
        "--starting-sequence-number", put_binary["SequenceNumber"],
    ).json()["ShardIterator"]
    later = aws("get-records", "--shard-iterator", at_second, "--limit", "5").json()
    assert [r["PartitionKey"] for r in later["Records"]] == ["binary"]


def test_cli_stream_lifecycle(aws):
    name = h.unique_stream_name("cli")
    created = aws("create-stream", "--stream-name", name, "--shard-count", "2")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == ""

    summary = aws("describe-stream-summary", "--stream-name", name).json()["StreamDescriptionSummary"]
    assert summary["StreamName"] == name
    assert summary["StreamARN"] == h.stream_arn(name)
    assert summary["StreamStatus"] == "ACTIVE"
    assert summary["OpenShardCount"] == 2
    assert summary["RetentionPeriodHours"] == h.DEFAULT_RETENTION_HOURS

    listed = aws("list-streams").json()
    assert name in listed["StreamNames"]
    assert any(s["StreamName"] == name for s in listed["StreamSummaries"])
    # The CLI pages on its own with --page-size (Limit + NextToken under the hood).
    paged = aws("list-streams", "--page-size", "1").json()
    assert paged["StreamNames"] == listed["StreamNames"]

    # (No --page-size here: the CLI would resend --stream-name with the NextToken, which AWS
    # rejects too.)
    shards = aws("list-shards", "--stream-name", name).json()["Shards"]
    assert [s["ShardId"] for s in shards] == [h.shard_id(0), h.shard_id(1)]

    deleted = aws("delete-stream", "--stream-name", name)
    assert deleted.returncode == 0, deleted.stderr
    gone = aws("describe-stream-summary", "--stream-name", name)
    assert gone.returncode != 0
    assert (
        "An error occurred (ResourceNotFoundException) when calling the DescribeStreamSummary "
        "operation" in gone.stderr
    )
    assert gone.stderr.strip().endswith(f": {h.not_found_message(name)}"), gone.stderr
    assert name not in aws("list-streams").json()["StreamNames"]


def test_cli_reports_service_errors(aws, new_stream):
    name = new_stream()
    result = aws(
        "get-shard-iterator",
        "--stream-name", name,
        "--shard-id", h.shard_id(0),
        "--shard-iterator-type", "AT_SEQUENCE_NUMBER",
    )
    assert result.returncode != 0
    assert "(InvalidArgumentException)" in result.stderr
    assert "Must either specify (1) AT_SEQUENCE_NUMBER" in result.stderr


def test_cli_reads_with_an_iterator_pasted_in_quotes(aws, new_stream):
    """`--query ShardIterator` without `--output text` prints the iterator as a JSON string, in
    double quotes; a script that passes that on gets its records from AWS, and from riffle."""
    name = new_stream(shard_count=1)
    aws(
        "put-record",
        "--stream-name", name,
        "--partition-key", "k",
        *h.raw_text_blob_args(),
        "--data", "quoted",
    ).json()
    printed = aws(
        "get-shard-iterator",
        "--stream-name", name,
        "--shard-id", h.shard_id(0),
        "--shard-iterator-type", "TRIM_HORIZON",
        "--query", "ShardIterator",
    )
    assert printed.returncode == 0, printed.stderr
    quoted = printed.stdout.strip()
    assert quoted.startswith('"') and quoted.endswith('"'), quoted
    records = aws("get-records", "--shard-iterator", quoted).json()
    assert [base64.b64decode(r["Data"]) for r in records["Records"]] == [b"quoted"]
