// The page of `rnnkit serve`: asks /api/model what the model is, shows that task's panel, and
// draws every result by hand (DOM and SVG; no library, no network beyond this server).
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(path, body) {
  const options = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// a value in [-1, 1] as a colour: blue below 0, white at 0, red above (Karpathy et al. 2015)
function colour(t) {
  t = Math.max(-1, Math.min(1, t));
  const [r, g, b] = t >= 0 ? [230, 90, 80] : [90, 130, 230];
  const a = Math.abs(t);
  return `rgb(${Math.round(255 + (r - 255) * a)},${Math.round(255 + (g - 255) * a)},${Math.round(255 + (b - 255) * a)})`;
}

function svgElement(name, attributes, parent) {
  const element = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attributes)) element.setAttribute(k, v);
  if (parent) parent.appendChild(element);
  return element;
}

// ---- lm: generate, coloured by a unit ----------------------------------------------------------

const lmState = {info: null, controller: null, chars: [], scale: 1};

// a signal's value on the colour scale [-1, 1]: gates live in [0, 1]; a signal that leaves [-1, 1] (an
// LSTM's cell state, a ReLU unit) is divided by its largest |value| in the text shown, so that a cell
// counting along the line shows as a gradient rather than one saturated colour
function signalValue(signal, v, scale) {
  return signal.startsWith("gate:") ? 2 * v - 1 : v / scale;
}

function unitScale(unit) {
  let largest = 1;
  for (const c of lmState.chars) largest = Math.max(largest, Math.abs(c.values[unit]));
  return largest;
}

function paint(c, unit, scale) {
  const v = c.values[unit];
  c.span.style.background = v === undefined ? "" : colour(signalValue(c.signal, v, scale));
  c.span.title = v === undefined ? "" : `${c.signal} unit ${unit}: ${v}`;
}

function recolour() {
  const unit = Number($("unit").value);
  lmState.scale = unitScale(unit);
  for (const c of lmState.chars) paint(c, unit, lmState.scale);
}

function showGates(gates) {
  const strip = $("gates");
  strip.textContent = "";
  lmState.info.gates.forEach((name, i) => {
    const cell = document.createElement("div");
    cell.style.background = colour(2 * gates[i] - 1);
    cell.textContent = `${name} ${gates[i].toFixed(2)}`;
    strip.appendChild(cell);
  });
}

function addPiece(event) {
  const span = document.createElement("span");
  span.className = "ch" + (event.prime ? " prime" : " generated");
  span.textContent = event.text;
  $("output").appendChild(span);
  const c = {span, values: event.values, gates: event.gates, signal: $("signal").dataset.sent};
  span.addEventListener("mouseenter", () => showGates(c.gates));
  lmState.chars.push(c);
  const unit = Number($("unit").value);
  if (Math.abs(c.values[unit]) > lmState.scale) recolour();  // a new largest value: every shade changes
  else paint(c, unit, lmState.scale);
  if (event.gates.length) showGates(event.gates);
}

async function generate() {
  showError("");
  const optional = (id) => ($(id).value === "" ? null : Number($(id).value));
  const body = {prime: $("prime").value, length: Number($("length").value), temperature: Number($("temperature").value),
                top_k: Number($("top-k").value), top_p: Number($("top-p").value), seed: optional("seed"),
                layer: Number($("layer").value), signal: $("signal").value, unit: Number($("unit").value)};
  if (!$("condition-label").hidden) body.condition = $("condition").value;
  $("output").textContent = "";
  $("output").dataset.done = "";
  lmState.chars = [];
  lmState.scale = 1;
  $("signal").dataset.sent = body.signal;
  lmState.controller = new AbortController();
  $("generate").disabled = true;
  $("stop").disabled = false;
  try {
    const response = await fetch("/api/lm/generate", {method: "POST", headers: {"Content-Type": "application/json"},
                                                      body: JSON.stringify(body), signal: lmState.controller.signal});
    if (!response.ok) throw new Error((await response.json()).error);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = JSON.parse(buffer.slice(buffer.indexOf("data: ") + 6, end));
        buffer = buffer.slice(end + 2);
        if (event.error) throw new Error(event.error);
        if (event.done) $("output").dataset.done = "true";
        else addPiece(event);
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") showError(e.message);
  } finally {
    $("generate").disabled = false;
    $("stop").disabled = true;
  }
}

