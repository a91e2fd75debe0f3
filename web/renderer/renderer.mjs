// The renderer's headless page: a pool of Pyodide interpreters, each in its
// own Web Worker, driven by services/renderer through `window.plotfarm`
// (Playwright's page.evaluate). This page's own thread only turns figures
// into SVG; user code never runs here.
//
// Starting CPython and importing plotly takes seconds, so the page does it
// once to make a *snapshot* (a memory snapshot, see runtime/interpreter-worker.mjs) and
// restores every interpreter from it in well under a second. How interpreters
// are reused depends on the isolation setting:
//   job    - every job gets an interpreter no other job has touched; it is
//            discarded afterwards (the default);
//   tenant - an interpreter is reused only for jobs of the same tenant;
//            anonymous jobs behave as in `job`;
//   none   - interpreters are reused by any job (trusted batch use).
// A pool of fresh interpreters is kept ready and refilled in the background.
//
// A page runs one job at a time (the renderer service opens one page per job
// it runs at once, services/renderer/pages.py), in two steps it times apart:
// run(job) runs the code; exportFigures(jobId) draws the figures on this
// page's thread, where a figure that takes too long can only be stopped by
// closing the page, which then holds no other job. What a job can leave on
// the page's side is scoped to it: MathJax gets a fresh TeX input after any
// job that typeset (mathjax-scope.mjs).
//
// A figure job (figures in, no code) skips the interpreters altogether:
// drawFigures(job) bounds its figures as a worker's answer is bounded and
// draws them as exportFigures does. A PDF is printed by the service from the
// sanitised SVG, shown alone on this page meanwhile (printSvg, endPrint).

import { Interpreter } from "../runtime/interpreter.mjs";
import { RASTER_FORMATS, exportFigure, loadSvg } from "../runtime/export.mjs";
import { boundedOutput } from "../runtime/bounds.mjs";
import { failedRun } from "../runtime/contract.mjs";
import { configure, prepareFigure } from "../runtime/fidelity.mjs";
import { storableSnapshot } from "../runtime/stored-snapshot.mjs";
import { ERROR, SPOILING_ERRORS } from "../runtime/vocabulary.mjs";
import { scopeMathJax } from "../runtime/mathjax-scope.mjs";

const assetBase = new URL("../", import.meta.url).href;
// {isolation, spares, parallelRestores, heapLimitBytes, fonts}: from the renderer's
// Settings (services/renderer/page.py), given to start(); no defaults here.
let config = null;
let mathJax = null; // scopeMathJax's handle, once MathJax is ready
let ran = null; // the job run() ran, until exportFigures() draws it
let snapshot = null;
const fresh = []; // restored from the snapshot, never used
const waiting = []; // jobs waiting for a fresh interpreter
const reusable = new Map(); // isolation key -> idle used interpreters, oldest first
let restoring = 0;
// restorePhases: the last (up to 200) restores, phase by phase (interpreter-worker.mjs,
// restoreInterpreter) plus pool_ms, new Worker -> ready as this pool saw it.
const stats = { restores: 0, restoreFailures: 0, restorePhases: [], discarded: 0, reused: 0, snapshotMs: 0 };

// The snapshot the renderer kept on disk from an earlier start, when the
// service found one for this build (services/renderer/stored_snapshot.py):
// `?stored=KEY` in this page's URL.
const storedKey = new URLSearchParams(location.search).get("stored");
const stored = storedKey ? { index: `snapshots/${storedKey}/snapshot.json`, data: `snapshots/${storedKey}/snapshot.bin` } : null;
// The cap on every job's interpreter memory (PLOTFARM_INTERPRETER_MAX_HEAP_MB), also in the
// URL: the first interpreter restores before start() is called.
const maxHeapBytes = Number(new URLSearchParams(location.search).get("maxHeapBytes")) || null;

// The snapshot needs nothing from start()'s options, so it is made (or read)
// from the moment this module runs (before plotly.js and MathJax, see
// index.html), while the service checks the sandbox and sends the options.
const snapshotMade = firstSnapshot();
snapshotMade.catch(() => {}); // start() reports the failure
// Fired once the deferred scripts after this one (plotly.js, MathJax) have run.
const scriptsLoaded = new Promise((resolve) => document.addEventListener("DOMContentLoaded", resolve, { once: true }));

