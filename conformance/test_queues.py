"""Queues through boto3 (1.44.5 has the operations): the control plane, delivery, visibility,
redelivery, dead-lettering and restore, long polling, per-key order, tags and policies on the
queue ARN, the consumer limit, and durability across kill -9."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from botocore.exceptions import ClientError

import riffle_harness as h

NO_LIMITS = ["--limits", "off"]


def on_demand_stream(kinesis, prefix="q") -> tuple[str, str]:
    name = h.unique_stream_name(prefix)
    kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20}
    )
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    return name, arn


def create_queue(kinesis, stream_arn, name=None, start="TRIM_HORIZON", **attributes):
    config = {"StreamARN": stream_arn, "StartingPosition": {"Type": start}}
    kwargs = {"QueueName": name or h.unique_stream_name("queue"), "StreamConfigurationList": [config]}
    if attributes:
        kwargs["QueueAttributes"] = attributes
    return kinesis.create_queue(**kwargs)["QueueDescription"]


def put(kinesis, stream, key, data):
    kinesis.put_record(StreamName=stream, PartitionKey=key, Data=data)


def receive(kinesis, queue_arn, **kwargs):
    kwargs.setdefault("WaitTimeSeconds", 1)
    return kinesis.receive_queue_records(QueueARN=queue_arn, **kwargs)["QueueRecords"]


def ack(kinesis, queue_arn, records):
    result = kinesis.acknowledge_queue_records(
        QueueARN=queue_arn, Entries=[{"ReceiptHandle": r["ReceiptHandle"]} for r in records]
    )
    assert result["Failed"] == [], result
    return result


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = h.start_server(tmp_path_factory.mktemp("queues"), NO_LIMITS)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def kinesis(server):
    return h.make_client(server.endpoint)


def test_control_plane_shapes_and_errors(kinesis):
    stream, stream_arn = on_demand_stream(kinesis)
    created = create_queue(kinesis, stream_arn, name="orders-queue", start="LATEST")
    assert created["QueueStatus"] == "CREATING"
    assert created["QueueName"] == "orders-queue"
    arn = created["QueueARN"]
    assert arn.startswith("arn:aws:kinesis:us-east-1:000000000000:queue/")
    assert "orders-queue" not in arn, "the id is not derived from the name"
    assert created["QueueAttributes"] == {
        "VisibilityTimeoutSeconds": 30,
        "DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 6},
    }
    assert "Timestamp" not in created["StreamConfigurationList"][0]["StartingPosition"]

    described = kinesis.describe_queue(QueueARN=arn)["QueueDescription"]
    assert described["QueueStatus"] == "ACTIVE"
    assert "Timestamp" in described["StreamConfigurationList"][0]["StartingPosition"]

    updated = kinesis.update_queue(
        QueueARN=arn,
        QueueAttributes={
            "VisibilityTimeoutSeconds": 5,
            "DeadLetterConfiguration": {"TargetType": "NONE"},
        },
    )["QueueDescription"]
    assert updated["QueueStatus"] == "UPDATING"
    assert updated["QueueAttributes"]["VisibilityTimeoutSeconds"] == 5
    assert updated["QueueAttributes"]["DeadLetterConfiguration"] == {"TargetType": "NONE"}

    listed = kinesis.list_queues(StreamFilter=[{"StreamARN": stream_arn}])["QueueSummaries"]
    assert [q["QueueARN"] for q in listed] == [arn]
    assert listed[0]["Streams"][0]["StreamARN"] == stream_arn

    with pytest.raises(ClientError) as excinfo:
        create_queue(kinesis, stream_arn, name="orders-queue")
    assert h.error_of(excinfo)[0] == "ResourceInUseException"

    # The stream cannot go while it has a queue, nor become provisioned.
    with pytest.raises(ClientError) as excinfo:
        kinesis.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
    assert h.error_of(excinfo)[0] == "ResourceInUseException"
    with pytest.raises(ClientError) as excinfo:
        kinesis.update_stream_mode(
            StreamARN=stream_arn, StreamModeDetails={"StreamMode": "PROVISIONED"}
        )
    assert h.error_of(excinfo)[0] == "ResourceInUseException"

    kinesis.delete_queue(QueueARN=arn)
    with pytest.raises(ClientError) as excinfo:
        kinesis.describe_queue(QueueARN=arn)
    assert h.error_of(excinfo)[0] == "ResourceNotFoundException"
    kinesis.delete_stream(StreamName=stream)


def test_validation_and_provisioned_streams(kinesis, server):
    raw = h.make_client(server.endpoint, validate_params=False)
    with pytest.raises(ClientError) as excinfo:
        raw.receive_queue_records(QueueARN="arn:aws:kinesis:us-east-1:000000000000:queue/x", Limit=11)
    code, message = h.error_of(excinfo)
    assert code == "ValidationException"
    assert "Value '11' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 10" in message
    with pytest.raises(ClientError) as excinfo:
        raw.describe_queue(QueueARN="arn:aws:kinesis:us-east-1:000000000000:stream/x")
    assert "Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{12}:queue/\\S+" in h.error_of(excinfo)[1]

    name = h.unique_stream_name("prov")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    with pytest.raises(ClientError) as excinfo:
        create_queue(kinesis, h.stream_arn(name))
    assert h.error_of(excinfo)[0] == "InvalidArgumentException"
    _, arn = on_demand_stream(kinesis)
    with pytest.raises(ClientError) as excinfo:
        kinesis.create_queue(
            QueueName="t",
            StreamConfigurationList=[{"StreamARN": arn, "StartingPosition": {"Type": "LATEST", "Timestamp": 1}}],
        )
    assert h.error_of(excinfo)[0] == "ValidationException"


def test_receive_acknowledge_visibility_and_redelivery(kinesis):
    stream, stream_arn = on_demand_stream(kinesis)
    queue = create_queue(kinesis, stream_arn, VisibilityTimeoutSeconds=1)["QueueARN"]
    for i in range(5):
        put(kinesis, stream, f"key-{i}", f"record-{i}".encode())
    first = receive(kinesis, queue, Limit=3)
    assert len(first) == 3
    for record in first:
        assert record["ReceiveCount"] == 1
        assert record["RecordId"].isdigit()
        assert record["FirstReceiveTimestamp"] >= record["ApproximateArrivalTimestamp"]
    rest = receive(kinesis, queue)
    assert len(rest) == 2, "in-flight records are not delivered to a second consumer"
    ack(kinesis, queue, rest)
    # Unacknowledged: visible again after 1 s, with a new handle and ReceiveCount 2.
    time.sleep(1.2)
    again = receive(kinesis, queue)
    assert sorted(r["RecordId"] for r in again) == sorted(r["RecordId"] for r in first)
    assert all(r["ReceiveCount"] == 2 for r in again)
    assert {r["ReceiptHandle"] for r in again}.isdisjoint(r["ReceiptHandle"] for r in first)
    # The old handles no longer acknowledge; the new ones do.
    stale = kinesis.acknowledge_queue_records(
        QueueARN=queue, Entries=[{"ReceiptHandle": first[0]["ReceiptHandle"]}]
    )
    assert stale["Successful"] == [] and stale["Failed"][0]["ErrorCode"] == "InvalidArgumentException"
    # Visibility 0 makes one visible at once.
    changed = kinesis.update_queue_records_visibility(
        QueueARN=queue,
        Entries=[{"ReceiptHandle": again[0]["ReceiptHandle"], "VisibilityTimeoutSeconds": 0}],
    )
    assert len(changed["Successful"]) == 1
    back = receive(kinesis, queue)
    assert [r["RecordId"] for r in back] == [again[0]["RecordId"]]
    ack(kinesis, queue, back + again[1:])
    assert receive(kinesis, queue) == []
    forged = kinesis.acknowledge_queue_records(
        QueueARN=queue, Entries=[{"ReceiptHandle": "AAAA" + back[0]["ReceiptHandle"][4:]}]
    )
    assert forged["Failed"][0]["ErrorCode"] == "InvalidArgumentException"


def test_dead_letter_and_restore(kinesis):
    stream, stream_arn = on_demand_stream(kinesis)
    queue = create_queue(
        kinesis,
        stream_arn,
        VisibilityTimeoutSeconds=0,
        DeadLetterConfiguration={"TargetType": "BUILT_IN", "MaxReceiveCount": 2},
    )["QueueARN"]
    put(kinesis, stream, "poison", b"bad")
    counts = []
    for _ in range(2):
        got = receive(kinesis, queue)
        counts += [r["ReceiveCount"] for r in got]
    assert counts == [1, 2]
    assert receive(kinesis, queue) == [], "dead after MaxReceiveCount receives"
    dead = kinesis.receive_dead_letter_queue_records(QueueARN=queue, WaitTimeSeconds=1)["QueueRecords"]
    assert len(dead) == 1 and dead[0]["Data"] == b"bad"
    restored = kinesis.restore_dead_letter_queue_records(
        QueueARN=queue, Entries=[{"ReceiptHandle": dead[0]["ReceiptHandle"]}]
    )
    assert len(restored["Successful"]) == 1
    again = receive(kinesis, queue, VisibilityTimeoutSeconds=30)
    assert [r["ReceiveCount"] for r in again] == [1], "restore resets the receive count"
    assert again[0]["RecordId"] == dead[0]["RecordId"]
    ack(kinesis, queue, again)


def test_long_polling_is_woken_by_a_put(kinesis):
    stream, stream_arn = on_demand_stream(kinesis)
    queue = create_queue(kinesis, stream_arn, start="LATEST")["QueueARN"]
    got = {}

    def waiter():
        started = time.monotonic()
        got["records"] = receive(kinesis, queue, WaitTimeSeconds=20)
        got["took"] = time.monotonic() - started

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.5)
    put(kinesis, stream, "k", b"wake up")
    thread.join(timeout=25)
    assert [r["Data"] for r in got["records"]] == [b"wake up"]
    assert got["took"] < 5, got["took"]


def test_per_key_order_for_one_consumer(kinesis):
    stream, stream_arn = on_demand_stream(kinesis)
    queue = create_queue(kinesis, stream_arn)["QueueARN"]
    keys = [f"user-{i}" for i in range(8)]
    for n in range(10):
        kinesis.put_records(
            StreamName=stream,
            Records=[{"PartitionKey": k, "Data": f"{k}:{n}".encode()} for k in keys],
        )
    seen: dict[str, list[int]] = {k: [] for k in keys}
    while True:
        got = receive(kinesis, queue)
        if not got:
            break
        for record in got:
            key, n = record["Data"].decode().split(":")
            assert record["PartitionKey"] == key
            seen[key].append(int(n))
        ack(kinesis, queue, got)
    assert all(seen[k] == list(range(10)) for k in keys), seen


def test_tags_policies_and_the_consumer_limit(kinesis):
    stream, stream_arn = on_demand_stream(kinesis)
    queue = create_queue(kinesis, stream_arn)["QueueARN"]
    kinesis.tag_resource(ResourceARN=queue, Tags={"team": "billing"})
    assert kinesis.list_tags_for_resource(ResourceARN=queue)["Tags"] == [
        {"Key": "team", "Value": "billing"}
    ]
    kinesis.untag_resource(ResourceARN=queue, TagKeys=["team"])
    assert kinesis.list_tags_for_resource(ResourceARN=queue)["Tags"] == []
    policy = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"*"},'
        '"Action":"kinesis:ReceiveQueueRecords","Resource":"' + queue + '"}]}'
    )
    kinesis.put_resource_policy(ResourceARN=queue, Policy=policy)
    assert kinesis.get_resource_policy(ResourceARN=queue)["Policy"] == policy
    with pytest.raises(ClientError) as excinfo:
        receive(kinesis, queue)
    assert h.error_of(excinfo)[0] == "AccessDeniedException"
    kinesis.delete_resource_policy(ResourceARN=queue)
    assert receive(kinesis, queue) == []
    # Queues and enhanced fan-out consumers share the 20 registered consumers of a stream.
    for i in range(19):
        kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName=f"c{i}")
    with pytest.raises(ClientError) as excinfo:
        create_queue(kinesis, stream_arn)
    assert h.error_of(excinfo)[0] == "LimitExceededException"


def test_acknowledged_records_stay_acknowledged_across_kill_9(tmp_path):
    data = tmp_path / "data"
    server = h.start_server(tmp_path / "w1", NO_LIMITS, data_dir=data)
    try:
        kinesis = h.make_client(server.endpoint)
        stream, stream_arn = on_demand_stream(kinesis)
        queue = create_queue(
            kinesis, stream_arn,
            DeadLetterConfiguration={"TargetType": "BUILT_IN", "MaxReceiveCount": 3},
        )["QueueARN"]
        kinesis.put_records(
            StreamName=stream,
            Records=[{"PartitionKey": f"k{i}", "Data": f"r{i}".encode()} for i in range(40)],
        )
        acked, in_flight = set(), set()
        for _ in range(2):
            got = receive(kinesis, queue, Limit=10)
            ack(kinesis, queue, got)
            acked |= {r["Data"] for r in got}
        got = receive(kinesis, queue, Limit=10)  # in flight when the server dies
        in_flight = {r["Data"]: r["ReceiveCount"] for r in got}
    finally:
        server.stop(signal.SIGKILL)
    server = h.start_server(tmp_path / "w2", NO_LIMITS, data_dir=data)
    try:
        kinesis = h.make_client(server.endpoint)
        delivered: dict[bytes, int] = {}
        while True:
            got = receive(kinesis, queue, Limit=10, VisibilityTimeoutSeconds=60)
            if not got:
                break
            for record in got:
                delivered[record["Data"]] = record["ReceiveCount"]
            ack(kinesis, queue, got)
        everything = {f"r{i}".encode() for i in range(40)}
        assert acked.isdisjoint(delivered), "an acknowledged record came back"
        assert set(delivered) == everything - acked, "none is lost"
        for data_, count in in_flight.items():
            assert delivered[data_] == count + 1, "in-flight ones are visible again, counts kept"
    finally:
        server.stop()
