"""Retention changes, stream tags (by name and by ARN) through boto3."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

import riffle_harness as h


def _retention(kinesis, name: str) -> int:
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
        "RetentionPeriodHours"
    ]


def _tags(kinesis, name: str) -> dict[str, str]:
    response = kinesis.list_tags_for_stream(StreamName=name)
    assert response["HasMoreTags"] is False
    return {t["Key"]: t["Value"] for t in response["Tags"]}


# --- retention ------------------------------------------------------------------------------------


def test_retention_increase_and_decrease(kinesis, new_stream):
    name = new_stream()
    assert _retention(kinesis, name) == h.DEFAULT_RETENTION_HOURS
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=72)
    assert _retention(kinesis, name) == 72
    assert kinesis.describe_stream(StreamName=name)["StreamDescription"]["RetentionPeriodHours"] == 72
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=h.MAX_RETENTION_HOURS)
    assert _retention(kinesis, name) == h.MAX_RETENTION_HOURS
    kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    assert _retention(kinesis, name) == 48
    kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=h.DEFAULT_RETENTION_HOURS)
    assert _retention(kinesis, name) == h.DEFAULT_RETENTION_HOURS
    # The stream stays usable.
    kinesis.put_record(StreamName=name, Data=b"still here", PartitionKey="k")
    assert [r["Data"] for r in h.read_shard(kinesis, name, h.shard_id(0))] == [b"still here"]


def test_retention_errors(kinesis, new_stream):
    name = new_stream()
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)

    with pytest.raises(ClientError) as excinfo:
        kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=24)
    h.assert_client_error(
        excinfo,
        "InvalidArgumentException",
        f"Requested retention period (24 hours) for stream {name} can not be shorter than existing "
        "retention period (48 hours). Use DecreaseRetentionPeriod API.",
    )
    with pytest.raises(ClientError) as excinfo:
        kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=72)
    h.assert_client_error(
        excinfo,
        "InvalidArgumentException",
        f"Requested retention period (72 hours) for stream {name} can not be longer than existing "
        "retention period (48 hours). Use IncreaseRetentionPeriod API.",
    )
    with pytest.raises(ClientError) as excinfo:
        kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=23)
    h.assert_client_error(
        excinfo,
        "InvalidArgumentException",
        "Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is "
        "too short.",
    )
    with pytest.raises(ClientError) as excinfo:
        kinesis.increase_stream_retention_period(
            StreamName=name, RetentionPeriodHours=h.MAX_RETENTION_HOURS + 1
        )
    message = h.assert_client_error(excinfo, "InvalidArgumentException")
    assert str(h.MAX_RETENTION_HOURS) in message and str(h.MAX_RETENTION_HOURS + 1) in message
    # None of the rejected calls changed anything.
    assert _retention(kinesis, name) == 48


# --- tags by stream name ------------------------------------------------------------------------------


def test_stream_tags_add_list_page_remove(kinesis, new_stream):
    name = new_stream()
    tags = {f"key-{i:02d}": f"value-{i}" for i in range(12)}
    tags["owner"] = ""  # empty values are allowed
    tags["Name with spaces_./=+-@"] = "ünïcödé value"
    kinesis.add_tags_to_stream(StreamName=name, Tags=tags)
    assert _tags(kinesis, name) == tags
    keys = sorted(tags)

    # Paging with Limit / ExclusiveStartTagKey / HasMoreTags, in key order.
    collected = []
    start = None
    pages = 0
    while True:
        kwargs = {"StreamName": name, "Limit": 5}
        if start is not None:
            kwargs["ExclusiveStartTagKey"] = start
        page = kinesis.list_tags_for_stream(**kwargs)
        pages += 1
        assert len(page["Tags"]) <= 5
        collected += [t["Key"] for t in page["Tags"]]
        if not page["HasMoreTags"]:
            break
        assert len(page["Tags"]) == 5
        start = page["Tags"][-1]["Key"]
        assert pages < 10
    assert collected == keys
    assert pages == 3

    # AddTagsToStream overwrites existing keys.
    kinesis.add_tags_to_stream(StreamName=name, Tags={"key-00": "changed", "new": "tag"})
    expected = dict(tags, **{"key-00": "changed", "new": "tag"})
    assert _tags(kinesis, name) == expected

    # Removing unknown keys is not an error.
    kinesis.remove_tags_from_stream(StreamName=name, TagKeys=["key-01", "key-02", "no-such-key"])
    for key in ("key-01", "key-02"):
        del expected[key]
    assert _tags(kinesis, name) == expected


def test_stream_tag_errors(kinesis, new_stream):
    name = new_stream(tags={"keep": "me"})
    with pytest.raises(ClientError) as excinfo:
        kinesis.add_tags_to_stream(StreamName=name, Tags={"bad*key": "v"})
    h.assert_client_error(
        excinfo,
        "InvalidArgumentException",
        "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white "
        "space, _ . / = + - % @.",
    )
    # More than 50 tags on one stream.
    with pytest.raises(ClientError) as excinfo:
        kinesis.add_tags_to_stream(StreamName=name, Tags={f"t{i}": "v" for i in range(50)})
    h.assert_client_error(
        excinfo,
        "InvalidArgumentException",
        f"Failed to add tags to stream {name} under account {h.DEFAULT_ACCOUNT_ID} because a "
        "given stream cannot have more than 50 tags associated with it.",
    )
    # Failed calls are atomic.
    assert _tags(kinesis, name) == {"keep": "me"}
    kinesis.add_tags_to_stream(StreamName=name, Tags={f"t{i}": "v" for i in range(49)})
    assert len(_tags(kinesis, name)) == 50


INVALID_TAG_CHARACTERS = (
    "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white "
    "space, _ . / = + - % @."
)


def _percent_refused(action: str, name: str) -> str:
    return (
        f"Failed to {action} stream {name} under account {h.DEFAULT_ACCOUNT_ID} because some tags "
        "contained illegal characters. The allowed characters are Unicode letters, white-spaces, "
        "'_',',','/','=','+','-','@'."
    )


def test_tag_characters(kinesis, new_stream):
    """Production's checks as kinesalite recorded them: only the space counts as white space,
    and '%' passes the first check to fail a second one with its own text."""
    name = new_stream(tags={"keep": "me"})
    for bad in ("abc;def", "abc,def", "abc\tdef", "abc\ndef"):
        for tags in ({bad: "v"}, {"k": bad}):
            with pytest.raises(ClientError) as excinfo:
                kinesis.add_tags_to_stream(StreamName=name, Tags=tags)
            h.assert_client_error(excinfo, "InvalidArgumentException", INVALID_TAG_CHARACTERS)
        with pytest.raises(ClientError) as excinfo:
            kinesis.remove_tags_from_stream(StreamName=name, TagKeys=[bad])
        h.assert_client_error(excinfo, "InvalidArgumentException", INVALID_TAG_CHARACTERS)
    with pytest.raises(ClientError) as excinfo:
        kinesis.add_tags_to_stream(StreamName=name, Tags={"abc%def": "v"})
    h.assert_client_error(
        excinfo, "InvalidArgumentException", _percent_refused("add tags to", name)
    )
    with pytest.raises(ClientError) as excinfo:
        kinesis.remove_tags_from_stream(StreamName=name, TagKeys=["abc%def"])
    h.assert_client_error(
        excinfo, "InvalidArgumentException", _percent_refused("remove tags from", name)
    )
    with pytest.raises(ClientError) as excinfo:
        kinesis.untag_resource(ResourceARN=h.stream_arn(name), TagKeys=["a;b"])
    h.assert_client_error(excinfo, "InvalidArgumentException", INVALID_TAG_CHARACTERS)
    kinesis.remove_tags_from_stream(StreamName=name, TagKeys=["ü0 _.", "/=+-@"])
    assert _tags(kinesis, name) == {"keep": "me"}


# --- tags by ARN -----------------------------------------------------------------------------------------


def test_tag_resource_by_arn(kinesis, new_stream):
    name = new_stream(tags={"from": "create"})
    arn = h.stream_arn(name)
    kinesis.tag_resource(ResourceARN=arn, Tags={"team": "data", "cost-center": "42"})
    listed = kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"]
    assert sorted((t["Key"], t["Value"]) for t in listed) == [
        ("cost-center", "42"),
        ("from", "create"),
        ("team", "data"),
    ]
    # One tag set, whichever API wrote it.
    assert _tags(kinesis, name) == {"from": "create", "team": "data", "cost-center": "42"}
    kinesis.add_tags_to_stream(StreamName=name, Tags={"team": "platform"})
    listed = kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"]
    assert {t["Key"]: t["Value"] for t in listed}["team"] == "platform"

    kinesis.untag_resource(ResourceARN=arn, TagKeys=["from", "team", "absent"])
    assert kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"] == [
        {"Key": "cost-center", "Value": "42"}
    ]

    missing = h.stream_arn(h.unique_stream_name("nope"))
    for call in (
        lambda: kinesis.tag_resource(ResourceARN=missing, Tags={"a": "b"}),
        lambda: kinesis.untag_resource(ResourceARN=missing, TagKeys=["a"]),
        lambda: kinesis.list_tags_for_resource(ResourceARN=missing),
    ):
        with pytest.raises(ClientError) as excinfo:
            call()
        h.assert_client_error(
            excinfo, "ResourceNotFoundException", h.not_found_message(missing.split("/")[-1])
        )
