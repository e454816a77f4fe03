/* guard review console. Plain JS, no build step, no request leaves guard's origin.
 *
 * The API key lives in sessionStorage only (this tab); every action is a /v1 call with
 * "Authorization: Bearer <key>", so the server's role and tenant checks decide what happens.
 * Lists refresh by polling (incidents every 2 s, streams every 3 s; see docs/ui.md).
 */
"use strict";

const KEY_SLOT = "guard.apiKey";
const INCIDENT_POLL_MS = 2000;
const STREAM_POLL_MS = 3000;
const JOB_POLL_MS = 500;
const PAGE_MAX = 500;          // the API's largest page
const ROWS_STEP = 100;         // incident rows shown at first, and added by "Show more"

const state = { me: null, timer: null, generation: 0, blobs: [] };

// -- small helpers --------------------------------------------------------------------------

const $ = (sel, root = document) => root.querySelector(sel);
const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ESC[c]);
const num = (v, digits = 1) => (v === null || v === undefined || Number.isNaN(+v) ? "–" : (+v).toFixed(digits));

// One formatter for every date: building one per call (toLocaleString with options) costs
// about a millisecond each, a second for a list of 1,000 incidents.
const DATE_FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "medium" });

function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : DATE_FORMAT.format(d);
}

function seconds(s) {
  if (s === null || s === undefined) return "–";
  s = Math.max(0, +s);
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

function can(...roles) { return state.me !== null && roles.includes(state.me.role); }

function say(text) { $("#status").textContent = text; }

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

/** A /v1 call with the key; JSON in and out. 401 signs out (the key is gone or revoked). */
async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY_SLOT) || ""}` };
  if (body !== undefined && !(body instanceof FormData)) headers["Content-Type"] = "application/json";
  const init = { method, headers, body: body instanceof FormData || body === undefined ? body : JSON.stringify(body) };
  const response = await fetch(path, init);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error.message || message; } catch (_) { /* not JSON */ }
    if (response.status === 401 && path !== "/v1/me") signOut("Your key was refused; sign in again.");
    throw new ApiError(response.status, message);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

/** Show an authenticated image (evidence, reference frames) through a blob URL. */
async function loadImage(img, url) {
  try {
    const blob = await (await api(url, { raw: true })).blob();
    const src = URL.createObjectURL(blob);
    state.blobs.push(src);
    img.src = src;
  } catch (err) {
    img.alt = `${img.alt} (not available: ${err.message})`;
  }
}

/** Ask once before acting; resolves with the form's extra fields, or null when cancelled. */
function ask(title, text, okLabel, extraHtml = "") {
  const dialog = $("#ask");
  $("#ask-title").textContent = title;
  $("#ask-text").textContent = text;
  $("#ask-extra").innerHTML = extraHtml;
  $("#ask-ok").textContent = okLabel;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const fields = {};
      for (const input of dialog.querySelectorAll("#ask-extra input")) {
        fields[input.name] = input.type === "checkbox" ? input.checked : input.value;
      }
      resolve(dialog.returnValue === "ok" ? fields : null);
    }, { once: true });
    dialog.returnValue = "cancel";
    dialog.showModal();
    $("#ask-cancel").focus();
  });
}

// -- sign in / out and routing ----------------------------------------------------------------

async function signIn(key) {
  sessionStorage.setItem(KEY_SLOT, key);
  try {
    state.me = await api("/v1/me");
  } catch (err) {
    sessionStorage.removeItem(KEY_SLOT);
    state.me = null;
    throw err;
  }
}

function signOut(message = "") {
  sessionStorage.removeItem(KEY_SLOT);
  state.me = null;
  stopPolling();
  location.hash = "";
  showSignIn(message);
}

function showSignIn(message = "") {
  for (const id of ["#nav", "#who", "#sign-out"]) $(id).hidden = true;
  $("#view").innerHTML = "";
  $("#sign-in").hidden = false;
  $("#sign-in-error").textContent = message;
  $("#api-key").value = "";
  $("#api-key").focus();
}

function showChrome() {
  $("#sign-in").hidden = true;
  $("#nav").hidden = false;
  $("#sign-out").hidden = false;
  const who = $("#who");
  who.hidden = false;
  who.textContent = `${state.me.owner} · ${state.me.role.replace("_", " ")}`;
  for (const link of document.querySelectorAll("#nav a[data-roles]")) {
    link.hidden = !link.dataset.roles.split(" ").includes(state.me.role);
  }
}

function stopPolling() {
  if (state.timer !== null) clearInterval(state.timer);
  state.timer = null;
  state.generation += 1;
  for (const src of state.blobs.splice(0)) URL.revokeObjectURL(src);
}

function poll(fn, ms) {
  state.timer = setInterval(fn, ms);
}

const ROUTES = [
  [/^#\/incidents\/(\d+)$/, (m) => incidentView(+m[1])],
  [/^#\/incidents(?:\?(.*))?$/, (m) => incidentsView(new URLSearchParams(m[1] || ""))],
  [/^#\/streams$/, () => (can("admin", "platform") ? streamsView() : forbidden())],
  [/^#\/references$/, () => (can("admin", "rights_holder") ? referencesView() : forbidden())],
];

async function route() {
  if (!state.me) return;
  stopPolling();
  say("");
  const hash = location.hash || "#/incidents";
  const section = hash.split(/[/?]/)[1];
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  for (const [pattern, render] of ROUTES) {
    const m = hash.match(pattern);
    if (m) {
      try { await render(m); } catch (err) { $("#view").innerHTML = `<p class="error" role="alert">${esc(err.message)}</p>`; }
      return;
    }
  }
  location.hash = "#/incidents";
}

function forbidden() {
  $("#view").innerHTML = `<h1 tabindex="-1">Not available</h1><p>Your key's role cannot use this section.</p>`;
}

