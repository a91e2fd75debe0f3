"""The page contract (shared/page_contract.py) and the pure code around it."""

import json

import pytest
from pydantic import ValidationError

from services.renderer.consumer import build_result, checked_figures
from shared.messages import RenderJob, utcnow
from shared.page_contract import OUTPUT_LIMIT_EXCEEDED, SCHEMA_PATH, PageResult, schema_text
from shared.settings import Settings

SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>hi</text></svg>'


def page_result(**fields) -> PageResult:
    answer = {
        "figures": [{"svg": SVG}],
        "stdout": "",
        "stderr": "",
        "error": None,
        "packages": [],
        "warnings": [],
        "timings": {"wait_ms": 1, "load_ms": 0, "run_ms": 2, "svg_ms": 3},
        **fields,
    }
    return PageResult.model_validate(answer)


def job() -> RenderJob:
    return RenderJob(job_id="j1", code="x", width=700, height=450, timeout_s=10, submitted_at=utcnow())


def test_the_schema_file_for_the_javascript_side_is_current():
    assert SCHEMA_PATH.read_text() == schema_text(), "run `python -m shared.page_contract`"
    names = set(json.loads(SCHEMA_PATH.read_text())["$defs"])
    assert {"OutputLimits", "RunOutput", "PageResult", "JobError"} <= names


def test_older_results_with_svg_strings_still_parse():
    from shared.messages import RenderResult  # noqa: PLC0415

    result = RenderResult.model_validate({"job_id": "j", "status": "done", "figures": [SVG]})
    assert result.figures[0].svg == SVG and result.figures[0].png is None


def test_an_answer_outside_the_contract_is_refused():
    with pytest.raises(ValidationError):
        page_result(svgs=[SVG])  # the field's old name
    with pytest.raises(ValidationError):
        page_result(timedOut=False)  # a field nobody reads any more
    with pytest.raises(ValidationError):
        page_result(timings={"wait_ms": 1, "load_ms": 0, "exec_ms": 2, "svg_ms": 3})  # old timing name


def test_build_result_turns_the_page_answer_into_the_result():
    result = build_result(job(), page_result(), Settings(_env_file=None), started=utcnow(), attempt=1)
    assert result.status == "done" and [figure.svg for figure in result.figures] == [SVG]
    assert (result.timings.wait_ms, result.timings.run_ms, result.timings.svg_ms) == (1, 2, 3)


def test_a_result_over_the_size_limit_fails_the_job_but_keeps_its_output():
    settings = Settings(_env_file=None, max_result_bytes=len(SVG) * 3)
    big = page_result(figures=[{"svg": SVG}] * 5, stdout="printed")
    result = build_result(job(), big, settings, started=utcnow(), attempt=1)
    assert result.status == "failed" and result.error.type == OUTPUT_LIMIT_EXCEEDED
    assert "the limit is" in result.error.message and result.stdout == "printed" and result.figures == []


def test_an_svg_or_png_over_its_limit_fails_the_job():
    settings = Settings(_env_file=None, max_svg_bytes=len(SVG) + 10, max_png_bytes=1000)
    checked = checked_figures(page_result(figures=[{"svg": SVG}, {"svg": SVG + " " * 100}]), settings)
    assert checked.figures == [] and checked.error.type == OUTPUT_LIMIT_EXCEEDED and "figure 2" in checked.error.message
    checked = checked_figures(page_result(figures=[{"svg": SVG, "png": "A" * 2000}]), settings)
    assert checked.error.type == OUTPUT_LIMIT_EXCEEDED and "bytes of PNG" in checked.error.message


def test_svgs_are_sanitised():
    dirty = SVG.replace("<text>", '<script>alert(1)</script><text onclick="x()">')
    checked = checked_figures(page_result(figures=[{"svg": dirty, "png": "iVBO"}]), Settings(_env_file=None))
    svg = checked.figures[0].svg
    assert checked.error is None and "script" not in svg and "onclick" not in svg and checked.figures[0].png == "iVBO"
