// One Pyodide interpreter, alone in a dedicated module Web Worker.
//
// The host (host.mjs) talks to it over a private MessagePort handed over in
// the first message, never over the worker's global postMessage: user code
// can reach the worker's global scope through `import js`, but not a port
// held in this module's closure, nor the send function bound before any user
// code ran.
//
//   host -> worker (global, once)  {type: "boot", port, assetBase, interruptBuffer, template?, makeTemplate?}
//   worker -> host (port)          {type: "ready", timings, template?} | {type: "boot-failed", message}
//   host -> worker (port)          {type: "run", runId, code, limits}
//   worker -> host (port)          {type: "result", runId, payload, execMs, heapBytes}
//
// Three ways to boot:
// - plain: start CPython, install the wheels, import plotly (5-15 s);
// - makeTemplate: the same, then a warm-up figure, then hand back a *template*:
//   a memory snapshot of the interpreter, its site-packages files, the files
//   it holds open, the compiled WebAssembly module and the stdlib zip;
// - from a template: restore the snapshot into a fresh worker (about a
//   second), so every job can get an interpreter no other job has touched.

import createPyodideModule from "../pyodide/pyodide.asm.mjs";
import { loadPyodide } from "../pyodide/pyodide.mjs";
import { exportTree, importTree } from "./fstree.mjs";

// performance.now() counts from the worker's creation: this is how long its
// scripts took to arrive and compile.
const scriptsLoadedAt = performance.now();
const CAPTURE_MODULE = "plotfarm_capture";
const WARM_UP = "import plotly.graph_objects as go\ngo.Figure(go.Scatter(x=[1, 2], y=[1, 2])).show()\n";
const WARM_UP_LIMITS = JSON.stringify({ max_figures: 1, max_figure_bytes: 1e6, max_output_chars: 1000 });

self.addEventListener("message", onBoot, { once: true });

async function onBoot(event) {
  const { port, assetBase, interruptBuffer, template, makeTemplate } = event.data;
  const send = MessagePort.prototype.postMessage.bind(port);
  try {
    const booted = template ? await restoreInterpreter(assetBase, template) : await bootInterpreter(assetBase, makeTemplate);
    const { pyodide, run, timings } = booted;
    if (interruptBuffer) pyodide.setInterruptBuffer(new Uint8Array(interruptBuffer));
    const heap = () => pyodide._module.HEAP8.length;
    sealGlobalScope();
    port.onmessage = (msg) => handleRun(msg.data, run, interruptBuffer, heap, send);
    send({ type: "ready", timings, template: booted.template });
  } catch (err) {
    send({ type: "boot-failed", message: String(err && err.stack ? err.stack : err) });
  }
}

// ---- booting -------------------------------------------------------------

