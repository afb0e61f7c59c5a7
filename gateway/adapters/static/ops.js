"use strict";
// The ops console. Data from the API is only ever placed with textContent, never as HTML.

const TEXT = {
  id: {
    title: "Konsol Operasi", logout: "Keluar", token: "Token operasi", login: "Masuk",
    deliveries: "Log pengiriman (langsung)", search: "Cari distribution id atau case id",
    recipient: "Penerima", all_outcomes: "Semua hasil", since: "Sejak", until: "Sampai",
    apply: "Terapkan", time: "Waktu", case: "Kasus", attempt: "Percobaan", outcome: "Hasil",
    code: "Kode / galat", latency: "Latensi", next_try: "Coba lagi",
    live: "● langsung", reconnecting: "menyambung ulang…", bad_token: "Token tidak dikenal.",
    recipients: "Penerima", circuit: "Sirkuit", queued: "Antrean", waiting: "Belum selesai",
    oldest: "Tertua menunggu", delivered_hour: "Terkirim (1 jam)", failed_hour: "Gagal (1 jam)",
    closed: "tertutup", open: "terbuka", half_open: "setengah terbuka", not_here: "tidak dikirim di sini",
    sub_paused: "dijeda", sub_gone: "berhenti: mitra menjawab 410",
    shared: "Antrean bersama", at_risk: "Berisiko (lewat 80 % tenggat)", left: "Sisa waktu",
    kecamatan: "Kecamatan", what: "Langkah / penerima", deadline: "Tenggat",
    nothing_at_risk: "Tidak ada yang berisiko.", missed: "terlewat", step: "Langkah",
    parking: "Tempat parkir", parked_at: "Diparkir", reason: "Alasan", replay: "Kirim ulang",
    replay_filtered: "Kirim ulang semua yang tersaring", replayed: "Dikirim ulang: ",
    confirm_all: "Kirim ulang SEMUA pesan yang diparkir?", replay_failed: "Gagal mengirim ulang",
    case_timeline: "Linimasa SOP kasus", close: "Tutup", state: "Status",
    status_met: "selesai tepat waktu", status_pending: "berjalan", status_warning: "peringatan",
    status_breached: "terlambat", status_skipped: "dilewati", due: "tenggat",
    step_1: "menerima pengaduan", step_2: "melapor ke kepala", step_3: "menugaskan Satgas PPA",
    step_4: "menyiapkan dan memberangkatkan tim", step_5: "tindak lanjut (tanpa instansi lain)",
    step_6: "koordinasi dengan 112 dan instansi lain", step_7: "melapor ke kepala",
    step_8: "laporan penanganan ke 112",
  },
  en: {
    title: "Operations console", logout: "Log out", token: "Ops token", login: "Log in",
    deliveries: "Delivery log (live)", search: "Search a distribution id or case id",
    recipient: "Recipient", all_outcomes: "All outcomes", since: "Since", until: "Until",
    apply: "Apply", time: "Time", case: "Case", attempt: "Attempt", outcome: "Outcome",
    code: "Code / error", latency: "Latency", next_try: "Next try",
    live: "● live", reconnecting: "reconnecting…", bad_token: "Unknown token.",
    recipients: "Recipients", circuit: "Circuit", queued: "Queued", waiting: "Not settled",
    oldest: "Oldest waiting", delivered_hour: "Delivered (1 h)", failed_hour: "Failed (1 h)",
    closed: "closed", open: "open", half_open: "half-open", not_here: "not delivered here",
    sub_paused: "paused", sub_gone: "stopped: the partner answered 410",
    shared: "Shared queues", at_risk: "At risk (past 80 % of the deadline)", left: "Time left",
    kecamatan: "Kecamatan", what: "Step / recipient", deadline: "Deadline",
    nothing_at_risk: "Nothing at risk.", missed: "missed", step: "Step",
    parking: "Parking lot", parked_at: "Parked", reason: "Reason", replay: "Replay",
    replay_filtered: "Replay everything filtered", replayed: "Replayed: ",
    confirm_all: "Replay EVERY parked message?", replay_failed: "Replay failed",
    case_timeline: "SOP timeline of case", close: "Close", state: "State",
    status_met: "done in time", status_pending: "pending", status_warning: "warning",
    status_breached: "breached", status_skipped: "skipped", due: "deadline",
  },
};
const MAX_ROWS = 500;
const REFRESH_MS = 5000;
const MIN_REFRESH_GAP_MS = 1000;
let lang = localStorage.getItem("ops-lang") || "id";
let stream = null;
let refresher = null;
const panels = { running: false, wanted: false, lastAt: 0, timer: null };
let clockOffsetMs = 0; // the gateway's clock minus this browser's
const shown = { recipients: null, atRisk: null, parked: null, caseView: null };