function fillSignals() {
  const select = $("signal");
  const keep = select.value;
  select.textContent = "";
  for (const name of Object.keys(lmState.info.signals)) select.add(new Option(name, name));
  if (keep) select.value = keep;
  $("unit").max = lmState.info.signals[select.value] - 1;
}

async function loadUnits() {
  const box = $("units");
  try {
    const found = await api("/api/lm/units");
    const table = document.createElement("table");
    table.innerHTML = "<tr><th>feature</th><th>units (layer · signal · unit: r)</th></tr>";
    for (const f of found.features) {
      const row = table.insertRow();
      row.insertCell().textContent = f.about;
      const cell = row.insertCell();
      if (!f.present) { cell.textContent = `never changes in the ${found.chars} characters read`; continue; }
      f.units.forEach((u, i) => {
        const link = document.createElement("a");
        link.textContent = `${u.layer} · ${u.signal} · ${u.unit}: ${u.r.toFixed(2)}`;
        link.addEventListener("click", () => {
          const same = Number($("layer").value) === u.layer && $("signal").dataset.sent === u.signal;
          $("layer").value = u.layer; $("signal").value = u.signal; $("unit").value = u.unit;
          if (same && lmState.chars.length) recolour(); else generate();
        });
        if (i) cell.appendChild(document.createTextNode(", "));
        cell.appendChild(link);
      });
    }
    box.textContent = "";
    box.appendChild(table);
  } catch (e) {
    box.textContent = e.message;
  }
}

function startLm(info) {
  lmState.info = info.lm;
  for (let k = 0; k < info.lm.layers; k++) $("layer").add(new Option(String(k), String(k)));
  $("layer").value = String(info.lm.layers - 1);
  fillSignals();
  $("length").max = info.lm.limits.length;
  if (info.lm.conditions.length) {
    $("condition-label").hidden = false;
    for (const c of info.lm.conditions) $("condition").add(new Option(c, c));
  }
  for (const id of ["temperature", "top-k", "top-p"]) {
    const show = () => { $(id + "-value").textContent = id === "top-k" && $(id).value === "0" ? "all" : $(id).value; };
    $(id).addEventListener("input", show);
    show();
  }
  $("signal").addEventListener("change", fillSignals);
  $("unit").addEventListener("input", () => { if ($("signal").value === $("signal").dataset.sent) recolour(); });
  $("generate").addEventListener("click", generate);
  $("stop").addEventListener("click", () => lmState.controller && lmState.controller.abort());
  loadUnits();
}

// ---- translate: the attention heatmap ----------------------------------------------------------

function heatmap(svg, rows, columns, weights) {
  svg.textContent = "";
  const cell = 28, left = 8 + 8 * Math.max(...rows.map((r) => r.length)), top = 8 + 8 * Math.max(...columns.map((c) => c.length));
  svg.setAttribute("width", left + cell * columns.length + 10);
  svg.setAttribute("height", top + cell * rows.length + 10);
  columns.forEach((c, j) => {
    const x = left + j * cell + cell / 2;
    svgElement("text", {x, y: top - 4, transform: `rotate(-60 ${x} ${top - 4})`, "font-size": 12}, svg).textContent = c;
  });
  rows.forEach((r, i) => {
    svgElement("text", {x: left - 4, y: top + i * cell + cell * 0.65, "text-anchor": "end", "font-size": 12}, svg).textContent = r;
    columns.forEach((c, j) => {
      const w = weights[i][j];
      const rect = svgElement("rect", {x: left + j * cell, y: top + i * cell, width: cell - 1, height: cell - 1,
                                       fill: `rgba(30,60,160,${w})`, class: "attention"}, svg);
      svgElement("title", {}, rect).textContent = `${r} ← ${c}: ${w.toFixed(3)}`;
    });
  });
}