/** The stored snapshot if there is one that loads, else a new one; says which, and why not the stored one. */
async function firstSnapshot() {
  if (stored) {
    const first = new Interpreter({ assetBase });
    const begun = performance.now();
    try {
      // Read and restored in one worker, which proves the stored snapshot and
      // is the pool's first interpreter, while plotly.js and MathJax still load.
      const restored = await first.start({ stored, maxHeapBytes });
      stats.restores += 1;
      fresh.push(first);
      return { made: { ...restored, snapshot_begun_ms: begun }, at: performance.now(), source: "stored" };
    } catch (err) {
      first.terminate();
      console.error(`stored snapshot unusable, making one: ${err.message}`);
      return { ...(await makeSnapshot()), source: "made", storedProblem: err.message };
    }
  }
  return { ...(await makeSnapshot()), source: "made" };
}

async function makeSnapshot() {
  const maker = new Interpreter({ assetBase });
  const begun = performance.now();
  try {
    const made = await maker.start({ makeSnapshot: { preload: true, shared: true } });
    return { made: { ...made, snapshot_begun_ms: begun }, at: performance.now() };
  } finally {
    maker.terminate();
  }
}

/** Make the snapshot and the first fresh interpreters; resolves once one is ready. */
async function start(options) {
  config = { ...options };
  const called = performance.now();
  await scriptsLoaded;
  configure(window.Plotly, assetBase, config.fonts);
  mathJax = scopeMathJax(await window.plotfarmMathJax); // LaTeX ready before the first job
  const { made, at, source, storedProblem } = await snapshotMade;
  snapshot = made.snapshot; // in shared memory: workers receive it by reference
  const shared = performance.now();
  // Since the page started loading: what a cold start waits for.
  stats.snapshotMs = at;
  stats.snapshotSource = source;
  stats.snapshotTimings = { ...made, snapshot: undefined };
  refill();
  const first = await takeFresh();
  fresh.unshift(first);
  return {
    ...stats.snapshotTimings,
    snapshot_source: source,
    ...(storedProblem ? { stored_snapshot_problem: storedProblem } : {}),
    page_snapshot_ms: at,
    start_called_ms: called,
    first_interpreter_ms: performance.now() - shared,
    ready_ms: performance.now(),
  };
}

/** On the page, for the service to store (stored-snapshot.mjs); null before start() has a snapshot. */
function snapshotForStorage() {
  return snapshot ? storableSnapshot(snapshot) : null;
}

function refill() {
  while (snapshot && fresh.length + restoring < config.spares + waiting.length && restoring < config.parallelRestores) {
    restoring += 1;
    restoreOne();
  }
}

async function restoreOne() {
  const interpreter = new Interpreter({ assetBase });
  const started = performance.now();
  try {
    const phases = await interpreter.start({ snapshot, maxHeapBytes });
    stats.restores += 1;
    stats.restorePhases.push({ ...phases, snapshot: undefined, pool_ms: performance.now() - started });
    if (stats.restorePhases.length > 200) stats.restorePhases.shift();
    if (waiting.length) waiting.shift()(interpreter);
    else fresh.push(interpreter);
  } catch (err) {
    stats.restoreFailures += 1;
    console.error(`interpreter restore failed: ${err.message}`);
    interpreter.terminate();
    await new Promise((resolve) => setTimeout(resolve, 1000));
  } finally {
    restoring -= 1;
    refill();
  }
}

function takeFresh() {
  if (fresh.length) {
    const interpreter = fresh.shift();
    setTimeout(refill, 0); // after the job has started
    return Promise.resolve(interpreter);
  }
  const promise = new Promise((resolve) => waiting.push(resolve));
  refill();
  return promise;
}

function isolationKey(tenant) {
  if (config.isolation === "none") return "*";
  if (config.isolation === "tenant" && tenant) return `tenant:${tenant}`;
  return null; // job isolation: never reuse
}

async function acquire(key) {
  const idle = key === null ? null : reusable.get(key);
  if (idle && idle.length) {
    stats.reused += 1;
    return idle.pop();
  }
  return takeFresh();
}

