// The dashboard: plain browser JavaScript, no build step. Every request goes to the API base (this
// server unless `?api=` says otherwise) and everything the API sends is shown with textContent,
// never as HTML, so a hostile CSV or API cannot inject markup.
"use strict";

const COLORS = {
  actual: "#374151",
  predicted: "#2563eb",
  predictedBand: "rgba(37, 99, 235, 0.15)",
  horizon: "#ea580c",
  horizonBand: "rgba(234, 88, 12, 0.15)",
};

/** An error the API answered with (or a failure to reach it), ready to show verbatim. */
class ApiError extends Error {
  constructor(status, message, detail) {
    super(message);
    this.status = status;
    this.detail = detail;
  }
}

const $ = (selector) => document.querySelector(selector);

// The API's default interval level (percent), used when an answer does not say.
const DEFAULT_LEVEL = 95;

const state = {
  apiBase: "",
  // The chosen model (from /models); every panel reads and predicts with this one.
  model: null,
  manifest: null,
  // The CSV behind the chart: re-sent when the horizon or the level changes.
  source: null,
  // Only the newest forecast request may draw, so a slow demo cannot overwrite an upload.
  forecastSeq: 0,
};

/**
 * Where the API lives: relative URLs by default (so the page also works under a path prefix
 * behind a proxy), or the `?api=` base URL when the page is hosted separately.
 */
function resolveApiBase() {
  const given = new URLSearchParams(window.location.search).get("api");
  if (!given) {
    return "";
  }
  const url = new URL(given, window.location.href);
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`?api= must be an http(s) URL, got ${given}`);
  }
  return url.href.replace(/\/+$/, "") + "/";
}

function apiUrl(path) {
  return state.apiBase + path;
}

/** The chosen model's route `models/{name}/{suffix}`. */
function modelPath(suffix) {
  return `models/${encodeURIComponent(state.model)}${suffix ? `/${suffix}` : ""}`;
}

/** Calls the API; resolves to the JSON body or rejects with an ApiError carrying its own text. */
async function callApi(path, init) {
  let response;
  try {
    response = await fetch(apiUrl(path), init);
  } catch (err) {
    throw new ApiError(0, `Could not reach the API at ${apiUrl(path)} (${err.message})`, []);
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = body && body.error;
    if (error && typeof error.message === "string") {
      const detail = Array.isArray(error.detail) ? error.detail : error.detail ? [error.detail] : [];
      throw new ApiError(response.status, error.message, detail);
    }
    // Not our API's error shape (a proxy, an older server): show what came back.
    throw new ApiError(response.status, `HTTP ${response.status}: ${text.slice(0, 300)}`, []);
  }
  if (body === null) {
    throw new ApiError(response.status, `${path} answered with something that is not JSON`, []);
  }
  return body;
}

function formatDetail(item) {
  if (typeof item === "string") {
    return item;
  }
  if (item && typeof item === "object" && "msg" in item) {
    const where = Array.isArray(item.loc) ? item.loc.join(".") : item.loc;
    return where !== undefined && where !== null ? `${where}: ${item.msg}` : String(item.msg);
  }
  return JSON.stringify(item);
}

function showError(element, err) {
  element.replaceChildren();
  const message = document.createElement("span");
  message.className = "error-message";
  message.textContent = err.message;
  element.append(message);
  if (err.status) {
    const status = document.createElement("span");
    status.className = "error-status";
    status.textContent = ` (HTTP ${err.status})`;
    element.append(status);
  }
  // The API's message often is its first detail item already; list only what it adds.
  const details = (err.detail || []).map(formatDetail).filter((text) => text !== err.message);
  if (details.length) {
    const list = document.createElement("ul");
    for (const text of details) {
      const li = document.createElement("li");
      li.textContent = text;
      list.append(li);
    }
    element.append(list);
  }
  element.hidden = false;
}

function clearError(element) {
  element.replaceChildren();
  element.hidden = true;
}

function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

function dollars(value) {
  return isNumber(value) ? `$${value.toFixed(2)}` : "–";
}

function percent(value) {
  return isNumber(value) ? `${value.toFixed(2)} %` : "–";
}

