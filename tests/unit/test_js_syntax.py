"""Every JavaScript module we serve parses, checked by Node before a browser ever loads it.

A module that does not parse stops its page silently (the renderer page then never defines
``window.plotfarm``): a merge that imports one name twice did exactly that once. Node's
``--check`` parses without running, in about 50 ms a file.
"""

import shutil
import subprocess

import pytest

from tests.support import ROOT

MODULES = sorted(
    path
    for folder in ("web/runtime", "web/renderer", "web/client", "web/viewer", "web/build")
    for pattern in ("*.mjs", "*.js")
    for path in (ROOT / folder).glob(pattern)
)


@pytest.mark.skipif(shutil.which("node") is None, reason="Node is what `make assets` runs; it is needed here too")
@pytest.mark.parametrize("module", MODULES, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_module_parses(module):
    checked = subprocess.run(["node", "--check", str(module)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr


def test_there_are_modules_to_check():
    assert len(MODULES) > 10, MODULES
