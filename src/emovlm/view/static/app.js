// The emovlm run explorer's page. Model text is untrusted: it only ever goes into the page as
// text nodes (textContent), never as markup.
"use strict";

const EMBEDDED = document.getElementById("emovlm-data");
const DATA = EMBEDDED ? JSON.parse(EMBEDDED.textContent) : null;
const PAGE = 50;
const COLOURS = ["#36c", "#c33", "#393", "#f90", "#909", "#0aa", "#963", "#666", "#e6c", "#9c3", "#339"];
const state = { runs: [], run: null, summary: null, filters: {}, offset: 0, total: 0,
                kind: "fixed", changeOffset: 0, changeTotal: 0 };

// ---- DOM helpers (text only) --------------------------------------------------------------
function $(id) { return document.getElementById(id); }
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value; else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
function clear(node) { node.replaceChildren(); return node; }
function fmt(value, digits = 3) {
  return typeof value === "number" ? value.toFixed(digits) : (value === null || value === undefined ? "–" : String(value));
}
function interval(ci) { return Array.isArray(ci) ? `[${fmt(ci[0])}, ${fmt(ci[1])}]` : ""; }
function showError(message) { const e = $("error"); e.textContent = message; e.hidden = !message; }

// ---- data: the server's API, or the embedded data of a static page ---------------------------
async function api(path, params) {
  if (DATA) return local(path, params);
  const url = `/api/${path}?${new URLSearchParams(params || {})}`;
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}
function matches(row, f, run) {
  if (f.gold && !row.gold.includes(f.gold)) return false;
  if (f.pred) {
    if (!run.multi_label) { if (row.answer !== f.pred) return false; }
    else if (run.labels.includes(f.pred)) {
      if (["failed", "unparsed"].includes(row.status) || !row.labels.includes(f.pred)) return false;
    } else if (row.status !== f.pred) return false;
  }
  if (f.status && row.status !== f.status) return false;
  if (f.oos) {
    if (run.multi_label ? !row.labels.includes(f.oos)
        : row.status !== "out_of_set" || row.labels[0] !== f.oos) return false;
  }
  if (f.q && !row.raw_full.toLowerCase().includes(f.q.toLowerCase())) return false;
  return true;
}
function page(rows, offset, limit) {
  return { total: rows.length, offset, limit, rows: rows.slice(offset, offset + limit) };
}
function local(path, p) {
  const run = DATA.runs.find((r) => r.id === (p.run || p.ref));
  if (path === "runs") return DATA.runs;
  if (path === "summary") return DATA.summaries[p.run];
  if (path === "samples") {
    const rows = DATA.samples[p.run].filter((row) => matches(row, p, run));
    return page(rows, Number(p.offset || 0), Number(p.limit || PAGE));
  }
  if (path === "sample") return DATA.details[p.run][p.id];
  const pair = `${p.ref}|${p.other}`;
  if (!(pair in DATA.compares)) throw new Error("this static page holds no comparison of these runs");
  const compared = DATA.compares[pair];
  if (compared.error) throw new Error(compared.error);
  if (path === "compare") return compared.summary;
  if (path === "changes") return page(compared.changes[p.kind], Number(p.offset || 0), Number(p.limit || PAGE));
  throw new Error(`unknown view ${path}`);
}
function thumbSrc(runId, sampleId, thumb) {
  return thumb.src || `/api/thumb?${new URLSearchParams({ run: runId, id: sampleId, idx: thumb.idx })}`;
}

// ---- tabs -------------------------------------------------------------------------------------
function showTab(name) {
  for (const tab of ["overview", "samples", "compare"]) {
    $(tab).hidden = tab !== name;
    const button = $(`tab-${tab}`);
    if (tab === name) button.setAttribute("aria-current", "page"); else button.removeAttribute("aria-current");
  }
  if (name === "compare") loadCompare().catch((e) => showError(e.message));
}

