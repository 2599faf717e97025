// vitalflow dashboard: live ward overview over Server-Sent Events with
// NEWS2 sparklines, a patient panel with trends drawn from the stored
// dataset (uPlot, vendored) and extended live, an alerts feed with
// acknowledgement, and the diabetes-risk form with its SHAP chart.
// No build step and no network beyond this server.
"use strict";

const RANGES = [3600e3, 6 * 3600e3, 24 * 3600e3];
const ALERTS_KEPT = 200;        // alerts held in the page at most
const SPARK_MS = 3600e3;        // a sparkline covers the last hour

const state = {
  patients: new Map(),   // patient_id -> latest reading
  previous: new Map(),   // patient_id -> NEWS2 of the reading before
  sparks: new Map(),     // patient_id -> {t: [ms], v: [news2]}
  recent: [],            // selected patient's readings, newest first
  selected: null,
  newestTs: null,
  alerts: [],            // newest first, at most ALERTS_KEPT
  acks: new Map(),       // alert id -> acknowledgement
  canAck: false,
  filter: "",
  cursor: null,          // patient id under the keyboard cursor
  range: RANGES[0],
  trend: null,           // {patient, from, step, historyPoints, points, data, charts}
  latencies: [],         // event time -> on screen, ms (read by the browser test)
  renderQueued: false,
  freshnessTimer: null,  // the 500 ms ageing timer (the browser test stops it)
};
window.__vitalflow = state;

const $ = (id) => document.getElementById(id);
const fmtTime = (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 19) + "Z";
const levelClass = (level) => "level level-" + (level || "none");
// Colour is never the only signal: every level also has a symbol and text.
const LEVEL_ICON = { high: "▲▲", medium: "▲", "low-medium": "△", low: "●", moderate: "▲" };
const levelText = (level) => `${LEVEL_ICON[level] || ""} ${level || "—"}`.trim();

function showBanner(message) {
  const banner = $("banner-error");
  if (message) { banner.textContent = message; banner.hidden = false; } else { banner.hidden = true; }
}

// A session that ended (logged out elsewhere, expired, server restarted)
// sends the page back to the login form.
function toLogin() { window.location.assign("/login"); }

async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (response.status === 401) { toLogin(); throw new Error("session ended"); }
  if (!response.ok) {
    let why = `HTTP ${response.status}`;
    try { why = (await response.json()).detail.map((d) => d.msg).join("; "); } catch (_) { /* not JSON */ }
    throw new Error(why);
  }
  return response.json();
}

// ---- live data ---------------------------------------------------------

function ingest(readings) {
  const arrived = Date.now();
  let selectedChanged = false;
  for (const r of readings) {
    const before = state.patients.get(r.patient_id);
    if (before && before.ts < r.ts) state.previous.set(r.patient_id, before.news2_score);
    else if (!before && r.previous_news2_score !== undefined && r.previous_news2_score !== null) {
      state.previous.set(r.patient_id, r.previous_news2_score);
    }
    if (!before || before.ts <= r.ts) state.patients.set(r.patient_id, r);
    if (state.newestTs === null || r.ts > state.newestTs) state.newestTs = r.ts;
    sparkPush(r.patient_id, r.ts, r.news2_score);
    if (r.patient_id === state.selected) {
      state.recent.unshift(r);
      state.recent.length = Math.min(state.recent.length, 20);
      trendPush(r);
      selectedChanged = true;
    }
  }
  if (selectedChanged) trendRedraw();
  queueRender(readings.map((r) => r.ts), arrived);
}

function queueRender(eventTimes, arrived) {
  if (state.renderQueued) { state.pendingTimes = (state.pendingTimes || []).concat(eventTimes); return; }
  state.renderQueued = true;
  state.pendingTimes = eventTimes;
  requestAnimationFrame(() => {
    state.renderQueued = false;
    renderWard();
    renderPatient();
    tickFreshness();
    const shown = Date.now();
    for (const ts of state.pendingTimes) state.latencies.push(shown - ts);
    if (state.latencies.length > 5000) state.latencies.splice(0, state.latencies.length - 5000);
    state.pendingTimes = [];
  });
}

