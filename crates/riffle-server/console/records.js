// What a record's bytes say: UTF-8 text, pretty JSON, hex, and KPL aggregates split into
// their user records. The KPL format (as in the command line's client/kpl.rs):
//   F3 89 9A C2 | protobuf AggregatedRecord | MD5 of the protobuf bytes (16 bytes)
// A record counts as an aggregate only when it starts with the magic and its MD5 matches, as
// the KCL decides; the protobuf reader checks every length and index before trusting it.

export const KPL_MAGIC = [0xf3, 0x89, 0x9a, 0xc2];
const DIGEST_LEN = 16;

// ---- MD5 (RFC 1321); WebCrypto has none. -------------------------------------------------

const SHIFTS = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
const K = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0);

export function md5(bytes) {
  const bitLength = bytes.length * 8;
  const padded = new Uint8Array(((bytes.length + 8) >> 6) * 64 + 64);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, bitLength >>> 0, true);
  view.setUint32(padded.length - 4, Math.floor(bitLength / 2 ** 32), true);
  let a0 = 0x67452301, b0 = 0xefcdab89, c0 = 0x98badcfe, d0 = 0x10325476;
  const m = new Uint32Array(16);
  for (let chunk = 0; chunk < padded.length; chunk += 64) {
    for (let j = 0; j < 16; j++) m[j] = view.getUint32(chunk + j * 4, true);
    let a = a0, b = b0, c = c0, d = d0;
    for (let i = 0; i < 64; i++) {
      let f, g;
      if (i < 16) { f = (b & c) | (~b & d); g = i; }
      else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) % 16; }
      else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) % 16; }
      else { f = c ^ (b | ~d); g = (7 * i) % 16; }
      f = (f + a + K[i] + m[g]) >>> 0;
      a = d; d = c; c = b;
      const s = SHIFTS[(i >> 4) * 4 + (i % 4)];
      b = (b + ((f << s) | (f >>> (32 - s)))) >>> 0;
    }
    a0 = (a0 + a) >>> 0; b0 = (b0 + b) >>> 0; c0 = (c0 + c) >>> 0; d0 = (d0 + d) >>> 0;
  }
  const out = new Uint8Array(16);
  const outView = new DataView(out.buffer);
  [a0, b0, c0, d0].forEach((word, i) => outView.setUint32(i * 4, word, true));
  return out;
}

// ---- protobuf, as much as the KPL schema needs -------------------------------------------

class Reader {
  constructor(bytes) { this.bytes = bytes; this.at = 0; }
  get done() { return this.at >= this.bytes.length; }
  varint() {
    let value = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.bytes.length) break;
      const byte = this.bytes[this.at++];
      value |= BigInt(byte & 0x7f) << BigInt(7 * i);
      if ((byte & 0x80) === 0) {
        if (value >= 1n << 64n) throw new Error("varint overflows 64 bits");
        return value;
      }
    }
    throw new Error("truncated or overlong varint");
  }
  take(length) {
    if (length > BigInt(this.bytes.length - this.at)) {
      throw new Error(`field of ${length} bytes with ${this.bytes.length - this.at} left`);
    }
    const start = this.at;
    this.at += Number(length);
    return this.bytes.subarray(start, this.at);
  }
  key() {
    const key = this.varint();
    const field = key >> 3n;
    if (field === 0n) throw new Error("field number 0");
    return [Number(field), Number(key & 7n)];
  }
  lengthDelimited() { return this.take(this.varint()); }
  skip(wireType) {
    switch (wireType) {
      case 0: this.varint(); break;
      case 1: this.take(8n); break;
      case 2: this.lengthDelimited(); break;
      case 5: this.take(4n); break;
      default: throw new Error(`unsupported wire type ${wireType}`);
    }
  }
}

