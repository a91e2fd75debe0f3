"""The stored snapshot's files: found only when whole, published in one rename, one build kept.

The page side (reading it out over DevTools, restoring from it, replacing one
that does not restore) is proven for real in
tests/integration/test_stored_snapshot.py; this is the bookkeeping on disk.
"""

import asyncio
import hashlib
import json
import os
import time

import pytest

from services.renderer.stored_snapshot import BODY, INDEX, STALE_STAGING_S, StoredSnapshot
from shared.settings import Settings

KEY = "0123456789ab"


class FixedKey(StoredSnapshot):
    key = KEY  # the real one hashes the build's assets; not what is under test here


@pytest.fixture
def store(tmp_path):
    return FixedKey(Settings(_env_file=None, snapshot_store_dir=tmp_path / "snapshots"))


def staged(store: StoredSnapshot, body: bytes = b"snapshot and files") -> tuple:
    store.root.mkdir(parents=True, exist_ok=True)
    staging = store.root / f".staging-{time.monotonic_ns()}"
    staging.mkdir()
    (staging / BODY).write_bytes(body)
    index = {"format": 1, "stored": {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}}
    return staging, index


def test_nothing_stored_is_nothing_found(store):
    assert store._find() is None


def test_a_published_snapshot_is_found_and_readable_by_others(store):
    staging, index = staged(store)
    store._publish(staging, index)
    assert store._find() == KEY
    assert not staging.exists()
    folder = store.root / KEY
    assert json.loads((folder / INDEX).read_text()) == index
    assert oct(folder.stat().st_mode & 0o777) == "0o755"  # the asset server is another user
    assert {oct(f.stat().st_mode & 0o777) for f in folder.iterdir()} == {"0o644"}


@pytest.mark.parametrize(
    "damage",
    [
        lambda folder: (folder / BODY).write_bytes(b"snapshot and fileZ"),  # same size, other bytes
        lambda folder: (folder / BODY).write_bytes(b"snapshot"),  # truncated
        lambda folder: (folder / INDEX).write_text('{"format": 1, "stored": {"size"'),  # truncated index
        lambda folder: (folder / BODY).unlink(),
    ],
)
def test_a_damaged_snapshot_is_not_found_and_is_deleted(store, damage):
    staging, index = staged(store)
    store._publish(staging, index)
    damage(store.root / KEY)
    assert store._find() is None
    assert not (store.root / KEY).exists()


def test_publishing_keeps_one_build_and_others_staging_until_abandoned(store):
    old_build = store.root / "fedcba987654"
    staging, index = staged(store)
    old_build.mkdir()
    (old_build / INDEX).write_text("{}")
    busy, _ = staged(store)  # another renderer storing right now
    abandoned, _ = staged(store)  # a renderer that died while storing
    long_ago = time.time() - STALE_STAGING_S - 60
    os.utime(abandoned, (long_ago, long_ago))
    store._publish(staging, index)
    assert sorted(p.name for p in store.root.iterdir()) == sorted([KEY, busy.name])


def test_disabled_finds_nothing(tmp_path):
    store = FixedKey(Settings(_env_file=None, snapshot_store_dir=tmp_path, stored_snapshot=False))
    staging, index = staged(store)
    store._publish(staging, index)
    assert asyncio.run(store.find()) is None
