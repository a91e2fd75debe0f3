"""The interpreter snapshot on disk, so a renderer restart restores it instead of making it.

Making the snapshot (start CPython, import numpy, pandas and plotly, warm up)
is most of a cold start: 4–5 s of the 6–7 on the 2-core development machine.
Reading a stored one back and compiling its WebAssembly takes about one.

The layout, in ``PLOTFARM_SNAPSHOT_STORE_DIR`` (build/snapshots by default)::

    KEY/snapshot.json   the page's index (stored-snapshot.mjs) + our size and sha256 of the body
    KEY/snapshot.bin    the memory snapshot and the site-packages files

KEY changes with every pinned asset and every file of web/runtime/ (the
worker, the capture module, the warm-up), so a new build never restores an
old snapshot; storing one deletes every other build's.

Who writes it, and when, is the security argument: only this service, from a
page that has not yet run a job (before the renderer consumes), through the
DevTools protocol. Chromium and the asset server, the only things a job's code
could ever reach, can read it and nothing more. A stored snapshot that does
not match its sha256 is not offered; one that fails to load or restore is
replaced (the page reports it, see renderer.mjs).
"""

import asyncio
import base64
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import structlog
from playwright.async_api import Page

from shared.assets import AssetStore
from shared.settings import Settings

log = structlog.get_logger()

INDEX, BODY = "snapshot.json", "snapshot.bin"
READ_CHUNK = 8 << 20  # bytes per DevTools IO.read (larger chunks were slower, not faster)
STALE_STAGING_S = 600  # a staging directory this old belongs to a renderer that died while storing


class StoredSnapshot:
    def __init__(self, settings: Settings):
        self.enabled = settings.stored_snapshot
        self.root = settings.snapshot_store_dir  # the launcher shows the asset server this, read-only
        self.assets = AssetStore(settings)

    async def prepare(self) -> None:
        """Make the directory before Chromium starts (the launcher shows it to the asset server then)."""
        if not self.enabled:
            return
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(os.chmod, self.root, 0o755)
        except OSError as exc:
            log.warning("cannot keep snapshots on disk; each start makes one", path=str(self.root), problem=str(exc))
            self.enabled = False

    @property
    def key(self) -> str:
        return self.assets.digest("runtime")

    async def find(self) -> str | None:
        """The key of a stored snapshot for this build that is whole, else None."""
        if not self.enabled:
            return None
        return await asyncio.to_thread(self._find)

    def _find(self) -> str | None:
        folder = self.root / self.key
        if not (folder / INDEX).is_file():  # a stored snapshot appears whole (one rename), index included
            return None
        try:
            index = json.loads((folder / INDEX).read_text())
            size, expected = index["stored"]["size"], index["stored"]["sha256"]
            body = folder / BODY
            if body.stat().st_size != size or _sha256(body) != expected:
                raise ValueError(f"{body} does not match its index")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("stored snapshot is damaged; a new one will be made", problem=str(exc)[:300])
            self.forget()
            return None
        return self.key

    def forget(self) -> None:
        shutil.rmtree(self.root / self.key, ignore_errors=True)

    async def save(self, page: Page) -> None:
        """Store the page's snapshot; never fails the renderer (a failure is logged, and the next start makes one)."""
        if not self.enabled:
            return
        try:
            stored = await self._save(page)
        except Exception as exc:  # noqa: BLE001  (a cache: the renderer works without it)
            log.warning("could not store the interpreter snapshot", problem=f"{type(exc).__name__}: {exc}"[:300])
            return
        log.info("interpreter snapshot stored", path=str(stored), mb=round(_size(stored) / 1e6))

    async def _save(self, page: Page) -> Path:
        staging = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=".staging-", dir=self.root))
        try:
            cdp = await page.context.new_cdp_session(page)
            try:
                index = await self._read_body(cdp, staging / BODY)
            finally:
                await cdp.detach()
            await asyncio.to_thread(self._publish, staging, index)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.root / self.key

    async def _read_body(self, cdp, path: Path) -> dict:
        """Write the page's snapshot body to ``path`` through DevTools' blob reader; the index, with its checks."""
        made = await cdp.send("Runtime.evaluate", {"expression": "plotfarm.snapshotForStorage()"})
        holder = made["result"].get("objectId")
        if holder is None:
            raise RuntimeError("the page has no snapshot to store")
        try:
            index = await _call(cdp, holder, "function () { return this.index; }", by_value=True)
            blob = await _call(cdp, holder, "function () { return this.body; }")
            uuid = (await cdp.send("IO.resolveBlob", {"objectId": blob["objectId"]}))["uuid"]
            handle, hasher, written = f"blob:{uuid}", hashlib.sha256(), 0
            with path.open("wb") as out:
                while True:
                    chunk = await cdp.send("IO.read", {"handle": handle, "size": READ_CHUNK})
                    data = base64.b64decode(chunk["data"]) if chunk.get("base64Encoded") else chunk["data"].encode()
                    hasher.update(data)
                    await asyncio.to_thread(out.write, data)
                    written += len(data)
                    if chunk["eof"]:
                        break
            await cdp.send("IO.close", {"handle": handle})
        finally:
            await cdp.send("Runtime.releaseObject", {"objectId": holder})
        if written != index["size"]:
            raise RuntimeError(f"read {written} bytes of the snapshot, its index says {index['size']}")
        return {**index, "stored": {"size": written, "sha256": hasher.hexdigest()}}

    def _publish(self, staging: Path, index: dict) -> None:
        """Move the staged snapshot into place in one rename; drop other builds' snapshots."""
        (staging / INDEX).write_text(json.dumps(index))
        # The asset server runs as Chromium's unprivileged user: it must be able to read these.
        os.chmod(staging, 0o755)
        for file in staging.iterdir():
            os.chmod(file, 0o644)
        target = self.root / self.key
        shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / INDEX).is_file():
                raise
            # Another renderer stored the same build's snapshot meanwhile: as good as ours.
        for other in self.root.iterdir():
            abandoned = other.name.startswith(".staging-") and time.time() - other.stat().st_mtime > STALE_STAGING_S
            if other.name != self.key and (abandoned or not other.name.startswith(".staging-")):
                shutil.rmtree(other, ignore_errors=True)


async def _call(cdp, object_id: str, function: str, *, by_value: bool = False) -> dict:
    answer = await cdp.send(
        "Runtime.callFunctionOn",
        {"objectId": object_id, "functionDeclaration": function, "returnByValue": by_value},
    )
    if "exceptionDetails" in answer:
        raise RuntimeError(answer["exceptionDetails"].get("text", "the page threw"))
    return answer["result"]["value"] if by_value else answer["result"]


def _sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(READ_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir())
