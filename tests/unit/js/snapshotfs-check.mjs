// Exercises web/runtime/snapshotfs.mjs on a real Emscripten filesystem (Pyodide under Node),
// through Python's own os and open(); prints one JSON report for tests/unit/test_snapshotfs.py.
import { loadPyodide } from "../../../web/node_modules/pyodide/pyodide.mjs";
import { exportTree } from "../../../web/runtime/fstree.mjs";
import { mountSnapshotTree } from "../../../web/runtime/snapshotfs.mjs";

const pyodide = await loadPyodide();
const FS = pyodide.FS;
// A tree like site-packages, made in MEMFS and exported as a snapshot carries it.
pyodide.runPython(`
import os
os.makedirs("/src/pkg/sub", exist_ok=True)
open("/src/pkg/__init__.py", "w").write("VALUE = 42\\n")
open("/src/pkg/sub/data.txt", "w").write("0123456789" * 1000)
open("/src/top.py", "w").write("")
`);
const tree = exportTree(FS, "/src");
const shared = new Uint8Array(new SharedArrayBuffer(tree.data.length));
shared.set(tree.data);
const paths = tree.paths.map((p) => p.replace("/src", "/mnt/site"));
mountSnapshotTree(FS, "/mnt/site", { ...tree, paths, data: shared });

const report = JSON.parse(pyodide.runPython(`
import errno, json, os, sys
def outcome(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
site = "/mnt/site"
data = open(f"{site}/pkg/sub/data.txt", "rb")
data.seek(9995)
tail = data.read()
data.close()
sys.path.insert(0, site)
import pkg
report = {
    "listing": sorted(os.listdir(site)),
    "sub": sorted(os.listdir(f"{site}/pkg/sub")),
    "size": os.stat(f"{site}/pkg/sub/data.txt").st_size,
    "empty": open(f"{site}/top.py").read(),
    "tail": tail.decode(),
    "imported": pkg.VALUE,
    "missing": outcome(lambda: os.stat(f"{site}/nope")),
    "write_snapshot": outcome(lambda: open(f"{site}/pkg/__init__.py", "a").write("x")),
    "truncate_snapshot": outcome(lambda: open(f"{site}/pkg/__init__.py", "w")),
    "remove_snapshot": outcome(lambda: os.remove(f"{site}/top.py")),
    "rename_snapshot": outcome(lambda: os.rename(f"{site}/top.py", f"{site}/moved.py")),
    "rmdir_snapshot": outcome(lambda: os.rmdir(f"{site}/pkg/sub")),
    "create_new": outcome(lambda: open(f"{site}/pkg/new.py", "w").write("NEW = 1")),
    "mkdir_new": outcome(lambda: os.makedirs(f"{site}/newpkg/inner")),
}
report["listing_after"] = sorted(os.listdir(f"{site}/pkg"))
report["read_new"] = open(f"{site}/pkg/new.py").read()
report["rename_new_over_snapshot"] = outcome(lambda: os.rename(f"{site}/pkg/new.py", f"{site}/pkg/__init__.py"))
report["rename_new"] = outcome(lambda: os.rename(f"{site}/pkg/new.py", f"{site}/pkg/renamed.py"))
report["remove_new"] = outcome(lambda: os.remove(f"{site}/pkg/renamed.py"))
report["listing_end"] = sorted(os.listdir(f"{site}/pkg"))
report["snapshot_intact"] = open(f"{site}/pkg/__init__.py").read()
json.dumps(report)
`));

// No object the filesystem keeps may hold the (shared) buffer.
const seen = new Set();
const queue = [FS.root];
let holders = 0;
while (queue.length) {
  const obj = queue.pop();
  if (obj === null || typeof obj !== "object" || seen.has(obj)) continue;
  seen.add(obj);
  if (obj === shared || obj === shared.buffer || (ArrayBuffer.isView(obj) && obj.buffer === shared.buffer)) {
    holders += 1;
    continue;
  }
  if (ArrayBuffer.isView(obj)) continue;
  for (const key of Reflect.ownKeys(obj)) {
    const descriptor = Object.getOwnPropertyDescriptor(obj, key);
    if (descriptor && "value" in descriptor) queue.push(descriptor.value);
  }
}
report.buffer_holders = holders;
report.nodes_walked = seen.size;
console.log(JSON.stringify(report));
