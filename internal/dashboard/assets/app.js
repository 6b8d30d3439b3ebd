// runnel dashboard: draws what the JSON endpoints under /api/ report.
// Charts are uPlot (vendored, see uPlot.LICENSE); everything else is DOM.
"use strict";

const $ = (id) => document.getElementById(id);

// el builds an element; strings become text nodes (never HTML).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function fmtNum(n, digits) {
  if (n === undefined || n === null || Number.isNaN(n)) return "–";
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return n.toFixed(digits === undefined ? (Number.isInteger(n) ? 0 : 1) : digits);
}
function fmtBytes(n) {
  if (!n) return "0 B";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n.toFixed(0)) + " " + u[i];
}
function fmtAgo(iso) {
  if (!iso) return "–";
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 1) return "just now";
  if (s < 90) return Math.round(s) + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  return new Date(iso).toLocaleString();
}
function fmtMillis(ms) {
  if (!ms) return "0 s";
  if (ms < 1000) return ms + " ms";
  if (ms < 120000) return (ms / 1000).toFixed(1) + " s";
  return (ms / 60000).toFixed(1) + " min";
}
function shortSeq(s) {
  if (!s) return "–";
  return s.length > 14 ? "…" + s.slice(-10) : s;
}

const HASH_SPACE = 2n ** 128n;
function hashFraction(dec) {
  try { return Number((BigInt(dec) * 100000n) / HASH_SPACE) / 1000; } catch { return 0; }
}

class Unauthorized extends Error {}

async function api(path, opts) {
  const res = await fetch(path, Object.assign({ credentials: "same-origin", headers: { "Accept": "application/json" } }, opts || {}));
  if (res.status === 401) throw new Unauthorized("log in");
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}
function post(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json", "Accept": "application/json" }, body: JSON.stringify(body || {}) });
}

// ---- charts --------------------------------------------------------------

function chartWidth(container) { return Math.max(240, container.clientWidth || 300); }

const charts = new Set();
// Each chart follows its box's width, whenever the layout changes it.
const chartResizer = new ResizeObserver((entries) => {
  for (const e of entries) {
    for (const c of charts) {
      if (c.box === e.target && Math.round(c.plot.width) !== chartWidth(c.box)) c.plot.setSize({ width: chartWidth(c.box), height: c.height });
    }
  }
});

const AXIS_FONT = "12px system-ui, -apple-system, sans-serif";
// Whole-second steps for the time axis: no sub-second labels.
const TIME_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];

