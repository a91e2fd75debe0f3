"""A reference ("oracle") for what plotfarm should return, built without plotfarm.

Why it exists: plotfarm runs user code in Pyodide and renders with plotly.js in headless
Chromium, a long chain (wasm interpreter, wheels, capture shim, worker messages, SVG export,
sanitiser) in which a figure can quietly lose a trace, a title or a subplot. To check that
chain we need an independent answer for the same user code. This module produces one:

* :func:`run_user_code` runs the code in *CPython* (this process) with plotly's ``show()``
  captured the way the renderer captures it (``web/runtime/plotfarm_capture.py``), giving
  the reference figure dicts. ``requirements/dev.in`` pins plotly, numpy and pandas to the
  versions inside the Pyodide runtime, so the figures are the ones Pyodide builds.
* :class:`KaleidoOracle` renders figures to SVG with Kaleido 1.x, plotly's own static
  exporter, in Debian's Chromium and with the *same* plotly.js file the renderer serves
  (``web/node_modules/plotly.js-strict-dist-min/plotly-strict.min.js``), fully offline: no CDN, no MathJax,
  and every http(s) request sent to a dead proxy so nothing can reach the network.
* :func:`compare_svgs` compares two plotly.js SVGs by what must agree between two renderings
  of the same figure (trace groups per kind and subplot, subplots, axes, embedded images,
  the visible text), ignoring what legitimately differs (ids, coordinates, clip-paths,
  styles). It also works on SVGs that went through svg-hush (the renderer's sanitiser).

Only for trusted test code: :func:`run_user_code` executes in this very interpreter, with no
sandbox at all. Geo traces need topojson, which plotly.js fetches from a CDN unless
``topojson=`` points at local files, so offline they fail here (as they would in plotfarm).
"""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import re
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PLOTLY_JS = ROOT / "web" / "node_modules" / "plotly.js-strict-dist-min" / "plotly-strict.min.js"
DEFAULT_CHROMIUM = "/usr/lib/chromium/chromium"
# The renderer's default image size (web/runtime/export.mjs); a figure's layout.width/height win.
DEFAULT_WIDTH, DEFAULT_HEIGHT = 700, 450
# Chromium sends every http(s) request here (a port nothing listens on), so a figure that
# would fetch from a CDN fails fast instead of depending on the network. file:// (the page,
# plotly.js) does not go through the proxy.
DEAD_PROXY = "http://127.0.0.1:9"


def chromium_path() -> str:
    """The Chromium Kaleido should drive: PLOTFARM_CHROMIUM_PATH, BROWSER_PATH, or Debian's."""
    return os.environ.get("PLOTFARM_CHROMIUM_PATH") or os.environ.get("BROWSER_PATH") or DEFAULT_CHROMIUM


# ---------------------------------------------------------------------------------------------
# Reference figures: the user's code in CPython
# ---------------------------------------------------------------------------------------------


class NoFigureError(Exception):
    """The code ran but never showed a figure nor left one behind (as in the renderer)."""


_capture_lock = threading.Lock()


def _figure_dict(fig: Any) -> dict:
    """The figure as the renderer ships it: validated, then through JSON (numpy -> lists, dates -> ISO)."""
    from plotly.io._utils import validate_coerce_fig_to_dict
    from plotly.utils import PlotlyJSONEncoder

    return json.loads(json.dumps(validate_coerce_fig_to_dict(fig, validate=True), cls=PlotlyJSONEncoder))


def run_user_code(code: str) -> list[dict]:
    """Run ``code`` in CPython and return the figures it shows, as plain JSON dicts.

    Every ``fig.show()``, ``plotly.io.show(fig)`` (a figure or a dict) records one figure, in
    order. If none was shown, the figure in a variable named ``fig`` is used, else the only
    figure left in the namespace (the renderer's rule); otherwise :class:`NoFigureError`.
    Exceptions from the code propagate. plotly's own ``show`` functions are restored after.
    """
    import plotly.io as pio
    import plotly.io._renderers as pio_renderers
    from plotly.basedatatypes import BaseFigure

    figures: list[dict] = []

    def show(fig=None, *args, **kwargs):
        figures.append(_figure_dict(fig))

    def show_method(self, *args, **kwargs):
        show(self)

    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    with _capture_lock:
        saved = (BaseFigure.show, pio.show, pio_renderers.show)
        BaseFigure.show, pio.show, pio_renderers.show = show_method, show, show
        try:
            exec(compile(code, "<job>", "exec", dont_inherit=True), namespace)
        finally:
            BaseFigure.show, pio.show, pio_renderers.show = saved
    if not figures:
        fig = namespace.get("fig")
        if not (isinstance(fig, BaseFigure) or (isinstance(fig, dict) and "data" in fig)):
            left = [value for value in namespace.values() if isinstance(value, BaseFigure)]
            fig = left[0] if len(left) == 1 else None
        if fig is None:
            raise NoFigureError("the code produced no figure: call fig.show() or leave the figure in `fig`")
        figures.append(_figure_dict(fig))
    return figures


