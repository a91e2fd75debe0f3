// The main-thread handle of one Pyodide interpreter, which lives in its own
// Web Worker (interpreter-worker.mjs): starts it, runs code in it with a
// wall-clock limit, and replaces nothing by itself — the caller decides
// whether an interpreter that was terminated gets a successor.
//
// Used unchanged by the renderer's headless page and by the client-side page.

import { boundedRun } from "./bounds.mjs";
import { terminatedRun, timedOutRun } from "./contract.mjs";

const INTERRUPT_SIGINT = 2;

export class Interpreter {
  /** @param {{assetBase: string|URL}} options  where manifest.json, pyodide/, precompiled/ and runtime/ live */
  constructor({ assetBase }) {
    this.assetBase = new URL(assetBase, location.href).href;
    this.worker = null;
    this.port = null;
    this.interruptBuffer = null;
    this.nextRunId = 1;
    this.pending = null;
  }

  get alive() {
    return this.worker !== null;
  }

  /**
   * Start the interpreter; resolves with its start timings once plotly is imported.
   * `snapshot` (from an earlier start with `makeSnapshot`) restores a
   * ready interpreter in well under a second instead of starting one from
   * scratch; with `makeSnapshot` the resolved value carries `snapshot` and
   * the worker itself is only good for making more snapshots: terminate it.
   * `makeSnapshot` is {preload, shared, save}: with numpy and pandas
   * imported, and in shared memory (the renderer's pool); or neither, and
   * stored in this browser instead of resolved (the client page, `save`).
   * `restoreSaved` restores from the snapshot the client page stored in this
   * browser (snapshot-cache.mjs); without one it rejects with an error whose
   * `noSavedSnapshot` is true.
   * `stored` ({index, data} URLs) restores from the snapshot the renderer
   * kept on disk (stored-snapshot.mjs) and resolves, ready, with that
   * snapshot too (as `makeSnapshot` would), for restoring others.
   * `onStarted` is called once the worker runs (its scripts are in): until
   * then its start needs this thread, so a page with long work of its own
   * (parsing plotly.js) does it from there on.
   * `maxHeapBytes` caps the interpreter's WebAssembly memory (the renderer's
   * PLOTFARM_INTERPRETER_MAX_HEAP_MB): beyond it the job gets a MemoryError.
   */
  start({ snapshot = null, restoreSaved = false, makeSnapshot = null, stored = null, onStarted = null, maxHeapBytes = null } = {}) {
    this.terminate();
    // Interrupting a busy interpreter needs shared memory, which browsers only
    // grant to cross-origin-isolated pages (COOP + COEP headers).
    this.interruptBuffer = self.crossOriginIsolated ? new SharedArrayBuffer(1) : null;
    const channel = new MessageChannel();
    this.port = channel.port1;
    this.worker = new Worker(new URL("./interpreter-worker.mjs", import.meta.url), { type: "module", name: "pyodide" });
    const started = new Promise((resolve, reject) => {
      this.port.onmessage = ({ data }) => {
        if (data.type === "started") {
          if (onStarted) onStarted();
        } else if (data.type === "ready") {
          this.port.onmessage = (msg) => this.onMessage(msg.data);
          resolve({ ...data.timings, interruptible: this.interruptBuffer !== null, snapshot: data.snapshot });
        } else if (data.type === "start-failed") {
          this.terminate();
          reject(Object.assign(new Error(`interpreter failed to start: ${data.message}`), { noSavedSnapshot: Boolean(data.noSavedSnapshot) }));
        }
      };
      this.worker.onerror = (event) => {
        this.terminate();
        reject(new Error(`interpreter worker failed: ${event.message || "unknown error"}`));
      };
    });
    this.worker.postMessage(
      { type: "start", port: channel.port2, assetBase: this.assetBase, interruptBuffer: this.interruptBuffer, snapshot, restoreSaved, makeSnapshot, stored, maxHeapBytes },
      [channel.port2],
    );
    return started;
  }

  /**
   * Run code; resolves with {output, timings: {load_ms, run_ms}, packages, heapBytes, timedOut, terminated}.
   * `output` is a RunOutput (contract.mjs); `packages` what was loaded for
   * the code's imports; all of it bounded by `limits` here, outside the
   * worker (bounds.mjs). At timeoutMs the interpreter is interrupted
   * (KeyboardInterrupt); if it has not answered graceMs later the worker is
   * terminated and `terminated` is true: the caller must start() again before
   * the next run.
   * `files` (name -> Uint8Array) appear in the run's working directory,
   * read-only, and only for this run; their buffers are transferred to the
   * worker (the caller's arrays are empty afterwards). `variables` (a plain
   * JSON-able object) become the code's globals. Both optional.
   */
  run(code, { timeoutMs, graceMs = 1000, limits, files = undefined, variables = undefined }) {
    if (!this.alive) return Promise.reject(new Error("interpreter is not running"));
    if (this.pending) return Promise.reject(new Error("interpreter is busy"));
    const runId = this.nextRunId++;
    const inputs = files ? { ...files } : {};
    // One buffer may back several arrays (and a shared one cannot move): transfer each once, when it can.
    const buffers = [...new Set(Object.values(inputs).map((bytes) => bytes && bytes.buffer))].filter((buffer) => buffer instanceof ArrayBuffer);
    let message;
    try {
      message = { type: "run", runId, code, limits, files: inputs, variables: JSON.stringify(variables || {}) };
    } catch (err) {
      return Promise.reject(new Error(`the variables are not JSON: ${err.message}`));
    }
    return new Promise((resolve) => {
      const finish = (outcome) => {
        clearTimeout(interruptTimer);
        clearTimeout(killTimer);
        this.pending = null;
        resolve(outcome);
      };
      let interrupted = false;
      const interruptTimer = setTimeout(() => {
        interrupted = true;
        if (this.interruptBuffer) new Uint8Array(this.interruptBuffer)[0] = INTERRUPT_SIGINT;
      }, timeoutMs);
      const killTimer = setTimeout(() => {
        this.pending = null; // answered here, not by terminate()
        this.terminate();
        finish(outcome(timedOutRun(timeoutMs, null), { run_ms: timeoutMs + graceMs }, { timedOut: true, terminated: true }));
      }, timeoutMs + (this.interruptBuffer ? graceMs : 0));
      this.pending = { runId, timeoutMs, limits, started: performance.now(), interrupted: () => interrupted, finish };
      this.port.postMessage(message, buffers);
    });
  }

  onMessage(data) {
    const pending = this.pending;
    if (!pending || data.type !== "result" || data.runId !== pending.runId) return;
    const timedOut = pending.interrupted();
    const { output, timings, packages, heapBytes } = boundedRun(data, pending.limits, performance.now() - pending.started);
    pending.finish(outcome(timedOut ? timedOutRun(pending.timeoutMs, output) : output, timings, { packages, heapBytes, timedOut }));
  }

  terminate() {
    if (this.worker) this.worker.terminate();
    if (this.port) this.port.close();
    this.worker = null;
    this.port = null;
    if (this.pending) {
      const { finish } = this.pending;
      this.pending = null;
      finish(outcome(terminatedRun(), { run_ms: 0 }, { terminated: true }));
    }
  }
}

function outcome(output, timings, { packages = [], heapBytes = 0, timedOut = false, terminated = false } = {}) {
  return { output, timings: { load_ms: 0, ...timings }, packages, heapBytes, timedOut, terminated };
}