function setView(html) {
  const view = $("#view");
  view.innerHTML = html;
  const heading = view.querySelector("h1");
  if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
  return view;
}

// -- incidents -----------------------------------------------------------------------------

const STATUS_OPTIONS = ["", "open", "confirmed", "dismissed"];

function incidentFilters(params) {
  const f = {};
  for (const name of ["status", "reference_id", "stream_id", "since", "until"]) {
    if (params.get(name)) f[name] = params.get(name);
  }
  return f;
}

function streamOrFile(i) {
  if (i.stream_id.startsWith("scan:")) return `file (scan ${esc(i.stream_id.slice(5))})`;
  const own = i.stream_id.includes(":") ? i.stream_id.slice(i.stream_id.indexOf(":") + 1) : i.stream_id;
  return `stream ${esc(own)}`;
}

/** Filters start open on wide screens, or when some are set; folded on phones. */
function filtersOpen(filters) {
  return Object.keys(filters).length || matchMedia("(min-width: 641px)").matches ? " open" : "";
}

function incidentRow(i) {
  const live = i.live ? ' <span class="badge live">live</span>' : "";
  const conflict = i.conflict ? ' <span class="badge conflict">conflict</span>' : "";
  return `<tr data-id="${i.id}">
<td data-label="Stream or file"><a href="#/incidents/${i.id}">${streamOrFile(i)}</a><br><span class="muted">${esc(i.account)}</span></td>
<td data-label="Reference">${esc(i.reference_title)} <span class="muted">#${i.reference_id}</span>${conflict}</td>
<td data-label="Score" class="num">${num(i.score, 2)}</td>
<td data-label="Status"><span class="badge ${esc(i.status)}">${esc(i.status)}</span>${live}</td>
<td data-label="When">${esc(when(i.first_seen || i.decided))}</td>
<td data-label="Copy ran" class="num">${seconds(i.duration)}</td></tr>`;
}

async function fetchIncidents(filters, rows) {
  const pages = [];
  for (let offset = 0; offset < rows; offset += PAGE_MAX) {
    const q = new URLSearchParams({ ...filters, limit: String(Math.min(PAGE_MAX, rows - offset)), offset: String(offset) });
    pages.push(api(`/v1/incidents?${q}`));
  }
  const answers = await Promise.all(pages);
  return { items: answers.flatMap((a) => a.items), total: answers[0].total };
}

