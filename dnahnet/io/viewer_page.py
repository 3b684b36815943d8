"""The HTML, CSS and JavaScript of `dnahnet view`: one offline page, no library, no network.

`PAGE` has one placeholder, `__DATA__`, replaced by the JSON of the region and its
tracks (see `dnahnet.io.viewer`). Tracks are drawn as SVG: interval tracks as
rectangles (adjacent chunks alternate shades; features closer than a pixel are
merged), signal tracks as one bar per pixel column (the column's mean). Each
track's <g> carries `data-drawn`, the number of shapes drawn, which the browser
test reads. The region picker takes `chr:start-end` (1-based, inclusive, commas
allowed) within the region the page holds; buttons zoom and pan.
"""

PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>dnahnet view</title>
<style>
  body { font: 13px system-ui, sans-serif; margin: 12px; color: #222; }
  #bar { display: flex; gap: 6px; align-items: center; margin-bottom: 8px; flex-wrap: wrap; }
  #locus { width: 260px; font: inherit; padding: 2px 4px; }
  button { font: inherit; }
  #msg { color: #b00; margin-left: 8px; }
  #meta { color: #666; margin: 4px 0 8px; }
  svg text { font: 11px system-ui, sans-serif; fill: #333; }
  .label { font-weight: 600; }
</style>
</head>
<body>
<div id="bar">
  <input id="locus" aria-label="region" spellcheck="false">
  <button id="go">Go</button>
  <button id="zin" title="zoom in">+</button>
  <button id="zout" title="zoom out">&minus;</button>
  <button id="left" title="pan left">&larr;</button>
  <button id="right" title="pan right">&rarr;</button>
  <button id="all" title="the whole region">whole region</button>
  <span id="msg"></span>
</div>
<div id="meta"></div>
<svg id="view" xmlns="http://www.w3.org/2000/svg"></svg>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const SVGNS = "http://www.w3.org/2000/svg";
const LABEL_W = 150, TRACK_W = 900, AXIS_H = 28;
const view = { start: DATA.start, end: DATA.end };

function el(name, attrs, parent) {
  const node = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}
function fmt(n) { return Math.round(n).toLocaleString("en-US"); }
function locusText() { return DATA.chrom + ":" + fmt(view.start + 1) + "-" + fmt(view.end); }
function xOf(pos) { return LABEL_W + (pos - view.start) / (view.end - view.start) * TRACK_W; }

function parseLocus(text) {
  const m = text.trim().replace(/,/g, "").match(/^([^:\s]+)(?::(\d+)-(\d+))?$/);
  if (!m) return "write chr:start-end";
  if (m[1] !== DATA.chrom) return "this page holds " + DATA.chrom + " only";
  if (m[2] === undefined) return { start: DATA.start, end: DATA.end };
  const s = Number(m[2]) - 1, e = Number(m[3]);
  if (!(s >= DATA.start && e <= DATA.end && e > s)) return "outside the region this page holds (" +
      DATA.chrom + ":" + fmt(DATA.start + 1) + "-" + fmt(DATA.end) + ")";
  return { start: s, end: e };
}

function setView(s, e) {
  const width = Math.max(10, Math.min(e - s, DATA.end - DATA.start));
  s = Math.max(DATA.start, Math.min(s, DATA.end - width));
  view.start = Math.round(s); view.end = Math.round(s + width);
  draw();
}

function drawAxis(svg, y) {
  const g = el("g", { class: "axis" }, svg);
  el("line", { x1: LABEL_W, x2: LABEL_W + TRACK_W, y1: y + 20, y2: y + 20, stroke: "#999" }, g);
  const span = view.end - view.start, raw = span / 8, pow = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * pow).find(v => v >= raw) || raw;
  for (let t = Math.ceil(view.start / step) * step; t <= view.end; t += step) {
    const x = xOf(t);
    el("line", { x1: x, x2: x, y1: y + 15, y2: y + 20, stroke: "#999" }, g);
    el("text", { x: x, y: y + 11, "text-anchor": "middle" }, g).textContent = fmt(t);
  }
  el("text", { x: 4, y: y + 18, class: "label" }, g).textContent = DATA.chrom;
}

function drawIntervals(g, track, y, h) {
  const bpPerPx = (view.end - view.start) / TRACK_W;
  let drawn = 0, lastPx = -1, shade = 0;
  for (const f of track.features) {
    const s = f[0], e = f[1];
    if (e <= view.start || s >= view.end) continue;
    shade ^= 1;
    const x1 = xOf(Math.max(s, view.start)), x2 = xOf(Math.min(e, view.end));
    if (Math.floor(x1) === lastPx && x2 - x1 < 1) continue;  // merged with the feature drawn in this pixel
    lastPx = Math.floor(x1);
    const rect = el("rect", { x: x1.toFixed(2), y: y, width: Math.max(x2 - x1, 0.6).toFixed(2), height: h,
      fill: shade ? track.color : track.color2, stroke: bpPerPx < 2 ? "#fff" : "none", "stroke-width": 0.3 }, g);
    const tip = el("title", {}, rect);
    tip.textContent = DATA.chrom + ":" + fmt(s + 1) + "-" + fmt(e) + (f[2] ? " " + f[2] : "") +
      (f[3] !== null && f[3] !== undefined ? " score " + f[3] : "");
    if (f[2] && track.names && x2 - x1 > 7 * f[2].length)
      el("text", { x: ((x1 + x2) / 2).toFixed(1), y: y + h - 3, "text-anchor": "middle", fill: "#fff" }, g)
        .textContent = f[2];
    drawn++;
  }
  return drawn;
}

function drawSignal(g, track, y, h) {
  const sum = new Float64Array(TRACK_W), count = new Uint32Array(TRACK_W);
  const bpPerPx = (view.end - view.start) / TRACK_W;
  for (const run of track.runs) {
    const start = run[0], span = run[1], values = run[2];
    const first = Math.max(0, Math.floor((view.start - start) / span) - 1);
    for (let i = first; i < values.length; i++) {
      const pos = start + i * span;
      if (pos >= view.end) break;
      if (pos + span <= view.start || values[i] === null) continue;
      const v = track.negate ? -values[i] : values[i];
      const a = Math.max(0, Math.floor((Math.max(pos, view.start) - view.start) / bpPerPx));
      const b = Math.min(TRACK_W - 1, Math.floor((Math.min(pos + span, view.end) - view.start - 1e-9) / bpPerPx));
      for (let px = a; px <= b; px++) { sum[px] += v; count[px]++; }
    }
  }
  const lo = track.min, hi = track.max;
  let path = "", drawn = 0;
  for (let px = 0; px < TRACK_W; px++) {
    if (!count[px]) continue;
    const v = Math.max(lo, Math.min(hi, sum[px] / count[px]));
    const top = y + h - (v - lo) / (hi - lo) * h;
    path += "M" + (LABEL_W + px + 0.5) + " " + (y + h) + "V" + top.toFixed(1);
    drawn++;
  }
  el("line", { x1: LABEL_W, x2: LABEL_W + TRACK_W, y1: y + h, y2: y + h, stroke: "#ccc" }, g);
  if (path) el("path", { d: path, stroke: track.color, "stroke-width": 1, fill: "none" }, g);
  el("text", { x: LABEL_W - 4, y: y + 9, "text-anchor": "end" }, g).textContent = String(hi);
  el("text", { x: LABEL_W - 4, y: y + h, "text-anchor": "end" }, g).textContent = String(lo);
  return drawn;
}

function draw() {
  const svg = document.getElementById("view");
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  drawAxis(svg, 0);
  let y = AXIS_H;
  for (const track of DATA.tracks) {
    const h = track.kind === "signal" ? 50 : 16;
    const g = el("g", { class: "track", "data-name": track.name, "data-kind": track.kind }, svg);
    el("text", { x: 4, y: y + 12, class: "label" }, g).textContent = track.name;
    if (track.unit) el("text", { x: 4, y: y + 25 }, g).textContent = track.unit;
    const drawn = track.kind === "signal" ? drawSignal(g, track, y, h) : drawIntervals(g, track, y, h);
    g.setAttribute("data-drawn", String(drawn));
    y += h + 12;
  }
  svg.setAttribute("width", LABEL_W + TRACK_W + 10);
  svg.setAttribute("height", y);
  document.getElementById("locus").value = locusText();
  document.getElementById("meta").textContent = DATA.title + " | " + fmt(view.end - view.start) +
    " bases shown (0-based half-open in the files; the picker is 1-based inclusive)";
}

function go() {
  const r = parseLocus(document.getElementById("locus").value);
  document.getElementById("msg").textContent = typeof r === "string" ? r : "";
  if (typeof r !== "string") setView(r.start, r.end);
}
document.getElementById("go").addEventListener("click", go);
document.getElementById("locus").addEventListener("keydown", ev => { if (ev.key === "Enter") go(); });
document.getElementById("zin").addEventListener("click", () => {
  const c = (view.start + view.end) / 2, w = (view.end - view.start) / 4; setView(c - w, c + w); });
document.getElementById("zout").addEventListener("click", () => {
  const c = (view.start + view.end) / 2, w = view.end - view.start; setView(c - w, c + w); });
document.getElementById("left").addEventListener("click", () => {
  const w = view.end - view.start; setView(view.start - w / 2, view.end - w / 2); });
document.getElementById("right").addEventListener("click", () => {
  const w = view.end - view.start; setView(view.start + w / 2, view.end + w / 2); });
document.getElementById("all").addEventListener("click", () => setView(DATA.start, DATA.end));
setView(DATA.view_start, DATA.view_end);
</script>
</body>
</html>
"""
