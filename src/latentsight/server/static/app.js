// The dashboard page: latent map, selection statistics, insights, sample view, trends, concepts.
// State the browser tests read is kept on window.latentsight.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token");
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
  "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779",
  "#6ece58", "#b5de2b", "#fde725"];

const app = (window.latentsight = {
  ready: false, drawnPoints: 0, colorBy: null, highlighted: 0, selection: [], insight: null,
  sample: null, stats: null, errors: [],
});

function withToken(url) {
  if (!TOKEN) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN);
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (TOKEN) headers["X-Latentsight-Token"] = TOKEN;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(`${path}: ${response.status} ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
  return response;
}

const $ = (id) => document.getElementById(id);
const esc = (value) => String(value ?? "-").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const fmt = (value) => (typeof value === "number" ? (Number.isInteger(value) ? String(value) : value.toPrecision(4)) : esc(value));
// A p or q value is never exactly 0: a 0 underflowed double precision and is shown as its bound.
const fmtP = (value) => (value === 0 ? "&lt; 1e-300" : fmt(value));
// A class index (a number, or a category label such as "2") by the run's class name, where the
// Project named its classes; anything else as fmt shows it.
// A multilabel sample's 0/1 labels as the names of those that are on.
function labelSetText(labels) {
  const on = labels.map((v, k) => (v >= 0.5 ? run.classes[k] ?? `label ${k}` : null)).filter((n) => n !== null);
  return on.length ? esc(on.join(" + ")) : "none";
}
function classText(value) {
  if (run.task === "multilabel" && Array.isArray(value)) return labelSetText(value);
  const index = typeof value === "string" && /^\d+(\.0+)?$/.test(value) ? Number(value) : value;
  const name = Number.isInteger(index) ? run.classes[index] : undefined;
  return name === undefined ? fmt(value) : esc(name);
}
const isClassColumn = (name) => run.class_columns.includes(name);
// A column's category as the legend and the tooltip show it.
const categoryText = (column, label) => (isClassColumn(column.name) ? classText(label) : esc(label));
const imageUrl = (id) => withToken(`/api/sample/image?id=${encodeURIComponent(id)}`);

function status(text) { $("status").textContent = text; }
function fail(error) { app.errors.push(String(error)); status(String(error.message || error)); console.error(error); }

function hexToRgb(hex) { const v = parseInt(hex.slice(1), 16); return [(v >> 16) & 255, (v >> 8) & 255, v & 255]; }
const PALETTE_RGB = PALETTE.map(hexToRgb);
const RAMP = (() => {
  const stops = VIRIDIS.map(hexToRgb), ramp = [];
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (stops.length - 1), a = Math.floor(t), b = Math.min(stops.length - 1, a + 1), f = t - a;
    ramp.push([0, 1, 2].map((k) => Math.round(stops[a][k] * (1 - f) + stops[b][k] * f)));
  }
  return ramp;
})();

// ---- the map -------------------------------------------------------------------------------

let scatter, run, columns = {}, values = null, mode = "pan";

async function loadColumn(name) {
  const column = columns[name];
  const buffer = await (await api(`/api/columns/${encodeURIComponent(name)}`)).arrayBuffer();
  const data = column.kind === "number" ? new Float32Array(buffer) : new Uint16Array(buffer);
  const rgba = new Uint8Array(4 * data.length);
  const low = column.low ?? 0, high = column.high ?? 1, span = high > low ? high - low : 1;
  for (let i = 0; i < data.length; i++) {
    let rgb;
    if (column.kind === "number") {
      const v = data[i];
      rgb = Number.isNaN(v) ? [170, 170, 170] : RAMP[Math.max(0, Math.min(255, Math.round(((v - low) / span) * 255)))];
    } else {
      rgb = PALETTE_RGB[data[i] % PALETTE_RGB.length];
    }
    rgba[4 * i] = rgb[0]; rgba[4 * i + 1] = rgb[1]; rgba[4 * i + 2] = rgb[2]; rgba[4 * i + 3] = 230;
  }
  values = { name, column, data };
  scatter.setColors(rgba);
  app.colorBy = name;
  $("map").dataset.colorBy = name;
  drawLegend(column);
  redraw();
}

function drawLegend(column) {
  const legend = $("legend");
  if (column.kind === "number") {
    legend.innerHTML = `<b>${esc(column.name)}</b> ${fmt(column.low)} <span class="ramp"></span> ${fmt(column.high)}` +
      ' <span class="muted">(2nd to 98th percentile; grey: missing)</span>';
  } else {
    const shown = column.categories.slice(0, 24).map((c, i) =>
      `<span><span class="swatch" style="background:${PALETTE[i % PALETTE.length]}"></span>${categoryText(column, c)}</span>`).join("");
    const more = column.categories.length > 24 ? `<span class="muted">+${column.categories.length - 24} more</span>` : "";
    legend.innerHTML = `<b>${esc(column.name)}</b> ${shown}${more}`;
  }
}

function redraw() {
  scatter.draw();
  app.drawnPoints = scatter.drawn;
  $("map").dataset.points = String(scatter.drawn);
  $("point-count").textContent = `${scatter.drawn.toLocaleString()} points`;
}

function highlight(rows) {
  const overlay = $("overlay");
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  const state = new Uint8Array(scatter.n);
  if (rows && rows.length) {
    state.fill(1);
    for (const r of rows) state[r] = 2;
  }
  scatter.setState(state);
  app.highlighted = rows ? rows.length : 0;
  $("map").dataset.highlighted = String(app.highlighted);
  redraw();
}

async function initMap() {
  scatter = new Scatter($("map"));
  app.toScreen = (x, y) => scatter.toScreen(x, y);
  app.toData = (px, py) => scatter.toData(px, py);
  const buffer = await (await api("/api/map")).arrayBuffer();
  const both = new Float32Array(buffer), n = both.length / 2;
  scatter.setPoints(both.subarray(0, n), both.subarray(n));
  const select = $("color-by");
  const groups = {};
  for (const c of run.columns) (groups[c.group] = groups[c.group] || []).push(c);
  for (const [group, list] of Object.entries(groups)) {
    const optgroup = document.createElement("optgroup");
    optgroup.label = group;
    for (const c of list) optgroup.appendChild(new Option(c.name, c.name));
    select.appendChild(optgroup);
  }
  const first = columns.loss ? "loss" : run.columns[0].name;
  select.value = first;
  select.addEventListener("change", () => loadColumn(select.value).catch(fail));
  await loadColumn(first);
  bindMapEvents();
  window.addEventListener("resize", redraw);
}

function bindMapEvents() {
  const canvas = $("map"), overlay = $("overlay"), tooltip = $("tooltip");
  const context = overlay.getContext("2d");
  let drag = null;
  const position = (event) => { const r = canvas.getBoundingClientRect(); return [event.clientX - r.left, event.clientY - r.top]; };
  const clearOverlay = () => {
    overlay.width = overlay.clientWidth; overlay.height = overlay.clientHeight;
    context.clearRect(0, 0, overlay.width, overlay.height);
  };
  document.querySelectorAll("#toolbar .modes button").forEach((button) => button.addEventListener("click", () => {
    mode = button.dataset.mode;
    document.querySelectorAll("#toolbar .modes button").forEach((b) => b.classList.toggle("active", b === button));
  }));
  $("clear").addEventListener("click", () => { clearSelection(); clearOverlay(); });
  $("reset-view").addEventListener("click", () => { scatter.fit(); redraw(); });
  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    const [px, py] = position(event);
    scatter.zoomAt(px, py, Math.exp(-event.deltaY * 0.0015));
    redraw();
  }, { passive: false });
  canvas.addEventListener("mousedown", (event) => {
    const [px, py] = position(event);
    drag = { start: [px, py], last: [px, py], path: [[px, py]], moved: false };
  });
  window.addEventListener("mousemove", (event) => {
    const [px, py] = position(event);
    if (!drag) {
      const inside = px >= 0 && py >= 0 && px <= canvas.clientWidth && py <= canvas.clientHeight;
      const row = inside ? scatter.pick(px, py) : -1;
      if (row < 0) { tooltip.hidden = true; return; }
      showTooltip(row, px, py);
      return;
    }
    if (Math.hypot(px - drag.start[0], py - drag.start[1]) > 3) drag.moved = true;
    if (mode === "pan") {
      scatter.panBy(px - drag.last[0], py - drag.last[1]);
      redraw();
    } else {
      drag.path.push([px, py]);
      clearOverlay();
      context.strokeStyle = "#3b6fd8"; context.fillStyle = "rgba(59,111,216,0.12)"; context.lineWidth = 1.5;
      context.beginPath();
      if (mode === "box") {
        context.rect(drag.start[0], drag.start[1], px - drag.start[0], py - drag.start[1]);
      } else {
        drag.path.forEach(([x, y], i) => (i ? context.lineTo(x, y) : context.moveTo(x, y)));
        context.closePath();
      }
      context.fill(); context.stroke();
    }
    drag.last = [px, py];
  });
  window.addEventListener("mouseup", (event) => {
    if (!drag) return;
    const [px, py] = position(event);
    const finished = drag;
    drag = null;
    if (!finished.moved) {
      const row = scatter.pick(px, py);
      if (row >= 0) showSample(null, row).catch(fail);
      return;
    }
    if (mode === "box") {
      const a = scatter.toData(...finished.start), b = scatter.toData(px, py);
      app.lastBox = [a[0], a[1], b[0], b[1]];
      select(scatter.inRect(a[0], a[1], b[0], b[1]), "box");
    } else if (mode === "lasso" && finished.path.length > 2) {
      select(scatter.inPolygon(finished.path.map(([x, y]) => scatter.toData(x, y))), "lasso");
    }
  });
}

function showTooltip(row, px, py) {
  const tooltip = $("tooltip");
  let value = "";
  if (values) {
    const v = values.data[row];
    value = values.column.kind === "number" ? fmt(v) : categoryText(values.column, values.column.categories[v]);
  }
  const picture = run.has_renders ? `<img src="${withToken(`/api/sample/image?row=${row}`)}" alt="">` : "";
  tooltip.innerHTML = `${picture}<div>row ${row}<br>${esc(values ? values.name : "")}: ${value}</div>`;
  tooltip.style.left = `${px + 12}px`;
  tooltip.style.top = `${py + 12}px`;
  tooltip.hidden = false;
  app.hovered = row;
}

// ---- selection -----------------------------------------------------------------------------

async function select(rows, how) {
  app.selection = rows;
  app.insight = null;
  document.querySelectorAll("#insight-list li").forEach((li) => li.classList.remove("active"));
  $("insight-detail").innerHTML = "";
  highlight(rows);
  await describe(rows, `${how} selection`);
}

function clearSelection() {
  app.selection = [];
  app.insight = null;
  highlight([]);
  document.querySelectorAll("#insight-list li").forEach((li) => li.classList.remove("active"));
  $("insight-detail").innerHTML = "";
  $("selection-stats").innerHTML = '<span class="muted">Draw a box or lasso on the map, or choose an insight.</span>';
}

async function describe(rows, label) {
  const panel = $("selection-stats");
  if (!rows.length) { panel.innerHTML = '<span class="muted">Nothing selected.</span>'; return; }
  const stats = await (await api("/api/selection", {
    method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: new Uint32Array(rows),
  })).json();
  app.stats = stats;
  const valuesRows = stats.values.map((v) =>
    `<tr><td>${esc(v.label)}</td><td class="inside">${fmt(v.inside)}</td><td>${fmt(v.outside)}</td></tr>`).join("");
  const mix = stats.subsets.map((s) =>
    `<tr><td>${esc(s.subset)}</td><td>${s.inside} (${fmt(stats.size ? (100 * s.inside) / stats.size : 0)}%)</td>` +
    `<td>${s.outside} (${fmt(stats.rest ? (100 * s.outside) / stats.rest : 0)}%)</td></tr>`).join("");
  const enriched = stats.enriched.length
    ? stats.enriched.map((e) => `<li>${esc(e.text)} <span class="muted">(p = ${fmtP(e.p_value)})</span></li>`).join("")
    : '<li class="muted">no metadata significantly enriched</li>';
  panel.innerHTML = `<p><b id="selection-size">${stats.size.toLocaleString()}</b> samples in the ${esc(label)}, ` +
    `${stats.rest.toLocaleString()} in the rest.</p>` +
    `<table id="selection-values"><tr><th></th><th>selection</th><th>rest</th></tr>${valuesRows}</table>` +
    `<h3>Subset mix</h3><table><tr><th></th><th>selection</th><th>rest</th></tr>${mix}</table>` +
    `<h3>Enriched metadata</h3><ul id="enriched">${enriched}</ul>`;
}

// ---- insights ------------------------------------------------------------------------------

async function initInsights() {
  const insights = await (await api("/api/insights")).json();
  const list = $("insight-list");
  if (!insights.length) list.innerHTML = '<li class="muted">No significant insight in this run.</li>';
  for (const insight of insights) {
    const li = document.createElement("li");
    li.dataset.index = insight.index;
    li.innerHTML = `${esc(insight.title)} <span class="kind">${esc(insight.kind)}</span> ` +
      `<span class="muted">${insight.size} samples</span>`;
    li.addEventListener("click", () => chooseInsight(insight.index, li).catch(fail));
    list.appendChild(li);
  }
}

async function chooseInsight(index, li) {
  const detail = await (await api(`/api/insights/${index}`)).json();
  document.querySelectorAll("#insight-list li").forEach((item) => item.classList.toggle("active", item === li));
  app.insight = index;
  app.selection = detail.rows;
  highlight(detail.rows);
  const evidence = detail.evidence.map((e) =>
    `<tr><td>${esc(e.detector)}</td><td>${fmt(e.effect)}<br><span class="muted">${esc(e.effect_name)}</span></td>` +
    `<td>${fmtP(e.p_value)}</td><td>${fmtP(e.q_value)}</td><td>${e.n}</td></tr>`).join("");
  $("insight-detail").innerHTML = `<h3>${esc(detail.title)}</h3><p>${esc(detail.description)}</p>` +
    `<p><b>Action:</b> ${esc(detail.action)}</p>` +
    `<table class="evidence"><tr><th>detector</th><th>effect</th><th>p</th><th>q</th><th>n</th></tr>${evidence}</table>` +
    `<div class="gallery" id="insight-gallery">${gallery(detail.gallery)}</div>`;
  bindGallery($("insight-gallery"));
  await describe(detail.rows, "insight's population");
}

function gallery(ids) {
  return ids.map((id) => `<figure><img alt="${esc(id)}" data-id="${esc(id)}" src="${imageUrl(id)}"><figcaption>${esc(id)}</figcaption></figure>`).join("");
}

function bindGallery(element) {
  element.querySelectorAll("img").forEach((img) => img.addEventListener("click", () => showSample(img.dataset.id).catch(fail)));
}

// ---- sample view ---------------------------------------------------------------------------

async function showSample(id, row) {
  const query = id != null ? `id=${encodeURIComponent(id)}` : `row=${row}`;
  const sample = await (await api(`/api/sample?${query}`)).json();
  app.sample = sample;
  const panel = $("sample-panel");
  panel.hidden = false;
  let picture = "";
  if (sample.render === "image") picture = `<img id="sample-image" alt="${esc(sample.id)}" src="${imageUrl(sample.id)}">`;
  else if (sample.render === "text") picture = `<pre id="sample-text">${esc(sample.text)}</pre>`;
  const heat = `<div id="explanations"><select id="heatmap-choice"></select><br><img id="sample-heatmap" alt="heatmap">` +
    `<div id="explain-form"></div><p id="explain-note" class="muted"></p></div>`;
  const isTarget = (target, k) => (Array.isArray(target) ? target[k] >= 0.5 : k === target);
  const probabilities = (sample.probabilities || []).map((p, k) =>
    `<tr><td>${classText(k)}${isTarget(sample.target, k) ? " (target)" : ""}</td><td><span class="bar" style="width:${Math.round((p || 0) * 120)}px"></span> ${fmt(p)}</td></tr>`).join("");
  const cellText = (k, v) => (isClassColumn(k) ? classText(v) : fmt(v));
  const table = (object) => Object.entries(object).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${cellText(k, v)}</td></tr>`).join("");
  const neighbours = sample.neighbours.map((n) =>
    `<figure><img alt="${esc(n.id)}" data-id="${esc(n.id)}" src="${imageUrl(n.id)}"><figcaption>${esc(n.id)}<br>loss ${fmt(n.loss)}</figcaption></figure>`).join("");
  $("sample-view").innerHTML = `<p><b id="sample-id">${esc(sample.id)}</b> <span class="muted">${esc(sample.subset)}, cluster ${fmt(sample.cluster)}</span></p>` +
    `<div class="pictures">${picture}${heat}</div>` +
    `<table><tr><td>target</td><td id="sample-target">${classText(sample.target)}</td></tr>` +
    `<tr><td>prediction</td><td id="sample-prediction">${classText(sample.prediction)}</td></tr>` +
    `<tr><td>confidence</td><td>${fmt(sample.confidence)}</td></tr>${table(sample.values)}</table>` +
    (probabilities ? `<h3>Probabilities</h3><table>${probabilities}</table>` : "") +
    `<h3>Metadata</h3><table>${table(sample.metadata)}</table>` +
    `<h3>Detector scores</h3><table>${table(sample.scores)}</table>` +
    `<h3>Nearest in latent space</h3><div class="gallery" id="neighbours">${neighbours}</div>`;
  bindGallery($("neighbours"));
  setupExplanations(sample);
  panel.scrollIntoView({ block: "start" });
}