async function bootInterpreter(assetBase, makeTemplate) {
  const t0 = performance.now();
  const captured = captureDownloads();
  const manifest = await fetchJson(new URL("manifest.json", assetBase));
  const captureSource = fetchText(new URL(`runtime/${CAPTURE_MODULE}.py`, assetBase));
  const precompiled = manifest.precompiled;
  // With the build's precompiled bytecode, the stdlib zip carries .pyc files
  // and site-packages arrive ready-made; otherwise install the wheels.
  const sitePackagesTree = precompiled ? fetchTree(assetBase, precompiled) : null;
  const wheelBytes = precompiled
    ? null
    : Promise.all(manifest.wheels.map((name) => fetchBytes(new URL(`wheels/${name}`, assetBase))));
  const pyodide = await loadPyodide({
    indexURL: new URL("pyodide/", assetBase).href,
    stdLibURL: precompiled ? new URL(precompiled["python_stdlib.zip"], assetBase).href : undefined,
    createPyodideModule,
    stdout: () => {},
    stderr: () => {},
    _makeSnapshot: Boolean(makeTemplate),
  });
  const t1 = performance.now();

  const site = sitePackages(pyodide);
  // Installed after start-up, not before: Pyodide would otherwise record the
  // packages it finds at start-up in a way a memory snapshot cannot hold.
  if (sitePackagesTree) importTree(pyodide.FS, await sitePackagesTree);
  if (wheelBytes) {
    for (const bytes of await wheelBytes) {
      pyodide.unpackArchive(bytes, "wheel", { extractDir: site });
    }
    removeUnused(pyodide, site);
  }
  pyodide.FS.writeFile(`${site}/${CAPTURE_MODULE}.py`, await captureSource);
  const t2 = performance.now();

  pyodide.runPython("import importlib; importlib.invalidate_caches()");
  const capture = pyodide.pyimport(CAPTURE_MODULE);
  const t3 = performance.now();
  const timings = { pyodide_ms: t1 - t0, packages_ms: t2 - t1, import_ms: t3 - t2 };
  if (!makeTemplate) return { pyodide, run: capture.run, timings: { ...timings, total_ms: t3 - t0 } };

  // Pay the first-figure costs once, so every restored copy starts warm.
  capture.run(WARM_UP, WARM_UP_LIMITS);
  capture.destroy();
  const template = {
    snapshot: pyodide.makeMemorySnapshot(),
    files: exportTree(pyodide.FS, site),
    openFiles: openFiles(pyodide.FS),
    wasmModule: await captured.wasmModule,
    stdlib: await captured.stdlib,
    site,
  };
  const t4 = performance.now();
  return { pyodide, run: null, timings: { ...timings, template_ms: t4 - t3, total_ms: t4 - t0 }, template };
}

async function restoreInterpreter(assetBase, shared) {
  const t0 = performance.now();
  const marks = {};
  // The template may arrive in shared memory (the host copies it once, not
  // once per worker): take private copies here, off the host's thread, so no
  // two interpreters ever share a byte they could write.
  const template = privateCopy(shared);
  marks.copy_ms = performance.now() - t0;
  serveFromTemplate(template);
  const pyodide = await loadPyodide({
    indexURL: new URL("pyodide/", assetBase).href,
    // Restoring memory brings back Python's view of open files (zipimport
    // keeps the stdlib zip open); the files themselves live in JavaScript, so
    // reopen them at the same descriptors before Python runs again.
    createPyodideModule: async (settings) => {
      const module = await createPyodideModule(settings);
      // The module's memory starts at its compiled size; the snapshot's heap
      // is bigger (plotly is in it), so grow first or the copy overflows.
      const header = new Uint32Array(template.snapshot.buffer, template.snapshot.byteOffset, 4)[1];
      module.growMemory(template.snapshot.length - header);
      reopenFiles(module.FS, template.openFiles);
      marks.module_ms = performance.now() - t0;
      return module;
    },
    fsInit: (FS) => {
      const started = performance.now();
      importTree(FS, template.files);
      marks.files_ms = performance.now() - started;
    },
    stdout: () => {},
    stderr: () => {},
    _loadSnapshot: template.snapshot,
  });
  const t1 = performance.now();
  // Every restored copy starts from the same memory: give each its own randomness.
  pyodide.runPython("import random; random.seed()");
  const run = pyodide.pyimport(CAPTURE_MODULE).run;
  const t2 = performance.now();
  const timings = { scripts_ms: scriptsLoadedAt, message_ms: t0 - scriptsLoadedAt, ...marks, restore_ms: t1 - t0, import_ms: t2 - t1 };
  return { pyodide, run, timings: { ...timings, total_ms: t2 } };
}

// Parts of the plotly wheel that only matter to Jupyter (15 MB of JavaScript):
// no interpreter here can use them, and every restored copy would carry them.
const UNUSED_PATHS = ["plotly/labextension", "plotly/package_data/widgetbundle.js", "plotly-*.data"];

function removeUnused(pyodide, site) {
  pyodide.runPython(`
import glob, os, shutil
for pattern in ${JSON.stringify(UNUSED_PATHS)}:
    for path in glob.glob(os.path.join(${JSON.stringify(site)}, pattern)):
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
`);
}

