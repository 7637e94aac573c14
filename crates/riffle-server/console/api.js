// The Kinesis JSON API, as any client calls it: POST / with X-Amz-Target and a JSON 1.1 body.
// With a key set, each request is SigV4-signed here in the browser (WebCrypto HMAC-SHA256 and
// SHA-256) over the headers riffle's verifier needs: host, content-type, x-amz-date,
// x-amz-target, and the body's hash. The secret lives in sessionStorage only (this tab).

const TARGET_PREFIX = "Kinesis_20131202.";
const CONTENT_TYPE = "application/x-amz-json-1.1";
const SESSION_KEY = "riffle-console-key";

export class ApiError extends Error {
  constructor(type, message, status) {
    super(message ? `${type}: ${message}` : type);
    this.type = type;
    this.detail = message || "";
    this.status = status;
  }
}

const encoder = new TextEncoder();

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256Hex(text) {
  return hex(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

async function hmac(key, text) {
  const raw = typeof key === "string" ? encoder.encode(key) : key;
  const cryptoKey = await crypto.subtle.importKey(
    "raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return crypto.subtle.sign("HMAC", cryptoKey, encoder.encode(text));
}

/** `20240101T120000Z` for a Date. */
export function amzDate(date) {
  return date.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/**
 * SigV4 headers for a POST / of `body` with the given headers (names lower case). Exported for
 * the tests in the page (a known vector) and used by `call`.
 */
export async function sign({ accessKeyId, secretAccessKey, region }, host, headers, body, now) {
  const stamp = amzDate(now);
  const day = stamp.slice(0, 8);
  const all = { ...headers, host, "x-amz-date": stamp };
  const names = Object.keys(all).map((n) => n.toLowerCase()).sort();
  const canonicalHeaders = names.map((n) => `${n}:${String(all[n]).trim().replace(/\s+/g, " ")}\n`).join("");
  const signedHeaders = names.join(";");
  const payloadHash = await sha256Hex(body);
  const canonical = ["POST", "/", "", canonicalHeaders, signedHeaders, payloadHash].join("\n");
  const scope = `${day}/${region}/kinesis/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", stamp, scope, await sha256Hex(canonical)].join("\n");
  let key = await hmac(`AWS4${secretAccessKey}`, day);
  key = await hmac(key, region);
  key = await hmac(key, "kinesis");
  key = await hmac(key, "aws4_request");
  const signature = hex(await hmac(key, toSign));
  return {
    "x-amz-date": stamp,
    authorization: `AWS4-HMAC-SHA256 Credential=${accessKeyId}/${scope}, ` +
      `SignedHeaders=${signedHeaders}, Signature=${signature}`,
  };
}

export class Api {
  constructor() {
    this.key = null;
    try {
      const saved = sessionStorage.getItem(SESSION_KEY);
      if (saved) this.key = JSON.parse(saved);
    } catch (_) {
      this.key = null;
    }
  }

  /** Signs from now on with this key, kept for this tab only. */
  setKey(accessKeyId, secretAccessKey, region) {
    this.key = { accessKeyId, secretAccessKey, region: region || "us-east-1" };
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(this.key));
  }

  clearKey() {
    this.key = null;
    sessionStorage.removeItem(SESSION_KEY);
  }

  /** Calls `operation` with `input`; resolves to the parsed answer, rejects with ApiError. */
  async call(operation, input = {}) {
    const body = JSON.stringify(input);
    const headers = {
      "content-type": CONTENT_TYPE,
      "x-amz-target": TARGET_PREFIX + operation,
    };
    if (this.key) {
      if (!globalThis.crypto || !crypto.subtle) {
        throw new ApiError("ConsoleError",
          "This browser offers no WebCrypto on this page (plain HTTP on a non-local address): " +
          "serve riffle with --tls-cert to sign requests here.", 0);
      }
      Object.assign(headers, await sign(this.key, location.host, headers, body, new Date()));
    }
    let response;
    try {
      response = await fetch("/", { method: "POST", headers, body, cache: "no-store" });
    } catch (error) {
      throw new ApiError("NetworkError", String(error.message || error), 0);
    }
    const text = await response.text();
    let parsed = {};
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch (_) {
        throw new ApiError("BadAnswer", text.slice(0, 200), response.status);
      }
    }
    if (!response.ok) {
      const raw = String(parsed.__type || `HTTP ${response.status}`);
      const type = raw.split("#").pop().split(":")[0];
      throw new ApiError(type, parsed.message || parsed.Message || "", response.status);
    }
    return parsed;
  }

  /** Every page of a paginated listing, concatenated (`pick` takes the items of one page). */
  async listShards(streamName) {
    const shards = [];
    let input = { StreamName: streamName };
    for (;;) {
      const page = await this.call("ListShards", input);
      shards.push(...(page.Shards || []));
      if (!page.NextToken) return shards;
      input = { NextToken: page.NextToken };
    }
  }

  async listStreamNames() {
    const names = [];
    let input = { Limit: 100 };
    for (;;) {
      const page = await this.call("ListStreams", input);
      names.push(...(page.StreamNames || []));
      if (!page.HasMoreStreams || !page.NextToken) return names;
      input = { Limit: 100, NextToken: page.NextToken };
    }
  }
}

/** Base64 <-> bytes. */
export function fromBase64(text) {
  const binary = atob(text || "");
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
