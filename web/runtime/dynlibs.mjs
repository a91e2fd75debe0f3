// WebAssembly shared libraries (numpy's and pandas' .so files) that survive a
// memory snapshot.
//
// Pyodide's memory snapshot holds the interpreter's linear memory, and so the
// libraries' data, but not what lives in JavaScript: each library's instance,
// the function table it filled, and the dynamic linker's bookkeeping (LDSO,
// GOT). A restored interpreter whose memory points at numpy's functions would
// crash on the first call. So the snapshot loads its libraries through
// `loadLibraries`, which records where each one was placed (memory base,
// table base); a restored interpreter calls `replayLibraries` before the
// memory comes back: the same libraries, instantiated from the same compiled
// modules, in the same order, at the same places. Emscripten's linker is
// deterministic given that order, so the function table and the GOT come out
// identical; `verifyLinkState` checks that they do, so a mismatch fails the
// restore loudly instead of corrupting a job.
//
// Libraries are loaded the way Pyodide loads a package's extension modules
// (locally, never unloaded), so CPython's later dlopen() of the same path
// finds them by name.

const HANDLE_BYTES = 64; // Emscripten's struct dso fields used below end at +36
const LOADED = 8; // u8: 1 once the library has memory and table space
const MEMORY_BASE = 12; // u32
const TABLE_BASE = 20; // u32

/** Compile every library once; the compiled modules are shared with restored workers. */
export async function compileLibraries(FS, paths) {
  return Promise.all(paths.map(async (path) => ({ path, module: await WebAssembly.compile(FS.readFile(path)) })));
}

/** Load libraries into a fresh interpreter, recording where each one went. */
export function loadLibraries(Module, libraries) {
  const placed = libraries.map(({ path, module }) => {
    const handle = Module._calloc(1, HANDLE_BYTES);
    instantiate(Module, path, module, handle);
    return {
      path,
      module,
      memoryBase: Module.HEAPU32[(handle + MEMORY_BASE) >> 2],
      tableBase: Module.HEAPU32[(handle + TABLE_BASE) >> 2],
    };
  });
  Module.reportUndefinedSymbols();
  return placed;
}

/**
 * Load the snapshot's libraries into a module that is about to receive the
 * snapshot's memory: same order, same memory and table bases. Whatever the
 * libraries write into memory now is overwritten by the snapshot right after.
 */
export function replayLibraries(Module, placed) {
  const scratch = Module._calloc(1, HANDLE_BYTES);
  for (const { path, module, memoryBase, tableBase } of placed) {
    Module.HEAPU8.fill(0, scratch, scratch + HANDLE_BYTES);
    Module.HEAP8[scratch + LOADED] = 1;
    Module.HEAPU32[(scratch + MEMORY_BASE) >> 2] = memoryBase;
    Module.HEAPU32[(scratch + TABLE_BASE) >> 2] = tableBase;
    instantiate(Module, path, module, scratch);
    delete Module.LDSO.loadedLibsByHandle[scratch];
  }
  Module.reportUndefinedSymbols();
}

function instantiate(Module, path, module, handle) {
  const flags = { global: false, nodelete: true, allowUndefined: true, loadAsync: false };
  const dso = Module.newDSO(path, handle, "loading");
  dso.global = false;
  const localScope = {};
  dso.exports = Module.loadWebAssemblyModule(module, flags, path, localScope, handle);
  Object.assign(localScope, dso.exports);
  const basename = path.slice(path.lastIndexOf("/") + 1);
  Module.LDSO.loadedLibsByName[basename] ||= dso;
}

/**
 * What must be identical between a snapshot and its restored copies: the
 * function table's size, every GOT entry, and which dlopen() handle (in
 * memory, from CPython's imports) names which library.
 */
export function linkState(Module) {
  const handles = {};
  for (const [handle, dso] of Object.entries(Module.LDSO.loadedLibsByHandle)) handles[handle] = dso.name;
  const got = {};
  for (const [symbol, global] of Object.entries(Module.GOT)) got[symbol] = global.value;
  return { tableSize: Module.wasmTable.length, got, handles };
}

/** After the memory is back: reconnect CPython's dlopen() handles, then compare. */
export function restoreLinkState(Module, expected) {
  for (const [handle, name] of Object.entries(expected.handles)) {
    Module.LDSO.loadedLibsByHandle[handle] = Module.LDSO.loadedLibsByName[name];
  }
  const actual = linkState(Module);
  const problems = [];
  if (actual.tableSize !== expected.tableSize) {
    problems.push(`function table has ${actual.tableSize} entries, the snapshot ${expected.tableSize}`);
  }
  const differing = Object.keys(expected.got).filter((symbol) => actual.got[symbol] !== expected.got[symbol]);
  if (differing.length) problems.push(`${differing.length} GOT entries differ (${differing.slice(0, 3).join(", ")})`);
  if (problems.length) throw new Error(`restored interpreter does not match its snapshot: ${problems.join("; ")}`);
}
