// Kronos forecasting page: talks to the JSON API in kronos/webui/app.py and draws with Plotly.
"use strict";

const $ = (id) => document.getElementById(id);
const LOCAL = "__local__";
const DEFAULT_CONTEXT = 512;
const state = { dataset: null, models: new Map(), result: null, controller: null };

function setStatus(text) { $("status").textContent = text; }

function showError(message) {
  $("error").textContent = message;
  $("error").classList.toggle("hidden", !message);
}

// The server answers {"detail": one message} for every refusal (4xx) and for a cancelled forecast (503).
async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) {
    const detail = Array.isArray(body.detail)
      ? body.detail.map((d) => `${d.loc.slice(1).join(".")}: ${d.msg}`).join("; ")
      : body.detail;
    throw new Error(`${detail} (HTTP ${response.status})`);
  }
  return body;
}

function option(value, text) {
  const el = document.createElement("option");
  el.value = value;
  el.textContent = text;
  return el;
}

async function loadModels() {
  const info = await api("/api/models");
  const select = $("model-select");
  select.replaceChildren();
  const groups = [["Experiments in outputs/", info.experiments], ["Models directory", info.models || []],
    ["Hugging Face hub (needs network)", info.hub]];
  for (const [label, choices] of groups) {
    if (!choices.length) continue;
    const group = document.createElement("optgroup");
    group.label = label;
    for (const choice of choices) {
      const key = `${choice.kind}:${choice.name}`;
      state.models.set(key, choice);
      group.append(option(key, choice.name));
    }
    select.append(group);
  }
  select.append(option(LOCAL, "Checkpoint directory (inside outputs/ or the models directory)…"));
  if (!info.experiments.length) select.value = LOCAL;
  onModelChange();
}

// A model trained on shorter windows cannot take the default context: offer what it was trained for.
function onModelChange() {
  const key = $("model-select").value;
  $("local-model").classList.toggle("hidden", key !== LOCAL);
  const choice = state.models.get(key);
  const input = $("max-context");
  if (choice && choice.context) {
    input.max = choice.context;
    input.value = Math.min(DEFAULT_CONTEXT, choice.context);
    $("context-hint").textContent = `(trained for ${choice.context})`;
  } else {
    input.removeAttribute("max");
    $("context-hint").textContent = "";
  }
}

function chosenModel() {
  const key = $("model-select").value;
  if (key === LOCAL) {
    const predictor = $("predictor-path").value.trim();
    const tokenizer = $("tokenizer-path").value.trim();
    if (!predictor || !tokenizer) throw new Error("Type both the predictor and the tokenizer directory.");
    return { predictor, tokenizer };
  }
  const choice = state.models.get(key);
  return { predictor: choice.predictor, tokenizer: choice.tokenizer };
}

async function loadDataFiles() {
  const info = await api("/api/data-files");
  $("data-dir").textContent = info.data_dir;
  const select = $("data-file-select");
  const previous = select.value;
  select.replaceChildren(...info.files.map((f) => option(f, f)));
  if (!info.files.length) select.append(option("", "(no CSV files)"));
  if (info.files.includes(previous)) select.value = previous;
}

function showDataset(summary) {
  state.dataset = summary;
  const symbols = summary.symbols || [];
  $("symbol-row").classList.toggle("hidden", symbols.length === 0);
  $("symbol-select").replaceChildren(...symbols.map((s) => option(s, s)));
  $("dataset-info").replaceChildren();
  const lines = [
    ["Data", summary.name],
    ["Rows", summary.rows.toLocaleString("en-US")],
    ["From", summary.first.replace("T", " ")],
    ["To", summary.last.replace("T", " ")],
    ["Columns", summary.columns.join(", ")],
  ];
  if (symbols.length) lines.splice(2, 0, ["Symbols", symbols.length.toLocaleString("en-US")]);
  for (const [k, v] of lines) {
    const div = document.createElement("div");
    div.append(`${k}: `);
    const b = document.createElement("b");
    b.textContent = v;
    div.append(b);
    $("dataset-info").append(div);
  }
  setStatus(`Loaded ${summary.name} (${summary.rows} rows).`);
}

// Whatever was shown for the previous data or forecast no longer applies: remove it.
function clearResult() {
  state.result = null;
  Plotly.purge("chart");
  $("placeholder").classList.remove("hidden");
  $("chart-caption").textContent = "";
  $("metrics").replaceChildren();
  $("download").classList.add("hidden");
  $("download").removeAttribute("href");
}