function connect() {
  const source = new EventSource("/api/stream");
  source.addEventListener("open", () => setPill("connection", "live", "ok"));
  source.addEventListener("readings", (e) => ingest(JSON.parse(e.data).readings));
  source.addEventListener("alert", (e) => addAlerts([JSON.parse(e.data)]));
  source.addEventListener("ack", (e) => { const ack = JSON.parse(e.data); state.acks.set(ack.alert_id, ack); renderAlerts(); });
  source.addEventListener("error", () => {
    setPill("connection", "reconnecting…", "bad");
    // EventSource hides the status: ask whether the session still holds.
    fetch("/api/me").then((r) => { if (r.status === 401) toLogin(); }).catch(() => {});
  });
}

function setPill(id, text, kind) {
  const pill = $(id);
  pill.textContent = text;
  pill.className = "pill pill-" + kind;
}

function tickFreshness() {
  if (state.newestTs === null) { setPill("freshness", "no data yet", "wait"); return; }
  const age = (Date.now() - state.newestTs) / 1000;
  if (age < 3) setPill("freshness", `fresh · ${age.toFixed(1)} s`, "ok");
  else if (age < 30) setPill("freshness", `delayed · ${age.toFixed(0)} s`, "wait");
  else setPill("freshness", `stale · ${Math.round(age)} s — pipeline stopped?`, "bad");
}

// ---- ward table: search, keyboard, sparklines ------------------------------

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null || Number.isNaN(text) ? "—" : text;
  if (cls) td.className = cls;
  return td;
}

function matches(r) {
  if (!state.filter) return true;
  const q = state.filter.toLowerCase();
  return [r.patient_id, r.name, r.bed].some((v) => v !== undefined && v !== null && String(v).toLowerCase().includes(q));
}

function wardRows() {
  return [...state.patients.values()].filter(matches).sort((a, b) =>
    b.news2_score - a.news2_score || a.patient_id.localeCompare(b.patient_id));
}

function sparkPush(id, ts, value) {
  let s = state.sparks.get(id);
  if (!s) { s = { t: [], v: [] }; state.sparks.set(id, s); }
  if (s.t.length && ts <= s.t[s.t.length - 1]) return;
  s.t.push(ts); s.v.push(value);
  const cut = ts - SPARK_MS;
  let drop = 0;
  while (drop < s.t.length && s.t[drop] < cut) drop++;
  if (drop) { s.t.splice(0, drop); s.v.splice(0, drop); }
}

const SVG = "http://www.w3.org/2000/svg";
function sparkline(id) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", "72");
  svg.setAttribute("height", "22");
  svg.setAttribute("viewBox", "0 0 72 22");
  const s = state.sparks.get(id);
  if (!s || s.t.length < 2) return svg;
  const t1 = s.t[s.t.length - 1], t0 = t1 - SPARK_MS;
  const x = (t) => 2 + 68 * Math.max(0, t - t0) / SPARK_MS;
  // 0 sits just above the bottom edge, so a flat line of zeros shows.
  const y = (v) => 19 - 16 * Math.min(v, 10) / 10;
  // The NEWS2 >= 5 zone, so a rise into it reads at a glance.
  const zone = document.createElementNS(SVG, "rect");
  zone.setAttribute("x", 2); zone.setAttribute("width", 68);
  zone.setAttribute("y", y(10)); zone.setAttribute("height", y(4.5) - y(10));
  zone.setAttribute("class", "spark-zone");
  svg.appendChild(zone);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", s.t.map((t, i) => `${x(t).toFixed(1)},${y(s.v[i]).toFixed(1)}`).join(" "));
  line.setAttribute("class", "spark-line");
  svg.appendChild(line);
  svg.dataset.points = s.t.length;
  const label = document.createElementNS(SVG, "title");
  label.textContent = `NEWS2 over the last hour: ${Math.min(...s.v)} to ${Math.max(...s.v)}`;
  svg.appendChild(label);
  return svg;
}

function trendArrow(r) {
  const before = state.previous.get(r.patient_id);
  const span = document.createElement("span");
  span.className = "arrow";
  if (before === undefined || before === null || before === r.news2_score) return span;
  const rising = r.news2_score > before;
  span.textContent = rising ? "▲" : "▼";
  span.classList.add(rising ? "rising" : "falling");
  span.title = `${rising ? "rose" : "fell"} from ${before}`;
  span.setAttribute("aria-label", span.title);
  return span;
}