// ---- overview -------------------------------------------------------------------------------
function renderOverview(summary) {
  const m = summary.metrics, run = summary.run, ci = m.ci || {};
  const recognizer = run.recognizer ? run.recognizer.name : "?";
  const dataset = run.dataset ? JSON.stringify(run.dataset) : "?";
  clear($("run-info")).append(
    el("p", {}, `${run.folder} · configuration ${run.key} · recognizer ${recognizer} · label set ${run.label_set} · dataset ${dataset}`),
    el("p", {}, `${m.n} samples; statuses: ` +
      Object.entries(summary.status_counts).map(([k, v]) => `${k} ${v}`).join(", ") + ` · metrics: ${summary.metrics_source}`));
  const headline = clear($("headline"));
  headline.append(el("tr", {}, el("th", {}, "metric"), el("th", {}, "value"), el("th", {}, `${Math.round(100 * (m.ci_level || 0.95))}% interval`)));
  for (const name of ["uar", "war", "macro_f1", "macro_precision", "weighted_f1", "map", "map_emotic", "hamming", "subset_accuracy", "jaccard", "out_of_set_rate", "unparsed_rate", "failed_rate"]) {
    if (typeof m[name] === "number") headline.append(el("tr", {}, el("td", {}, name), el("td", { class: "num" }, fmt(m[name])), el("td", {}, interval(ci[name]))));
  }
  const diagnostics = clear($("diagnostics"));
  const sink = m.sink || null;
  const pct = (v) => `${(100 * v).toFixed(1)}%`;
  const sinkText = sink ? `${sink.label}: ${pct(sink.predicted_share)} of answers vs ${pct(sink.gold_share)} of gold; ` +
    `absorbed ${sink.absorbed} answers of other classes (${pct(sink.absorbed_share)}): ` +
    Object.entries(sink.absorbed_from || {}).map(([k, v]) => `${k} ${v}`).join(", ") : "none";
  diagnostics.append(el("tr", {}, el("td", {}, "sink"), el("td", { id: "sink" }, sinkText)));
  for (const name of ["kl_pred_gold", "head_recall", "tail_recall", "head_tail_gap"]) {
    if (name in m) diagnostics.append(el("tr", {}, el("td", {}, name), el("td", { class: "num" }, fmt(m[name])), el("td", {}, interval(ci[name]))));
  }
  const perClass = clear($("per-class"));
  perClass.append(el("tr", {}, ...["label", "support", "gold share", "predicted share", "precision", "recall", "recall interval", "F1", "F1 interval"].map((h) => el("th", {}, h))));
  const predictedShare = m.predicted_share || {}, goldShare = m.gold_share || {};
  for (const label of m.labels) {
    const c = m.per_class[label];
    perClass.append(el("tr", {}, el("td", {}, label), el("td", { class: "num" }, c.support),
      el("td", { class: "num" }, label in goldShare ? fmt(goldShare[label]) : ""),
      el("td", { class: "num" }, label in predictedShare ? fmt(predictedShare[label]) : ""),
      el("td", { class: "num" }, fmt(c.precision)), el("td", { class: "num" }, fmt(c.recall)), el("td", {}, interval(c.recall_ci)),
      el("td", { class: "num" }, fmt(c.f1)), el("td", {}, interval(c.f1_ci))));
  }
  const confusion = clear($("confusion"));
  const columns = m.confusion.columns;
  confusion.append(el("tr", {}, el("th", {}, "gold \\ answer"), ...columns.map((c) => el("th", {}, c))));
  m.confusion.rows.forEach((gold, i) => {
    const cells = m.confusion.matrix[i].map((count, j) => {
      const button = el("button", { type: "button", "data-gold": gold, "data-pred": columns[j] }, count);
      button.addEventListener("click", () => openSamples({ gold, pred: columns[j] }));
      return el("td", { class: gold === columns[j] ? "diag num" : "num" }, button);
    });
    confusion.append(el("tr", {}, el("th", {}, gold), ...cells));
  });
  const words = clear($("oos-words"));
  for (const [word, count] of Object.entries(m.out_of_set_answers || {}).slice(0, 40)) {
    const link = el("button", { type: "button", "data-oos": word }, `${word} (${count})`);
    link.addEventListener("click", () => openSamples({ oos: word }));
    words.append(el("li", {}, link));
  }
}

