"""Every SVG is the user's output: strip anything active before anyone sees it.

User code only reaches the page through figure JSON, and plotly.js writes the
SVG, but crafted figures (titles, annotations, hover text) still end up as
markup, and a result may be opened as a document, inlined into someone's
page, or served by the gateway. Cloudflare's svg-hush (through py-svg-hush)
removes scripts, event-handler attributes, ``javascript:`` and external URLs,
and anything not SVG (``foreignObject`` content); embedded raster images
(scattergl, ``layout.images``) are kept only as ``data:`` images. It keeps
same-origin URLs, though (``style="fill:url(/p.svg#p)"``, ``<image href="/x.png">``),
so svg_urls.py then leaves only references into the SVG itself (``url(#clip…)``).
"""

from py_svg_hush import filter_svg

from services.renderer.svg_urls import UnreadableSvg, clean_svg_urls

KEEP_DATA_URLS = {"image": ["png", "jpeg", "gif", "webp"]}
XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>'


class UnsafeSvg(Exception):
    """svg-hush could not parse the SVG, so it is not published."""


def sanitize_svg(svg: str) -> str:
    try:
        cleaned = filter_svg(svg.encode(), keep_data_url_mime_types=KEEP_DATA_URLS).decode()
    except Exception as exc:  # the binding raises plain exceptions
        raise UnsafeSvg(f"the SVG could not be sanitised: {exc}") from exc
    cleaned = cleaned.removeprefix(XML_DECLARATION).lstrip()
    try:
        return clean_svg_urls(cleaned)
    except UnreadableSvg as exc:
        raise UnsafeSvg(f"the SVG could not be sanitised: {exc}") from exc