function renderWard() {
  const rows = wardRows();
  $("ward-count").textContent = state.patients.size
    ? (state.filter ? `(${rows.length} of ${state.patients.size} patients)` : `(${rows.length} patients)`) : "";
  if (state.cursor && !rows.some((r) => r.patient_id === state.cursor)) state.cursor = null;
  const body = document.createElement("tbody");
  if (!rows.length) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    tr.appendChild(cell(state.patients.size ? `No patient matches “${state.filter}”.` : "Waiting for the first readings…")).colSpan = 9;
    body.appendChild(tr);
  }
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.dataset.patient = r.patient_id;
    if (r.patient_id === state.selected) { tr.classList.add("selected"); tr.setAttribute("aria-current", "true"); }
    if (r.patient_id === state.cursor) tr.classList.add("cursor");
    tr.appendChild(cell(r.name ? `${r.patient_id} · ${r.name}` : r.patient_id));
    const score = cell("");
    const chip = document.createElement("span");
    chip.className = "score " + levelClass(r.risk_level);
    chip.textContent = r.news2_score;
    chip.title = levelText(r.risk_level);
    score.append(chip, trendArrow(r));
    tr.appendChild(score);
    const spark = cell("", "spark-cell");
    spark.appendChild(sparkline(r.patient_id));
    tr.appendChild(spark);
    tr.appendChild(cell(r.heart_rate));
    tr.appendChild(cell(r.spo2));
    tr.appendChild(cell(r.systolic_bp === undefined ? undefined : `${r.systolic_bp}/${r.diastolic_bp}`));
    tr.appendChild(cell(r.respiratory_rate));
    tr.appendChild(cell(r.temperature === undefined ? undefined : Number(r.temperature).toFixed(1)));
    tr.appendChild(cell(r.consciousness));
    tr.addEventListener("click", () => openPatient(r.patient_id));
    body.appendChild(tr);
  }
  $("ward-table").replaceChild(body, $("ward-table").tBodies[0]);
}

function moveCursor(step) {
  const rows = wardRows();
  if (!rows.length) return;
  const at = rows.findIndex((r) => r.patient_id === (state.cursor || state.selected));
  const next = at < 0 ? 0 : Math.max(0, Math.min(rows.length - 1, at + step));
  state.cursor = rows[next].patient_id;
  renderWard();
  const tr = document.querySelector(`#ward-table tr[data-patient="${CSS.escape(state.cursor)}"]`);
  if (tr) tr.scrollIntoView({ block: "nearest" });
}

function setupNavigation() {
  const table = $("ward-table");
  table.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown") { moveCursor(1); e.preventDefault(); }
    else if (e.key === "ArrowUp") { moveCursor(-1); e.preventDefault(); }
    else if (e.key === "Enter" && (state.cursor || state.selected)) { openPatient(state.cursor || state.selected); e.preventDefault(); }
  });
  const search = $("search");
  search.addEventListener("input", () => { state.filter = search.value.trim(); state.cursor = null; renderWard(); });
  search.addEventListener("keydown", (e) => {
    if (e.key === "Enter") { const first = wardRows()[0]; if (first) openPatient(first.patient_id); e.preventDefault(); }
    else if (e.key === "ArrowDown") { table.focus(); moveCursor(state.cursor ? 1 : 0); e.preventDefault(); }
    else if (e.key === "Escape") { search.value = ""; state.filter = ""; renderWard(); }
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "/" && document.activeElement.tagName !== "INPUT" && document.activeElement.tagName !== "TEXTAREA") {
      search.focus(); e.preventDefault();
    }
  });
  window.addEventListener("hashchange", () => {
    const id = patientInHash();
    if (id && id !== state.selected) select(id);
  });
  for (const button of document.querySelectorAll(".range-btn")) {
    button.addEventListener("click", () => {
      state.range = Number(button.dataset.range);
      for (const b of document.querySelectorAll(".range-btn")) b.setAttribute("aria-pressed", String(b === button));
      if (state.selected) loadTrend(state.selected);
    });
  }
}

// The selected patient lives in the URL (`#/patients/P00042`): a link, a
// bookmark or a reload opens the same view.
function patientInHash() {
  const m = /^#\/patients\/(.+)$/.exec(window.location.hash);
  return m ? decodeURIComponent(m[1]) : null;
}

function openPatient(patientId) {
  const hash = "#/patients/" + encodeURIComponent(patientId);
  if (window.location.hash !== hash) window.location.hash = hash; // hashchange selects
  else select(patientId);
}

// ---- patient panel -----------------------------------------------------------

const CARD_LIMITS = { heart_rate: [51, 90], spo2: [96, 100], systolic_bp: [111, 219], respiratory_rate: [12, 20] };