async function translate() {
  showError("");
  try {
    const data = await api("/api/translate", {texts: [$("source").value], beam: Number($("beam").value)});
    const r = data.results[0];
    $("translation").textContent = r.text;
    heatmap($("heatmap"), r.tokens, r.source_tokens, r.attention);
  } catch (e) { showError(e.message); }
}

// ---- classify and tag ------------------------------------------------------------------------

let classifyInput = "text";

async function classify() {
  showError("");
  const lines = $("classify-input").value.split("\n").filter((l) => l.trim());
  const body = classifyInput === "text" ? {texts: lines} : {series: lines.map((l) => l.split(/[ ,]+/).filter((v) => v).map(Number))};
  try {
    const data = await api("/api/classify", body);
    const box = $("classify-results");
    box.textContent = "";
    data.results.forEach((r, i) => {
      const table = document.createElement("table");
      table.className = "result";
      const head = table.insertRow();
      head.insertCell().textContent = lines[i];
      head.insertCell().textContent = r.label !== undefined ? `→ ${r.label}` : `→ ${r.value.toFixed(4)}`;
      for (const [label, p] of Object.entries(r.probabilities || {})) {
        const row = table.insertRow();
        row.insertCell().textContent = label;
        const bar = document.createElement("span");
        bar.className = "bar";
        bar.style.width = `${Math.round(200 * p)}px`;
        const cell = row.insertCell();
        cell.appendChild(bar);
        cell.appendChild(document.createTextNode(` ${(100 * p).toFixed(1)}%`));
      }
      box.appendChild(table);
      if (r.tokens) {  // attention pooling: each token shaded by its weight, the heaviest darkest
        const line = document.createElement("p");
        line.className = "weights";
        const top = Math.max(...r.weights);
        r.tokens.forEach((token, j) => {
          const span = document.createElement("span");
          span.className = "token weighted";
          span.style.background = `rgba(230,90,80,${(r.weights[j] / top).toFixed(3)})`;
          span.title = `attention ${r.weights[j].toFixed(3)}`;
          span.textContent = token;
          line.appendChild(span);
        });
        box.appendChild(line);
      }
    });
  } catch (e) { showError(e.message); }
}

function tagColour(tag) {
  if (tag === "O") return "#f3f3f3";
  const type = tag.replace(/^[BIESLU]-/, "");
  let h = 0;
  for (const ch of type) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return `hsl(${h},70%,${/^[BS]-/.test(tag) ? 72 : 84}%)`;
}

async function tag() {
  showError("");
  try {
    const data = await api("/api/tag", {texts: [$("tag-input").value]});
    const box = $("tag-results");
    box.textContent = "";
    const r = data.results[0];
    r.tokens.forEach((token, i) => {
      const span = document.createElement("span");
      span.className = "token";
      span.style.background = tagColour(r.tags[i]);
      span.textContent = token;
      const label = document.createElement("small");
      label.textContent = r.tags[i];
      span.appendChild(label);
      box.appendChild(span);
    });
    if (r.entities.length) {
      const list = document.createElement("p");
      list.textContent = "entities: " + r.entities.map((e) => `${e.text} (${e.type})`).join(", ");
      box.appendChild(list);
    }
  } catch (e) { showError(e.message); }
}

// ---- charts: forecast and detect --------------------------------------------------------------

