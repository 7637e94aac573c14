"""Requests no SDK would send, made with urllib, and the server's process behaviour."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
import uuid

import pytest

import riffle_harness as h

TARGET_PREFIX = "Kinesis_20131202."
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"


def _post(endpoint: str, target: str | None, body: bytes) -> tuple[int, dict, bytes]:
    headers = {
        "Content-Type": JSON_CONTENT_TYPE,
        # A signature-shaped header; riffle accepts any signature.
        "Authorization": (
            "AWS4-HMAC-SHA256 Credential=conformance/20260101/us-east-1/kinesis/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64
        ),
        "X-Amz-Date": "20260101T000000Z",
    }
    if target is not None:
        headers["X-Amz-Target"] = target
    request = urllib.request.Request(endpoint + "/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def _error_type(body: bytes) -> tuple[str, str | None]:
    document = json.loads(body)
    raw = document["__type"]
    # botocore's reading: drop a namespace prefix and any ':' suffix.
    short = raw.split("#")[-1].split(":")[0]
    return short, document.get("message", document.get("Message"))


def test_successful_raw_call_headers(endpoint):
    status, headers, body = _post(endpoint, TARGET_PREFIX + "ListStreams", b"{}")
    assert status == 200
    assert headers["content-type"].startswith(JSON_CONTENT_TYPE)
    assert headers.get("x-amzn-requestid"), "SDKs surface x-amzn-RequestId"
    assert headers.get("date"), "SDKs correct clock skew from Date"
    assert isinstance(json.loads(body)["StreamNames"], list)


def test_void_operations_return_empty_or_empty_object(endpoint, kinesis):
    """kinesis-api.md §1.1: void operations answer 200 with an empty body ({} also parses)."""
    name = h.unique_stream_name("raw")
    arn = h.stream_arn(name)
    calls = [
        ("CreateStream", {"StreamName": name, "ShardCount": 1}),
        ("AddTagsToStream", {"StreamName": name, "Tags": {"a": "1"}}),
        ("RemoveTagsFromStream", {"StreamName": name, "TagKeys": ["a"]}),
        ("TagResource", {"ResourceARN": arn, "Tags": {"b": "2"}}),
        ("UntagResource", {"ResourceARN": arn, "TagKeys": ["b"]}),
        ("IncreaseStreamRetentionPeriod", {"StreamName": name, "RetentionPeriodHours": 48}),
        ("DecreaseStreamRetentionPeriod", {"StreamName": name, "RetentionPeriodHours": 24}),
        ("DeleteStream", {"StreamName": name}),
    ]
    bodies = {}
    for operation, request in calls:
        status, _, body = _post(endpoint, TARGET_PREFIX + operation, json.dumps(request).encode())
        assert status == 200, (operation, status, body)
        bodies[operation] = body
    wrong = {op: body for op, body in bodies.items() if body.strip() not in (b"", b"{}")}
    assert not wrong, f"void operations with a non-empty body: {wrong}"
    kinesis.get_waiter("stream_not_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})


def test_malformed_json_body(endpoint, kinesis):
    status, headers, body = _post(endpoint, TARGET_PREFIX + "CreateStream", b'{"StreamName": "x", ')
    assert status == 400
    assert headers["content-type"].startswith(JSON_CONTENT_TYPE)
    assert _error_type(body)[0] == "SerializationException"
    # Still serving.
    assert isinstance(kinesis.list_streams()["StreamNames"], list)


def test_wrongly_typed_members(endpoint, kinesis, new_stream):
    name = h.unique_stream_name("typed")
    status, _, body = _post(
        endpoint,
        TARGET_PREFIX + "CreateStream",
        json.dumps({"StreamName": name, "ShardCount": "two"}).encode(),
    )
    assert status == 400
    assert _error_type(body)[0] == "SerializationException"

    stream = new_stream()
    status, _, body = _post(
        endpoint,
        TARGET_PREFIX + "PutRecord",
        json.dumps({"StreamName": stream, "PartitionKey": "k", "Data": "not base64!"}).encode(),
    )
    assert status == 400
    assert _error_type(body)[0] == "SerializationException"
    assert h.read_shard(kinesis, stream, h.shard_id(0)) == []


def test_unknown_operation(endpoint, kinesis):
    status, headers, body = _post(endpoint, TARGET_PREFIX + "MakeCoffee", b"{}")
    assert status == 400
    assert _error_type(body)[0] == "UnknownOperationException"
    status, _, body = _post(endpoint, "SomeOtherService_20200101.ListStreams", b"{}")
    assert status == 400
    assert _error_type(body)[0] == "UnknownOperationException"
    # Still serving, and a real operation on the same path works.
    status, _, body = _post(endpoint, TARGET_PREFIX + "ListStreams", b"{}")
    assert status == 200
    assert isinstance(kinesis.describe_limits()["ShardLimit"], int)


def test_null_and_unknown_members_are_ignored(endpoint, kinesis):
    name = h.unique_stream_name("lenient")
    status, _, _ = _post(
        endpoint,
        TARGET_PREFIX + "CreateStream",
        json.dumps({"StreamName": name, "ShardCount": 2, "Tags": None, "FutureMember": 7}).encode(),
    )
    assert status == 200
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 2
    kinesis.delete_stream(StreamName=name)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_server_shuts_down_cleanly(tmp_path, sig):
    server = h.start_server(tmp_path / "riffle")
    client = h.make_client(server.endpoint)
    name = f"shutdown-{uuid.uuid4().hex[:8]}"
    client.create_stream(StreamName=name, ShardCount=1)
    client.put_record(StreamName=name, Data=b"x", PartitionKey="k")
    code = server.stop(sig)
    assert code == 0, f"exit code {code} after {sig.name}; stderr:\n{server.stderr_tail()}"
    assert server.stdout_rest == [], "after the listening line, logs belong on stderr"
