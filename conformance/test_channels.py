"""Channels with boto3: the five operations end to end, delivery into DATA/buckets and into a
real S3-compatible server (moto's server mode, started here), and no record lost across a
kill -9 during delivery."""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

import riffle_harness as h

ACCOUNT = h.DEFAULT_ACCOUNT_ID
ROLE = f"arn:aws:iam::{ACCOUNT}:role/channel-role"
# Objects after half a second instead of AWS's 300-900 s freshness.
FAST = ["--limits", "off", "--channel-max-wait-ms", "500"]
WAIT_S = 60


def error_code(err: ClientError) -> str:
    return err.response["Error"]["Code"]


def create_on_demand(kinesis, name: str) -> str:
    kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    return h.stream_arn(name)


def channel_request(stream_arn: str, name: str, bucket: str, **storage) -> dict:
    return {
        "ChannelName": name,
        "ServiceExecutionRoleARN": ROLE,
        "StreamConfigurationList": [
            {"StreamARN": stream_arn, "RecordConfiguration": {"RecordFormatType": "JSON"}}
        ],
        "S3DestinationConfiguration": {
            "StorageConfiguration": {
                "BucketARN": f"arn:aws:s3:::{bucket}",
                "ExpectedBucketOwner": storage.pop("owner", ACCOUNT),
                "CompressionType": storage.pop("compression", "GZIP"),
                **storage,
            }
        },
    }


def wait_status(kinesis, arn: str, status: str) -> dict:
    deadline = time.monotonic() + WAIT_S
    while True:
        description = kinesis.describe_channel(ChannelARN=arn)["ChannelDescription"]
        if description["ChannelStatus"] == status:
            return description
        assert time.monotonic() < deadline, f"channel stuck in {description['ChannelStatus']}"
        time.sleep(0.1)


def local_objects(data_dir: Path, bucket: str) -> dict[str, bytes]:
    root = data_dir / "buckets" / bucket
    if not root.exists():
        return {}
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


def lines_of(objects: dict[str, bytes], prefix: str) -> list[str]:
    lines = []
    for key, body in objects.items():
        if not key.startswith(prefix):
            continue
        if key.endswith(".gz"):
            body = gzip.decompress(body)
        lines.extend(body.decode().splitlines())
    return lines


@pytest.fixture
def durable(tmp_path):
    data_dir = tmp_path / "data"
    server = h.start_server(tmp_path / "work", FAST, data_dir=data_dir)
    yield server, data_dir
    server.stop()


def test_channel_lifecycle_and_local_delivery(durable):
    server, data_dir = durable
    kinesis = h.make_client(server.endpoint)
    stream_arn = create_on_demand(kinesis, "orders")
    created = kinesis.create_channel(**channel_request(stream_arn, "orders-to-s3", "lake"))
    description = created["ChannelDescription"]
    assert description["ChannelStatus"] == "CREATING"
    arn = description["ChannelARN"]
    assert arn == f"arn:aws:kinesis:{h.REGION}:{ACCOUNT}:channel/orders-to-s3"
    storage = description["S3DestinationConfiguration"]["StorageConfiguration"]
    assert storage["OutputKeyTemplate"].startswith("kinesis-channel/!{channel-name}/!{channel-id}/")
    assert description["S3DestinationConfiguration"]["DataFreshnessInSeconds"] == 300
    assert description["StreamConfigurationList"][0]["StreamARN"] == stream_arn
    wait_status(kinesis, arn, "ACTIVE")

    records = [{"Data": json.dumps({"n": n}).encode(), "PartitionKey": f"k{n}"} for n in range(50)]
    records.append({"Data": b"not json", "PartitionKey": "bad"})
    result = kinesis.put_records(StreamName="orders", Records=records)
    assert result["FailedRecordCount"] == 0

    channel_id = description["ChannelId"]
    prefix = f"kinesis-channel/orders-to-s3/{channel_id}/"
    deadline = time.monotonic() + WAIT_S
    while True:
        objects = local_objects(data_dir, "lake")
        good = lines_of(objects, prefix)
        dead = lines_of(objects, "kinesis-channel-errors/")
        if len(good) >= 50 and dead:
            break
        assert time.monotonic() < deadline, f"objects so far: {list(objects)}"
        time.sleep(0.2)
    assert sorted(json.loads(line)["n"] for line in good) == list(range(50))
    assert all(key.endswith(".json.gz") for key in objects if key.startswith(prefix))
    failure = json.loads(dead[0])
    assert failure["errorCode"] == "InvalidJSON"
    assert base64.b64decode(failure["rawData"]) == b"not json"
    assert failure["partitionKey"] == "bad"
    # Owner-only, as the rest of the data directory.
    for path in (data_dir / "buckets").rglob("*"):
        assert path.stat().st_mode & 0o077 == 0, path

    listed = kinesis.list_channels(StreamFilter=[{"StreamARN": stream_arn}])["ChannelSummaries"]
    assert [c["ChannelName"] for c in listed] == ["orders-to-s3"]
    assert listed[0]["ChannelDestinationType"] == "S3"
    assert kinesis.list_channels(StreamFilter=[{"StreamARN": h.stream_arn("other")}])[
        "ChannelSummaries"
    ] == []

    updated = kinesis.update_channel(
        ChannelARN=arn, S3DestinationConfiguration={"DataFreshnessInSeconds": 600}
    )["ChannelDescription"]
    assert updated["ChannelStatus"] == "UPDATING"
    assert updated["S3DestinationConfiguration"]["DataFreshnessInSeconds"] == 600

    with pytest.raises(ClientError) as refused:
        kinesis.delete_stream(StreamName="orders")
    assert error_code(refused.value) == "ResourceInUseException"

    kinesis.delete_channel(ChannelARN=arn)
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            status = kinesis.describe_channel(ChannelARN=arn)["ChannelDescription"]["ChannelStatus"]
            assert status == "DELETING"
        except ClientError as err:
            assert error_code(err) == "ResourceNotFoundException"
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert not (data_dir / "channels" / channel_id).exists()
    kinesis.delete_stream(StreamName="orders")


