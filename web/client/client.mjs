// The client-side page: runs the user's code in Pyodide in a Web Worker in
// this tab, through the same runtime the renderers use (web/runtime/interpreter.mjs),
// shows the figures with plotly.js (interactive: zoom, pan, hover), and can
// send the same code to the plotfarm gateway to compare with the server's SVG.
// Files the user chooses or drops on the page go with both runs: in the local
// interpreter's working directory, and in the job sent to the server.
//
// Output is treated as untrusted text: stdout, stderr, errors and tracebacks go
// in with textContent, the server's SVGs only as <img> from blob: URLs. The
// page's CSP has Trusted Types on, so no HTML-from-string sink works anyway.

import { configure, prepareFigure } from "../runtime/fidelity.mjs";
import { Interpreter } from "../runtime/interpreter.mjs";
import { forgetSnapshot, hasSavedSnapshot } from "../runtime/snapshot-cache.mjs";
import { ERROR, FINAL_STATUSES, STATUS } from "../runtime/vocabulary.mjs";

// Trusted Types (required by the page's CSP) turn every string-to-code and
// string-to-HTML sink into an error unless a policy lets the value through.
// This page has one policy, the default one, and it lets through only:
// - same-origin script URLs: the runtime's `new Worker(url)` (our assets);
// - HTML without a "<": plotly.js decodes entities in text with
//   `div.html("&eacute;").text()` and writes "&times;" on its notifier's close
//   button; MathJax fills its <style> elements with innerHTML. Without a "<"
//   the parser makes text nodes only: no element, no attribute, no handler.
if (window.trustedTypes && window.trustedTypes.createPolicy) {
  window.trustedTypes.createPolicy("default", {
    createScriptURL(url) {
      const parsed = new URL(url, location.href);
      return parsed.origin === location.origin ? parsed.href : null;
    },
    createHTML(html) {
      return html.includes("<") ? null : html;
    },
  });
}

const $ = (id) => document.getElementById(id);
const config = JSON.parse($("plotfarm-config").textContent);
const editor = $("code"); // the plain textarea: the editor until CodeMirror has loaded, or if it cannot
const FINAL = new Set(FINAL_STATUSES);
const INDENT = "    ";

const assetBase = new URL("../", import.meta.url).href;
const interpreter = new Interpreter({ assetBase });
// This browser's interpreter snapshot (runtime/snapshot-cache.mjs): a worker
// restores from the stored one if there is one for this build; if not, this
// page makes one after its first start and stores it.
let snapshotState = "none"; // none | restoring | restored | making | saved | failed: why
const snapshotSaved = hasSavedSnapshot(assetBase).catch(() => false);
let engine = "starting"; // starting | ready | running | restarting | failed
let stopRequested = false;
let serverBusy = false;
let serverUrls = [];
const history = { inits: [], runs: [], server: [] };

// plotly.js is 3.5 MB to parse and run on this page's thread. index.html
// preloads it (fetched at once); runPlotly runs it: on a first visit as soon
// as the starting interpreter's worker runs (its start needs this thread, and
// waited behind the parsing for 1.5 s), and once Python is ready on a repeat
// visit, where the restored interpreter's "ready" would otherwise wait behind
// the parsing. The first run that draws awaits plotlyReady.
let runPlotly;
const plotlyReady = new Promise((resolve, reject) => {
  let started = false;
  runPlotly = () => {
    if (started) return;
    started = true;
    const script = el("script", { src: document.getElementById("plotly-js").href });
    const settle = () => (window.Plotly ? resolve(window.Plotly) : reject(new Error("plotly.js did not load")));
    script.addEventListener("load", settle, { once: true });
    script.addEventListener("error", settle, { once: true });
    document.head.append(script);
  };
});
let plotlyAt = null;
plotlyReady.then(() => (plotlyAt = performance.now()), () => {});
plotlyReady.then((Plotly) => configure(Plotly, new URL("../", import.meta.url)), () => {}); // errors: start() reports them

