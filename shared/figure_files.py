"""One figure of a finished job as a file, as the gateway and the viewer serve it.

The gateway answers ``GET /api/jobs/{id}/figures/{n}.{format}`` for every
format of the vocabulary (``.jpg`` too, for JPEG), the viewer the same for
its page's downloads (and SVGs too large for its WebSocket messages): both
through :class:`FigureFiles`, so a figure gets the same headers from either.
What differs is asked for by parameter: the viewer's images are downloads
(``Content-Disposition: attachment``) and none of its answers is cached
(``Cache-Control: no-store``).

Every figure is the user's output, so none may run anything on our origins:
each response carries a Content-Security-Policy with ``sandbox`` (an opaque
origin, no cookies, no storage, no requests back to us) and ``nosniff``.

* **svg**: as the renderer made and sanitised it;
* **png**, **jpeg**, **webp**: plotly.js's SVG drawn as pixels, kept base64 in the
  result (so in the events stream); images run nothing, so they are shown inline;
* **pdf**: the sanitised SVG printed by Chromium, vector, kept base64 too; always
  a download (``attachment``), with a policy that lets it do nothing if opened;
* **json**: the figure as plotly.js received it (``data``, ``layout``, ``frames``);
* **html**: a standalone interactive page made here, from that JSON, when asked
  for. plotly.js is inlined (the strict build, 4.6 MB): the file then works
  anywhere, offline, saved to disk or mailed, with nothing fetched from us or
  a CDN; and it costs nothing in the events stream, which holds only the JSON.
  Its own scripts may run (sandbox ``allow-scripts``), but it may connect to
  nothing, and the figure's JSON is embedded as data, never as code.

The HTML page must fetch nothing when a user opens a copy saved to disk either,
where no header applies: it carries its policy in a ``<meta>`` as well (all of
it but ``sandbox``, which a ``<meta>`` cannot set), and the figure in it loses
every URL plotly.js would load (layout images, image traces, GeoJSON given as a
URL, map styles and layers), as the renderer does (web/runtime/fidelity.mjs,
which also says so in the result's warnings). The renderer already leaves them
out of new results; this is for results published before it did, which the
events stream still holds.
"""

import base64
import html
import json
import re

from aiohttp import web

from shared.assets import AssetStore
from shared.messages import Figure
from shared.vocabulary import (
    BINARY_FORMATS,
    CONTENT_TYPES,
    FILE_EXTENSIONS,
    FORMAT_BY_EXTENSION,
    RASTER_FORMATS,
    Format,
)
from shared.web_security import json_for_html

SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
PNG_POLICY = "default-src 'none'; sandbox"
# A PDF is always a download (Content-Disposition: attachment): a browser's PDF viewer would run it on
# our origin otherwise (PDFs can hold scripts and links). If one is opened anyway, the policy lets
# its content do nothing: no scripts, no plugins, no forms, no requests, an opaque origin.
PDF_POLICY = "default-src 'none'; script-src 'none'; object-src 'none'; form-action 'none'; base-uri 'none'; sandbox"
# Every binary format's policy: images like PNG (they run nothing), the PDF strictly.
BINARY_POLICIES = {fmt: PNG_POLICY for fmt in RASTER_FORMATS} | {Format.PDF: PDF_POLICY}
JSON_POLICY = "default-src 'none'; sandbox"
HTML_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
    "font-src data:; worker-src blob:; connect-src 'none'; base-uri 'none'; form-action 'none'; "
    "sandbox allow-scripts allow-downloads"
)

# The header's policy, less what a <meta> policy cannot hold (sandbox; frame-ancestors and reports: none here).
META_POLICY = "; ".join(
    directive
    for directive in HTML_POLICY.split("; ")
    if directive.split()[0] not in ("sandbox", "frame-ancestors", "report-uri", "report-to")
)

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta http-equiv="Content-Security-Policy" content="{policy}">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>html, body {{ margin: 0; height: 100%; }} #plot {{ width: 100%; height: 100%; }}</style>
<script>{plotly_js}</script>
</head>
<body>
<div id="plot"></div>
<script type="application/json" id="figure">{figure}</script>
<script>
const figure = JSON.parse(document.getElementById("figure").textContent);
Plotly.newPlot("plot", figure.data || [], figure.layout || {{}}, {{ responsive: true, displaylogo: false }})
  .then((plot) => (figure.frames ? Plotly.addFrames(plot, figure.frames) : plot));
</script>
</body>
</html>
"""


# The same rules as web/runtime/fidelity.mjs (withoutExternalUrls): keep the two alike.
MAP_KEY = re.compile(r"map(box)?\d*")  # map containers: map, map2, ..., and older figures' mapbox ones
MAP_STYLE_NAMES = frozenset(
    "basic carto-darkmatter carto-darkmatter-nolabels carto-positron carto-positron-nolabels carto-voyager "
    "carto-voyager-nolabels dark light open-street-map outdoors satellite satellite-streets streets white-bg "
    "stamen-terrain stamen-toner stamen-watercolor".split()
)
USER_DATA = frozenset({"customdata", "meta"})  # the figure's own data: plotly.js loads nothing from it
ARRAY_INDEX = re.compile(r"\[\d+\]$")


def is_external_url(value) -> bool:
    """A URL that would be fetched: anything but a ``data:`` URI, a same-document ``#fragment`` or nothing."""
    if not isinstance(value, str):
        return False
    url = value.strip()
    return bool(url) and not url.lower().startswith("data:") and not url.startswith("#")