async function incidentsView(params) {
  const filters = incidentFilters(params);
  let rows = Math.max(1, Math.min(5000, +(params.get("rows") || ROWS_STEP)));
  const toLocal = (v) => (v ? new Date(v).toISOString().slice(0, 16) : "");
  const view = setView(`<h1>Incidents</h1>
<details class="card" id="incident-filter-box"${filtersOpen(filters)}><summary>Filters</summary>
<form id="incident-filters" class="filters" aria-label="Filter incidents">
  <div><label for="f-status">Status</label><select id="f-status" name="status">
    ${STATUS_OPTIONS.map((s) => `<option value="${s}" ${filters.status === s ? "selected" : ""}>${s || "any"}</option>`).join("")}
  </select></div>
  <div><label for="f-reference">Reference id</label><input id="f-reference" name="reference_id" type="number" min="1" value="${esc(filters.reference_id)}"></div>
  <div><label for="f-stream">Stream id</label><input id="f-stream" name="stream_id" value="${esc(filters.stream_id)}" placeholder="e.g. scan:12"></div>
  <div><label for="f-since">Since</label><input id="f-since" name="since" type="datetime-local" value="${esc(toLocal(filters.since))}"></div>
  <div><label for="f-until">Until</label><input id="f-until" name="until" type="datetime-local" value="${esc(toLocal(filters.until))}"></div>
  <div><button type="submit">Apply filters</button></div>
</form></details>
<p id="incident-count" class="muted"></p>
<table id="incidents"><caption class="skip">Incidents, newest first</caption>
<thead><tr><th scope="col">Stream or file</th><th scope="col">Reference</th><th scope="col">Score</th><th scope="col">Status</th><th scope="col">When</th><th scope="col">Copy ran</th></tr></thead>
<tbody></tbody></table>
<div class="buttons"><button type="button" id="more" hidden>Show more</button></div>`);
  $("#incident-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    for (const [name, value] of new FormData(event.target)) {
      if (!value) continue;
      q.set(name, name === "since" || name === "until" ? new Date(value).toISOString() : value);
    }
    location.hash = `#/incidents${q.toString() ? "?" + q : ""}`;
  });
  const generation = state.generation;
  let shown = null;
  const refresh = async () => {
    const { items, total } = await fetchIncidents(filters, rows);
    if (generation !== state.generation) return;
    const html = items.map(incidentRow).join("");
    if (html !== shown) {  // only touch the DOM when something changed (keeps focus and scroll)
      shown = html;
      $("#incidents tbody", view).innerHTML = html || `<tr><td class="empty" colspan="6">No incidents.</td></tr>`;
    }
    $("#incident-count").textContent = `${items.length} of ${total} incident${total === 1 ? "" : "s"}`;
    $("#more").hidden = items.length >= total;
    say(`Incidents updated ${new Date().toLocaleTimeString()} (every ${INCIDENT_POLL_MS / 1000} s)`);
    document.body.dataset.incidentsRendered = String(items.length);
  };
  $("#more").addEventListener("click", () => { rows += ROWS_STEP; refresh(); });
  await refresh();
  poll(() => refresh().catch((err) => say(`Refresh failed: ${err.message}`)), INCIDENT_POLL_MS);
}