/** Fills a metrics table body with RMSE, MAE and MAPE of the model and of persistence. */
function fillMetrics(tbody, model, persistence) {
  tbody.replaceChildren();
  const rows = [
    ["RMSE", "rmse", dollars],
    ["MAE", "mae", dollars],
    ["MAPE", "mape", percent],
  ];
  for (const [label, key, format] of rows) {
    const tr = document.createElement("tr");
    tr.dataset.metric = key;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = label;
    const ours = document.createElement("td");
    ours.className = "model-value";
    ours.textContent = format(model[key]);
    const theirs = document.createElement("td");
    theirs.className = "persistence-value";
    theirs.textContent = format(persistence[key]);
    // Lower is better for all three; mark the winner so the comparison reads at a glance.
    if (isNumber(model[key]) && isNumber(persistence[key])) {
      (model[key] <= persistence[key] ? ours : theirs).classList.add("better");
    }
    tr.append(th, ours, theirs);
    tbody.append(tr);
  }
}

function showModel(manifest) {
  $("#model-name").textContent = manifest.name;
  $("#model-version").textContent = `v${manifest.version}`;
  $("#model-created").textContent = String(manifest.created_at).replace("T", " ").replace("Z", " UTC");
  $("#model-window").textContent = `${manifest.window} daily ${manifest.feature} prices`;
  const evaluation = manifest.evaluation || { dates: [] };
  const test = (manifest.data && manifest.data.test) || {};
  const days = evaluation.dates.length;
  $("#metrics-caption").textContent = days
    ? `Test month ${evaluation.dates[0]} to ${evaluation.dates[days - 1]} (${days} days${test.file ? `, ${test.file}` : ""})`
    : "Test month";
  const metrics = manifest.metrics || {};
  fillMetrics($("#metrics tbody"), metrics.model || {}, metrics.persistence || {});
  // The latest closes the model knows, so one click predicts the day after its test month.
  const known = demoSeries(manifest);
  $("#closes").value = known.closes.slice(-manifest.window).join(", ");
  updateClosesCount();
}

/** A series of `{x, y, lower?, upper?}`; bounds only when every point carries finite ones. */
function series(items, key) {
  const rows = items.filter((item) => isNumber(item[key]));
  const bounded = rows.length > 0 && rows.every((item) => isNumber(item.lower) && isNumber(item.upper));
  return {
    x: rows.map((item) => item.date),
    y: rows.map((item) => item[key]),
    lower: bounded ? rows.map((item) => item.lower) : null,
    upper: bounded ? rows.map((item) => item.upper) : null,
  };
}

function bandTraces(line, uid, name, color) {
  if (!line.lower) {
    return [];
  }
  const edge = { mode: "lines", line: { width: 0 }, hoverinfo: "skip", x: line.x };
  return [
    { ...edge, uid: `${uid}-upper`, y: line.upper, showlegend: false },
    { ...edge, uid: `${uid}-lower`, y: line.lower, fill: "tonexty", fillcolor: color, name },
  ];
}