// ---- small helpers ---------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value !== undefined && value !== null) node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function formatMs(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "–";
  if (ms >= 10000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Math.round(ms)} ms`;
}

function setEngine(state, text) {
  engine = state;
  $("engine").dataset.state = state;
  $("engine").textContent = text;
  $("run").disabled = state !== "ready";
  $("stop").disabled = state !== "running";
}

function showOutput(side, result) {
  for (const name of ["stdout", "stderr"]) {
    const box = $(`${side}-${name}`);
    const text = result ? result[name] || "" : "";
    box.querySelector("pre").textContent = text;
    box.hidden = !text;
  }
  const error = result && result.error;
  const message = $(`${side}-error`);
  message.replaceChildren();
  message.hidden = !error;
  if (error) message.append(el("strong", { textContent: error.type }), document.createTextNode(`: ${error.message}`));
  const traceback = $(`${side}-traceback`);
  traceback.querySelector("pre").textContent = (error && error.traceback) || "";
  traceback.hidden = !(error && error.traceback);
  traceback.open = Boolean(error && error.traceback);
}

// ---- the interpreter -----------------------------------------------------------------

function start(reason) {
  // On the first visit "initialisation" counts from navigation start: what a
  // visitor waits for. After Stop it counts from the new worker's start.
  const started = reason === "page" ? 0 : performance.now();
  setEngine(reason === "page" ? "starting" : "restarting", reason === "page" ? "starting Python…" : "starting a fresh interpreter…");
  // Ready when Python is: plotly.js (still being parsed on a repeat visit,
  // where Python comes back sooner) is awaited by the first run that draws.
  return startInterpreter().then(
    (timings) => {
      const initMs = performance.now() - started;
      history.inits.push({ reason, initMs, ...timings });
      $("metric-init").textContent = formatMs(initMs);
      const how = timings.restored
        ? `restored from this browser's saved interpreter in ${formatMs(timings.total_ms)}`
        : `Pyodide ${formatMs(timings.pyodide_ms)} · packages ${formatMs(timings.packages_ms)} · ` +
          `import plotly ${formatMs(timings.import_ms)}`;
      $("init-detail").textContent =
        `${reason === "page" ? "page load to ready" : "fresh interpreter after Stop"}: ${how}` +
        (timings.interruptible ? "" : " · not cross-origin isolated: time limits terminate instead of interrupting");
      setEngine("ready", "Python ready");
      runPlotly();
      if (snapshotState === "none") setTimeout(makeSnapshot, SNAPSHOT_DELAY_MS);
    },
    (error) => {
      runPlotly();
      history.inits.push({ reason, error: String(error.message || error) });
      setEngine("failed", "Python failed to start");
      showOutput("local", { error: { type: ERROR.START_ERROR, message: String(error.message || error), traceback: "" } });
    },
  );
}

/** A fresh interpreter: restored from the snapshot when there is one, else started from scratch. */
async function startInterpreter() {
  if (["saved", "restored"].includes(snapshotState) || (snapshotState === "none" && (await snapshotSaved))) {
    snapshotState = "restoring";
    try {
      const timings = await interpreter.start({ restoreSaved: true });
      snapshotState = "restored";
      return { ...timings, restored: true };
    } catch (error) {
      // Gone, or one this browser cannot restore: forget it, start from scratch, and make a new one.
      snapshotState = "none"; // the start below runs plotly.js once its worker runs
      if (!error.noSavedSnapshot) {
        forgetSnapshot(assetBase).catch(() => {});
        console.warn(`the saved interpreter did not restore, starting from scratch instead: ${error.message}`);
      }
    }
  }
  return { ...(await interpreter.start({ onStarted: runPlotly })), restored: false };
}

// After the first start, once the page has settled: the snapshot is made in a
// worker of its own (a few seconds of one core), then stored for next time.
const SNAPSHOT_DELAY_MS = 1500;

async function makeSnapshot() {
  snapshotState = "making";
  const maker = new Interpreter({ assetBase });
  try {
    await maker.start({ makeSnapshot: { preload: false, shared: false, save: true } });
    snapshotState = "saved";
  } catch (error) {
    snapshotState = `failed: ${error.message}`;
  } finally {
    maker.terminate();
  }
}

function clearPlots() {
  for (const plot of $("local-plots").querySelectorAll(".plot")) window.Plotly.purge(plot);
  $("local-plots").replaceChildren();
}