function renderPatient() {
  const latest = state.selected && state.patients.get(state.selected);
  $("patient-id").textContent = state.selected || "—";
  if (!latest) return;
  $("patient-ts").textContent = fmtTime(latest.ts);
  const level = $("patient-level");
  level.className = levelClass(latest.risk_level);
  level.textContent = levelText(latest.risk_level);
  for (const key of ["heart_rate", "spo2", "systolic_bp", "diastolic_bp", "respiratory_rate", "news2_score"]) {
    const card = $("card-" + key);
    const value = card.querySelector(".card-value");
    if (value.textContent !== String(latest[key])) {
      value.textContent = latest[key];
      card.classList.add("flash");
      setTimeout(() => card.classList.remove("flash"), 300);
    }
    const limits = CARD_LIMITS[key];
    const abnormal = !!limits && (latest[key] < limits[0] || latest[key] > limits[1]);
    card.classList.toggle("abnormal", abnormal);
    card.querySelector(".card-label").dataset.flag = abnormal ? "⚠" : "";
  }
  const body = document.createElement("tbody");
  for (const r of state.recent) {
    const tr = document.createElement("tr");
    for (const v of [fmtTime(r.ts).slice(11), r.heart_rate, r.spo2, r.systolic_bp, r.diastolic_bp,
      r.respiratory_rate, Number(r.temperature).toFixed(1), r.consciousness, r.on_oxygen ? "yes" : "", r.news2_score]) {
      tr.appendChild(cell(v));
    }
    body.appendChild(tr);
  }
  $("recent-table").replaceChild(body, $("recent-table").tBodies[0]);
}

async function select(patientId) {
  state.selected = patientId;
  state.cursor = patientId;
  state.recent = [];
  renderWard();
  $("patient-id").textContent = patientId;
  loadTrend(patientId);
  try {
    const data = await getJson(`/api/patients/${encodeURIComponent(patientId)}`);
    if (state.selected !== patientId) return;
    state.recent = data.recent;
    showBanner(null);
  } catch (e) {
    showBanner(`No live readings for patient ${patientId}: ${e.message}`);
  }
  renderPatient();
}

// ---- trends --------------------------------------------------------------------

// NEWS2 bands of each chart (RCP 2017, SpO2 scale 1), on the half-units
// between the printed edges: [from, to, score].
const BANDS = {
  heart_rate: [[-Infinity, 40.5, 3], [40.5, 50.5, 1], [90.5, 110.5, 1], [110.5, 130.5, 2], [130.5, Infinity, 3]],
  spo2: [[-Infinity, 91.5, 3], [91.5, 93.5, 2], [93.5, 95.5, 1]],
  blood_pressure: [[-Infinity, 90.5, 3], [90.5, 100.5, 2], [100.5, 110.5, 1], [219.5, Infinity, 3]],
  respiratory_rate: [[-Infinity, 8.5, 3], [8.5, 11.5, 1], [20.5, 24.5, 2], [24.5, Infinity, 3]],
  temperature: [[-Infinity, 35.05, 3], [35.05, 36.05, 1], [38.05, 39.05, 1], [39.05, Infinity, 2]],
  news2_score: [[4.5, 6.5, 2], [6.5, Infinity, 3]],
};
const BAND_FILL = { 1: "rgba(224,176,32,0.16)", 2: "rgba(240,140,60,0.24)", 3: "rgba(229,57,53,0.30)" };

// One chart per vital; blood pressure draws systolic and diastolic.
const CHARTS = [
  { id: "heart_rate", title: "Heart rate (bpm)", series: ["heart_rate"], range: [30, 160] },
  { id: "spo2", title: "SpO₂ (%)", series: ["spo2"], range: [85, 100] },
  { id: "blood_pressure", title: "Blood pressure (mmHg)", series: ["systolic_bp", "diastolic_bp"], range: [40, 200] },
  { id: "respiratory_rate", title: "Resp. rate (/min)", series: ["respiratory_rate"], range: [6, 30] },
  { id: "temperature", title: "Temperature (°C)", series: ["temperature"], range: [35, 39.5] },
  { id: "news2_score", title: "NEWS2", series: ["news2_score"], range: [0, 10] },
];
const COLORS = ["#6cb8ff", "#c9a0ff"];