const $ = (id) => document.getElementById(id);
const t = (key) => TEXT[lang][key] || key;
const activity = (step, fallback) => TEXT[lang]["step_" + step] || fallback;

function applyLanguage() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  });
  $("lang-id").setAttribute("aria-pressed", String(lang === "id"));
  $("lang-en").setAttribute("aria-pressed", String(lang === "en"));
  renderRecipients(); renderAtRisk(); renderParked(); renderCase();
}

// kept as a data-i18n key, so that a change of language translates it too
function showLiveState(key) {
  $("live-state").dataset.i18n = key;
  $("live-state").textContent = t(key);
}

function token() { return sessionStorage.getItem("ops-token"); }

async function api(path, options = {}) {
  const headers = { Authorization: "Bearer " + token() };
  if (options.body !== undefined) { headers["Content-Type"] = "application/json"; }
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  if (response.status === 401) { logout(); throw new Error("unauthenticated"); }
  if (!response.ok) { throw new Error("HTTP " + response.status); }
  return response.json();
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== null && text !== undefined) { node.textContent = String(text); }
  if (className) { node.className = className; }
  return node;
}

function cell(row, text, className) { row.appendChild(el("td", text, className)); }

function timeText(iso) { return iso ? new Date(iso).toLocaleString(lang === "id" ? "id-ID" : "en-GB") : ""; }