function expectWire(field, actual, expected) {
  if (actual !== expected) throw new Error(`field ${field} has wire type ${actual}, expected ${expected}`);
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function utf8(bytes, what) {
  try {
    return strictUtf8.decode(bytes);
  } catch (_) {
    throw new Error(`${what} is not UTF-8`);
  }
}

function decodeRecord(bytes) {
  const reader = new Reader(bytes);
  let pk = null, ehk = null, data = null;
  while (!reader.done) {
    const [field, wire] = reader.key();
    if (field === 1) { expectWire(field, wire, 0); pk = reader.varint(); }
    else if (field === 2) { expectWire(field, wire, 0); ehk = reader.varint(); }
    else if (field === 3) { expectWire(field, wire, 2); data = reader.lengthDelimited(); }
    else reader.skip(wire);
  }
  if (pk === null) throw new Error("a record without its required partition_key_index");
  if (data === null) throw new Error("a record without its required data");
  return { pk, ehk, data };
}

/**
 * `{kind: "plain"}`, `{kind: "records", records: [{partitionKey, explicitHashKey, data}]}` or
 * `{kind: "malformed", error}` for a record's bytes.
 */
export function deaggregate(bytes) {
  if (bytes.length < KPL_MAGIC.length + DIGEST_LEN || KPL_MAGIC.some((b, i) => bytes[i] !== b)) {
    return { kind: "plain" };
  }
  const message = bytes.subarray(KPL_MAGIC.length, bytes.length - DIGEST_LEN);
  const digest = bytes.subarray(bytes.length - DIGEST_LEN);
  const computed = md5(message);
  if (computed.some((b, i) => b !== digest[i])) return { kind: "plain" };
  try {
    const reader = new Reader(message);
    const keys = [], hashKeys = [], raw = [];
    while (!reader.done) {
      const [field, wire] = reader.key();
      if (field === 1) { expectWire(field, wire, 2); keys.push(utf8(reader.lengthDelimited(), "a partition key")); }
      else if (field === 2) { expectWire(field, wire, 2); hashKeys.push(utf8(reader.lengthDelimited(), "an explicit hash key")); }
      else if (field === 3) { expectWire(field, wire, 2); raw.push(decodeRecord(reader.lengthDelimited())); }
      else reader.skip(wire);
    }
    const records = raw.map((r, index) => {
      if (r.pk >= BigInt(keys.length)) {
        throw new Error(`record ${index}: partition key index ${r.pk} outside a table of ${keys.length}`);
      }
      if (r.ehk !== null && r.ehk >= BigInt(hashKeys.length)) {
        throw new Error(`record ${index}: explicit hash key index ${r.ehk} outside a table of ${hashKeys.length}`);
      }
      return {
        partitionKey: keys[Number(r.pk)],
        explicitHashKey: r.ehk === null ? null : hashKeys[Number(r.ehk)],
        data: r.data,
      };
    });
    return { kind: "records", records };
  } catch (error) {
    return { kind: "malformed", error: error.message };
  }
}

// ---- views of bytes ------------------------------------------------------------------------

const lossyUtf8 = new TextDecoder("utf-8");

export function asText(bytes) {
  return lossyUtf8.decode(bytes);
}

/** Pretty JSON, or null when the bytes are not one JSON document. */
export function asJson(bytes) {
  try {
    return JSON.stringify(JSON.parse(strictUtf8.decode(bytes)), null, 2);
  } catch (_) {
    return null;
  }
}

/** Classic hex dump: offset, 16 bytes, printable ASCII. */
export function asHex(bytes) {
  const lines = [];
  for (let at = 0; at < bytes.length; at += 16) {
    const row = bytes.subarray(at, at + 16);
    const hexes = Array.from(row, (b) => b.toString(16).padStart(2, "0"));
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${at.toString(16).padStart(8, "0")}  ${hexes.join(" ").padEnd(47)}  ${ascii}`);
  }
  return lines.join("\n");
}

/** The text shown for `bytes` in `format` ("text", "json" or "hex"). */
export function render(bytes, format) {
  if (format === "hex") return asHex(bytes);
  if (format === "json") {
    const pretty = asJson(bytes);
    return pretty === null ? `(not JSON) ${asText(bytes)}` : pretty;
  }
  return asText(bytes);
}

// ---- building an aggregate (the put form's "KPL aggregate" option) -----------------------

function varintBytes(value) {
  const out = [];
  let v = BigInt(value);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}

function field(number, wire, payload) {
  const key = varintBytes((number << 3) | wire);
  if (wire === 0) return [...key, ...varintBytes(payload)];
  return [...key, ...varintBytes(payload.length), ...payload];
}

/** A KPL aggregate of `records` ([{partitionKey, data: Uint8Array}]), as the KPL writes it. */
export function aggregate(records) {
  const encoder = new TextEncoder();
  const keys = [...new Set(records.map((r) => r.partitionKey))];
  const body = [];
  for (const key of keys) body.push(...field(1, 2, Array.from(encoder.encode(key))));
  for (const r of records) {
    const inner = [...field(1, 0, keys.indexOf(r.partitionKey)), ...field(3, 2, Array.from(r.data))];
    body.push(...field(3, 2, inner));
  }
  const message = Uint8Array.from(body);
  const out = new Uint8Array(KPL_MAGIC.length + message.length + DIGEST_LEN);
  out.set(KPL_MAGIC);
  out.set(message, KPL_MAGIC.length);
  out.set(md5(message), KPL_MAGIC.length + message.length);
  return out;
}