function plotSvg(a) {
  const W = 560, H = 300, L = 52, R = 14, T = 14, B = 40;
  const qs = [a.query_start, a.query_end, ...a.segments.flatMap((s) => [s.query_start, s.query_end])];
  const rs = [a.reference_start, a.reference_end, ...a.segments.flatMap((s) => [s.reference_start, s.reference_end])];
  const pad = (lo, hi) => { const d = Math.max(hi - lo, 1) * 0.1; return [Math.max(0, lo - d), hi + d]; };
  const [q0, q1] = pad(Math.min(...qs), Math.max(...qs));
  const [r0, r1] = pad(Math.min(...rs), Math.max(...rs));
  const x = (q) => L + ((q - q0) / (q1 - q0)) * (W - L - R);
  const y = (r) => H - B - ((r - r0) / (r1 - r0)) * (H - T - B);
  const ticks = (lo, hi) => Array.from({ length: 5 }, (_, k) => lo + ((hi - lo) * k) / 4);
  let svg = `<svg id="alignment-plot" class="plot" viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="plot-title plot-desc">
<title id="plot-title">Query time against reference time</title>
<desc id="plot-desc">${a.segments.length} aligned segment(s): copy ${num(a.query_start)}–${num(a.query_end)} s matches reference ${num(a.reference_start)}–${num(a.reference_end)} s.</desc>
<rect x="${x(a.query_start)}" y="${y(a.reference_end)}" width="${Math.max(1, x(a.query_end) - x(a.query_start))}" height="${Math.max(1, y(a.reference_start) - y(a.reference_end))}" fill="#dbeafe" stroke="#93c5fd" stroke-dasharray="4 3" class="bounds"/>
<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#6b7280"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#6b7280"/>`;
  for (const t of ticks(q0, q1)) svg += `<text x="${x(t)}" y="${H - B + 14}" text-anchor="middle">${num(t)}</text>`;
  for (const t of ticks(r0, r1)) svg += `<text x="${L - 6}" y="${y(t) + 4}" text-anchor="end">${num(t)}</text>`;
  svg += `<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">copy time (s)</text>`;
  svg += `<text transform="translate(12 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">reference time (s)</text>`;
  for (const s of a.segments) {
    svg += `<line class="segment" x1="${x(s.query_start)}" y1="${y(s.reference_start)}" x2="${x(s.query_end)}" y2="${y(s.reference_end)}" stroke="#1d4ed8" stroke-width="3" stroke-linecap="round"/>`;
  }
  for (const s of a.segments) {
    for (const [q, r] of s.matches || []) svg += `<circle class="frame-match" cx="${x(q)}" cy="${y(r)}" r="2.5" fill="#f59e0b" stroke="#92400e" stroke-width="0.5"><title>matched frame: copy ${num(q)} s ↔ reference ${num(r)} s</title></circle>`;
  }
  for (const p of a.pairs) {
    svg += `<circle class="match" cx="${x(p.query_time)}" cy="${y(p.reference_time)}" r="4" fill="${p.query_url ? "#b91c1c" : "#fff"}" stroke="#b91c1c"><title>copy ${num(p.query_time)} s ↔ reference ${num(p.reference_time)} s</title></circle>`;
  }
  return svg + "</svg>";
}

function pairFigure(p, index) {
  const q = p.query_url
    ? `<img data-src="${esc(p.query_url)}" alt="Copy at ${num(p.query_time)} s">`
    : `<div class="none" role="img" aria-label="No copy frame kept at ${num(p.query_time)} s">no copy frame kept</div>`;
  const r = p.reference_url
    ? `<img data-src="${esc(p.reference_url)}" alt="Reference at ${num(p.reference_time)} s">`
    : `<div class="none" role="img" aria-label="No reference picture">hash-only reference</div>`;
  return `<figure class="pair" data-index="${index}">${q}${r}<figcaption>copy ${num(p.query_time)} s · reference ${num(p.reference_time)} s</figcaption></figure>`;
}

function conflictNote(i) {
  if (!i.conflict) return "";
  const claims = [{reference_title: i.reference_title, reference_id: i.reference_id, owner: i.owner, policy: i.policy},
                  ...(i.claims || [])];
  const refs = claims.map((c) => `<li>${esc(c.reference_title)} #${esc(c.reference_id)} — ${esc(c.owner)} (policy ${esc(c.policy)})</li>`);
  return `<section class="card conflict-note" aria-label="Ownership conflict"><h2>Ownership conflict</h2>
<p>References of different owners explain this copy. Nothing was cut automatically: each owner confirms or dismisses for its own reference.</p>
<ul>${refs.join("")}</ul></section>`;
}

function deliveriesHtml(d) {
  if (!d.items.length) return `<p class="muted">No webhook event yet.</p>`;
  return `<ul id="deliveries">${d.items.map((e) => {
    const states = e.deliveries.map((x) => `endpoint ${x.endpoint_id}: ${esc(x.status)} (${x.attempts} attempt${x.attempts === 1 ? "" : "s"})`);
    return `<li data-type="${esc(e.type)}"><strong>${esc(e.type)}</strong> ${esc(when(e.created))} — ${states.length ? states.join("; ") : "no endpoint of yours"}</li>`;
  }).join("")}</ul><p class="muted">Action first acknowledged: ${esc(when(d.action_delivered))}</p>`;
}