function duration(seconds) {
  const whole = Math.round(Math.abs(seconds));
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  const text = (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(s).padStart(2, "0");
  return seconds < 0 ? "−" + text : text;
}

function caseButton(caseId) {
  const button = el("button", caseId, "id open-case");
  button.type = "button";
  button.dataset.caseId = caseId;
  return button;
}

// ---- the live delivery log ----

function filters() {
  const params = new URLSearchParams();
  for (const [name, id] of [["q", "f-q"], ["recipient", "f-recipient"], ["outcome", "f-outcome"]]) {
    const value = $(id).value.trim();
    if (value) { params.set(name, value); }
  }
  for (const name of ["since", "until"]) {
    const value = $("f-" + name).value;
    if (value) { params.set(name, new Date(value).toISOString()); }
  }
  return params;
}

function addEntry(entry, fresh) {
  const row = document.createElement("tr");
  row.className = "outcome-" + entry.outcome + (fresh ? " fresh" : "");
  row.dataset.distributionId = entry.distribution_id;
  row.dataset.caseId = entry.case_id;
  cell(row, timeText(entry.at));
  const caseCell = document.createElement("td");
  caseCell.appendChild(caseButton(entry.case_id));
  row.appendChild(caseCell);
  cell(row, entry.recipient);
  cell(row, entry.attempt);
  cell(row, entry.outcome, "outcome");
  cell(row, entry.status_code !== null ? entry.status_code : entry.error_class);
  cell(row, entry.latency_ms !== null ? Math.round(entry.latency_ms) + " ms" : "");
  cell(row, timeText(entry.next_try_at));
  const body = $("log-rows");
  body.insertBefore(row, body.firstChild);
  while (body.rows.length > MAX_ROWS) { body.deleteRow(body.rows.length - 1); }
}

async function follow(params, afterId) {
  const controller = new AbortController();
  stream = controller;
  let cursor = afterId;
  while (stream === controller) {
    try {
      const query = new URLSearchParams(params);
      const response = await fetch("/v1/ops/deliveries/stream?" + query.toString(), {
        headers: { Authorization: "Bearer " + token(), "Last-Event-ID": String(cursor) },
        signal: controller.signal,
      });
      if (response.status === 401) { logout(); return; }
      if (!response.ok || !response.body) { throw new Error("HTTP " + response.status); }
      showLiveState("live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) { break; }
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = frame.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (data) {
            const entry = JSON.parse(data);
            cursor = entry.log_id;
            addEntry(entry, true);
            if (entry.outcome !== "retry") { requestRefresh(); }
          }
        }
      }
    } catch (error) {
      if (controller.signal.aborted) { return; }
    }
    showLiveState("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

async function loadLog() {
  if (stream) { stream.abort(); stream = null; }
  $("log-rows").replaceChildren();
  const params = filters();
  const page = await api("/v1/ops/deliveries?" + params.toString() + "&limit=200");
  page.entries.slice().reverse().forEach((entry) => addEntry(entry, false));
  follow(params, page.last_id);
}

// ---- recipients, at risk, parking lot ----

function renderRecipients() {
  const page = shown.recipients;
  if (!page) { return; }
  const rows = page.recipients.map((r) => {
    const stopped = r.subscription_status && r.subscription_status !== "active" ? r.subscription_status : null;
    const row = el("tr", null, "circuit-" + (r.circuit || stopped || "none"));
    row.dataset.recipient = r.recipient;
    cell(row, r.recipient + (r.agency_id ? " (" + r.agency_id + ")" : ""));
    cell(row, r.circuit ? t(r.circuit) : stopped ? t("sub_" + stopped) : t("not_here"), "circuit");
    cell(row, r.queued === null ? "?" : r.queued);
    cell(row, r.waiting);
    cell(row, r.oldest_waiting_age_s === null ? "" : duration(r.oldest_waiting_age_s));
    cell(row, r.delivered_last_hour);
    cell(row, r.failed_last_hour, r.failed_last_hour ? "bad" : "");
    return row;
  });
  $("recipient-rows").replaceChildren(...rows);
  const shared = page.shared_queues.map((q) => q.queue + ": " + (q.messages === null ? "?" : q.messages));
  $("shared-queues").textContent = t("shared") + " — " + shared.join(", ");
}

function secondsLeft(entry) { return (Date.parse(entry.deadline_at) - (Date.now() + clockOffsetMs)) / 1000; }

function renderAtRisk() {
  const page = shown.atRisk;
  if (!page) { return; }
  const rows = page.entries.map((entry) => {
    const row = el("tr", null, "risk-" + entry.kind);
    const left = el("td", "", "countdown");
    left.dataset.deadline = entry.deadline_at;
    row.appendChild(left);
    const caseCell = document.createElement("td");
    caseCell.appendChild(caseButton(entry.case_id));
    row.appendChild(caseCell);
    cell(row, entry.kecamatan);
    cell(row, entry.kind === "sla_step"
      ? t("step") + " " + entry.step + " — " + activity(entry.step, entry.activity)
      : entry.recipient + " · " + entry.distribution_id);
    cell(row, timeText(entry.deadline_at));
    return row;
  });
  $("at-risk-rows").replaceChildren(...rows);
  $("at-risk-empty").hidden = rows.length > 0;
  tick();
}

function tick() {
  for (const node of document.querySelectorAll("#at-risk-rows td.countdown")) {
    const left = secondsLeft({ deadline_at: node.dataset.deadline });
    node.textContent = left < 0 ? duration(left) + " (" + t("missed") + ")" : duration(left);
    node.classList.toggle("missed", left < 0);
  }
}

function parkingSelector() {
  const selector = {};
  const caseId = $("p-case").value.trim();
  const recipient = $("p-recipient").value.trim();
  if (caseId) { selector.case_id = caseId; }
  if (recipient) { selector.recipient = recipient; }
  return selector;
}

function renderParked() {
  const page = shown.parked;
  if (!page) { return; }
  const rows = page.parked.map((p) => {
    const row = el("tr");
    row.dataset.distributionId = p.distribution_id;
    row.dataset.caseId = p.case_id;
    cell(row, timeText(p.parked_at));
    const caseCell = document.createElement("td");
    caseCell.appendChild(caseButton(p.case_id));
    row.appendChild(caseCell);
    cell(row, p.recipient);
    cell(row, p.attempt + " / " + p.tries);
    cell(row, p.reason, "reason");
    const action = document.createElement("td");
    const button = el("button", t("replay"), "replay");
    button.type = "button";
    button.dataset.distributionId = p.distribution_id;
    button.dataset.recipient = p.recipient;
    action.appendChild(button);
    row.appendChild(action);
    return row;
  });
  $("parked-rows").replaceChildren(...rows);
}

// Every settled delivery asks for the panels again; while a backlog drains that is
// hundreds a second. Asks are merged: one refresh at a time, at most one a second.
function requestRefresh() {
  panels.wanted = true;
  if (panels.running || panels.timer !== null) { return; }
  const wait = panels.lastAt + MIN_REFRESH_GAP_MS - Date.now();
  if (wait > 0) {
    panels.timer = setTimeout(() => { panels.timer = null; requestRefresh(); }, wait);
    return;
  }
  panels.wanted = false;
  panels.running = true;
  panels.lastAt = Date.now();
  refreshPanels().finally(() => {
    panels.running = false;
    if (panels.wanted) { requestRefresh(); }
  });
}

async function refreshPanels() {
  try {
    const query = new URLSearchParams(parkingSelector()).toString();
    const [recipients, atRisk, parked] = await Promise.all([
      api("/v1/ops/recipients"), api("/v1/ops/at-risk"), api("/v1/ops/parked?" + query),
    ]);
    clockOffsetMs = Date.parse(atRisk.at) - Date.now();
    shown.recipients = recipients;
    shown.atRisk = atRisk;
    shown.parked = parked;
    renderRecipients(); renderAtRisk(); renderParked();
  } catch (error) { /* shown again at the next refresh */ }
}

async function replay(selector) {
  try {
    const answer = await api("/v1/ops/replay", { method: "POST", body: selector });
    $("replay-state").textContent = t("replayed") + answer.replayed.length;
  } catch (error) {
    $("replay-state").textContent = t("replay_failed");
  }
  requestRefresh();
}

// ---- one case's SOP timeline ----

async function openCase(caseId) {
  shown.caseView = await api("/v1/cases/" + encodeURIComponent(caseId));
  $("case-panel").hidden = false;
  renderCase();
  $("case-panel").scrollIntoView({ block: "nearest" });
}

function renderCase() {
  const view = shown.caseView;
  if (!view) { return; }
  $("case-id").textContent = view.case_id;
  $("case-state").textContent = t("state") + ": " + view.state;
  const now = Date.now() + clockOffsetMs;
  const start = Date.parse(view.received_at);
  const ends = view.steps.flatMap((s) => [Date.parse(s.due_at), Date.parse(s.done_at || s.skipped_at || s.entered_at)]);
  const end = Math.max(now, ...ends);
  const span = Math.max(end - start, 1);
  const at = (ms) => ((ms - start) / span * 100).toFixed(2) + "%";
  const rows = view.steps.map((s) => {
    const row = el("div", null, "step status-" + s.status);
    row.dataset.step = s.step;
    row.dataset.status = s.status;
    row.appendChild(el("span", s.step + ". " + activity(s.step, s.activity), "label"));
    const track = el("div", null, "track");
    const entered = Date.parse(s.entered_at);
    const finished = Date.parse(s.done_at || s.skipped_at || "") || now;
    const bar = el("span", null, "bar status-" + s.status);
    bar.style.left = at(entered);
    bar.style.width = ((Math.max(finished - entered, 0) / span) * 100).toFixed(2) + "%";
    const due = el("span", null, "due");
    due.style.left = at(Date.parse(s.due_at));
    due.title = t("due") + " " + timeText(s.due_at);
    track.append(bar, due);
    row.appendChild(track);
    row.appendChild(el("span", t("status_" + s.status), "status"));
    return row;
  });
  $("timeline").replaceChildren(...rows);
}

// ---- session ----

function showConsole() {
  $("login").hidden = true;
  $("console").hidden = false;
  $("logout").hidden = false;
  loadLog().catch(() => {});
  requestRefresh();
  if (!refresher) { refresher = setInterval(requestRefresh, REFRESH_MS); }
}

function logout() {
  if (stream) { stream.abort(); stream = null; }
  if (refresher) { clearInterval(refresher); refresher = null; }
  if (panels.timer !== null) { clearTimeout(panels.timer); panels.timer = null; }
  panels.wanted = false;
  sessionStorage.removeItem("ops-token");
  $("console").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
}

document.addEventListener("DOMContentLoaded", () => {
  applyLanguage();
  $("lang-id").addEventListener("click", () => { lang = "id"; localStorage.setItem("ops-lang", lang); applyLanguage(); });
  $("lang-en").addEventListener("click", () => { lang = "en"; localStorage.setItem("ops-lang", lang); applyLanguage(); });
  $("logout").addEventListener("click", logout);
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem("ops-token", $("token").value);
    $("token").value = "";
    const check = await fetch("/v1/ops/deliveries?limit=1", { headers: { Authorization: "Bearer " + token() } });
    if (check.ok) {
      $("login-error").hidden = true;
      showConsole();
    } else {
      sessionStorage.removeItem("ops-token");
      $("login-error").textContent = t("bad_token");
      $("login-error").hidden = false;
    }
  });
  $("filter-form").addEventListener("submit", (event) => { event.preventDefault(); loadLog().catch(() => {}); });
  $("parking-form").addEventListener("submit", (event) => { event.preventDefault(); requestRefresh(); });
  $("replay-filtered").addEventListener("click", () => {
    const selector = parkingSelector();
    if (Object.keys(selector).length === 0) {
      if (!window.confirm(t("confirm_all"))) { return; }
      selector.all = true;
    }
    replay(selector);
  });
  $("case-close").addEventListener("click", () => { shown.caseView = null; $("case-panel").hidden = true; });
  $("console").addEventListener("click", (event) => {
    const target = event.target;
    if (!(target instanceof HTMLButtonElement)) { return; }
    if (target.classList.contains("open-case")) { openCase(target.dataset.caseId).catch(() => {}); }
    if (target.classList.contains("replay")) {
      target.disabled = true;
      replay({ distribution_id: target.dataset.distributionId, recipient: target.dataset.recipient });
    }
  });
  setInterval(tick, 1000);
  if (token()) { showConsole(); }
});
