// SVG drawings: the lineage of a stream's shards, and small line charts. Colours and sizes are
// presentation attributes and classes (the page's CSP allows no inline style attributes).

const SVG = "http://www.w3.org/2000/svg";
const HASH_SPACE = 1n << 128n;

function el(name, attributes = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The position of a hash key in [0, 1]. */
function fraction(hashKey) {
  return Number((BigInt(hashKey) * 1000000n) / HASH_SPACE) / 1000000;
}

/** `shardId-000000000012` -> `12`. */
export function shortShardId(id) {
  const match = /^shardId-0*(\d+)$/.exec(id);
  return match ? match[1] : id;
}

/**
 * The lineage graph: one row per generation, each shard a box spanning its hash-key range
 * (x: 0 to 2^128 across the width), an edge from each parent to its children. A split shows
 * as one box over two; a merge as two over one.
 */
export function lineageGraph(shards) {
  const byId = new Map(shards.map((s) => [s.ShardId, s]));
  const depth = new Map();
  const depthOf = (shard, seen = new Set()) => {
    if (depth.has(shard.ShardId)) return depth.get(shard.ShardId);
    if (seen.has(shard.ShardId)) return 0;
    seen.add(shard.ShardId);
    let d = 0;
    for (const parentId of [shard.ParentShardId, shard.AdjacentParentShardId]) {
      const parent = parentId && byId.get(parentId);
      if (parent) d = Math.max(d, depthOf(parent, seen) + 1);
    }
    depth.set(shard.ShardId, d);
    return d;
  };
  shards.forEach((s) => depthOf(s));
  const rows = Math.max(0, ...depth.values()) + 1;
  const width = 1000, rowHeight = 64, boxHeight = 34, margin = 8;
  const height = rows * rowHeight + margin;
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`, class: "lineage", role: "img",
    "aria-label": `Lineage of ${shards.length} shards in ${rows} generations`,
  });
  svg.append(el("title", {}, "Shard lineage: each row a generation, x is the hash-key range"));
  const box = new Map();
  for (const shard of shards) {
    const range = shard.HashKeyRange || {};
    const x0 = fraction(range.StartingHashKey || "0") * (width - 2 * margin) + margin;
    const x1 = (fraction(BigInt(range.EndingHashKey || "0") + 1n)) * (width - 2 * margin) + margin;
    const y = depth.get(shard.ShardId) * rowHeight + margin;
    box.set(shard.ShardId, { x0, x1, y });
  }
  const edges = el("g", { class: "edges" });
  for (const shard of shards) {
    const child = box.get(shard.ShardId);
    for (const parentId of [shard.ParentShardId, shard.AdjacentParentShardId]) {
      const parent = parentId && box.get(parentId);
      if (!parent) continue;
      const px = (parent.x0 + parent.x1) / 2, cx = (child.x0 + child.x1) / 2;
      const py = parent.y + boxHeight, cy = child.y;
      edges.append(el("path", {
        d: `M${px},${py} C${px},${(py + cy) / 2} ${cx},${(py + cy) / 2} ${cx},${cy}`,
        class: "edge", "data-parent": parentId, "data-child": shard.ShardId,
      }));
    }
  }
  svg.append(edges);
  for (const shard of shards) {
    const { x0, x1, y } = box.get(shard.ShardId);
    const closed = Boolean(shard.SequenceNumberRange && shard.SequenceNumberRange.EndingSequenceNumber);
    const group = el("g", { class: `shard ${closed ? "closed" : "open"}`, "data-shard-id": shard.ShardId });
    const w = Math.max(2, x1 - x0 - 2);
    group.append(el("title", {}, `${shard.ShardId} (${closed ? "closed" : "open"})`));
    group.append(el("rect", { x: x0 + 1, y, width: w, height: boxHeight, rx: 4 }));
    if (w > 22) {
      group.append(el("text", { x: x0 + 1 + w / 2, y: y + boxHeight / 2 + 5, "text-anchor": "middle" },
        w > 150 ? shard.ShardId : shortShardId(shard.ShardId)));
    }
    svg.append(group);
  }
  return svg;
}

const PALETTE = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];

/**
 * A line chart of `series` ([{name, points: [[timeMs, value]]}]) over the last `windowMs`,
 * with a y axis from 0 to the largest value, labelled with `unit`.
 */
export function lineChart(title, unit, series, windowMs, nowMs) {
  const width = 480, height = 190, left = 52, right = 8, top = 32, bottom = 20;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title });
  svg.append(el("text", { x: left, y: 14, class: "chart-title" }, title));
  // The window grows with the data, from one minute up to `windowMs`.
  const earliest = Math.min(nowMs, ...series.flatMap((s) => s.points.map((p) => p[0])));
  windowMs = Math.min(windowMs, Math.max(60000, nowMs - earliest));
  const max = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p[1])));
  const x = (t) => left + ((t - (nowMs - windowMs)) / windowMs) * (width - left - right);
  const y = (v) => top + (1 - v / max) * (height - top - bottom);
  for (const v of [0, max / 2, max]) {
    svg.append(el("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(el("text", { x: left - 4, y: y(v) + 4, "text-anchor": "end", class: "axis" }, formatNumber(v) + unit));
  }
  svg.append(el("text", { x: left, y: height - 4, class: "axis" }, `-${Math.round(windowMs / 60000)} min`));
  svg.append(el("text", { x: width - right, y: height - 4, "text-anchor": "end", class: "axis" }, "now"));
  series.forEach((s, index) => {
    const points = s.points.filter((p) => p[0] >= nowMs - windowMs);
    if (points.length === 0) return;
    const colour = PALETTE[index % PALETTE.length];
    svg.append(el("polyline", {
      points: points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "),
      fill: "none", stroke: colour, "stroke-width": 1.8, class: "series", "data-series": s.name,
    }));
    const [lastT, lastV] = points[points.length - 1];
    svg.append(el("circle", { cx: x(lastT).toFixed(1), cy: y(lastV).toFixed(1), r: 2.5, fill: colour }));
  });
  const legend = el("g", { class: "legend" });
  series.slice(0, 8).forEach((s, index) => {
    const lx = left + index * 56;
    if (lx > width - 40) return;
    legend.append(el("rect", { x: lx, y: 19, width: 8, height: 8, fill: PALETTE[index % PALETTE.length] }));
    legend.append(el("text", { x: lx + 11, y: 27, class: "axis" }, s.name));
  });
  svg.append(legend);
  return svg;
}

export function formatNumber(v) {
  if (v >= 1e9) return (v / 1e9).toFixed(1) + "G";
  if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (v >= 1e3) return (v / 1e3).toFixed(1) + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}
