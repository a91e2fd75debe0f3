"""Job code that plants a secret through every storage API a job's worker can reach, or looks for it.

``storage_probe(mode, secret)``: with ``mode="plant"`` the job enumerates the
storage entry points of its worker's global scope and ``navigator`` (every
property whose name says storage, database, cache, file system, bucket, cookie
or lock and whose value exists, on the objects and their prototypes), writes
``secret`` through each kind it knows, and through Emscripten's IDBFS; with
``mode="probe"`` it reads each back. It prints one JSON line:
``{"entry_points": [...], "uncovered": [...], "outcome": {kind: what it read, or "refused: ..."}}``.
An entry point no kind covers is listed in ``uncovered``, so a test can fail
on it: a new storage API in Chromium must get a planter here, not go unnoticed.
"""

import json

SNAPSHOT = r"""
import asyncio
import json
import re

import js
import pyodide_js
from pyodide.ffi import create_proxy, to_js

MODE, SECRET = json.loads(__SETTINGS__)
STORAGE_WORDS = re.compile(r"storage|indexeddb|idb|cache|filesystem|file_system|bucket|cookie|lock|database|opfs", re.I)
found, outcome = [], {}


def obj(**kw):
    return to_js(kw, dict_converter=js.Object.fromEntries)


def names_of(value):
    names, seen = set(), value
    while seen is not None and not js.Object.is_(seen, js.Object.prototype):
        names.update(js.Object.getOwnPropertyNames(seen))
        seen = js.Object.getPrototypeOf(seen)
    return names


def entry_points():
    for owner_name, owner in (("self", js.self), ("navigator", js.navigator)):
        for name in sorted(names_of(owner)):
            if name[:1].isupper() or not STORAGE_WORDS.search(name):
                continue
            try:
                value = getattr(owner, name)
            except Exception:
                continue
            if value is not None and str(type(value)) != "<class 'pyodide.ffi.JsNull'>":
                found.append(f"{owner_name}.{name}")


def settled(request):
    loop = asyncio.get_event_loop()
    future = loop.create_future()
    request.onsuccess = create_proxy(lambda _e: future.done() or future.set_result(request.result))
    request.onerror = create_proxy(lambda _e: future.done() or future.set_exception(RuntimeError(str(request.error))))
    return future


async def indexed_db(factory):
    opening = factory.open("plotfarm-probe", 1)
    opening.onupgradeneeded = create_proxy(lambda _e: opening.result.createObjectStore("s"))
    db = await settled(opening)
    if MODE == "plant":
        await settled(db.transaction("s", "readwrite").objectStore("s").put(SECRET, "k"))
    return str(await settled(db.transaction("s").objectStore("s").get("k")))


async def cache_storage(caches):
    cache = await caches.open("plotfarm-probe")
    if MODE == "plant":
        await cache.put("/plotfarm-probe", js.Response.new(SECRET))
    match = await cache.match("/plotfarm-probe")
    return str(await match.text()) if match else ""


async def directory(root):
    if MODE == "plant":
        handle = await root.getFileHandle("plotfarm-probe", obj(create=True))
        access = await handle.createSyncAccessHandle()
        access.write(js.TextEncoder.new().encode(SECRET))
        access.flush()
        access.close()
    handle = await root.getFileHandle("plotfarm-probe")
    return str(await (await handle.getFile()).text())


def sync_file_system():
    fs = js.webkitRequestFileSystemSync(js.TEMPORARY if hasattr(js, "TEMPORARY") else 0, 1 << 20)
    entry = fs.root.getFile("plotfarm-probe", obj(create=True))
    if MODE == "plant":
        entry.createWriter().write(js.Blob.new(to_js([SECRET])))
    return str(js.FileReaderSync.new().readAsText(entry.file()))


async def locks():
    if MODE == "plant":
        js.navigator.locks.request(SECRET, create_proxy(lambda _lock: js.Promise.new(create_proxy(lambda _r, _j: None))))
        await asyncio.sleep(0.05)
    return json.dumps((await js.navigator.locks.query()).to_py(), default=str)


async def cookies():
    if MODE == "plant":
        await js.cookieStore.set("plotfarm-probe", SECRET)
    got = await js.cookieStore.get("plotfarm-probe")
    return str(got.value) if got else ""


async def idbfs():
    fs = pyodide_js.FS
    fs.mkdirTree("/plotfarm-idbfs")
    fs.mount(fs.filesystems.IDBFS, obj(), "/plotfarm-idbfs")
    loop = asyncio.get_event_loop()

    def sync(populate):
        future = loop.create_future()
        fs.syncfs(populate, create_proxy(lambda err=None: future.set_exception(RuntimeError(str(err))) if err else future.set_result(None)))
        return future

    await sync(True)
    if MODE == "plant":
        with open("/plotfarm-idbfs/probe.txt", "w") as handle:
            handle.write(SECRET)
        await sync(False)
    with open("/plotfarm-idbfs/probe.txt") as handle:
        return handle.read()


async def opfs():
    return await directory(await js.navigator.storage.getDirectory())


def buckets_then(kind):
    async def reach():
        bucket = await js.navigator.storageBuckets.open("plotfarm-probe")
        if kind == "indexedDB":
            return await indexed_db(bucket.indexedDB)
        if kind == "caches":
            return await cache_storage(bucket.caches)
        return await directory(await bucket.getDirectory())
    return reach


KINDS = {
    "self.indexedDB": [("indexedDB", lambda: indexed_db(js.indexedDB))],
    "self.caches": [("Cache Storage", lambda: cache_storage(js.caches))],
    "navigator.storage": [("origin-private file system", opfs)],
    "navigator.storageBuckets": [(f"storage bucket {k}", buckets_then(k)) for k in ("indexedDB", "caches", "directory")],
    "self.webkitRequestFileSystemSync": [("webkitRequestFileSystemSync", sync_file_system)],
    "self.webkitRequestFileSystem": [],  # the same file system as the sync one
    "self.webkitResolveLocalFileSystemURL": [],  # reads only what the file system holds
    "self.webkitResolveLocalFileSystemSyncURL": [],
    "navigator.locks": [("Web Locks", locks)],
    "self.cookieStore": [("cookieStore", cookies)],
}


async def main():
    entry_points()
    tries = [("Emscripten IDBFS", idbfs)]
    for point in found:
        tries += KINDS.get(point, [])
    for name, attempt in tries:
        try:
            value = attempt()
            if asyncio.iscoroutine(value):
                value = await value
            outcome[name] = str(value)[:200]
        except BaseException as exc:  # refused, or nothing there
            outcome[name] = f"refused: {type(exc).__name__}: {exc}"[:200]


await main()
print(json.dumps({"entry_points": found, "uncovered": [p for p in found if p not in KINDS], "outcome": outcome}))
import plotly.graph_objects as go
go.Figure(go.Bar(y=[1])).show()
"""


def storage_probe(mode: str, secret: str) -> str:
    return SNAPSHOT.replace("__SETTINGS__", repr(json.dumps([mode, secret])))
