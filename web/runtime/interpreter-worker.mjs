// One Pyodide interpreter, alone in a dedicated module Web Worker.
//
// Its host (the Interpreter in interpreter.mjs) talks to it over a private MessagePort handed over in
// the first message, never over the worker's global postMessage: user code
// can reach the worker's global scope through `import js`, but not a port
// held in this module's closure, nor the send function bound before any user
// code ran.
//
//   host -> worker (global, once)  {type: "start", port, assetBase, interruptBuffer, snapshot?, restoreSaved?, makeSnapshot?: {preload, shared, save}, stored?: {index, data}, maxHeapBytes?}
//   worker -> host (port)          {type: "started"}, then {type: "ready", timings, snapshot? (makeSnapshot, stored)} | {type: "start-failed", message, noSavedSnapshot?}
//   host -> worker (port)          {type: "run", runId, code, limits, files?: {name: Uint8Array}, variables?: JSON text}
//   worker -> host (port)          {type: "result", runId, output, timings: {load_ms, run_ms}, packages, heapBytes}
//
// `output` is a RunOutput (contract.mjs) as one JSON document, parsed once by the host,
// which trusts none of it: the job owns this worker's Python and JavaScript, so
// the host bounds the message on its side (bounds.mjs).
//
// Three ways to start:
// - plain: start CPython, install plotly from the build's precompiled
//   site-packages, import it (a few seconds). Other packages (numpy, pandas,
//   scipy, ...) are loaded when a job's imports ask for them;
// - makeSnapshot: the same, plus (with `preload`, as the renderer does) the
//   preloaded packages (numpy, pandas) with their shared libraries, imported,
//   then a warm-up of figures, then hand
//   back a *snapshot*: a memory snapshot of the interpreter, its
//   site-packages files, the files it holds open, the compiled WebAssembly
//   modules (the interpreter's and each shared library's, see dynlibs.mjs)
//   and the stdlib zip; with `shared`, its big buffers in shared memory;
// - from a snapshot: restore the snapshot into a fresh worker (well under a
//   second), so every job can get an interpreter no other job has touched;
//   with `restoreSaved`, from the one the client page stored in this
//   browser (snapshot-cache.mjs; `makeSnapshot.save` stores one), read here.
// With `stored`, the snapshot is the one the renderer kept on disk
// (stored-snapshot.mjs): read here, restored here (this worker is the pool's
// first interpreter, with no second worker to start behind the page's
// scripts), and handed back as makeSnapshot would have, for the others.

import "../pyodide/pyodide.asm.js"; // defines globalThis._createPyodideModule
import { loadPyodide } from "../pyodide/pyodide.mjs";
import { failedRun } from "./contract.mjs";
import { compileLibraries, linkState, loadLibraries, replayLibraries, restoreLinkState } from "./dynlibs.mjs";
import { exportTree, importTree } from "./fstree.mjs";
import { inSharedMemory, loadStoredSnapshot } from "./stored-snapshot.mjs";
import { loadSnapshot, saveSnapshot } from "./snapshot-cache.mjs";
import { ERROR } from "./vocabulary.mjs";
import { mountSnapshotTree } from "./snapshotfs.mjs";

