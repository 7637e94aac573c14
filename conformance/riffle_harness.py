"""Shared machinery for the boto3 / AWS CLI conformance suite.

Starts `riffle serve --in-memory` on a free port, builds boto3 clients and AWS CLI command lines
pointed at it, and carries the Kinesis facts the tests check against (hash-range layout,
sequence-number shape, the account and region riffle uses by default).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RIFFLE_BIN = "target/debug/riffle"

REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "000000000000"
# Not 12 digits, so riffle files everything under DEFAULT_ACCOUNT_ID.
DUMMY_ACCESS_KEY_ID = "conformance"
DUMMY_SECRET_ACCESS_KEY = "conformance-secret"

HASH_KEY_SPACE = 2**128
HASH_KEY_MAX = HASH_KEY_SPACE - 1
SEQUENCE_NUMBER_DIGITS = 56
SEQUENCE_NUMBER_RE = re.compile(r"^[1-9][0-9]{%d}$" % (SEQUENCE_NUMBER_DIGITS - 1))
SHARD_ID_RE = re.compile(r"^shardId-[0-9]{12}$")
ON_DEMAND_INITIAL_SHARDS = 4
DEFAULT_RETENTION_HOURS = 24
MAX_RETENTION_HOURS = 8760
RECORD_BYTES_MAX = 1024 * 1024  # data + partition key, the default per-stream limit
PUT_RECORDS_ENTRIES_MAX = 500
PARTITION_KEY_CHARS_MAX = 256

LISTEN_LINE_RE = re.compile(r"^riffle listening on (127\.0\.0\.1):([0-9]+)$")
SERVER_START_TIMEOUT_SECONDS = 60.0
SERVER_STOP_TIMEOUT_SECONDS = 20.0
CLIENT_READ_TIMEOUT_SECONDS = 60
CLI_TIMEOUT_SECONDS = 120
# Bounds for read loops, so a server that never reports "caught up" fails a test instead of
# hanging it.
READ_CALLS_MAX = 2000
THROTTLE_BACKOFF_SECONDS = 0.25
THROTTLE_RETRIES_MAX = 40


def riffle_binary() -> Path:
    """The server binary: `RIFFLE_BIN` (default target/debug/riffle), relative to the
    working directory or, failing that, to the repository root."""
    raw = Path(os.environ.get("RIFFLE_BIN", DEFAULT_RIFFLE_BIN))
    if raw.is_absolute():
        return raw
    from_cwd = Path.cwd() / raw
    if from_cwd.exists():
        return from_cwd
    return REPO_ROOT / raw


@dataclass
class RiffleServer:
    """One running `riffle serve --in-memory` process."""

    process: subprocess.Popen
    host: str
    port: int
    stderr_path: Path
    stdout_rest: list[str] = field(default_factory=list)
    stdout_reader: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stderr_tail(self, chars: int = 4000) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError as err:
            return f"<stderr unreadable: {err}>"
        return text[-chars:]

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Signal the server and wait for it; returns its exit code, or None if it had to be
        killed because it ignored the signal."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=SERVER_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                self._join_stdout()
                return None
        self._join_stdout()
        return self.process.returncode

    def _join_stdout(self) -> None:
        if self.stdout_reader is not None:
            self.stdout_reader.join(timeout=5)


def _drain(stream, sink: list[str]) -> None:
    for line in stream:
        sink.append(line)


def start_server(
    work_dir: Path, extra_args: Iterable[str] = (), data_dir: Path | None = None
) -> RiffleServer:
    """Start riffle on a free loopback port and wait for its `riffle listening on` line.

    With `data_dir` the server is durable on that directory instead of `--in-memory`; start it
    again on the same directory to test what survives a restart."""
    binary = riffle_binary()
    if not binary.exists():
        pytest.fail(
            f"riffle binary not found at {binary}; build it with `cargo build` or set RIFFLE_BIN",
            pytrace=False,
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = work_dir / f"riffle-{uuid.uuid4().hex[:8]}.stderr.log"
    stderr_file = open(stderr_path, "wb")
    try:
        process = subprocess.Popen(
            [
                str(binary),
                "serve",
                *(["--data-dir", str(data_dir)] if data_dir is not None else ["--in-memory"]),
                "--listen",
                "127.0.0.1:0",
                *extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            cwd=work_dir,
            text=True,
        )
    finally:
        # The child holds its own descriptor.
        stderr_file.close()

    first_line: queue.Queue = queue.Queue()

    def read_first_line() -> None:
        first_line.put(process.stdout.readline())

    reader = threading.Thread(target=read_first_line, daemon=True)
    reader.start()
    try:
        line = first_line.get(timeout=SERVER_START_TIMEOUT_SECONDS)
    except queue.Empty:
        process.kill()
        process.wait()
        pytest.fail(
            f"riffle printed no listening line within {SERVER_START_TIMEOUT_SECONDS} s; "
            f"stderr:\n{stderr_path.read_text(errors='replace')[-4000:]}",
            pytrace=False,
        )
    match = LISTEN_LINE_RE.match(line.rstrip("\r\n"))
    if match is None:
        process.kill()
        process.wait()
        pytest.fail(
            f"riffle's first stdout line was {line!r}, expected 'riffle listening on "
            f"127.0.0.1:PORT'; stderr:\n{stderr_path.read_text(errors='replace')[-4000:]}",
            pytrace=False,
        )
    server = RiffleServer(process, match.group(1), int(match.group(2)), stderr_path)
    # Keep draining stdout so a chatty server can never block on a full pipe.
    server.stdout_reader = threading.Thread(
        target=_drain, args=(process.stdout, server.stdout_rest), daemon=True
    )
    server.stdout_reader.start()
    return server


def make_client(
    endpoint: str,
    access_key_id: str = DUMMY_ACCESS_KEY_ID,
    validate_params: bool = True,
    secret_access_key: str = DUMMY_SECRET_ACCESS_KEY,
):
    """A boto3 Kinesis client aimed at riffle, with retries off so every error surfaces."""
    config = Config(
        region_name=REGION,
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=CLIENT_READ_TIMEOUT_SECONDS,
        parameter_validation=validate_params,
    )
    return boto3.session.Session().client(
        "kinesis",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=config,
    )


def unique_stream_name(prefix: str = "conf") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def stream_arn(name: str, account_id: str = DEFAULT_ACCOUNT_ID) -> str:
    return f"arn:aws:kinesis:{REGION}:{account_id}:stream/{name}"


def not_found_message(name: str, account_id: str = DEFAULT_ACCOUNT_ID) -> str:
    return f"Stream {name} under account {account_id} not found."


def expected_hash_ranges(shard_count: int) -> list[tuple[int, int]]:
    """kinesis-api.md §3.1: width = floor(2^128 / N); the last shard ends at 2^128 - 1."""
    width = HASH_KEY_SPACE // shard_count
    ranges = [(i * width, (i + 1) * width - 1) for i in range(shard_count)]
    ranges[-1] = (ranges[-1][0], HASH_KEY_MAX)
    return ranges


def shard_id(ordinal: int) -> str:
    return f"shardId-{ordinal:012d}"


def partition_key_hash(partition_key: str) -> int:
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big")


def shard_for_hash(shards: list[dict], hash_key: int) -> str:
    """The open shard whose inclusive hash range holds `hash_key`."""
    owners = [
        s["ShardId"]
        for s in shards
        if "EndingSequenceNumber" not in s["SequenceNumberRange"]
        and int(s["HashKeyRange"]["StartingHashKey"])
        <= hash_key
        <= int(s["HashKeyRange"]["EndingHashKey"])
    ]
    assert len(owners) == 1, f"hash key {hash_key} is owned by {owners}"
    return owners[0]


def assert_sequence_number(value: Any) -> int:
    assert isinstance(value, str), f"sequence number {value!r} is not a string"
    assert SEQUENCE_NUMBER_RE.match(value), f"sequence number {value!r} is not 56 digits"
    return int(value)


def error_of(excinfo) -> tuple[str, str]:
    """(code, message) of a botocore ClientError caught by pytest.raises."""
    err = excinfo.value
    assert isinstance(err, ClientError), f"expected a ClientError, got {err!r}"
    return err.response["Error"]["Code"], err.response["Error"].get("Message", "")


def assert_client_error(excinfo, code: str, message: str | None = None, status: int = 400):
    got_code, got_message = error_of(excinfo)
    assert got_code == code, f"error code {got_code!r} (message {got_message!r}), expected {code!r}"
    got_status = excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert got_status == status, f"HTTP status {got_status} for {code}, expected {status}"
    if message is not None:
        assert got_message == message, f"{code} message\n  got:      {got_message!r}\n  expected: {message!r}"
    return got_message


def call_with_throttle_backoff(fn, **kwargs):
    """Call a data-plane operation, backing off on ProvisionedThroughputExceededException the
    way a real consumer does (per-shard read limits may be enforced)."""
    for _ in range(THROTTLE_RETRIES_MAX):
        try:
            return fn(**kwargs)
        except ClientError as err:
            if err.response["Error"]["Code"] != "ProvisionedThroughputExceededException":
                raise
            time.sleep(THROTTLE_BACKOFF_SECONDS)
    return fn(**kwargs)


def shard_iterator(client, stream: str, shard: str, iterator_type: str, **kwargs) -> str:
    response = call_with_throttle_backoff(
        client.get_shard_iterator,
        StreamName=stream,
        ShardId=shard,
        ShardIteratorType=iterator_type,
        **kwargs,
    )
    iterator = response["ShardIterator"]
    assert isinstance(iterator, str) and 0 < len(iterator) <= 512
    return iterator


def drain_iterator(client, iterator: str, limit: int | None = None) -> tuple[list[dict], str]:
    """Follow NextShardIterator until a call returns no records while caught up (open shard);
    returns the records and the last iterator."""
    records: list[dict] = []
    for _ in range(READ_CALLS_MAX):
        kwargs = {"ShardIterator": iterator}
        if limit is not None:
            kwargs["Limit"] = limit
        page = call_with_throttle_backoff(client.get_records, **kwargs)
        records.extend(page["Records"])
        assert page.get("NextShardIterator"), "an open shard must always hand out a next iterator"
        iterator = page["NextShardIterator"]
        if not page["Records"] and page["MillisBehindLatest"] == 0:
            return records, iterator
    raise AssertionError(f"shard not drained after {READ_CALLS_MAX} GetRecords calls")


def read_shard(client, stream: str, shard: str, iterator_type: str = "TRIM_HORIZON", **kwargs):
    records, _ = drain_iterator(client, shard_iterator(client, stream, shard, iterator_type, **kwargs))
    return records


def list_all_shards(client, stream: str) -> list[dict]:
    return client.list_shards(StreamName=stream)["Shards"]


# ---------------------------------------------------------------------------------------------
# AWS CLI (v1, from the same virtualenv as this interpreter)


def aws_cli_command() -> list[str]:
    beside = Path(sys.executable).parent / "aws"
    if beside.exists():
        return [sys.executable, str(beside)]
    return [sys.executable, "-m", "awscli"]


_cli_major_version: int | None = None


def aws_cli_major_version() -> int:
    """1 for the PyPI `awscli`, 2 for AWS CLI v2 (whichever runs as the venv's `aws`)."""
    global _cli_major_version
    if _cli_major_version is None:
        done = subprocess.run(
            [*aws_cli_command(), "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_SECONDS,
        )
        match = re.match(r"aws-cli/([0-9]+)\.", (done.stdout + done.stderr).strip())
        assert match, f"unexpected `aws --version` output: {done.stdout!r} {done.stderr!r}"
        _cli_major_version = int(match.group(1))
    return _cli_major_version


def raw_text_blob_args() -> list[str]:
    """CLI options that make `--data TEXT` send TEXT's bytes as they are.

    AWS CLI v2 reads blob arguments as base64 unless told `--cli-binary-format
    raw-in-base64-out`; CLI v1 (what PyPI's awscli is) always sends the text raw and rejects that
    option as unknown."""
    if aws_cli_major_version() >= 2:
        return ["--cli-binary-format", "raw-in-base64-out"]
    return []


def aws_cli_env(
    tmp_dir: Path,
    access_key_id: str = DUMMY_ACCESS_KEY_ID,
    secret_access_key: str = DUMMY_SECRET_ACCESS_KEY,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": access_key_id,
            "AWS_SECRET_ACCESS_KEY": secret_access_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            # Keep any ~/.aws of the machine out of the picture.
            "AWS_CONFIG_FILE": str(tmp_dir / "aws-config-none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_dir / "aws-credentials-none"),
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_RETRY_MODE": "standard",
            "AWS_PAGER": "",
        }
    )
    return env


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.returncode == 0, f"aws exited {self.returncode}: {self.stderr}"
        return json.loads(self.stdout) if self.stdout.strip() else None


def run_aws(
    endpoint: str,
    tmp_dir: Path,
    *args: str,
    access_key_id: str = DUMMY_ACCESS_KEY_ID,
    secret_access_key: str = DUMMY_SECRET_ACCESS_KEY,
) -> CliResult:
    command = [
        *aws_cli_command(),
        "--endpoint-url",
        endpoint,
        "--output",
        "json",
        "--cli-read-timeout",
        str(CLIENT_READ_TIMEOUT_SECONDS),
        "kinesis",
        *args,
    ]
    done = subprocess.run(
        command,
        env=aws_cli_env(tmp_dir, access_key_id, secret_access_key),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RiffleCluster:
    """Several `riffle serve --cluster-listen` processes forming one cluster. It looks like one
    server to the fixtures: `endpoint` is the first node's, and the suite's calls reach the
    other nodes through it (writes go to each shard's leader, wherever it is)."""

    nodes: list[RiffleServer]

    @property
    def process(self) -> subprocess.Popen:
        return self.nodes[0].process

    @property
    def host(self) -> str:
        return self.nodes[0].host

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def endpoint(self) -> str:
        return self.nodes[0].endpoint

    def is_running(self) -> bool:
        return all(node.is_running() for node in self.nodes)

    def stderr_tail(self, chars: int = 4000) -> str:
        return "\n".join(
            f"--- node {i} ---\n{node.stderr_tail(chars // len(self.nodes))}"
            for i, node in enumerate(self.nodes)
        )

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        codes = [node.stop(sig) for node in self.nodes]
        return next((code for code in codes if code != 0), 0)


def start_cluster(work_dir: Path, extra_args: Iterable[str] = (), size: int = 3) -> RiffleCluster:
    """Start a cluster of `size` nodes on loopback (the first starts it, the others join it)
    and wait until every node is a voter of the catalogue."""
    import json
    import time
    import urllib.request

    work_dir.mkdir(parents=True, exist_ok=True)
    secret = work_dir / "cluster.secret"
    addrs = [f"127.0.0.1:{_free_port()}" for _ in range(size)]
    nodes: list[RiffleServer] = []
    for i, addr in enumerate(addrs):
        args = ["--cluster-listen", addr, "--cluster-secret-file", str(secret), *extra_args]
        if i > 0:
            args += ["--join", addrs[0]]
        nodes.append(start_server(work_dir / f"node{i}", args, data_dir=work_dir / f"node{i}" / "data"))
    cluster = RiffleCluster(nodes)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{cluster.endpoint}/cluster/status", timeout=5) as answer:
                status = json.load(answer)
            if len(status.get("voters", [])) == size:
                return cluster
        except OSError:
            pass
        if time.monotonic() > deadline:
            cluster.stop()
            pytest.fail(f"the cluster did not form within 60 s:\n{cluster.stderr_tail()}", pytrace=False)
        time.sleep(0.2)


def cluster_size() -> int:
    """`RIFFLE_CONFORMANCE_CLUSTER=N` runs the session's server as a cluster of N nodes."""
    return int(os.environ.get("RIFFLE_CONFORMANCE_CLUSTER", "0") or 0)