// MathJax (3, our own copy) is big: loaded the first time a figure has "$...$" text.
let mathJaxReady = null;

function hasLatex(figure) {
  return /"\$[^"]*\$"/.test(JSON.stringify(figure));
}

function loadMathJax() {
  if (!mathJaxReady) {
    mathJaxReady = new Promise((resolve, reject) => {
      const configScript = el("script", { src: new URL("../runtime/mathjax-config.js", import.meta.url).href });
      configScript.addEventListener("load", () => {
        const script = el("script", { src: new URL("../mathjax/startup.js", import.meta.url).href });
        script.addEventListener("load", () => window.plotfarmMathJax.then(resolve, reject));
        script.addEventListener("error", () => reject(new Error("MathJax did not load")));
        document.head.append(script);
      });
      document.head.append(configScript);
    });
  }
  return mathJaxReady;
}

/** Draw the figures; resolves with the warnings about what came out differently. */
async function showFigures(figures) {
  const Plotly = await plotlyReady;
  const warnings = [];
  if (figures.some(hasLatex)) await loadMathJax();
  for (const [n, shown] of figures.entries()) {
    const { figure, warnings: about } = prepareFigure(shown, n + 1, { exportsSvg: false });
    warnings.push(...about);
    const plot = el("div", { className: "plot", ariaLabel: `figure ${n + 1} of ${figures.length}` });
    $("local-plots").append(plot);
    await Plotly.newPlot(plot, {
      data: figure.data || [],
      layout: figure.layout || {},
      frames: figure.frames || [],
      config: { responsive: true, displaylogo: false },
    });
    const download = el("button", { type: "button", className: "download-png", textContent: figures.length > 1 ? `download PNG ${n + 1}` : "download PNG" });
    download.addEventListener("click", () => Plotly.downloadImage(plot, { format: "png", filename: `plotfarm-figure-${n + 1}` }));
    $("local-plots").append(download);
  }
  return warnings;
}

async function runLocal() {
  if (engine !== "ready") return;
  const code = codeText();
  const fileNames = [...inputFiles.keys()];
  const started = performance.now();
  stopRequested = false;
  setEngine("running", "running…");
  clearPlots();
  showOutput("local", null);
  $("metric-load").textContent = "…";
  $("metric-exec").textContent = "…";
  $("metric-total").textContent = "…";
  $("local-state").textContent = "running… (the first run that imports numpy or pandas loads them)";
  const { output, timings, packages, timedOut, terminated } = await interpreter.run(code, {
    timeoutMs: config.timeoutMs,
    graceMs: config.graceMs,
    limits: config.limits,
    files: localFiles(),
  });
  const stopped = stopRequested;
  const { load_ms: loadMs, run_ms: runMs } = timings;
  let error = output.error;
  if (stopped) {
    error = { type: "Stopped", message: "you stopped the run; its interpreter was terminated and a fresh one is starting", traceback: "" };
  }
  const execAt = performance.now();
  let warnings = [];
  if (!error) {
    try {
      warnings = [...output.warnings, ...(await showFigures(output.figures))];
    } catch (err) {
      clearPlots();
      error = { type: ERROR.PLOTLY_ERROR, message: String(err.message || err), traceback: "" };
    }
  }
  showOutput("local", { ...output, error });
  const totalMs = performance.now() - started;
  $("metric-load").textContent = packages.length ? formatMs(loadMs) : "–";
  $("metric-load").title = packages.length ? `loaded ${packages.join(", ")}` : "nothing to load";
  $("metric-exec").textContent = stopped ? "stopped" : formatMs(runMs);
  $("metric-total").textContent = formatMs(totalMs);
  const count = error ? 0 : output.figures.length;
  const loadedNote = packages.length ? ` · loaded ${packages.join(", ")} in ${formatMs(loadMs)}` : "";
  $("local-state").textContent = error
    ? `${stopped ? "stopped" : "failed"} after ${formatMs(execAt - started)}${loadedNote}`
    : `${count} figure${count === 1 ? "" : "s"}${loadedNote} · drag to zoom, double-click to reset, hover for values` +
      warnings.map((warning) => ` · ${warning}`).join("");
  history.runs.push({ runMs, loadMs, packages, warnings, totalMs, timedOut, terminated, stopped, figures: count, files: fileNames, error: error ? error.type : null });
  if (terminated) await start("restart");
  else setEngine("ready", "Python ready");
}