// ---- samples --------------------------------------------------------------------------------
function fillSelect(select, values, empty) {
  clear(select).append(el("option", { value: "" }, empty));
  for (const value of values) select.append(el("option", { value }, value));
}
function setupFilters(run) {
  fillSelect($("filter-gold"), run.labels, "any");
  fillSelect($("filter-pred"), run.columns, "any");
  fillSelect($("filter-status"), ["ok", "out_of_set", "unparsed", "failed"], "any");
}
function openSamples(filters) {
  for (const name of ["gold", "pred", "status", "oos", "q"]) $(`filter-${name}`).value = filters[name] || "";
  state.filters = filters;
  state.offset = 0;
  showTab("samples");
  return loadSamples();
}
async function loadSamples() {
  const params = { run: state.run.id, offset: state.offset, limit: PAGE };
  for (const [k, v] of Object.entries(state.filters)) if (v) params[k] = v;
  const result = await api("samples", params);
  state.total = result.total;
  $("sample-total").textContent = `${result.total} samples`;
  $("page-info").textContent = result.total ? `${result.offset + 1}–${result.offset + result.rows.length}` : "";
  $("page-prev").disabled = state.offset === 0;
  $("page-next").disabled = state.offset + PAGE >= result.total;
  const body = clear($("sample-rows"));
  for (const row of result.rows) {
    const tr = el("tr", { "data-id": row.sample_id }, el("td", {}, row.sample_id), el("td", {}, row.gold.join(", ")),
      el("td", {}, row.labels.join(", ")), el("td", {}, row.status), el("td", { class: "raw" }, row.raw + (row.raw_truncated ? " …" : "")));
    tr.addEventListener("click", () => showDetail(state.run.id, row.sample_id).catch((e) => showError(e.message)));
    body.append(tr);
  }
  $("sample-rows").setAttribute("data-loaded", JSON.stringify(state.filters) + state.offset);
}

