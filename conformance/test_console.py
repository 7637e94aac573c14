"""The web console (`GET /console/`) in a real browser: headless Chromium (Debian's `chromium`,
driven through Debian's `chromedriver` by selenium) against a riffle started here.

What a user does, checked against what the API then holds (boto3 reads it back): create streams
through the form, put records through the put form (plain, one per line, a KPL aggregate), see
them in the data viewer as text, pretty JSON and hex, de-aggregated, and live as they arrive;
reshard and find the children in the lineage graph; watch the metrics charts move; delete a
stream. With `--credentials`: the sign-in page, a wrong secret refused, the right one signing
every call in the browser, only that key's account visible, the secret in sessionStorage only.

No page may log a Content-Security-Policy violation or a script error, and no page may be wider
than a narrow (420 px) window. Screenshots of every page, desktop and narrow, are written to
`conformance/screenshots/` (gitignored) as test artefacts. scripts/test-all installs chromium
and chromedriver; without them these tests fail, they do not skip.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

import riffle_harness as h

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
DESKTOP = (1366, 860)
NARROW = (420, 860)
WAIT_SECONDS = 30


@pytest.fixture
def browser():
    chromium = shutil.which("chromium")
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.fail(
            "the console tests need Debian's chromium and chromium-driver "
            "(scripts/test-all installs them: apt-get install chromium chromium-driver)",
            pytrace=False,
        )
    # Never let selenium look for drivers or browsers on the network.
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--no-first-run",
        "--force-device-scale-factor=1",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_window_size(*DESKTOP)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, what, condition, timeout=WAIT_SECONDS):
    """`condition(driver)` until truthy; fails naming `what` and showing the page's alerts."""
    try:
        return WebDriverWait(
            driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
        ).until(lambda d: condition(d))
    except Exception as error:  # TimeoutException, or one the condition raised last
        flash = driver.execute_script(
            "return (document.getElementById('flash') || {}).innerText || ''"
        )
        raise AssertionError(f"timed out waiting for {what}; page says: {flash!r}") from error