def test_channel_errors(durable):
    server, _ = durable
    kinesis = h.make_client(server.endpoint)
    stream_arn = create_on_demand(kinesis, "events")
    kinesis.create_stream(StreamName="provisioned", ShardCount=1)

    def refused(**request) -> ClientError:
        with pytest.raises(ClientError) as caught:
            kinesis.create_channel(**request)
        return caught.value

    err = refused(**channel_request(h.stream_arn("provisioned"), "p", "lake"))
    assert error_code(err) == "InvalidArgumentException"
    assert "on-demand" in err.response["Error"]["Message"]
    err = refused(**channel_request(h.stream_arn("missing"), "m", "lake"))
    assert error_code(err) == "ResourceNotFoundException"
    tables = channel_request(stream_arn, "t", "lake")
    del tables["S3DestinationConfiguration"]
    tables["S3TablesDestinationConfiguration"] = {
        "DeadLetterQueueS3Configuration": {
            "BucketARN": "arn:aws:s3:::dlq",
            "ExpectedBucketOwner": ACCOUNT,
        },
        "S3TablesConfigurationList": [
            {
                "TableBucketARN": f"arn:aws:s3tables:us-east-1:{ACCOUNT}:bucket/tables",
                "Namespace": "ns",
                "TableName": "events",
                "CompressionType": "ZSTD",
            }
        ],
    }
    err = refused(**tables)
    assert error_code(err) == "InvalidArgumentException"
    assert "S3TablesDestinationConfiguration is not supported" in err.response["Error"]["Message"]
    slow = channel_request(stream_arn, "slow", "lake")
    slow["S3DestinationConfiguration"]["DataFreshnessInSeconds"] = 10
    assert error_code(refused(**slow)) == "InvalidArgumentException"
    err = refused(**channel_request(stream_arn, "tpl", "lake", OutputKeyTemplate="x/!{bogus}"))
    assert error_code(err) == "InvalidArgumentException"

    kinesis.create_channel(**channel_request(stream_arn, "first", "lake"))
    err = refused(**channel_request(stream_arn, "first", "lake"))
    assert error_code(err) == "ResourceInUseException"
    err = refused(**channel_request(stream_arn, "second", "lake"))
    assert error_code(err) == "LimitExceededException"

    raw = h.make_client(server.endpoint, validate_params=False)
    with pytest.raises(ClientError) as caught:
        raw.create_channel(**channel_request(stream_arn, "v", "x", compression="LZ4"))
    assert error_code(caught.value) == "ValidationException"
    message = caught.value.response["Error"]["Message"]
    assert "'arn:aws:s3:::x' at 's3DestinationConfiguration.storageConfiguration.bucketARN'" in message
    assert "'LZ4' at 's3DestinationConfiguration.storageConfiguration.compressionType'" in message
    missing = f"arn:aws:kinesis:{h.REGION}:{ACCOUNT}:channel/nope"
    for call in (kinesis.describe_channel, kinesis.delete_channel):
        with pytest.raises(ClientError) as caught:
            call(ChannelARN=missing)
        assert error_code(caught.value) == "ResourceNotFoundException"