function stop() {
  if (engine !== "running") return;
  stopRequested = true;
  interpreter.terminate(); // the pending run answers "terminated"; runLocal starts a fresh worker
}

// ---- the same code on the server -------------------------------------------------------

// A gateway with API keys on (PLOTFARM_API_KEYS) answers 401 without one:
// then the page asks for a key and sends it, kept only in this tab's memory.
function apiHeaders(extra = {}) {
  const key = $("api-key").value.trim();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function requestJson(url, options = {}) {
  const response = await fetch(url, { cache: "no-store", ...options, headers: apiHeaders(options.headers) });
  if (response.status === 401) {
    $("api-key-field").hidden = false;
    $("api-key").focus();
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = { error: `HTTP ${response.status}` };
  }
  return { status: response.status, body };
}

function setServerTimings(timings, roundTripMs) {
  const t = timings || {};
  $("server-queued").textContent = formatMs(t.queued_ms);
  $("server-run").textContent = formatMs(t.run_ms);
  $("server-svg").textContent = formatMs(t.svg_ms);
  $("server-total").textContent = formatMs(t.total_ms);
  $("server-roundtrip").textContent = formatMs(roundTripMs);
}

function clearServer() {
  for (const url of serverUrls) URL.revokeObjectURL(url);
  serverUrls = [];
  $("server-plots").replaceChildren();
  $("server-detail").replaceChildren();
  showOutput("server", null);
  setServerTimings(null, null);
}

function safeHttpUrl(text) {
  try {
    const url = new URL(text, location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

async function runServer() {
  if (serverBusy) return;
  serverBusy = true;
  $("run-server").disabled = true;
  clearServer();
  const started = performance.now();
  const state = $("server-state");
  const fileNames = [...inputFiles.keys()];
  try {
    state.textContent = inputFiles.size ? `sending the code and ${plural(inputFiles.size, "file")}…` : "submitting…";
    const accepted = await requestJson("/api/jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: codeText(), ...(inputFiles.size ? { files: serverFiles() } : {}) }),
    });
    if (accepted.status !== 202) throw new Error(accepted.body.error || `the gateway answered ${accepted.status}`);
    const jobId = accepted.body.job_id;
    let job = { status: STATUS.QUEUED };
    while (!FINAL.has(job.status)) {
      state.textContent = `${job.status}…`;
      const answer = await requestJson(`/api/jobs/${encodeURIComponent(jobId)}?wait=${config.serverWaitS}&include=svg`);
      if (answer.status !== 200) throw new Error(answer.body.error || `the gateway answered ${answer.status}`);
      job = answer.body;
    }
    const roundTripMs = performance.now() - started;
    setServerTimings(job.timings, roundTripMs);
    for (const [n, figure] of (job.figures || []).entries()) {
      const url = URL.createObjectURL(new Blob([figure.svg], { type: "image/svg+xml" }));
      serverUrls.push(url);
      $("server-plots").append(el("img", { src: url, alt: `server figure ${n + 1}`, className: "svg" }));
    }
    showOutput("server", job);
    const count = (job.figures || []).length;
    state.textContent = job.status === STATUS.DONE ? `${count} SVG${count === 1 ? "" : "s"} from ${job.renderer_id}` : `failed on ${job.renderer_id || "the server"}`;
    const viewer = safeHttpUrl(job.viewer_url);
    $("server-detail").append(
      document.createTextNode(`job ${job.job_id.slice(0, 12)} · `),
      viewer ? el("a", { href: viewer, textContent: "open in the viewer", rel: "noreferrer", target: "_blank" }) : null,
    );
    history.server.push({ jobId, status: job.status, roundTripMs, timings: job.timings, figures: count, files: fileNames });
  } catch (err) {
    state.textContent = "not rendered";
    showOutput("server", { error: { type: ERROR.GATEWAY_ERROR, message: String(err.message || err), traceback: "" } });
    history.server.push({ error: String(err.message || err) });
  } finally {
    serverBusy = false;
    $("run-server").disabled = false;
  }
}

// ---- the code editor: CodeMirror, or the textarea if it did not load ----------------------

// CodeMirror 6 (editor.mjs, its packages through the page's import map) replaces the
// textarea once loaded. Imported dynamically, once the interpreter's start is under way,
// so a failure to load leaves a page that works: the textarea below stays, with Tab,
// Shift+Tab and Python's indentation, and the run keys.
let codeEditor = null;
let editorState = "loading"; // loading | ready | failed: why
let editorAt = null; // ms after navigation when it was ready

function codeText() {
  return codeEditor ? codeEditor.get() : editor.value;
}

function setCode(text) {
  if (codeEditor) codeEditor.set(text);
  else editor.value = text;
}

async function loadEditor() {
  try {
    const { createEditor } = await import("./editor.mjs");
    const focused = document.activeElement === editor;
    codeEditor = createEditor($("editor"), { doc: editor.value, onRun: runLocal, label: "Python code" });
    $("editor").hidden = false;
    editor.hidden = true;
    if (focused) codeEditor.focus();
    editorState = "ready";
    editorAt = performance.now();
  } catch (error) {
    codeEditor = null;
    editorState = `failed: ${error.message || error}`;
    console.warn(`the code editor did not load; the plain text box stays: ${error.message || error}`);
  }
}

// The textarea's own editing: Tab, Shift+Tab and Python's indentation.

function replaceRange(start, end, text, select = false) {
  editor.focus();
  editor.setSelectionRange(start, end);
  // insertText keeps the browser's undo history; setRangeText is the fallback.
  if (!document.execCommand("insertText", false, text)) editor.setRangeText(text, start, end, "end");
  if (select) editor.setSelectionRange(start, start + text.length);
}

function selectedLines() {
  const value = editor.value;
  const start = value.lastIndexOf("\n", editor.selectionStart - 1) + 1;
  let end = value.indexOf("\n", Math.max(editor.selectionEnd - 1, editor.selectionStart));
  if (end === -1) end = value.length;
  return { start, end, lines: value.slice(start, end).split("\n") };
}

function indent() {
  if (!editor.value.slice(editor.selectionStart, editor.selectionEnd).includes("\n")) {
    replaceRange(editor.selectionStart, editor.selectionEnd, INDENT);
    return;
  }
  const { start, end, lines } = selectedLines();
  replaceRange(start, end, lines.map((line) => INDENT + line).join("\n"), true);
}

function dedent() {
  const { start, end, lines } = selectedLines();
  const caret = editor.selectionStart;
  const single = editor.selectionStart === editor.selectionEnd;
  const dedented = lines.map((line) => line.replace(/^ {1,4}|^\t/, ""));
  const text = dedented.join("\n");
  if (text === lines.join("\n")) return;
  replaceRange(start, end, text, !single);
  if (single) {
    const removed = lines[0].length - dedented[0].length;
    editor.setSelectionRange(Math.max(start, caret - removed), Math.max(start, caret - removed));
  }
}

function newline() {
  const value = editor.value;
  const lineStart = value.lastIndexOf("\n", editor.selectionStart - 1) + 1;
  const before = value.slice(lineStart, editor.selectionStart);
  let indentation = before.match(/^[ \t]*/)[0];
  if (/:\s*(#.*)?$/.test(before)) indentation += INDENT;
  replaceRange(editor.selectionStart, editor.selectionEnd, `\n${indentation}`);
}

let escaped = false;
editor.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "Enter") return; // the document handler runs it
  if (event.key === "Escape") {
    escaped = true; // Esc, then Tab: leave the editor (keyboard users must not be trapped)
    return;
  }
  const plain = !event.ctrlKey && !event.metaKey && !event.altKey;
  if (event.key === "Tab" && plain && !escaped) {
    event.preventDefault();
    if (event.shiftKey) dedent();
    else indent();
  } else if (event.key === "Enter" && plain && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    newline();
  }
  escaped = false;
});

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented) return; // CodeMirror ran it already (its Mod-Enter binding)
  if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
    event.preventDefault();
    runLocal();
  }
});

