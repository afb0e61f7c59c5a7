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
  },
  en: {
    title: "Operations console", logout: "Log out", token: "Ops token", login: "Log in",
    deliveries: "Delivery log (live)", search: "Search a distribution id or case id",
    recipient: "Recipient", all_outcomes: "All outcomes", since: "Since", until: "Until",
    apply: "Apply", time: "Time", case: "Case", attempt: "Attempt", outcome: "Outcome",
    code: "Code / error", latency: "Latency", next_try: "Next try",
    live: "● live", reconnecting: "reconnecting…", bad_token: "Unknown token.",
  },
};
const MAX_ROWS = 500;
let lang = localStorage.getItem("ops-lang") || "id";
let stream = null;

const $ = (id) => document.getElementById(id);
const t = (key) => TEXT[lang][key] || key;

function applyLanguage() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  });
  $("lang-id").setAttribute("aria-pressed", String(lang === "id"));
  $("lang-en").setAttribute("aria-pressed", String(lang === "en"));
}

function token() { return sessionStorage.getItem("ops-token"); }

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: "Bearer " + token() } });
  if (response.status === 401) { logout(); throw new Error("unauthenticated"); }
  if (!response.ok) { throw new Error("HTTP " + response.status); }
  return response.json();
}

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

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) { td.className = className; }
  row.appendChild(td);
}

function timeText(iso) { return iso ? new Date(iso).toLocaleString(lang === "id" ? "id-ID" : "en-GB") : ""; }

function addEntry(entry, fresh) {
  const row = document.createElement("tr");
  row.className = "outcome-" + entry.outcome + (fresh ? " fresh" : "");
  row.dataset.distributionId = entry.distribution_id;
  row.dataset.caseId = entry.case_id;
  cell(row, timeText(entry.at));
  cell(row, entry.case_id, "id");
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
      $("live-state").textContent = t("live");
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
          }
        }
      }
    } catch (error) {
      if (controller.signal.aborted) { return; }
    }
    $("live-state").textContent = t("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

async function load() {
  if (stream) { stream.abort(); stream = null; }
  $("log-rows").replaceChildren();
  const params = filters();
  const page = await api("/v1/ops/deliveries?" + params.toString() + "&limit=200");
  page.entries.slice().reverse().forEach((entry) => addEntry(entry, false));
  follow(params, page.last_id);
}

function showConsole() {
  $("login").hidden = true;
  $("console").hidden = false;
  $("logout").hidden = false;
  load().catch(() => {});
}

function logout() {
  if (stream) { stream.abort(); stream = null; }
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
  $("filter-form").addEventListener("submit", (event) => { event.preventDefault(); load().catch(() => {}); });
  if (token()) { showConsole(); }
});
