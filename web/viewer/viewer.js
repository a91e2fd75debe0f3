// The live results page. Results are untrusted: SVGs are shown only as
// <img> from blob: URLs (scripts in an SVG image never run), and every piece
// of text goes in with textContent, never as HTML.

const jobsEl = document.getElementById("jobs");
const emptyEl = document.getElementById("empty");
const connectionEl = document.getElementById("connection");
const cards = new Map(); // job_id -> {el, status}
const focusJob = new URLSearchParams(location.search).get("job");
let lastOffset = null;
let retryDelay = 500;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function firstLine(code) {
  const lines = (code || "").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("import ") && !l.startsWith("from "));
  return lines[0] || (code || "").split("\n")[0] || "";
}

function svgImage(svg, alt) {
  const url = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
  const img = el("img", { src: url, alt });
  img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
  return img;
}

function renderCard(job) {
  const card = el("article", { className: "card", id: `job-${job.job_id}` });
  card.dataset.jobId = job.job_id;
  const title = (job.figures && job.figures.length ? "" : "") + firstLine(job.code);
  card.append(el("div", { className: "meta" },
    el("span", { className: "status", textContent: job.status, dataset: { status: job.status } }),
    el("span", { textContent: job.job_id.slice(0, 8) }),
    job.renderer_id ? el("span", { textContent: `on ${job.renderer_id}` }) : null,
  ));
  card.append(el("div", { className: "title", textContent: title, title: job.code || "" }));
  for (const figure of job.figures || []) card.append(svgImage(figure.svg, `figure ${figure.index + 1} of job ${job.job_id}`));
  if (job.timings) {
    const t = job.timings;
    card.append(el("div", { className: "meta", textContent: `queued ${t.queued_ms} ms · run ${t.run_ms} ms · svg ${t.svg_ms} ms · total ${t.total_ms} ms` }));
  }
  if (job.error) {
    card.append(el("div", { className: "error", textContent: `${job.error.type}: ${job.error.message}` }));
    if (job.error.traceback) card.append(el("pre", { textContent: job.error.traceback }));
  }
  if (job.stdout) card.append(el("pre", { textContent: job.stdout }));
  if (job.job_id === focusJob) card.classList.add("highlight");
  return card;
}

function upsert(job) {
  const existing = cards.get(job.job_id);
  const card = renderCard(job);
  if (existing) existing.replaceWith(card);
  else jobsEl.prepend(card);
  cards.set(job.job_id, card);
  emptyEl.hidden = cards.size > 0;
}

function setConnection(state, text) {
  connectionEl.dataset.state = state;
  connectionEl.textContent = text;
}

function connect() {
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (lastOffset !== null) url.searchParams.set("since", lastOffset);
  const ws = new WebSocket(url);
  ws.onopen = () => {
    retryDelay = 500;
    setConnection("live", "live");
  };
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "hello") {
      for (const job of message.jobs) upsert(job);
      lastOffset = message.offset;
    } else if (message.type === "job") {
      upsert(message.job);
      lastOffset = Math.max(lastOffset ?? -1, message.offset);
    }
  };
  ws.onclose = () => {
    setConnection("reconnecting", "reconnecting…");
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 10000);
  };
}

emptyEl.hidden = false;
connect();
