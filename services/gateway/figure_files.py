"""One figure of a finished job as a file: ``GET /api/jobs/{id}/figures/{n}.{svg,png,json,html}``.

Every figure is the user's output, so none may run anything on the gateway's
origin: each response carries a Content-Security-Policy with ``sandbox``
(an opaque origin, no cookies, no storage, no requests back to us).

* **svg**: as the renderer made and sanitised it;
* **png**: plotly.js's PNG, kept base64 in the result (so in the events stream);
* **json**: the figure as plotly.js received it (``data``, ``layout``, ``frames``);
* **html**: a standalone interactive page made here, from that JSON, when asked
  for. plotly.js is inlined (the strict build, 4.6 MB): the file then works
  anywhere, offline, saved to disk or mailed, with nothing fetched from us or
  a CDN; and it costs nothing in the events stream, which holds only the JSON.
  Its own scripts may run (sandbox ``allow-scripts``), but it may connect to
  nothing, and the figure's JSON is embedded as data, never as code.
"""

import base64
import html
import json

from aiohttp import web

from shared.assets import AssetStore
from shared.messages import CONTENT_TYPES, Figure

SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
PNG_POLICY = "default-src 'none'; sandbox"
JSON_POLICY = "default-src 'none'; sandbox"
HTML_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
    "font-src data:; worker-src blob:; connect-src 'none'; base-uri 'none'; form-action 'none'; "
    "sandbox allow-scripts allow-downloads"
)

PAGE = """<!doctype html>
<html lang="en">
<head>
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


def json_for_html(value) -> str:
    """JSON that is safe inside a <script type="application/json"> block."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def figure_title(spec: dict) -> str:
    title = (spec.get("layout") or {}).get("title")
    text = title.get("text") if isinstance(title, dict) else title
    return str(text) if text else "plotfarm figure"


def standalone_html(spec: dict, plotly_js: str) -> str:
    # Inside a <script> element, "</script" would end it; in minified JavaScript it can only
    # sit in a string or a regex, where "<\/script" means the same.
    inline_js = plotly_js.replace("</script", "<\\/script")
    return PAGE.format(title=html.escape(figure_title(spec)), plotly_js=inline_js, figure=json_for_html(spec))


class FigureFiles:
    def __init__(self, assets: AssetStore):
        self.assets = assets

    def plotly_js(self) -> str:
        asset = self.assets.get("plotly/plotly.min.js")
        if asset is None:
            raise web.HTTPServiceUnavailable(text="plotly.js is missing on this gateway (run make assets)")
        return asset.body.decode()

    def response(self, figure: Figure, fmt: str, filename: str) -> web.Response:
        """The file, or 404 when the job did not ask for this format."""
        headers = {
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'inline; filename="{filename}.{fmt}"',
        }
        if fmt == "svg" and figure.svg is not None:
            body, policy = figure.svg.encode(), SVG_POLICY
        elif fmt == "png" and figure.png is not None:
            body, policy = base64.b64decode(figure.png), PNG_POLICY
        elif fmt == "json" and figure.spec is not None:
            body, policy = json.dumps(figure.spec).encode(), JSON_POLICY
        elif fmt == "html" and figure.spec is not None:
            body, policy = standalone_html(figure.spec, self.plotly_js()).encode(), HTML_POLICY
        else:
            raise web.HTTPNotFound(text=f'this job\'s figures have no {fmt}: submit it with "formats": ["{fmt}"]')
        headers["Content-Security-Policy"] = policy
        return web.Response(body=body, headers={**headers, "Content-Type": CONTENT_TYPES[fmt]})
