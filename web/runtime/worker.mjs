// One Pyodide interpreter, alone in a dedicated module Web Worker.
//
// The host (host.mjs) talks to it over a private MessagePort handed over in
// the first message, never over the worker's global postMessage: user code
// can reach the worker's global scope through `import js`, but not a port
// held in this module's closure, nor the send function bound before any user
// code ran.
//
//   host -> worker (global, once)  {type: "boot", port, assetBase, interruptBuffer}
//   worker -> host (port)          {type: "ready", timings} | {type: "boot-failed", message}
//   host -> worker (port)          {type: "run", runId, code, limits}
//   worker -> host (port)          {type: "result", runId, payload, execMs}

import { loadPyodide } from "../pyodide/pyodide.mjs";

const CAPTURE_MODULE = "plotfarm_capture";

self.addEventListener("message", onBoot, { once: true });

async function onBoot(event) {
  const { port, assetBase, interruptBuffer } = event.data;
  const send = MessagePort.prototype.postMessage.bind(port);
  try {
    const { run, timings } = await bootInterpreter(assetBase, interruptBuffer);
    port.onmessage = (msg) => handleRun(msg.data, run, interruptBuffer, send);
    send({ type: "ready", timings });
  } catch (err) {
    send({ type: "boot-failed", message: String(err && err.stack ? err.stack : err) });
  }
}

async function bootInterpreter(assetBase, interruptBuffer) {
  const t0 = performance.now();
  // Start every download at once; the interpreter boots while they arrive.
  const wheelBytes = fetchJson(new URL("manifest.json", assetBase)).then((manifest) =>
    Promise.all(manifest.wheels.map((name) => fetchBytes(new URL(`wheels/${name}`, assetBase)))),
  );
  const captureSource = fetchText(new URL(`runtime/${CAPTURE_MODULE}.py`, assetBase));
  const pyodide = await loadPyodide({
    indexURL: new URL("pyodide/", assetBase).href,
    stdout: () => {},
    stderr: () => {},
  });
  const t1 = performance.now();

  const site = pyodide.runPython("import sysconfig; sysconfig.get_paths()['purelib']").replace(/^\/+/, "/");
  for (const bytes of await wheelBytes) {
    pyodide.unpackArchive(bytes, "wheel", { extractDir: site });
  }
  pyodide.FS.writeFile(`${site}/${CAPTURE_MODULE}.py`, await captureSource);
  const t2 = performance.now();

  pyodide.runPython("import importlib; importlib.invalidate_caches()");
  const run = pyodide.pyimport(CAPTURE_MODULE).run;
  const t3 = performance.now();

  if (interruptBuffer) pyodide.setInterruptBuffer(new Uint8Array(interruptBuffer));
  return {
    run,
    timings: { pyodide_ms: t1 - t0, packages_ms: t2 - t1, import_ms: t3 - t2, total_ms: t3 - t0 },
  };
}

function handleRun(message, run, interruptBuffer, send) {
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
  send({ type: "result", runId, payload, execMs: performance.now() - started });
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
