// Kronos forecasting page: talks to the JSON API in kronos/webui/app.py and draws with Plotly.
"use strict";

const $ = (id) => document.getElementById(id);
const LOCAL = "__local__";
const state = { dataset: null, models: new Map() };

function setStatus(text) { $("status").textContent = text; }

function showError(message) {
  $("error").textContent = message;
  $("error").classList.toggle("hidden", !message);
}

// FastAPI answers {"detail": str} for our errors and {"detail": [{loc, msg}]} for schema errors.
async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) {
    const detail = Array.isArray(body.detail)
      ? body.detail.map((d) => `${d.loc.slice(1).join(".")}: ${d.msg}`).join("\n")
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
  const groups = [["Experiments in outputs/", info.experiments], ["Hugging Face hub (needs network)", info.hub]];
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
  select.append(option(LOCAL, "Local checkpoint directories…"));
  if (!info.experiments.length) select.value = LOCAL;
  onModelChange();
}

function onModelChange() {
  $("local-model").classList.toggle("hidden", $("model-select").value !== LOCAL);
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
  select.replaceChildren(...info.files.map((f) => option(f, f)));
  if (!info.files.length) select.append(option("", "(no CSV files)"));
}

function showDataset(summary) {
  state.dataset = summary;
  const symbols = summary.symbols || [];
  $("symbol-row").classList.toggle("hidden", symbols.length === 0);
  $("symbol-select").replaceChildren(...symbols.map((s) => option(s, s)));
  $("dataset-info").innerHTML = "";
  const lines = [
    ["Data", summary.name],
    ["Rows", summary.rows.toLocaleString()],
    ["From", summary.first.replace("T", " ")],
    ["To", summary.last.replace("T", " ")],
    ["Columns", summary.columns.join(", ")],
  ];
  for (const [k, v] of lines) {
    const div = document.createElement("div");
    div.innerHTML = `${k}: <b></b>`;
    div.querySelector("b").textContent = v;
    $("dataset-info").append(div);
  }
  setStatus(`Loaded ${summary.name} (${summary.rows} rows).`);
}

async function withDataset(promise) {
  showError("");
  setStatus("Validating data…");
  try {
    showDataset(await promise);
  } catch (err) {
    state.dataset = null;
    $("dataset-info").textContent = "";
    showError(err.message);
    setStatus("The data was rejected.");
  }
}

function uploadCsv() {
  const file = $("csv-file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  withDataset(api("/api/datasets/upload", { method: "POST", body: form }));
}

function openDataFile() {
  const path = $("data-file-select").value;
  if (!path) return;
  withDataset(api("/api/datasets/file", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ path }),
  }));
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
  button.disabled = true;
  document.body.dataset.state = "predicting";
  $("progress").classList.remove("hidden");
  setStatus("Predicting…");
  try {
    const result = await api("/api/forecast", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    await drawChart(result);
    showMetrics(result.metrics);
    $("download").href = result.csv_url;
    $("download").classList.remove("hidden");
    setStatus(`Forecast of ${result.window.pred_len} rows in ${elapsed()} s.`);
    document.body.dataset.state = "done";
  } catch (err) {
    showError(err.message);
    setStatus("Prediction failed.");
    document.body.dataset.state = "error";
  } finally {
    clearInterval(tick);
    button.disabled = false;
    $("progress").classList.add("hidden");
  }
}

const COLORS = {
  up: "#16a34a", down: "#dc2626",
  fcUp: "#2f6fed", fcDown: "#f08a24",
  band: "rgba(47,111,237,0.16)",
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
  return { type: "bar", name, x: series.timestamps, y: series.volume, marker: { color }, xaxis: "x", yaxis: "y2", showlegend: false };
}

// About n evenly spaced [category, short label] pairs; times are dropped when every row is at midnight.
function categoryTicks(stamps, n) {
  const daily = stamps.every((t) => t.length <= 10 || t.slice(11, 19) === "00:00:00");
  const label = (t) => (daily ? t.slice(0, 10) : `${t.slice(5, 10)} ${t.slice(11, 16)}`);
  const step = Math.max(1, Math.ceil(stamps.length / n));
  const out = [];
  for (let i = 0; i < stamps.length; i += step) out.push([stamps[i], label(stamps[i])]);
  return out;
}

