// The renderer's interpreter snapshot (see interpreter-worker.mjs), kept on
// disk between renderer starts, so that a restart restores it in about a
// second instead of making one (starting CPython, importing numpy, pandas and
// plotly, the warm-up: four to five seconds).
//
// The renderer service writes it (services/renderer/stored_snapshot.py): it
// reads `storableSnapshot`'s blob out of the page over the DevTools protocol
// before the page takes its first job, and the asset server, read-only like
// everything else Chromium can reach, serves it back on the next start under
// a key that changes with the build (snapshots/KEY/snapshot.{json,bin}).
//
// Stored: the memory snapshot and the site-packages files (snapshot.bin) and
// the rest, small, as JSON. Not stored, because the build's own files hold
// them: the stdlib zip, the lock file, and the compiled WebAssembly modules
// (the interpreter's, compiled again from pyodide.asm.wasm, and the shared
// libraries', from the precompiled layers they were loaded from).

export const STORED_FORMAT = 1;

/** On the page: the snapshot as {index (JSON), body (a Blob)}; the body's parts are listed in the index. */
export function storableSnapshot(snapshot) {
  const { memory, files, libraries, openFiles, linkState, installed, site } = snapshot;
  const { data, ...fileIndex } = files;
  const parts = {};
  const chunks = [];
  let offset = 0;
  // The snapshot first, at offset 0: its header is read as 32-bit words.
  for (const [key, view] of [["memory", memory], ["files", data]]) {
    parts[key] = { offset, length: view.length };
    chunks.push(view.slice()); // a Blob takes no shared memory: a private copy
    offset += view.length;
  }
  const index = {
    format: STORED_FORMAT,
    parts,
    size: offset,
    files: fileIndex,
    libraries: libraries.map(({ path, memoryBase, tableBase }) => ({ path, memoryBase, tableBase })),
    openFiles,
    linkState,
    installed,
    site,
  };
  return { index, body: new Blob(chunks) };
}

/**
 * In a worker: the stored snapshot at `stored` ({index, data} URLs), as
 * makeSnapshot would have made it with `shared`: big buffers in shared
 * memory, modules compiled. Throws, saying why, when it cannot be used.
 */
export async function loadStoredSnapshot(assetBase, stored, marks = {}) {
  const url = (path) => new URL(path, assetBase);
  const started = performance.now();
  const timed = (mark) => (value) => ((marks[mark] = performance.now() - started), value);
  // Everything at once: the downloads and the compiles overlap.
  const wasmModule = WebAssembly.compileStreaming(fetch(url("pyodide/pyodide.asm.wasm"))).then(timed("stored_wasm_ms"));
  const bodyResponse = fetchOk(url(stored.data));
  const manifest = fetchOk(url("manifest.json")).then((r) => r.json());
  const compiled = manifest.then((m) => compileLayerLibraries(url, m)).then(timed("stored_libraries_ms"));
  const stdlib = manifest
    .then((m) => fetchOk(url(m.precompiled.stdlib)))
    .then(async (r) => inSharedMemory(new Uint8Array(await r.arrayBuffer())));
  const lockFile = fetchOk(url("pyodide/pyodide-lock.json")).then((r) => r.text());
  const index = await fetchOk(url(stored.index)).then((r) => r.json());
  if (index.format !== STORED_FORMAT) throw new Error(`stored snapshot has format ${index.format}, expected ${STORED_FORMAT}`);
  const body = await readShared(await bodyResponse, index.size).then(timed("stored_body_ms"));
  const modules = await compiled;
  const libraries = index.libraries.map(({ path, memoryBase, tableBase }) => {
    if (!modules.has(path)) throw new Error(`stored snapshot needs ${path}, which this build does not have`);
    return { path, module: modules.get(path), memoryBase, tableBase };
  });
  const part = (key) => body.subarray(index.parts[key].offset, index.parts[key].offset + index.parts[key].length);
  return {
    memory: part("memory"),
    files: { ...index.files, data: part("files") },
    openFiles: index.openFiles,
    wasmModule: await wasmModule,
    stdlib: await stdlib,
    lockFile: await lockFile,
    libraries,
    linkState: index.linkState,
    installed: index.installed,
    site: index.site,
  };
}

/** Every precompiled layer's shared libraries (those a snapshot loads), compiled: path -> module. */
async function compileLayerLibraries(url, manifest) {
  const layers = Object.values(manifest.precompiled).filter((layer) => typeof layer !== "string"); // not the stdlib zip
  const compiled = await Promise.all(
    layers.map(async (layer) => {
      const tree = await fetchOk(url(layer.index)).then((r) => r.json());
      if (!tree.dynlibs.length) return [];
      const data = new Uint8Array(await fetchOk(url(layer.data)).then((r) => r.arrayBuffer()));
      const wanted = new Set(tree.dynlibs);
      const modules = [];
      let offset = 0;
      tree.paths.forEach((path, i) => {
        if (wanted.has(path)) modules.push([path, WebAssembly.compile(data.subarray(offset, offset + tree.sizes[i]))]);
        offset += tree.sizes[i];
      });
      return Promise.all(modules.map(async ([path, module]) => [path, await module]));
    }),
  );
  return new Map(compiled.flat());
}

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot load ${url}: HTTP ${response.status}`);
  return response;
}

/** A download straight into shared memory, checked against the size the index gives. */
async function readShared(response, size) {
  const shared = new Uint8Array(new SharedArrayBuffer(size));
  let offset = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (offset + value.length > size) throw new Error(`${response.url} is larger than its index says (${size} bytes)`);
    shared.set(value, offset);
    offset += value.length;
  }
  if (offset !== size) throw new Error(`${response.url} has ${offset} bytes, its index says ${size}`);
  return shared;
}

/** A copy of `view` in shared memory (the snapshot's buffers are handed to workers by reference). */
export function inSharedMemory(view) {
  const shared = new Uint8Array(new SharedArrayBuffer(view.length));
  shared.set(view);
  return shared;
}