def url_in(value, name: str) -> str | None:
    """The first URL ``value`` (attribute ``name``: source, geojson or a map's style) would be loaded from."""
    if isinstance(value, str):
        if name == "style" and value.strip() in MAP_STYLE_NAMES:
            return None
        return value if is_external_url(value) else None
    if isinstance(value, list):  # a map layer's tile URLs, or one value per trace in a button's arguments
        return next((url for item in value if isinstance(item, str) and (url := url_in(item, name))), None)
    if name == "style" and isinstance(value, dict):
        return style_url(value)
    return None


def style_url(style: dict) -> str | None:
    """The first URL a map style given as an object (a MapLibre style) loads: its sources, glyphs, sprite."""
    sprite = style.get("sprite")
    sprites = [item.get("url") for item in sprite if isinstance(item, dict)] if isinstance(sprite, list) else [sprite]
    candidates = [style.get("glyphs"), *sprites]
    sources = style.get("sources")
    for source in sources.values() if isinstance(sources, dict) else ():
        if isinstance(source, dict):
            candidates += [source.get("url"), source.get("data")]
            candidates += [*_list(source.get("tiles")), *_list(source.get("urls"))]
    return next((url for url in candidates if is_external_url(url)), None)


def _list(value) -> list:
    return value if isinstance(value, list) else []


def without_external_urls(value, trail: tuple[str, ...] = (), depth: int = 0):
    """A copy of the figure (or part of it) without the attributes that would make plotly.js fetch a URL.

    Everywhere: data, layout, frames, the template, and what buttons and sliders
    set, whose keys are attribute strings ("images[0].source", "map.style").
    """
    if depth > 64:
        return value
    if isinstance(value, list):
        return [
            without_external_urls(item, trail, depth + 1) if isinstance(item, dict | list) else item for item in value
        ]
    if not isinstance(value, dict):
        return value
    out, dropped_source = {}, False
    for key, item in value.items():
        parts = [ARRAY_INDEX.sub("", part) for part in str(key).split(".")]
        name, path = parts[-1], (*trail, *parts)
        if name in USER_DATA:
            out[key] = item
        elif name in ("source", "geojson") or (name == "style" and any(MAP_KEY.fullmatch(part) for part in path)):
            if url_in(item, name) is None:
                out[key] = item  # inline data (a GeoJSON object, a style without URLs), or nothing to load
            else:
                dropped_source = dropped_source or name == "source"
        else:
            out[key] = without_external_urls(item, path, depth + 1)
    if dropped_source and out.get("visible") is True:
        del out["visible"]  # a layout image set visible without its source would still be drawn, from "undefined"
    return out


def figure_title(spec: dict) -> str:
    title = (spec.get("layout") or {}).get("title")
    text = title.get("text") if isinstance(title, dict) else title
    return str(text) if text else "plotfarm figure"


def standalone_html(spec: dict, plotly_js: str) -> str:
    """The interactive page: its own CSP first, plotly.js inline, the figure (without URLs) as data."""
    spec = without_external_urls(spec)
    # Inside a <script> element, "</script" would end it; in minified JavaScript it can only
    # sit in a string or a regex, where "<\/script" means the same.
    inline_js = plotly_js.replace("</script", "<\\/script")
    return PAGE.format(
        policy=html.escape(META_POLICY, quote=False),  # no " in it: the single quotes stay as they are
        title=html.escape(figure_title(spec)),
        plotly_js=inline_js,
        figure=json_for_html(spec),
    )


class FigureFiles:
    def __init__(self, assets: AssetStore):
        self.assets = assets

    def plotly_js(self) -> str:
        asset = self.assets.get("plotly/plotly.min.js")
        if asset is None:
            raise web.HTTPServiceUnavailable(text="plotly.js is missing on this server (run make assets)")
        return asset.body.decode()

    def response(
        self, figure: Figure, fmt: str, filename: str, *, download: bool = False, cache_control: str | None = None
    ) -> web.Response:
        """The file named ``filename.fmt``, or 404 when the job did not ask for this format.

        ``download``: the browser saves it rather than shows it. Blocking (an HTML
        page inlines plotly.js, read from disk the first time): call it in a thread.
        """
        fmt = FORMAT_BY_EXTENSION.get(fmt, fmt)  # .jpg is a JPEG
        if fmt == Format.PDF:
            download = True  # a PDF viewer is a whole program: never opened on our origin
        if fmt == "svg" and figure.svg is not None:
            body, policy = figure.svg.encode(), SVG_POLICY
        elif fmt in BINARY_FORMATS and (encoded := getattr(figure, fmt)) is not None:
            body, policy = base64.b64decode(encoded), BINARY_POLICIES[fmt]
        elif fmt == "json" and figure.spec is not None:
            body, policy = json.dumps(figure.spec).encode(), JSON_POLICY
        elif fmt == "html" and figure.spec is not None:
            body, policy = standalone_html(figure.spec, self.plotly_js()).encode(), HTML_POLICY
        else:
            raise web.HTTPNotFound(text=f'this job\'s figures have no {fmt}: submit it with "formats": ["{fmt}"]')
        headers = {
            "Content-Type": CONTENT_TYPES[fmt],
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'{"attachment" if download else "inline"}; filename="{filename}.{FILE_EXTENSIONS[fmt]}"',
        }
        if cache_control is not None:
            headers["Cache-Control"] = cache_control
        return web.Response(body=body, headers=headers)
