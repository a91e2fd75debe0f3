"""gzip for the client page's assets, made once per build and kept on disk.

A first visit to /client-plot fetches ~68 MB (the interpreter, plotly's
precompiled site-packages, plotly.js), 20 MB gzipped. Compressing it costs
a core a few seconds, so the gateway used to answer an asset's first
request plain and compress it meanwhile: the first visitor after every start
got the 68 MB, with the gateway's compressing competing for the CPU. Now each
gzip is written to ``compressed_assets_dir/BUILD/`` (BUILD: the client page's
build id, which changes with any asset), ``make assets`` makes them all
(``python -m services.gateway.precompress``), and a gateway answers with
them from its first request. A directory it cannot write costs only that:
the gzip is kept in memory, as before.
"""

import contextlib
import gzip
import os
import shutil
import tempfile
from pathlib import Path

import structlog

from shared.assets import Asset, AssetStore

log = structlog.get_logger(__name__)

# Sent gzipped when the browser accepts it and it pays (zips and wheels are compressed already).
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "application/wasm", "application/octet-stream")
MIN_BYTES = 1024
LEVEL = 6
# Kept only when at least this much smaller: inflating costs the browser too.
WORTH = 0.9
NOT_WORTH_IT = b""  # what load() answers for an asset that is better sent plain


def compressible(asset: Asset) -> bool:
    return asset.content_type.startswith(COMPRESSIBLE) and len(asset.body) > MIN_BYTES


def gzipped(body: bytes) -> bytes:
    """The gzip of ``body``, or NOT_WORTH_IT. CPU-bound: call it in a thread."""
    compressed = gzip.compress(body, LEVEL, mtime=0)
    return compressed if len(compressed) < WORTH * len(body) else NOT_WORTH_IT


class CompressedAssets:
    """The gzips of one directory, per build: ``DIR/BUILD/PATH.gz``, or ``PATH.plain`` when gzip does not pay.

    Blocking file I/O throughout: the gateway calls it in a thread.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self._cannot_write = False

    def _file(self, build: str, path: str, suffix: str) -> Path:
        """Where ``path`` (a URL path the AssetStore served) is kept: always inside the directory."""
        parts = [part for part in f"{build}/{path}{suffix}".split("/") if part]
        if any(part in (".", "..") or "\\" in part for part in parts):
            raise ValueError(f"not an asset path: {path!r}")
        return self.directory.joinpath(*parts)

    def load(self, build: str, path: str) -> bytes | None:
        """The stored gzip (NOT_WORTH_IT: send it plain); None when none was made for this build
        (or it cannot be read: then it is made again, in memory if need be)."""
        with contextlib.suppress(OSError):
            return self._file(build, path, ".gz").read_bytes()
        with contextlib.suppress(OSError):
            if self._file(build, path, ".plain").is_file():
                return NOT_WORTH_IT
        return None

    def save(self, build: str, path: str, compressed: bytes) -> None:
        """Keep ``compressed`` (from :func:`gzipped`) for this build; other builds' gzips are deleted."""
        if self._cannot_write:
            return
        target = self._file(build, path, ".gz" if compressed else ".plain")
        try:
            if not (self.directory / build).is_dir():
                self._forget_other_builds(build)
            target.parent.mkdir(parents=True, exist_ok=True)
            # Written beside its name, then renamed: a reader never sees half a file.
            handle, staging = tempfile.mkstemp(dir=target.parent, prefix=".staging-")
            with os.fdopen(handle, "wb") as staged:
                staged.write(compressed)
            os.chmod(staging, 0o644)
            os.replace(staging, target)
        except OSError as exc:
            self._cannot_write = True
            log.warning(
                "cannot keep compressed assets on disk; kept in memory only",
                directory=str(self.directory),
                error=str(exc),
            )

    def _forget_other_builds(self, build: str) -> None:
        if self.directory.is_dir():
            for other in self.directory.iterdir():
                if other.is_dir() and other.name != build:
                    shutil.rmtree(other, ignore_errors=True)


def compress_all(assets: AssetStore, store: CompressedAssets, build: str, skip=()) -> tuple[int, int]:
    """Make the gzip of every compressible asset (not under the ``skip`` heads) that has none for
    ``build``; (made, already there)."""
    made = present = 0
    for path in assets.paths():
        if path.split("/", 1)[0] in skip:
            continue
        if store.load(build, path) is not None:
            present += 1
            continue
        asset = assets.get(path)
        if asset is not None and compressible(asset):
            store.save(build, path, gzipped(asset.body))
            made += 1
    return made, present