// ---- explanations of the sample: cached maps, and more computed when the server has the model --

// What a map explains: "class-3" by the class's name, where the Project named its classes.
function explainedTarget(target) {
  const index = /^class-(\d+)$/.exec(target);
  return (index && run.classes[Number(index[1])]) || target;
}
const explanationLabel = (e) => `${e.method}${e.layer ? " @ " + e.layer : ""} (${explainedTarget(e.target)})`;

function heatmapUrl(id, e) {
  let url = `/api/sample/heatmap?id=${encodeURIComponent(id)}&method=${encodeURIComponent(e.method)}&target=${encodeURIComponent(e.target)}`;
  if (e.layer) url += `&layer=${encodeURIComponent(e.layer)}`;
  return withToken(url);
}

function listExplanations(sample, chosen) {
  const listed = sample.explanations, select = $("heatmap-choice"), img = $("sample-heatmap");
  select.innerHTML = listed.map((e, i) => `<option value="${i}">${esc(explanationLabel(e))}</option>`).join("");
  select.hidden = img.hidden = !listed.length;
  if (!listed.length) return;
  const same = (e) => chosen && e.method === chosen.method && e.layer === chosen.layer && e.target === chosen.target;
  const index = Math.max(0, listed.findIndex(same));
  select.value = String(index);
  img.src = heatmapUrl(sample.id, listed[index]);
}