function bandsPlugin(bands) {
  return {
    hooks: {
      drawClear: (u) => {
        const { ctx, bbox } = u;
        ctx.save();
        for (const [lo, hi, score] of bands) {
          const yTop = hi === Infinity ? bbox.top : Math.max(bbox.top, u.valToPos(hi, "y", true));
          const yBottom = lo === -Infinity ? bbox.top + bbox.height : Math.min(bbox.top + bbox.height, u.valToPos(lo, "y", true));
          if (yBottom <= yTop) continue;
          ctx.fillStyle = BAND_FILL[score];
          ctx.fillRect(bbox.left, yTop, bbox.width, yBottom - yTop);
        }
        ctx.restore();
      },
    },
  };
}

function chartWidth(figure) {
  return Math.max(200, figure.clientWidth - 10);
}

// The x axis spans the selected range up to now, whatever the data covers.
const xRange = () => { const now = Date.now() / 1e3; return [now - state.range / 1e3, now]; };
const hhmm = (_u, splits) => splits.map((v) => new Date(v * 1e3).toISOString().slice(11, 16));

// uPlot data of a chart: [t (s), then per series: mean, min, max].
function emptyData(chart) { return [[], ...chart.series.flatMap(() => [[], [], []])]; }

function buildCharts() {
  const box = $("trends");
  box.textContent = "";
  const charts = [];
  for (const chart of CHARTS) {
    const wrap = document.createElement("figure");
    wrap.className = "trend";
    wrap.id = "trend-" + chart.id;
    const caption = document.createElement("figcaption");
    caption.textContent = chart.title;
    wrap.appendChild(caption);
    box.appendChild(wrap);
    const series = [{}];
    chart.series.forEach((name, i) => {
      series.push({ label: name.replace(/_/g, " "), stroke: COLORS[i], width: 2, spanGaps: false, points: { show: false } });
      series.push({ label: `${name} min`, stroke: "transparent", points: { show: false } });
      series.push({ label: `${name} max`, stroke: "transparent", points: { show: false } });
    });
    const bands = chart.series.map((_, i) => ({ series: [3 * i + 3, 3 * i + 2], fill: COLORS[i] + "33" }));
    const [lo, hi] = chart.range;
    const axis = { stroke: "#b9c6d3", grid: { stroke: "#223244", width: 1 }, ticks: { stroke: "#223244" }, font: "12px DejaVu Sans, sans-serif" };
    const u = new uPlot({
      width: chartWidth(wrap), height: 150,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: xRange }, y: { range: (_u, min, max) => [Math.min(lo, min ?? lo), Math.max(hi, max ?? hi)] } },
      // Times in UTC, as everywhere on the page.
      axes: [{ ...axis, values: hhmm, space: 50 }, { ...axis, size: 44 }],
      series, bands,
      plugins: [bandsPlugin(BANDS[chart.id])],
    }, emptyData(chart), wrap);
    charts.push({ chart, u });
  }
  return charts;
}

async function loadTrend(patientId) {
  const to = Date.now(), from = to - state.range;
  const status = $("trend-status");
  status.textContent = "loading…";
  if (!state.trend || !state.trend.charts) state.trend = { charts: buildCharts() };
  const trend = state.trend;
  // Only the newest load may fill the charts (a click, then another).
  const load = (trend.loads = (trend.loads || 0) + 1);
  trend.patient = patientId; trend.from = from; trend.loading = true; trend.historyPoints = null;
  for (const c of trend.charts) c.data = emptyData(c.chart);
  let history;
  try {
    history = await getJson(`/api/patients/${encodeURIComponent(patientId)}/history?from=${from}&to=${to}`);
  } catch (e) {
    if (state.selected === patientId) status.textContent = `history unavailable: ${e.message}`;
    history = null;
  }
  if (state.selected !== patientId || load !== trend.loads) return;
  trend.loading = false;
  trend.step = history ? history.step_ms : null;
  for (const c of trend.charts) {
    if (!history) continue;
    const data = [history.t.map((t) => t / 1e3)];
    for (const name of c.chart.series) {
      const s = history.series[name];
      data.push(s.avg.slice(), s.min.slice(), s.max.slice());
    }
    c.data = data;
  }
  trend.historyPoints = history ? history.t.length : 0;
  // Readings that arrived while the history loaded.
  for (const r of [...state.recent].reverse()) trendPush(r);
  trendRedraw();
  if (history) {
    const step = history.step_ms >= 60e3 ? `${history.step_ms / 60e3} min` : `${history.step_ms / 1e3} s`;
    status.textContent = history.t.length
      ? `stored: ${history.t.length} intervals of ${step}; live after`
      : "nothing stored in this range yet; live readings only";
  }
}

