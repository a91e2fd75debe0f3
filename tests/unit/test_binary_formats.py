"""JPEG, WebP and PDF files: listed with their sizes, served with their types, the PDF as a strict download,
held to their limits (shared/jobs.py, shared/figure_files.py, shared/page_contract.py)."""

import base64

from shared.figure_files import PDF_POLICY, PNG_POLICY
from shared.jobs import figure_view
from shared.messages import Figure
from shared.page_contract import OutputLimits, bounded_answer
from shared.settings import Settings
from tests.unit.test_figure_files import viewer_with

JPEG = b"\xff\xd8\xff\xe0fake jpeg"
WEBP = b"RIFF\x00\x00\x00\x00WEBPfake"
PDF = b"%PDF-1.4 fake"


def encoded(data: bytes) -> str:
    return base64.b64encode(data).decode()


FIGURE = {"jpeg": encoded(JPEG), "webp": encoded(WEBP), "pdf": encoded(PDF)}


def test_every_binary_file_is_listed_with_its_size():
    view = figure_view(0, Figure(**FIGURE), frozenset())
    assert view["files"] == {"jpeg": {"bytes": len(JPEG)}, "webp": {"bytes": len(WEBP)}, "pdf": {"bytes": len(PDF)}}


async def test_the_viewer_serves_jpeg_webp_and_the_pdf_as_downloads_and_jpg_is_a_jpeg():
    client = await viewer_with([FIGURE])
    try:
        for name, kind, body, policy in (
            ("0.jpeg", "image/jpeg", JPEG, PNG_POLICY),
            ("0.jpg", "image/jpeg", JPEG, PNG_POLICY),
            ("0.webp", "image/webp", WEBP, PNG_POLICY),
            ("0.pdf", "application/pdf", PDF, PDF_POLICY),
        ):
            response = await client.get(f"/api/jobs/a1/figures/{name}")
            assert response.status == 200 and response.content_type == kind, name
            assert await response.read() == body
            assert response.headers["Content-Security-Policy"] == policy
            extension = "jpeg" if name == "0.jpg" else name.split(".")[1]
            assert response.headers["Content-Disposition"] == f'attachment; filename="a1-0.{extension}"'
        missing = await client.get("/api/jobs/a1/figures/0.png")
        assert missing.status == 404 and "asked for no PNG" in (await missing.json())["error"]
    finally:
        await client.close()


def answer(**figure) -> dict:
    return {
        "figures": [figure],
        "stdout": "",
        "stderr": "",
        "error": None,
        "packages": [],
        "warnings": [],
        "timings": {"wait_ms": 0, "load_ms": 0, "run_ms": 0, "svg_ms": 0},
    }


def test_a_pdf_or_a_jpeg_over_its_limit_fails_the_job():
    limits = OutputLimits.from_settings(Settings(_env_file=None, max_pdf_bytes=10, max_png_bytes=10))
    pdf = bounded_answer(answer(pdf=encoded(b"x" * 30)), limits)
    assert pdf.error.type == "OutputLimitExceeded" and "bytes of PDF; the limit is 10" in pdf.error.message
    jpeg = bounded_answer(answer(jpeg=encoded(b"x" * 30)), limits)
    assert jpeg.error.type == "OutputLimitExceeded" and "bytes of JPEG; the limit is 10" in jpeg.error.message
    small = bounded_answer(answer(pdf=encoded(b"x" * 6), webp=encoded(b"x" * 6)), limits)
    assert small.error is None and small.figures[0].pdf is not None