function setupExplanations(sample) {
  $("heatmap-choice").addEventListener("change", () => {
    $("sample-heatmap").src = heatmapUrl(sample.id, sample.explanations[Number($("heatmap-choice").value)]);
  });
  listExplanations(sample);
  const options = app.explainOptions;
  if (!options.available) {
    $("explain-note").textContent = (sample.explanations.length ? "" : "No explanation cached for this sample. ") + options.note;
    return;
  }
  const choices = (id, values, chosen) => `<select id="${id}">${values.map((v) => `<option${v === chosen ? " selected" : ""}>${esc(v)}</option>`).join("")}</select>`;
  const method = options.methods.includes("gradcam") ? "gradcam" : options.methods[0];
  $("explain-form").innerHTML = choices("explain-method", options.methods, method) +
    choices("explain-layer", options.layers, options.default_layer) +
    choices("explain-target", options.targets, "predicted") + ` <button id="explain-button" class="small">explain</button>`;
  const layered = () => options.layered.includes($("explain-method").value);
  $("explain-method").addEventListener("change", () => { $("explain-layer").disabled = !layered(); });
  $("explain-layer").disabled = !layered();
  $("explain-note").textContent = options.note;
  $("explain-button").addEventListener("click", () => explainSample(sample, layered()).catch(fail));
}