function trendPush(r) {
  const trend = state.trend;
  if (!trend || trend.patient !== r.patient_id || trend.loading || !trend.charts) return;
  const t = r.ts / 1e3;
  trend.pushedTs = r.ts;
  for (const c of trend.charts) {
    const xs = c.data[0];
    if (xs.length && t <= xs[xs.length - 1]) continue;
    c.data[0].push(t);
    c.chart.series.forEach((name, i) => {
      const v = r[name] === undefined ? null : r[name];
      c.data[1 + 3 * i].push(v); c.data[2 + 3 * i].push(v); c.data[3 + 3 * i].push(v);
    });
    // The window slides: points older than the range leave the chart.
    const cut = t - state.range / 1e3;
    let drop = 0;
    while (drop < xs.length && xs[drop] < cut) drop++;
    if (drop) for (const column of c.data) column.splice(0, drop);
  }
}

function trendRedraw() {
  const trend = state.trend;
  if (!trend || !trend.charts) return;
  for (const c of trend.charts) c.u.setData(c.data);
  trend.points = trend.charts[0].data[0].length;
  // Event time -> drawn, for the newest live reading (read by the browser test).
  if (trend.pushedTs) { trend.appendLatencyMs = Date.now() - trend.pushedTs; trend.pushedTs = null; }
}

window.addEventListener("resize", () => {
  if (!state.trend || !state.trend.charts) return;
  for (const c of state.trend.charts) c.u.setSize({ width: chartWidth(c.u.root.parentElement), height: 150 });
});

// ---- alerts ----------------------------------------------------------------------

function addAlerts(alerts) {
  const known = new Set(state.alerts.map((a) => a.id));
  for (const a of alerts) {
    if (known.has(a.id)) continue;
    if (a.ack) state.acks.set(a.id, a.ack);
    state.alerts.push(a);
  }
  state.alerts.sort((a, b) => b.ts - a.ts);
  // A bounded list: the oldest acknowledged go first, unacknowledged high
  // alerts last.
  while (state.alerts.length > ALERTS_KEPT) {
    const drop = state.alerts.map((a, i) => [a, i]).reverse()
      .find(([a]) => !(a.level === "high" && !state.acks.has(a.id)));
    state.alerts.splice(drop ? drop[1] : state.alerts.length - 1, 1);
  }
  renderAlerts();
}

const pinned = (a) => a.level === "high" && !state.acks.has(a.id);

function renderAlerts() {
  const list = $("alerts");
  list.textContent = "";
  const unacked = state.alerts.filter(pinned).length;
  document.title = (unacked ? `(${unacked}) ` : "") + "vitalflow — ward monitor";
  $("alerts-open").textContent = unacked ? `(${unacked} high unacknowledged)` : "";
  if (!state.alerts.length) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "No alerts.";
    list.appendChild(li);
    return;
  }
  // Unacknowledged high alerts stay on top until someone takes them.
  const ordered = [...state.alerts.filter(pinned), ...state.alerts.filter((a) => !pinned(a))];
  for (const a of ordered.slice(0, 100)) list.appendChild(alertItem(a));
}

function alertItem(a) {
  const li = document.createElement("li");
  li.dataset.alert = a.id;
  const ack = state.acks.get(a.id);
  if (pinned(a)) li.classList.add("pinned");
  if (ack) li.classList.add("acked");
  const time = document.createElement("time");
  time.textContent = fmtTime(a.ts).slice(11);
  const level = document.createElement("span");
  level.className = levelClass(a.level);
  level.textContent = levelText(a.level);
  const text = document.createElement("button");
  text.type = "button";
  text.className = "link";
  text.textContent = `${a.patient_id} · NEWS2 ${a.news2_score} · ${a.reason}`;
  text.addEventListener("click", () => openPatient(a.patient_id));
  const main = document.createElement("div");
  main.className = "alert-main";
  main.append(time, level, text);
  li.appendChild(main);
  const status = document.createElement("div");
  status.className = "ack";
  if (ack) {
    status.textContent = `✓ acknowledged by ${ack.acked_by} at ${fmtTime(ack.acked_at).slice(11)}` + (ack.note ? ` — “${ack.note}”` : "");
  } else if (state.canAck) {
    const note = document.createElement("input");
    note.type = "text";
    note.maxLength = 500;
    note.placeholder = "note (optional)";
    note.setAttribute("aria-label", `Note for the alert of ${a.patient_id}`);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "ack-btn";
    button.textContent = "Acknowledge";
    const submit = () => acknowledge(a, note.value, button);
    button.addEventListener("click", submit);
    note.addEventListener("keydown", (e) => { if (e.key === "Enter") submit(); });
    status.append(note, button);
  } else {
    status.textContent = "not acknowledged";
  }
  li.appendChild(status);
  return li;
}