// performance.now() counts from the worker's creation: this is how long its
// scripts took to arrive and compile.
const scriptsLoadedAt = performance.now();
const createPyodideModule = globalThis._createPyodideModule;
const CAPTURE_MODULE = "plotfarm_capture";
// Read before any job's code runs: a job can replace this worker's built-ins
// (`js.WebAssembly`, `js.ArrayBuffer`), not these.
const memoryBufferOf = Object.getOwnPropertyDescriptor(WebAssembly.Memory.prototype, "buffer").get;
const byteLengthOf = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, "byteLength").get;
const apply = Reflect.apply;
const WasmMemory = WebAssembly.Memory;
const WASM_PAGE = 65536;
const EMSCRIPTEN_INITIAL_MEMORY = 20971520; // pyodide.asm.js's own default
let interpreterMemory = null; // this interpreter's WebAssembly memory, made here (withMemory)
// Built once in the snapshot, so that every restored copy has already
// imported what these figures need (px, numpy, pandas, the common trace types).
const WARM_UP = `
import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
df = pd.DataFrame({"x": [1, 2, 3], "y": [3.0, 1.0, 2.0], "c": ["a", "b", "a"]})
px.data.tips()  # the CSV reader px.data uses
for fig in (
    px.scatter(df, x="x", y="y", color="c", facet_col="c", title="t"),
    px.line(df, x="x", y="y"),
    px.bar(df, x="c", y="y"),
    px.histogram(df, x="y"),
    go.Figure([go.Scatter(x=np.arange(3), y=np.ones(3)), go.Bar(x=[1], y=[2]), go.Pie(values=[1, 2]),
               go.Heatmap(z=np.eye(2)), go.Box(y=[1, 2]), go.Histogram(x=[1, 2])]),
):
    fig.show()
`;
// The same for a snapshot without numpy and pandas (the client page's: they
// load only when a run imports them).
const WARM_UP_PLOTLY = `
import plotly.graph_objects as go
for fig in (
    go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], mode="lines+markers"), layout_title_text="t"),
    go.Figure([go.Bar(x=["a", "b"], y=[2, 1]), go.Pie(values=[1, 2]), go.Heatmap(z=[[1, 2], [3, 4]]),
               go.Box(y=[1, 2]), go.Histogram(x=[1, 2])]),
):
    fig.show()
`;
// After either warm-up: what the snapshot made is never garbage, so the
// collector of every interpreter restored from it need not scan it again (as
// pre-fork servers do).
const FREEZE_GARBAGE_COLLECTOR = "import gc; gc.collect(); gc.freeze()";
const WARM_UP_LIMITS = { max_figures: 10, max_figure_bytes: 1e7, max_total_figure_bytes: 1e8, max_svg_bytes: 1e7, max_output_chars: 1000 };

self.addEventListener("message", onStart, { once: true });

async function onStart(event) {
  const { port, assetBase, interruptBuffer, restoreSaved, makeSnapshot, stored } = event.data;
  const send = MessagePort.prototype.postMessage.bind(port);
  send({ type: "started" }); // the host's thread may get busy now (interpreter.mjs, onStarted)
  try {
    maxHeapBytes = event.data.maxHeapBytes || null;
    globalThis._createPyodideModule = createModule;
    const readStarted = performance.now();
    const readMarks = {};
    let snapshot = event.data.snapshot;
    if (stored) snapshot = await loadStoredSnapshot(assetBase, stored, readMarks);
    if (restoreSaved) snapshot = await loadSnapshot(assetBase);
    const readMs = performance.now() - readStarted;
    if (stored) Object.assign(readMarks, { stored_load_ms: readMs });
    if (restoreSaved) Object.assign(readMarks, { snapshot_read_ms: readMs });
    if (restoreSaved && !snapshot) {
      send({ type: "start-failed", message: "this browser has no saved interpreter for this build", noSavedSnapshot: true });
      return;
    }
    const started = snapshot ? await restoreInterpreter(assetBase, snapshot) : await startFromScratch(assetBase, makeSnapshot);
    const { pyodide, capture } = started;
    const timings = { ...started.timings, ...readMarks };
    if (makeSnapshot) {
      // This worker only made the snapshot; the host terminates it.
      if (makeSnapshot.save) await saveSnapshot(assetBase, started.snapshot); // the client page's, for next time
      send({ type: "ready", timings, snapshot: makeSnapshot.save ? null : started.snapshot });
      return;
    }
    if (interruptBuffer) pyodide.setInterruptBuffer(new Uint8Array(interruptBuffer));
    const memory = interpreterMemory;
    const heap = () => apply(byteLengthOf, apply(memoryBufferOf, memory, []), []);
    const packages = new OnDemandPackages(pyodide, assetBase, capture.imports_needed);
    sealGlobalScope(packages.gate);
    const inputs = new JobInputs(pyodide.FS);
    port.onmessage = (msg) => handleRun(msg.data, { run: capture.run, packages, inputs, interruptBuffer, heap, send });
    // A snapshot read from disk goes back to the host too, for the interpreters after this one.
    send({ type: "ready", timings, snapshot: stored ? snapshot : undefined });
  } catch (err) {
    send({ type: "start-failed", message: String(err && err.stack ? err.stack : err) });
  }
}

// ---- starting -------------------------------------------------------------

