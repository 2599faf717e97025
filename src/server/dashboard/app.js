// vitalflow dashboard: live ward overview over Server-Sent Events, a patient
// panel, an alerts feed, and the diabetes-risk form with its SHAP chart.
// No build step and no network beyond this server.
"use strict";

const state = {
  patients: new Map(),   // patient_id -> latest reading
  recent: [],            // selected patient's readings, newest first
  selected: null,
  newestTs: null,
  alerts: [],
  latencies: [],         // event time -> on screen, ms (read by the browser test)
  renderQueued: false,
  freshnessTimer: null,  // the 500 ms ageing timer (the browser test stops it)
};
window.__vitalflow = state;

const $ = (id) => document.getElementById(id);
const fmtTime = (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 19) + "Z";
const levelClass = (level) => "level level-" + (level || "none");

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
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

// ---- live data ---------------------------------------------------------

function ingest(readings) {
  const arrived = Date.now();
  for (const r of readings) {
    state.patients.set(r.patient_id, r);
    if (state.newestTs === null || r.ts > state.newestTs) state.newestTs = r.ts;
    if (r.patient_id === state.selected) {
      state.recent.unshift(r);
      state.recent.length = Math.min(state.recent.length, 20);
    }
  }
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
  source.addEventListener("alert", (e) => { state.alerts.unshift(JSON.parse(e.data)); renderAlerts(); });
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

// ---- rendering ---------------------------------------------------------

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function renderWard() {
  const rows = [...state.patients.values()].sort((a, b) =>
    b.news2_score - a.news2_score || a.patient_id.localeCompare(b.patient_id));
  $("ward-count").textContent = rows.length ? `(${rows.length} patients)` : "";
  const body = document.createElement("tbody");
  if (!rows.length) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    tr.appendChild(cell("Waiting for the first readings…")).colSpan = 8;
    body.appendChild(tr);
  }
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.dataset.patient = r.patient_id;
    if (r.patient_id === state.selected) tr.classList.add("selected");
    tr.appendChild(cell(r.patient_id));
    const score = cell("");
    const chip = document.createElement("span");
    chip.className = "score " + levelClass(r.risk_level);
    chip.textContent = r.news2_score;
    score.appendChild(chip);
    tr.appendChild(score);
    tr.appendChild(cell(r.heart_rate));
    tr.appendChild(cell(r.spo2));
    tr.appendChild(cell(`${r.systolic_bp}/${r.diastolic_bp}`));
    tr.appendChild(cell(r.respiratory_rate));
    tr.appendChild(cell(Number(r.temperature).toFixed(1)));
    tr.appendChild(cell(r.consciousness));
    tr.addEventListener("click", () => select(r.patient_id));
    body.appendChild(tr);
  }
  $("ward-table").replaceChild(body, $("ward-table").tBodies[0]);
}

const CARD_LIMITS = { heart_rate: [51, 90], spo2: [96, 100], systolic_bp: [111, 219], respiratory_rate: [12, 20] };

function renderPatient() {
  const latest = state.selected && state.patients.get(state.selected);
  if (!latest) return;
  $("patient-id").textContent = latest.patient_id;
  $("patient-ts").textContent = fmtTime(latest.ts);
  const level = $("patient-level");
  level.className = levelClass(latest.risk_level);
  level.textContent = latest.risk_level;
  for (const key of ["heart_rate", "spo2", "systolic_bp", "diastolic_bp", "respiratory_rate", "news2_score"]) {
    const card = $("card-" + key);
    const value = card.querySelector(".card-value");
    if (value.textContent !== String(latest[key])) {
      value.textContent = latest[key];
      card.classList.add("flash");
      setTimeout(() => card.classList.remove("flash"), 300);
    }
    const limits = CARD_LIMITS[key];
    card.classList.toggle("abnormal", !!limits && (latest[key] < limits[0] || latest[key] > limits[1]));
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

function renderAlerts() {
  const list = $("alerts");
  list.textContent = "";
  if (!state.alerts.length) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "No alerts.";
    list.appendChild(li);
    return;
  }
  for (const a of state.alerts.slice(0, 50)) {
    const li = document.createElement("li");
    const level = document.createElement("span");
    level.className = levelClass(a.level);
    level.textContent = a.level;
    const time = document.createElement("time");
    time.textContent = fmtTime(a.ts).slice(11);
    const text = document.createElement("span");
    text.textContent = `${a.patient_id} · NEWS2 ${a.news2_score} · ${a.reason}`;
    li.append(time, level, text);
    li.addEventListener("click", () => select(a.patient_id));
    list.appendChild(li);
  }
}

async function select(patientId) {
  state.selected = patientId;
  state.recent = [];
  renderWard();
  try {
    const data = await getJson(`/api/patients/${encodeURIComponent(patientId)}`);
    state.recent = data.recent;
    showBanner(null);
  } catch (e) {
    showBanner(`Cannot load patient ${patientId}: ${e.message}`);
  }
  renderPatient();
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
    // The model is for clinicians: a viewer's dashboard does not offer it.
    const clinician = me.roles.some((r) => r === "clinician" || r === "admin");
    document.querySelector(".panel.predict").hidden = !clinician;
  } catch (_) { /* getJson already went to the login page on 401 */ }
}

async function start() {
  buildForm();
  await whoAmI();
  try {
    const ward = await getJson("/api/ward");
    ingest(ward.patients);
    if (ward.patients.length) select([...state.patients.values()].sort((a, b) => b.news2_score - a.news2_score)[0].patient_id);
    const alerts = await getJson("/api/alerts");
    state.alerts = alerts.alerts;
    renderAlerts();
    if (!ward.live) showBanner("The pipeline is not running in this process: no live data. Start it with `vitalflow up`.");
  } catch (e) {
    showBanner(`Cannot load the ward: ${e.message}. Retrying through the live connection…`);
  }
  connect();
  tickFreshness();
  // Ages the pill while no reading arrives; arrivals update it at once.
  state.freshnessTimer = setInterval(tickFreshness, 500);
}

start();