async function acknowledge(alert, note, button) {
  button.disabled = true;
  button.textContent = "Saving…";
  try {
    const response = await fetch(`/api/alerts/${encodeURIComponent(alert.id)}/ack`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ note: note || null }),
    });
    if (response.status === 401) return toLogin();
    const data = await response.json();
    if (!response.ok) throw new Error(data.detail.map((d) => d.msg).join("; "));
    state.acks.set(alert.id, data.ack);
    showBanner(null);
  } catch (e) {
    showBanner(`The alert could not be acknowledged: ${e.message}`);
    button.disabled = false;
    button.textContent = "Acknowledge";
  }
  renderAlerts();
}

// ---- prediction form ---------------------------------------------------

const DEFAULT_FIELDS = [
  ["pregnancies", "Pregnancies", 0, 20, 6], ["glucose", "Glucose (mg/dL)", 0, 300, 148],
  ["blood_pressure", "Blood pressure (mmHg)", 0, 200, 72], ["skin_thickness", "Skin thickness (mm)", 0, 100, 35],
  ["insulin", "Insulin (µU/mL)", 0, 1000, 0], ["bmi", "BMI", 0, 80, 33.6],
  ["diabetes_pedigree_function", "Pedigree function", 0, 3, 0.627], ["age", "Age", 1, 120, 50],
];

function buildForm() {
  const fields = document.querySelector("#predict-form .fields");
  for (const [name, label, min, max, example] of DEFAULT_FIELDS) {
    const wrap = document.createElement("label");
    wrap.textContent = label;
    const input = document.createElement("input");
    input.name = name;
    input.id = "input-" + name;
    input.type = "text";
    input.inputMode = "decimal";
    input.value = example;
    input.title = `${min} – ${max}`;
    const error = document.createElement("span");
    error.className = "field-error";
    error.id = "error-" + name;
    wrap.append(input, error);
    fields.appendChild(wrap);
  }
  $("predict-form").addEventListener("submit", (e) => { e.preventDefault(); predict(); });
}

function formBody() {
  const body = {};
  for (const [name] of DEFAULT_FIELDS) {
    const raw = $("input-" + name).value.trim();
    // Send what was typed: the server validates and explains every problem.
    body[name] = raw === "" ? null : (Number.isNaN(Number(raw)) ? raw : Number(raw));
  }
  return body;
}

function clearErrors() {
  for (const [name] of DEFAULT_FIELDS) {
    $("error-" + name).textContent = "";
    $("input-" + name).classList.remove("invalid");
  }
  $("predict-error").hidden = true;
}

async function post(path, body) {
  const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (response.status === 401) toLogin();
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON */ }
  return { status: response.status, data };
}

async function predict() {
  clearErrors();
  const body = formBody();
  let predicted, explained;
  try {
    [predicted, explained] = await Promise.all([post("/predict", body), post("/explain", body)]);
  } catch (e) {
    return formError(`The prediction service cannot be reached (${e.message}).`);
  }
  if (predicted.status === 422) {
    const messages = [];
    for (const d of predicted.data.detail) {
      const field = d.loc[1];
      if (field && $("error-" + field)) {
        $("error-" + field).textContent = d.msg;
        $("input-" + field).classList.add("invalid");
      }
      messages.push(`${field || "request"}: ${d.msg}`);
    }
    $("predict-result").hidden = true;
    return formError("Please correct: " + messages.join("; "));
  }
  if (predicted.status !== 200) {
    const why = predicted.data && predicted.data.detail ? predicted.data.detail.map((d) => d.msg).join("; ") : `HTTP ${predicted.status}`;
    return formError(`Prediction failed: ${why}`);
  }
  const p = predicted.data;
  $("result-level").className = levelClass(p.risk_level);
  $("result-level").textContent = p.risk_level;
  $("result-probability").textContent = (p.probability * 100).toFixed(1) + " %";
  $("result-confidence").textContent = (p.confidence * 100).toFixed(1) + " %";
  $("predict-result").hidden = false;
  if (explained.status === 200) drawShap(explained.data);
  else formError("The explanation is unavailable right now.");
}

