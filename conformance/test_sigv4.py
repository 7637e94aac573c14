"""SigV4 verification (`riffle serve --credentials FILE`) through boto3 and the AWS CLI
(kinesis-api.md §1.5, §5 "Auth").

The server here knows two keys of two accounts. A configured key works (and what it creates
belongs to its account); a wrong secret gets InvalidSignatureException, an unknown key
UnrecognizedClientException, each with AWS's text and without writing anything. Without a
credentials file, riffle refuses a non-loopback address unless `--allow-anonymous` is given.
"""

from __future__ import annotations

import base64
import subprocess

import pytest
from botocore.exceptions import ClientError

import riffle_harness as h

ALICE_KEY = "AKIDCONFALICE"
ALICE_SECRET = "alice/conformance+secret"
ALICE_ACCOUNT = "111122223333"
BOB_KEY = "AKIDCONFBOB"
BOB_SECRET = "bob-conformance-secret"
BOB_ACCOUNT = "444455556666"

INVALID_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)
UNRECOGNIZED_CLIENT = "The security token included in the request is invalid."


@pytest.fixture(scope="module")
def signed_riffle(tmp_path_factory):
    """A server that requires signatures by Alice's or Bob's key."""
    work_dir = tmp_path_factory.mktemp("riffle-sigv4")
    credentials = work_dir / "credentials"
    credentials.write_text(
        "# ACCESS_KEY_ID SECRET_ACCESS_KEY ACCOUNT_ID [PRINCIPAL_NAME]\n"
        f"{ALICE_KEY} {ALICE_SECRET} {ALICE_ACCOUNT} alice\n"
        f"{BOB_KEY} {BOB_SECRET} {BOB_ACCOUNT}\n"
    )
    credentials.chmod(0o600)
    server = h.start_server(work_dir, ["--limits", "off", "--credentials", str(credentials)])
    yield server
    code = server.stop()
    assert code == 0, f"riffle did not exit cleanly (exit {code}); stderr:\n{server.stderr_tail()}"


def client_of(server, key: str, secret: str):
    return h.make_client(server.endpoint, access_key_id=key, secret_access_key=secret)


def stream_names(client) -> list[str]:
    return client.list_streams()["StreamNames"]


# ---------------------------------------------------------------------------------------------
# boto3


def test_boto3_configured_keys_work_in_their_own_account(signed_riffle):
    alice = client_of(signed_riffle, ALICE_KEY, ALICE_SECRET)
    bob = client_of(signed_riffle, BOB_KEY, BOB_SECRET)
    name = h.unique_stream_name("sigv4")
    alice.create_stream(StreamName=name, ShardCount=1)
    alice.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    summary = alice.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["StreamARN"] == h.stream_arn(name, ALICE_ACCOUNT)

    put = alice.put_record(StreamName=name, PartitionKey="signed", Data=b"by alice")
    h.assert_sequence_number(put["SequenceNumber"])
    records = h.read_shard(alice, name, h.shard_id(0))
    assert [(r["PartitionKey"], r["Data"]) for r in records] == [("signed", b"by alice")]

    # Bob's account does not see Alice's stream by name, and may not use it by ARN: no
    # resource policy of Alice's lets him in.
    assert name not in stream_names(bob)
    with pytest.raises(ClientError) as excinfo:
        bob.describe_stream_summary(StreamName=name)
    h.assert_client_error(excinfo, "ResourceNotFoundException", h.not_found_message(name, BOB_ACCOUNT))
    with pytest.raises(ClientError) as excinfo:
        bob.put_record(StreamARN=summary["StreamARN"], PartitionKey="bob", Data=b"x")
    h.assert_client_error(excinfo, "AccessDeniedException")
    assert len(h.read_shard(alice, name, h.shard_id(0))) == 1

    alice.delete_stream(StreamName=name)


def test_boto3_subscribe_to_shard_is_signed_like_any_call(signed_riffle):
    alice = client_of(signed_riffle, ALICE_KEY, ALICE_SECRET)
    name = h.unique_stream_name("sigv4-efo")
    alice.create_stream(StreamName=name, ShardCount=1)
    alice.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    arn = h.stream_arn(name, ALICE_ACCOUNT)
    consumer = alice.register_stream_consumer(StreamARN=arn, ConsumerName="reader")["Consumer"]
    alice.put_record(StreamName=name, PartitionKey="pushed", Data=b"event")

    wrong = client_of(signed_riffle, ALICE_KEY, "not-alices-secret")
    with pytest.raises(ClientError) as excinfo:
        wrong.subscribe_to_shard(
            ConsumerARN=consumer["ConsumerARN"],
            ShardId=h.shard_id(0),
            StartingPosition={"Type": "TRIM_HORIZON"},
        )
    h.assert_client_error(excinfo, "InvalidSignatureException", INVALID_SIGNATURE)

    response = alice.subscribe_to_shard(
        ConsumerARN=consumer["ConsumerARN"],
        ShardId=h.shard_id(0),
        StartingPosition={"Type": "TRIM_HORIZON"},
    )
    events = iter(response["EventStream"])
    try:
        event = next(events)["SubscribeToShardEvent"]
        assert [(r["PartitionKey"], r["Data"]) for r in event["Records"]] == [("pushed", b"event")]
    finally:
        response["EventStream"].close()
    alice.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