async function explainSample(sample, layered) {
  const request = { id: sample.id, method: $("explain-method").value, target: $("explain-target").value };
  if (layered) request.layer = $("explain-layer").value;
  $("explain-note").textContent = `computing ${explanationLabel(Object.assign({ layer: null }, request))}...`;
  const made = await (await api("/api/explain", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request) })).json();
  const fresh = await (await api(`/api/sample?id=${encodeURIComponent(sample.id)}`)).json();
  if (app.sample !== sample) return;
  sample.explanations = fresh.explanations;
  listExplanations(sample, made);
  app.explained = made;
  $("explain-note").textContent = `${explanationLabel(made)} computed and kept in the run.`;
}

// ---- dashboards ----------------------------------------------------------------------------

let plotlyLoaded = null;
function loadPlotly() {
  if (!plotlyLoaded) {
    plotlyLoaded = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = withToken("/vendor/plotly.min.js");
      script.onload = resolve;
      script.onerror = () => reject(new Error("could not load the bundled plotly.min.js"));
      document.head.appendChild(script);
    });
  }
  return plotlyLoaded;
}

async function drawDashboards() {
  await loadPlotly();
  const value = $("trend-value").value;
  const charts = $("trend-charts");
  charts.innerHTML = "";
  for (const column of run.metadata_columns) {
    const div = document.createElement("div");
    div.className = "chart";
    div.dataset.column = column;
    charts.appendChild(div);
    const trend = await (await api(`/api/trends?column=${encodeURIComponent(column)}&value=${encodeURIComponent(value)}`)).json();
    const traces = trend.groups.map((g, i) => trend.kind === "category"
      ? { type: "bar", x: trend.labels, y: g.mean, name: g.subset, marker: { color: PALETTE[i % PALETTE.length] }, customdata: g.n, hovertemplate: "%{x}: %{y:.3g} (n=%{customdata})" }
      : { type: "scatter", mode: "lines+markers", x: g.x, y: g.mean, name: g.subset, line: { color: PALETTE[i % PALETTE.length], dash: g.subset === "all" ? "dot" : "solid" }, customdata: g.n, hovertemplate: "%{x:.3g}: %{y:.3g} (n=%{customdata})" });
    Plotly.newPlot(div, traces, {
      title: { text: `${trend.value_label} by ${column}` }, margin: { l: 50, r: 10, t: 36, b: 40 },
      barmode: "group", xaxis: { title: { text: column } }, yaxis: { title: { text: `mean ${trend.value_label}` } },
    }, { displaylogo: false, responsive: true });
  }
  app.dashboards = run.metadata_columns.length;
}