/**
 * Pyodide's glue, given a WebAssembly memory made here (it takes one it is
 * given, as Module.wasmMemory) whose maximum is `maxHeapBytes` (none:
 * WebAssembly's own 4 GiB). A memory's maximum cannot be raised once made, so
 * no job can lift it: growing past it fails, and Python raises MemoryError.
 */
let maxHeapBytes = null;
function createModule(settings) {
  const initial = (settings.INITIAL_MEMORY || EMSCRIPTEN_INITIAL_MEMORY) / WASM_PAGE;
  const maximum = maxHeapBytes ? Math.max(initial, Math.floor(maxHeapBytes / WASM_PAGE)) : 65536;
  interpreterMemory = new WasmMemory({ initial, maximum });
  settings.wasmMemory = interpreterMemory;
  return createPyodideModule(settings);
}

async function startFromScratch(assetBase, makeSnapshot) {
  const t0 = performance.now();
  const captured = captureDownloads();
  const manifest = await fetchJson(new URL("manifest.json", assetBase));
  const captureSource = fetchText(new URL(`runtime/${CAPTURE_MODULE}.py`, assetBase));
  const preload = Boolean(makeSnapshot && makeSnapshot.preload);
  const layers = preload ? ["base", "preload"] : ["base"];
  const trees = layers.map((layer) => fetchTree(assetBase, manifest.precompiled[layer]));
  const pyodide = await loadPyodide({
    indexURL: new URL("pyodide/", assetBase).href,
    stdLibURL: new URL(manifest.precompiled.stdlib, assetBase).href,
    stdout: () => {},
    stderr: () => {},
    _makeSnapshot: Boolean(makeSnapshot),
  });
  const t1 = performance.now();

  const site = sitePackages(pyodide);
  // Installed after start-up, not before: Pyodide would otherwise record the
  // packages it finds at start-up in a way a memory snapshot cannot hold.
  let dynlibs = [];
  for (const tree of await Promise.all(trees)) {
    importTree(pyodide.FS, tree);
    dynlibs = dynlibs.concat(tree.dynlibs);
  }
  pyodide.FS.writeFile(`${site}/${CAPTURE_MODULE}.py`, await captureSource);
  const placed = loadLibraries(pyodide._module, await compileLibraries(pyodide.FS, dynlibs));
  const t2 = performance.now();

  pyodide.runPython("import importlib; importlib.invalidate_caches()");
  const capture = pyodide.pyimport(CAPTURE_MODULE);
  capture.set_available(JSON.stringify(manifest.packages.available));
  const t3 = performance.now();
  const timings = { scripts_ms: scriptsLoadedAt, pyodide_ms: t1 - t0, packages_ms: t2 - t1, import_ms: t3 - t2 };
  const installed = preload ? manifest.packages.preinstalled.concat(manifest.packages.preloaded) : manifest.packages.preinstalled;
  if (!makeSnapshot) {
    markInstalled(pyodide, installed);
    return { pyodide, capture, timings: { ...timings, total_ms: t3 - t0 } };
  }

  // Pay the first-figure costs once, so every restored copy starts warm.
  const heapBeforeWarmUp = pyodide._module.HEAP8.length;
  const warmUp = JSON.parse(capture.run(preload ? WARM_UP : WARM_UP_PLOTLY, JSON.stringify(WARM_UP_LIMITS)));
  if (warmUp.error) throw new Error(`snapshot warm-up failed: ${warmUp.error.type}: ${warmUp.error.message}`);
  pyodide.runPython(FREEZE_GARBAGE_COLLECTOR);
  const t4 = performance.now();
  // Bytes a restored copy never reads: loaded libraries (found by name from
  // now on) and the bytecode of modules already imported (a re-import falls
  // back to the source).
  const imported = new Set(capture.imported_bytecode().toJs());
  capture.destroy();
  const loaded = new Set(dynlibs);
  // In shared memory (the renderer's pool), written here once: the host
  // receives it without a copy and hands it to every restored worker by
  // reference (see restoreInterpreter). The client page stores it instead.
  const keep = makeSnapshot.shared ? inSharedMemory : (view) => view;
  const files = exportTree(pyodide.FS, site, { hollow: (path) => loaded.has(path) || imported.has(path) });
  const snapshot = {
    memory: keep(snapshotUpToBreak(pyodide)),
    files: { ...files, data: keep(files.data) },
    openFiles: openFiles(pyodide.FS),
    wasmModule: await captured.wasmModule,
    stdlib: keep(await captured.stdlib),
    lockFile: await captured.lockFile,
    libraries: placed,
    linkState: linkState(pyodide._module),
    installed,
    site,
  };
  const t5 = performance.now();
  return {
    pyodide,
    capture: null,
    timings: {
      ...timings,
      warm_up_ms: t4 - t3,
      snapshot_ms: t5 - t4,
      total_ms: t5 - t0,
      heap_before_warm_up_mb: heapBeforeWarmUp / 1e6,
      heap_mb: pyodide._module.HEAP8.length / 1e6,
    },
    snapshot,
  };
}