async function incidentView(id) {
  const [i, a] = await Promise.all([api(`/v1/incidents/${id}`), api(`/v1/incidents/${id}/alignment`)]);
  const reviewer = can("admin", "rights_holder");
  const view = setView(`<p><a href="#/incidents">← All incidents</a></p>
<h1>Incident ${i.id}: ${esc(i.reference_title)}</h1>
${conflictNote(i)}
<section class="card"><dl class="summary">
<div><dt>Status</dt><dd><span id="incident-status" class="badge ${esc(i.status)}">${esc(i.status)}</span>${i.live ? ' <span class="badge live">live</span>' : ""}</dd></div>
<div><dt>Score</dt><dd>${num(i.score, 2)}</dd></div>
<div><dt>Modality</dt><dd id="modality">${esc(a.modality)}</dd></div>
<div><dt>Policy</dt><dd>${esc(i.policy)}</dd></div>
<div><dt>Stream or file</dt><dd>${streamOrFile(i)}</dd></div>
<div><dt>Account</dt><dd>${esc(i.account)} <span class="muted">on ${esc(i.platform)}</span></dd></div>
<div><dt>Copy</dt><dd>${num(i.query_start)}–${num(i.query_end)} s (${seconds(i.duration)})</dd></div>
<div><dt>Reference</dt><dd>#${i.reference_id}, ${num(i.reference_start)}–${num(i.reference_end)} s</dd></div>
<div><dt>First seen</dt><dd>${esc(when(i.first_seen))}</dd></div>
<div><dt>Reviewed</dt><dd>${esc(when(i.reviewed))}</dd></div>
</dl>
${reviewer ? `<div class="buttons"><button type="button" id="confirm" class="danger">Confirm copy</button><button type="button" id="dismiss">Dismiss</button></div>` : ""}
</section>
<h2>Where the copy comes from</h2>
${plotSvg(a)}
<h2>Evidence along the copy</h2>
<div class="pairs" id="pairs">${a.pairs.map(pairFigure).join("") || '<p class="muted">No evidence kept.</p>'}</div>
<h2>Webhook deliveries</h2>
<div id="delivery-box" aria-live="polite"></div>`);
  for (const img of view.querySelectorAll("img[data-src]")) loadImage(img, img.dataset.src);
  const generation = state.generation;
  const refreshDeliveries = async () => {
    const d = await api(`/v1/incidents/${id}/deliveries`);
    if (generation === state.generation) $("#delivery-box").innerHTML = deliveriesHtml(d);
  };
  // The buttons work from the moment they are shown: their handlers are attached before any
  // further request is awaited.
  if (reviewer) attachReview(i, refreshDeliveries);
  await refreshDeliveries();
  poll(() => refreshDeliveries().catch(() => {}), INCIDENT_POLL_MS);
}

/** Confirm and dismiss on an incident's page, each asking once before acting. */
function attachReview(i, refreshDeliveries) {
  const id = i.id;
  const review = async (body, what) => {
    const done = await api(`/v1/incidents/${id}/review`, { method: "POST", body });
    $("#incident-status").textContent = done.status;
    $("#incident-status").className = `badge ${done.status}`;
    say(`Incident ${id} ${what}.`);
    await refreshDeliveries();
  };
  $("#confirm").addEventListener("click", async () => {
    const cut = i.policy === "cut" ? " The reference's policy is cut: the stream is taken down and the takedown webhook sent." : "";
    if (await ask("Confirm this copy?", `Confirm incident ${id} as a real copy of "${i.reference_title}".${cut}`, "Confirm")) {
      await review({ action: "confirm" }, "confirmed");
    }
  });
  $("#dismiss").addEventListener("click", async () => {
    const extra = `<label class="check"><input type="checkbox" name="allowlist" id="ask-allowlist"> Also allowlist account “${esc(i.account)}” for this reference</label>`;
    const fields = await ask("Dismiss this incident?", `Dismiss incident ${id} as a false alarm.`, "Dismiss", extra);
    if (fields) await review({ action: "dismiss", allowlist_account: !!fields.allowlist }, "dismissed");
  });
}

// -- live streams ----------------------------------------------------------------------------

function framesPerSecond(s) {
  const start = Date.parse(s.started), end = Date.parse(s.ended || s.updated);
  return start && end > start ? s.frames / ((end - start) / 1000) : null;
}