function drawMetrics() {
  const keys = Object.keys(run.metrics[0] || {});
  const head = keys.map((k) => `<th>${esc(k)}</th>`).join("");
  const body = run.metrics.map((row) => `<tr>${keys.map((k) => `<td>${fmt(row[k])}</td>`).join("")}</tr>`).join("");
  $("metrics-table").innerHTML = `<table><tr>${head}</tr>${body}</table>`;
}

// ---- concepts ------------------------------------------------------------------------------

async function drawConcepts() {
  const holder = $("concept-tables");
  holder.innerHTML = "";
  for (const name of run.concept_tables) {
    const table = await (await api(`/api/concepts/${encodeURIComponent(name)}?limit=200`)).json();
    const samplesColumn = table.columns.indexOf("top_samples");  // discovered concepts: a gallery
    const cell = (v, i) => i === samplesColumn
      ? `<td><div class="gallery mini">${gallery(v ? v.split(", ").slice(0, 6) : [])}</div></td>`
      : `<td>${esc(v)}</td>`;
    const head = table.columns.map((c) => `<th>${esc(c)}</th>`).join("");
    const body = table.rows.map((r) => `<tr>${r.map(cell).join("")}</tr>`).join("");
    const note = table.total > table.rows.length ? ` <span class="muted">(first ${table.rows.length} of ${table.total})</span>` : "";
    holder.insertAdjacentHTML("beforeend", `<h2>${esc(table.title)}${note}</h2><table class="concepts">${head ? `<tr>${head}</tr>` : ""}${body}</table>`);
  }
  bindGallery(holder);
}