async function restoreInterpreter(assetBase, shared) {
  const t0 = performance.now();
  const marks = { t0 };
  // The snapshot may arrive in shared memory (the host copies it once, not
  // once per worker). Nothing of it is ever written here, and no reference to
  // a shared buffer outlives this function where a job's code could reach it:
  // the snapshot is copied into this interpreter's own memory by Pyodide, the
  // site-packages are read through snapshotfs.mjs, and the stdlib (which
  // Pyodide wants as a download) gets a private copy.
  const snapshot = { ...shared, stdlib: privateCopy(shared.stdlib) };
  marks.copy_ms = performance.now() - t0;
  marks.snapshot_mb = shared.memory.length / 1e6;
  marks.files_mb = shared.files.data.length / 1e6;
  marks.file_count = shared.files.paths.length;
  serveFromSnapshot(snapshot, marks);
  // Restoring memory brings back Python's view of open files and of the
  // shared libraries it loaded; both live in JavaScript, so rebuild them
  // before Python runs again.
  globalThis._createPyodideModule = async (settings) => {
    marks.settings_ms = performance.now() - t0;
    // Emscripten calls these in order, after instantiation and its own set-up.
    settings.preRun = [() => (marks.prerun_ms = performance.now() - t0), ...settings.preRun];
    const module = await createModule(settings);
    marks.instantiated_ms = performance.now() - t0;
    copySnapshotFromShared(module, marks);
    timePhase(module.API, "finalizeBootstrap", "python_ms", marks);
    // The module's memory starts at its compiled size; the snapshot's heap
    // is bigger (plotly is in it), so grow first or the copy overflows.
    const header = new Uint32Array(snapshot.memory.buffer, snapshot.memory.byteOffset, 4)[1];
    module.growMemory(snapshot.memory.length - header);
    reopenFiles(module.FS, snapshot.openFiles);
    marks.module_ms = performance.now() - t0;
    replayLibraries(module, snapshot.libraries);
    marks.libraries_ms = performance.now() - t0 - marks.module_ms;
    return module;
  };
  const pyodide = await loadPyodide({
    indexURL: new URL("pyodide/", assetBase).href,
    fsInit: (FS) => {
      const started = performance.now();
      mountSnapshotTree(FS, snapshot.site, snapshot.files);
      marks.files_ms = performance.now() - started;
    },
    stdout: () => {},
    stderr: () => {},
    _loadSnapshot: snapshot.memory,
  });
  delete globalThis._createPyodideModule;
  stopServingFromSnapshot();
  // Pyodide keeps its options as `pyodide._api.config`, which a job can reach
  // (`pyodide_js`): the snapshot must not stay there (it is the shared one).
  delete pyodide._api.config._loadSnapshot;
  delete pyodide._api.config.fsInit;
  restoreLinkState(pyodide._module, snapshot.linkState);
  markInstalled(pyodide, snapshot.installed);
  const t1 = performance.now();
  const capture = pyodide.pyimport(CAPTURE_MODULE);
  // Every restored copy starts from the same memory: give each its own randomness.
  capture.reseed();
  const t2 = performance.now();
  const timings = { scripts_ms: scriptsLoadedAt, message_ms: t0 - scriptsLoadedAt, ...marks, restore_ms: t1 - t0, import_ms: t2 - t1 };
  return { pyodide, capture, timings: { ...timings, total_ms: t2 } };
}

/**
 * Pyodide's restoreSnapshot reads the snapshot's header with a TextDecoder,
 * which refuses shared memory: copy the memory image into the interpreter's
 * own heap here, then let Pyodide read a private copy of the header only.
 */