def test_boto3_wrong_secret_is_an_invalid_signature_and_writes_nothing(signed_riffle):
    alice = client_of(signed_riffle, ALICE_KEY, ALICE_SECRET)
    wrong = client_of(signed_riffle, ALICE_KEY, "not-alices-secret")
    name = h.unique_stream_name("sigv4-forged")

    with pytest.raises(ClientError) as excinfo:
        wrong.create_stream(StreamName=name, ShardCount=1)
    h.assert_client_error(excinfo, "InvalidSignatureException", INVALID_SIGNATURE)
    assert name not in stream_names(alice)

    alice.create_stream(StreamName=name, ShardCount=1)
    alice.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    with pytest.raises(ClientError) as excinfo:
        wrong.put_record(StreamName=name, PartitionKey="forged", Data=b"x")
    h.assert_client_error(excinfo, "InvalidSignatureException", INVALID_SIGNATURE)
    assert h.read_shard(alice, name, h.shard_id(0)) == []
    alice.delete_stream(StreamName=name)


def test_boto3_unknown_key_is_an_unrecognized_client(signed_riffle):
    alice = client_of(signed_riffle, ALICE_KEY, ALICE_SECRET)
    name = h.unique_stream_name("sigv4-unknown")
    # A 12-digit key id names an account only without a credentials file.
    for key in ("AKIDNOBODY", ALICE_ACCOUNT):
        unknown = client_of(signed_riffle, key, ALICE_SECRET)
        with pytest.raises(ClientError) as excinfo:
            unknown.create_stream(StreamName=name, ShardCount=1)
        h.assert_client_error(excinfo, "UnrecognizedClientException", UNRECOGNIZED_CLIENT)
    assert name not in stream_names(alice)


# ---------------------------------------------------------------------------------------------
# AWS CLI


def cli(server, tmp_path, key: str, secret: str, *args: str) -> h.CliResult:
    return h.run_aws(server.endpoint, tmp_path, *args, access_key_id=key, secret_access_key=secret)


def test_cli_configured_key_works(signed_riffle, tmp_path):
    name = h.unique_stream_name("sigv4-cli")
    created = cli(signed_riffle, tmp_path, BOB_KEY, BOB_SECRET, "create-stream", "--stream-name", name, "--shard-count", "1")
    assert created.returncode == 0, created.stderr
    summary = cli(
        signed_riffle, tmp_path, BOB_KEY, BOB_SECRET, "describe-stream-summary", "--stream-name", name
    ).json()["StreamDescriptionSummary"]
    assert summary["StreamARN"] == h.stream_arn(name, BOB_ACCOUNT)
    put = cli(
        signed_riffle, tmp_path, BOB_KEY, BOB_SECRET,
        "put-record", "--stream-name", name, "--partition-key", "cli",
        *h.raw_text_blob_args(), "--data", "from the cli",
    ).json()
    h.assert_sequence_number(put["SequenceNumber"])
    iterator = cli(
        signed_riffle, tmp_path, BOB_KEY, BOB_SECRET,
        "get-shard-iterator", "--stream-name", name, "--shard-id", h.shard_id(0),
        "--shard-iterator-type", "TRIM_HORIZON",
    ).json()["ShardIterator"]
    records = cli(signed_riffle, tmp_path, BOB_KEY, BOB_SECRET, "get-records", "--shard-iterator", iterator).json()
    assert [base64.b64decode(r["Data"]) for r in records["Records"]] == [b"from the cli"]
    deleted = cli(signed_riffle, tmp_path, BOB_KEY, BOB_SECRET, "delete-stream", "--stream-name", name)
    assert deleted.returncode == 0, deleted.stderr


def test_cli_wrong_secret_is_an_invalid_signature(signed_riffle, tmp_path):
    name = h.unique_stream_name("sigv4-cli-forged")
    result = cli(signed_riffle, tmp_path, BOB_KEY, "wrong", "create-stream", "--stream-name", name, "--shard-count", "1")
    assert result.returncode != 0
    assert "(InvalidSignatureException)" in result.stderr, result.stderr
    assert result.stderr.strip().endswith(f": {INVALID_SIGNATURE}"), result.stderr
    assert name not in stream_names(client_of(signed_riffle, BOB_KEY, BOB_SECRET))


def test_cli_unknown_key_is_an_unrecognized_client(signed_riffle, tmp_path):
    result = cli(signed_riffle, tmp_path, "AKIDNOBODY", BOB_SECRET, "list-streams")
    assert result.returncode != 0
    assert "(UnrecognizedClientException)" in result.stderr, result.stderr
    assert result.stderr.strip().endswith(f": {UNRECOGNIZED_CLIENT}"), result.stderr


# ---------------------------------------------------------------------------------------------
# Start-up


def test_anonymous_mode_refuses_a_non_loopback_address(tmp_path):
    done = subprocess.run(
        [str(h.riffle_binary()), "serve", "--in-memory", "--listen", "0.0.0.0:0"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=h.CLI_TIMEOUT_SECONDS,
    )
    assert done.returncode != 0
    assert "is not a loopback address" in done.stderr, done.stderr
    assert "--credentials" in done.stderr and "--allow-anonymous" in done.stderr, done.stderr
    assert "riffle listening" not in done.stdout