// ---- one sample ------------------------------------------------------------------------------
async function showDetail(runId, sampleId) {
  const d = await api("sample", { run: runId, id: sampleId });
  $("detail").hidden = false;
  $("detail-title").textContent = `${d.sample_id} (${DATA ? runId : state.runs.find((r) => r.id === runId).name})`;
  const thumbs = clear($("detail-thumbs"));
  if (!d.thumbnails.length) thumbs.append(el("p", {}, "no thumbnails stored for this sample"));
  for (const t of d.thumbnails) {
    thumbs.append(el("figure", {}, el("img", { src: thumbSrc(runId, d.sample_id, t), alt: t.caption }), el("figcaption", {}, t.caption)));
  }
  clear($("detail-full"));
  $("detail-full-button").hidden = Boolean(DATA);
  $("detail-full-button").onclick = () => showFullFrames(runId, d.sample_id).catch((e) => showError(e.message));
  $("detail-raw").textContent = d.raw;
  const parse = clear($("detail-parse"));
  const rows = [["gold", d.gold.join(", ")], ["ranked answers", d.labels.join(", ")], ["status", d.status],
    ["confusion column", d.answer], ["reason", d.reason],
    ["cost", Object.entries(d.cost).map(([k, v]) => `${k} ${v}`).join(", ")]];
  for (const [k, v] of rows) parse.append(el("tr", {}, el("th", {}, k), el("td", {}, v)));
  const scores = clear($("detail-scores"));
  const entries = Object.entries(d.scores || {}).sort((a, b) => b[1] - a[1]);
  if (!entries.length) scores.append(el("tr", {}, el("td", {}, "no scores")));
  for (const [label, value] of entries) scores.append(el("tr", {}, el("td", {}, label), el("td", { class: "num" }, fmt(value))));
  const sentences = clear($("detail-sentences"));
  $("detail-sentences-box").hidden = !d.sentences.length;
  for (const s of d.sentences) sentences.append(el("li", {}, s.start === null ? s.text : `frames ${s.start}–${s.end}: ${s.text}`));
  $("detail-timeline-box").hidden = !d.timeline;
  clear($("detail-timeline"));
  if (d.timeline) $("detail-timeline").append(drawTimeline(d.timeline));
  $("detail-extra").textContent = JSON.stringify(d.extra, null, 1);
  $("detail").setAttribute("data-sample", d.sample_id);
}
async function showFullFrames(runId, sampleId) {
  const found = await api("frames", { run: runId, id: sampleId });
  const box = clear($("detail-full"));
  if (!found.frames.length) { box.append(el("p", { id: "detail-full-reason" }, found.reason)); return; }
  for (const f of found.frames) {
    const src = `/api/frame?${new URLSearchParams({ run: runId, id: sampleId, idx: f.index })}`;
    box.append(el("figure", {}, el("img", { src, alt: f.caption, class: "full" }), el("figcaption", {}, f.caption)));
  }
}
function drawTimeline(t) {
  const ns = "http://www.w3.org/2000/svg", w = 420, h = 160, pad = 24;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h + 20 * Math.ceil(t.labels.length / 4));
  const t0 = t.times[0], t1 = t.times[t.times.length - 1] || t0 + 1;
  const x = (v) => pad + ((v - t0) / (t1 - t0 || 1)) * (w - 2 * pad);
  const y = (p) => h - pad - p * (h - 2 * pad);
  t.labels.forEach((label, j) => {
    // frames without a face (null) break the line: gaps stay visible
    const segments = [[]];
    t.times.forEach((time, i) => {
      const p = t.probs[i] ? t.probs[i][j] : null;
      if (p === null || p === undefined) { if (segments[segments.length - 1].length) segments.push([]); }
      else segments[segments.length - 1].push(`${x(time)},${y(p)}`);
    });
    for (const points of segments.filter((s) => s.length)) {
      const line = document.createElementNS(ns, "polyline");
      line.setAttribute("points", points.join(" "));
      line.setAttribute("fill", "none"); line.setAttribute("stroke", COLOURS[j % COLOURS.length]);
      svg.append(line);
    }
    const key = document.createElementNS(ns, "text");
    key.setAttribute("x", pad + (j % 4) * 100); key.setAttribute("y", h + 14 + 20 * Math.floor(j / 4));
    key.setAttribute("fill", COLOURS[j % COLOURS.length]); key.textContent = label;
    svg.append(key);
  });
  const axis = document.createElementNS(ns, "text");
  axis.setAttribute("x", pad); axis.setAttribute("y", h - 6);
  axis.textContent = `${fmt(t0, 2)} s … ${fmt(t1, 2)} s (probability 0–1)`;
  svg.append(axis);
  return svg;
}