async function withDataset(promise) {
  showError("");
  setStatus("Validating data…");
  try {
    showDataset(await promise);
    clearResult();
  } catch (err) {
    state.dataset = null;
    $("dataset-info").textContent = "";
    $("symbol-row").classList.add("hidden");
    $("symbol-select").replaceChildren();
    clearResult();
    showError(err.message);
    setStatus("The data was rejected.");
  }
}

function uploadCsv() {
  const input = $("csv-file");
  const file = input.files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  // Reset, so choosing the same (edited) file again fires "change" and reloads it.
  withDataset(api("/api/datasets/upload", { method: "POST", body: form })).finally(() => { input.value = ""; });
}

function openDataFile() {
  const path = $("data-file-select").value;
  if (!path) return;
  withDataset(api("/api/datasets/file", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ path }),
  })).finally(() => loadDataFiles().catch(() => {}));
}

function request() {
  if (!state.dataset) throw new Error("Upload a CSV or open a file from the data directory first.");
  const num = (id) => Number($(id).value);
  return {
    dataset_id: state.dataset.id,
    ...chosenModel(),
    symbol: state.dataset.symbols ? $("symbol-select").value : null,
    start: $("start").value.trim() || null,
    lookback: num("lookback"),
    pred_len: num("pred-len"),
    T: num("temperature"),
    top_k: num("top-k"),
    top_p: num("top-p"),
    sample_count: num("sample-count"),
    max_context: num("max-context"),
    seed: $("seed").value.trim() === "" ? null : num("seed"),
  };
}

function cancelForecast() {
  if (state.controller) state.controller.abort();
}

async function predict() {
  showError("");
  let body;
  try {
    body = request();
  } catch (err) {
    showError(err.message);
    return;
  }
  const button = $("predict");
  const started = performance.now();
  const elapsed = () => ((performance.now() - started) / 1000).toFixed(1);
  const tick = setInterval(() => {
    $("progress-text").textContent = `Predicting ${body.sample_count} sample path(s)… ${elapsed()} s`;
  }, 200);
  state.controller = new AbortController();
  button.disabled = true;
  $("cancel").classList.remove("hidden");
  document.body.dataset.state = "predicting";
  $("progress").classList.remove("hidden");
  setStatus("Predicting…");
  try {
    const result = await api("/api/forecast", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal: state.controller.signal,
    });
    state.result = result;
    await drawChart(result);
    showMetrics(result.metrics);
    $("download").href = result.csv_url;
    $("download").classList.remove("hidden");
    setStatus(`Forecast of ${result.window.pred_len} rows in ${elapsed()} s.`);
    document.body.dataset.state = "done";
  } catch (err) {
    clearResult();
    if (err.name === "AbortError") {
      setStatus(`Cancelled after ${elapsed()} s; the server stopped the forecast.`);
      document.body.dataset.state = "cancelled";
    } else {
      showError(err.message);
      setStatus("Prediction failed.");
      document.body.dataset.state = "error";
    }
  } finally {
    clearInterval(tick);
    state.controller = null;
    button.disabled = false;
    $("cancel").classList.add("hidden");
    $("progress").classList.add("hidden");
  }
}

const COLORS = {
  up: "#16a34a", down: "#dc2626",
  fcUp: "#2f6fed", fcDown: "#f08a24",
  band: "rgba(47,111,237,0.16)",
  fan: ["rgba(47,111,237,0.12)", "rgba(47,111,237,0.24)"],
  path: "rgba(47,111,237,0.22)",
  median: "#1e4fc2",
  actual: "#1d2433",
};

function candles(series, name, up, down, extra = {}) {
  return {
    type: "candlestick", name, x: series.timestamps,
    open: series.open, high: series.high, low: series.low, close: series.close,
    increasing: { line: { color: up }, fillcolor: up },
    decreasing: { line: { color: down }, fillcolor: down },
    xaxis: "x", yaxis: "y", ...extra,
  };
}

function volumeBars(series, name, color) {
  return { type: "bar", name, x: series.timestamps, y: series.volume, marker: { color }, xaxis: "x", yaxis: "y2",
    showlegend: false, hovertemplate: `${name}: %{y:,.0f}<extra></extra>` };
}

// About n evenly spaced [category, label] pairs. Labels always carry the year; intraday ones add the time
// on a second line (a category axis has no date formatting of its own).
function categoryTicks(stamps, n) {
  const daily = stamps.every((t) => t.length <= 10 || t.slice(11, 19) === "00:00:00");
  const label = (t) => (daily ? t.slice(0, 10) : `${t.slice(0, 10)}<br>${t.slice(11, 16)}`);
  const step = Math.max(1, Math.ceil(stamps.length / n));
  const out = [];
  for (let i = 0; i < stamps.length; i += step) out.push([stamps[i], label(stamps[i])]);
  return out;
}

