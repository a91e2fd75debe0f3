// The client page's own interpreter snapshot (see interpreter-worker.mjs),
// kept in this browser's Origin Private File System (OPFS), so that a repeat
// visit (and a restart after Stop) restores a ready Python in well under a
// second instead of starting one.
//
// After the page's first start, a worker of its own makes the snapshot
// (plotly imported and warmed up, without numpy and pandas, which load when a
// run imports them, as on a first visit) and stores it with saveSnapshot; the
// next interpreter's worker reads it with loadSnapshot. Both run in workers,
// with OPFS's synchronous access handles: the bytes go straight between the
// file and the worker's memory, never through the page's thread (busy with
// plotly.js at that moment) nor a copy per message. Stored under the build id
// (in the asset base URL), so a new build never restores an old snapshot;
// storing one deletes every other build's.
//
// Stored: NAME.bin, the memory snapshot, the stdlib zip and the site-packages
// files; NAME.json, the rest. The compiled WebAssembly module cannot be
// stored; it is compiled again from the browser's HTTP cache.

const DIRECTORY = "plotfarm-interpreter-snapshots";

/** The stored name of this build's snapshot: the asset base URL, which carries the build id. */
const storedName = (assetBase) => encodeURIComponent(new URL(assetBase).pathname);

async function directory() {
  const root = await navigator.storage.getDirectory();
  return root.getDirectoryHandle(DIRECTORY, { create: true });
}

/** Whether this browser stored a snapshot for this build (cheap: nothing is read). */
export async function hasSavedSnapshot(assetBase) {
  if (!navigator.storage || !navigator.storage.getDirectory) return false;
  try {
    await (await directory()).getFileHandle(`${storedName(assetBase)}.json`);
    return true;
  } catch {
    return false;
  }
}

/** In a worker: the snapshot stored for this build, ready to restore from; null if there is none. */
export async function loadSnapshot(assetBase) {
  const name = storedName(assetBase);
  let indexFile, bodyHandle;
  try {
    const dir = await directory();
    indexFile = await (await dir.getFileHandle(`${name}.json`)).getFile();
    bodyHandle = await dir.getFileHandle(`${name}.bin`);
  } catch {
    return null;
  }
  const wasm = WebAssembly.compileStreaming(fetch(new URL("pyodide/pyodide.asm.wasm", assetBase)));
  const { parts, files, ...rest } = JSON.parse(await indexFile.text());
  const access = await bodyHandle.createSyncAccessHandle();
  let bytes;
  try {
    bytes = new Uint8Array(access.getSize());
    access.read(bytes, { at: 0 });
  } finally {
    access.close();
  }
  const part = (key) => bytes.subarray(parts[key].offset, parts[key].offset + parts[key].length);
  return { ...rest, memory: part("memory"), stdlib: part("stdlib"), files: { ...files, data: part("files") }, wasmModule: await wasm };
}

/** In a worker: store `snapshot` (from makeSnapshot, without shared libraries) for this build. */
export async function saveSnapshot(assetBase, snapshot) {
  const { memory, stdlib, files, wasmModule: _compiled, libraries, ...rest } = snapshot;
  if (libraries.length) throw new Error("a snapshot with shared libraries cannot be stored (their compiled modules are not storable)");
  const { data, ...fileIndex } = files;
  const name = storedName(assetBase);
  const dir = await directory();
  for await (const entry of dir.keys()) {
    if (!entry.startsWith(`${name}.`)) await dir.removeEntry(entry); // another build's
  }
  // The index last: a snapshot whose body did not make it in is never found.
  await dir.removeEntry(`${name}.json`).catch(() => {});
  const parts = {};
  const body = await (await dir.getFileHandle(`${name}.bin`, { create: true })).createSyncAccessHandle();
  try {
    body.truncate(0);
    let offset = 0;
    for (const [key, view] of [["memory", memory], ["stdlib", stdlib], ["files", data]]) {
      parts[key] = { offset, length: view.length };
      offset += body.write(view, { at: offset });
    }
    body.flush();
  } finally {
    body.close();
  }
  const index = await (await dir.getFileHandle(`${name}.json`, { create: true })).createSyncAccessHandle();
  try {
    const bytes = new TextEncoder().encode(JSON.stringify({ ...rest, libraries: [], files: fileIndex, parts }));
    index.truncate(0);
    index.write(bytes, { at: 0 });
    index.flush();
  } finally {
    index.close();
  }
}

/** Forget this build's stored snapshot (one that failed to restore). */
export async function forgetSnapshot(assetBase) {
  const name = storedName(assetBase);
  const dir = await directory();
  await Promise.all([dir.removeEntry(`${name}.json`).catch(() => {}), dir.removeEntry(`${name}.bin`).catch(() => {})]);
}