function sitePackages(pyodide) {
  return pyodide.runPython("import sysconfig; sysconfig.get_paths()['purelib']").replace(/^\/+/, "/");
}

function privateCopy(template) {
  const own = (view) => {
    const copy = new Uint8Array(view.length);
    copy.set(view);
    return copy;
  };
  return {
    ...template,
    snapshot: own(template.snapshot),
    stdlib: own(template.stdlib),
    files: { ...template.files, data: own(template.files.data) },
  };
}

// Keep the compiled wasm module and the stdlib zip a plain boot downloads, to
// hand them to every worker restored from the template.
function captureDownloads() {
  let resolveModule, resolveStdlib;
  const wasmModule = new Promise((r) => (resolveModule = r));
  const stdlib = new Promise((r) => (resolveStdlib = r));
  const instantiateStreaming = WebAssembly.instantiateStreaming;
  WebAssembly.instantiateStreaming = async (source, imports) => {
    const result = await instantiateStreaming(source, imports);
    resolveModule(result.module);
    return result;
  };
  const originalFetch = self.fetch;
  self.fetch = async (input, init) => {
    const response = await originalFetch(input, init);
    if (String(input).endsWith("python_stdlib.zip")) {
      resolveStdlib(new Uint8Array(await response.clone().arrayBuffer()));
    }
    return response;
  };
  return { wasmModule, stdlib };
}

// A restored worker downloads nothing: wasm and stdlib come from the template.
function serveFromTemplate(template) {
  const originalFetch = self.fetch;
  self.fetch = async (input, init) => {
    const url = String(input);
    if (url.endsWith("python_stdlib.zip")) return new Response(template.stdlib);
    if (url.endsWith("pyodide.asm.wasm")) return new Response(new Uint8Array(0), { headers: { "Content-Type": "application/wasm" } });
    return originalFetch(input, init);
  };
  WebAssembly.instantiateStreaming = async (_source, imports) => ({
    module: template.wasmModule,
    instance: await WebAssembly.instantiate(template.wasmModule, imports),
  });
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

// ---- hardening -------------------------------------------------------------

// Once booted, the worker needs no network, no storage and no way to start
// other workers. Remove them from the global scope user code can reach
// (`import js`), as one more layer under the CSP, the request routing and the
// empty network namespace: even a same-origin request is then impossible,
// and nothing (IndexedDB, Cache Storage, BroadcastChannel) can carry state
// from one job to another.
const SEALED = [
  "fetch", "XMLHttpRequest", "WebSocket", "WebSocketStream", "EventSource", "WebTransport",
  "importScripts", "Worker", "SharedWorker", "BroadcastChannel",
  "indexedDB", "caches", "cookieStore",
];

function sealGlobalScope() {
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
    try {
      Object.defineProperty(self, name, { value: undefined, writable: false, configurable: false });
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

// ---- running -------------------------------------------------------------

function handleRun(message, run, interruptBuffer, heap, send) {
  if (!message || message.type !== "run") return;
  const { runId, code, limits } = message;
  if (interruptBuffer) new Uint8Array(interruptBuffer)[0] = 0;
  const started = performance.now();
  let payload;
  try {
    payload = run(code, JSON.stringify(limits));
  } catch (err) {
    // Only reached when the interrupt lands outside the user's code, or the
    // interpreter itself failed; report it the same way as a Python error.
    payload = JSON.stringify({
      figures: [],
      stdout: "",
      stderr: "",
      error: { type: err.type || "InterpreterError", message: String(err.message || err), traceback: String(err) },
    });
  }
  send({ type: "result", runId, payload, execMs: performance.now() - started, heapBytes: heap() });
}

async function fetchTree(assetBase, precompiled) {
  const [index, data] = await Promise.all([
    fetchJson(new URL(precompiled["site-packages.json"], assetBase)),
    fetchBytes(new URL(precompiled["site-packages.bin"], assetBase)),
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
