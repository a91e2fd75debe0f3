// The renderer's interpreter template (see interpreter-worker.mjs), kept on
// disk between renderer starts, so that a restart restores it in about a
// second instead of making one (booting CPython, importing numpy, pandas and
// plotly, the warm-up: four to five seconds).
//
// The renderer service writes it (services/renderer/stored_template.py): it
// reads `storableTemplate`'s blob out of the page over the DevTools protocol
// before the page takes its first job, and the asset server, read-only like
// everything else Chromium can reach, serves it back on the next start under
// a key that changes with the build (templates/KEY/template.{json,bin}).
//
// Stored: the memory snapshot and the site-packages files (template.bin) and
// the rest, small, as JSON. Not stored, because the build's own files hold
// them: the stdlib zip, the lock file, and the compiled WebAssembly modules
// (the interpreter's, compiled again from pyodide.asm.wasm, and the shared
// libraries', from the precompiled layers they were loaded from).

export const STORED_FORMAT = 1;

/** On the page: the template as {index (JSON), body (a Blob)}; the body's parts are listed in the index. */
export function storableTemplate(template) {
  const { snapshot, files, libraries, openFiles, linkState, installed, site } = template;
  const { data, ...fileIndex } = files;
  const parts = {};
  const chunks = [];
  let offset = 0;
  // The snapshot first, at offset 0: its header is read as 32-bit words.
  for (const [key, view] of [["snapshot", snapshot], ["files", data]]) {
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
 * In a worker: the stored template at `stored` ({index, data} URLs), as
 * makeTemplate would have made it with `shared`: big buffers in shared
 * memory, modules compiled. Throws, saying why, when it cannot be used.
 */
export async function loadStoredTemplate(assetBase, stored) {
  const url = (path) => new URL(path, assetBase);
  const wasmModule = WebAssembly.compileStreaming(fetch(url("pyodide/pyodide.asm.wasm")));
  const manifest = await fetchOk(url("manifest.json")).then((r) => r.json());
  const index = await fetchOk(url(stored.index)).then((r) => r.json());
  if (index.format !== STORED_FORMAT) throw new Error(`stored template has format ${index.format}, expected ${STORED_FORMAT}`);
  const [body, stdlib, lockFile, libraries] = await Promise.all([
    fetchShared(url(stored.data), index.size),
    fetchOk(url(manifest.precompiled.stdlib)).then(async (r) => toShared(new Uint8Array(await r.arrayBuffer()))),
    fetchOk(url("pyodide/pyodide-lock.json")).then((r) => r.text()),
    compileStoredLibraries(url, manifest, index.libraries),
  ]);
  const part = (key) => body.subarray(index.parts[key].offset, index.parts[key].offset + index.parts[key].length);
  return {
    snapshot: part("snapshot"),
    files: { ...index.files, data: part("files") },
    openFiles: index.openFiles,
    wasmModule: await wasmModule,
    stdlib,
    lockFile,
    libraries,
    linkState: index.linkState,
    installed: index.installed,
    site: index.site,
  };
}

/** The shared libraries, compiled from the precompiled layers' bytes, placed where the template had them. */
async function compileStoredLibraries(url, manifest, stored) {
  const wanted = new Set(stored.map((library) => library.path));
  const found = new Map();
  for (const layer of Object.values(manifest.precompiled)) {
    if (typeof layer === "string") continue; // the stdlib zip
    const tree = await fetchOk(url(layer.index)).then((r) => r.json());
    const hits = [];
    let offset = 0;
    tree.paths.forEach((path, i) => {
      if (wanted.has(path)) hits.push({ path, offset, size: tree.sizes[i] });
      offset += tree.sizes[i];
    });
    if (!hits.length) continue;
    const data = new Uint8Array(await fetchOk(url(layer.data)).then((r) => r.arrayBuffer()));
    for (const { path, offset: at, size } of hits) found.set(path, WebAssembly.compile(data.subarray(at, at + size)));
  }
  return Promise.all(
    stored.map(async ({ path, memoryBase, tableBase }) => {
      if (!found.has(path)) throw new Error(`stored template needs ${path}, which this build does not have`);
      return { path, module: await found.get(path), memoryBase, tableBase };
    }),
  );
}

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot load ${url}: HTTP ${response.status}`);
  return response;
}

/** A download straight into shared memory, checked against the size the index gives. */
async function fetchShared(url, size) {
  const response = await fetchOk(url);
  const shared = new Uint8Array(new SharedArrayBuffer(size));
  let offset = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (offset + value.length > size) throw new Error(`${url} is larger than its index says (${size} bytes)`);
    shared.set(value, offset);
    offset += value.length;
  }
  if (offset !== size) throw new Error(`${url} has ${offset} bytes, its index says ${size}`);
  return shared;
}

function toShared(view) {
  const shared = new Uint8Array(new SharedArrayBuffer(view.length));
  shared.set(view);
  return shared;
}