# ---------------------------------------------------------------------------------------------
# Reference SVGs: Kaleido 1.x
# ---------------------------------------------------------------------------------------------


class KaleidoOracle:
    """A persistent Kaleido 1.x browser that turns figure dicts into SVG text.

    Kaleido's API is asyncio (``async with kaleido.Kaleido(...) as k: await k.calc_fig(...)``);
    this class runs one ``Kaleido`` on an event loop in a background thread (as
    ``kaleido.start_sync_server`` does, but without that process-wide singleton) so tests can
    call it synchronously, and renders a batch concurrently over ``tabs`` tabs. Start-up
    (Chromium plus the page) costs a few seconds once; each figure then costs ~0.15-0.3 s.

        with KaleidoOracle() as oracle:
            svgs = oracle.render(run_user_code(code))
    """

    def __init__(
        self,
        *,
        tabs: int = 1,
        timeout: float = 60,
        plotly_js: str | Path = PLOTLY_JS,
        browser_path: str | None = None,
        topojson: str | None = None,
    ) -> None:
        self.tabs = tabs
        self.timeout = timeout
        self.plotly_js = Path(plotly_js)
        self.browser_path = browser_path or chromium_path()
        self.topojson = topojson  # a URL (file://...) of plotly's topojson files, for geo traces
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._kaleido: Any = None

    # lifecycle ---------------------------------------------------------------------------------

    def start(self) -> KaleidoOracle:
        if self._kaleido is not None:
            return self
        if not self.plotly_js.is_file():
            raise FileNotFoundError(f"{self.plotly_js} is missing: run `make assets` (npm plotly.js-strict-dist-min)")
        if not os.access(self.browser_path, os.X_OK):
            raise FileNotFoundError(
                f"no Chromium at {self.browser_path}: install Debian's chromium or set BROWSER_PATH"
            )
        # choreographer (Kaleido's browser driver) reads BROWSER_PATH; path= below is passed as
        # well because a Chrome downloaded by `kaleido_get_chrome` would otherwise win over it.
        os.environ.setdefault("BROWSER_PATH", self.browser_path)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kaleido-oracle", daemon=True)
        self._thread.start()
        try:
            self._kaleido = self._call(self._open(), self.timeout)
        except BaseException:
            self._stop_loop()
            raise
        return self

    async def _open(self):
        import kaleido  # imports plotly and choreographer: only when rendering

        page = kaleido.PageGenerator(plotly=str(self.plotly_js), mathjax=False)
        index = page.generate_index()
        if re.search(r"(?i)\bsrc=\"(?:https?:)?//", index):
            raise RuntimeError(f"Kaleido's page would load a script from the network:\n{index}")
        k = kaleido.Kaleido(
            n=self.tabs,
            timeout=self.timeout,
            page_generator=page,
            path=self.browser_path,
            enable_sandbox=False,  # choreographer then passes --no-sandbox (we run as root)
            enable_gpu=False,  # --disable-gpu; WebGL (splom, parcoords, scattergl) uses SwiftShader
            proxy_server=DEAD_PROXY,
        )
        await k.open()
        return k

    def close(self) -> None:
        if self._kaleido is not None:
            try:
                self._call(self._kaleido.close(), 30)
            finally:
                self._kaleido = None
                self._stop_loop()

    def _stop_loop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> KaleidoOracle:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _call(self, coroutine, timeout: float):
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    # rendering ---------------------------------------------------------------------------------

    def render(
        self,
        figures: dict | Sequence[dict],
        *,
        width: int = DEFAULT_WIDTH,
        height: int = DEFAULT_HEIGHT,
    ) -> list[str]:
        """SVG text for each figure dict (or for one dict), sized like the renderer sizes them."""
        if self._kaleido is None:
            raise RuntimeError("KaleidoOracle is not started (use `with KaleidoOracle() as oracle:`)")
        if isinstance(figures, dict):
            figures = [figures]

        async def render_all():
            return await asyncio.gather(*(self._render_one(fig, width, height) for fig in figures))

        return self._call(render_all(), self.timeout * max(1, len(figures)))

    async def _render_one(self, fig: dict, width: int, height: int) -> str:
        layout = fig.get("layout") or {}
        # Only data and layout reach plotly.js (frames are dropped: an animation shows its
        # first state), in both Kaleido and the renderer.
        spec = {"data": fig.get("data") or [], "layout": layout}
        opts = {"format": "svg", "width": layout.get("width") or width, "height": layout.get("height") or height}
        svg = await self._kaleido.calc_fig(spec, opts=opts, topojson=self.topojson)
        return svg.decode("utf-8")

    def render_code(self, code: str, **size) -> list[str]:
        """Run user code in CPython and render every figure it shows."""
        return self.render(run_user_code(code), **size)


