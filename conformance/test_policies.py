"""Resource policies through boto3 (issue 5, item 2): another account is denied, then allowed
by a policy naming it, then denied again by an explicit Deny. Two accounts are two 12-digit
access key ids (without a credentials file, such a key id names its account)."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

import riffle_harness as h

OWNER, OTHER = "111111111111", "222222222222"


def _denied(excinfo, action: str, arn: str, explicit: bool) -> None:
    reason = (
        "with an explicit deny in a resource-based policy"
        if explicit
        else f"because no resource-based policy allows the kinesis:{action} action"
    )
    h.assert_client_error(
        excinfo,
        "AccessDeniedException",
        f"User: arn:aws:iam::{OTHER}:root is not authorized to perform: kinesis:{action} on "
        f"resource: {arn} {reason}",
    )


def test_cross_account_denied_allowed_then_denied_again(endpoint):
    owner = h.make_client(endpoint, access_key_id=OWNER)
    other = h.make_client(endpoint, access_key_id=OTHER)
    name = h.unique_stream_name("policy")
    owner.create_stream(StreamName=name, ShardCount=1)
    arn = h.stream_arn(name, OWNER)
    assert owner.get_resource_policy(ResourceARN=arn)["Policy"] == "{}"

    with pytest.raises(ClientError) as excinfo:
        other.put_record(StreamARN=arn, PartitionKey="k", Data=b"refused")
    _denied(excinfo, "PutRecord", arn, explicit=False)

    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"},
                "Action": ["kinesis:PutRecord", "kinesis:GetShardIterator", "kinesis:GetRecords"],
                "Resource": arn,
            }
        ],
    }
    owner.put_resource_policy(ResourceARN=arn, Policy=json.dumps(policy))
    assert json.loads(owner.get_resource_policy(ResourceARN=arn)["Policy"]) == policy
    other.put_record(StreamARN=arn, PartitionKey="k", Data=b"allowed")

    policy["Statement"].append({"Effect": "Deny", "Principal": {"AWS": OTHER}, "Action": "kinesis:PutRecord"})
    owner.put_resource_policy(ResourceARN=arn, Policy=json.dumps(policy))
    with pytest.raises(ClientError) as excinfo:
        other.put_record(StreamARN=arn, PartitionKey="k", Data=b"denied")
    _denied(excinfo, "PutRecord", arn, explicit=True)

    iterator = other.get_shard_iterator(
        StreamARN=arn, ShardId=h.shard_id(0), ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = other.get_records(StreamARN=arn, ShardIterator=iterator)["Records"]
    assert [r["Data"] for r in records] == [b"allowed"]

    with pytest.raises(ClientError) as excinfo:
        owner.put_resource_policy(ResourceARN=arn, Policy="{}")
    h.assert_client_error(excinfo, "InvalidArgumentException")
    owner.delete_resource_policy(ResourceARN=arn)
    with pytest.raises(ClientError) as excinfo:
        other.get_shard_iterator(StreamARN=arn, ShardId=h.shard_id(0), ShardIteratorType="LATEST")
    _denied(excinfo, "GetShardIterator", arn, explicit=False)
    owner.delete_stream(StreamName=name)