function streamRow(s) {
  const stop = s.active ? `<button type="button" class="danger" data-stop="${esc(s.id)}" aria-label="Stop stream ${esc(s.stream_id)}">Stop</button>` : "";
  return `<tr data-id="${esc(s.id)}">
<td data-label="Stream"><strong>${esc(s.stream_id)}</strong><br><span class="muted">${esc(s.url)}</span></td>
<td data-label="Account">${esc(s.account)}</td>
<td data-label="Status"><span class="badge ${esc(s.status)}">${esc(s.status)}</span>${s.error ? `<br><span class="muted">${esc(s.error)}</span>` : ""}</td>
<td data-label="Lag" class="num">${num(s.lag, 1)} s</td>
<td data-label="Frames/s" class="num">${num(framesPerSecond(s), 1)}</td>
<td data-label="Incidents" class="num">${s.incidents ? `<a href="#/incidents?stream_id=${encodeURIComponent(s.id)}">${s.incidents}</a>` : 0}</td>
<td data-label="Recent frame"><img class="thumb" data-stream="${esc(s.id)}" alt="Latest frame of ${esc(s.stream_id)}" hidden></td>
<td data-label="Actions">${stop}</td></tr>`;
}

async function streamsView() {
  const view = setView(`<h1>Live streams</h1>
<form id="stream-filters" class="card filters" aria-label="Filter streams">
  <div><label class="check"><input type="checkbox" id="f-active" name="active"> Active only</label></div>
</form>
<table id="streams"><thead><tr><th scope="col">Stream</th><th scope="col">Account</th><th scope="col">Status</th><th scope="col">Lag</th><th scope="col">Frames/s</th><th scope="col">Incidents</th><th scope="col">Recent frame</th><th scope="col">Actions</th></tr></thead><tbody></tbody></table>`);
  const generation = state.generation;
  const frames = new Map();  // stream id -> evidence URL shown
  let shown = null;
  const refresh = async () => {
    const q = $("#f-active").checked ? "?active=true" : "";
    const { items } = await api(`/v1/streams${q}`);
    if (generation !== state.generation) return;
    const html = items.map(streamRow).join("");
    if (html !== shown) {
      shown = html;
      frames.clear();
      $("#streams tbody", view).innerHTML = html || `<tr><td class="empty" colspan="8">No streams.</td></tr>`;
    }
    say(`Streams updated ${new Date().toLocaleTimeString()} (every ${STREAM_POLL_MS / 1000} s)`);
    for (const s of items.filter((x) => x.active || x.incidents > 0)) showStreamFrame(s, frames).catch(() => {});
  };
  $("#f-active").addEventListener("change", refresh);
  view.addEventListener("click", async (event) => {
    const id = event.target.dataset.stop;
    if (!id) return;
    if (!(await ask("Stop monitoring?", `Stop monitoring stream ${id}? Its record and incidents stay.`, "Stop"))) return;
    const s = await api(`/v1/streams/${encodeURIComponent(id)}/stop`, { method: "POST" });
    say(`Stream ${s.stream_id} ${s.status}.`);
    shown = null;
    await refresh();
  });
  await refresh();
  poll(() => refresh().catch((err) => say(`Refresh failed: ${err.message}`)), STREAM_POLL_MS);
}

/** The most recent frame of a stream: the latest frame read while it is monitored here, else
 *  the copy frame of its latest incident. */
async function showStreamFrame(s, frames) {
  const img = document.querySelector(`img[data-stream="${CSS.escape(s.id)}"]`);
  if (s.active && img) {
    try {
      const blob = await (await api(`/v1/streams/${encodeURIComponent(s.id)}/frame`, { raw: true })).blob();
      if (img.dataset.live) URL.revokeObjectURL(img.dataset.live);  // one live frame per stream at a time
      img.src = img.dataset.live = URL.createObjectURL(blob);
      img.hidden = false;
      frames.set(s.id, "live");
      return;
    } catch (_) { /* monitored elsewhere or no frame yet: fall back to the evidence */ }
  }
  const { items } = await api(`/v1/incidents?${new URLSearchParams({ stream_id: s.id, limit: "1" })}`);
  if (!items.length) return;
  const incident = await api(`/v1/incidents/${items[0].id}`);
  const frame = incident.evidence.filter((e) => e.kind === "query").pop();
  if (!frame || !img || frames.get(s.id) === frame.url) return;
  frames.set(s.id, frame.url);
  img.hidden = false;
  await loadImage(img, frame.url);
}