function copySnapshotFromShared(module, marks) {
  const restoreSnapshot = module.API.restoreSnapshot;
  module.API.restoreSnapshot = (snapshot) => {
    const started = performance.now();
    const headerBytes = new Uint32Array(snapshot.buffer, snapshot.byteOffset, 4)[1];
    module.HEAP8.set(snapshot.subarray(headerBytes));
    const restored = restoreSnapshot(privateCopy(snapshot.subarray(0, headerBytes)));
    marks.memory_ms = performance.now() - started;
    return restored;
  };
}

/** Record how long each call of `object[name]` takes, as marks[mark]. */
function timePhase(object, name, mark, marks) {
  const original = object[name];
  object[name] = (...args) => {
    const started = performance.now();
    try {
      return original.apply(object, args);
    } finally {
      marks[mark] = performance.now() - started;
    }
  };
}

/**
 * The memory snapshot, without the memory above the heap's break: the warm-up
 * grew the heap to its peak, and what it freed at the top is no one's (dlmalloc
 * gets all its memory from sbrk; the stack and static data lie below the heap).
 * A restored interpreter's fresh memory is zero there, and grows again on demand.
 */
function snapshotUpToBreak(pyodide) {
  const Module = pyodide._module;
  Module._malloc_trim(0); // hand the free memory at the top of the heap back to sbrk
  const heapBreak = Module._sbrk(0);
  const snapshot = pyodide.makeMemorySnapshot();
  const header = new Uint32Array(snapshot.buffer, snapshot.byteOffset, 4)[1];
  return snapshot.subarray(0, header + heapBreak);
}

/** Tell Pyodide's package loader what is already installed, so it never installs it again. */
function markInstalled(pyodide, names) {
  for (const name of names) pyodide.loadedPackages[name] = "plotfarm";
}

function sitePackages(pyodide) {
  return pyodide.runPython("import sysconfig; sysconfig.get_paths()['purelib']").replace(/^\/+/, "/");
}

function privateCopy(view) {
  const copy = new Uint8Array(view.length);
  copy.set(view);
  return copy;
}

// Keep the compiled wasm module, the stdlib zip and the lock file a plain
// start downloads, to hand them to every worker restored from the snapshot.
function captureDownloads() {
  const wasmModule = Promise.withResolvers();
  const stdlib = Promise.withResolvers();
  const lockFile = Promise.withResolvers();
  const instantiateStreaming = WebAssembly.instantiateStreaming;
  WebAssembly.instantiateStreaming = async (source, imports) => {
    const result = await instantiateStreaming(source, withStringConversions(imports));
    wasmModule.resolve(result.module);
    return result;
  };
  const originalFetch = self.fetch;
  self.fetch = async (input, init) => {
    const response = await originalFetch(input, init);
    const url = String(input);
    if (url.endsWith("python_stdlib.zip")) stdlib.resolve(new Uint8Array(await response.clone().arrayBuffer()));
    if (url.endsWith("pyodide-lock.json")) lockFile.resolve(await response.clone().text());
    return response;
  };
  return { wasmModule: wasmModule.promise, stdlib: stdlib.promise, lockFile: lockFile.promise };
}

// A restored worker downloads nothing: wasm, stdlib and lock come from the snapshot.
const originalGlobals = { fetch: self.fetch, instantiateStreaming: WebAssembly.instantiateStreaming };

function stopServingFromSnapshot() {
  self.fetch = originalGlobals.fetch;
  WebAssembly.instantiateStreaming = originalGlobals.instantiateStreaming;
}

function serveFromSnapshot(snapshot, marks) {
  const originalFetch = originalGlobals.fetch;
  self.fetch = async (input, init) => {
    const url = String(input);
    if (url.endsWith("python_stdlib.zip")) return new Response(snapshot.stdlib);
    if (url.endsWith("pyodide-lock.json")) return new Response(snapshot.lockFile, { headers: { "Content-Type": "application/json" } });
    if (url.endsWith("pyodide.asm.wasm")) return new Response(new Uint8Array(0), { headers: { "Content-Type": "application/wasm" } });
    return originalFetch(input, init);
  };
  WebAssembly.instantiateStreaming = async (_source, imports) => {
    const started = performance.now();
    marks.instantiate_at_ms = started - marks.t0;
    const instance = await WebAssembly.instantiate(snapshot.wasmModule, withStringConversions(imports));
    marks.instantiate_ms = performance.now() - started;
    return { module: snapshot.wasmModule, instance };
  };
}