function release(interpreter, key, outcome) {
  const error = outcome.output.error;
  const keep =
    key !== null &&
    interpreter.alive &&
    !outcome.terminated &&
    !(error && SPOILING_ERRORS.includes(error.type)) &&
    (outcome.heapBytes || 0) <= config.heapLimitBytes;
  if (!keep) {
    interpreter.terminate();
    stats.discarded += 1;
    return;
  }
  const idle = reusable.get(key) || [];
  idle.push(interpreter);
  reusable.set(key, idle);
  // Bound what reuse may keep alive: drop the least recently used beyond `spares`.
  let kept = 0;
  for (const list of reusable.values()) kept += list.length;
  for (const [k, list] of reusable) {
    while (kept > config.spares && list.length) {
      list.shift().terminate();
      kept -= 1;
    }
    if (!list.length) reusable.delete(k);
  }
}

/**
 * Run one job's code; resolves with a summary once the run is over. The
 * output stays on the page for exportFigures(jobId). One job at a time.
 * `files` (name -> base64) are the job's input files, `variables` its globals
 * (interpreter.mjs, run).
 */
async function run({ jobId, code, timeoutMs, graceMs, limits, tenant, files, variables }) {
  if (ran) throw new Error(`this page still holds job ${ran.jobId}, which was never exported`);
  const started = performance.now();
  let inputs;
  try {
    inputs = decodeFiles(files);
  } catch (err) {
    // The gateway sends valid base64; anything else fails this job alone, not the page.
    const output = failedRun("ValueError", `the job's input files could not be read: ${err.message}`);
    ran = { jobId, outcome: { output, timings: { load_ms: 0, run_ms: 0 }, packages: [] }, waitMs: 0, limits };
    return { figures: 0, error: output.error.type };
  }
  const key = isolationKey(tenant);
  const interpreter = await acquire(key);
  const waitMs = performance.now() - started;
  let outcome;
  try {
    outcome = await interpreter.run(code, { timeoutMs, graceMs, limits, files: inputs, variables });
  } finally {
    release(interpreter, key, outcome || { output: { error: null }, terminated: true });
  }
  ran = { jobId, outcome, waitMs, limits };
  const { error, figures } = outcome.output;
  return { figures: figures.length, error: error ? error.type : null };
}

/** The job's input files, name -> base64 (the job message's form), as name -> bytes. */
function decodeFiles(files) {
  const decoded = {};
  for (const [name, text] of Object.entries(files || {})) decoded[name] = Uint8Array.fromBase64(text);
  return decoded;
}

/**
 * Draw the figures of the job run() ran, in the formats it asked for.
 * Resolves with a PageResult (runtime/contract.mjs; shared/page_contract.py),
 * which the renderer service validates and bounds again. Each file is held
 * to its limit here, as soon as it is made.
 */
async function exportFigures({ jobId, width, height, formats, scale }) {
  if (!ran || ran.jobId !== jobId) throw new Error(`this page has not run job ${jobId}`);
  const { outcome, waitMs, limits } = ran;
  ran = null;
  const { output, timings, packages } = outcome;
  const exportStarted = performance.now();
  const drawn = await drawAll(output, { width, height, formats, scale }, limits);
  return {
    ...drawn,
    packages,
    timings: { wait_ms: waitMs, load_ms: timings.load_ms, run_ms: timings.run_ms, svg_ms: performance.now() - exportStarted },
  };
}

/**
 * A figure job (no code, no interpreter): `output` is one JSON document
 * shaped like a RunOutput whose `figures` are the job's, made by the service
 * (services/renderer/page.py). It goes through the very bounds a worker's
 * answer does (runtime/bounds.mjs: size before parsing, count, nesting), then
 * the same preparation and export as a code job's figures. Resolves with a
 * PageResult.
 */
async function drawFigures({ jobId, output, width, height, formats, scale, limits }) {
  if (ran) throw new Error(`this page still holds job ${ran.jobId}, which was never exported`);
  const started = performance.now();
  let bounded = boundedOutput(output, limits);
  if (!bounded.error && !bounded.figures.length) bounded = failedRun(ERROR.NO_FIGURE, "the job brought no figure to draw");
  const parsed = performance.now();
  const drawn = await drawAll(bounded, { width, height, formats, scale }, limits);
  return {
    ...drawn,
    packages: [],
    timings: { wait_ms: 0, load_ms: 0, run_ms: parsed - started, svg_ms: performance.now() - parsed },
  };
}

