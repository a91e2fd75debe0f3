// A directory of an Emscripten filesystem as one buffer, and back.
//
// Used by the build (web/build/precompile.mjs writes site-packages this way)
// and by interpreter-worker.mjs (a starting interpreter imports those layers;
// a snapshot carries its site-packages this way, which interpreters restored
// from it mount with snapshotfs.mjs instead of importing).

/**
 * Every file under `root`, as {paths, sizes, mtimes, data}.
 * `include(path)` picks files; `hollow(path)` keeps a file but not its bytes
 * (a shared library already loaded: only its name is looked up again).
 */
export function exportTree(FS, root, { include = () => true, hollow = () => false } = {}) {
  const paths = [];
  const chunks = [];
  const mtimes = []; // kept, or Python would find every .pyc older than its source
  const walk = (dir) => {
    for (const name of FS.readdir(dir)) {
      if (name === "." || name === "..") continue;
      const path = `${dir}/${name}`;
      const stat = FS.stat(path);
      if (FS.isDir(stat.mode)) walk(path);
      else if (include(path)) {
        paths.push(path);
        chunks.push(hollow(path) ? new Uint8Array(0) : FS.readFile(path));
        mtimes.push(+stat.mtime);
      }
    }
  };
  walk(root);
  const sizes = chunks.map((c) => c.length);
  const data = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
  let offset = 0;
  for (const chunk of chunks) {
    data.set(chunk, offset);
    offset += chunk.length;
  }
  return { paths, sizes, mtimes, data };
}

export function importTree(FS, { paths, sizes, mtimes, data }) {
  let offset = 0;
  const made = new Set();
  paths.forEach((path, i) => {
    const dir = path.slice(0, path.lastIndexOf("/"));
    if (!made.has(dir)) {
      FS.mkdirTree(dir);
      made.add(dir);
    }
    // The file *is* this slice of `data`, which must belong to this
    // interpreter alone: no copy, and no open/write/close per file.
    const node = FS.create(path, 0o644);
    node.contents = data.subarray(offset, offset + sizes[i]);
    node.usedBytes = sizes[i];
    node.mtime = node.ctime = node.atime = mtimes[i];
    offset += sizes[i];
  });
}