async function drawChart(result) {
  const { history, forecast, band, actual } = result;
  const pct = (q) => `${Math.round(q * 100)}`;
  const traces = [candles(history, "History", COLORS.up, COLORS.down)];
  traces.push(
    { type: "scatter", mode: "lines", name: "band upper", x: forecast.timestamps, y: band.upper,
      line: { width: 0 }, showlegend: false, hoverinfo: "skip", xaxis: "x", yaxis: "y" },
    { type: "scatter", mode: "lines", name: `Close ${pct(band.low)}–${pct(band.high)}% band`, x: forecast.timestamps,
      y: band.lower, fill: "tonexty", fillcolor: COLORS.band, line: { width: 0 }, xaxis: "x", yaxis: "y" },
    candles(forecast, "Forecast (mean)", COLORS.fcUp, COLORS.fcDown),
  );
  // The realised future as a close line on top, so it stays visible over the forecast candles.
  if (actual) {
    traces.push({ type: "scatter", mode: "lines+markers", name: "Actual close", x: actual.timestamps, y: actual.close,
      line: { color: COLORS.actual, width: 1.6 }, marker: { size: 3 }, xaxis: "x", yaxis: "y" });
  }
  if (history.volume) traces.push(volumeBars(history, "History volume", "rgba(120,130,150,0.55)"));
  if (actual && actual.volume) traces.push(volumeBars(actual, "Actual volume", "rgba(120,130,150,0.3)"));
  traces.push(volumeBars(forecast, "Forecast volume", "rgba(47,111,237,0.6)"));
  const ticks = categoryTicks([...history.timestamps, ...forecast.timestamps], 8);
  const layout = {
    margin: { l: 60, r: 20, t: 36, b: 40 },
    legend: { orientation: "h", x: 0, y: 1.07, traceorder: "normal" },
    hovermode: "x unified",
    // Category axis: candles evenly spaced, without blank nights and weekends.
    xaxis: { type: "category", categoryorder: "category ascending", rangeslider: { visible: false },
      tickvals: ticks.map((t) => t[0]), ticktext: ticks.map((t) => t[1]), tickangle: 0, showgrid: false },
    yaxis: { domain: [0.3, 1], title: { text: "price" }, gridcolor: "#eef1f5" },
    yaxis2: { domain: [0, 0.22], title: { text: "volume" }, gridcolor: "#eef1f5" },
    shapes: [{ type: "line", xref: "x", yref: "paper", x0: forecast.timestamps[0], x1: forecast.timestamps[0],
      y0: 0, y1: 1, line: { color: "#8a93a6", dash: "dot", width: 1 } }],
    plot_bgcolor: "#ffffff", paper_bgcolor: "#ffffff",
  };
  $("chart-caption").textContent = `${state.dataset.name}: ${result.window.lookback} history rows from ` +
    `${result.window.start.replace("T", " ")}, ${result.window.pred_len}-step forecast from ${result.window.sample_count} ` +
    `sample path(s)` + (result.window.inferred_future_rows ? `, ${result.window.inferred_future_rows} future timestamps ` +
    "inferred from the median spacing" : "");
  $("placeholder").classList.add("hidden");
  await Plotly.react("chart", traces, layout, { responsive: true, displaylogo: false });
}

function showMetrics(metrics) {
  const box = $("metrics");
  if (!metrics) {
    box.innerHTML = '<div class="info">No actual future in the data for this window: nothing to score.</div>';
    return;
  }
  const m = metrics.model, p = metrics.persistence;
  const fmt = (v, pctg) => (pctg ? `${(v * 100).toFixed(1)}%` : v.toPrecision(5));
  const row = (label, a, b, lowerIsBetter, pctg) => {
    const modelBetter = lowerIsBetter ? a < b : a > b;
    return `<tr><td>${label}</td><td class="${modelBetter ? "better" : ""}">${fmt(a, pctg)}</td>` +
      `<td class="${!modelBetter && a !== b ? "better" : ""}">${fmt(b, pctg)}</td></tr>`;
  };
  box.innerHTML =
    `<table id="metrics-table"><thead><tr><th>vs actual (${metrics.rows} rows)</th><th>Kronos</th><th>Persistence</th></tr></thead><tbody>` +
    row("MAE of close", m.mae_close, p.mae_close, true, false) +
    row("Direction accuracy", m.direction_accuracy, p.direction_accuracy, false, true) +
    "</tbody><caption>Direction: the sign of the close move since the last history row.</caption></table>";
}

$("model-select").addEventListener("change", onModelChange);
$("csv-file").addEventListener("change", uploadCsv);
$("open-data-file").addEventListener("click", openDataFile);
$("predict").addEventListener("click", predict);
Promise.all([loadModels(), loadDataFiles()])
  .then(() => { document.body.dataset.state = "ready"; })
  .catch((err) => showError(`Could not reach the server: ${err.message}`));
