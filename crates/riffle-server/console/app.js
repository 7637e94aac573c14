// The riffle console: a page that calls the public Kinesis API (api.js) and draws what it
// gets. Routes live in the URL's hash, so the server serves one page:
//   #/                       streams (create, reshard, delete)
//   #/streams/NAME/shards    a stream's shards and their lineage
//   #/streams/NAME/data      the data viewer and the put form
//   #/streams/NAME/metrics   live charts derived from reading the stream
//   #/login                  access key and secret, when the server asks for signatures

import { Api, ApiError, fromBase64, toBase64 } from "./api.js";
import { aggregate, deaggregate, render } from "./records.js";
import { formatNumber, lineChart, lineageGraph, shortShardId } from "./charts.js";

const api = new Api();
const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
const who = document.getElementById("who");
const flash = document.getElementById("flash");

/** Stops the timers and readers of the page being left. */
let leaving = [];

const AUTH_ERRORS = new Set([
  "MissingAuthenticationTokenException", "UnrecognizedClientException",
  "InvalidSignatureException", "IncompleteSignatureException", "AccessDeniedException",
]);

// ---- small DOM helpers -------------------------------------------------------------------

function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else if (key === "value") node.value = value;
    else if (key === "checked") node.checked = Boolean(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Gives each cell of `table` its column's name, which narrow screens show beside it. */
function labelCells(table) {
  const names = Array.from(table.tHead.rows[0].cells, (cell) => cell.textContent);
  for (const row of table.tBodies[0].rows) {
    Array.from(row.cells).forEach((cell, index) => {
      if (cell.colSpan === 1) cell.setAttribute("data-label", names[index] || "");
    });
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function showError(error) {
  if (error instanceof ApiError && AUTH_ERRORS.has(error.type) && error.type !== "AccessDeniedException") {
    api.clearKey();
    location.hash = "#/login";
    flash.replaceChildren(h("div", { class: "error", role: "alert" }, error.message));
    return;
  }
  flash.replaceChildren(h("div", { class: "error", role: "alert" },
    String(error.message || error), " ", h("button", { class: "link", onclick: () => flash.replaceChildren() }, "dismiss")));
}

function notice(text) {
  flash.replaceChildren(h("div", { class: "notice", role: "status" }, text));
}

function field(label, control, hint) {
  return h("label", { class: "field" }, h("span", {}, label), control, hint ? h("small", {}, hint) : null);
}

function formatTime(seconds) {
  if (seconds === undefined || seconds === null) return "";
  const date = new Date(Number(seconds) * 1000);
  return date.toISOString().replace("T", " ").replace("Z", "");
}

function hours(h_) {
  return h_ % 24 === 0 ? `${h_ / 24} d` : `${h_} h`;
}

function mode(summary) {
  return (summary.StreamModeDetails && summary.StreamModeDetails.StreamMode) || "PROVISIONED";
}

// ---- routing -------------------------------------------------------------------------------

async function route() {
  leaving.forEach((stop) => stop());
  leaving = [];
  flash.querySelectorAll(".notice").forEach((node) => node.remove());
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  renderWho();
  if (parts[0] === "login") return loginPage();
  if (parts[0] === "streams" && parts[1]) return streamPage(parts[1], parts[2] || "shards");
  return streamsPage();
}

function renderWho() {
  if (api.key) {
    who.replaceChildren(h("span", { class: "muted" }, "key "), h("code", {}, api.key.accessKeyId), " ",
      h("button", { id: "sign-out", class: "link", onclick: () => { api.clearKey(); location.hash = "#/login"; } }, "sign out"));
  } else {
    who.replaceChildren(h("span", { class: "muted" }, "anonymous"));
  }
}

function setCrumbs(...items) {
  crumbs.replaceChildren(...items.flatMap((item, i) => (i ? [h("span", { class: "sep" }, "/"), item] : [item])));
}

// ---- login ---------------------------------------------------------------------------------

function loginPage() {
  setCrumbs(h("span", {}, "Sign in"));
  const key = h("input", { id: "login-key", autocomplete: "username", required: true, spellcheck: "false" });
  const secret = h("input", { id: "login-secret", type: "password", autocomplete: "current-password", required: true });
  const region = h("input", { id: "login-region", value: "us-east-1", required: true, spellcheck: "false" });
  const error = h("p", { id: "login-error", class: "error-text" });
  const form = h("form", { class: "card narrow", onsubmit: async (event) => {
    event.preventDefault();
    error.textContent = "";
    api.setKey(key.value.trim(), secret.value, region.value.trim());
    try {
      await api.call("ListStreams", { Limit: 1 });
      flash.replaceChildren();
      location.hash = "#/";
    } catch (e) {
      api.clearKey();
      error.textContent = e.message;
    }
  } },
  h("h1", {}, "Sign in"),
  h("p", { class: "muted" }, "This riffle asks for SigV4-signed requests. The page signs each API call in your " +
    "browser; the secret stays in this tab (sessionStorage) and is never sent."),
  field("Access key id", key), field("Secret access key", secret), field("Region (signing scope)", region),
  h("button", { id: "login-submit", type: "submit", class: "primary" }, "Sign in"), error);
  main.replaceChildren(form);
  key.focus();
}

// ---- streams -------------------------------------------------------------------------------

async function streamsPage() {
  setCrumbs(h("a", { href: "#/" }, "Streams"));
  const name = h("input", { id: "create-name", required: true, pattern: "[a-zA-Z0-9_.\\-]{1,128}", placeholder: "orders", spellcheck: "false" });
  const shards = h("input", { id: "create-shards", type: "number", min: 1, value: 1, required: true });
  const modeSelect = h("select", { id: "create-mode", onchange: () => { shards.disabled = modeSelect.value === "ON_DEMAND"; } },
    h("option", { value: "PROVISIONED" }, "provisioned"), h("option", { value: "ON_DEMAND" }, "on-demand"));
  const create = h("form", { class: "card row-form", onsubmit: async (event) => {
    event.preventDefault();
    const input = { StreamName: name.value.trim(), StreamModeDetails: { StreamMode: modeSelect.value } };
    if (modeSelect.value === "PROVISIONED") input.ShardCount = Number(shards.value);
    try {
      await api.call("CreateStream", input);
      notice(`Created ${input.StreamName}.`);
      name.value = "";
      await refresh();
    } catch (e) { showError(e); }
  } },
  h("h2", {}, "Create a stream"),
  field("Name", name), field("Capacity", modeSelect), field("Shards", shards),
  h("button", { id: "create-submit", type: "submit", class: "primary" }, "Create"));

  const body = h("tbody");
  const table = h("table", { id: "streams", class: "stack" }, h("thead", {}, h("tr", {},
    ["Stream", "Mode", "Status", "Open shards", "Retention", "Encryption", "Consumers", "Queues", "Channels", "Actions"].map((t) => h("th", {}, t)))), body);
  const count = h("span", { class: "muted", id: "stream-count" });
  main.replaceChildren(
    h("div", { class: "heading" }, h("h1", {}, "Streams"), count,
      h("button", { id: "refresh", onclick: () => refresh() }, "Refresh")),
    h("div", { class: "scroll" }, table), create);

  let timer = null;
  leaving.push(() => clearTimeout(timer));
  async function refresh() {
    clearTimeout(timer);
    let names;
    try {
      names = await api.listStreamNames();
    } catch (e) { showError(e); return; }
    const summaries = [];
    for (let i = 0; i < names.length; i += 8) {
      summaries.push(...await Promise.all(names.slice(i, i + 8).map((n) =>
        api.call("DescribeStreamSummary", { StreamName: n }).then((a) => a.StreamDescriptionSummary, (e) => ({ StreamName: n, error: e })))));
    }
    count.textContent = `${names.length} stream${names.length === 1 ? "" : "s"}`;
    body.replaceChildren(...summaries.map(streamRow));
    if (names.length === 0) body.append(h("tr", {}, h("td", { colspan: 10, class: "muted" }, "No streams yet: create one below.")));
    labelCells(table);
    if (summaries.some((s) => s.StreamStatus && s.StreamStatus !== "ACTIVE")) timer = setTimeout(refresh, 1500);
  }

  function streamRow(s) {
    const link = h("a", { href: `#/streams/${encodeURIComponent(s.StreamName)}/shards` }, s.StreamName);
    if (s.error) return h("tr", { "data-stream": s.StreamName }, h("td", {}, link), h("td", { colspan: 9, class: "error-text" }, s.error.message));
    const target = h("input", { type: "number", min: 1, value: s.OpenShardCount, class: "small", "aria-label": `target shard count of ${s.StreamName}` });
    const reshard = h("form", { class: "inline reshard", onsubmit: async (event) => {
      event.preventDefault();
      try {
        await api.call("UpdateShardCount", { StreamName: s.StreamName, TargetShardCount: Number(target.value), ScalingType: "UNIFORM_SCALING" });
        notice(`${s.StreamName}: resharding to ${target.value} shards.`);
        await refresh();
      } catch (e) { showError(e); }
    } }, target, h("button", { type: "submit" }, "Reshard"));
    const del = h("button", { class: "danger delete", onclick: async () => {
      if (!del.classList.contains("armed")) {
        del.classList.add("armed");
        del.textContent = "Confirm delete";
        setTimeout(() => { del.classList.remove("armed"); del.textContent = "Delete"; }, 4000);
        return;
      }
      try {
        await api.call("DeleteStream", { StreamName: s.StreamName, EnforceConsumerDeletion: true });
        notice(`Deleted ${s.StreamName}.`);
        await refresh();
      } catch (e) { showError(e); }
    } }, "Delete");
    const encryption = s.EncryptionType && s.EncryptionType !== "NONE" ? `${s.EncryptionType} ${s.KeyId || ""}` : "none";
    return h("tr", { "data-stream": s.StreamName },
      h("td", {}, link), h("td", {}, mode(s).toLowerCase().replace("_", "-")),
      h("td", {}, h("span", { class: `status ${s.StreamStatus}` }, s.StreamStatus)),
      h("td", { class: "num" }, s.OpenShardCount), h("td", {}, hours(s.RetentionPeriodHours)),
      h("td", {}, encryption), h("td", { class: "num" }, s.ConsumerCount ?? 0),
      h("td", { class: "num queues" }, s.QueueCount ?? 0), h("td", { class: "num channels" }, s.ChannelCount ?? 0),
      h("td", { class: "actions" }, mode(s) === "PROVISIONED" ? reshard : null, del));
  }
  await refresh();
}

// ---- one stream ----------------------------------------------------------------------------

async function streamPage(name, tab) {
  const base = `#/streams/${encodeURIComponent(name)}`;
  setCrumbs(h("a", { href: "#/" }, "Streams"), h("a", { href: `${base}/shards` }, name));
  const summaryBox = h("div", { class: "summary", id: "summary" });
  const tabs = h("nav", { class: "tabs" }, ["shards", "data", "metrics"].map((t) =>
    h("a", { href: `${base}/${t}`, id: `tab-${t}`, class: t === tab ? "active" : null }, t === "data" ? "data viewer" : t)));
  const content = h("section", { id: `page-${tab}` });
  main.replaceChildren(h("div", { class: "heading" }, h("h1", {}, name)), summaryBox, tabs, content);
  let summary;
  try {
    summary = (await api.call("DescribeStreamSummary", { StreamName: name })).StreamDescriptionSummary;
  } catch (e) { showError(e); return; }
  summaryBox.replaceChildren(
    h("span", {}, h("b", {}, "status "), h("span", { class: `status ${summary.StreamStatus}` }, summary.StreamStatus)),
    h("span", {}, h("b", {}, "mode "), mode(summary).toLowerCase()),
    h("span", {}, h("b", {}, "open shards "), summary.OpenShardCount),
    h("span", {}, h("b", {}, "retention "), hours(summary.RetentionPeriodHours)),
    h("span", {}, h("b", {}, "consumers "), summary.ConsumerCount ?? 0),
    h("span", { class: "arn" }, h("b", {}, "ARN "), h("code", {}, summary.StreamARN)));
  if (summary.QueueCount || summary.ChannelCount) {
    // Queues and channels reading this stream, by name and status (ListQueues, ListChannels).
    const reading = (list, kind, nameKey, statusKey) => list
      .filter((item) => (item.Streams || []).some((st) => st.StreamARN === summary.StreamARN))
      .map((item) => h("span", { class: `reader ${kind}`, "data-name": item[nameKey] },
        h("b", {}, `${kind} `), item[nameKey], " ", h("span", { class: `status ${item[statusKey]}` }, item[statusKey])));
    try {
      const [queues, channels] = await Promise.all([
        summary.QueueCount ? api.call("ListQueues", {}) : { QueueSummaries: [] },
        summary.ChannelCount ? api.call("ListChannels", {}) : { ChannelSummaries: [] },
      ]);
      summaryBox.append(
        ...reading(queues.QueueSummaries || [], "queue", "QueueName", "QueueStatus"),
        ...reading(channels.ChannelSummaries || [], "channel", "ChannelName", "ChannelStatus"));
    } catch (e) { showError(e); }
  }
  if (tab === "data") return dataTab(name, content);
  if (tab === "metrics") return metricsTab(name, content);
  return shardsTab(name, content);
}

function hashPercent(key) {
  return ((Number((BigInt(key) * 100000n) >> 128n) / 1000).toFixed(2)) + "%";
}

async function shardsTab(name, content) {
  let shards;
  try {
    shards = await api.listShards(name);
  } catch (e) { showError(e); return; }
  const rows = shards.map((s) => {
    const closed = Boolean(s.SequenceNumberRange && s.SequenceNumberRange.EndingSequenceNumber);
    return h("tr", { "data-shard-id": s.ShardId },
      h("td", {}, h("code", {}, s.ShardId)),
      h("td", {}, closed ? "closed" : "open"),
      h("td", {}, s.ParentShardId ? shortShardId(s.ParentShardId) : ""),
      h("td", {}, s.AdjacentParentShardId ? shortShardId(s.AdjacentParentShardId) : ""),
      h("td", { class: "hash", title: `${s.HashKeyRange.StartingHashKey} – ${s.HashKeyRange.EndingHashKey}` },
        `${hashPercent(s.HashKeyRange.StartingHashKey)} – ${hashPercent(BigInt(s.HashKeyRange.EndingHashKey) + 1n)}`),
      h("td", {}, h("code", { class: "seq" }, s.HashKeyRange.StartingHashKey)),
      h("td", {}, h("code", { class: "seq" }, s.HashKeyRange.EndingHashKey)),
      h("td", {}, h("code", { class: "seq" }, s.SequenceNumberRange.StartingSequenceNumber)));
  });
  content.replaceChildren(
    h("h2", {}, "Lineage"),
    h("p", { class: "muted" }, "Each row is a generation; each box spans its shard's share of the hash-key space (0 to 2¹²⁸, left to right). " +
      "A split shows as one box over two, a merge as two over one. Closed shards are grey."),
    h("div", { class: "graph", id: "lineage" }, lineageGraph(shards)),
    h("h2", {}, `Shards (${shards.length})`),
    h("div", { class: "scroll" }, h("table", { id: "shards" },
      h("thead", {}, h("tr", {}, ["Shard", "State", "Parent", "Adjacent parent", "Hash keys", "Starting hash key", "Ending hash key", "Starting sequence number"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows))));
}

// ---- data viewer and put form ---------------------------------------------------------------

const RECORDS_SHOWN_MAX = 1000;

async function dataTab(name, content) {
  let shards;
  try {
    shards = await api.listShards(name);
  } catch (e) { showError(e); return; }
  const isOpen = (s) => !(s.SequenceNumberRange && s.SequenceNumberRange.EndingSequenceNumber);
  const shardBoxes = shards.map((s) => h("label", { class: "check" },
    h("input", { type: "checkbox", value: s.ShardId, checked: isOpen(s), class: "shard-pick" }),
    ` ${shortShardId(s.ShardId)}${isOpen(s) ? "" : " (closed)"}`));
  const startType = h("select", { id: "start-type", onchange: () => updateStartValue() },
    ["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP", "AT_SEQUENCE_NUMBER"].map((t) => h("option", { value: t }, t)));
  const startValue = h("input", { id: "start-value", spellcheck: "false" });
  const startField = field("Timestamp / sequence number", startValue);
  function updateStartValue() {
    const t = startType.value;
    startField.hidden = !(t === "AT_TIMESTAMP" || t === "AT_SEQUENCE_NUMBER");
    startValue.placeholder = t === "AT_TIMESTAMP" ? "2024-05-01T12:00:00Z or epoch seconds" : "sequence number";
  }
  updateStartValue();
  const format = h("select", { id: "format", onchange: () => redraw() },
    h("option", { value: "text" }, "UTF-8 text"), h("option", { value: "json" }, "JSON (pretty)"), h("option", { value: "hex" }, "hex"));
  const deagg = h("input", { type: "checkbox", id: "deagg", checked: true, onchange: () => redraw() });
  const follow = h("input", { type: "checkbox", id: "follow", checked: true });
  const startButton = h("button", { id: "read-start", type: "submit", class: "primary" }, "Start");
  const stopButton = h("button", { id: "read-stop", type: "button", disabled: true, onclick: () => stop() }, "Stop");
  const clearButton = h("button", { id: "read-clear", type: "button", onclick: () => { records.length = 0; redraw(); } }, "Clear");
  const status = h("span", { id: "read-status", class: "muted" }, "idle");
  const tbody = h("tbody");
  const recordsTable = h("table", { id: "records", class: "stack" },
    h("thead", {}, h("tr", {}, ["Shard", "Sequence number", "Arrival", "Partition key", "Data"].map((t) => h("th", {}, t)))),
    tbody);
  const records = [];

  const viewer = h("form", { class: "card", id: "viewer", onsubmit: (event) => { event.preventDefault(); start(); } },
    h("h2", {}, "Data viewer"),
    h("div", { class: "field" }, h("span", {}, "Shards"), h("div", { class: "checks" }, shardBoxes)),
    h("div", { class: "row" }, field("Start at", startType), startField),
    h("div", { class: "row" }, field("Show data as", format),
      h("label", { class: "check" }, deagg, " de-aggregate KPL records"),
      h("label", { class: "check" }, follow, " follow new records (and child shards)")),
    h("div", { class: "row" }, startButton, stopButton, clearButton, status));

  // The put form.
  const putKey = h("input", { id: "put-key", value: "key-1", required: true, spellcheck: "false" });
  const putHash = h("input", { id: "put-hash", placeholder: "optional", spellcheck: "false" });
  const putData = h("textarea", { id: "put-data", rows: 4, spellcheck: "false" }, '{"hello": "world"}');
  const putLines = h("input", { type: "checkbox", id: "put-lines" });
  const putKpl = h("input", { type: "checkbox", id: "put-kpl" });
  const putResult = h("p", { id: "put-result", class: "muted" });
  const put = h("form", { class: "card", id: "put", onsubmit: async (event) => {
    event.preventDefault();
    const encoder = new TextEncoder();
    const texts = putLines.checked || putKpl.checked ? putData.value.split("\n").filter((l) => l.length) : [putData.value];
    const key = putKey.value;
    const hash = putHash.value.trim() || undefined;
    try {
      if (putKpl.checked) {
        const blob = aggregate(texts.map((t) => ({ partitionKey: key, data: encoder.encode(t) })));
        const out = await api.call("PutRecord", { StreamName: name, PartitionKey: key, ExplicitHashKey: hash, Data: toBase64(blob) });
        putResult.textContent = `Put one KPL aggregate of ${texts.length} records to ${out.ShardId} at ${out.SequenceNumber}.`;
      } else if (texts.length === 1 && !putLines.checked) {
        const out = await api.call("PutRecord", { StreamName: name, PartitionKey: key, ExplicitHashKey: hash, Data: toBase64(encoder.encode(texts[0])) });
        putResult.textContent = `Put 1 record to ${out.ShardId} at ${out.SequenceNumber}.`;
      } else {
        let failed = 0;
        for (let i = 0; i < texts.length; i += 500) {
          const entries = texts.slice(i, i + 500).map((t) => ({ PartitionKey: key, ExplicitHashKey: hash, Data: toBase64(encoder.encode(t)) }));
          const out = await api.call("PutRecords", { StreamName: name, Records: entries });
          failed += out.FailedRecordCount || 0;
        }
        putResult.textContent = `Put ${texts.length - failed} of ${texts.length} records${failed ? ` (${failed} failed: retry)` : ""}.`;
      }
    } catch (e) {
      putResult.textContent = e.message;
      showError(e);
    }
  } },
  h("h2", {}, "Put test records"),
  h("div", { class: "row" }, field("Partition key", putKey), field("Explicit hash key", putHash)),
  field("Data", putData),
  h("div", { class: "row" },
    h("label", { class: "check" }, putLines, " one record per line"),
    h("label", { class: "check" }, putKpl, " lines as one KPL aggregate")),
  h("div", { class: "row" }, h("button", { id: "put-submit", type: "submit", class: "primary" }, "Put"), putResult));

  content.replaceChildren(h("div", { class: "two" }, viewer, put),
    h("div", { class: "scroll" }, recordsTable));

  // One entry per record shown; an aggregate becomes one entry per user record.
  function add(shardId, record) {
    const bytes = fromBase64(record.Data);
    const base = { shardId, seq: record.SequenceNumber, arrival: record.ApproximateArrivalTimestamp, key: record.PartitionKey, bytes };
    records.push(base);
    while (records.length > RECORDS_SHOWN_MAX) records.shift();
  }
  function rowsOf(entry) {
    const cells = (seq, key, bytes, note) => h("tr", { "data-shard-id": entry.shardId },
      h("td", {}, shortShardId(entry.shardId)), h("td", {}, h("code", { class: "seq" }, seq)),
      h("td", { class: "nowrap" }, formatTime(entry.arrival)), h("td", {}, key),
      h("td", { class: "data" }, note ? h("div", { class: "note" }, note) : null, h("pre", {}, render(bytes, format.value))));
    if (deagg.checked) {
      const split = deaggregate(entry.bytes);
      if (split.kind === "records") {
        return split.records.map((r, i) => cells(`${entry.seq} #${i}`, r.partitionKey, r.data, i === 0 ? `KPL aggregate of ${split.records.length}` : null));
      }
      if (split.kind === "malformed") return [cells(entry.seq, entry.key, entry.bytes, `malformed KPL aggregate: ${split.error}`)];
    }
    return [cells(entry.seq, entry.key, entry.bytes)];
  }
  function redraw() {
    tbody.replaceChildren(...records.flatMap(rowsOf));
    labelCells(recordsTable);
  }

  let run = null;
  function stop() {
    if (run) run.stopped = true;
    run = null;
    startButton.disabled = false;
    stopButton.disabled = true;
  }
  leaving.push(stop);

  function start() {
    stop();
    const picked = Array.from(content.querySelectorAll(".shard-pick:checked"), (box) => box.value);
    if (picked.length === 0) { status.textContent = "pick at least one shard"; return; }
    const current = { stopped: false, reading: new Set(), seen: new Set(picked), count: 0 };
    run = current;
    startButton.disabled = true;
    stopButton.disabled = false;
    const position = { ShardIteratorType: startType.value };
    if (startType.value === "AT_TIMESTAMP") {
      const raw = startValue.value.trim();
      position.Timestamp = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : Date.parse(raw) / 1000;
      if (!Number.isFinite(position.Timestamp)) { status.textContent = "a timestamp: ISO 8601 or epoch seconds"; stop(); return; }
    }
    if (startType.value === "AT_SEQUENCE_NUMBER") position.StartingSequenceNumber = startValue.value.trim();
    const live = follow.checked;
    const showStatus = () => {
      if (run !== current) return;
      status.textContent = current.reading.size
        ? `reading ${current.reading.size} shard${current.reading.size === 1 ? "" : "s"} · ${current.count} records`
        : `done · ${current.count} records`;
      if (!current.reading.size) stop();
    };
    const readShard = async (shardId, from) => {
      current.reading.add(shardId);
      showStatus();
      try {
        let iterator = (await api.call("GetShardIterator", { StreamName: name, ShardId: shardId, ...from })).ShardIterator;
        while (!current.stopped && iterator) {
          let out;
          try {
            out = await api.call("GetRecords", { ShardIterator: iterator, Limit: 1000 });
          } catch (e) {
            if (e.type === "ProvisionedThroughputExceededException") { await sleep(1000); continue; }
            throw e;
          }
          if (current.stopped) break;
          for (const record of out.Records || []) add(shardId, record);
          current.count += (out.Records || []).length;
          if ((out.Records || []).length) redraw();
          showStatus();
          iterator = out.NextShardIterator;
          if (!iterator) {
            if (live) {
              for (const child of out.ChildShards || []) {
                if (!current.seen.has(child.ShardId)) {
                  current.seen.add(child.ShardId);
                  readShard(child.ShardId, { ShardIteratorType: "TRIM_HORIZON" });
                }
              }
            }
            break;
          }
          if (!(out.Records || []).length) {
            if (!live && out.MillisBehindLatest === 0) break;
            await sleep(1000);
          } else {
            await sleep(250); // GetRecords: 5 calls per second per shard
          }
        }
      } catch (e) {
        if (!current.stopped) showError(new Error(`${shortShardId(shardId)}: ${e.message}`));
      } finally {
        current.reading.delete(shardId);
        showStatus();
      }
    };
    picked.forEach((shardId) => readShard(shardId, position));
  }
}

// ---- metrics -------------------------------------------------------------------------------

const METRICS_PERIOD_MS = 2000;
const METRICS_WINDOW_MS = 5 * 60 * 1000;

async function metricsTab(name, content) {
  const charts = h("div", { class: "charts", id: "charts" });
  const status = h("p", { class: "muted", id: "metrics-status" }, "starting…");
  content.replaceChildren(
    h("p", { class: "muted" }, "Measured by this page through the public API: it reads every open shard from LATEST " +
      "(one GetRecords per shard every 2 s, which counts against the shard's read limits like any consumer) " +
      "and counts the records and bytes that arrive. Server-side metrics (every consumer's reads, throttles, " +
      "iterator ages) are on riffle's Prometheus endpoint (serve --metrics-listen)."),
    status, charts);
  const state = { stopped: false, shards: new Map(), samples: { records: new Map(), bytes: new Map(), throttled: new Map(), open: [] } };
  leaving.push(() => { state.stopped = true; });

  const push = (map, shardId, point) => {
    if (!map.has(shardId)) map.set(shardId, []);
    const points = map.get(shardId);
    points.push(point);
    while (points.length && points[0][0] < point[0] - METRICS_WINDOW_MS) points.shift();
  };

  async function follow(shardId, from) {
    if (state.shards.has(shardId)) return;
    const reader = { iterator: null, last: Date.now(), throttled: 0 };
    state.shards.set(shardId, reader);
    try {
      reader.iterator = (await api.call("GetShardIterator", { StreamName: name, ShardId: shardId, ...from })).ShardIterator;
      while (!state.stopped && reader.iterator) {
        await sleep(METRICS_PERIOD_MS);
        if (state.stopped) break;
        let records = 0, bytes = 0, out;
        try {
          out = await api.call("GetRecords", { ShardIterator: reader.iterator, Limit: 10000 });
        } catch (e) {
          if (e.type === "ProvisionedThroughputExceededException") { reader.throttled++; continue; }
          throw e;
        }
        for (const record of out.Records || []) {
          records++;
          bytes += Math.floor((record.Data.length * 3) / 4) - (record.Data.endsWith("==") ? 2 : record.Data.endsWith("=") ? 1 : 0);
        }
        const now = Date.now();
        const seconds = Math.max(0.001, (now - reader.last) / 1000);
        reader.last = now;
        const label = shortShardId(shardId);
        push(state.samples.records, label, [now, records / seconds]);
        push(state.samples.bytes, label, [now, bytes / seconds]);
        push(state.samples.throttled, label, [now, reader.throttled]);
        reader.throttled = 0;
        reader.iterator = out.NextShardIterator;
        if (!reader.iterator) {
          for (const child of out.ChildShards || []) follow(child.ShardId, { ShardIteratorType: "TRIM_HORIZON" });
        }
      }
    } catch (e) {
      if (!state.stopped) showError(new Error(`${shortShardId(shardId)}: ${e.message}`));
    }
  }

  function draw() {
    const now = Date.now();
    const series = (map) => Array.from(map, ([n, points]) => ({ name: n, points }));
    charts.replaceChildren(
      h("div", { class: "chart-box" }, lineChart("Incoming records per second, by shard", "/s", series(state.samples.records), METRICS_WINDOW_MS, now)),
      h("div", { class: "chart-box" }, lineChart("Incoming bytes per second, by shard", "B/s", series(state.samples.bytes), METRICS_WINDOW_MS, now)),
      h("div", { class: "chart-box" }, lineChart("Open shards", "", [{ name: "open", points: state.samples.open }], METRICS_WINDOW_MS, now)),
      h("div", { class: "chart-box" }, lineChart("This page's throttled reads", "", series(state.samples.throttled), METRICS_WINDOW_MS, now)));
    const total = Array.from(state.samples.records.values()).reduce((sum, points) => sum + (points.length ? points[points.length - 1][1] : 0), 0);
    status.textContent = `following ${Array.from(state.shards.values()).filter((r) => r.iterator).length} shards · ${formatNumber(total)} records/s now`;
  }

  async function summaryLoop() {
    while (!state.stopped) {
      try {
        const summary = (await api.call("DescribeStreamSummary", { StreamName: name })).StreamDescriptionSummary;
        state.samples.open.push([Date.now(), summary.OpenShardCount]);
        const shards = await api.listShards(name);
        for (const s of shards) {
          if (!(s.SequenceNumberRange && s.SequenceNumberRange.EndingSequenceNumber)) follow(s.ShardId, { ShardIteratorType: "LATEST" });
        }
      } catch (e) {
        showError(e);
      }
      draw();
      for (let i = 0; i < 5 && !state.stopped; i++) {
        await sleep(METRICS_PERIOD_MS);
        draw();
      }
    }
  }
  summaryLoop();
}

// ---- start ---------------------------------------------------------------------------------

async function boot() {
  window.addEventListener("hashchange", route);
  // Does this riffle ask for signatures? An unsigned call tells, through the API itself.
  if (!api.key && location.hash !== "#/login") {
    try {
      await api.call("ListStreams", { Limit: 1 });
    } catch (e) {
      if (e instanceof ApiError && AUTH_ERRORS.has(e.type)) {
        location.hash = "#/login"; // hashchange routes
        return;
      }
    }
  }
  route();
}

boot();