// ---- input files: chosen or dropped, for both runs ----------------------------------------

// name -> bytes, in the order added. The local run gets copies (its worker may take
// what it is given); the server run gets them as base64 in the job's JSON.
const inputFiles = new Map();
// The gateway's limits for a job's input (POST /api/jobs), given in the page's config:
// the page refuses what the gateway would, before either run, so both see the same files.
const inputLimits = config.inputs || null;
const fileNamePattern = (() => {
  try {
    return inputLimits ? new RegExp(inputLimits.namePattern, "u") : null;
  } catch {
    return null; // a pattern JavaScript cannot read: the gateway still checks names
  }
})();
const utf8 = new TextEncoder();

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function formatBytes(bytes) {
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(bytes >= 1e7 ? 0 : 1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(bytes >= 1e4 ? 0 : 1)} kB`;
  return `${bytes} B`;
}

function inputBytes(files = inputFiles) {
  let total = 0;
  for (const bytes of files.values()) total += bytes.length;
  return total;
}

/** Why a file name is refused (the gateway's rules), or null. */
function badFileName(name) {
  if (!inputLimits) return null;
  if (utf8.encode(name).length > inputLimits.maxNameBytes) return `its name is longer than ${inputLimits.maxNameBytes} bytes`;
  if (fileNamePattern && !fileNamePattern.test(name)) {
    return "a file name must be one plain name: no “/” or “\\”, no control characters, not only dots";
  }
  return null;
}

function showFilesMessage(lines) {
  const message = $("files-message");
  message.replaceChildren(...lines.flatMap((line, n) => (n ? [el("br"), line] : [line])));
  message.hidden = lines.length === 0;
}

/** Add chosen or dropped files, refusing (with the reason, and the limit by name) what the gateway would refuse. */
async function addFiles(list, refusedEarlier = []) {
  const problems = [...refusedEarlier];
  const added = [];
  // What the job would hold: the files kept so far, and these as they pass the checks.
  const sizes = new Map([...inputFiles].map(([name, bytes]) => [name, bytes.length]));
  const accepted = [];
  for (const file of list) {
    const why = badFileName(file.name);
    if (why) {
      problems.push(`“${file.name}” was not added: ${why}.`);
      continue;
    }
    const next = new Map(sizes).set(file.name, file.size);
    if (inputLimits && next.size > inputLimits.maxFiles) {
      problems.push(`“${file.name}” was not added: a job takes at most ${plural(inputLimits.maxFiles, "file")} (PLOTFARM_MAX_INPUT_FILES).`);
      continue;
    }
    const total = [...next.values()].reduce((a, b) => a + b, 0);
    if (inputLimits && total > inputLimits.maxBytes) {
      problems.push(
        `“${file.name}” (${formatBytes(file.size)}) was not added: a job's files may hold ` +
          `${formatBytes(inputLimits.maxBytes)} in all (${inputLimits.maxBytes} bytes, PLOTFARM_MAX_INPUT_BYTES); ` +
          `with it they would hold ${formatBytes(total)}.`,
      );
      continue;
    }
    sizes.set(file.name, file.size);
    accepted.push(file);
  }
  for (const file of accepted) {
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      if (inputFiles.has(file.name)) problems.push(`“${file.name}” replaced the file of that name.`);
      inputFiles.set(file.name, bytes);
      added.push(file.name);
    } catch (error) {
      problems.push(`“${file.name}” could not be read: ${error.message || error}`);
    }
  }
  showFilesMessage(problems);
  renderFiles();
  return added;
}

