// The AWS SDK for JavaScript v3 (@aws-sdk/client-kinesis) against a running riffle server:
// PutRecords and SubscribeToShard. The Kinesis client sends every call through its
// NodeHttp2Handler, which on an http:// endpoint speaks HTTP/2 with prior knowledge (h2c); the
// test records every HTTP/2 session the handler opens and asserts that all were h2c.
//
// Starts nothing itself: RIFFLE_ENDPOINT names the server (conformance/test_js_sdk.py starts one
// with short keep-alives, --subscription-keep-alive-ms 200, and --limits off).
//
//   RIFFLE_ENDPOINT=http://127.0.0.1:4567 node --test kinesis.test.mjs

import { test, after } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import { randomUUID } from "node:crypto";

import {
  KinesisClient,
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  RegisterStreamConsumerCommand,
  PutRecordsCommand,
  SubscribeToShardCommand,
} from "@aws-sdk/client-kinesis";

const endpoint = process.env.RIFFLE_ENDPOINT;
if (!endpoint) {
  throw new Error("set RIFFLE_ENDPOINT to a riffle server, e.g. http://127.0.0.1:4567");
}

const REGION = "us-east-1";
const ACCOUNT = "000000000000";
const SHARD = "shardId-000000000000";
const EVENT_TIMEOUT_MS = 20_000;
const TEST_TIMEOUT_MS = 90_000;

// Every HTTP/2 session the SDK's handler opens, and the protocol each one negotiated.
const sessions = [];
const protocols = [];
const connect = http2.connect;
http2.connect = function (...args) {
  const session = connect.apply(this, args);
  sessions.push(session);
  session.once("connect", () => protocols.push(session.alpnProtocol));
  return session;
};

const client = new KinesisClient({
  endpoint,
  region: REGION,
  credentials: { accessKeyId: "conformance", secretAccessKey: "conformance-secret" },
  maxAttempts: 1,
});