# ---------------------------------------------------------------------------------------------
# Comparing two plotly.js SVGs
# ---------------------------------------------------------------------------------------------

# Trace groups that are neither `g.trace` nor a child of a cartesian `g.mlayer`.
_OWN_CLASS_TRACES = {"parcoords", "sankey", "table"}
# Layers whose direct children are whole subplots (g.polar, g.polar2, g.ternary, g.geo, ...).
_SUBPLOT_LAYERS = {"polarlayer", "ternarylayer", "geolayer", "smithlayer"}
_AXIS_TITLE_GROUP = re.compile(r"^g-([xy]\d*)title$")


@dataclass
class SvgSummary:
    """What two renderings of one figure must agree on."""

    size: tuple[str, str] = ("", "")
    traces: Counter = field(default_factory=Counter)  # "scatter@xy", "pie", "heatmap@x2y2", ...
    subplots: Counter = field(default_factory=Counter)  # "xy", "x2y2", "polar", ...
    axes: Counter = field(default_factory=Counter)  # "x", "x2", "y", ...
    images: Counter = field(default_factory=Counter)  # <image> by container: "hm", "glimages", ...
    texts: Counter = field(default_factory=Counter)  # every non-empty <text>, whitespace-normalised


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _classes(el: ET.Element) -> list[str]:
    return (el.get("class") or "").split()


def _layer_of(ancestors: list[list[str]]) -> str:
    """The nearest enclosing plotly.js layer (scatterlayer -> "scatter", pielayer -> "pie")."""
    for tokens in reversed(ancestors):
        for token in tokens:
            if token.endswith("layer") and token not in {"mlayer", "layer"}:
                return token.removesuffix("layer")
    return "?"


def _where(ancestors: list[list[str]]) -> str:
    """The subplot a trace group sits in ("xy", "x2y2", "polar", "rangeslider"), or ""."""
    parts: list[str] = []
    for i, tokens in enumerate(ancestors):
        if not tokens:
            continue
        if tokens[0] == "subplot" and len(tokens) > 1:
            parts.append(tokens[1])
        elif tokens[0] == "rangeslider-rangeplot":
            parts.append("rangeslider")
        elif i and ancestors[i - 1] and ancestors[i - 1][0] in _SUBPLOT_LAYERS:
            parts.append(tokens[0])
    return "/".join(parts)


def _text_of(el: ET.Element) -> str:
    """A <text>'s content; the lines plotly.js splits into <tspan class="line"> joined by a newline."""
    lines: list[str] = []
    current = [el.text or ""]
    for child in el:
        if _local(child.tag) == "tspan" and "line" in _classes(child):
            lines.append("".join(current))
            current = ["".join(child.itertext())]
        else:
            current.append("".join(child.itertext()))
        current.append(child.tail or "")
    lines.append("".join(current))
    normalised = [" ".join(line.split()) for line in lines]
    return "\n".join(line for line in normalised if line)


