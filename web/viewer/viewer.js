// The live results page.
//
// Results are untrusted: whoever submitted a job chose its code, its figures'
// titles and text, its stdout and its error message. So SVGs are shown only as
// <img> from blob: URLs (an SVG image runs no script and loads nothing), and
// every other piece of a result goes into the page with textContent, never as
// HTML. The server's CSP (Trusted Types included) backs this up: a stray
// innerHTML here would throw instead of rendering markup.
//
// Protocol (services/viewer/live.py): the WebSocket first sends a "hello" with
// the jobs to show and the stream offset they are current to, then one "job"
// message per change, each with its offset. On reconnect the page passes the
// last offset it saw (?since=N) and gets exactly what changed after it; cards
// are keyed by job id, so a job arriving twice is updated in place, never
// shown twice, and a card's status never moves backwards.

import { FINAL_STATUSES } from "./vocabulary.mjs"; // the job's words (shared/vocabulary.py)

const $ = (id) => document.getElementById(id);
const jobsEl = $("jobs");
const emptyEl = $("empty");
const connectionEl = $("connection");
const searchEl = $("search");

const JOB_ID = /^[0-9a-f]{1,64}$/;
const requestedJob = new URLSearchParams(location.search).get("job");
const focusJob = requestedJob && JOB_ID.test(requestedJob) ? requestedJob : null;
const RANK = { queued: 0, running: 1, done: 2, failed: 2 };
const FINAL = new Set(FINAL_STATUSES);
const MAX_CARDS = 1000;
const RETRY_BASE_MS = 500;
const RETRY_MAX_MS = 8000;
const TIME_FORMAT = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

const entries = new Map(); // job_id -> {job, card, urls, pushMs, e2eMs, wsMs}
const filter = { status: "all", text: "" };
let lastOffset = null; // the newest stream offset this page has seen
let socket = null;
let retries = 0;
let retryTimer = null;
const pushSamples = [];
const e2eSamples = [];

// Read-only numbers for tests and the curious (window.plotfarmViewer).
const debug = { arrivals: new Map(), connections: [], hellos: [], handled: 0, handleMs: 0 };

const now = () => performance.timeOrigin + performance.now();

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "on") for (const [type, handler] of Object.entries(value)) node.addEventListener(type, handler);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

function parseTime(iso) {
  if (!iso) return NaN;
  return Date.parse(iso.replace(/(\.\d{3})\d+/, "$1"));
}

function formatMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  if (ms >= 10000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Math.round(ms)} ms`;
}

function median(values) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

function remember(samples, value) {
  if (!Number.isFinite(value)) return;
  samples.push(value);
  if (samples.length > 200) samples.shift();
}

function firstLine(code) {
  const lines = (code || "").split("\n").map((l) => l.trim());
  const useful = lines.filter((l) => l && !l.startsWith("#") && !l.startsWith("import ") && !l.startsWith("from "));
  return useful[0] || lines.find(Boolean) || "";
}

function decodeEntities(text) {
  const named = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" };
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (match, code) => {
    if (code[0] === "#") {
      const point = code[1] === "x" || code[1] === "X" ? parseInt(code.slice(2), 16) : parseInt(code.slice(1), 10);
      return point > 0 && point <= 0x10ffff ? String.fromCodePoint(point) : match;
    }
    return named[code.toLowerCase()] ?? match;
  });
}

/** The figure's title as plain text, read from plotly's SVG with string matching (no parser, no DOM). */
function figureTitle(svg) {
  if (!svg) return "";
  const match = /<text class="gtitle"[^>]*>([\s\S]*?)<\/text>/.exec(svg);
  return match ? decodeEntities(match[1].replace(/<[^>]*>/g, "")).trim() : "";
}

// ---- cards --------------------------------------------------------------------

function timingsList(entry) {
  const t = entry.job.timings;
  const rows = [];
  if (t) {
    rows.push(["queue wait", t.queued_ms], ["run", t.run_ms], ["SVG", t.svg_ms], ["total", t.total_ms]);
  }
  if (entry.e2eMs !== undefined) rows.push(["shown after", entry.e2eMs]);
  if (!rows.length) return null;
  const list = el("dl", { className: "timings" });
  for (const [label, value] of rows) {
    list.append(el("div", {}, el("dt", { textContent: label }), el("dd", { textContent: formatMs(value) })));
  }
  if (entry.pushMs !== undefined) {
    list.title = `published → shown here: ${formatMs(entry.pushMs)} (of which WebSocket ${formatMs(entry.wsMs)})`;
  }
  return list;
}

function textBlock(label, text, className, open = false) {
  if (!text) return null;
  const lines = text.replace(/\n$/, "").split("\n").length;
  return el(
    "details",
    { className, open },
    el("summary", { textContent: `${label} · ${lines} line${lines === 1 ? "" : "s"}` }),
    el("pre", { textContent: text }),
  );
}

function renderCard(entry) {
  const card = el("article", {
    className: "card",
    id: `job-${entry.job.job_id}`,
    dataset: { jobId: entry.job.job_id, status: entry.job.status },
  });
  card.append(...cardParts(entry).filter(Boolean));
  if (entry.pushMs !== undefined) card.dataset.pushMs = entry.pushMs.toFixed(1);
  if (entry.wsMs !== undefined) card.dataset.wsMs = entry.wsMs.toFixed(1);
  if (entry.job.job_id === focusJob) card.classList.add("focused");
  return card;
}

function cardParts(entry) {
  const { job, urls } = entry;
  const figures = job.figures || [];
  const title = figureTitle(figures[0] && figures[0].svg) || firstLine(job.code) || "(no code)";
  const parts = [];
  const finished = job.finished_at ? new Date(parseTime(job.finished_at)) : null;
  parts.push(
    el(
      "div",
      { className: "card-head" },
      el("span", { className: "status", textContent: job.status, dataset: { status: job.status } }),
      el("h2", { className: "title", textContent: title, title }),
      finished ? el("time", { dateTime: job.finished_at, textContent: TIME_FORMAT.format(finished) }) : null,
    ),
  );

  const figureBox = el("div", { className: "figures" });
  figures.forEach((figure, n) => {
    if (!urls[n]) return;
    const alt = `figure ${n + 1} of ${figures.length}: ${title}`;
    figureBox.append(
      el(
        "button",
        { type: "button", className: "figure", title: "enlarge", on: { click: () => openZoom(urls[n], alt) } },
        el("img", { src: urls[n], alt, loading: "lazy", decoding: "async" }),
      ),
    );
  });
  if (!figures.length) {
    const waiting = { queued: "waiting for a renderer…", running: `running on ${job.renderer_id || "a renderer"}…` };
    figureBox.append(el("p", { className: "placeholder", textContent: waiting[job.status] || "no figure" }));
  }
  parts.push(figureBox);
  if (job.warnings && job.warnings.length) {
    // What came out differently (tiles offline, WebGL as images, fonts): said as text.
    parts.push(el("ul", { className: "warnings" }, ...job.warnings.map((warning) => el("li", { textContent: warning }))));
  }

  if (job.error) {
    parts.push(
      el(
        "p",
        { className: "error" },
        el("strong", { textContent: job.error.type }),
        document.createTextNode(`: ${job.error.message}`),
      ),
      textBlock("traceback", job.error.traceback, "traceback"),
    );
  }
  parts.push(
    timingsList(entry),
    el(
      "div",
      { className: "meta" },
      job.renderer_id ? el("span", { textContent: `renderer ${job.renderer_id}` }) : null,
      el("span", { className: "job-id", textContent: job.job_id.slice(0, 12), title: job.job_id }),
      job.attempt > 1 ? el("span", { textContent: `attempt ${job.attempt}` }) : null,
    ),
    textBlock("stdout", job.stdout, "stdout"),
    textBlock("stderr", job.stderr, "stderr"),
    textBlock("code", job.code, "code"),
  );

  const actions = el("div", { className: "actions" });
  figures.forEach((figure, n) => {
    const many = figures.length > 1;
    if (urls[n]) {
      const label = many ? `SVG ${n + 1}` : "download SVG";
      actions.append(el("a", { href: urls[n], download: `${job.job_id}-${n}.svg`, textContent: label, className: "download" }));
    }
    // A PNG stays on the viewer (it is not pushed over the WebSocket): a link to it.
    if (figure.files && figure.files.png && /^[0-9a-f]+$/.test(job.job_id)) {
      const label = many ? `PNG ${n + 1}` : "download PNG";
      const href = `/api/jobs/${job.job_id}/figures/${n}.png`;
      actions.append(el("a", { href, download: `${job.job_id}-${n}.png`, textContent: label, className: "download png" }));
    }
  });
  if (job.code) {
    const copy = el("button", { type: "button", className: "copy", textContent: "copy code" });
    copy.addEventListener("click", () => copyText(job.code, copy));
    actions.append(copy);
  }
  actions.append(el("a", { href: `?job=${job.job_id}`, textContent: "link", className: "permalink" }));
  parts.push(actions);
  return parts;
}

function figureUrls(job) {
  return (job.figures || []).map((figure) =>
    // Large SVGs are not sent inline (services/viewer/live.py): the viewer serves them.
    typeof figure.svg === "string"
      ? URL.createObjectURL(new Blob([figure.svg], { type: "image/svg+xml" }))
      : figure.svg_url || null,
  );
}

function matches(entry) {
  const { job } = entry;
  if (focusJob) return job.job_id === focusJob;
  if (filter.status !== "all" && job.status !== filter.status) return false;
  if (!filter.text) return true;
  return (job.code || "").toLowerCase().includes(filter.text) || job.job_id.startsWith(filter.text);
}

function applyFilter() {
  let shown = 0;
  for (const entry of entries.values()) {
    entry.card.hidden = !matches(entry);
    shown += entry.card.hidden ? 0 : 1;
  }
  $("shown").textContent = filter.status === "all" && !filter.text ? "" : `${shown} of ${entries.size} shown`;
  $("count").textContent = String(entries.size);
  emptyEl.hidden = entries.size > 0;
}

// Changes are recorded first (upsert) and drawn once per batch (render): a job
// whose queued, running and done states arrive together is drawn once.
const dirty = new Set();

function upsert(job, { via, offset = null, receivedAt = null }) {
  if (!job || typeof job.job_id !== "string" || !JOB_ID.test(job.job_id)) return;
  const log = debug.arrivals.get(job.job_id) || [];
  log.push({ status: job.status, via, offset, at: now() });
  debug.arrivals.set(job.job_id, log);

  let entry = entries.get(job.job_id);
  if (entry) {
    const before = RANK[entry.job.status] ?? 0;
    const after = RANK[job.status] ?? 0;
    // Status only moves forward, and the first final result is the result.
    if (after < before || (after === before && FINAL.has(entry.job.status))) return;
  } else {
    entry = { urls: [] };
    entries.set(job.job_id, entry);
  }
  entry.job = job;
  if (FINAL.has(job.status) && via === "push" && entry.pushMs === undefined) entry.measure = { receivedAt };
  dirty.add(entry);
}

function render() {
  for (const entry of dirty) {
    const oldUrls = entry.urls;
    const oldCard = entry.card;
    entry.urls = figureUrls(entry.job);
    entry.card = renderCard(entry);
    entry.card.hidden = !matches(entry);
    if (oldCard) oldCard.replaceWith(entry.card);
    else jobsEl.prepend(entry.card);
    for (const url of oldUrls) if (url) URL.revokeObjectURL(url);
  }
  // Latency: from the result's publication (finished_at) to its card being on the page.
  const at = now();
  for (const entry of dirty) {
    if (!entry.measure) continue;
    const { job } = entry;
    entry.pushMs = at - parseTime(job.finished_at);
    entry.e2eMs = at - parseTime(job.submitted_at);
    entry.wsMs = entry.measure.receivedAt ? at - entry.measure.receivedAt : undefined;
    entry.measure = null;
    remember(pushSamples, entry.pushMs);
    remember(e2eSamples, entry.e2eMs);
    entry.card.dataset.pushMs = entry.pushMs.toFixed(1);
    if (entry.wsMs !== undefined) entry.card.dataset.wsMs = entry.wsMs.toFixed(1);
    const timings = entry.card.querySelector(".timings");
    const fresh = timingsList(entry);
    if (timings && fresh) timings.replaceWith(fresh);
  }
  dirty.clear();
  trim();
}

function trim() {
  while (entries.size > MAX_CARDS) {
    const [oldestId, oldest] = entries.entries().next().value;
    oldest.card.remove();
    for (const url of oldest.urls) if (url) URL.revokeObjectURL(url);
    entries.delete(oldestId);
  }
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = el("textarea", { value: text, className: "offscreen" });
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  button.textContent = "copied";
  setTimeout(() => (button.textContent = "copy code"), 1500);
}

function openZoom(url, caption) {
  $("zoom-img").src = url;
  $("zoom-img").alt = caption;
  $("zoom-caption").textContent = caption;
  $("zoom").showModal();
}

// ---- live connection ------------------------------------------------------------

function setConnection(state, text) {
  connectionEl.dataset.state = state;
  connectionEl.textContent = text;
}

// Messages are applied in batches, once per frame: a burst of results costs
// one layout, not one per result.
let inbox = [];
let flushScheduled = false;

function receive(message) {
  inbox.push(message);
  if (flushScheduled) return;
  flushScheduled = true;
  requestAnimationFrame(flush);
  setTimeout(flush, 100); // a hidden tab gets no animation frames
}

function flush() {
  if (!flushScheduled) return;
  flushScheduled = false;
  const batch = inbox;
  inbox = [];
  const started = performance.now();
  let focusChanged = false;
  for (const message of batch) {
    if (message.type === "hello") {
      debug.hellos.push({ offset: message.offset, resumed: message.resumed, jobs: message.jobs.length, at: now() });
      for (const job of message.jobs) upsert(job, { via: message.resumed ? "resume" : "history" });
      lastOffset = Math.max(lastOffset ?? -1, message.offset);
      retries = 0;
      setConnection("live", "live");
      focusChanged = true;
    } else if (message.type === "job") {
      upsert(message.job, { via: "push", offset: message.offset, receivedAt: message.received_at });
      lastOffset = Math.max(lastOffset ?? -1, message.offset);
      focusChanged ||= Boolean(message.job && message.job.job_id === focusJob);
    }
  }
  render();
  applyFilter();
  if (focusJob && focusChanged) showFocus();
  debug.handled += batch.length;
  debug.handleMs += performance.now() - started;
}

function connect() {
  clearTimeout(retryTimer);
  retryTimer = null;
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  if (lastOffset !== null) url.searchParams.set("since", String(lastOffset));
  debug.connections.push({ since: lastOffset, at: now() });
  const ws = new WebSocket(url);
  socket = ws;
  ws.onmessage = (event) => {
    if (socket !== ws) return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    receive(message);
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    socket = null;
    scheduleReconnect();
  };
}

function scheduleReconnect() {
  const delay = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** retries) * (0.75 + Math.random() * 0.5);
  retries += 1;
  setConnection("reconnecting", `reconnecting in ${(delay / 1000).toFixed(1)} s…`);
  retryTimer = setTimeout(connect, delay);
}

function reconnectNow() {
  if (socket === null) connect();
}

// ---- one result (?job=ID) -----------------------------------------------------------

let focusFetched = false;

async function showFocus() {
  const banner = $("focus");
  banner.hidden = false;
  const entry = entries.get(focusJob);
  if (entry) {
    $("focus-text").textContent = `Job ${focusJob} · ${entry.job.status}`;
    return;
  }
  $("focus-text").textContent = `Waiting for job ${focusJob}…`;
  if (focusFetched) return;
  focusFetched = true; // older than the history a page gets? ask for it once
  try {
    const response = await fetch(`/api/jobs/${focusJob}`, { cache: "no-store" });
    if (response.ok) {
      upsert(await response.json(), { via: "fetch" });
      render();
      applyFilter();
      showFocus();
    } else if (!entries.has(focusJob)) {
      $("focus-text").textContent = `Job ${focusJob} is not known to this viewer (yet); it appears here when it arrives.`;
    }
  } catch {
    /* the WebSocket will bring it if it comes */
  }
}

// ---- live figures in the header ---------------------------------------------------------

function tick() {
  const since = Date.now() - 60000;
  let finishedLastMinute = 0;
  for (const { job } of entries.values()) {
    if (FINAL.has(job.status) && parseTime(job.finished_at) >= since) finishedLastMinute += 1;
  }
  $("rate").textContent = String(finishedLastMinute);
  $("push").textContent = formatMs(median(pushSamples));
  $("e2e").textContent = formatMs(median(e2eSamples));
}

// ---- wiring --------------------------------------------------------------------------

for (const button of document.querySelectorAll("[data-filter]")) {
  button.addEventListener("click", () => {
    filter.status = button.dataset.filter;
    for (const other of document.querySelectorAll("[data-filter]")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
    applyFilter();
  });
}
searchEl.addEventListener("input", () => {
  filter.text = searchEl.value.trim().toLowerCase();
  applyFilter();
});
$("zoom-close").addEventListener("click", () => $("zoom").close());
$("zoom").addEventListener("click", (event) => {
  if (event.target === $("zoom")) $("zoom").close(); // a click on the backdrop
});
window.addEventListener("online", reconnectNow);
document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && reconnectNow());

window.plotfarmViewer = Object.freeze({
  arrivals: (jobId) => structuredClone(debug.arrivals.get(jobId) || []),
  connections: () => structuredClone(debug.connections),
  hellos: () => structuredClone(debug.hellos),
  cardCount: (jobId) => document.querySelectorAll(`.card[data-job-id="${jobId.replace(/[^0-9a-f]/g, "")}"]`).length,
  lastOffset: () => lastOffset,
  handling: () => ({ messages: debug.handled, ms: debug.handleMs }),
});

if (focusJob) document.body.classList.add("focus-mode");
applyFilter();
tick();
setInterval(tick, 1000);
connect();