function renderChart(view) {
  const chart = $("#chart");
  if (!window.Plotly) {
    showError($("#error"), new ApiError(0, "Plotly.js did not load from vendor/plotly.min.js", []));
    return;
  }
  const traces = [
    {
      uid: "actual",
      name: "Actual close",
      x: view.actual.x,
      y: view.actual.y,
      mode: "lines",
      line: { color: COLORS.actual, width: 1.5 },
    },
    ...bandTraces(view.predicted, "predicted", `${view.level}% prediction interval`, COLORS.predictedBand),
    {
      uid: "predicted",
      name: `Predicted (from the ${view.window} actual closes before each day)`,
      x: view.predicted.x,
      y: view.predicted.y,
      // Markers help on a month of days and only add noise on a year of them.
      mode: view.predicted.x.length <= 60 ? "lines+markers" : "lines",
      line: { color: COLORS.predicted, width: 2 },
      marker: { size: 5 },
    },
  ];
  if (view.horizon.x.length) {
    const last = view.actual.x.length - 1;
    if (last >= 0) {
      // Joins the last actual close to the first horizon day so the continuation reads as one.
      traces.push({
        uid: "horizon-link",
        x: [view.actual.x[last], view.horizon.x[0]],
        y: [view.actual.y[last], view.horizon.y[0]],
        mode: "lines",
        line: { color: COLORS.horizon, width: 2, dash: "dot" },
        hoverinfo: "skip",
        showlegend: false,
      });
    }
    traces.push(
      ...bandTraces(view.horizon, "horizon", `${view.level}% horizon interval`, COLORS.horizonBand),
      {
        uid: "horizon",
        name: `Horizon: ${view.horizon.x.length} days past the data (fed its own predictions)`,
        x: view.horizon.x,
        y: view.horizon.y,
        mode: "lines+markers",
        line: { color: COLORS.horizon, width: 2, dash: "dash" },
        marker: { size: 6, symbol: "circle-open" },
      },
    );
  }
  const layout = {
    margin: { t: 10, r: 10, b: 20, l: 60 },
    xaxis: { type: "date" },
    yaxis: { title: { text: `${view.feature} (USD)` }, tickprefix: "$" },
    legend: { orientation: "h", x: 0, y: -0.12, yanchor: "top" },
    hovermode: "x unified",
  };
  window.Plotly.react(chart, traces, layout, {
    responsive: true,
    displaylogo: false,
    modeBarButtonsToRemove: ["select2d", "lasso2d"],
  });
  $("#chart-caption").textContent = view.caption;
  fillMetrics($("#forecast-metrics tbody"), view.metrics.model, view.metrics.persistence);
  $("#forecast-metrics-caption").textContent = view.metricsCaption;
  const warnings = $("#warnings");
  warnings.replaceChildren(
    ...view.warnings.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }),
  );
  warnings.hidden = view.warnings.length === 0;
  // Stable markers for people and the browser test: what the chart shows right now.
  chart.dataset.source = view.source;
  chart.dataset.points = String(view.predicted.x.length);
  chart.dataset.horizon = String(view.horizon.x.length);
  chart.dataset.level = String(view.level);
  chart.dataset.bands = String(Boolean(view.predicted.lower));
}

/** The training tail the manifest carries (`context`, if the API sends it): the demo's history. */
function trainingTail(manifest) {
  const context = manifest.context || { dates: [], closes: [] };
  return { dates: context.dates, closes: context.closes };
}

/** Every actual close of the demo case: the training tail, then the test month. */
function demoSeries(manifest) {
  const tail = trainingTail(manifest);
  const { evaluation } = manifest;
  return {
    dates: tail.dates.concat(evaluation.dates),
    closes: tail.closes.concat(evaluation.actual),
  };
}

/** The demo case straight from the manifest: history, then the test month actual vs predicted. */
function demoView(manifest) {
  const { evaluation, metrics } = manifest;
  const known = demoSeries(manifest);
  const points = evaluation.dates.map((date, i) => ({
    date,
    actual: evaluation.actual[i],
    predicted: evaluation.predicted[i],
    lower: evaluation.lower && evaluation.lower[i],
    upper: evaluation.upper && evaluation.upper[i],
  }));
  return {
    source: "demo",
    feature: manifest.feature,
    window: manifest.window,
    // Training stores the test month's bounds at one level (95 %); /forecast redraws at the chosen one.
    level: evaluation.level || DEFAULT_LEVEL,
    caption: demoCaption(manifest),
    actual: { x: known.dates, y: known.closes },
    predicted: series(points, "predicted"),
    horizon: series([], "predicted"),
    metrics: { model: metrics.model, persistence: metrics.persistence },
    metricsCaption: `Metrics of the chart above: ${points.length} predicted days`,
    warnings: [],
  };
}

function demoCaption(manifest) {
  const dates = manifest.evaluation.dates;
  const tail = trainingTail(manifest).dates.length;
  return (
    `Demo: the model's own test month, ${dates[0]} to ${dates[dates.length - 1]}, each day ` +
    `predicted from the ${manifest.window} actual closes before it` +
    (tail ? ` (history: the last ${tail} training days).` : ".")
  );
}

/**
 * The demo case as a CSV, so /forecast can add the horizon. Without the training tail the test
 * month alone still works: the API predicts a CSV that follows the training data from the
 * bundle's own last training closes.
 */
