"""The README's examples, run as a newcomer would run them: the shell blocks and the Python
fan-out example are taken from README.md and executed unchanged against a riffle started here,
so a README example that stops working fails CI.

Substitutions, all explicit and checked to apply:
- the examples' endpoint `http://127.0.0.1:4567` becomes the test server's (riffle runs on a
  free port, `--in-memory`; `https://localhost:4567` likewise for the TLS row);
- `riffle serve ...` of the TLS section runs with `--in-memory --listen 127.0.0.1:0` added;
- shell blocks run under `set -euo pipefail`, so a failing command fails the test;
- `aws`, `python3` and `riffle` come first on PATH: the virtualenv's AWS CLI (v1) and Python
  (with boto3), and the riffle binary under test.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import riffle_harness as h

README = h.REPO_ROOT / "README.md"
README_ENDPOINT = "http://127.0.0.1:4567"
README_TLS_ENDPOINT = "https://localhost:4567"
RUN_COMMAND = "cargo run --release -- serve"
# The fan-out example's subscription ends after this long here (5 minutes by default).
FANOUT_LIFETIME_S = 4
FANOUT_TIMEOUT_S = 60

FENCE_RE = re.compile(r"^```([A-Za-z0-9_-]*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def readme_sections() -> dict[str, str]:
    """`## Heading` -> the text up to the next `## ` heading."""
    text = README.read_text(encoding="utf-8")
    sections: dict[str, str] = {}
    for match in re.finditer(r"^## (.+?)\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL):
        sections[match.group(1).strip()] = match.group(2)
    return sections


def code_blocks(section: str, language: str) -> list[str]:
    sections = readme_sections()
    assert section in sections, f"README.md has no section '## {section}' (has {list(sections)})"
    return [body for lang, body in FENCE_RE.findall(sections[section]) if lang == language]


def only_block(section: str, language: str) -> str:
    blocks = code_blocks(section, language)
    assert len(blocks) == 1, (
        f"expected one ```{language} block in '## {section}', found {len(blocks)}"
    )
    return blocks[0]


def substitute(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} no longer appears in the README example:\n{text}"
    return text.replace(old, new)


def example_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a newcomer's shell: no AWS settings of this machine, the venv's
    `aws`/`python3` and the riffle under test first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_CONFIG_FILE"] = str(tmp_path / "aws-config-none")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "aws-credentials-none")
    env["AWS_PAGER"] = ""
    env["PYTHONUNBUFFERED"] = "1"
    venv_bin = Path(sys.executable).parent
    riffle_dir = h.riffle_binary().resolve().parent
    env["PATH"] = os.pathsep.join([str(venv_bin), str(riffle_dir), env.get("PATH", "")])
    return env


def run_shell(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    bash = shutil.which("bash")
    assert bash, "the README's shell examples need bash"
    return subprocess.run(
        [bash, "-c", "set -euo pipefail\n" + script],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=h.CLI_TIMEOUT_SECONDS * 3,
    )


def json_documents(text: str) -> list:
    """Every JSON object printed in `text` (the CLI prints one per command)."""
    decoder = json.JSONDecoder()
    found, at = [], 0
    while (start := text.find("{", at)) != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            at = start + 1
            continue
        found.append(value)
        at = end
    return found


# ---------------------------------------------------------------------------------------------


def test_the_run_command_has_one_binary_to_run():
    """`cargo run` in a virtual workspace fails unless its members have exactly one binary
    target (it cannot carry `default-run`); `cargo metadata` shows what cargo would choose
    from, without building anything."""
    run_it = only_block("Run it", "sh")
    assert run_it.strip() == RUN_COMMAND, f"the README's run command changed: {run_it!r}"
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is not installed")
    done = subprocess.run(
        [cargo, "metadata", "--no-deps", "--format-version", "1", "--offline"],
        cwd=h.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    metadata = json.loads(done.stdout)
    members = set(metadata.get("workspace_default_members") or metadata["workspace_members"])
    binaries = [
        target["name"]
        for package in metadata["packages"]
        if package["id"] in members
        for target in package["targets"]
        if "bin" in target["kind"]
    ]
    assert binaries == ["riffle"], f"`{RUN_COMMAND}` would have to choose among {binaries}"


def test_the_cli_session_reads_back_what_it_wrote(tmp_path):
    server = h.start_server(tmp_path / "riffle")
    try:
        block = only_block("A short AWS CLI session", "sh")
        script = substitute(block, README_ENDPOINT, server.endpoint)
        work = tmp_path / "session"
        work.mkdir()
        done = run_shell(script, work, example_env(tmp_path))
        assert done.returncode == 0, (
            f"the README's CLI session failed (exit {done.returncode}):\n--- stdout ---\n"
            f"{done.stdout}\n--- stderr ---\n{done.stderr}\n--- riffle ---\n{server.stderr_tail()}"
        )
        # The block writes the record's bytes to a file; they must come back, once, both as
        # get-records' base64 Data and decoded by the pipeline after it.
        written = (work / "order.json").read_bytes()
        assert written, "the session wrote an empty record"
        pages = [doc for doc in json_documents(done.stdout) if "Records" in doc]
        assert len(pages) == 1, f"expected one get-records answer in:\n{done.stdout}"
        assert [base64.b64decode(r["Data"]) for r in pages[0]["Records"]] == [written], done.stdout
        assert written.decode() in done.stdout, "the decoded record was not printed"
        # And the session cleaned up after itself.
        client = h.make_client(server.endpoint)
        assert client.list_streams()["StreamNames"] == []
    finally:
        server.stop()


def test_the_channels_example_delivers_an_object(tmp_path):
    """The Channels example, run in the server's working directory (its data directory is the
    default `./riffle-data`), with the flag the text starts riffle with."""
    work = tmp_path / "session"
    server = h.start_server(
        work, ["--channel-max-wait-ms", "1000"], data_dir=work / "riffle-data"
    )
    try:
        assert "riffle serve --channel-max-wait-ms 1000" in readme_sections()["Channels"]
        block = only_block("Channels", "python")
        script = substitute(block, README_ENDPOINT, server.endpoint)
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=work,
            env=example_env(tmp_path),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=h.CLI_TIMEOUT_SECONDS,
        )
        assert done.returncode == 0, (
            f"the README's channels example failed (exit {done.returncode}):\n--- stdout ---\n"
            f"{done.stdout}\n--- stderr ---\n{done.stderr}\n--- riffle ---\n{server.stderr_tail()}"
        )
        assert '{"page": "/home"}' in done.stdout, done.stdout
    finally:
        server.stop()


def test_the_fanout_example_prints_records_as_they_are_written(tmp_path):
    server = h.start_server(
        tmp_path / "riffle", ["--subscription-lifetime-s", str(FANOUT_LIFETIME_S)]
    )
    try:
        block = only_block("Enhanced fan-out", "python")
        script = substitute(block, README_ENDPOINT, server.endpoint)
        env = example_env(tmp_path)
        process = subprocess.Popen(
            ["python3", "-c", script],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[str] = []

        def read_lines() -> None:
            for line in process.stdout:
                lines.append(line)

        reader = threading.Thread(target=read_lines, daemon=True)
        reader.start()
        try:
            # The example's own record arrives first; one written while it runs follows.
            deadline = time.monotonic() + FANOUT_TIMEOUT_S
            while not lines and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if not lines:
                process.kill()
                process.wait()
                pytest.fail(f"the example printed nothing; stderr:\n{process.stderr.read()}")
            client = h.make_client(server.endpoint)
            later = client.put_record(
                StreamName="clicks", PartitionKey="user-7", Data=b"second click"
            )
            process.wait(timeout=FANOUT_TIMEOUT_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        reader.join(timeout=5)
        stderr = process.stderr.read()
        assert process.returncode == 0, f"the example failed:\n{stderr}"
        printed = [line.split(" ", 1) for line in lines]
        assert [data.strip() for _, data in printed] == ["b'first click'", "b'second click'"], lines
        assert printed[1][0] == later["SequenceNumber"]
    finally:
        server.stop()


def table_row_command(section: str, first_cell: str) -> str:
    """The backticked command in the first backtick span of the table row starting with
    `| first_cell |`."""
    for line in readme_sections()[section].splitlines():
        if line.startswith(f"| {first_cell} |"):
            match = re.search(r"`([^`]+)`", line)
            assert match, f"no command in the {first_cell} row: {line}"
            return match.group(1)
    raise AssertionError(f"no '{first_cell}' row in '## {section}'")


def test_the_tls_example_serves_what_the_cli_row_trusts(tmp_path):
    block = only_block("TLS", "sh")
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[0].startswith("riffle dev-cert") and lines[1].startswith(
        "riffle serve "
    ), f"the TLS block changed shape:\n{block}"
    # As exported at the start of the CLI session.
    env = dict(
        example_env(tmp_path),
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
    )
    work = tmp_path / "tls"
    work.mkdir()
    made = run_shell(lines[0], work, env)
    assert made.returncode == 0, f"{lines[0]!r} failed:\n{made.stdout}\n{made.stderr}"
    serve_args = lines[1].split()[2:]  # after `riffle serve`; relative paths, as written
    server = h.start_server(work, serve_args)
    try:
        endpoint = f"https://localhost:{server.port}"
        cli = table_row_command("TLS", "AWS CLI")
        listed = run_shell(substitute(cli, README_TLS_ENDPOINT, endpoint), work, env)
        assert listed.returncode == 0, f"{cli!r} failed:\n{listed.stdout}\n{listed.stderr}"
        assert json.loads(listed.stdout)["StreamNames"] == [], listed.stdout
        boto = table_row_command("TLS", "boto3")
        code = (
            "import boto3\n"
            f"client = {substitute(boto, README_TLS_ENDPOINT, endpoint)}\n"
            "print(client.list_streams()['StreamNames'])\n"
        )
        done = subprocess.run(
            ["python3", "-c", code],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=h.CLI_TIMEOUT_SECONDS,
        )
        assert done.returncode == 0 and done.stdout.strip() == "[]", (
            f"{boto!r}:\n{done.stdout}\n{done.stderr}"
        )
    finally:
        server.stop()


def test_the_example_key_files_load(tmp_path):
    """The credentials file and the KMS key file shown in the README are accepted as written,
    and the credentials sign requests."""
    credentials = tmp_path / "credentials"
    credentials.write_text(only_block("Security", "text"))
    credentials.chmod(0o600)
    keys = tmp_path / "keys.txt"
    keys.write_text(only_block("Encryption at rest", "text"))
    keys.chmod(0o600)
    server = h.start_server(
        tmp_path / "riffle", ["--credentials", str(credentials), "--kms-keys", str(keys)]
    )
    try:
        client = h.make_client(
            server.endpoint,
            access_key_id="AKIAIOSFODNN7EXAMPLE",
            secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
        client.create_stream(StreamName="sealed", ShardCount=1)
        client.start_stream_encryption(
            StreamName="sealed", EncryptionType="KMS", KeyId="alias/orders"
        )
        summary = client.describe_stream_summary(StreamName="sealed")["StreamDescriptionSummary"]
        assert summary["StreamARN"] == h.stream_arn("sealed", "123456789012")
        assert summary["KeyId"] == "alias/orders"
    finally:
        server.stop()


TOUR_SECTION = "A 30-second tour"
TOUR_SERVE = "riffle serve --in-memory"
TOUR_CONSOLE_URL = f"{README_ENDPOINT}/console/"


def test_the_tour_serves_the_console_and_puts_and_tails(tmp_path):
    """The tour's first block is exactly `riffle serve --in-memory` (started here the same way,
    on a free port instead of 4567); the console address it names answers with the page; its
    second block runs verbatim with RIFFLE_ENDPOINT (the client commands' documented override)
    naming that server, and `riffle tail` prints back the lines `riffle put` read."""
    blocks = code_blocks(TOUR_SECTION, "sh")
    assert len(blocks) == 2, f"expected two ```sh blocks in the tour, found {len(blocks)}"
    assert blocks[0].strip() == TOUR_SERVE, f"the tour's serve line changed: {blocks[0]!r}"
    assert TOUR_CONSOLE_URL in readme_sections()[TOUR_SECTION]
    server = h.start_server(tmp_path / "riffle")
    try:
        import urllib.request

        console = substitute(TOUR_CONSOLE_URL, README_ENDPOINT, server.endpoint)
        with urllib.request.urlopen(console, timeout=10) as page:
            assert page.status == 200
            assert page.headers["Content-Type"].startswith("text/html")
            assert b"./app.js" in page.read()

        env = dict(example_env(tmp_path), RIFFLE_ENDPOINT=server.endpoint)
        done = run_shell(blocks[1], tmp_path, env)
        assert done.returncode == 0, (
            f"the tour failed (exit {done.returncode}):\n--- stdout ---\n{done.stdout}\n"
            f"--- stderr ---\n{done.stderr}\n--- riffle ---\n{server.stderr_tail()}"
        )
        # The lines the block pipes into `riffle put`, as the shell's printf makes them.
        printf = next(line for line in blocks[1].splitlines() if line.startswith("printf "))
        written = subprocess.run(
            ["bash", "-c", printf.rstrip("| ").rstrip()], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        assert len(written) == 3, written
        assert sorted(done.stdout.splitlines()) == sorted(written), done.stdout
    finally:
        server.stop()


def test_the_queue_example_receives_and_acknowledges_each_record_once(tmp_path):
    server = h.start_server(tmp_path / "riffle", ["--limits", "off"])
    try:
        block = only_block("Queues", "python")
        script = substitute(block, README_ENDPOINT, server.endpoint)
        result = subprocess.run(
            ["python3", "-c", script],
            cwd=tmp_path,
            env=example_env(tmp_path),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        printed = [line.split(" ") for line in result.stdout.splitlines()]
        assert [(count, " ".join(data)) for _, count, *data in printed] == [
            ("1", "b'job 0'"),
            ("1", "b'job 1'"),
            ("1", "b'job 2'"),
        ], result.stdout
        assert len({record_id for record_id, *_ in printed}) == 3
        client = h.make_client(server.endpoint)
        assert client.list_queues()["QueueSummaries"] == []
    finally:
        server.stop()


def test_the_cluster_example_forms_a_cluster_of_three(tmp_path):
    """'Run a cluster': the three `riffle serve` lines, each run verbatim in the background
    (ports replaced by free ones; the secret in a configuration directory of the test's own),
    form one cluster, and the status line prints its three members."""
    import json
    import socket
    import time
    import urllib.request

    block = only_block("Run a cluster", "sh")
    lines = [line for line in block.splitlines() if line.strip()]
    serves = [line for line in lines if line.startswith("riffle serve ")]
    status = [line for line in lines if line.startswith("riffle cluster status ")]
    assert len(serves) == 3 and len(status) == 1, block

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    ports = {}
    for old in ["4567", "4568", "4569", "7567", "7568", "7569"]:
        ports[old] = str(free_port())

    def with_ports(line: str) -> str:
        for old, new in ports.items():
            line = line.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
        return line

    env = dict(example_env(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    processes = []
    try:
        for i, line in enumerate(serves):
            processes.append(
                subprocess.Popen(
                    ["bash", "-c", "exec " + with_ports(line)],
                    cwd=tmp_path,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=open(tmp_path / f"node{i}.log", "wb"),
                )
            )
            if i == 0:
                time.sleep(1)
        endpoint = f"http://127.0.0.1:{ports['4567']}"
        deadline = time.monotonic() + 60
        members = []
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{endpoint}/cluster/status", timeout=5) as answer:
                    members = json.load(answer)["voters"]
                if len(members) == 3:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        logs = "\n".join((tmp_path / f"node{i}.log").read_text(errors="replace")[-2000:] for i in range(3))
        assert len(members) == 3, f"no cluster of three formed:\n{logs}"
        assert (tmp_path / "config" / "riffle" / "cluster.secret").exists()
        done = run_shell(with_ports(status[0]), tmp_path, env)
        assert done.returncode == 0, done.stderr
        for port in ["7567", "7568", "7569"]:
            assert f"127.0.0.1:{ports[port]}" in done.stdout, done.stdout
        assert "catalogue leader" in done.stdout, done.stdout
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_the_move_into_a_cluster_example_copies_a_single_nodes_streams(tmp_path):
    """'Move a single node into a cluster': a single node's data directory `riffle-data` (made
    here, with a stream that was split), served by the block's `riffle serve` line as it is
    written, and the block's `riffle copy` line, as written, copy it into a cluster (one node,
    at the block's endpoint port replaced by its own); the cluster then holds every record."""
    import socket
    import time

    block = only_block("Move a single node into a cluster", "sh")
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[0].startswith("riffle serve ") and lines[1].startswith("riffle copy "), block

    # The single node's data, written by a single node as a user's would be.
    data_dir = tmp_path / "riffle-data"
    single = h.start_server(tmp_path / "single", ["--limits", "off"], data_dir=data_dir)
    try:
        client = h.make_client(single.endpoint)
        client.create_stream(StreamName="orders", ShardCount=1)
        client.get_waiter("stream_exists").wait(StreamName="orders", WaiterConfig={"Delay": 0.2})
        written = [(f"user-{i % 5}", f"order {i}".encode()) for i in range(120)]
        for key, data in written[:60]:
            client.put_record(StreamName="orders", PartitionKey=key, Data=data)
        client.split_shard(StreamName="orders", ShardToSplit=h.shard_id(0), NewStartingHashKey=str(1 << 127))
        client.get_waiter("stream_exists").wait(StreamName="orders", WaiterConfig={"Delay": 0.2})
        for key, data in written[60:]:
            client.put_record(StreamName="orders", PartitionKey=key, Data=data)
    finally:
        assert single.stop() == 0

    cluster = h.start_cluster(tmp_path / "cluster", ["--limits", "off"], size=1)

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    single_port = str(free_port())

    def with_ports(line: str) -> str:
        line = substitute(line, "127.0.0.1:4570", f"127.0.0.1:{single_port}")
        return line.replace("127.0.0.1:4567", f"127.0.0.1:{cluster.port}")

    env = example_env(tmp_path)
    serve = subprocess.Popen(
        ["bash", "-c", "exec " + with_ports(lines[0])],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "serve.log", "wb"),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", int(single_port)), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text(errors="replace")
                time.sleep(0.1)
        done = run_shell(with_ports(lines[1]), tmp_path, env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("orders: 120 records ("), done.stdout
        assert "from 3 shards" in done.stdout, done.stdout

        target = h.make_client(cluster.endpoint)
        read = []
        for shard in h.list_all_shards(target, "orders"):
            read += [(r["PartitionKey"], r["Data"]) for r in h.read_shard(target, "orders", shard["ShardId"])]
        assert sorted(read) == sorted(written)
        for key in {key for key, _ in written}:
            # Records of a key are in one shard of the copy: in the order they were written.
            assert [d for k, d in read if k == key] == [d for k, d in written if k == key]
    finally:
        serve.terminate()
        try:
            serve.wait(timeout=20)
        except subprocess.TimeoutExpired:
            serve.kill()
        cluster.stop()