const pct = (q) => `${Math.round(q * 100)}`;
const fmt = (v) => (Math.abs(v) >= 1000 ? v.toLocaleString("en-US", { maximumFractionDigits: 2 }) : v.toPrecision(5));

// The close band as two lines: the lower one fills up to the upper one and carries both in its tooltip.
function bandTraces(x, lower, upper, name, fill) {
  return [
    { type: "scatter", mode: "lines", name: `${name} upper`, x, y: upper, line: { width: 0 }, showlegend: false,
      hoverinfo: "skip", xaxis: "x", yaxis: "y" },
    { type: "scatter", mode: "lines", name, x, y: lower, customdata: upper, fill: "tonexty", fillcolor: fill,
      line: { width: 0 }, xaxis: "x", yaxis: "y",
      hovertemplate: `${name}: %{y:.5g} to %{customdata:.5g}<extra></extra>` },
  ];
}

function forecastTraces(result, view) {
  const { forecast, band, fan, paths, median } = result;
  const x = forecast.timestamps;
  const bandName = `Close ${pct(band.low)}–${pct(band.high)}% band`;
  if (view === "fan") {
    const traces = paths.close.map((path, i) => ({
      type: "scatter", mode: "lines", name: i === 0 ? `Sample paths (${paths.shown} of ${paths.total})` : `path ${i + 1}`,
      x, y: path, line: { color: COLORS.path, width: 1 }, showlegend: i === 0, legendgroup: "paths",
      hoverinfo: "skip", xaxis: "x", yaxis: "y",
    }));
    const levels = fan.levels;
    const last = levels.length - 1;
    traces.push(...bandTraces(x, fan.close[0], fan.close[last], `Close ${pct(levels[0])}–${pct(levels[last])}%`, COLORS.fan[0]));
    traces.push(...bandTraces(x, fan.close[1], fan.close[last - 1], `Close ${pct(levels[1])}–${pct(levels[last - 1])}%`, COLORS.fan[1]));
    const mid = levels.indexOf(0.5);
    traces.push({ type: "scatter", mode: "lines", name: "Median close", x, y: fan.close[mid],
      line: { color: COLORS.median, width: 2 }, xaxis: "x", yaxis: "y", hovertemplate: "median close: %{y:.5g}<extra></extra>" });
    return traces;
  }
  const traces = bandTraces(x, band.lower, band.upper, bandName, COLORS.band);
  if (view === "median") {
    traces.push(candles(median, "Forecast (median)", COLORS.fcUp, COLORS.fcDown));
  } else {
    traces.push(candles(forecast, "Forecast (mean)", COLORS.fcUp, COLORS.fcDown));
  }
  return traces;
}

function caption(result) {
  const w = result.window;
  const parts = [`${state.dataset.name}: ${w.used_rows} history rows from ${w.start.replace("T", " ")}`,
    `${w.pred_len}-step forecast from ${w.sample_count} sample path(s)`];
  const span = document.createElement("span");
  span.textContent = parts.join(", ") + ".";
  const notes = [];
  if (w.truncated) notes.push(`Lookback ${w.lookback} truncated to the last ${w.used_rows} rows (max_context ${w.max_context}).`);
  if (w.inferred_future_rows) {
    notes.push(w.future_timestamps === "approximate" ? `Approximate timestamps: ${w.future_note}.` : `${w.future_note}.`);
  }
  const out = [span];
  for (const note of notes) {
    const el = document.createElement("span");
    el.className = "warn";
    el.textContent = ` ${note}`;
    out.push(el);
  }
  return out;
}

