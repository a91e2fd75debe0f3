"""The page contract (shared/page_contract.py) and the pure code around it."""

import json

import pytest
from pydantic import ValidationError

from services.renderer.consumer import build_result, internal_failure, sanitized
from shared.messages import RenderJob, RenderResult, utcnow
from shared.page_contract import (
    SCHEMA_PATH,
    OutputLimits,
    PageResult,
    bounded_answer,
    schema_text,
)
from shared.settings import Settings
from shared.vocabulary import ErrorType

SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>hi</text></svg>'


def page_result(**fields) -> PageResult:
    return PageResult.model_validate(answer(**fields))


def answer(**fields) -> dict:
    return {
        "figures": [{"svg": SVG}],
        "stdout": "",
        "stderr": "",
        "error": None,
        "packages": [],
        "warnings": [],
        "timings": {"wait_ms": 1, "load_ms": 0, "run_ms": 2, "svg_ms": 3},
        **fields,
    }


def job() -> RenderJob:
    return RenderJob(job_id="j1", code="x", width=700, height=450, timeout_s=10, submitted_at=utcnow())


def test_the_schema_file_for_the_javascript_side_is_current():
    assert SCHEMA_PATH.read_text() == schema_text(), "run `python -m shared.page_contract`"
    names = set(json.loads(SCHEMA_PATH.read_text())["$defs"])
    assert {"OutputLimits", "RunOutput", "PageResult", "JobError"} <= names


def test_older_results_with_svg_strings_still_parse():
    from shared.messages import RenderResult

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
    assert result.status == "failed" and result.error.type == ErrorType.OUTPUT_LIMIT_EXCEEDED
    assert "the limit is" in result.error.message and result.stdout == "printed" and result.figures == []


def test_an_svg_or_png_over_its_limit_fails_the_job():
    limits = OutputLimits.from_settings(Settings(_env_file=None, max_svg_bytes=len(SVG) + 10, max_png_bytes=1000))
    checked = page_result(figures=[{"svg": SVG}, {"svg": SVG + " " * 100}]).within(limits)
    assert (
        checked.figures == []
        and checked.error.type == ErrorType.OUTPUT_LIMIT_EXCEEDED
        and "figure 2" in checked.error.message
    )
    checked = page_result(figures=[{"svg": SVG, "png": "A" * 2000}]).within(limits)
    assert checked.error.type == ErrorType.OUTPUT_LIMIT_EXCEEDED and "bytes of PNG" in checked.error.message


def test_svgs_are_sanitised():
    dirty = SVG.replace("<text>", '<script>alert(1)</script><text onclick="x()">')
    checked = sanitized(page_result(figures=[{"svg": dirty, "png": "iVBO"}]))
    svg = checked.figures[0].svg
    assert checked.error is None and "script" not in svg and "onclick" not in svg and checked.figures[0].png == "iVBO"


# ---- what the page answers is bounded on the renderer's side (bounded_answer) ----------------


def limits(**settings) -> OutputLimits:
    return OutputLimits.from_settings(Settings(_env_file=None, **settings))


def test_lone_surrogates_anywhere_are_escaped_and_the_result_encodes():
    """print(chr(0xD800)) in a job: the text stays readable (escaped), and the result can be published."""
    lone = "\ud800"
    given = answer(
        stdout=f"a{lone}b",
        stderr=lone,
        warnings=[f"w{lone}"],
        packages=[f"p{lone}"],
        figures=[{"svg": f"<svg>{lone}</svg>", "spec": {"layout": {"title": {"text": lone}}, f"k{lone}": [lone]}}],
    )
    bounded = bounded_answer(given, limits())
    assert bounded.error is None
    assert bounded.stdout == "a\\ud800b" and bounded.stderr == "\\ud800"
    assert bounded.figures[0].spec == {"layout": {"title": {"text": "\\ud800"}}, "k\\ud800": ["\\ud800"]}
    result = build_result(job(), bounded, Settings(_env_file=None), started=utcnow(), attempt=1)
    assert "\\ud800" in RenderResult.model_validate_json(result.model_dump_json()).stdout
    failed = bounded_answer(answer(error={"type": "ValueError", "message": lone, "traceback": lone}), limits())
    assert failed.error.message == "\\ud800" and failed.error.traceback == "\\ud800"
    assert failed.model_dump_json()


def test_a_valid_surrogate_pair_is_kept_as_its_character():
    assert bounded_answer(answer(stdout="\U0001f600"), limits()).stdout == "\U0001f600"


def test_a_figure_nested_too_deep_fails_the_job_instead_of_the_renderer():
    deep: dict = {}
    node = deep
    for _ in range(300):
        node["a"] = {}
        node = node["a"]
    bounded = bounded_answer(answer(figures=[{"svg": SVG, "spec": {"data": [], "layout": deep}}]), limits())
    assert bounded.error.type == ErrorType.OUTPUT_LIMIT_EXCEEDED and "nested" in bounded.error.message
    assert bounded.model_dump_json()
    shallow = {"data": [{"z": [[1, 2], [3, 4]]}], "layout": {"template": {"data": {"bar": [{"marker": {}}]}}}}
    assert bounded_answer(answer(figures=[{"svg": SVG, "spec": shallow}]), limits()).error is None


def test_texts_are_cut_whatever_the_job_did_to_its_own_limits():
    """A job can lift its capture's limits inside its interpreter (sys.stdout.limit = 10**9): not these."""
    given = answer(
        stdout="o" * 500_000,
        stderr="e" * 500_000,
        error={"type": "ValueError", "message": "m" * 500_000, "traceback": "t" * 500_000},
        warnings=["w" * 5000] * 500,
    )
    bounded = bounded_answer(given, limits(max_output_chars=1000, max_error_chars=2000))
    assert len(bounded.stdout) < 1100 and "truncated" in bounded.stdout and len(bounded.stderr) < 1100
    assert len(bounded.error.message) < 2100 and len(bounded.error.traceback) < 2100
    ok = bounded_answer(answer(warnings=["w" * 5000] * 500), limits())
    assert len(ok.warnings) <= 50 and all(len(w) < 1100 for w in ok.warnings)


def test_figures_beyond_their_limits_fail_the_job():
    too_many = bounded_answer(answer(figures=[{"svg": SVG}] * 30), limits(max_figures=20))
    assert too_many.error.type == ErrorType.OUTPUT_LIMIT_EXCEEDED and too_many.figures == []
    big_spec = {"data": [{"y": list(range(100_000))}]}
    too_big = bounded_answer(answer(figures=[{"svg": SVG, "spec": big_spec}]), limits(max_figure_bytes=10_000))
    assert too_big.error.type == ErrorType.OUTPUT_LIMIT_EXCEEDED and "bytes of JSON" in too_big.error.message


def test_an_answer_of_the_wrong_shape_fails_the_job_as_our_error():
    for wrong in (None, [], "text", {"figures": "no"}, answer(stdout=5), answer(extra=1)):
        bounded = bounded_answer(wrong, limits())
        assert bounded.error.type == ErrorType.RENDERER_ERROR and bounded.model_dump_json()


def test_a_job_we_could_not_handle_still_gets_an_encodable_answer():
    result = internal_failure(job(), Settings(_env_file=None), ValueError("bad \ud800 thing"), attempt=2)
    assert result.status == "failed" and result.error.type == ErrorType.RENDERER_ERROR and result.attempt == 2
    assert "\\ud800" in RenderResult.model_validate_json(result.model_dump_json()).error.message