def css(driver, selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


def go(driver, url):
    driver.get(url)
    wait_for(driver, "the page script", lambda d: "Loading" not in d.find_element(By.ID, "main").text)


def console_errors(driver, allowed=()):
    """Script errors and CSP violations the page logged (each entry once)."""
    entries = driver.get_log("browser")
    return [
        entry["message"]
        for entry in entries
        if entry["level"] == "SEVERE" and not any(a in entry["message"] for a in allowed)
    ]


def screenshot(driver, name):
    """The page at desktop and narrow widths, whole height (as the device metrics of a screen
    that tall); also checks that neither layout overflows sideways."""
    SCREENSHOTS.mkdir(exist_ok=True)

    def metrics(width, height):
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        time.sleep(0.3)

    try:
        for label, (width, height) in (("desktop", DESKTOP), ("narrow", NARROW)):
            metrics(width, height)
            full = driver.execute_script("return document.documentElement.scrollHeight")
            metrics(width, max(height, min(int(full), 2400)))
            assert driver.save_screenshot(str(SCREENSHOTS / f"{name}-{label}.png"))
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 1, f"{name} is {overflow}px wider than a {width}px window"
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def stream_row(driver, name):
    rows = css(driver, f'#streams tr[data-stream="{name}"]')
    return rows[0] if rows else None


def row_cells(driver, name):
    """The row's cell texts, read in one script (the table is redrawn on every refresh)."""
    return driver.execute_script(
        "const row = document.querySelector(`#streams tr[data-stream=\"${arguments[0]}\"]`);"
        "return row ? Array.from(row.cells, c => c.innerText.trim()) : null;",
        name,
    )


def record_cells(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#records tbody tr'), tr => ({"
        " shard: tr.dataset.shardId,"
        " key: tr.cells[3].innerText,"
        " note: (tr.querySelector('.note') || {}).innerText || '',"
        " data: tr.querySelector('pre').textContent }))"
    )


def all_records(client, stream):
    found = []
    for shard in h.list_all_shards(client, stream):
        found.extend(h.read_shard(client, stream, shard["ShardId"]))
    return found


def kpl_user_data(blob: bytes) -> list[bytes]:
    """The user records of a KPL aggregate (checks magic and MD5), to read what the form's KPL
    option wrote independently of the page's own decoder."""
    assert blob[:4] == b"\xf3\x89\x9a\xc2", blob[:8]
    message, digest = blob[4:-16], blob[-16:]
    assert hashlib.md5(message).digest() == digest

    def varint(buf, at):
        value, shift = 0, 0
        while True:
            byte = buf[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value, at

    def fields(buf):
        at = 0
        while at < len(buf):
            key, at = varint(buf, at)
            if key & 7 == 0:
                value, at = varint(buf, at)
            else:
                length, at = varint(buf, at)
                value, at = buf[at : at + length], at + length
            yield key >> 3, value

    return [
        dict(fields(value))[3] for number, value in fields(message) if number == 3
    ]


# ---------------------------------------------------------------------------------------------


def test_console_streams_data_viewer_reshard_and_metrics(tmp_path, browser):
    driver = browser
    server = h.start_server(tmp_path / "riffle")
    try:
        client = h.make_client(server.endpoint)
        console = f"{server.endpoint}/console/"
        go(driver, console)
        wait_for(driver, "the empty list", lambda d: "No streams yet" in d.find_element(By.ID, "streams").text)

        # Create two streams through the form.
        def create(name, mode, shards=None):
            driver.find_element(By.ID, "create-name").send_keys(name)
            Select(driver.find_element(By.ID, "create-mode")).select_by_value(mode)
            if shards is not None:
                field = driver.find_element(By.ID, "create-shards")
                field.clear()
                field.send_keys(str(shards))
            driver.find_element(By.ID, "create-submit").click()
            wait_for(driver, f"{name} ACTIVE", lambda d: (row_cells(d, name) or [""] * 3)[2] == "ACTIVE")

        create("orders", "PROVISIONED", 2)
        create("clicks", "ON_DEMAND")
        orders = row_cells(driver, "orders")
        assert orders[1:7] == ["provisioned", "ACTIVE", "2", "1 d", "none", "0"], orders
        assert row_cells(driver, "clicks")[1:4] == ["on-demand", "ACTIVE", "4"]
        summary = client.describe_stream_summary(StreamName="orders")["StreamDescriptionSummary"]
        assert summary["OpenShardCount"] == 2

        # A queue and a channel reading a stream (all made with boto3) show on the streams page
        # and on the stream's own page.
        client.create_stream(StreamName="events", StreamModeDetails={"StreamMode": "ON_DEMAND"})
        client.get_waiter("stream_exists").wait(StreamName="events", WaiterConfig={"Delay": 1})
        events_arn = h.stream_arn("events")
        client.create_queue(
            QueueName="events-work",
            StreamConfigurationList=[{"StreamARN": events_arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}],
        )
        client.create_channel(
            ChannelName="events-lake",
            ServiceExecutionRoleARN="arn:aws:iam::000000000000:role/channels",
            StreamConfigurationList=[{"StreamARN": events_arn, "RecordConfiguration": {"RecordFormatType": "JSON"}}],
            S3DestinationConfiguration={"StorageConfiguration": {
                "BucketARN": "arn:aws:s3:::lake", "ExpectedBucketOwner": "000000000000", "CompressionType": "GZIP"}},
        )
        driver.find_element(By.ID, "refresh").click()
        wait_for(driver, "queue and channel counts", lambda d: (row_cells(d, "events") or [""] * 9)[7:9] == ["1", "1"])
        assert row_cells(driver, "orders")[7:9] == ["0", "0"]
        screenshot(driver, "streams")
        stream_row(driver, "events").find_element(By.LINK_TEXT, "events").click()
        wait_for(driver, "the readers of events", lambda d: css(d, "#summary .reader.channel"))
        readers = {el.get_attribute("data-name") for el in driver.find_elements(By.CSS_SELECTOR, "#summary .reader")}
        assert readers == {"events-work", "events-lake"}, readers
        go(driver, console)
        wait_for(driver, "the streams list", lambda d: row_cells(d, "orders"))

        # The data viewer: put records through the form.
        stream_row(driver, "orders").find_element(By.LINK_TEXT, "orders").click()
        wait_for(driver, "the shards tab", lambda d: css(d, "#lineage svg"))
        driver.find_element(By.ID, "tab-data").click()
        wait_for(driver, "the put form", lambda d: css(d, "#put-data"))
        lines = ['{"order": 1, "item": "tea"}', '{"order": 2, "item": "cake"}', "plain text"]
        data = driver.find_element(By.ID, "put-data")
        data.clear()
        data.send_keys("\n".join(lines))
        driver.find_element(By.ID, "put-lines").click()
        driver.find_element(By.ID, "put-submit").click()
        wait_for(driver, "the put result", lambda d: "Put 3 of 3 records" in d.find_element(By.ID, "put-result").text)
        # A KPL aggregate of two user records, under another key.
        key = driver.find_element(By.ID, "put-key")
        key.clear()
        key.send_keys("kpl-key")
        data.clear()
        data.send_keys("kpl-a\nkpl-b")
        driver.find_element(By.ID, "put-lines").click()
        driver.find_element(By.ID, "put-kpl").click()
        driver.find_element(By.ID, "put-submit").click()
        wait_for(driver, "the KPL put", lambda d: "KPL aggregate of 2" in d.find_element(By.ID, "put-result").text)

        # What the form wrote is in the stream, byte for byte.
        stored = all_records(client, "orders")
        plain = sorted(r["Data"] for r in stored if r["PartitionKey"] == "key-1")
        assert plain == sorted(line.encode() for line in lines)
        aggregates = [r["Data"] for r in stored if r["PartitionKey"] == "kpl-key"]
        assert len(aggregates) == 1 and kpl_user_data(aggregates[0]) == [b"kpl-a", b"kpl-b"]

        # Read from TRIM_HORIZON on every shard, following.
        Select(driver.find_element(By.ID, "start-type")).select_by_value("TRIM_HORIZON")
        driver.find_element(By.ID, "read-start").click()
        wait_for(driver, "five rows", lambda d: len(record_cells(d)) == 5)
        shown = record_cells(driver)
        texts = sorted(row["data"] for row in shown)
        assert texts == sorted(lines + ["kpl-a", "kpl-b"]), texts
        kpl_rows = [row for row in shown if row["data"].startswith("kpl-")]
        assert [row["key"] for row in kpl_rows] == ["kpl-key", "kpl-key"]
        assert kpl_rows[0]["note"] == "KPL aggregate of 2"

        Select(driver.find_element(By.ID, "format")).select_by_value("json")
        pretty = {row["data"] for row in record_cells(driver)}
        assert '{\n  "order": 1,\n  "item": "tea"\n}' in pretty, pretty
        driver.find_element(By.ID, "deagg").click()  # off: the aggregate as one record
        raw = [row["data"] for row in record_cells(driver)]
        assert len(raw) == 4
        driver.find_element(By.ID, "deagg").click()
        Select(driver.find_element(By.ID, "format")).select_by_value("hex")
        dumps = [row["data"] for row in record_cells(driver)]
        assert any(d.startswith("00000000  70 6c 61 69 6e 20 74 65 78 74") for d in dumps), dumps  # "plain text"

        # Follow: a record written now by another client shows up.
        Select(driver.find_element(By.ID, "format")).select_by_value("text")
        client.put_record(StreamName="orders", PartitionKey="late", Data=b"arrived while watching")
        wait_for(driver, "the live record", lambda d: any(r["data"] == "arrived while watching" for r in record_cells(d)))
        screenshot(driver, "data-viewer")
        driver.find_element(By.ID, "read-stop").click()

        # AT_SEQUENCE_NUMBER on the shard that holds the late record starts at it.
        late = [r for r in all_records(client, "orders") if r["PartitionKey"] == "late"][0]
        late_shard = [
            s["ShardId"]
            for s in h.list_all_shards(client, "orders")
            if late["SequenceNumber"] in {r["SequenceNumber"] for r in h.read_shard(client, "orders", s["ShardId"])}
        ][0]
        driver.find_element(By.ID, "read-clear").click()
        for box in css(driver, ".shard-pick"):
            if (box.get_attribute("value") == late_shard) != box.is_selected():
                box.click()
        Select(driver.find_element(By.ID, "start-type")).select_by_value("AT_SEQUENCE_NUMBER")
        driver.find_element(By.ID, "start-value").send_keys(late["SequenceNumber"])
        driver.find_element(By.ID, "follow").click()  # read to the end, then stop
        driver.find_element(By.ID, "read-start").click()
        wait_for(driver, "the read to finish", lambda d: d.find_element(By.ID, "read-status").text.startswith("done"))
        assert [r["data"] for r in record_cells(driver)] == ["arrived while watching"]

        # Reshard from the streams page: 2 -> 4.
        driver.find_element(By.LINK_TEXT, "Streams").click()
        wait_for(driver, "the orders row", lambda d: stream_row(d, "orders"))
        target = stream_row(driver, "orders").find_element(By.CSS_SELECTOR, ".reshard input")
        target.clear()
        target.send_keys("4")
        stream_row(driver, "orders").find_element(By.CSS_SELECTOR, ".reshard button").click()
        wait_for(driver, "4 open shards", lambda d: (row_cells(d, "orders") or [""] * 4)[3] == "4")
        assert client.describe_stream_summary(StreamName="orders")["StreamDescriptionSummary"]["OpenShardCount"] == 4

        # The lineage graph has every shard, and an edge from each parent to each child.
        driver.get(f"{console}#/streams/orders/shards")
        wait_for(driver, "the lineage", lambda d: css(d, "#lineage svg g.shard"))
        shards = h.list_all_shards(client, "orders")
        drawn = {g.get_attribute("data-shard-id"): g.get_attribute("class") for g in css(driver, "#lineage g.shard")}
        assert set(drawn) == {s["ShardId"] for s in shards}
        open_ids = {s["ShardId"] for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]}
        assert {sid for sid, cls in drawn.items() if "open" in cls.split()} == open_ids
        assert len(open_ids) == 4
        edges = {(p.get_attribute("data-parent"), p.get_attribute("data-child")) for p in css(driver, "#lineage path.edge")}
        expected = {
            (parent, s["ShardId"])
            for s in shards
            for parent in (s.get("ParentShardId"), s.get("AdjacentParentShardId"))
            if parent
        }
        assert expected and edges == expected
        children = {child for _, child in edges}
        assert open_ids <= children, "every new shard descends from a drawn parent"
        assert len(css(driver, "#shards tbody tr")) == len(shards)
        screenshot(driver, "shards")

        # Metrics: records written now move the incoming-records chart.
        driver.get(f"{console}#/streams/orders/metrics")
        wait_for(driver, "four charts", lambda d: len(css(d, "#charts svg.chart")) == 4)
        wait_for(driver, "the readers", lambda d: "following 4 shards" in d.find_element(By.ID, "metrics-status").text)

        def chart_moved(d):
            client.put_records(
                StreamName="orders",
                Records=[{"PartitionKey": f"m{i}", "Data": b"x" * 100} for i in range(20)],
            )
            ys = d.execute_script(
                "const chart = document.querySelector('#charts svg.chart');"
                "return Array.from(chart.querySelectorAll('polyline.series'), p =>"
                " p.getAttribute('points').split(' ').map(xy => Number(xy.split(',')[1])));"
            )
            baseline = 170  # y of 0 in charts.js's 190-high chart (top 32, bottom 20)
            return any(y < baseline - 1 for series in ys for y in series)

        wait_for(driver, "a non-zero records/s point", chart_moved, timeout=45)
        screenshot(driver, "metrics")

        # Delete: the first click arms the button, the second deletes.
        driver.find_element(By.LINK_TEXT, "Streams").click()
        wait_for(driver, "the clicks row", lambda d: stream_row(d, "clicks"))
        stream_row(driver, "clicks").find_element(By.CSS_SELECTOR, "button.delete").click()
        stream_row(driver, "clicks").find_element(By.CSS_SELECTOR, "button.delete.armed").click()
        wait_for(driver, "clicks gone", lambda d: stream_row(d, "clicks") is None)
        assert client.list_streams()["StreamNames"] == ["events", "orders"]

        errors = console_errors(driver)
        assert not errors, errors
    finally:
        server.stop()


def test_console_signs_with_the_key_it_is_given(tmp_path, browser):
    driver = browser
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "CONSOLEKEYA secret-of-a 111111111111 alice\n"
        "CONSOLEKEYB secret-of-b 222222222222\n"
    )
    credentials.chmod(0o600)
    server = h.start_server(tmp_path / "riffle", ["--credentials", str(credentials)])
    try:
        alice = h.make_client(server.endpoint, "CONSOLEKEYA", secret_access_key="secret-of-a")
        bob = h.make_client(server.endpoint, "CONSOLEKEYB", secret_access_key="secret-of-b")
        alice.create_stream(StreamName="alices", ShardCount=1)
        bob.create_stream(StreamName="bobs", ShardCount=1)
        alice.put_record(StreamName="alices", PartitionKey="k", Data=b"for alice only")

        go(driver, f"{server.endpoint}/console/")
        wait_for(driver, "the sign-in form", lambda d: css(d, "#login-key"))
        screenshot(driver, "sign-in")

        def sign_in(key, secret):
            for field, value in (("login-key", key), ("login-secret", secret)):
                element = driver.find_element(By.ID, field)
                element.clear()
                element.send_keys(value)
            driver.find_element(By.ID, "login-submit").click()

        sign_in("CONSOLEKEYA", "not-the-secret")
        wait_for(driver, "the refusal", lambda d: "InvalidSignatureException" in d.find_element(By.ID, "login-error").text)
        assert driver.execute_script("return sessionStorage.length") == 0

        sign_in("CONSOLEKEYA", "secret-of-a")
        wait_for(driver, "alice's streams", lambda d: stream_row(d, "alices") is not None)
        assert stream_row(driver, "bobs") is None, "another account's stream is visible"
        assert "CONSOLEKEYA" in driver.find_element(By.ID, "who").text
        # The secret is in this tab's sessionStorage, and nowhere that outlives it.
        stored = driver.execute_script(
            "return [sessionStorage.getItem('riffle-console-key'), localStorage.length, document.cookie]"
        )
        assert json.loads(stored[0])["secretAccessKey"] == "secret-of-a"
        assert stored[1:] == [0, ""]

        # Signed reads and writes from the page.
        driver.get(f"{server.endpoint}/console/#/streams/alices/data")
        wait_for(driver, "the put form", lambda d: css(d, "#put-data"))
        data = driver.find_element(By.ID, "put-data")
        data.clear()
        data.send_keys("signed in the browser")
        driver.find_element(By.ID, "put-submit").click()
        wait_for(driver, "the put result", lambda d: "Put 1 record" in d.find_element(By.ID, "put-result").text)
        driver.find_element(By.ID, "read-start").click()
        wait_for(driver, "both records", lambda d: len(record_cells(d)) == 2)
        assert sorted(r["data"] for r in record_cells(driver)) == ["for alice only", "signed in the browser"]
        written = [r["Data"] for r in h.read_shard(alice, "alices", "shardId-000000000000")]
        assert written == [b"for alice only", b"signed in the browser"]
        screenshot(driver, "data-viewer-signed")

        # Signing out forgets the key.
        driver.find_element(By.ID, "sign-out").click()
        wait_for(driver, "the sign-in form", lambda d: css(d, "#login-key"))
        assert driver.execute_script("return sessionStorage.length") == 0

        # The refused sign-in and the unsigned probe are 400s the browser logs; nothing else.
        errors = console_errors(driver, allowed=("the server responded with a status of 400",))
        assert not errors, errors
    finally:
        server.stop()