function openFiles(FS) {
  return FS.streams
    .map((stream, fd) => stream && fd > 2 && stream.path ? { fd, path: stream.path, flags: stream.flags, position: stream.position } : null)
    .filter(Boolean);
}

function reopenFiles(FS, files) {
  for (const { fd, path, flags, position } of files) {
    const stream = FS.open(path, flags);
    if (stream.fd !== fd) {
      throw new Error(`restored ${path} at fd ${stream.fd}, expected ${fd}`);
    }
    stream.position = position;
  }
}

/**
 * Pyodide's glue turns a Python str into a JavaScript one a character at a
 * time (`jsstr += String.fromCharCode(...)`): a 100 MB str makes a hundred
 * million string pieces, and the worker's JavaScript heap (PLOTFARM_JS_HEAP_MB)
 * runs out before the host could refuse the output for its size: the whole
 * page crashed. The same conversions, a chunk of code units at a time, give the
 * same strings (lone surrogates included) for about their own size. They are
 * the interpreter's imports, bound when it is instantiated, out of a job's reach.
 */
function withStringConversions(imports) {
  const memory = imports.env.memory;
  const convert = (View, toString) => (ptr, len) => {
    const view = new View(memory.buffer, ptr >>> 0, len >>> 0);
    const parts = [];
    for (let start = 0; start < view.length; start += STRING_CHUNK) {
      parts.push(toString.apply(null, view.subarray(start, start + STRING_CHUNK)));
    }
    return parts.join("");
  };
  imports.env._python2js_ucs1 = convert(Uint8Array, String.fromCharCode);
  imports.env._python2js_ucs2 = convert(Uint16Array, String.fromCharCode);
  imports.env._python2js_ucs4 = convert(Uint32Array, String.fromCodePoint);
  return imports;
}
const STRING_CHUNK = 8192;

// ---- packages on demand ------------------------------------------------------

/**
 * Packages a job's imports ask for (scipy, scikit-learn, ...; numpy and pandas
 * for plotly.express) and this interpreter does not have yet, loaded by
 * Pyodide's own loader from the build's verified files (it checks each
 * against the lock's sha256 again).
 *
 * The sealed worker has no fetch; while loading, `gate` lends Pyodide one
 * that reaches only those package files, and only before the job's code runs.
 */
class OnDemandPackages {
  constructor(pyodide, assetBase, importsNeeded) {
    this.pyodide = pyodide;
    this.importsNeeded = importsNeeded;
    this.prefix = new URL("pyodide/", assetBase).href;
    const fetch = self.fetch.bind(self);
    const prefix = this.prefix;
    let open = false;
    this.gate = {
      get fetch() {
        return open ? (input, init) => fetch(packageUrl(input), init) : undefined;
      },
      open: (value) => (open = value),
    };
    function packageUrl(input) {
      const url = new URL(String(input), prefix).href;
      if (!url.startsWith(prefix) || url.slice(prefix.length).includes("/")) {
        throw new TypeError("plotfarm: only package files may be fetched");
      }
      return url;
    }
  }

  /**
   * Load what `code` will import, and `also` (package names: pyarrow for a
   * Parquet input file); resolves with the packages loaded and any loading errors.
   */
  async forCode(code, also = []) {
    const byImport = this.pyodide._api._import_name_to_package_name;
    const imports = this.importsNeeded(code);
    const wanted = new Set(imports.toJs().map((name) => byImport.get(name)).filter(Boolean));
    imports.destroy();
    for (const name of also) if (this.pyodide._api.lockfile_packages[name]) wanted.add(name);
    const missing = [...wanted].filter((name) => !this.pyodide.loadedPackages[name]);
    if (!missing.length) return { names: [], errors: [] };
    const errors = [];
    this.gate.open(true);
    try {
      const loaded = await this.pyodide.loadPackage(missing, {
        messageCallback: () => {},
        errorCallback: (message) => errors.push(message),
        checkIntegrity: true,
      });
      return { names: loaded.map((pkg) => pkg.name), errors };
    } finally {
      this.gate.open(false);
    }
  }
}

