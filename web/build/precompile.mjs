// Build step (`make assets`): compile Python bytecode ahead of time, inside
// Pyodide itself (the same CPython the browser runs, so the .pyc files match),
// so that an interpreter starting in the browser imports instead of compiling.
//
//   node web/build/precompile.mjs OUT_DIR --base WHEEL... --preload WHEEL...
//
// writes OUT_DIR/python_stdlib.zip  the stdlib zip, each .py joined by its .pyc
//        OUT_DIR/base.json, .bin    site-packages of the --base wheels (plotly and
//                                   what it needs): every interpreter starts with them
//        OUT_DIR/preload.json, .bin the --preload wheels (numpy, pandas, ...): the
//                                   renderer's snapshot interpreter imports them
// Each .json is {site, paths, sizes, mtimes, dynlibs}; its .bin holds the
// files' bytes, concatenated. `dynlibs` lists the WebAssembly shared libraries
// (.so) in load order. The .pyc files are "unchecked hash" pycs: valid
// whatever the files' dates.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { loadPyodide } from "../node_modules/pyodide/pyodide.mjs";
import { exportTree } from "../runtime/fstree.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const [outDir, ...rest] = process.argv.slice(2);
const layers = { base: [], preload: [] };
let current = null;
for (const arg of rest) {
  if (arg === "--base" || arg === "--preload") current = layers[arg.slice(2)];
  else if (current) current.push(arg);
}
if (!outDir || !layers.base.length) {
  console.error("usage: node precompile.mjs OUT_DIR --base WHEEL... [--preload WHEEL...]");
  process.exit(2);
}

const started = performance.now();
const pyodide = await loadPyodide({ indexURL: resolve(here, "../node_modules/pyodide") + "/", stdout: () => {}, stderr: () => {} });
const site = pyodide.runPython("import sysconfig; sysconfig.get_paths()['purelib']").replace(/^\/+/, "/");
pyodide.runPython(readFileSync(join(here, "precompile.py"), "utf8"));
const compileSite = pyodide.globals.get("compile_site");

mkdirSync(outDir, { recursive: true });
const seen = new Set();
for (const [name, wheels] of Object.entries(layers)) {
  for (const wheel of wheels) {
    pyodide.unpackArchive(new Uint8Array(readFileSync(wheel)), "wheel", { extractDir: site });
  }
  compileSite(site);
  const tree = exportTree(pyodide.FS, site, { include: (path) => !seen.has(path) });
  tree.paths.forEach((path) => seen.add(path));
  const dynlibs = tree.paths.filter((path) => path.endsWith(".so"));
  writeFileSync(join(outDir, `${name}.json`), JSON.stringify({ site, paths: tree.paths, sizes: tree.sizes, mtimes: tree.mtimes, dynlibs }));
  writeFileSync(join(outDir, `${name}.bin`), tree.data);
  console.log(`precompiled ${name}: ${tree.paths.length} files (${(tree.data.length / 1e6).toFixed(1)} MB, ${dynlibs.length} shared libraries)`);
}
pyodide.globals.get("compile_stdlib")("/tmp/python_stdlib.zip");
writeFileSync(join(outDir, "python_stdlib.zip"), pyodide.FS.readFile("/tmp/python_stdlib.zip"));
console.log(`precompiled the stdlib in ${((performance.now() - started) / 1000).toFixed(1)} s in all`);