def summarize_svg(svg: str | bytes) -> SvgSummary:
    """Parse one plotly.js SVG (raw or sanitised) into an :class:`SvgSummary`."""
    root = ET.fromstring(svg.encode("utf-8") if isinstance(svg, str) else svg)
    summary = SvgSummary(size=(root.get("width", ""), root.get("height", "")))
    # Depth-first walk that carries each element's ancestors' class tokens.
    stack: list[tuple[ET.Element, list[list[str]]]] = [(root, [])]
    while stack:
        el, ancestors = stack.pop()
        tag, tokens = _local(el.tag), _classes(el)
        if tag == "g" and tokens:
            parent = ancestors[-1] if ancestors else []
            if "trace" in tokens or "mlayer" in parent:
                where = _where(ancestors)
                summary.traces[_layer_of(ancestors) + (f"@{where}" if where else "")] += 1
            elif tokens[0] in _OWN_CLASS_TRACES:
                summary.traces[tokens[0]] += 1
            if tokens[0] == "subplot" and len(tokens) > 1:
                summary.subplots[tokens[1]] += 1
            elif parent and parent[0] in _SUBPLOT_LAYERS:
                summary.subplots[tokens[0]] += 1
            if match := _AXIS_TITLE_GROUP.match(tokens[0]):
                summary.axes[match.group(1)] += 1
        elif tag == "image":
            container = next((t[0] for t in reversed(ancestors) if t), "svg")
            summary.images[container] += 1
        elif tag == "text":
            if text := _text_of(el):
                summary.texts[text] += 1
            continue  # tspans are part of this text
        children = [(child, [*ancestors, tokens]) for child in el]
        stack.extend(reversed(children))
    return summary


def _counter_diff(what: str, ours: Counter, reference: Counter) -> list[str]:
    return [
        f"{what} {key}: ours {ours.get(key, 0)}, reference {reference.get(key, 0)}"
        for key in sorted(set(ours) | set(reference), key=str)
        if ours.get(key, 0) != reference.get(key, 0)
    ]


def _text_diff(ours: Counter, reference: Counter) -> list[str]:
    out = []
    for label, extra in (("missing from ours", reference - ours), ("only in ours", ours - reference)):
        for text, n in sorted(extra.items()):
            out.append(f"text {label}: {text!r}" + (f" x{n}" if n > 1 else ""))
    return out


def compare_svgs(ours: str | bytes, reference: str | bytes, *, images: bool = True) -> list[str]:
    """Differences between two plotly.js SVGs of the same figure; an empty list means equivalent.

    Strict about: the SVG size, trace groups per kind and subplot (``scatter@xy: 3``), the
    subplots and axes, embedded ``<image>`` elements per container (heatmap rasters, WebGL
    canvases, layout images; ``images=False`` skips them), and the multiset of visible text
    (titles, axis titles, tick labels, legend entries, annotations, slice and cell labels).
    Tolerant of: element ids and uids, coordinates and paths, clip-paths, styles and fonts,
    element order, and the attributes a sanitiser (svg-hush) strips or rewrites.
    """
    summaries = []
    for name, svg in (("ours", ours), ("reference", reference)):
        try:
            summaries.append(summarize_svg(svg))
        except ET.ParseError as exc:
            return [f"{name} is not well-formed SVG: {exc}"]
    a, b = summaries
    diffs: list[str] = []
    if a.size != b.size:
        diffs.append(f"size: ours {'x'.join(a.size)}, reference {'x'.join(b.size)}")
    diffs += _counter_diff("trace groups", a.traces, b.traces)
    diffs += _counter_diff("subplot", a.subplots, b.subplots)
    diffs += _counter_diff("axis", a.axes, b.axes)
    if images:
        diffs += _counter_diff("images in", a.images, b.images)
    diffs += _text_diff(a.texts, b.texts)
    return diffs


def compare_many(ours: Iterable[str], reference: Iterable[str], **kwargs) -> list[str]:
    """:func:`compare_svgs` over two lists of SVGs (one per shown figure), prefixed by figure number."""
    ours, reference = list(ours), list(reference)
    diffs = []
    if len(ours) != len(reference):
        diffs.append(f"figure count: ours {len(ours)}, reference {len(reference)}")
    for i, (a, b) in enumerate(zip(ours, reference, strict=False), start=1):
        diffs += [f"figure {i}: {d}" for d in compare_svgs(a, b, **kwargs)]
    return diffs
