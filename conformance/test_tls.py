"""boto3 and the AWS CLI over TLS: `riffle dev-cert`, then `riffle serve --tls-cert --tls-key`,
trusted through `verify=ca.pem`, `--ca-bundle` and `AWS_CA_BUNDLE`, and refused without them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import SSLError

import riffle_harness as h


@pytest.fixture(scope="module")
def dev_cert(tmp_path_factory) -> Path:
    """The directory `riffle dev-cert --out` filled."""
    out = tmp_path_factory.mktemp("tls") / "certs"
    done = subprocess.run(
        [str(h.riffle_binary()), "dev-cert", "--out", str(out)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=h.CLI_TIMEOUT_SECONDS,
    )
    assert done.returncode == 0, f"riffle dev-cert failed: {done.stderr}"
    for name in ("ca.pem", "ca-key.pem", "cert.pem", "key.pem"):
        assert (out / name).is_file(), f"{name} missing; dev-cert said:\n{done.stdout}"
    return out


@pytest.fixture(scope="module")
def tls_riffle(dev_cert, tmp_path_factory):
    server = h.start_server(
        tmp_path_factory.mktemp("riffle-tls"),
        [
            "--limits", "off",
            "--tls-cert", str(dev_cert / "cert.pem"),
            "--tls-key", str(dev_cert / "key.pem"),
        ],
    )
    yield server
    code = server.stop()
    assert code == 0, f"riffle did not exit cleanly (exit {code}); stderr:\n{server.stderr_tail()}"


def https_endpoint(server, host: str = "127.0.0.1") -> str:
    return f"https://{host}:{server.port}"


def tls_client(endpoint: str, verify):
    """A boto3 client like the harness's (retries off), with `verify` as given."""
    return boto3.session.Session().client(
        "kinesis",
        endpoint_url=endpoint,
        region_name=h.REGION,
        aws_access_key_id=h.DUMMY_ACCESS_KEY_ID,
        aws_secret_access_key=h.DUMMY_SECRET_ACCESS_KEY,
        verify=verify,
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=10,
            read_timeout=h.CLIENT_READ_TIMEOUT_SECONDS,
        ),
    )


def test_boto3_round_trip_over_tls_with_the_dev_ca(tls_riffle, dev_cert):
    # `localhost` checks the certificate's DNS name; the CLI test below uses its IP address.
    kinesis = tls_client(https_endpoint(tls_riffle, "localhost"), str(dev_cert / "ca.pem"))
    name = h.unique_stream_name("tls")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20}
    )
    payloads = [b"over TLS", bytes(range(256)) * 1024]
    put = [
        kinesis.put_record(StreamName=name, PartitionKey="key", Data=data)["SequenceNumber"]
        for data in payloads
    ]
    records = h.read_shard(kinesis, name, h.shard_id(0))
    assert [r["Data"] for r in records] == payloads
    assert [r["SequenceNumber"] for r in records] == put
    kinesis.delete_stream(StreamName=name)


def test_boto3_without_the_ca_is_refused(tls_riffle):
    # botocore's default bundle (certifi) does not hold the dev CA.
    kinesis = tls_client(https_endpoint(tls_riffle), True)
    with pytest.raises(SSLError):
        kinesis.list_streams()
    assert tls_riffle.is_running()


def run_cli(server, tmp_path: Path, *args: str, ca_bundle: Path | None = None,
            ca_bundle_env: Path | None = None) -> h.CliResult:
    command = [*h.aws_cli_command(), "--endpoint-url", https_endpoint(server), "--output", "json"]
    if ca_bundle is not None:
        command += ["--ca-bundle", str(ca_bundle)]
    command += ["kinesis", *args]
    env = h.aws_cli_env(tmp_path)
    if ca_bundle_env is not None:
        env["AWS_CA_BUNDLE"] = str(ca_bundle_env)
    done = subprocess.run(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=h.CLI_TIMEOUT_SECONDS,
    )
    return h.CliResult(done.returncode, done.stdout, done.stderr)


def test_cli_round_trip_over_tls_with_ca_bundle(tls_riffle, dev_cert, tmp_path):
    ca = dev_cert / "ca.pem"
    name = h.unique_stream_name("tls-cli")
    run_cli(tls_riffle, tmp_path, "create-stream", "--stream-name", name, "--shard-count", "1",
            ca_bundle=ca).json()
    put = run_cli(
        tls_riffle, tmp_path,
        "put-record", "--stream-name", name, "--partition-key", "k",
        *h.raw_text_blob_args(), "--data", "hello over TLS",
        ca_bundle=ca,
    ).json()
    h.assert_sequence_number(put["SequenceNumber"])
    # The same server through AWS_CA_BUNDLE instead of the flag.
    iterator = run_cli(
        tls_riffle, tmp_path,
        "get-shard-iterator", "--stream-name", name, "--shard-id", h.shard_id(0),
        "--shard-iterator-type", "TRIM_HORIZON",
        ca_bundle_env=ca,
    ).json()["ShardIterator"]
    records = run_cli(tls_riffle, tmp_path, "get-records", "--shard-iterator", iterator,
                      ca_bundle=ca).json()["Records"]
    assert [r["SequenceNumber"] for r in records] == [put["SequenceNumber"]]

    refused = run_cli(tls_riffle, tmp_path, "list-streams")
    assert refused.returncode != 0, f"the CLI must refuse an untrusted certificate: {refused.stdout}"
    assert "SSL" in refused.stderr or "certificate" in refused.stderr, refused.stderr
    assert tls_riffle.is_running()