function fmtClock(t) {
  const d = new Date(t * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// lineChart draws series over time. The legend names each series and,
// unless the cursor points elsewhere, shows its latest value. The time
// axis's labels are spaced by their measured width, and the labels drawn
// last are kept on the box (data-x-labels: text, left edge, width in CSS
// pixels) for tests to check that none overlap.
function lineChart(box, series, height) {
  height = height || 180;
  const measure = document.createElement("canvas").getContext("2d");
  measure.font = AXIS_FONT;
  const labelWidth = Math.ceil(measure.measureText("00:00:00").width);
  const opts = {
    width: chartWidth(box), height,
    cursor: { drag: { x: false, y: false } },
    legend: { live: true },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [{ stroke: "#8a93a3", font: AXIS_FONT, grid: { stroke: "rgba(128,128,128,.15)" }, space: labelWidth + 24, incrs: TIME_INCRS,
             values: (u, splits) => {
               // A label that would be cut off at either end of the
               // chart is left out.
               const left = u.bbox.left / uPlot.pxRatio, drawn = [];
               const labels = splits.map((t) => {
                 const l = fmtClock(t), w = measure.measureText(l).width, x = left + u.valToPos(t, "x") - w / 2;
                 if (x < 0 || x + w > u.width) return "";
                 drawn.push({ l, x, w });
                 return l;
               });
               box.dataset.xLabels = JSON.stringify(drawn);
               return labels;
             } },
           { stroke: "#8a93a3", font: AXIS_FONT, grid: { stroke: "rgba(128,128,128,.15)" }, size: 50, values: (u, v) => v.map((x) => fmtNum(x)) }],
    series: [{ label: "time", value: (u, v) => (v === null || v === undefined ? "" : fmtClock(v)) }].concat(series.map((s) => ({ label: s.label, stroke: s.color, width: 2, fill: s.fill, spanGaps: false,
      value: (u, v) => (v === null || v === undefined ? "–" : fmtNum(v) + (s.unit || "")) }))),
  };
  const plot = new uPlot(opts, [[]].concat(series.map(() => [])), box);
  const c = {
    plot, box, height,
    // setData draws data and, when the cursor is not on the chart, shows
    // the latest values in the legend.
    setData(data) {
      plot.setData(data);
      const n = data[0].length;
      if (n > 0 && (plot.cursor.idx === null || plot.cursor.idx === undefined)) plot.setLegend({ idx: n - 1 });
    },
  };
  charts.add(c);
  chartResizer.observe(box);
  return c;
}

// barList draws the top keys as horizontal bars, each labelled with its
// whole key and value: readable at any width, with no labels to overlap.
function barList(box) {
  const list = el("ol", { class: "bars" });
  box.replaceChildren(list);
  return {
    set(items) {
      const top = Math.max(1, ...items.map((k) => k.value));
      list.replaceChildren(...items.map((k) => {
        const bar = el("i");
        bar.style.width = Math.max(0.5, (100 * k.value) / top) + "%";
        return el("li", { title: `${k.key}: ${k.value}` },
          el("span", { class: "bar-key" }, k.key), el("span", { class: "bar-value" }, fmtNum(k.value)), el("span", { class: "bar" }, bar));
      }));
    },
  };
}

// ---- streams -------------------------------------------------------------

const streamViews = new Map(); // id -> view
let streamInfos = new Map();   // id -> /api/streams entry

// streamLabel names a stream as users do: its name, and its region and
// account when it is not in the server's own (its id is then
// region/account/name).
function streamLabel(s) {
  return s.id === s.name ? s.name : `${s.name} (${s.region}, account ${s.account})`;
}

function streamView(s) {
  const name = s.id;
  let v = streamViews.get(name);
  if (v) return v;
  const figs = el("div", { class: "figures" });
  const chartBox = el("div", { class: "chart" });
  const shardsBody = el("tbody");
  const title = el("h3", {}, s.name);
  if (s.id !== s.name) title.append(" ", el("span", { class: "muted", "data-role": "scope" }, `${s.region} · account ${s.account}`));
  const head = el("div", { class: "stream-head" }, title, el("span", { class: "muted", "data-role": "summary" }));
  const card = el("div", { class: "card stream", "data-stream": name }, head, figs, chartBox,
    el("div", { class: "table-wrap" }, el("table", { class: "shards" },
      el("thead", {}, el("tr", {}, el("th", {}, "shard"), el("th", {}, "state"), el("th", {}, "hash range"), el("th", { class: "num" }, "in"),
        el("th", { class: "num" }, "out"), el("th", { class: "num" }, "throttled"), el("th", {}, "last record"))),
      shardsBody)));
  const container = $("streams");
  if (streamViews.size === 0) container.replaceChildren();
  container.append(card);
  v = { card, figs, chartBox, shardsBody, summary: head.querySelector("[data-role=summary]"), chart: null };
  v.chart = lineChart(chartBox, [
    { label: "records/s in", color: "#2563eb", fill: "rgba(37,99,235,.08)" },
    { label: "records/s out", color: "#16a34a" },
  ]);
  streamViews.set(name, v);
  return v;
}

// stack marks a table to lay out one row per block on narrow screens,
// each cell labelled with its column's header (data-label), so nothing
// scrolls sideways.
function stack(table) {
  table.classList.add("stack");
  const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
  for (const tr of table.querySelectorAll("tbody tr")) {
    [...tr.children].forEach((td, i) => { if (heads[i]) td.dataset.label = heads[i]; });
  }
  return table;
}

function figure(cls, value, label) {
  return el("div", { class: "figure " + cls }, el("b", {}, value), el("span", {}, label));
}

function renderStreams(stats) {
  const names = new Set(stats.streams.map((s) => s.id));
  for (const [name, v] of streamViews) {
    if (!names.has(name)) { v.card.remove(); charts.delete(v.chart); chartResizer.unobserve(v.chartBox); streamViews.delete(name); }
  }
  if (stats.streams.length === 0) {
    $("streams").replaceChildren(el("p", { class: "muted" }, "No streams yet. Create one with the aws CLI or runnel stream create."));
    return;
  }
  for (const s of stats.streams) {
    const v = streamView(s);
    const info = streamInfos.get(s.id);
    v.summary.textContent = info ? `${info.openShards} open shard${info.openShards === 1 ? "" : "s"} · ${info.mode.toLowerCase()} · ${info.retentionHours} h retention` : "";
    v.figs.replaceChildren(
      figure("in", fmtNum(s.rate.recordsIn), "records/s in"),
      figure("in", fmtBytes(s.rate.bytesIn) + "/s", "bytes in"),
      figure("out", fmtNum(s.rate.recordsOut), "records/s out"),
      figure("out", fmtBytes(s.rate.bytesOut) + "/s", "bytes out"),
      figure("", fmtNum(s.recordsIn), "records in since start"),
      figure("", fmtNum(s.throttled), "throttled"),
    );
    const series = stats.history.streams[s.id] || [];
    const xs = stats.history.times.slice(-series.length);
    v.chart.setData([xs, series.map((r) => (r ? r.recordsIn : null)), series.map((r) => (r ? r.recordsOut : null))]);
    const shardInfo = new Map((info ? info.shards : []).map((sh) => [sh.id, sh]));
    v.shardsBody.replaceChildren(...s.shards.map((sh) => {
      const si = shardInfo.get(sh.shardId);
      let range = el("td", { class: "muted" }, "–");
      if (si) {
        const a = hashFraction(si.startingHashKey), b = hashFraction(si.endingHashKey);
        const bar = el("div", { class: "range", title: `${si.startingHashKey} – ${si.endingHashKey}` }, el("i"));
        bar.firstChild.style.left = a + "%";
        bar.firstChild.style.width = Math.max(0.5, b - a) + "%";
        range = el("td", {}, bar, el("span", { class: "muted" }, `${a.toFixed(1)}–${b.toFixed(1)}%`));
      }
      const parents = si && (si.parentShardId || si.adjacentParentShardId) ? ` ← ${[si.parentShardId, si.adjacentParentShardId].filter(Boolean).join(" + ")}` : "";
      return el("tr", { "data-shard": sh.shardId },
        el("td", {}, sh.shardId, el("span", { class: "muted" }, parents)),
        el("td", {}, el("span", { class: "pill " + (sh.open ? "ok" : "") }, sh.open ? "open" : "closed")),
        range,
        el("td", { class: "num" }, fmtNum(sh.recordsIn)),
        el("td", { class: "num" }, fmtNum(sh.recordsOut)),
        el("td", { class: "num" }, fmtNum(sh.throttled)),
        el("td", {}, fmtAgo(sh.lastArrival)));
    }));
    stack(v.shardsBody.parentElement);
  }
  updateTailChoices(stats.streams.map((s) => [s.id, streamLabel(s)]));
}

// ---- tail ----------------------------------------------------------------

let tailSource = null;
const TAIL_KEEP = 100;

// updateTailChoices offers the streams, given as [id, label] pairs.
function updateTailChoices(choices) {
  const sel = $("tail-stream");
  const ids = choices.map(([id]) => id);
  const have = [...sel.options].map((o) => o.value);
  if (have.join("\n") === ids.join("\n")) return;
  const cur = sel.value;
  sel.replaceChildren(...choices.map(([id, label]) => el("option", { value: id }, label)));
  if (ids.includes(cur)) sel.value = cur;
}

function stopTail(note) {
  if (tailSource) { tailSource.close(); tailSource = null; }
  $("tail-toggle").textContent = "Start";
  $("tail-state").textContent = note || "";
}

function startTail() {
  const sel = $("tail-stream");
  const id = sel.value;
  if (!id) return;
  const name = sel.selectedOptions[0].textContent;
  stopTail();
  $("tail").replaceChildren();
  $("tail-state").textContent = "connecting…";
  $("tail-toggle").textContent = "Stop";
  const src = new EventSource("api/streams/" + encodeURIComponent(id) + "/tail");
  tailSource = src;
  src.addEventListener("ready", () => { $("tail-state").textContent = "waiting for records on " + name; });
  src.addEventListener("record", (ev) => {
    const r = JSON.parse(ev.data);
    $("tail-state").textContent = "live: " + name;
    let body;
    if (r.json !== undefined) body = JSON.stringify(r.json, null, 1);
    else if (r.text !== undefined) body = r.text;
    else body = "base64: " + r.base64;
    if (r.truncated) body += " … (" + r.size + " bytes)";
    const li = el("li", { class: "record" },
      el("span", { class: "meta" }, `${new Date(r.arrival).toLocaleTimeString()} · ${r.shardId} · key ${r.partitionKey} · seq ${shortSeq(r.sequenceNumber)}`),
      el("pre", {}, body));
    const list = $("tail");
    list.prepend(li);
    while (list.children.length > TAIL_KEEP) list.lastChild.remove();
  });
  src.addEventListener("dropped", (ev) => {
    const n = JSON.parse(ev.data).count;
    $("tail-state").textContent = `live: ${name} (${fmtNum(n)} records/s not shown)`;
  });
  src.addEventListener("error", (ev) => {
    if (ev.data) { stopTail("error: " + JSON.parse(ev.data).error); return; }
    if (src.readyState === EventSource.CLOSED) stopTail("disconnected");
    else $("tail-state").textContent = "reconnecting…";
  });
}

$("tail-toggle").addEventListener("click", () => (tailSource ? stopTail() : startTail()));
$("tail-stream").addEventListener("change", () => { if (tailSource) startTail(); });

// ---- pipelines -----------------------------------------------------------

// processNote says which runnel run process runs a reported pipeline.
function processNote(proc) {
  if (!proc) return null;
  return [
    el("span", { class: "muted" }, `runnel run on ${proc.host || "?"} (pid ${proc.pid || "?"})`),
    proc.stale ? el("span", { class: "pill bad", title: "no report since " + proc.lastReport }, "stale: last report " + fmtAgo(proc.lastReport)) : null,
  ];
}

function renderPipelines(ans) {
  const box = $("pipelines");
  if (!ans.running || ans.pipelines.length === 0) {
    box.replaceChildren(el("p", { class: "muted" }, "No pipelines run against this server (runnel serve --pipelines FILE runs them inside it; runnel run FILE processes report theirs)."));
    return;
  }
  box.replaceChildren(...ans.pipelines.map((p) => {
    const w = p.worker;
    const shards = (w.shards || []).slice().sort((a, b) => a.shardId.localeCompare(b.shardId));
    return el("div", { class: "card pipeline" + (p.process && p.process.stale ? " stale" : ""), "data-pipeline": p.name, "data-process": p.process ? p.process.id : null },
      el("div", { class: "stream-head" }, el("h3", {}, p.name),
        el("span", { class: "muted" }, `${p.source} → ${p.handler}`),
        processNote(p.process),
        w.stopping ? el("span", { class: "pill warn" }, "stopping") : null),
      el("div", { class: "figures" },
        figure("", String(w.held), "shards held"),
        figure("", fmtNum(w.recordsBehind), "records behind"),
        figure("", fmtMillis(w.millisBehindLatest), "behind latest")),
      w.lastError ? el("p", { class: "error" }, "worker: " + w.lastError) : null,
      el("div", { class: "table-wrap" }, stack(el("table", {},
        el("thead", {}, el("tr", {}, ["shard", "state", "checkpoint"].map((h) => el("th", {}, h)),
          ["behind", "lag", "records", "invocations", "errors", "on-failure"].map((h) => el("th", { class: "num" }, h)),
          el("th", {}, "last error"))),
        el("tbody", {}, shards.map((s) => el("tr", {},
          el("td", {}, s.shardId),
          el("td", {}, el("span", { class: "pill " + (s.blocked ? "warn" : s.stalled ? "bad" : s.state === "running" ? "ok" : "") }, s.blocked ? "blocked" : s.stalled ? "stalled" : s.state)),
          el("td", { title: s.checkpoint }, shortSeq(s.checkpoint)),
          el("td", { class: "num" }, fmtNum(s.recordsBehind)),
          el("td", { class: "num" }, fmtMillis(s.millisBehindLatest)),
          el("td", { class: "num" }, fmtNum(s.records)),
          el("td", { class: "num" }, fmtNum(s.invocations)),
          el("td", { class: "num" + (s.errors ? " error" : "") }, fmtNum(s.errors)),
          el("td", { class: "num" }, fmtNum(s.toDestination)),
          el("td", { class: "wrap error" }, s.blocked ? s.blocked : s.lastError ? `${s.lastError} (${fmtAgo(s.lastErrorTime)})` : ""))))))));
  }));
}

// ---- results -------------------------------------------------------------

const resultViews = new Map(); // process id + "/" + pipeline -> view

function fmtFigure(f) {
  return f.unit === "bytes" ? fmtBytes(f.value) : fmtNum(f.value);
}

function renderResults(ans) {
  const box = $("results");
  if (ans.results.length === 0) {
    box.replaceChildren(el("p", { class: "muted" }, "No pipeline reports results yet (count, window and archive processors do)."));
    resultViews.clear();
    return;
  }
  if (resultViews.size === 0) box.replaceChildren();
  const keep = new Set();
  for (const r of ans.results) {
    const id = (r.process ? r.process.id : "") + "/" + r.pipeline;
    keep.add(id);
    let v = resultViews.get(id);
    if (!v) {
      const figs = el("div", { class: "figures" }), top = el("div", { class: "chart" }), win = el("div", { class: "chart" });
      const recent = el("div", { class: "table-wrap" });
      const title = el("h3", {});
      const note = el("p", { class: "muted" });
      const card = el("div", { class: "card", "data-result": r.pipeline, "data-process": r.process ? r.process.id : null }, title, note, figs, top, win, recent);
      box.append(card);
      v = { card, title, note, figs, top, win, recent, topChart: null, winChart: null };
      resultViews.set(id, v);
    }
    v.title.textContent = r.title || r.pipeline;
    v.note.replaceChildren(...["pipeline " + r.pipeline, " ", processNote(r.process)].flat().filter(Boolean));
    v.figs.replaceChildren(...(r.figures || []).map((f) => figure("", fmtFigure(f), f.label)));
    if (r.topKeys && r.topKeys.length) {
      if (!v.topChart) v.topChart = barList(v.top);
      v.topChart.set(r.topKeys);
    }
    if (r.windows && r.windows.length) {
      if (!v.winChart) v.winChart = lineChart(v.win, [{ label: "per window", color: "#7c3aed", fill: "rgba(124,58,237,.1)" }]);
      v.winChart.setData([r.windows.map((w) => Date.parse(w.start) / 1000), r.windows.map((w) => w.value)]);
    }
    if (r.recent && r.recent.length) {
      v.recent.replaceChildren(stack(el("table", { class: "files" },
        el("thead", {}, el("tr", {}, el("th", {}, "latest files"), el("th", { class: "num" }, "size"), el("th", {}, "written"))),
        el("tbody", {}, r.recent.map((o) => el("tr", {},
          el("td", { class: "wrap path", title: o.name }, o.name),
          el("td", { class: "num" }, fmtBytes(o.bytes)),
          el("td", {}, fmtAgo(o.time))))))));
    }
  }
  for (const [id, v] of resultViews) {
    if (!keep.has(id)) {
      v.card.remove();
      if (v.winChart) { charts.delete(v.winChart); chartResizer.unobserve(v.win); }
      resultViews.delete(id);
    }
  }
}

// ---- generator -----------------------------------------------------------

let admin = true;

function renderGenerator(g) {
  const box = $("generator");
  if (!g.present) {
    box.replaceChildren(el("p", { class: "muted" }, "No clickstream generator runs in this server (runnel serve --demo runs one)."));
    return;
  }
  const s = g.status;
  const action = (what) => async () => {
    try { renderGenerator(await post("api/generator/" + what)); refresh(); } catch (e) { box.append(el("p", { class: "error" }, e.message)); }
  };
  box.replaceChildren(
    el("div", { class: "row" },
      el("span", { class: "pill " + (s.running ? "ok" : ""), id: "generator-state" }, s.running ? "running" : "stopped"),
      el("span", { class: "muted" }, "writes to " + g.stream),
      el("span", { class: "grow" }),
      el("button", { id: "generator-start", disabled: s.running || !admin, onclick: action("start") }, "Start"),
      el("button", { id: "generator-stop", class: "secondary", disabled: !s.running || !admin, onclick: action("stop") }, "Stop")),
    el("dl", { class: "kv" },
      el("dt", {}, "events/s"), el("dd", {}, fmtNum(s.eventsPerSecond)),
      el("dt", {}, "sent"), el("dd", {}, fmtNum(s.eventsSent)),
      el("dt", {}, "delivered"), el("dd", {}, fmtNum(s.eventsDelivered)),
      el("dt", {}, "failures"), el("dd", {}, fmtNum(s.failures)),
      el("dt", {}, "sessions"), el("dd", {}, fmtNum(s.sessions)),
      s.lastError ? [el("dt", {}, "last error"), el("dd", { class: "error" }, s.lastError)] : null));
}

// ---- polling -------------------------------------------------------------

let tick = 0;
let timer = null;

function setConn(ok, text) {
  const c = $("conn");
  c.className = "pill " + (ok ? "ok" : "bad");
  c.textContent = text;
}

async function refresh() {
  try {
    if (tick % 3 === 0 || streamInfos.size === 0) {
      const s = await api("api/streams");
      streamInfos = new Map(s.streams.map((x) => [x.id, x]));
    }
    const [stats, pipes, results, gen] = await Promise.all([api("api/stats"), api("api/pipelines"), api("api/results"), api("api/generator")]);
    renderStreams(stats);
    renderPipelines(pipes);
    renderResults(results);
    renderGenerator(gen);
    setConn(!stats.storage, stats.storage ? "writes refused" : "live");
    $("conn").title = stats.storage || "connection to the server";
  } catch (e) {
    if (e instanceof Unauthorized) { showLogin(); return; }
    setConn(false, "server unreachable");
  }
  tick++;
}

function startPolling() {
  if (timer) return;
  refresh();
  timer = setInterval(refresh, 1000);
}

function showLogin() {
  if (timer) { clearInterval(timer); timer = null; }
  stopTail();
  $("app").hidden = true;
  $("login").hidden = false;
  $("logout").hidden = true;
  $("who").textContent = "";
  setConn(true, "login needed");
}

function showApp(session) {
  admin = session.admin;
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = !session.authRequired;
  $("who").textContent = session.authRequired ? session.accessKeyId : "";
  startPolling();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  $("login-error").textContent = "";
  try {
    const s = await post("api/login", { accessKeyId: f.get("accessKeyId"), secretAccessKey: f.get("secretAccessKey") });
    ev.target.reset();
    showApp(s);
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});
$("logout").addEventListener("click", async () => { await post("api/logout").catch(() => {}); showLogin(); });

(async function main() {
  try {
    const s = await api("api/session");
    if (s.authRequired && !s.loggedIn) showLogin(); else showApp(s);
  } catch (e) {
    setConn(false, "server unreachable");
  }
})();
