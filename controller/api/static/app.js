// evsite dashboard: polls the API every 2 s with the token in an Authorization header (never a cookie, so a
// cross-site page cannot act for the operator). The token lives in sessionStorage: gone with the tab.
"use strict";

const POLL_MS = 2000;
const HOURS = 6;
const $ = (sel) => document.querySelector(sel);
let token = sessionStorage.getItem("evsite-token") || "";

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function num(v, d = 1) { return v === null || v === undefined ? "–" : Number(v).toFixed(d); }
function time(s) { return s ? s.replace("T", " ").slice(0, 19) : "–"; }

function say(text, ok = false) {
  const m = $("#message");
  m.hidden = !text;
  m.textContent = text || "";
  m.className = ok ? "message ok" : "message";
}

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + token } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const err = new Error((data.message || resp.statusText) + (data.code ? " (" + data.code + ")" : ""));
    err.status = resp.status;
    throw err;
  }
  return data;
}

function renderSite(s) {
  const parts = [
    "building " + num(s.building_kw) + " kW",
    "EV " + num(s.ev_kw) + " kW",
    "total " + num(s.total_kw) + " kW",
    "limit " + num(s.limit_kw) + " kW",
    "headroom " + num(s.headroom_kw) + " kW",
  ];
  if (s.plan_period) parts.push("plan period " + s.plan_period);
  if (s.meter_stale) parts.push("building meter stale");
  $("#site-summary").textContent = "— " + parts.join(" · ");
}

function renderChargers(list) {
  const rows = [];
  for (const c of list) {
    const conns = c.connectors.length ? c.connectors : [{ connector_id: "–" }];
    conns.forEach((k, i) => {
      const first = i === 0;
      rows.push(`<tr data-cp="${esc(c.id)}" data-connector="${esc(k.connector_id)}">
        <td>${first ? esc(c.id) : ""}</td>
        <td>${first ? `<span class="${c.online ? "online" : "offline"}">${c.online ? "online" : "offline"}</span>` : ""}</td>
        <td>${k.connector_id === 0 ? "0 (charger)" : esc(k.connector_id)}</td><td class="status">${esc(k.status || "–")}</td>
        <td>${num(k.limit_a)}</td><td>${esc(k.limit_reason || "")}</td><td>${num(k.power_kw, 2)}</td>
        <td>${first ? `<button data-act="reset" data-cp="${esc(c.id)}">Reset</button>
          <button data-act="clear-cache" data-cp="${esc(c.id)}">Clear cache</button>` : ""}
          ${typeof k.connector_id === "number" && k.connector_id > 0 ? `<button data-act="unlock" data-cp="${esc(c.id)}" data-connector="${k.connector_id}">Unlock</button>` : ""}</td>
      </tr>`);
    });
  }
  $("#chargers tbody").innerHTML = rows.join("") || '<tr><td colspan="8" class="muted">no chargers known</td></tr>';
}

function renderTransactions(list) {
  $("#transactions tbody").innerHTML =
    list.map((t) => `<tr data-tx="${t.id}"><td>${t.id}</td><td>${esc(t.cp_id)}</td><td>${esc(t.connector_id)}</td>
      <td>${esc(t.id_tag)}</td><td>${time(t.start_time)}</td><td>${esc(t.meter_start_wh)}</td>
      <td><button data-act="remote-stop" data-cp="${esc(t.cp_id)}" data-tx="${t.id}">Stop</button></td></tr>`).join("") ||
    '<tr><td colspan="7" class="muted">none</td></tr>';
}

function renderEvents(list) {
  $("#events tbody").innerHTML = list.map((e) => `<tr><td>${time(e.at)}</td><td>${esc(e.cp_id || "site")}</td>
    <td>${esc(e.kind)}</td><td class="muted details" title="${esc(e.data ? JSON.stringify(e.data) : "")}">${esc(e.data ? JSON.stringify(e.data) : "")}</td></tr>`).join("");
}

async function refresh() {
  if (!token) { say("Enter an API token (read or operator role) to see the site."); return; }
  try {
    const [site, hist, chargers, txs, events] = await Promise.all([
      api("GET", "/api/site"), api("GET", "/api/history?hours=" + HOURS), api("GET", "/api/chargers"),
      api("GET", "/api/transactions?open=true"), api("GET", "/api/events?limit=15"),
    ]);
    renderSite(site);
    const canvas = $("#chart");
    drawLoadChart(canvas, hist);
    canvas.dataset.points = String(hist.at.length);
    canvas.dataset.lastTotal = hist.at.length ? String((hist.building_kw.at(-1) || 0) + hist.ev_kw.at(-1)) : "";
    $("#chart-points").textContent = `(${hist.at.length} point${hist.at.length === 1 ? "" : "s"}, last ${HOURS} h)`;
    renderChargers(chargers);
    renderTransactions(txs);
    renderEvents(events);
    if ($("#message").className === "message") say("");
  } catch (err) {
    say(err.status === 401 ? "That token is not known to this site." : "Cannot read the site: " + err.message);
  }
}

async function act(label, method, path, body) {
  try {
    const res = await api(method, path, body);
    const status = res.result && res.result.status ? ": " + res.result.status : "";
    say(label + " sent" + status, true);
  } catch (err) {
    say(label + " failed: " + (err.status === 403 ? "this token has the read role only" : err.message));
  }
  refresh();
}

document.addEventListener("click", (e) => {
  const b = e.target.closest("button[data-act]");
  if (!b) return;
  const cp = encodeURIComponent(b.dataset.cp);
  const a = b.dataset.act;
  if (a === "remote-stop") act("Remote stop of " + b.dataset.tx, "POST", `/api/chargers/${cp}/remote-stop`, { transaction_id: Number(b.dataset.tx) });
  else if (a === "reset") act("Reset of " + b.dataset.cp, "POST", `/api/chargers/${cp}/reset`, { type: "Soft" });
  else if (a === "clear-cache") act("Clear cache of " + b.dataset.cp, "POST", `/api/chargers/${cp}/clear-cache`);
  else if (a === "unlock") act("Unlock of " + b.dataset.cp, "POST", `/api/chargers/${cp}/unlock`, { connector_id: Number(b.dataset.connector) });
});

$("#token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("#token").value.trim();
  sessionStorage.setItem("evsite-token", token);
  $("#token").value = "";
  refresh();
});

$("#limit-form").addEventListener("submit", (e) => {
  e.preventDefault();
  act("Site limit", "POST", "/api/site/limit", { limit_kw: Number($("#limit-kw").value), minutes: Number($("#limit-min").value) });
});
$("#replan").addEventListener("click", () => act("Re-plan", "POST", "/api/plan/replan"));

refresh();
setInterval(refresh, POLL_MS);