/** A bounded RunOutput's figures prepared and drawn: the PageResult's figures, texts, error and warnings. */
async function drawAll(output, { width, height, formats, scale }, limits) {
  const figures = [];
  const warnings = [...output.warnings];
  let error = output.error;
  if (!error) {
    const options = { width, height, formats, scale, maxPngPixels: limits.max_png_pixels };
    try {
      for (const [n, shown] of output.figures.entries()) {
        const prepared = prepareFigure(shown, n + 1);
        warnings.push(...prepared.warnings);
        const figure = await exportFigure(window.Plotly, prepared.figure, options);
        checkFileSizes(figure, n + 1, limits);
        figures.push(figure);
      }
    } catch (err) {
      figures.length = 0;
      error = { type: err.type || ERROR.RENDER_ERROR, message: String(err.message || err), traceback: "" };
    } finally {
      mathJax.endJob();
    }
  }
  return { figures, stdout: output.stdout, stderr: output.stderr, error, warnings: error ? [] : warnings };
}

class FileTooLarge extends Error {
  get type() {
    return ERROR.OUTPUT_LIMIT_EXCEEDED;
  }
}

/** Fail the job as soon as one of its files is over its limit (the service checks them again). */
function checkFileSizes(figure, n, limits) {
  if (figure.svg !== undefined && figure.svg.length > limits.max_svg_bytes) {
    throw new FileTooLarge(`figure ${n} is ${figure.svg.length} bytes of SVG; the limit is ${limits.max_svg_bytes}`);
  }
  for (const fmt of RASTER_FORMATS) {
    const bytes = figure[fmt] !== undefined ? Math.floor((figure[fmt].length * 3) / 4) : 0;
    if (bytes > limits.max_png_bytes) {
      throw new FileTooLarge(`figure ${n} is ${bytes} bytes of ${fmt.toUpperCase()}; the limit is ${limits.max_png_bytes}`);
    }
  }
}

// The one figure being printed to PDF (printSvg .. endPrint), and what it hid.
let printing = null;

/**
 * Show a (sanitised) SVG alone on this page, as an image `width` x `height`
 * CSS pixels on a page of that size with no margins, for the service to
 * print it to a vector PDF (CDP Page.printToPDF, services/renderer/page.py);
 * endPrint() puts the page back. As Kaleido prints its PDFs. An SVG shown as
 * an image runs nothing and loads nothing. Resolves with its intrinsic size,
 * or {error} when it cannot be shown.
 */
async function printSvg({ svg }) {
  endPrint();
  let image;
  try {
    image = await loadSvg(svg);
  } catch (err) {
    return { error: String(err.message || err) }; // the figure's fault, not the page's
  }
  const width = image.naturalWidth;
  const height = image.naturalHeight;
  const style = document.createElement("style");
  style.textContent =
    `@page { size: ${width}px ${height}px; margin: 0; }\n` +
    "html, body { margin: 0; padding: 0; }\n" +
    "body > :not(.plotfarm-print) { display: none !important; }\n" +
    `.plotfarm-print { display: block; width: ${width}px; height: ${height}px; }`;
  image.className = "plotfarm-print";
  document.head.append(style);
  document.body.append(image);
  printing = { style, image };
  return { width, height };
}

function endPrint() {
  if (!printing) return;
  printing.style.remove();
  printing.image.remove();
  printing = null;
}

function poolStats() {
  const recentRestoreMs = stats.restorePhases.map((phases) => phases.pool_ms);
  const sorted = [...recentRestoreMs].sort((a, b) => a - b);
  const pick = (q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.round(q * (sorted.length - 1)))] : null);
  let reusableCount = 0;
  for (const list of reusable.values()) reusableCount += list.length;
  return {
    isolation: config.isolation,
    fresh: fresh.length,
    restoring,
    waiting: waiting.length,
    reusable: reusableCount,
    restores: stats.restores,
    restoreFailures: stats.restoreFailures,
    discarded: stats.discarded,
    reused: stats.reused,
    snapshotMs: stats.snapshotMs,
    snapshotSource: stats.snapshotSource,
    restoreMsMedian: pick(0.5),
    restoreMsP95: pick(0.95),
    // The last (up to 200) restore times, newest last: with `restores`, the service
    // observes each new one into its restore-time histogram (shared/metrics.py).
    recentRestoreMs,
    // The same restores phase by phase, for scripts/profile_restore.py.
    recentRestorePhases: stats.restorePhases,
  };
}

window.plotfarm = { start, run, exportFigures, drawFigures, printSvg, endPrint, stats: poolStats, snapshotForStorage };
