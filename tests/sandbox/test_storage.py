"""No state survives a job: not in the browser's storage, not on the page that draws its figures.

A job owns its worker's JavaScript scope. Whatever storage that scope can
reach belongs to the origin, not to the worker, so a fresh worker alone does
not isolate jobs: the renderer's Chromium refuses every kind of site storage
(its profile's content settings), has the storage features jobs never need
turned off, and empties the origin's storage after every job. The probe
(probes.py) enumerates the storage entry points of the worker's scope rather
than trusting a list, plants a secret through each, and the next jobs look
for it. On the page's side, LaTeX definitions must not carry from one job's
figures to the next one's.
"""

import json
import uuid

import pytest

from tests.sandbox.probes import storage_probe

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]


def report(result: dict) -> dict:
    assert result["status"] == "done", result.get("error")
    return json.loads(result["stdout"].strip().splitlines()[-1])


async def test_no_storage_a_job_can_reach_keeps_anything_for_the_next_job(sandbox_api):
    secret = f"plotfarm-secret-{uuid.uuid4().hex}"
    planted = report(await sandbox_api.render(storage_probe("plant", secret)))
    # Every storage entry point the worker exposes is one the probe covers (a new one fails here).
    assert planted["uncovered"] == [], planted
    # The renderer has two pages (one per job in flight): probe enough times to meet both.
    for _ in range(4):
        probed = report(await sandbox_api.render(storage_probe("probe", secret)))
        leaked = {kind: value for kind, value in probed["outcome"].items() if secret in value}
        assert not leaked, f"a later job read what an earlier one stored: {leaked} (planted: {planted})"
    # Not only read back: nothing could be stored in the first place.
    assert not any(secret in value for value in planted["outcome"].values()), planted


# The first job defines macros (and a command with \newcommand) that expand to long text; the
# second only uses them. Scoped per job, they are undefined there: MathJax draws their names in red.
DEFINES = (
    "import plotly.graph_objects as go\n"
    "go.Figure(go.Bar(y=[1]), layout_title_text=r'$\\def\\secret{\\text{" + "LEAK" * 50 + "}}"
    "\\gdef\\other{\\text{" + "MORE" * 50 + "}}\\newcommand{\\third}{\\text{" + "ALSO" * 50 + "}}\\secret$').show()\n"
)
USES = "import plotly.graph_objects as go\ngo.Figure(go.Bar(y=[1]), layout_title_text=r'$\\secret \\other \\third \\alpha$').show()\n"


async def test_latex_definitions_do_not_reach_the_next_jobs_figures(sandbox_api):
    clean = await sandbox_api.render(USES)
    assert clean["status"] == "done", clean.get("error")
    before = clean["figures"][0]["svg"]
    assert 'fill="red"' in before  # undefined macros, drawn as such
    defined = await sandbox_api.render(DEFINES)
    assert defined["status"] == "done", defined.get("error")
    for _ in range(4):  # whichever page takes it
        after = (await sandbox_api.render(USES))["figures"][0]["svg"]
        # Element ids differ from job to job, not lengths: the same figure, drawn the same.
        assert 'fill="red"' in after and abs(len(after) - len(before)) < 200, (len(before), len(after))