function formError(message) {
  $("predict-error").textContent = message;
  $("predict-error").hidden = false;
}

function drawShap(explanation) {
  $("shap-base").textContent = (explanation.base_value * 100).toFixed(1) + " %";
  const svg = $("shap-chart");
  const ns = "http://www.w3.org/2000/svg";
  svg.textContent = "";
  const items = [...explanation.contributions].sort((a, b) => Math.abs(b.shap_value) - Math.abs(a.shap_value));
  const width = svg.clientWidth || 520, rowH = 28, labelW = 190, mid = labelW + (width - labelW) / 2;
  svg.setAttribute("height", items.length * rowH + 20);
  const max = Math.max(1e-9, ...items.map((c) => Math.abs(c.shap_value)));
  const scale = (width - labelW) / 2 - 50;
  const axis = document.createElementNS(ns, "line");
  Object.entries({ x1: mid, x2: mid, y1: 0, y2: items.length * rowH, stroke: "#7f93a8" }).forEach(([k, v]) => axis.setAttribute(k, v));
  svg.appendChild(axis);
  items.forEach((c, i) => {
    const y = i * rowH + 4, w = Math.abs(c.shap_value) / max * scale;
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("x", c.shap_value >= 0 ? mid : mid - w);
    bar.setAttribute("y", y);
    bar.setAttribute("width", Math.max(w, 1));
    bar.setAttribute("height", rowH - 8);
    bar.setAttribute("fill", c.shap_value >= 0 ? "#c62828" : "#1e88e5");
    bar.setAttribute("class", "shap-bar");
    bar.dataset.feature = c.feature;
    svg.appendChild(bar);
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", 4);
    label.setAttribute("y", y + 14);
    label.textContent = `${c.feature} = ${c.value}`;
    svg.appendChild(label);
    const value = document.createElementNS(ns, "text");
    value.setAttribute("x", c.shap_value >= 0 ? mid + w + 4 : mid - w - 4);
    value.setAttribute("text-anchor", c.shap_value >= 0 ? "start" : "end");
    value.setAttribute("y", y + 14);
    value.textContent = (c.shap_value >= 0 ? "+" : "") + (c.shap_value * 100).toFixed(1) + " pp";
    svg.appendChild(value);
  });
}

// ---- start -------------------------------------------------------------

async function whoAmI() {
  try {
    const me = await getJson("/api/me");
    $("user").textContent = me.name;
    // The model and acknowledging alerts are for clinicians: a viewer's
    // dashboard offers neither.
    const clinician = me.roles.some((r) => r === "clinician" || r === "admin");
    document.querySelector(".panel.predict").hidden = !clinician;
    state.canAck = clinician;
  } catch (_) { /* getJson already went to the login page on 401 */ }
}

async function loadSparks() {
  try {
    const trend = await getJson("/api/ward/trend?minutes=60");
    for (const [id, s] of Object.entries(trend.patients)) {
      const live = state.sparks.get(id) || { t: [], v: [] };
      // Stored buckets first, then the live readings newer than them.
      const last = s.t.length ? s.t[s.t.length - 1] + trend.step_ms : 0;
      const t = s.t.slice(), v = s.news2.slice();
      live.t.forEach((x, i) => { if (x >= last) { t.push(x); v.push(live.v[i]); } });
      state.sparks.set(id, { t, v });
    }
    renderWard();
  } catch (_) { /* sparklines fill from live readings alone */ }
}

async function start() {
  buildForm();
  setupNavigation();
  await whoAmI();
  try {
    const ward = await getJson("/api/ward");
    ingest(ward.patients);
    const wanted = patientInHash();
    if (wanted) select(wanted);
    else if (ward.patients.length) openPatient(wardRows()[0].patient_id);
    const alerts = await getJson("/api/alerts");
    addAlerts(alerts.alerts);
    if (!ward.live) showBanner("The pipeline is not running in this process: no live data. Start it with `vitalflow up`.");
  } catch (e) {
    showBanner(`Cannot load the ward: ${e.message}. Retrying through the live connection…`);
    const wanted = patientInHash();
    if (wanted) select(wanted);
  }
  connect();
  loadSparks();
  setInterval(loadSparks, 60e3);
  tickFreshness();
  // Ages the pill while no reading arrives; arrivals update it at once.
  state.freshnessTimer = setInterval(tickFreshness, 500);
}

start();
