"""The AWS SDK for JavaScript v3 (@aws-sdk/client-kinesis from npm) against riffle: PutRecords and
SubscribeToShard over HTTP/2 with prior knowledge (h2c), which the JS Kinesis client speaks to an
http:// endpoint through its NodeHttp2Handler (kinesis-api.md §1.6, §1.7).

The JS side lives in conformance/js (versions pinned in package.json and package-lock.json) and
starts nothing itself; this test starts a server, installs the packages with `npm ci` when
node_modules is missing, runs `node --test` with RIFFLE_ENDPOINT, and demands that it passed.
Skipped only when `node` or `npm` is not installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import riffle_harness as h

JS_DIR = Path(__file__).resolve().parent / "js"
TEST_FILE = "kinesis.test.mjs"
NPM_CI_TIMEOUT_SECONDS = 600
NODE_TEST_TIMEOUT_SECONDS = 300
# kinesis.test.mjs has this many tests; fewer passing means some did not run.
JS_TESTS = 4
SERVER_FLAGS = ["--limits", "off", "--subscription-keep-alive-ms", "200"]


def _output(done: subprocess.CompletedProcess) -> str:
    return f"--- stdout ---\n{done.stdout[-8000:]}\n--- stderr ---\n{done.stderr[-8000:]}"


def test_js_sdk_put_records_and_subscribe_to_shard_over_http2(tmp_path):
    node = shutil.which("node")
    npm = shutil.which("npm")
    missing = [name for name, path in (("node", node), ("npm", npm)) if path is None]
    if missing:
        pytest.skip(f"the AWS JS SDK test needs node and npm; not installed: {', '.join(missing)}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # Keep any ~/.aws of the machine out of the SDK's way.
    env["AWS_CONFIG_FILE"] = str(tmp_path / "aws-config-none")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "aws-credentials-none")
    if not (JS_DIR / "node_modules").is_dir():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT_SECONDS,
        )
        assert done.returncode == 0, f"npm ci failed (exit {done.returncode})\n{_output(done)}"

    server = h.start_server(tmp_path / "riffle", SERVER_FLAGS)
    try:
        env["RIFFLE_ENDPOINT"] = server.endpoint
        done = subprocess.run(
            [node, "--test", TEST_FILE],
            cwd=JS_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=NODE_TEST_TIMEOUT_SECONDS,
        )
        assert server.is_running(), f"riffle died during the JS tests:\n{server.stderr_tail()}"
    finally:
        server.stop()
    assert done.returncode == 0, (
        f"node --test failed (exit {done.returncode})\n{_output(done)}\n"
        f"--- riffle stderr ---\n{server.stderr_tail()}"
    )
    passed = re.search(r"^# pass ([0-9]+)$", done.stdout, re.MULTILINE)
    failed = re.search(r"^# fail ([0-9]+)$", done.stdout, re.MULTILINE)
    assert passed and failed, f"no TAP summary from node --test\n{_output(done)}"
    assert (int(passed.group(1)), int(failed.group(1))) == (JS_TESTS, 0), _output(done)