function removeFile(name) {
  inputFiles.delete(name);
  showFilesMessage([]);
  renderFiles();
}

function renderFiles() {
  const list = $("file-list");
  list.replaceChildren(
    ...[...inputFiles].map(([name, bytes]) => {
      const remove = el("button", { type: "button", className: "remove-file", textContent: "remove", ariaLabel: `remove ${name}` });
      remove.addEventListener("click", () => removeFile(name));
      return el(
        "li",
        { className: "file" },
        el("code", { className: "file-name", textContent: name }),
        el("span", { className: "file-size", textContent: formatBytes(bytes.length) }),
        remove,
      );
    }),
  );
  const total = inputBytes();
  $("clear-files").hidden = inputFiles.size < 2;
  $("files-total").textContent = inputFiles.size
    ? `${plural(inputFiles.size, "file")}, ${formatBytes(total)}` + (inputLimits ? ` of ${formatBytes(inputLimits.maxBytes)}` : "")
    : "";
}

/** For the local run: name -> a copy of the bytes (undefined when there are none). */
function localFiles() {
  if (!inputFiles.size) return undefined;
  return Object.fromEntries([...inputFiles].map(([name, bytes]) => [name, bytes.slice()]));
}

function toBase64(bytes) {
  if (typeof bytes.toBase64 === "function") return bytes.toBase64();
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** For the server run: name -> {base64}, as POST /api/jobs takes them. */
function serverFiles() {
  return Object.fromEntries([...inputFiles].map(([name, bytes]) => [name, { base64: toBase64(bytes) }]));
}

$("clear-files").addEventListener("click", () => {
  inputFiles.clear();
  showFilesMessage([]);
  renderFiles();
});

$("file-input").addEventListener("change", async (event) => {
  const input = event.target;
  await addFiles([...input.files]);
  input.value = ""; // choosing the same file again (changed on disk) fires "change" again
});

// Files dropped anywhere on the page, the editor included: captured before CodeMirror,
// which would paste a dropped file's text into the code. Text dragged inside the editor
// (no files) is left alone.
function draggingFiles(event) {
  return Boolean(event.dataTransfer && [...event.dataTransfer.types].includes("Files"));
}
let dragDepth = 0;
document.addEventListener(
  "dragenter",
  (event) => {
    if (!draggingFiles(event)) return;
    dragDepth += 1;
    document.body.classList.add("dropping");
  },
  true,
);
document.addEventListener(
  "dragleave",
  (event) => {
    if (!draggingFiles(event)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) document.body.classList.remove("dropping");
  },
  true,
);
document.addEventListener(
  "dragover",
  (event) => {
    if (!draggingFiles(event)) return;
    event.preventDefault(); // allows the drop
    event.stopPropagation();
    event.dataTransfer.dropEffect = "copy";
  },
  true,
);
document.addEventListener(
  "drop",
  (event) => {
    if (!draggingFiles(event)) return;
    event.preventDefault(); // not opened by the browser, not pasted into the editor
    event.stopPropagation();
    dragDepth = 0;
    document.body.classList.remove("dropping");
    const files = [];
    const refused = [];
    const items = [...(event.dataTransfer.items || [])].filter((item) => item.kind === "file");
    for (const [n, file] of [...event.dataTransfer.files].entries()) {
      const entry = items[n] && items[n].webkitGetAsEntry ? items[n].webkitGetAsEntry() : null;
      if (entry && entry.isDirectory) refused.push(`“${file.name}” was not added: it is a folder; drop the files inside it.`);
      else files.push(file);
    }
    addFiles(files, refused);
  },
  true,
);

// ---- examples and wiring ---------------------------------------------------------------

const examples = new Map(config.examples.map((example) => [example.id, example]));
for (const example of config.examples) {
  $("examples").append(el("option", { value: example.id, textContent: example.label }));
}
$("examples").addEventListener("change", () => {
  const example = examples.get($("examples").value);
  if (example) setCode(example.code);
});
setCode(config.examples[0].code);
$("examples").value = config.examples[0].id;

$("run").addEventListener("click", runLocal);
$("stop").addEventListener("click", stop);
$("run-server").addEventListener("click", runServer);
const viewerUrl = safeHttpUrl(config.viewerUrl);
if (viewerUrl) $("viewer-link").href = viewerUrl;
else $("viewer-link").hidden = true;

window.plotfarmClient = Object.freeze({
  state: () => engine,
  inits: () => structuredClone(history.inits),
  runs: () => structuredClone(history.runs),
  server: () => structuredClone(history.server),
  snapshot: () => snapshotState,
  plotlyReadyAt: () => plotlyAt, // ms after navigation; null until plotly.js has run
  editor: () => editorState,
  editorReadyAt: () => editorAt, // ms after navigation; null until CodeMirror has replaced the text box
  code: () => codeText(),
  files: () => [...inputFiles].map(([name, bytes]) => ({ name, size: bytes.length })),
});

start("page");
loadEditor();
