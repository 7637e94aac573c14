"""Stream lifecycle, describing, listing and paging, waiters — through boto3."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError, WaiterError

import riffle_harness as h

WAIT_FAST = {"Delay": 1, "MaxAttempts": 20}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _assert_recent(timestamp: dt.datetime, slack_seconds: float = 120) -> None:
    assert isinstance(timestamp, dt.datetime)
    age = (_now() - timestamp).total_seconds()
    assert -slack_seconds < age < slack_seconds, f"timestamp {timestamp} is not near now"


def _assert_fresh_shards(shards: list[dict], shard_count: int) -> None:
    assert [s["ShardId"] for s in shards] == [h.shard_id(i) for i in range(shard_count)]
    ranges = [
        (int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]))
        for s in shards
    ]
    assert ranges == h.expected_hash_ranges(shard_count)
    for shard in shards:
        # Hash keys travel as decimal strings.
        assert isinstance(shard["HashKeyRange"]["StartingHashKey"], str)
        assert "ParentShardId" not in shard and "AdjacentParentShardId" not in shard
        h.assert_sequence_number(shard["SequenceNumberRange"]["StartingSequenceNumber"])
        assert "EndingSequenceNumber" not in shard["SequenceNumberRange"]


# --- CreateStream / DescribeStream / DescribeStreamSummary ---------------------------------


def test_create_provisioned_stream_and_describe(kinesis):
    name = h.unique_stream_name("create")
    response = kinesis.create_stream(StreamName=name, ShardCount=3)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    # Contract: ACTIVE at once, so the waiter's immediate first poll succeeds.
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 1})

    description = kinesis.describe_stream(StreamName=name)["StreamDescription"]
    assert description["StreamName"] == name
    assert description["StreamARN"] == h.stream_arn(name)
    assert description["StreamStatus"] == "ACTIVE"
    assert description["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert description["RetentionPeriodHours"] == h.DEFAULT_RETENTION_HOURS
    assert description["HasMoreShards"] is False
    assert description["EnhancedMonitoring"] == [{"ShardLevelMetrics": []}]
    assert description.get("EncryptionType", "NONE") == "NONE"
    _assert_recent(description["StreamCreationTimestamp"])
    _assert_fresh_shards(description["Shards"], 3)

    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["StreamName"] == name
    assert summary["StreamARN"] == h.stream_arn(name)
    assert summary["StreamStatus"] == "ACTIVE"
    assert summary["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert summary["RetentionPeriodHours"] == h.DEFAULT_RETENTION_HOURS
    assert summary["OpenShardCount"] == 3
    assert summary.get("ConsumerCount", 0) == 0
    assert summary["StreamCreationTimestamp"] == description["StreamCreationTimestamp"]
    assert summary["EnhancedMonitoring"] == [{"ShardLevelMetrics": []}]
    kinesis.delete_stream(StreamName=name)


def test_create_on_demand_stream_has_four_shards(kinesis, new_stream):
    name = new_stream(on_demand=True)
    description = kinesis.describe_stream(StreamName=name)["StreamDescription"]
    assert description["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    _assert_fresh_shards(description["Shards"], h.ON_DEMAND_INITIAL_SHARDS)
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == h.ON_DEMAND_INITIAL_SHARDS
    assert summary["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}


def test_create_on_demand_with_shard_count_is_rejected(kinesis):
    name = h.unique_stream_name("ondemand-bad")
    with pytest.raises(ClientError) as excinfo:
        kinesis.create_stream(
            StreamName=name, ShardCount=2, StreamModeDetails={"StreamMode": "ON_DEMAND"}
        )
    code, message = h.error_of(excinfo)
    assert code in ("InvalidArgumentException", "ValidationException"), (code, message)
    assert message == "ShardCount is not expected when StreamMode=ON_DEMAND"
    with pytest.raises(ClientError) as excinfo:
        kinesis.describe_stream_summary(StreamName=name)
    h.assert_client_error(excinfo, "ResourceNotFoundException")


def test_create_with_tags(kinesis, new_stream):
    name = new_stream(tags={"team": "payments", "env": "test"})
    tags = kinesis.list_tags_for_stream(StreamName=name)["Tags"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("env", "test"), ("team", "payments")]


def test_create_duplicate_stream(kinesis, new_stream):
    name = new_stream(shard_count=2)
    with pytest.raises(ClientError) as excinfo:
        kinesis.create_stream(StreamName=name, ShardCount=1)
    h.assert_client_error(
        excinfo,
        "ResourceInUseException",
        f"Stream {name} under account {h.DEFAULT_ACCOUNT_ID} already exists.",
    )
    # The original is untouched.
    assert kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
        "OpenShardCount"
    ] == 2


def test_missing_stream_errors(kinesis):
    name = h.unique_stream_name("missing")
    message = h.not_found_message(name)
    shard_message = (
        f"Shard {h.shard_id(0)} in stream {name} under account {h.DEFAULT_ACCOUNT_ID} does not exist"
    )
    calls = {
        "DescribeStream": lambda: kinesis.describe_stream(StreamName=name),
        "DescribeStreamSummary": lambda: kinesis.describe_stream_summary(StreamName=name),
        "DeleteStream": lambda: kinesis.delete_stream(StreamName=name),
        "ListShards": lambda: kinesis.list_shards(StreamName=name),
        "PutRecord": lambda: kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k"),
        "PutRecords": lambda: kinesis.put_records(
            StreamName=name, Records=[{"Data": b"x", "PartitionKey": "k"}]
        ),
        "IncreaseStreamRetentionPeriod": lambda: kinesis.increase_stream_retention_period(
            StreamName=name, RetentionPeriodHours=48
        ),
        "DecreaseStreamRetentionPeriod": lambda: kinesis.decrease_stream_retention_period(
            StreamName=name, RetentionPeriodHours=24
        ),
        "AddTagsToStream": lambda: kinesis.add_tags_to_stream(StreamName=name, Tags={"a": "b"}),
        "ListTagsForStream": lambda: kinesis.list_tags_for_stream(StreamName=name),
        "RemoveTagsFromStream": lambda: kinesis.remove_tags_from_stream(
            StreamName=name, TagKeys=["a"]
        ),
    }
    problems = []
    for operation, call in calls.items():
        try:
            call()
        except ClientError as err:
            code = err.response["Error"]["Code"]
            got = err.response["Error"].get("Message")
            if (code, got) != ("ResourceNotFoundException", message):
                problems.append(f"{operation}: {code} {got!r}")
        else:
            problems.append(f"{operation}: succeeded")
    # GetShardIterator names the shard (production behaviour recorded by kinesalite).
    with pytest.raises(ClientError) as excinfo:
        kinesis.get_shard_iterator(
            StreamName=name, ShardId=h.shard_id(0), ShardIteratorType="TRIM_HORIZON"
        )
    code, got = h.error_of(excinfo)
    if (code, got) != ("ResourceNotFoundException", shard_message):
        problems.append(f"GetShardIterator: {code} {got!r}")
    assert not problems, f"expected ResourceNotFoundException {message!r}:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("bad_name", "constraint"),
    [
        ("has space!", "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"),
        ("n" * 129, "Member must have length less than or equal to 128"),
    ],
)
def test_create_stream_name_validation(kinesis_unvalidated, bad_name, constraint):
    with pytest.raises(ClientError) as excinfo:
        kinesis_unvalidated.create_stream(StreamName=bad_name, ShardCount=1)
    h.assert_client_error(
        excinfo,
        "ValidationException",
        f"1 validation error detected: Value '{bad_name}' at 'streamName' failed to satisfy "
        f"constraint: {constraint}",
    )


def test_create_stream_shard_count_validation(kinesis_unvalidated):
    name = h.unique_stream_name("zero")
    with pytest.raises(ClientError) as excinfo:
        kinesis_unvalidated.create_stream(StreamName=name, ShardCount=0)
    h.assert_client_error(
        excinfo,
        "ValidationException",
        "1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1",
    )


def test_delete_stream_and_waiter(kinesis):
    name = h.unique_stream_name("delete")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig=WAIT_FAST)
    response = kinesis.delete_stream(StreamName=name)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    kinesis.get_waiter("stream_not_exists").wait(StreamName=name, WaiterConfig=WAIT_FAST)
    with pytest.raises(ClientError) as excinfo:
        kinesis.describe_stream(StreamName=name)
    h.assert_client_error(excinfo, "ResourceNotFoundException", h.not_found_message(name))
    assert name not in kinesis.list_streams(Limit=100)["StreamNames"]
    # The name is free again, and the new incarnation starts empty with fresh shard ids.
    kinesis.create_stream(StreamName=name, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig=WAIT_FAST)
    description = kinesis.describe_stream(StreamName=name)["StreamDescription"]
    _assert_fresh_shards(description["Shards"], 2)
    kinesis.delete_stream(StreamName=name)


def test_waiters_do_not_succeed_falsely(kinesis, new_stream):
    name = new_stream()
    with pytest.raises(WaiterError):
        kinesis.get_waiter("stream_not_exists").wait(
            StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 2}
        )
    with pytest.raises(WaiterError):
        kinesis.get_waiter("stream_exists").wait(
            StreamName=h.unique_stream_name("never"), WaiterConfig={"Delay": 1, "MaxAttempts": 2}
        )


def test_twelve_digit_access_key_is_the_account(kinesis, endpoint):
    other_account = "123456789012"
    other = h.make_client(endpoint, access_key_id=other_account)
    name = h.unique_stream_name("acct")
    other.create_stream(StreamName=name, ShardCount=1)
    other.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig=WAIT_FAST)
    summary = other.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["StreamARN"] == h.stream_arn(name, other_account)
    # Invisible from the default account.
    with pytest.raises(ClientError) as excinfo:
        kinesis.describe_stream_summary(StreamName=name)
    h.assert_client_error(excinfo, "ResourceNotFoundException", h.not_found_message(name))
    assert name not in kinesis.list_streams(Limit=100)["StreamNames"]
    assert name in other.list_streams(Limit=100)["StreamNames"]
    other.delete_stream(StreamName=name)


# --- ListStreams ------------------------------------------------------------------------------


def test_list_streams_paging(fresh_riffle):
    client = h.make_client(fresh_riffle.endpoint)
    assert client.list_streams()["StreamNames"] == []
    names = sorted(f"list-{i}-{h.unique_stream_name('s')}" for i in range(5))
    for index, name in enumerate(reversed(names)):
        if index % 2:
            client.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
        else:
            client.create_stream(StreamName=name, ShardCount=1)

    everything = client.list_streams()
    assert everything["StreamNames"] == names, "ListStreams must return names in sorted order"
    assert everything["HasMoreStreams"] is False
    summaries = everything["StreamSummaries"]
    assert [s["StreamName"] for s in summaries] == names
    for summary in summaries:
        assert summary["StreamARN"] == h.stream_arn(summary["StreamName"])
        assert summary["StreamStatus"] == "ACTIVE"
        assert summary["StreamModeDetails"]["StreamMode"] in ("PROVISIONED", "ON_DEMAND")
        _assert_recent(summary["StreamCreationTimestamp"])
    modes = {s["StreamName"]: s["StreamModeDetails"]["StreamMode"] for s in summaries}
    assert sorted(modes.values()) == ["ON_DEMAND"] * 2 + ["PROVISIONED"] * 3

    # Limit + NextToken.
    page1 = client.list_streams(Limit=2)
    assert page1["StreamNames"] == names[:2]
    assert page1["HasMoreStreams"] is True
    page2 = client.list_streams(Limit=2, NextToken=page1["NextToken"])
    assert page2["StreamNames"] == names[2:4]
    assert page2["HasMoreStreams"] is True
    page3 = client.list_streams(Limit=2, NextToken=page2["NextToken"])
    assert page3["StreamNames"] == names[4:]
    assert page3["HasMoreStreams"] is False

    # ExclusiveStartStreamName, also with a name that is not a stream (sorts between two).
    after = client.list_streams(ExclusiveStartStreamName=names[1], Limit=2)
    assert after["StreamNames"] == names[2:4]
    assert after["HasMoreStreams"] is True
    tail = client.list_streams(ExclusiveStartStreamName=names[3])
    assert tail["StreamNames"] == names[4:]
    assert tail["HasMoreStreams"] is False
    between = client.list_streams(ExclusiveStartStreamName=names[0] + "z")
    assert between["StreamNames"] == names[1:]

    # The boto3 paginator (NextToken / HasMoreStreams).
    paginator = client.get_paginator("list_streams")
    pages = list(paginator.paginate(PaginationConfig={"PageSize": 2}))
    assert [len(p["StreamNames"]) for p in pages] == [2, 2, 1]
    assert [n for p in pages for n in p["StreamNames"]] == names
    built = paginator.paginate(PaginationConfig={"PageSize": 2}).build_full_result()
    assert built["StreamNames"] == names
    assert [s["StreamName"] for s in built["StreamSummaries"]] == names


# --- DescribeStream paging ----------------------------------------------------------------------


def test_describe_stream_paging(kinesis, new_stream):
    name = new_stream(shard_count=5)
    page1 = kinesis.describe_stream(StreamName=name, Limit=2)["StreamDescription"]
    assert [s["ShardId"] for s in page1["Shards"]] == [h.shard_id(0), h.shard_id(1)]
    assert page1["HasMoreShards"] is True
    page2 = kinesis.describe_stream(
        StreamName=name, Limit=2, ExclusiveStartShardId=page1["Shards"][-1]["ShardId"]
    )["StreamDescription"]
    assert [s["ShardId"] for s in page2["Shards"]] == [h.shard_id(2), h.shard_id(3)]
    assert page2["HasMoreShards"] is True
    page3 = kinesis.describe_stream(
        StreamName=name, Limit=2, ExclusiveStartShardId=page2["Shards"][-1]["ShardId"]
    )["StreamDescription"]
    assert [s["ShardId"] for s in page3["Shards"]] == [h.shard_id(4)]
    assert page3["HasMoreShards"] is False
    last = kinesis.describe_stream(StreamName=name, ExclusiveStartShardId=h.shard_id(4))
    assert last["StreamDescription"]["Shards"] == []
    assert last["StreamDescription"]["HasMoreShards"] is False

    pages = list(
        kinesis.get_paginator("describe_stream").paginate(
            StreamName=name, PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(p["StreamDescription"]["Shards"]) for p in pages] == [2, 2, 1]
    shards = [s for p in pages for s in p["StreamDescription"]["Shards"]]
    _assert_fresh_shards(shards, 5)


# --- ListShards -----------------------------------------------------------------------------------


def test_list_shards_paging(kinesis, new_stream):
    name = new_stream(shard_count=5)
    everything = kinesis.list_shards(StreamName=name)
    assert "NextToken" not in everything
    _assert_fresh_shards(everything["Shards"], 5)
    assert everything["Shards"] == kinesis.describe_stream(StreamName=name)["StreamDescription"][
        "Shards"
    ]

    page1 = kinesis.list_shards(StreamName=name, MaxResults=2)
    assert [s["ShardId"] for s in page1["Shards"]] == [h.shard_id(0), h.shard_id(1)]
    assert page1["NextToken"]
    page2 = kinesis.list_shards(NextToken=page1["NextToken"], MaxResults=2)
    assert [s["ShardId"] for s in page2["Shards"]] == [h.shard_id(2), h.shard_id(3)]
    page3 = kinesis.list_shards(NextToken=page2["NextToken"], MaxResults=2)
    assert [s["ShardId"] for s in page3["Shards"]] == [h.shard_id(4)]
    assert "NextToken" not in page3

    after = kinesis.list_shards(StreamName=name, ExclusiveStartShardId=h.shard_id(2))
    assert [s["ShardId"] for s in after["Shards"]] == [h.shard_id(3), h.shard_id(4)]

    # The boto3 paginator resends StreamName with the NextToken, which AWS itself rejects
    # (botocore issue #2009), so it only works while one page holds every shard.
    pages = list(kinesis.get_paginator("list_shards").paginate(StreamName=name))
    assert len(pages) == 1
    assert [s["ShardId"] for s in pages[0]["Shards"]] == [h.shard_id(i) for i in range(5)]
    # A client that pages correctly (NextToken alone) walks the whole list.
    collected = []
    page = kinesis.list_shards(StreamName=name, MaxResults=1)
    while True:
        collected += [s["ShardId"] for s in page["Shards"]]
        if "NextToken" not in page:
            break
        assert len(collected) < 10
        page = kinesis.list_shards(NextToken=page["NextToken"], MaxResults=1)
    assert collected == [h.shard_id(i) for i in range(5)]


def test_list_shards_argument_errors(kinesis, new_stream):
    name = new_stream(shard_count=3)
    token = kinesis.list_shards(StreamName=name, MaxResults=1)["NextToken"]
    with pytest.raises(ClientError) as excinfo:
        kinesis.list_shards(StreamName=name, NextToken=token)
    h.assert_client_error(
        excinfo, "InvalidArgumentException", "NextToken and StreamName cannot be provided together."
    )
    with pytest.raises(ClientError) as excinfo:
        kinesis.list_shards()
    h.assert_client_error(
        excinfo, "InvalidArgumentException", "Either NextToken or StreamName should be provided."
    )
    # The token implies the stream, the position and the filter; AWS refuses each beside it.
    for member, value in (
        ("StreamARN", h.stream_arn(name)),
        ("ExclusiveStartShardId", h.shard_id(0)),
        ("StreamCreationTimestamp", _now()),
        ("ShardFilter", {"Type": "AT_LATEST"}),
    ):
        with pytest.raises(ClientError) as excinfo:
            kinesis.list_shards(NextToken=token, **{member: value})
        h.assert_client_error(
            excinfo,
            "InvalidArgumentException",
            f"NextToken and {member} cannot be provided together.",
        )
    for garbage in ("not-a-token", token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")):
        with pytest.raises(ClientError) as excinfo:
            kinesis.list_shards(NextToken=garbage)
        h.assert_client_error(excinfo, "InvalidArgumentException")
    # The token alone continues the listing.
    assert [s["ShardId"] for s in kinesis.list_shards(NextToken=token)["Shards"]] == [
        h.shard_id(1),
        h.shard_id(2),
    ]


def test_list_shards_filters_on_fresh_stream(kinesis, new_stream):
    name = new_stream(shard_count=4)
    all_ids = [h.shard_id(i) for i in range(4)]
    now = _now()

    def ids(shard_filter):
        return [s["ShardId"] for s in kinesis.list_shards(StreamName=name, ShardFilter=shard_filter)["Shards"]]

    assert ids({"Type": "AFTER_SHARD_ID", "ShardId": h.shard_id(1)}) == all_ids[2:]
    assert ids({"Type": "AFTER_SHARD_ID", "ShardId": h.shard_id(3)}) == []
    assert ids({"Type": "AT_TRIM_HORIZON"}) == all_ids
    assert ids({"Type": "FROM_TRIM_HORIZON"}) == all_ids
    assert ids({"Type": "AT_LATEST"}) == all_ids
    assert ids({"Type": "AT_TIMESTAMP", "Timestamp": now}) == all_ids
    assert ids({"Type": "FROM_TIMESTAMP", "Timestamp": now}) == all_ids
    # Before the stream existed: FROM_TIMESTAMP falls back to the trim horizon.
    assert ids({"Type": "FROM_TIMESTAMP", "Timestamp": now - dt.timedelta(hours=1)}) == all_ids

    first = kinesis.list_shards(
        StreamName=name,
        ShardFilter={"Type": "AFTER_SHARD_ID", "ShardId": h.shard_id(0)},
        MaxResults=2,
    )
    assert [s["ShardId"] for s in first["Shards"]] == all_ids[1:3]
    assert first["NextToken"]

    with pytest.raises(ClientError) as excinfo:
        kinesis.list_shards(StreamName=name, ShardFilter={"Type": "AFTER_SHARD_ID"})
    code, message = h.error_of(excinfo)
    assert code in ("InvalidArgumentException", "ValidationException"), (code, message)


# --- DescribeLimits / DescribeAccountSettings ------------------------------------------------------


def test_describe_limits_counts_open_shards(fresh_riffle):
    client = h.make_client(fresh_riffle.endpoint)
    empty = client.describe_limits()
    assert empty["OpenShardCount"] == 0
    assert empty["OnDemandStreamCount"] == 0
    assert isinstance(empty["ShardLimit"], int) and empty["ShardLimit"] > 0
    assert isinstance(empty["OnDemandStreamCountLimit"], int) and empty["OnDemandStreamCountLimit"] > 0

    provisioned = h.unique_stream_name("lim")
    on_demand = h.unique_stream_name("lim")
    client.create_stream(StreamName=provisioned, ShardCount=3)
    client.create_stream(StreamName=on_demand, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    for name in (provisioned, on_demand):
        client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig=WAIT_FAST)
    limits = client.describe_limits()
    assert limits["OpenShardCount"] == 3 + h.ON_DEMAND_INITIAL_SHARDS
    assert limits["OnDemandStreamCount"] == 1
    assert limits["ShardLimit"] == empty["ShardLimit"]

    client.delete_stream(StreamName=on_demand)
    client.get_waiter("stream_not_exists").wait(StreamName=on_demand, WaiterConfig=WAIT_FAST)
    after = client.describe_limits()
    assert after["OpenShardCount"] == 3
    assert after["OnDemandStreamCount"] == 0


def test_describe_account_settings(kinesis):
    if not hasattr(kinesis, "describe_account_settings"):
        pytest.skip("installed botocore has no DescribeAccountSettings")
    response = kinesis.describe_account_settings()
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    commitment = response.get("MinimumThroughputBillingCommitment")
    if commitment is not None:
        assert commitment["Status"] in ("ENABLED", "DISABLED", "ENABLED_UNTIL_EARLIEST_ALLOWED_END")