// ---- hardening -------------------------------------------------------------

// Once started, the worker needs no network, no storage and no way to start
// other workers. Remove them from the global scope user code can reach
// (`import js`), as one more layer under the CSP, the request routing and the
// empty network namespace: even a same-origin request is then impossible,
// and nothing (IndexedDB, Cache Storage, BroadcastChannel) can carry state
// from one job to another. `fetch` stays undefined except while the package
// gate lends it out (see OnDemandPackages); user code cannot redefine it.
const SEALED = [
  "fetch", "XMLHttpRequest", "WebSocket", "WebSocketStream", "EventSource", "WebTransport",
  "importScripts", "Worker", "SharedWorker", "BroadcastChannel",
  "indexedDB", "caches", "cookieStore",
];

function sealGlobalScope(gate) {
  for (let scope = self; scope && scope !== Object.prototype; scope = Object.getPrototypeOf(scope)) {
    for (const name of SEALED) {
      if (Object.prototype.hasOwnProperty.call(scope, name)) {
        try {
          delete scope[name];
        } catch {}
      }
    }
  }
  for (const name of SEALED) {
    const descriptor = name === "fetch" ? { get: () => gate.fetch, configurable: false } : { value: undefined, writable: false, configurable: false };
    try {
      Object.defineProperty(self, name, descriptor);
    } catch {}
  }
  const nav = self.navigator;
  if (nav) {
    for (const name of ["sendBeacon", "storage", "locks", "serviceWorker"]) {
      try {
        Object.defineProperty(Object.getPrototypeOf(nav), name, { value: undefined, configurable: false });
      } catch {}
    }
  }
}

// ---- a job's input files ---------------------------------------------------

// Input files these suffixes name are read with pyarrow (pandas.read_parquet,
// read_feather); so is code that says parquet or feather.
const ARROW_FILE = /\.(parquet|feather|arrow)$/i;
const ARROW_CODE = /parquet|feather|pyarrow/i;
const READ_ONLY_FILE = 0o444;

/** Why `name` cannot be an input file's name (null: it can): a plain file name, nothing else. */
function badFileName(name) {
  if (typeof name !== "string" || !name.length) return "an input file needs a name";
  if (name === "." || name === "..") return `${JSON.stringify(name)} is not a file name`;
  if (name.includes("/") || name.includes("\0")) return `the input file name ${JSON.stringify(name)} is not a plain file name (no '/', no NUL)`;
  return null;
}

/**
 * Each run's working directory: a fresh directory of the interpreter's
 * in-memory file system holding the job's input files, read-only (they cannot
 * be written to), made the cwd for the run. The directory itself is the job's
 * to write in, as a script's cwd is (`fig.write_html("out.html")`,
 * `df.to_csv("clean.csv")`). Afterwards the previous cwd comes back and the
 * directory goes, whatever the job did in it. An interpreter reused for
 * another job (isolation tenant or none) keeps nothing of this one's files.
 *
 * The permission bits guard against mistakes, not against the job: it owns
 * this worker (it could chmod its copy back). What keeps jobs apart is that
 * each gets its own copy, removed here after its run, in a worker no other
 * trust domain ever uses.
 */
class JobInputs {
  constructor(FS) {
    this.FS = FS;
  }

  /** The package names the files call for (pyarrow for Parquet). */
  packagesFor(files, code) {
    const names = Object.keys(files || {});
    return names.some((name) => ARROW_FILE.test(name)) || ARROW_CODE.test(code) ? ["pyarrow"] : [];
  }

  /** Make the run's directory with `files` (name -> Uint8Array) in it and enter it; returns what leave() needs. */
  enter(runId, files) {
    const FS = this.FS;
    for (const name of Object.keys(files || {})) {
      const why = badFileName(name);
      if (why) throw Object.assign(new Error(why), { type: "ValueError" });
      if (!(files[name] instanceof Uint8Array)) throw Object.assign(new Error(`input file ${JSON.stringify(name)} has no bytes`), { type: "ValueError" });
    }
    const previous = FS.cwd();
    const directory = `/home/pyodide/job-${runId}`;
    this.remove(directory); // left by nothing we know of; never shared with this run
    FS.mkdir(directory, 0o755);
    try {
      for (const [name, bytes] of Object.entries(files || {})) {
        const path = `${directory}/${name}`;
        FS.writeFile(path, bytes, { canOwn: true }); // the host transferred them: no copy
        FS.chmod(path, READ_ONLY_FILE);
      }
      FS.chdir(directory);
    } catch (err) {
      this.leave({ previous, directory });
      throw err;
    }
    return { previous, directory };
  }

