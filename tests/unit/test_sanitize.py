"""SVG sanitising keeps plotly's drawing and drops anything active."""

from services.renderer.sanitize import sanitize_svg

EVIL = """<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10" onload="alert(1)">
<script>alert(2)</script><a xlink:href="javascript:alert(3)"><text onmouseover="alert(7)">title</text></a>
<foreignObject><div xmlns="http://www.w3.org/1999/xhtml"><img src="x" onerror="alert(4)"/></div></foreignObject>
<image href="https://evil.example/beacon.png"/><image xlink:href="data:image/png;base64,iVBORw0KGgo="/>
<image href="data:text/html;base64,PHNjcmlwdD5hbGVydCg1KTwvc2NyaXB0Pg=="/>
<text>&lt;script&gt;alert(6)&lt;/script&gt;</text></svg>"""


def test_active_content_is_removed():
    clean = sanitize_svg(EVIL)
    lowered = clean.lower()
    for bad in (
        "<script",
        "onload",
        "onerror",
        "onmouseover",
        "javascript:",
        "foreignobject",
        "evil.example",
        "text/html",
    ):
        assert bad not in lowered, (bad, clean)


def test_text_and_data_images_survive():
    clean = sanitize_svg(EVIL)
    assert "title" in clean
    assert "&lt;script&gt;" in clean  # escaped text stays text
    assert "data:image/png;base64" in clean
    assert clean.startswith("<svg")


def test_plotly_markup_survives():
    svg = (
        '<svg class="main-svg" xmlns="http://www.w3.org/2000/svg" width="700" height="450" viewBox="0 0 700 450">'
        '<defs><clipPath id="c1"><rect width="5" height="5"/></clipPath></defs>'
        '<g clip-path="url(#c1)"><path d="M0,0L5,5" style="stroke: rgb(99, 110, 250);"/></g>'
        '<text class="gtitle" x="35" y="50">a<tspan style="font-weight:bold">b</tspan>c</text></svg>'
    )
    clean = sanitize_svg(svg)
    for kept in (
        'class="main-svg"',
        'viewBox="0 0 700 450"',
        'clip-path="url(#c1)"',
        "M0,0L5,5",
        "a<tspan",
        "</tspan>c",
    ):
        assert kept in clean, (kept, clean)
