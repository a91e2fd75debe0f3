// An Emscripten filesystem over a tree exported by fstree.mjs, for the
// site-packages of an interpreter restored from a snapshot.
//
// Why: copying the snapshot's ~5,000 site-packages files (~57 MB) into every
// restored interpreter cost more than half of a restore, for files almost
// none of which a job reads again (what the snapshot imported is already in
// its memory). Here nodes are made only when a path is looked up, and a file's
// bytes are copied only when read, straight from the snapshot's buffer into
// the interpreter's own memory.
//
// The snapshot's files are read-only (EACCES by their modes, EROFS below
// that): no job can change what a later import in it reads. New files and
// directories (packages loaded on demand, a job's own files) are ordinary
// in-memory ones (MEMFS), private to this interpreter like the rest of it.
//
// The buffer may be shared by every interpreter of the pool, so it must never
// become reachable from the code a job runs (`import js`, `pyodide_js`): no
// node or object holds it, only this module's closure; nothing here writes to
// it; and reading copies with intrinsics captured when this module loads,
// before any job's code ran, so a job that replaces `Uint8Array`, its
// `Symbol.species` or `TypedArray.prototype.set` cannot catch a view of it.
// tests/sandbox/test_isolation.py walks everything a job can reach to check.

const Bytes = Uint8Array;
const typedArraySet = Object.getPrototypeOf(Uint8Array.prototype).set;
const apply = Reflect.apply;
const EROFS = 69;
const ENOENT = 44;
const EINVAL = 28;
const DIR_MODE = 0o40755; // writable: new entries may be added beside the snapshot's
const FILE_MODE = 0o100444;
const O_ACCMODE = 3;

/**
 * Mount `tree` ({paths, sizes, mtimes, data}, paths absolute under `mountpoint`) at `mountpoint`.
 */
export function mountSnapshotTree(FS, mountpoint, { paths, sizes, mtimes, data }) {
  const MEMFS = FS.filesystems.MEMFS;
  const buffer = data.buffer;
  const base = data.byteOffset;
  // Directory (relative path) -> name -> entry: {dir} or {offset, size, mtime}. Strings and numbers only.
  const directories = new Map([["", new Map()]]);
  const strip = mountpoint.length + 1;
  let offset = base;
  paths.forEach((path, i) => {
    const parts = path.slice(strip).split("/");
    let dir = "";
    for (let k = 0; k < parts.length - 1; k++) {
      const child = dir ? `${dir}/${parts[k]}` : parts[k];
      if (!directories.has(child)) {
        directories.set(child, new Map());
        directories.get(dir).set(parts[k], { dir: child });
      }
      dir = child;
    }
    directories.get(dir).set(parts[parts.length - 1], { offset, size: sizes[i], mtime: mtimes[i] });
    offset += sizes[i];
  });
  const mountedAt = Date.now();

  const readOnly = () => {
    throw new FS.ErrnoError(EROFS);
  };
  const llseek = (stream, delta, whence) => {
    let position = delta;
    if (whence === 1) position += stream.position;
    else if (whence === 2 && FS.isFile(stream.node.mode)) position += stream.node.entry.size;
    if (position < 0) throw new FS.ErrnoError(EINVAL);
    return position;
  };
  const getattr = (node) => {
    const size = "dir" in node.entry ? 4096 : node.entry.size;
    const time = new Date(node.timestamp);
    return {
      dev: 1, ino: node.id, mode: node.mode, nlink: 1, uid: 0, gid: 0, rdev: 0, size,
      atime: time, mtime: time, ctime: time, blksize: 4096, blocks: Math.ceil(size / 4096),
    };
  };
  // Entries a job (or the package loader) added live in `node.contents`, as in MEMFS.
  const added = (parent, name) => Object.prototype.hasOwnProperty.call(parent.contents, name);
  const inSnapshot = (dir, name) => "entry" in dir && directories.get(dir.entry.dir).has(name);
  const dirOps = {
    node: {
      getattr,
      setattr(node, attr) {
        if (attr.mode !== undefined) node.mode = attr.mode;
        if (attr.timestamp !== undefined) node.timestamp = attr.timestamp;
      },
      lookup(parent, name) {
        const entry = directories.get(parent.entry.dir).get(name);
        if (!entry) throw new FS.ErrnoError(ENOENT);
        return makeNode(parent, name, entry);
      },
      readdir: (node) => [".", "..", ...directories.get(node.entry.dir).keys(), ...Object.keys(node.contents)],
      mknod: (parent, name, mode, dev) => MEMFS.createNode(parent, name, mode, dev),
      rename(node, newDir, newName) {
        if (!added(node.parent, node.name) || inSnapshot(newDir, newName)) readOnly();
        MEMFS.node_ops.rename(node, newDir, newName);
      },
      unlink(parent, name) {
        if (!added(parent, name)) readOnly();
        MEMFS.node_ops.unlink(parent, name);
      },
      rmdir(parent, name) {
        if (!added(parent, name)) readOnly();
        MEMFS.node_ops.rmdir(parent, name);
      },
      symlink: (parent, name, target) => MEMFS.node_ops.symlink(parent, name, target),
    },
    stream: { llseek },
  };
  const fileOps = {
    node: { getattr, setattr: readOnly },
    stream: {
      open(stream) {
        if ((stream.flags & O_ACCMODE) !== 0) throw new FS.ErrnoError(EROFS);
      },
      read(stream, target, at, length, position) {
        const { offset: start, size } = stream.node.entry;
        if (position >= size) return 0;
        const count = Math.min(length, size - position);
        apply(typedArraySet, target, [new Bytes(buffer, start + position, count), at]);
        return count;
      },
      write: readOnly,
      llseek,
    },
  };

  function makeNode(parent, name, entry) {
    const ops = "dir" in entry ? dirOps : fileOps;
    const node = FS.createNode(parent, name, "dir" in entry ? DIR_MODE : FILE_MODE, 0);
    node.node_ops = ops.node;
    node.stream_ops = ops.stream;
    node.entry = entry;
    node.timestamp = "dir" in entry ? mountedAt : entry.mtime;
    if ("dir" in entry) node.contents = {};
    return node;
  }

  FS.mkdirTree(mountpoint);
  FS.mount({ mount: () => makeNode(null, "/", { dir: "" }) }, {}, mountpoint);
}