// ---- start ---------------------------------------------------------------------------------

function initTabs() {
  const shown = {};
  document.querySelectorAll("#tabs button").forEach((button) => button.addEventListener("click", () => {
    document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b === button));
    document.querySelectorAll(".tab").forEach((tab) => tab.classList.toggle("active", tab.id === button.dataset.tab));
    if (button.dataset.tab === "map-tab") redraw();
    if (!shown[button.dataset.tab]) {
      shown[button.dataset.tab] = true;
      if (button.dataset.tab === "dash-tab") drawDashboards().catch(fail);
      if (button.dataset.tab === "concepts-tab") drawConcepts().catch(fail);
    }
  }));
  $("close-sample").addEventListener("click", () => { $("sample-panel").hidden = true; });
}

async function start() {
  const started = performance.now();
  run = await (await api("/api/run")).json();
  app.explainOptions = await (await api("/api/explain")).json();
  for (const c of run.columns) columns[c.name] = c;
  $("run-name").textContent = `${run.name}: ${run.n_samples.toLocaleString()} samples, layer ${run.layer}`;
  $("concepts-button").hidden = !run.concept_tables.length;
  const valueSelect = $("trend-value");
  for (const v of run.value_columns) valueSelect.appendChild(new Option(v === "correct" ? "accuracy" : v, v));
  valueSelect.addEventListener("change", () => drawDashboards().catch(fail));
  initTabs();
  drawMetrics();
  await initMap();
  app.mapDrawnMs = performance.now() - started;
  app.mapDrawnAt = performance.now();
  app.ready = true;
  status(`map drawn in ${Math.round(app.mapDrawnMs)} ms`);
  await initInsights();
}

start().catch(fail);