// -- references ------------------------------------------------------------------------------

function referenceRow(r) {
  return `<tr data-id="${r.id}">
<td data-label="Title"><strong>${esc(r.title)}</strong> <span class="muted">#${r.id}</span><br><span class="muted">${esc(r.source)}</span></td>
<td data-label="Owner">${esc(r.owner)}</td>
<td data-label="Policy"><span class="badge">${esc(r.policy)}</span></td>
<td data-label="Min match" class="num">${num(r.min_seconds)} s</td>
<td data-label="Duration" class="num">${seconds(r.duration)}</td>
<td data-label="Allowlist">${r.allowlist.length ? r.allowlist.map(esc).join(", ") : '<span class="muted">none</span>'}</td>
<td data-label="Actions"><div class="actions-cell">
<button type="button" data-edit="${r.id}" aria-label="Edit ${esc(r.title)}">Edit</button>
<button type="button" data-export="${r.id}" aria-label="Export fingerprint of ${esc(r.title)}">Export</button>
<button type="button" class="danger" data-delete="${r.id}" aria-label="Delete ${esc(r.title)}">Delete</button></div></td></tr>`;
}

async function referencesView() {
  const admin = can("admin");
  const view = setView(`<h1>References</h1>
<form id="upload" class="card filters" aria-label="Upload a reference">
  <div><label for="u-file">Reference video</label><input id="u-file" name="file" type="file" accept="video/*" required></div>
  <div><label for="u-title">Title</label><input id="u-title" name="title" maxlength="200"></div>
  <div><label for="u-policy">Policy</label><select id="u-policy" name="policy"><option value="flag">flag</option><option value="cut">cut</option></select></div>
  <div><label for="u-min">Minimum match (s)</label><input id="u-min" name="min_seconds" type="number" min="0.5" step="0.5"></div>
  <div><label for="u-allow">Allowlisted accounts (comma separated)</label><input id="u-allow" name="allowlist"></div>
  <div><button type="submit" class="primary">Upload</button></div>
  <div id="upload-progress" hidden><label for="u-progress" id="u-progress-label">Uploading</label><progress id="u-progress" max="1" value="0"></progress></div>
</form>
<form id="reference-filters" class="card filters" aria-label="Filter references">
  <div><label for="r-title">Search titles</label><input id="r-title" name="title" type="search"></div>
  <div><label for="r-policy">Policy</label><select id="r-policy" name="policy"><option value="">any</option><option>flag</option><option>cut</option></select></div>
  ${admin ? '<div><label for="r-owner">Owner</label><input id="r-owner" name="owner"></div>' : ""}
  <div><button type="submit">Search</button></div>
</form>
<p id="reference-count" class="muted"></p>
<table id="references"><thead><tr><th scope="col">Title</th><th scope="col">Owner</th><th scope="col">Policy</th><th scope="col">Min match</th><th scope="col">Duration</th><th scope="col">Allowlist</th><th scope="col">Actions</th></tr></thead><tbody></tbody></table>`);
  let refs = [];
  const refresh = async () => {
    const q = new URLSearchParams({ limit: "500" });
    for (const [name, value] of new FormData($("#reference-filters"))) if (value) q.set(name, value);
    const page = await api(`/v1/references?${q}`);
    refs = page.items;
    $("#references tbody", view).innerHTML = refs.map(referenceRow).join("") || `<tr><td class="empty" colspan="7">No references.</td></tr>`;
    $("#reference-count").textContent = `${page.total} reference${page.total === 1 ? "" : "s"}`;
  };
  $("#reference-filters").addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
  $("#upload").addEventListener("submit", (e) => { e.preventDefault(); uploadReference(e.target).then(refresh); });
  view.addEventListener("click", async (event) => {
    const b = event.target.dataset;
    const ref = refs.find((r) => String(r.id) === (b.edit || b.export || b.delete));
    if (!ref) return;
    if (b.edit) await editReference(ref);
    else if (b.export) await exportReference(ref);
    else if (b.delete) {
      if (!(await ask("Delete reference?", `Delete "${ref.title}" (#${ref.id})? Its fingerprints leave the index at once.`, "Delete"))) return;
      await api(`/v1/references/${ref.id}`, { method: "DELETE" });
      say(`Reference ${ref.id} deleted.`);
    }
    await refresh();
  });
  await refresh();
}