def test_channel_tags_by_arn_and_channel_count(durable):
    """TagResource and friends take channel ARNs (the model's ResourceARN pattern names
    `channel/`); DescribeLimits counts the account's channels and claims no channel quota,
    since riffle enforces none beyond one channel per stream."""
    server, _ = durable
    kinesis = h.make_client(server.endpoint)
    assert kinesis.describe_limits()["ChannelCount"] == 0
    stream_arn = create_on_demand(kinesis, "tagged-source")
    request = channel_request(stream_arn, "tagged", "lake")
    request["Tags"] = {"team": "data"}
    arn = kinesis.create_channel(**request)["ChannelDescription"]["ChannelARN"]

    def tags() -> dict[str, str]:
        listed = kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"]
        return {tag["Key"]: tag.get("Value", "") for tag in listed}

    assert tags() == {"team": "data"}
    kinesis.tag_resource(ResourceARN=arn, Tags={"team": "platform", "cost": "42"})
    assert tags() == {"team": "platform", "cost": "42"}
    kinesis.untag_resource(ResourceARN=arn, TagKeys=["team", "absent"])
    assert tags() == {"cost": "42"}
    assert kinesis.list_tags_for_resource(ResourceARN=stream_arn)["Tags"] == []
    limits = kinesis.describe_limits()
    assert limits["ChannelCount"] == 1
    assert "ChannelCountLimit" not in limits
    missing = f"arn:aws:kinesis:{h.REGION}:{ACCOUNT}:channel/nope"
    with pytest.raises(ClientError) as caught:
        kinesis.tag_resource(ResourceARN=missing, Tags={"k": "v"})
    assert error_code(caught.value) == "ResourceNotFoundException"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def moto_s3(tmp_path):
    """moto's S3 server on a free port, and a boto3 S3 client for it."""
    import boto3

    moto = Path(sys.executable).with_name("moto_server")
    if not moto.exists():
        pytest.fail("moto_server not installed: pip install -r conformance/requirements.txt")
    port = free_port()
    log = open(tmp_path / "moto.log", "wb")
    process = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    endpoint = f"http://127.0.0.1:{port}"
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=h.REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            s3.list_buckets()
            break
        except Exception:
            assert time.monotonic() < deadline, (tmp_path / "moto.log").read_text()
            time.sleep(0.2)
    yield endpoint, s3
    process.terminate()
    process.wait(timeout=10)
    log.close()