// a chart of series over x = 0 … n-1: lines, a band, rectangles and a horizontal rule
function chart(parent, {width = 1000, height = 220, n, series = [], band = null, shade = [], rule = null, title = ""}) {
  const svg = svgElement("svg", {width, height, class: "chart"});
  parent.appendChild(svg);
  const values = series.flatMap((s) => s.values).concat(band ? band.lower.concat(band.upper) : []).concat(rule === null ? [] : [rule])
    .filter((v) => v !== null && Number.isFinite(v));
  let lo = Math.min(...values), hi = Math.max(...values);
  if (!(hi > lo)) { lo -= 1; hi += 1; }
  const pad = 40, x = (i) => pad + (i / Math.max(n - 1, 1)) * (width - 2 * pad);
  const y = (v) => height - 20 - ((v - lo) / (hi - lo)) * (height - 40);
  svgElement("text", {x: pad, y: 14, "font-size": 12}, svg).textContent = title;
  for (const v of [lo, hi]) svgElement("text", {x: 2, y: y(v) + 4, "font-size": 10}, svg).textContent = v.toPrecision(4);
  for (const [a, b] of shade) {
    svgElement("rect", {x: x(a), y: 20, width: Math.max(x(b - 1) - x(a), 2), height: height - 40, fill: "rgba(230,90,80,.25)",
                        class: "flagged"}, svg);
  }
  if (band) {
    const upper = band.upper.map((v, i) => `${x(band.start + i)},${y(v)}`);
    const lower = band.lower.map((v, i) => `${x(band.start + i)},${y(v)}`).reverse();
    svgElement("polygon", {points: upper.concat(lower).join(" "), fill: "rgba(70,120,210,.25)", class: "band"}, svg);
  }
  for (const s of series) {
    const d = s.values.map((v, i) => (v === null ? null : `${x(s.start + i)},${y(v)}`)).filter((p) => p).join(" ");
    svgElement("polyline", {points: d, fill: "none", stroke: s.colour, "stroke-width": 1.5, class: s.name}, svg);
  }
  if (rule !== null) svgElement("line", {x1: pad, x2: width - pad, y1: y(rule), y2: y(rule), stroke: "#c33", "stroke-dasharray": "4 3",
                                         class: "threshold"}, svg);
  return svg;
}

const column = (rows, c) => rows.map((r) => r[c]);

async function showForecast() {
  const data = await api("/api/forecast");
  const N = data.history.values.length, H = data.forecast.mean.length;
  data.columns.forEach((name, c) => {
    chart($("forecast-charts"), {n: N + H, title: `${name}: the last ${N} points and a forecast of ${H}`,
      band: {start: N, lower: column(data.forecast.lower, c), upper: column(data.forecast.upper, c)},
      series: [{name: "history", colour: "#222", start: 0, values: column(data.history.values, c)},
               {name: "forecast", colour: "#2456b3", start: N, values: column(data.forecast.mean, c)}]});
  });
}

async function showDetect() {
  const data = await api("/api/detect");
  const N = data.scores.length;
  data.columns.forEach((name, c) => {
    chart($("detect-charts"), {n: N, title: name, shade: data.ranges,
                               series: [{name: "values", colour: "#222", start: 0, values: column(data.values, c)}]});
  });
  chart($("detect-charts"), {n: N, title: `anomaly score (threshold ${data.threshold.toPrecision(4)})`, rule: data.threshold,
                             shade: data.ranges, series: [{name: "scores", colour: "#2456b3", start: 0,
                             values: data.scores.map((s, i) => (data.scored[i] ? s : null))}]});
}

// ---- start --------------------------------------------------------------------------------------

async function start() {
  try {
    const info = await api("/api/model");
    $("task-name").textContent = info.task;
    $("description").textContent = info.description;
    document.title = `rnnkit serve: ${info.task}`;
    const panel = $(info.task);
    panel.hidden = false;
    if (info.task === "lm") startLm(info);
    if (info.task === "translate") $("translate-button").addEventListener("click", translate);
    if (info.task === "classify") {
      classifyInput = info.input;
      if (classifyInput !== "text") $("classify-input-label").textContent = "series, one a line: values separated by commas";
      $("classify-button").addEventListener("click", classify);
    }
    if (info.task === "tag") $("tag-button").addEventListener("click", tag);
    if (info.task === "forecast") await showForecast();
    if (info.task === "detect") await showDetect();
    document.body.dataset.ready = "true";
  } catch (e) { showError(e.message); }
}

start();