function demoCsv(manifest) {
  const { dates, closes } = demoSeries(manifest);
  const lines = [`Date,${manifest.feature}`, ...dates.map((date, i) => `${date},${closes[i]}`)];
  return new Blob([lines.join("\n") + "\n"], { type: "text/csv" });
}

/** Chart view of a /forecast answer: the CSV rows without a prediction (`history`, e.g. the
 * first 40 of an upload) and the predicted rows make one actual line. */
function forecastView(response, source) {
  const points = response.points || [];
  const metrics = response.metrics || {};
  const actual = series((response.history || []).concat(points), "actual");
  const predicted = series(points, "predicted");
  const model = response.model ? `${response.model.name} v${response.model.version}` : "the model";
  const size = state.manifest.window;
  return {
    source: source.kind === "demo" ? "demo" : `upload:${source.filename}`,
    feature: state.manifest.feature,
    window: size,
    level: isNumber(response.level) ? response.level : DEFAULT_LEVEL,
    caption:
      source.kind === "demo"
        ? demoCaption(state.manifest)
        : `${source.filename}: ${predicted.x.length} days, each predicted by ${model} from the ` +
          `${size} actual closes before it.`,
    actual: { x: actual.x, y: actual.y },
    predicted,
    horizon: series(response.horizon || [], "predicted"),
    metrics: {
      model: { rmse: metrics.rmse, mae: metrics.mae, mape: metrics.mape },
      persistence: {
        rmse: metrics.persistence_rmse,
        mae: metrics.persistence_mae,
        mape: metrics.persistence_mape,
      },
    },
    metricsCaption:
      `Metrics of the chart above: ${predicted.x.length} predicted days` +
      (isNumber(metrics.coverage)
        ? `; ${(metrics.coverage * 100).toFixed(1)} % of them inside their ${response.level}% interval`
        : "") +
      (isNumber(metrics.winkler)
        ? ` (mean width ${dollars(metrics.mean_width)}, Winkler score ${metrics.winkler.toFixed(2)})`
        : "") +
      (response.adapt && isNumber(metrics.adapted_level)
        ? `; levels adapted along the series, ${metrics.adapted_level.toFixed(1)} % after the last day`
        : ""),
    warnings: (response.warnings || []).map(String),
  };
}

/** Sends the current CSV to /forecast with the chosen horizon and draws the answer. */
async function runForecast() {
  const source = state.source;
  if (!source) {
    return;
  }
  const seq = ++state.forecastSeq;
  const query = new URLSearchParams();
  const horizon = $("#horizon").value.trim();
  if (horizon !== "") {
    query.set("horizon", horizon);
  }
  query.set("level", $("#level").value);
  if ($("#adapt").checked) {
    query.set("adapt", "true");
  }
  const form = new FormData();
  form.append("file", source.blob, source.filename);
  const uploadError = $("#upload-error");
  $("#forecast").setAttribute("aria-busy", "true");
  try {
    const response = await callApi(modelPath(`forecast?${query}`), { method: "POST", body: form });
    if (seq === state.forecastSeq) {
      clearError(uploadError);
      renderChart(forecastView(response, source));
    }
  } catch (err) {
    if (seq === state.forecastSeq) {
      showError(uploadError, err);
    }
  } finally {
    if (seq === state.forecastSeq) {
      $("#forecast").removeAttribute("aria-busy");
    }
  }
}

function showDemo() {
  const manifest = state.manifest;
  if (!manifest) {
    return;
  }
  // Draw at once from the manifest, then let /forecast add the horizon continuation. /forecast
  // predicts only the test month (the rows with 40 closes before them) and sends the training
  // tail back as `history`, drawn before it.
  renderChart(demoView(manifest));
  state.source = { kind: "demo", blob: demoCsv(manifest), filename: "demo.csv" };
  runForecast();
}

function uploadFile(file) {
  if (!file) {
    return;
  }
  state.source = { kind: "upload", blob: file, filename: file.name };
  $("#file-input").value = "";
  runForecast();
}

function parseCloses(text) {
  // Numbers go as numbers; anything else is sent as typed so the API names the bad entry.
  return text
    .split(/[\s,;]+/)
    .filter(Boolean)
    .map((token) => {
      const value = Number(token);
      return Number.isFinite(value) ? value : token;
    });
}