def test_delivery_to_an_s3_compatible_server(tmp_path, moto_s3, monkeypatch):
    endpoint, s3 = moto_s3
    s3.create_bucket(Bucket="archive")
    # The standard AWS chain: riffle finds these in its environment.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", h.REGION)
    server = h.start_server(
        tmp_path / "work", [*FAST, "--s3-endpoint", endpoint], data_dir=tmp_path / "data"
    )
    try:
        kinesis = h.make_client(server.endpoint)
        stream_arn = create_on_demand(kinesis, "clicks")
        request = channel_request(
            stream_arn,
            "clicks-archive",
            "archive",
            owner="123456789012",
            compression="ZSTD",
            OutputKeyTemplate="clicks/!{yyyy}/!{MM}/!{dd}/!{channel-name}!{extension}",
        )
        request["StreamConfigurationList"][0]["RecordConfiguration"]["RecordFormatType"] = "STRING"
        arn = kinesis.create_channel(**request)["ChannelDescription"]["ChannelARN"]
        wait_status(kinesis, arn, "ACTIVE")
        sent = [f"click {n}" for n in range(20)]
        for text in sent:
            kinesis.put_record(StreamName="clicks", Data=text.encode(), PartitionKey=text)
        deadline = time.monotonic() + WAIT_S
        got: list[str] = []
        while True:
            listed = s3.list_objects_v2(Bucket="archive", Prefix="clicks/").get("Contents", [])
            got = []
            for item in listed:
                assert item["Key"].endswith(".txt.zst"), item["Key"]
                body = s3.get_object(Bucket="archive", Key=item["Key"])["Body"].read()
                got.extend(zstd_decompress(body).decode().splitlines())
            if len(got) >= len(sent):
                break
            assert time.monotonic() < deadline, server.stderr_tail()
            time.sleep(0.3)
        assert sorted(got) == sorted(sent)
        assert not (tmp_path / "data" / "buckets").exists()
        # A bucket that does not exist: the channel shows FAILED with S3's reason.
        kinesis.delete_channel(ChannelARN=arn)
        wait_gone(kinesis, arn)
        request = channel_request(stream_arn, "nowhere", "no-such-bucket", owner="123456789012")
        arn = kinesis.create_channel(**request)["ChannelDescription"]["ChannelARN"]
        wait_status(kinesis, arn, "ACTIVE")
        kinesis.put_record(StreamName="clicks", Data=b"{}", PartitionKey="k")
        failed = wait_status(kinesis, arn, "FAILED")
        assert "NoSuchBucket" in failed["ChannelStatusReason"]
    finally:
        server.stop()


def wait_gone(kinesis, arn: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            kinesis.describe_channel(ChannelARN=arn)
        except ClientError as err:
            assert error_code(err) == "ResourceNotFoundException"
            return
        assert time.monotonic() < deadline
        time.sleep(0.1)


def zstd_decompress(body: bytes) -> bytes:
    """zstd frames via the `zstd` command-line tool if present, else Python's own (3.14+)."""
    try:
        from compression import zstd  # type: ignore[import-not-found]

        return zstd.decompress(body)
    except ImportError:
        return subprocess.run(
            ["zstd", "-d", "-c"], input=body, capture_output=True, check=True
        ).stdout


def test_no_record_lost_across_kill_9_during_delivery(tmp_path):
    """A producer writes while the channel delivers; riffle is killed with SIGKILL mid-way and
    restarted on the same directory: every acknowledged record is in some object."""
    data_dir = tmp_path / "data"
    # Small objects and short waits: many object writes and checkpoints around the kill.
    args = ["--limits", "off", "--channel-max-wait-ms", "100", "--channel-object-kib", "4"]
    server = h.start_server(tmp_path / "work", args, data_dir=data_dir)
    kinesis = h.make_client(server.endpoint)
    stream_arn = create_on_demand(kinesis, "ledger")
    arn = kinesis.create_channel(
        **channel_request(stream_arn, "ledger-archive", "vault", compression="NONE")
    )["ChannelDescription"]["ChannelARN"]
    wait_status(kinesis, arn, "ACTIVE")
    acknowledged: set[int] = set()
    n = 0
    killed_at = time.monotonic() + 3
    while time.monotonic() < killed_at:
        batch = list(range(n, n + 50))
        n += 50
        result = kinesis.put_records(
            StreamName="ledger",
            Records=[
                {"Data": json.dumps({"n": i, "pad": "x" * 64}).encode(), "PartitionKey": str(i)}
                for i in batch
            ],
        )
        acknowledged.update(
            i for i, entry in zip(batch, result["Records"]) if "SequenceNumber" in entry
        )
    before = len(lines_of(local_objects(data_dir, "vault"), "kinesis-channel/"))
    assert before > 0, "delivery had not started before the kill"
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    server = h.start_server(tmp_path / "work", args, data_dir=data_dir)
    try:
        kinesis = h.make_client(server.endpoint)
        deadline = time.monotonic() + WAIT_S
        while True:
            delivered = {
                json.loads(line)["n"]
                for line in lines_of(local_objects(data_dir, "vault"), "kinesis-channel/")
            }
            if acknowledged <= delivered:
                break
            assert time.monotonic() < deadline, (
                f"{len(acknowledged - delivered)} acknowledged records never delivered, e.g. "
                f"{sorted(acknowledged - delivered)[:10]}"
            )
            time.sleep(0.2)
        assert kinesis.describe_channel(ChannelARN=arn)["ChannelDescription"]["ChannelStatus"] == "ACTIVE"
    finally:
        server.stop()
