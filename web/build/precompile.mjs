// Build step (`make assets`): compile Python bytecode ahead of time, inside
// Pyodide itself (the same CPython the browser runs, so the .pyc files match),
// so that an interpreter starting in the browser imports instead of compiling.
//
//   node web/build/precompile.mjs OUT_DIR WHEEL...
//
// writes OUT_DIR/python_stdlib.zip   the stdlib zip, each .py joined by its .pyc
//        OUT_DIR/site-packages.json  {paths, sizes, mtimes} of the installed wheels
//        OUT_DIR/site-packages.bin   their bytes, concatenated (with __pycache__)
// The .pyc files are "unchecked hash" pycs: valid whatever the files' dates.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { loadPyodide } from "../node_modules/pyodide/pyodide.mjs";
import { exportTree } from "../runtime/fstree.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const [outDir, ...wheels] = process.argv.slice(2);
if (!outDir || !wheels.length) {
  console.error("usage: node precompile.mjs OUT_DIR WHEEL...");
  process.exit(2);
}
const started = performance.now();
const pyodide = await loadPyodide({ indexURL: resolve(here, "../node_modules/pyodide") + "/", stdout: () => {}, stderr: () => {} });
const site = pyodide.runPython("import sysconfig; sysconfig.get_paths()['purelib']").replace(/^\/+/, "/");
for (const wheel of wheels) {
  pyodide.unpackArchive(new Uint8Array(readFileSync(wheel)), "wheel", { extractDir: site });
}
pyodide.runPython(readFileSync(join(here, "precompile.py"), "utf8"));
pyodide.globals.get("precompile")(site, "/tmp/python_stdlib.zip");

mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, "python_stdlib.zip"), pyodide.FS.readFile("/tmp/python_stdlib.zip"));
const { paths, sizes, mtimes, data } = exportTree(pyodide.FS, site);
writeFileSync(join(outDir, "site-packages.json"), JSON.stringify({ site, paths, sizes, mtimes }));
writeFileSync(join(outDir, "site-packages.bin"), data);
console.log(
  `precompiled stdlib and ${paths.length} site-packages files (${(data.length / 1e6).toFixed(1)} MB) ` +
    `in ${((performance.now() - started) / 1000).toFixed(1)} s`,
);
