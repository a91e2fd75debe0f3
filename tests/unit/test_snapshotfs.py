"""web/runtime/snapshotfs.mjs on a real Emscripten filesystem: Pyodide under Node, driven through Python's os.

A restored interpreter's site-packages are this filesystem over the snapshot's (shared) buffer:
the snapshot's files read like ordinary ones and cannot be changed, new files live beside them,
and nothing the filesystem keeps holds the buffer.
"""

import json
import shutil
import subprocess

import pytest

from shared.settings import PROJECT_ROOT

CHECK = PROJECT_ROOT / "tests" / "unit" / "js" / "snapshotfs-check.mjs"


@pytest.fixture(scope="module")
def report() -> dict:
    node = shutil.which("node")
    assert node, "node is needed (make setup installs the web dependencies with it)"
    assert (PROJECT_ROOT / "web" / "node_modules" / "pyodide").is_dir(), "run `make assets` first"
    done = subprocess.run([node, str(CHECK)], capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_snapshot_files_read_like_ordinary_ones(report):
    assert report["listing"] == ["pkg", "top.py"]
    assert report["sub"] == ["data.txt"]
    assert report["size"] == 10_000
    assert report["tail"] == "56789"  # a read after a seek, to the end
    assert report["empty"] == ""
    assert report["imported"] == 42  # Python imports from it
    assert report["missing"] == "ENOENT"


def test_the_snapshot_files_cannot_be_changed(report):
    assert report["write_snapshot"] == "EACCES"  # read-only modes
    assert report["truncate_snapshot"] == "EACCES"
    for action in ("remove_snapshot", "rename_snapshot", "rmdir_snapshot", "rename_new_over_snapshot"):
        assert report[action] == "EROFS", action
    assert report["snapshot_intact"] == "VALUE = 42\n"


def test_new_files_live_beside_the_snapshot_and_can_be_removed(report):
    assert report["create_new"] == report["mkdir_new"] == "ok"
    assert report["listing_after"] == ["__init__.py", "new.py", "sub"]
    assert report["read_new"] == "NEW = 1"
    assert report["rename_new"] == report["remove_new"] == "ok"
    assert report["listing_end"] == ["__init__.py", "sub"]


def test_no_node_holds_the_shared_buffer(report):
    assert report["nodes_walked"] > 20
    assert report["buffer_holders"] == 0