async function drawChart(result) {
  const { history, forecast, actual } = result;
  const view = $("view-select").value;
  const traces = [candles(history, "History", COLORS.up, COLORS.down)];
  traces.push(...forecastTraces(result, view));
  // The realised future as a close line on top, so it stays visible over the forecast.
  if (actual) {
    traces.push({ type: "scatter", mode: "lines+markers", name: "Actual close", x: actual.timestamps, y: actual.close,
      line: { color: COLORS.actual, width: 1.6 }, marker: { size: 3 }, xaxis: "x", yaxis: "y",
      hovertemplate: "actual close: %{y:.5g}<extra></extra>" });
  }
  if (history.volume) traces.push(volumeBars(history, "History volume", "rgba(120,130,150,0.55)"));
  if (actual && actual.volume) traces.push(volumeBars(actual, "Actual volume", "rgba(120,130,150,0.3)"));
  if (view !== "fan") traces.push(volumeBars(view === "median" ? result.median : forecast, "Forecast volume", "rgba(47,111,237,0.6)"));
  const narrow = $("chart").clientWidth < 700;
  const ticks = categoryTicks([...history.timestamps, ...forecast.timestamps], narrow ? 5 : 8);
  const layout = {
    margin: { l: 60, r: 16, t: 36, b: 52 },
    legend: { orientation: "h", x: 0, y: 1.09, traceorder: "normal", font: { size: narrow ? 10 : 12 } },
    hovermode: "x unified",
    hoverlabel: { bgcolor: "#ffffff", bordercolor: "#c8cfdb", font: { size: 12 } },
    // Category axis: one slot per bar, so nights, lunch breaks and weekends leave no gaps.
    xaxis: { type: "category", categoryorder: "array", categoryarray: [...history.timestamps, ...forecast.timestamps],
      rangeslider: { visible: false }, tickvals: ticks.map((t) => t[0]), ticktext: ticks.map((t) => t[1]), tickangle: 0,
      showgrid: false, automargin: true },
    yaxis: { domain: [0.3, 1], title: { text: "price" }, gridcolor: "#eef1f5", automargin: true },
    yaxis2: { domain: [0, 0.22], title: { text: "volume" }, gridcolor: "#eef1f5", automargin: true },
    shapes: [{ type: "line", xref: "x", yref: "paper", x0: forecast.timestamps[0], x1: forecast.timestamps[0],
      y0: 0, y1: 1, line: { color: "#8a93a6", dash: "dot", width: 1 } }],
    plot_bgcolor: "#ffffff", paper_bgcolor: "#ffffff",
  };
  $("chart-caption").replaceChildren(...caption(result));
  $("placeholder").classList.add("hidden");
  await Plotly.react("chart", traces, layout, { responsive: true, displaylogo: false });
}

function cell(text, cls = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

// Kronos beside its reference: the naive forecast (last close carried forward) for MAE and CRPS, a coin flip
// for direction, the band's nominal level for coverage. A Kronos figure is highlighted only when it beats it.
function showMetrics(metrics) {
  const box = $("metrics");
  box.replaceChildren();
  if (!metrics) {
    const div = document.createElement("div");
    div.className = "info";
    div.textContent = "No actual future in the data for this window: nothing to score.";
    box.append(div);
    return;
  }
  const m = metrics.model, p = metrics.naive, beats = metrics.beats;
  const asPct = (v) => (v === null || v === undefined ? "n/a" : `${(v * 100).toFixed(1)}%`);
  const table = document.createElement("table");
  table.id = "metrics-table";
  const head = document.createElement("thead");
  head.innerHTML = "<tr><th></th><th>Kronos</th><th>Reference</th></tr>";
  head.querySelector("th").textContent = `vs actual (${metrics.rows} rows)`;
  const rows = [
    [`MAE of close (${metrics.point})`, fmt(m.mae_close), beats.mae, `${fmt(p.mae_close)} (naive: last close)`],
    ["Direction accuracy", m.direction_accuracy === null ? "n/a" : `${asPct(m.direction_accuracy)} of ${m.direction_steps}`,
      beats.direction, `${asPct(metrics.direction_reference)} (coin flip; naive: n/a)`],
  ];
  rows.push(["CRPS of close (fair)", fmt(m.crps_close), beats.crps, `${fmt(p.crps_close)} (naive: last close)`]);
  if (metrics.band) {
    rows.push([`Actual inside ${pct(metrics.band.low)}–${pct(metrics.band.high)}% band`, asPct(metrics.band.coverage), false,
      `${asPct(metrics.band.nominal)} (nominal)`]);
  }
  const body = document.createElement("tbody");
  for (const [label, value, better, reference] of rows) {
    const tr = document.createElement("tr");
    tr.append(cell(label), cell(value, better ? "better" : value === "n/a" ? "na" : ""), cell(reference, "ref"));
    body.append(tr);
  }
  const cap = document.createElement("caption");
  cap.textContent = "Green: Kronos beats the reference. Direction counts steps where both the forecast and the market moved.";
  table.append(head, body, cap);
  box.append(table);
}

$("model-select").addEventListener("change", onModelChange);
$("csv-file").addEventListener("change", uploadCsv);
$("open-data-file").addEventListener("click", openDataFile);
$("data-file-select").addEventListener("focus", () => loadDataFiles().catch(() => {}));
$("predict").addEventListener("click", predict);
$("cancel").addEventListener("click", cancelForecast);
$("view-select").addEventListener("change", () => { if (state.result) drawChart(state.result); });
Promise.all([loadModels(), loadDataFiles()])
  .then(() => { document.body.dataset.state = "ready"; })
  .catch((err) => showError(`Could not reach the server: ${err.message}`));
