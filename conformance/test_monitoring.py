"""Monitoring through boto3 (kinesis-api.md §3.6, §3.8): Enable/DisableEnhancedMonitoring with
AWS's CurrentShardLevelMetrics / DesiredShardLevelMetrics and DescribeStream rendering,
Update/DescribeAccountSettings (On-demand Advantage), UpdateStreamWarmThroughput, and a scrape of
the Prometheus endpoint (`riffle serve --metrics-listen`) after a known workload.

Each test starts its own server: account settings are account-wide and would change what other
tests on the session server see (the consumer limit, for one)."""

from __future__ import annotations

import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

import riffle_harness as h

# ALL spelled out, in the order AWS answers it (the AWS CLI's documented
# `enable-enhanced-monitoring --shard-level-metrics ALL` output).
SEVEN = [
    "IncomingBytes",
    "OutgoingRecords",
    "IteratorAgeMilliseconds",
    "IncomingRecords",
    "ReadProvisionedThroughputExceeded",
    "WriteProvisionedThroughputExceeded",
    "OutgoingBytes",
]
SIX = [metric for metric in SEVEN if metric != "IteratorAgeMilliseconds"]
METRICS_LINE = "riffle metrics listening on "
DAY_SECONDS = 24 * 3600


@pytest.fixture
def monitored(tmp_path):
    """A server of the test's own with `--metrics-listen`: (boto3 client, metrics URL)."""
    server = h.start_server(
        tmp_path / "riffle", ["--limits", "off", "--metrics-listen", "127.0.0.1:0"]
    )
    # The metrics line follows the listening line the harness already read.
    deadline = time.monotonic() + h.SERVER_START_TIMEOUT_SECONDS
    address = None
    while address is None:
        for line in list(server.stdout_rest):
            if line.startswith(METRICS_LINE):
                address = line[len(METRICS_LINE) :].strip()
        if address is None:
            assert time.monotonic() < deadline, f"no metrics line; stdout {server.stdout_rest}"
            time.sleep(0.05)
    yield h.make_client(server.endpoint), f"http://{address}/metrics"
    server.stop()


def create(client, name: str, shards: int = 1, on_demand: bool = False) -> None:
    if on_demand:
        client.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    else:
        client.create_stream(StreamName=name, ShardCount=shards)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})


def described(client, name: str):
    description = client.describe_stream(StreamName=name)["StreamDescription"]["EnhancedMonitoring"]
    summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["EnhancedMonitoring"] == description
    return description


def test_enhanced_monitoring_round_trip(monitored):
    client, _ = monitored
    name = h.unique_stream_name("mon")
    create(client, name, 2)
    assert described(client, name) == [{"ShardLevelMetrics": []}]

    enabled = client.enable_enhanced_monitoring(
        StreamName=name, ShardLevelMetrics=["OutgoingBytes", "IncomingBytes"]
    )
    assert enabled["StreamName"] == name
    assert enabled["StreamARN"] == h.stream_arn(name)
    assert enabled["CurrentShardLevelMetrics"] == []
    assert enabled["DesiredShardLevelMetrics"] == ["IncomingBytes", "OutgoingBytes"]
    assert described(client, name) == [{"ShardLevelMetrics": ["IncomingBytes", "OutgoingBytes"]}]

    everything = client.enable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["ALL"])
    assert everything["CurrentShardLevelMetrics"] == ["IncomingBytes", "OutgoingBytes"]
    assert everything["DesiredShardLevelMetrics"] == SEVEN

    fewer = client.disable_enhanced_monitoring(
        StreamARN=h.stream_arn(name), ShardLevelMetrics=["IteratorAgeMilliseconds"]
    )
    assert fewer["CurrentShardLevelMetrics"] == SEVEN
    assert fewer["DesiredShardLevelMetrics"] == SIX
    none = client.disable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["ALL"])
    assert none["CurrentShardLevelMetrics"] == SIX
    assert none["DesiredShardLevelMetrics"] == []
    assert described(client, name) == [{"ShardLevelMetrics": []}]

    with pytest.raises(ClientError) as excinfo:
        client.enable_enhanced_monitoring(StreamName=name + "-missing", ShardLevelMetrics=["ALL"])
    h.assert_client_error(excinfo, "ResourceNotFoundException", h.not_found_message(name + "-missing"))