  /** Back to the previous cwd, and the run's directory gone with everything in it. */
  leave({ previous, directory }) {
    try {
      this.FS.chdir(previous);
    } catch {
      this.FS.chdir("/");
    }
    this.remove(directory);
  }

  /** Delete `path` and all below it (the job may have made it writable and filled it). */
  remove(path) {
    const FS = this.FS;
    let node;
    try {
      node = FS.lookupPath(path, { follow: false }).node;
    } catch {
      return; // not there
    }
    if (FS.isDir(node.mode)) {
      FS.chmod(path, 0o755);
      for (const name of FS.readdir(path)) {
        if (name !== "." && name !== "..") this.remove(`${path}/${name}`);
      }
      FS.rmdir(path);
    } else {
      FS.unlink(path);
    }
  }
}

// ---- running -------------------------------------------------------------

async function handleRun(message, { run, packages, inputs, interruptBuffer, heap, send }) {
  if (!message || message.type !== "run") return;
  const { runId, code, limits } = message;
  const files = message.files || {};
  const variables = typeof message.variables === "string" ? message.variables : "{}";
  const started = performance.now();
  let output;
  let loaded = { names: [], errors: [] };
  let loadMs = 0;
  let workdir = null;
  try {
    workdir = inputs.enter(runId, files);
    loaded = await packages.forCode(code, inputs.packagesFor(files, code));
    loadMs = performance.now() - started;
    if (interruptBuffer) new Uint8Array(interruptBuffer)[0] = 0;
    output = run(code, JSON.stringify(limits), JSON.stringify(loaded.errors), variables);
    if (typeof output !== "string") {
      // Top-level await: Python handed back a coroutine; it resolves to the same JSON.
      const pending = output;
      try {
        output = await pending;
      } finally {
        pending.destroy();
      }
    }
  } catch (err) {
    // Only reached when the interrupt lands outside the user's code, an input
    // file cannot be placed, or the interpreter itself failed; report it the
    // same way as a Python error.
    output = JSON.stringify(failedRun(err.type || ERROR.INTERPRETER_ERROR, String(err.message || err), { traceback: String(err) }));
  } finally {
    if (workdir) {
      try {
        inputs.leave(workdir);
      } catch (err) {
        // This interpreter may still hold the job's files: it must not run another job.
        output = JSON.stringify(failedRun(ERROR.INTERPRETER_ERROR, `the job's input files could not be removed: ${err.message || err}`));
        send({ type: "result", runId, output, timings: { load_ms: 0, run_ms: 0 }, packages: [], heapBytes: Number.MAX_SAFE_INTEGER });
        return;
      }
    }
  }
  const timings = { load_ms: loadMs, run_ms: performance.now() - started - loadMs };
  // The job may have made run() return anything: only a string goes, and not one the host would
  // refuse anyway (copying a huge one to it costs the whole page its memory). The host bounds the rest.
  if (typeof output === "string" && output.length > limits.max_answer_chars) {
    const message = `the job's output is ${output.length} characters of JSON; the limit is ${limits.max_answer_chars}`;
    output = JSON.stringify(failedRun(ERROR.OUTPUT_LIMIT_EXCEEDED, message));
  }
  const result = { type: "result", runId, output: typeof output === "string" ? output : null, timings, packages: loaded.names };
  try {
    send({ ...result, heapBytes: heap() });
  } catch {
    send({ type: "result", runId, output: null });
  }
}

async function fetchTree(assetBase, layer) {
  const [index, data] = await Promise.all([
    fetchJson(new URL(layer.index, assetBase)),
    fetchBytes(new URL(layer.data, assetBase)),
  ]);
  return { ...index, data };
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot load ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function fetchJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot load ${url}: HTTP ${response.status}`);
  return response.json();
}

async function fetchText(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot load ${url}: HTTP ${response.status}`);
  return response.text();
}