/** Upload with a progress bar: bytes sent (XHR upload progress), then the ingest job's progress. */
async function uploadReference(form) {
  const data = new FormData(form);
  for (const [name, value] of [...data]) if (value === "" || (value instanceof File && !value.name)) data.delete(name);
  const box = $("#upload-progress"), bar = $("#u-progress"), label = $("#u-progress-label");
  box.hidden = false;
  label.textContent = "Uploading";
  bar.value = 0;
  try {
    const job = await new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/v1/references");
      xhr.setRequestHeader("Authorization", `Bearer ${sessionStorage.getItem(KEY_SLOT) || ""}`);
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; };
      xhr.onload = () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
        if (xhr.status === 202) resolve(body);
        else reject(new Error(body?.error?.message || `upload failed (${xhr.status})`));
      };
      xhr.onerror = () => reject(new Error("upload failed (network)"));
      xhr.send(data);
    });
    label.textContent = `Ingesting (job ${job.id})`;
    let current = job;
    while (current.status === "queued" || current.status === "running") {
      bar.value = current.progress;
      await new Promise((r) => setTimeout(r, JOB_POLL_MS));
      current = await api(`/v1/jobs/${job.id}`);
    }
    if (current.status === "failed") throw new Error(current.error || "ingest failed");
    bar.value = 1;
    const ref = current.result.reference;
    const notes = [...(current.result.warnings || []).map((w) => `Warning: ${w}`),
                   ...(current.result.overlaps || []).map((o) => `Overlap: ${num(o.start)}–${num(o.end)} s is the footage of `
                     + `reference #${o.reference_id} "${o.reference_title}" of ${o.owner}; copies of it will be ownership conflicts.`)];
    label.textContent = [`Registered "${ref.title}" (#${ref.id})`, ...notes].join(" ");
    say(`Reference ${ref.id} registered.${notes.length ? " " + notes.join(" ") : ""}`);
    form.reset();
  } catch (err) {
    label.textContent = `Upload failed: ${err.message}`;
  }
}

async function editReference(ref) {
  const extra = `<label for="e-title">Title</label><input id="e-title" name="title" value="${esc(ref.title)}" maxlength="200">
<label for="e-policy">Policy (flag or cut)</label><input id="e-policy" name="policy" value="${esc(ref.policy)}" pattern="flag|cut">
<label for="e-min">Minimum match (s)</label><input id="e-min" name="min_seconds" type="number" min="0.5" step="0.5" value="${esc(ref.min_seconds)}">
<label for="e-allow">Allowlisted accounts (comma separated)</label><input id="e-allow" name="allowlist" value="${esc(ref.allowlist.join(", "))}">`;
  const fields = await ask(`Edit "${ref.title}"`, "Change the reference's policy, minimum match or allowlist.", "Save", extra);
  if (!fields) return;
  const body = {
    title: fields.title.trim() || ref.title,
    policy: fields.policy.trim() === "cut" ? "cut" : "flag",
    min_seconds: +fields.min_seconds || ref.min_seconds,
    allowlist: fields.allowlist.split(",").map((s) => s.trim()).filter(Boolean),
  };
  try {
    await api(`/v1/references/${ref.id}`, { method: "PATCH", body });
    say(`Reference ${ref.id} saved.`);
  } catch (err) {
    say(`Not saved: ${err.message}`);
  }
}

async function exportReference(ref) {
  const blob = await (await api(`/v1/references/${ref.id}/export`, { raw: true })).blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `reference-${ref.id}.gfp.json`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  say(`Fingerprint of reference ${ref.id} exported (hashes only).`);
}

// -- start -----------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", async () => {
  $("#sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await signIn($("#api-key").value.trim());
      showChrome();
      await route();
    } catch (err) {
      showSignIn(err.status === 401 ? "That key was not accepted." : err.message);
    }
  });
  $("#sign-out").addEventListener("click", () => signOut("Signed out."));
  window.addEventListener("hashchange", route);
  if (sessionStorage.getItem(KEY_SLOT)) {
    try {
      state.me = await api("/v1/me");
      showChrome();
      await route();
      return;
    } catch (_) {
      sessionStorage.removeItem(KEY_SLOT);
    }
  }
  showSignIn();
});