// ---- compare ----------------------------------------------------------------------------------
async function loadCompare() {
  $("compare-ref").textContent = state.run.name;
  const select = $("compare-other");
  const others = state.runs.filter((r) => r.id !== state.run.id);
  const previous = select.value;
  clear(select);
  for (const r of others) select.append(el("option", { value: r.id }, r.name));
  if (others.some((r) => r.id === previous)) select.value = previous;
  const body = clear($("compare-body"));
  if (!others.length) { body.append(el("p", {}, "Open two or more runs (emovlm view RUN_A RUN_B) to compare them.")); return; }
  const result = await api("compare", { ref: state.run.id, other: select.value });
  body.append(el("p", {}, `${result.n} shared samples; differences are other − reference with ${Math.round(100 * result.ci_level)}% paired bootstrap intervals (${result.n_bootstrap} resamples) and two-sided bootstrap p.`));
  const cells = (d) => [el("td", { class: "num" }, fmt(d.reference)), el("td", { class: "num" }, fmt(d.other)),
    el("td", { class: d.diff >= 0 ? "num pos" : "num neg" }, fmt(d.diff)), el("td", {}, interval(d.ci)), el("td", { class: "num" }, fmt(d.p))];
  const table = el("table", { id: "compare-headline" }, el("tr", {}, ...["metric", "reference", "other", "difference", "interval", "p"].map((c) => el("th", {}, c))));
  for (const metric of result.metrics) table.append(el("tr", {}, el("td", {}, metric), ...cells(result.headline[metric])));
  body.append(table);
  const perClass = el("table", { id: "compare-per-class" }, el("tr", {}, ...["label", "support", "recall ref", "recall other", "difference", "interval", "p", "F1 ref", "F1 other", "difference", "interval", "p"].map((c) => el("th", {}, c))));
  for (const row of result.per_class) {
    perClass.append(el("tr", {}, el("td", {}, row.label), el("td", { class: "num" }, row.support), ...cells(row.recall), ...cells(row.f1)));
  }
  body.append(el("h3", {}, "Per class"), perClass);
  for (const kind of ["fixed", "broken", "changed"]) $(`change-${kind}`).textContent = `${kind} (${result.changes[kind]})`;
  state.changeOffset = 0;
  await loadChanges();
}
async function loadChanges() {
  const other = $("compare-other").value;
  if (!other) return;
  const result = await api("changes", { ref: state.run.id, other, kind: state.kind, offset: state.changeOffset, limit: PAGE });
  state.changeTotal = result.total;
  $("change-info").textContent = `${state.kind}: ${result.total ? `${result.offset + 1}–${result.offset + result.rows.length} of ` : ""}${result.total}`;
  const body = clear($("change-rows"));
  for (const row of result.rows) {
    const tr = el("tr", { "data-id": row.sample_id }, el("td", {}, row.sample_id), el("td", {}, row.gold.join(", ")),
      el("td", {}, row.reference.answer), el("td", {}, row.other.answer), el("td", {}, row.other.raw));
    tr.addEventListener("click", () => showDetail(other, row.sample_id).catch((e) => showError(e.message)));
    body.append(tr);
  }
  body.setAttribute("data-loaded", `${state.kind}|${other}|${state.changeOffset}`);
}

// ---- start ------------------------------------------------------------------------------------
async function selectRun(runId) {
  state.run = state.runs.find((r) => r.id === runId);
  state.summary = await api("summary", { run: runId });
  renderOverview(state.summary);
  setupFilters(state.run);
  state.filters = {};
  state.offset = 0;
  $("detail").hidden = true;
  await loadSamples();
  if (!$("compare").hidden) await loadCompare();
  document.body.setAttribute("data-run", runId);
}
async function start() {
  if (DATA) { const note = $("static-note"); note.textContent = DATA.note; note.hidden = false; }
  state.runs = await api("runs", {});
  const select = $("run-select");
  for (const r of state.runs) select.append(el("option", { value: r.id }, r.name));
  select.addEventListener("change", () => selectRun(select.value).catch((e) => showError(e.message)));
  for (const tab of ["overview", "samples", "compare"]) $(`tab-${tab}`).addEventListener("click", () => showTab(tab));
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const filters = {};
    for (const name of ["gold", "pred", "status", "oos", "q"]) filters[name] = $(`filter-${name}`).value.trim();
    openSamples(filters).catch((e) => showError(e.message));
  });
  $("filter-clear").addEventListener("click", () => openSamples({}).catch((e) => showError(e.message)));
  $("page-prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); loadSamples().catch((e) => showError(e.message)); });
  $("page-next").addEventListener("click", () => { state.offset += PAGE; loadSamples().catch((e) => showError(e.message)); });
  $("compare-other").addEventListener("change", () => loadCompare().catch((e) => showError(e.message)));
  for (const kind of ["fixed", "broken", "changed"]) {
    $(`change-${kind}`).addEventListener("click", () => { state.kind = kind; state.changeOffset = 0; loadChanges().catch((e) => showError(e.message)); });
  }
  $("change-prev").addEventListener("click", () => { state.changeOffset = Math.max(0, state.changeOffset - PAGE); loadChanges().catch((e) => showError(e.message)); });
  $("change-next").addEventListener("click", () => { if (state.changeOffset + PAGE < state.changeTotal) { state.changeOffset += PAGE; loadChanges().catch((e) => showError(e.message)); } });
  $("detail-close").addEventListener("click", () => { $("detail").hidden = true; });
  showTab("overview");
  await selectRun(state.runs[0].id);
}
start().then(() => document.body.setAttribute("data-ready", "1")).catch((e) => showError(e.message));
