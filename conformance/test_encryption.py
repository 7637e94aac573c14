"""Encryption at rest through boto3: StartStreamEncryption / StopStreamEncryption with a key from
`--kms-keys` and with the AWS-managed `alias/aws/kinesis`, the EncryptionType puts and reads
report, KMSNotFoundException / KMSDisabledException, and no plaintext of an encrypted record in
the data directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

import riffle_harness as h

KEY_ID = "5d2c1b0a-9e8f-4a7b-8c6d-5e4f3a2b1c0d"
KEY_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
DISABLED_KEY_ID = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"
DISABLED_KEY_HEX = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
KEY_ARN = f"arn:aws:kms:{h.REGION}:{h.DEFAULT_ACCOUNT_ID}:key/{KEY_ID}"

SECRET = b"CONFORMANCE-SECRET-WHILE-ENCRYPTED-91be"
PLAIN = b"CONFORMANCE-PLAINTEXT-UNENCRYPTED-44d0"


@pytest.fixture(scope="module")
def sse_server(tmp_path_factory):
    """A durable server of this module's own, with a key file: (server, directory holding its
    data). Under `RIFFLE_CONFORMANCE_CLUSTER=N`, a cluster of N nodes sharing the key file."""
    work = tmp_path_factory.mktemp("riffle-sse")
    keys = work / "kms-keys"
    keys.write_text(
        "# conformance keys\n"
        f"{KEY_ID} enabled {KEY_HEX} alias/conformance\n"
        f"{DISABLED_KEY_ID} disabled {DISABLED_KEY_HEX} alias/conformance-off\n"
    )
    os.chmod(keys, 0o600)
    args = ["--limits", "off", "--kms-keys", str(keys)]
    if h.cluster_size() > 0:
        data_dir = work / "cluster"
        server = h.start_cluster(data_dir, args, h.cluster_size())
    else:
        data_dir = work / "data"
        server = h.start_server(work, args, data_dir=data_dir)
    yield server, data_dir
    server.stop()


@pytest.fixture
def sse(sse_server):
    server, data_dir = sse_server
    client = h.make_client(server.endpoint)
    name = h.unique_stream_name("sse")
    client.create_stream(StreamName=name, ShardCount=1)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    yield client, name, data_dir
    client.delete_stream(StreamName=name)


@pytest.fixture
def reader(sse_server):
    """A client of the last node: on a cluster, reads travel through another node than the
    writes (and DescribeStream answers from its catalogue replica)."""
    server, _ = sse_server
    nodes = getattr(server, "nodes", [server])
    return h.make_client(nodes[-1].endpoint)


def summary_on(client, name: str, field: str, expected):
    """`field` of the stream's summary once it is `expected`: a cluster node applies the
    catalogue a moment after the node that took the change."""
    import time

    deadline = time.monotonic() + 10
    while True:
        seen = summary(client, name).get(field)
        if seen == expected or time.monotonic() > deadline:
            return seen
        time.sleep(0.1)


def data_dir_contains(data_dir: Path, needle: bytes) -> bool:
    return any(path.is_file() and needle in path.read_bytes() for path in data_dir.rglob("*"))


def summary(client, name: str) -> dict:
    return client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]


def test_start_and_stop_round_trip(sse, reader):
    client, name, data_dir = sse
    assert summary(client, name)["EncryptionType"] == "NONE"
    assert "KeyId" not in summary(client, name)
    before = client.put_record(StreamName=name, Data=PLAIN + b" before", PartitionKey="k")
    assert before["EncryptionType"] == "NONE"

    client.start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId="alias/conformance")
    described = summary(client, name)
    assert described["EncryptionType"] == "KMS"
    assert described["KeyId"] == "alias/conformance"
    stream = client.describe_stream(StreamName=name)["StreamDescription"]
    assert (stream["EncryptionType"], stream["KeyId"]) == ("KMS", "alias/conformance")

    sealed = client.put_record(StreamName=name, Data=SECRET + b" one", PartitionKey="k")
    assert sealed["EncryptionType"] == "KMS"
    batch = client.put_records(
        StreamName=name,
        Records=[{"Data": SECRET + b" batch %d" % i, "PartitionKey": f"k{i}"} for i in range(5)],
    )
    assert batch["FailedRecordCount"] == 0
    assert batch["EncryptionType"] == "KMS"
    assert not data_dir_contains(data_dir, SECRET), "plaintext of an encrypted record on disk"

    # Stop with the key's ARN: another form of the key in use.
    client.stop_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId=KEY_ARN)
    assert summary(client, name)["EncryptionType"] == "NONE"
    after = client.put_record(StreamName=name, Data=PLAIN + b" after", PartitionKey="k")
    assert after["EncryptionType"] == "NONE"
    assert data_dir_contains(data_dir, PLAIN + b" after")

    assert summary_on(reader, name, "EncryptionType", "NONE") == "NONE"
    records = h.read_shard(reader, name, h.shard_id(0))
    # As on AWS, only records stored encrypted carry an EncryptionType.
    assert [(r["Data"], r.get("EncryptionType")) for r in records] == [
        (PLAIN + b" before", None),
        (SECRET + b" one", "KMS"),
        *[(SECRET + b" batch %d" % i, "KMS") for i in range(5)],
        (PLAIN + b" after", None),
    ]


def test_the_aws_managed_key(sse, reader):
    client, name, _ = sse
    client.start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    assert summary(client, name)["KeyId"] == "alias/aws/kinesis"
    assert summary_on(reader, name, "KeyId", "alias/aws/kinesis") == "alias/aws/kinesis"
    client.put_record(StreamName=name, Data=b"managed", PartitionKey="k")
    [record] = h.read_shard(reader, name, h.shard_id(0))
    assert (record["Data"], record["EncryptionType"]) == (b"managed", "KMS")
    client.stop_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId="alias/aws/kinesis")


def test_unknown_and_disabled_keys(sse):
    client, name, _ = sse
    with pytest.raises(client.exceptions.KMSNotFoundException) as excinfo:
        client.start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId="alias/nobody")
    h.assert_client_error(
        excinfo,
        "KMSNotFoundException",
        "KMS key alias/nobody does not exist: no key of the server's key file (--kms-keys) has "
        "this key id, key ARN, alias or alias ARN.",
    )
    with pytest.raises(client.exceptions.KMSDisabledException) as excinfo:
        client.start_stream_encryption(
            StreamName=name, EncryptionType="KMS", KeyId="alias/conformance-off"
        )
    h.assert_client_error(
        excinfo,
        "KMSDisabledException",
        f"arn:aws:kms:{h.REGION}:{h.DEFAULT_ACCOUNT_ID}:key/{DISABLED_KEY_ID} is disabled.",
    )
    with pytest.raises(ClientError) as excinfo:
        client.start_stream_encryption(StreamName=name, EncryptionType="NONE", KeyId=KEY_ID)
    h.assert_client_error(excinfo, "InvalidArgumentException")
    assert summary(client, name)["EncryptionType"] == "NONE"