def test_account_settings_and_warm_throughput(monitored):
    client, _ = monitored
    assert client.describe_account_settings()["MinimumThroughputBillingCommitment"]["Status"] == "DISABLED"
    name = h.unique_stream_name("warm")
    create(client, name, on_demand=True)
    with pytest.raises(ClientError) as excinfo:
        client.update_stream_warm_throughput(StreamName=name, WarmThroughputMiBps=8)
    h.assert_client_error(excinfo, "InvalidArgumentException")

    before = time.time()
    enabled = client.update_account_settings(
        MinimumThroughputBillingCommitment={"Status": "ENABLED"}
    )["MinimumThroughputBillingCommitment"]
    assert enabled["Status"] == "ENABLED"
    started = enabled["StartedAt"].timestamp()
    assert before - 1 <= started <= time.time() + 1
    assert abs(enabled["EarliestAllowedEndAt"].timestamp() - started - DAY_SECONDS) < 0.01
    assert "EndedAt" not in enabled
    assert client.describe_account_settings()["MinimumThroughputBillingCommitment"] == enabled

    warm = client.update_stream_warm_throughput(StreamARN=h.stream_arn(name), WarmThroughputMiBps=8)
    assert warm["StreamName"] == name
    assert warm["WarmThroughput"] == {"TargetMiBps": 8, "CurrentMiBps": 8}
    summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 8
    assert summary["WarmThroughput"] == {"TargetMiBps": 8, "CurrentMiBps": 8}

    fixed = h.unique_stream_name("fixed")
    create(client, fixed, 1)
    with pytest.raises(ClientError) as excinfo:
        client.update_stream_warm_throughput(StreamName=fixed, WarmThroughputMiBps=8)
    h.assert_client_error(excinfo, "ValidationException")

    # Disabled within the 24-hour minimum: in force until EarliestAllowedEndAt.
    pending = client.update_account_settings(
        MinimumThroughputBillingCommitment={"Status": "DISABLED"}
    )["MinimumThroughputBillingCommitment"]
    assert pending["Status"] == "ENABLED_UNTIL_EARLIEST_ALLOWED_END"
    assert pending["StartedAt"] == enabled["StartedAt"]
    assert pending["EarliestAllowedEndAt"] == enabled["EarliestAllowedEndAt"]


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = response.read().decode("utf-8")
    series = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            series[key] = float(value)
    return series


def test_a_scrape_counts_a_known_workload(monitored):
    client, url = monitored
    name = h.unique_stream_name("scrape")
    create(client, name, 1)
    client.enable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["IncomingRecords"])
    sizes = []
    for i in range(2):
        data = f"one-{i}".encode()
        client.put_record(StreamName=name, Data=data, PartitionKey="p")
        sizes.append(len(data) + 1)
    batch = [{"Data": f"many-{i}".encode(), "PartitionKey": "pk"} for i in range(3)]
    result = client.put_records(StreamName=name, Records=batch)
    assert result["FailedRecordCount"] == 0
    sizes += [len(entry["Data"]) + 2 for entry in batch]
    records = h.read_shard(client, name, h.shard_id(0))
    assert len(records) == 5

    series = scrape(url)
    labels = f'account="{h.DEFAULT_ACCOUNT_ID}",stream="{name}"'

    def value(metric: str, extra: str = "") -> float:
        key = f"{metric}{{{labels}{extra}}}"
        assert key in series, f"{key} missing from the scrape"
        return series[key]

    assert value("kinesis_IncomingRecords") == 5
    assert value("kinesis_IncomingBytes") == sum(sizes)
    assert value("kinesis_PutRecord_Success") == 2
    assert value("kinesis_PutRecord_Bytes") == sum(sizes[:2])
    assert value("kinesis_PutRecord_Latency_count") == 2
    assert value("kinesis_PutRecords_Success") == 1
    assert value("kinesis_PutRecords_TotalRecords") == 3
    assert value("kinesis_PutRecords_SuccessfulRecords") == 3
    assert value("kinesis_PutRecords_ThrottledRecords") == 0
    assert value("kinesis_GetRecords_Records") == 5
    assert value("kinesis_GetRecords_Bytes") == sum(sizes)
    assert value("kinesis_GetRecords_Success") == value("kinesis_GetRecords_Latency_count") >= 1
    assert value("kinesis_PutRecords_Latency_bucket", ',le="+Inf"') == 1
    shard = f',shard="{h.shard_id(0)}"'
    assert value("kinesis_shard_IncomingRecords", shard) == 5
    # Only the enabled shard-level metric is reported.
    assert f"kinesis_shard_IncomingBytes{{{labels}{shard}}}" not in series