function updateClosesCount() {
  const count = parseCloses($("#closes").value).length;
  const needed = state.manifest ? state.manifest.window : 40;
  $("#closes-count").textContent = `${count} value${count === 1 ? "" : "s"} (the model reads ${needed})`;
}

async function predict(event) {
  event.preventDefault();
  const result = $("#predict-result");
  const errorBox = $("#predict-error");
  result.textContent = "";
  clearError(errorBox);
  try {
    const response = await callApi(modelPath(`predict?level=${encodeURIComponent($("#level").value)}`), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ closes: parseCloses($("#closes").value) }),
    });
    const model = response.model ? ` (${response.model.name} v${response.model.version})` : "";
    const interval =
      isNumber(response.lower) && isNumber(response.upper)
        ? `, ${response.level}% interval ${dollars(response.lower)} to ${dollars(response.upper)}`
        : "";
    const scale = isNumber(response.scale) ? ` (predicted scale ${dollars(response.scale)})` : "";
    result.textContent = `Next close: ${dollars(response.next_close)}${interval}${scale}${model}`;
    result.dataset.nextClose = String(response.next_close);
  } catch (err) {
    showError(errorBox, err);
  }
}

function wireDropZone() {
  const zone = $("#drop-zone");
  // A file dropped anywhere else would make the browser navigate away from the dashboard.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => event.preventDefault());
  }
  zone.addEventListener("dragover", () => zone.classList.add("dragging"));
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    zone.classList.remove("dragging");
    uploadFile(event.dataTransfer.files[0]);
  });
}

async function main() {
  try {
    state.apiBase = resolveApiBase();
  } catch (err) {
    showError($("#error"), err);
    return;
  }
  $("#api-base").textContent = state.apiBase || window.location.origin;
  $("#api-docs").href = apiUrl("docs");
  $("#file-input").addEventListener("change", (event) => uploadFile(event.target.files[0]));
  $("#horizon").addEventListener("change", runForecast);
  $("#level").addEventListener("change", runForecast);
  $("#adapt").addEventListener("change", runForecast);
  $("#demo-btn").addEventListener("click", showDemo);
  $("#predict-form").addEventListener("submit", predict);
  $("#closes").addEventListener("input", updateClosesCount);
  wireDropZone();
  $("#model-select").addEventListener("change", (event) => chooseModel(event.target.value));
  let overview;
  try {
    overview = await callApi("models");
  } catch (err) {
    $("#model-name").textContent = "unavailable";
    showError($("#error"), err);
    return;
  }
  const wanted = new URLSearchParams(window.location.search).get("model");
  fillModelSelect(overview, wanted);
  await chooseModel($("#model-select").value);
}

/** One option per model of /models (not-ready ones shown but disabled), the default first. */
function fillModelSelect(overview, wanted) {
  const select = $("#model-select");
  select.replaceChildren();
  for (const model of overview.models) {
    const option = document.createElement("option");
    option.value = model.name;
    option.textContent = model.ready ? `${model.name} (v${model.served})` : `${model.name} (not ready)`;
    option.disabled = !model.ready;
    select.append(option);
  }
  const names = overview.models.filter((model) => model.ready).map((model) => model.name);
  select.value = names.includes(wanted) ? wanted : overview.default_model;
}

/** Loads `name`'s manifest and redraws every panel for it. */
async function chooseModel(name) {
  state.model = name;
  state.manifest = null;
  state.forecastSeq += 1; // an answer for the previous model must not draw any more
  clearError($("#error"));
  $("#predict-result").textContent = "";
  clearError($("#predict-error"));
  let manifest;
  try {
    manifest = await callApi(modelPath(""));
  } catch (err) {
    $("#model-name").textContent = "unavailable";
    showError($("#error"), err);
    return;
  }
  if (state.model !== name) {
    return; // another model was chosen meanwhile
  }
  state.manifest = manifest;
  showModel(manifest);
  // Only bands scaled by the model's own scale forecast can adapt along a series.
  const adapt = $("#adapt");
  adapt.disabled = (manifest.intervals || {}).method !== "normalised-conformal";
  if (adapt.disabled) {
    adapt.checked = false;
  }
  showDemo();
}

document.addEventListener("DOMContentLoaded", main);
