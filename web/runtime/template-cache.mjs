// The client page's own interpreter template (see interpreter-worker.mjs),
// kept in this browser's Cache Storage, so that a repeat visit (and a restart
// after Stop) restores a ready Python in well under a second instead of
// booting one.
//
// The page makes the template in the background after its first boot
// (plotly imported and warmed up, without numpy and pandas, which load when a
// run imports them, as on a first visit) and stores it with saveTemplate; a
// worker restores from it with loadTemplate, off the page's thread (which is
// busy with plotly.js at that moment). It is stored under the asset base URL,
// which carries the build id, so a new build never restores an old template;
// storing one deletes every other build's.
//
// Stored: one body with the memory snapshot, the stdlib zip and the
// site-packages files, and a JSON with the rest. The compiled WebAssembly
// module cannot be stored; it is compiled again from the browser's HTTP cache.

const CACHE_NAME = "plotfarm-interpreter-templates";

const keys = (assetBase) => ({
  body: new URL("interpreter-template.bin", assetBase).href,
  index: new URL("interpreter-template.json", assetBase).href,
});

/** Whether this browser stored a template for this build (cheap: the body is not read). */
export async function hasSavedTemplate(assetBase) {
  if (!self.caches) return false;
  const cache = await caches.open(CACHE_NAME);
  return Boolean(await cache.match(keys(assetBase).index));
}

/** The template this browser stored for this build, ready to restore from; null if there is none. */
export async function loadTemplate(assetBase) {
  if (!self.caches) return null;
  const cache = await caches.open(CACHE_NAME);
  const { body, index } = keys(assetBase);
  const [indexResponse, bodyResponse] = await Promise.all([cache.match(index), cache.match(body)]);
  if (!indexResponse || !bodyResponse) return null;
  const wasm = WebAssembly.compileStreaming(fetch(new URL("pyodide/pyodide.asm.wasm", assetBase)));
  const [{ parts, files, ...rest }, bytes] = await Promise.all([
    indexResponse.json(),
    bodyResponse.arrayBuffer().then((buffer) => new Uint8Array(buffer)),
  ]);
  const part = (name) => bytes.subarray(parts[name].offset, parts[name].offset + parts[name].length);
  return { ...rest, snapshot: part("snapshot"), stdlib: part("stdlib"), files: { ...files, data: part("files") }, wasmModule: await wasm };
}

/** Store `template` (from Interpreter.boot with makeTemplate, without shared libraries) for this build. */
export async function saveTemplate(assetBase, template) {
  const { snapshot, stdlib, files, wasmModule: _compiled, libraries, ...rest } = template;
  if (libraries.length) throw new Error("a template with shared libraries cannot be stored (their compiled modules are not storable)");
  const { data, ...fileIndex } = files;
  const parts = {};
  let offset = 0;
  for (const [name, view] of [["snapshot", snapshot], ["stdlib", stdlib], ["files", data]]) {
    parts[name] = { offset, length: view.length };
    offset += view.length;
  }
  const cache = await caches.open(CACHE_NAME);
  for (const request of await cache.keys()) {
    if (!request.url.startsWith(assetBase)) await cache.delete(request); // another build's
  }
  const { body, index } = keys(assetBase);
  // The index last: a template whose body did not make it in is never found.
  await cache.put(body, new Response(new Blob([snapshot, stdlib, data])));
  await cache.put(index, new Response(JSON.stringify({ ...rest, libraries: [], files: fileIndex, parts })));
}

/** Forget this build's stored template (one that failed to restore). */
export async function forgetTemplate(assetBase) {
  if (!self.caches) return;
  const cache = await caches.open(CACHE_NAME);
  const { body, index } = keys(assetBase);
  await Promise.all([cache.delete(index), cache.delete(body)]);
}