after(() => {
  client.destroy();
  for (const session of sessions) {
    session.destroy();
  }
});

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function createStream(shards = 1) {
  const name = `js-${randomUUID().slice(0, 12)}`;
  await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  for (let attempt = 0; ; attempt++) {
    const summary = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    if (summary.StreamDescriptionSummary.StreamStatus === "ACTIVE") {
      return { name, arn: `arn:aws:kinesis:${REGION}:${ACCOUNT}:stream/${name}` };
    }
    assert.ok(attempt < 100, `${name} never became ACTIVE`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function register(streamArn, name) {
  const { Consumer } = await client.send(
    new RegisterStreamConsumerCommand({ StreamARN: streamArn, ConsumerName: name }),
  );
  assert.equal(Consumer.ConsumerName, name);
  assert.equal(Consumer.ConsumerStatus, "CREATING");
  assert.match(Consumer.ConsumerARN, new RegExp(`^${streamArn}/consumer/${name}:[0-9]+$`));
  return Consumer.ConsumerARN;
}

/** PutRecords; returns {seq, key, data} in request order. */
async function put(stream, tag, count) {
  const entries = Array.from({ length: count }, (_, i) => ({
    PartitionKey: `k${i % 4}`,
    Data: encoder.encode(`${tag}-${i}`),
  }));
  const answer = await client.send(new PutRecordsCommand({ StreamName: stream, Records: entries }));
  assert.equal(answer.FailedRecordCount ?? 0, 0, JSON.stringify(answer));
  return answer.Records.map((result, i) => {
    assert.match(result.SequenceNumber, /^[1-9][0-9]{55}$/);
    assert.equal(result.ShardId, SHARD);
    return { seq: result.SequenceNumber, key: entries[i].PartitionKey, data: `${tag}-${i}` };
  });
}

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${EVENT_TIMEOUT_MS} ms`)), EVENT_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** One SubscribeToShard call, read event by event through the SDK's async iterator. */
class Subscription {
  static async open(consumerArn, position) {
    const response = await withTimeout(
      client.send(
        new SubscribeToShardCommand({
          ConsumerARN: consumerArn,
          ShardId: SHARD,
          StartingPosition: position,
        }),
      ),
      "SubscribeToShard answer",
    );
    assert.equal(response.$metadata.httpStatusCode, 200);
    return new Subscription(response.EventStream[Symbol.asyncIterator](), position);
  }

  constructor(iterator, position) {
    this.iterator = iterator;
    this.what = JSON.stringify(position);
  }

  async event() {
    const { value, done } = await withTimeout(this.iterator.next(), `event on ${this.what}`);
    assert.ok(!done, `${this.what} ended, expected an event`);
    assert.deepEqual(Object.keys(value), ["SubscribeToShardEvent"]);
    const event = value.SubscribeToShardEvent;
    checkOpenEvent(event);
    return event;
  }

  /** Records until at least `atLeast` arrived and an empty event followed them. */
  async readUntilIdle(atLeast) {
    const got = [];
    for (;;) {
      const event = await this.event();
      got.push(...event.Records.map(asRecord));
      if (event.Records.length === 0 && got.length >= atLeast) {
        assert.equal(event.MillisBehindLatest, 0);
        return { records: got, continuation: event.ContinuationSequenceNumber };
      }
    }
  }

  /** Exactly `expected`, then nothing more; returns the idle continuation number. */
  async expectRecords(expected) {
    const { records, continuation } = await this.readUntilIdle(expected.length);
    assert.deepEqual(records, expected);
    const extra = await this.event();
    assert.deepEqual(extra.Records, [], "nothing beyond the expected records");
    return continuation;
  }

  async close() {
    await this.iterator.return?.();
  }
}

function asRecord(record) {
  assert.ok(record.ApproximateArrivalTimestamp instanceof Date);
  return {
    seq: record.SequenceNumber,
    key: record.PartitionKey,
    data: decoder.decode(record.Data),
  };
}

function checkOpenEvent(event) {
  assert.match(event.ContinuationSequenceNumber, /^[1-9][0-9]{55}$/);
  assert.ok(!event.ChildShards?.length, "no ChildShards on an open shard");
  if (event.Records.length > 0) {
    // AWS's continuation number is the position after the last record delivered.
    assert.ok(
      BigInt(event.ContinuationSequenceNumber) > BigInt(event.Records.at(-1).SequenceNumber),
      "the continuation number sorts after the event's last record",
    );
  }
}

test("PutRecords, then SubscribeToShard from TRIM_HORIZON and AT_SEQUENCE_NUMBER", { timeout: TEST_TIMEOUT_MS }, async () => {
  const stream = await createStream();
  const stored = await put(stream.name, "old", 6);
  const trim = await Subscription.open(await register(stream.arn, "trim"), { Type: "TRIM_HORIZON" });
  await trim.expectRecords(stored);
  await trim.close();
  const at = await Subscription.open(await register(stream.arn, "at"), {
    Type: "AT_SEQUENCE_NUMBER",
    SequenceNumber: stored[2].seq,
  });
  await at.expectRecords(stored.slice(2));
  await at.close();
});

test("records put while subscribed are pushed; the continuation number resumes without a gap", { timeout: TEST_TIMEOUT_MS }, async () => {
  const stream = await createStream();
  await put(stream.name, "before", 2);
  const latest = await Subscription.open(await register(stream.arn, "latest"), { Type: "LATEST" });
  const first = await latest.event();
  assert.deepEqual(first.Records, [], "LATEST skips what was stored before");
  const live = await put(stream.name, "live", 3);
  const { records, continuation } = await latest.readUntilIdle(3);
  assert.deepEqual(records, live);
  await latest.close();

  const later = await put(stream.name, "later", 2);
  const resumed = await Subscription.open(await register(stream.arn, "resumed"), {
    Type: "AFTER_SEQUENCE_NUMBER",
    SequenceNumber: continuation,
  });
  await resumed.expectRecords(later);
  await resumed.close();
});

test("a second subscription within 5 s is refused with ResourceInUseException", { timeout: TEST_TIMEOUT_MS }, async () => {
  const stream = await createStream();
  const consumer = await register(stream.arn, "single");
  const started = Date.now();
  const first = await Subscription.open(consumer, { Type: "LATEST" });
  await first.event();
  await assert.rejects(
    client.send(
      new SubscribeToShardCommand({
        ConsumerARN: consumer,
        ShardId: SHARD,
        StartingPosition: { Type: "LATEST" },
      }),
    ),
    (error) => {
      if (Date.now() - started < 5_000) {
        assert.equal(error.name, "ResourceInUseException");
        assert.equal(error.message, `Another active subscription exists for this consumer: ${consumer}`);
        assert.equal(error.$metadata.httpStatusCode, 400);
      }
      return true;
    },
  );
  await first.close();
});

test("every call went over HTTP/2 without TLS (h2c)", () => {
  assert.ok(protocols.length > 0, "the SDK opened no HTTP/2 session");
  assert.deepEqual(
    protocols,
    protocols.map(() => "h2c"),
  );
});
