"""Fixtures: one riffle server per test session, boto3 clients and AWS CLI runners aimed at it,
and a factory for throwaway streams."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

import riffle_harness as h

WAIT_FAST = {"Delay": 1, "MaxAttempts": 20}
# The shared servers run without throughput and call-rate limits: every test's control-plane
# calls land on one account, far above CreateStream's 5 a second over a session, and the limits
# are not what these tests check. test_limits.py starts servers of its own with `--limits aws`.
NO_LIMITS = ["--limits", "off"]


@pytest.fixture(scope="session")
def riffle(tmp_path_factory):
    """The session's server. Tests that need an empty server start their own (`fresh_riffle`)."""
    if h.cluster_size() > 0:
        server = h.start_cluster(tmp_path_factory.mktemp("riffle-cluster"), NO_LIMITS, h.cluster_size())
    else:
        server = h.start_server(tmp_path_factory.mktemp("riffle-session"), NO_LIMITS)
    yield server
    code = server.stop()
    assert code == 0, (
        f"riffle did not exit cleanly on SIGTERM (exit {code}); stderr:\n{server.stderr_tail()}"
    )


@pytest.fixture(autouse=True)
def _server_survives(request):
    """Fail the test during which the session server died, with its stderr attached."""
    yield
    if "riffle" in request.fixturenames:
        server = request.getfixturevalue("riffle")
        assert server.is_running(), (
            f"riffle exited with {server.process.returncode} during this test; stderr:\n"
            f"{server.stderr_tail()}"
        )


@pytest.fixture
def fresh_riffle(tmp_path):
    """A server of the test's own, for checks that need to know every stream on it."""
    server = h.start_server(tmp_path / "riffle", NO_LIMITS)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def endpoint(riffle):
    return riffle.endpoint


@pytest.fixture(scope="session")
def kinesis(endpoint):
    return h.make_client(endpoint)


@pytest.fixture(scope="session")
def kinesis_unvalidated(endpoint):
    """A client that sends out-of-model input unchanged, so the server's validation is tested
    rather than botocore's."""
    return h.make_client(endpoint, validate_params=False)


@pytest.fixture
def new_stream(kinesis):
    """new_stream(shard_count=1, on_demand=False, tags=None, prefix='conf') -> stream name.

    Creates the stream, waits (1 s polls) until it is ACTIVE and deletes it after the test."""
    created: list[str] = []

    def create(shard_count: int = 1, on_demand: bool = False, tags=None, prefix: str = "conf"):
        name = h.unique_stream_name(prefix)
        kwargs = {"StreamName": name}
        if on_demand:
            kwargs["StreamModeDetails"] = {"StreamMode": "ON_DEMAND"}
        else:
            kwargs["ShardCount"] = shard_count
        if tags:
            kwargs["Tags"] = tags
        kinesis.create_stream(**kwargs)
        created.append(name)
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig=WAIT_FAST)
        return name

    yield create
    for name in created:
        try:
            kinesis.delete_stream(StreamName=name)
        except ClientError as err:
            if err.response["Error"]["Code"] != "ResourceNotFoundException":
                raise


@pytest.fixture
def aws(endpoint, tmp_path):
    """aws(*args) -> CliResult: the AWS CLI against the session server."""

    def run(*args: str) -> h.CliResult:
        return h.run_aws(endpoint, tmp_path, *args)

    return run
