"""Run one job's code inside Pyodide and capture the figures it shows.

interpreter-worker.mjs writes this file into the interpreter's site-packages
and imports it once while booting, so plotly is already imported when a job
arrives. Each job calls :func:`run`, which executes the user's code in a fresh
namespace with every plotly ``show()`` replaced by a function that records the
figure.

Everything crosses back to JavaScript as one JSON document, a ``RunOutput``
(shared/page_contract.py), in which each figure is encoded once; no Python
object (and no proxy to one) ever leaves the interpreter.
"""

import ast
import builtins
import contextlib
import inspect
import io
import json
import keyword
import linecache
import random
import re
import sys
import traceback

import plotly.graph_objects  # noqa: F401  (the slow import a warm interpreter exists to pay once)
import plotly.io as pio
import plotly.io._renderers as pio_renderers
from plotly.basedatatypes import BaseFigure
from plotly.io._utils import validate_coerce_fig_to_dict
from plotly.utils import PlotlyJSONEncoder

JOB_FILENAME = "<job>"
NO_NETWORK = (
    "plotfarm jobs have no network access: put the data in the code itself, "
    "or use the datasets in plotly.express.data (px.data.iris(), px.data.gapminder(), ...)"
)
# What to say about modules people reach for that are not here, beyond "not available".
MISSING_MODULE_HINTS = {
    "statsmodels": "plotly.express trendlines 'ols' and 'lowess' cannot be computed; "
    "trendline='rolling', 'expanding' or 'ewm' work, or fit a line yourself with numpy.polyfit",
    "micropip": "jobs run offline and cannot install packages",
    "pip": "jobs run offline and cannot install packages",
    "requests": NO_NETWORK,
    "httpx": NO_NETWORK,
    "aiohttp": NO_NETWORK,
}
# The packages jobs can import (name -> version), set once by the worker.
AVAILABLE = {}


class OutputLimitExceeded(Exception):
    """A job produced more figures or bigger figures than its limits allow.

    The name is the contract's OUTPUT_LIMIT_EXCEEDED (shared/page_contract.py);
    the limits arrive with each job as an OutputLimits.
    """


class NoFigureError(Exception):
    """The code ran but never showed a figure nor left one in ``fig``."""


class BoundedText(io.TextIOBase):
    """A text sink that keeps the first ``limit`` characters and notes the rest."""

    def __init__(self, limit):
        self.limit = limit
        self.parts = []
        self.kept = 0
        self.dropped = 0

    def writable(self):
        return True

    def write(self, text):
        text = str(text)
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def getvalue(self):
        text = "".join(self.parts)
        if self.dropped:
            text += f"\n[plotfarm: output truncated, {self.dropped} more characters dropped]\n"
        return text


class Capture:
    """The figures one job has shown so far, within its limits."""

    def __init__(self, max_figures, max_figure_bytes, max_total_bytes):
        self.max_figures = max_figures
        self.max_figure_bytes = max_figure_bytes
        self.max_total_bytes = max_total_bytes
        self.total_bytes = 0
        self.figures = []
        self.dropped = 0  # figures shown beyond max_figures: counted, never serialised

    def show(self, fig=None, *args, **kwargs):
        if len(self.figures) >= self.max_figures:
            self.dropped += 1  # a loop of show() keeps the first figures; the result says how many went
            return
        fig_dict = validate_coerce_fig_to_dict(fig, validate=True)
        text = json.dumps(fig_dict, cls=PlotlyJSONEncoder)
        if len(text) > self.max_figure_bytes:
            raise OutputLimitExceeded(
                f"figure {len(self.figures) + 1} is {len(text)} bytes of JSON; the limit is {self.max_figure_bytes}"
            )
        if self.total_bytes + len(text) > self.max_total_bytes:
            raise OutputLimitExceeded(f"the figures add up to more than {self.max_total_bytes} bytes of JSON")
        self.total_bytes += len(text)
        self.figures.append(text)  # already JSON: run() puts it in the output as it is


def _install(capture):
    """Point every public way of showing a figure at ``capture``.

    Re-installed before every job, so a job that replaced one of these cannot
    stop the next job in the same interpreter from being captured.
    """

    def show_method(self, *args, **kwargs):
        capture.show(self)

    BaseFigure.show = show_method
    pio.show = capture.show
    pio_renderers.show = capture.show


def _left_in_namespace(namespace):
    """The figure a script left behind without calling show(), if unambiguous."""
    fig = namespace.get("fig")
    if isinstance(fig, BaseFigure) or (isinstance(fig, dict) and "data" in fig):
        return fig
    figures = [value for value in namespace.values() if isinstance(value, BaseFigure)]
    return figures[0] if len(figures) == 1 else None


def set_available(packages_json):
    """Record which packages jobs can import (name -> version), for error messages."""
    AVAILABLE.clear()
    AVAILABLE.update(json.loads(packages_json))


def _available_text():
    listed = ", ".join(f"{name} {version}" for name, version in sorted(AVAILABLE.items(), key=lambda kv: kv[0].lower()))
    return f"jobs can import the standard library and {listed}"


def _missing_module_message(exc, package_errors):
    """Our own words for an import that cannot succeed here (never "pip install ...")."""
    name = exc.name
    if not name:
        optional = re.search(r"(?:optional dependency|No module named) '([\w.]+)'", str(exc))
        name = optional.group(1) if optional else None
    if name is None:
        return None
    top = name.split(".")[0]
    if package_errors:
        return f"{name!r} could not be loaded in plotfarm's sandbox: {'; '.join(package_errors)}"
    hint = MISSING_MODULE_HINTS.get(top)
    lead = f"the module {name!r} is not available in plotfarm's sandbox"
    return f"{lead}: {hint}" if hint else f"{lead} ({_available_text()})"


NETWORK_FILES = ("/socket.py", "/http/client.py", "/urllib/request.py", "/pyodide/http.py")


def _is_network_error(exc):
    from urllib.error import URLError  # only needed on this path

    if isinstance(exc, (URLError, ConnectionError)):
        return True
    frames = traceback.extract_tb(exc.__traceback__)
    return isinstance(exc, OSError) and any(f.filename.endswith(NETWORK_FILES) for f in frames)


def _describe(exc, package_errors=()):
    """Error type, message and a traceback that starts at the user's code."""
    tb_exc = traceback.TracebackException.from_exception(exc)
    frames = tb_exc.stack
    first_user = next((i for i, f in enumerate(frames) if f.filename == JOB_FILENAME), len(frames))
    del frames[:first_user]
    message = str(exc)
    rewritten = None
    if isinstance(exc, MemoryError) and not message:
        message = "the job ran out of memory (an interpreter's heap cannot grow past 4 GiB)"
    elif isinstance(exc, ImportError) and (
        isinstance(exc, ModuleNotFoundError) or re.search(r"pip|conda|optional dependency", message)
    ):
        rewritten = _missing_module_message(exc, package_errors)
    elif _is_network_error(exc):
        rewritten = f"{message} ({NO_NETWORK})"
    # numpy's _ArrayMemoryError and friends: one name for running out of memory.
    kind = "MemoryError" if isinstance(exc, MemoryError) else type(exc).__name__
    if rewritten is None:
        return {"type": kind, "message": message, "traceback": "".join(tb_exc.format())}
    # The original text may tell people to "pip install" something: say it our way, and
    # show where in the user's code it happened, not the import machinery underneath.
    user_frames = traceback.StackSummary.from_list([f for f in frames if f.filename == JOB_FILENAME] or frames[-1:])
    trace = "Traceback (most recent call last):\n" + "".join(user_frames.format())
    return {"type": kind, "message": rewritten, "traceback": f"{trace}{kind}: {rewritten}\n"}


# Modules that import packages of their own: code that imports them needs those loaded too.
IMPLIED_IMPORTS = {
    "plotly.express": ("numpy", "pandas"),
    "plotly.data": ("numpy", "pandas"),
    "plotly.figure_factory": ("numpy",),
}


def imports_needed(code):
    """The top-level modules ``code`` will import, plus what those imply (plotly.express: numpy, pandas).

    Read from the import statements, before the code runs, so the packages can
    be loaded first; code that does not parse imports nothing (its SyntaxError
    is reported when it runs).
    """
    import ast  # only needed here

    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    dotted = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            dotted.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            dotted.add(node.module)
            dotted.update(f"{node.module}.{alias.name}" for alias in node.names)
    needed = {name.split(".")[0] for name in dotted}
    for name in dotted:
        for module, extra in IMPLIED_IMPORTS.items():
            if name == module or name.startswith(module + "."):
                needed.update(extra)
    return sorted(needed)


def reseed():
    """Fresh randomness for an interpreter restored from a snapshot (all copies start equal)."""
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def imported_bytecode():
    """The .pyc files of every module imported so far: a snapshot's copies never read them."""
    paths = (getattr(module, "__cached__", None) for module in list(sys.modules.values()))
    return sorted({re.sub(r"^/+", "/", path) for path in paths if isinstance(path, str)})


class Job:
    """One run of user code: its namespace, captured output and figures."""

    def __init__(self, code, limits_json, package_errors_json, variables_json="{}"):
        limits = json.loads(limits_json)
        self.code = code
        self.package_errors = json.loads(package_errors_json)
        self.capture = Capture(limits["max_figures"], limits["max_figure_bytes"], limits["max_total_figure_bytes"])
        self.stdout = BoundedText(limits["max_output_chars"])
        self.stderr = BoundedText(limits["max_output_chars"])
        self.namespace = {"__name__": "__main__", "__builtins__": builtins}
        self.error = None
        self.variables_json = variables_json

    def bind_variables(self):
        """The job's variables (one JSON object) as globals of its namespace, before its code runs.

        Parsed here from JSON text, so the code gets plain Python values (lists, dicts, str,
        numbers), never a proxy of a JavaScript object. The gateway checks the names already;
        a name that is no plain identifier, a keyword or a dunder is refused here too.
        """
        variables = json.loads(self.variables_json)
        if not isinstance(variables, dict):
            raise TypeError("the job's variables must be a JSON object of name -> value")
        for name in variables:
            if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("__"):
                raise NameError(f"{name!r} cannot be a variable's name: it must be a Python identifier")
        self.namespace.update(variables)

    def compile(self):
        """The code object; top-level ``await`` is allowed (the code then runs as a coroutine)."""
        _install(self.capture)
        linecache.cache[JOB_FILENAME] = (len(self.code), None, self.code.splitlines(True), JOB_FILENAME)
        return compile(self.code, JOB_FILENAME, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)

    @contextlib.contextmanager
    def running(self):
        """Around the user's code: its output captured, sys.exit(0) fine, any exception recorded."""
        try:
            with contextlib.redirect_stdout(self.stdout), contextlib.redirect_stderr(self.stderr):
                try:
                    yield
                except SystemExit as exit_:
                    # sys.exit() / exit() ends a script; only a failing status fails the job.
                    if exit_.code not in (None, 0):
                        raise
            if not self.capture.figures:
                leftover = _left_in_namespace(self.namespace)
                if leftover is None:
                    raise NoFigureError(
                        "the code ran but produced no figure: call fig.show() or leave the figure in a variable named fig"
                    )
                self.capture.show(leftover)
        except BaseException as exc:  # noqa: BLE001  (user code may raise anything, even SystemExit)
            self.error = _describe(exc, self.package_errors)
        finally:
            self.namespace.clear()
            sys.stdout.flush()

    def warnings(self):
        dropped = self.capture.dropped
        if not dropped:
            return []
        shown = len(self.capture.figures) + dropped
        return [f"{shown} figures were shown; the first {self.capture.max_figures} were kept (the limit per job)"]

    def output(self):
        rest = json.dumps(
            {
                "stdout": self.stdout.getvalue(),
                "stderr": self.stderr.getvalue(),
                "error": self.error,
                "warnings": self.warnings(),
            }
        )
        return '{"figures": [' + ",".join(self.capture.figures) + "], " + rest[1:]


def run(code, limits_json, package_errors_json="[]", variables_json="{}"):
    """Execute ``code``; a RunOutput as JSON: figures, output and error.

    Code with a top-level ``await`` gets an awaitable instead (the caller
    awaits it for the same JSON): plain code stays synchronous, with no
    event-loop round trip. ``package_errors_json``: why packages the code
    imports could not be loaded, if they could not (said in the ImportError).
    ``variables_json``: a JSON object whose members become the code's globals.
    """
    job = Job(code, limits_json, package_errors_json, variables_json)
    try:
        job.bind_variables()
        compiled = job.compile()
    except BaseException as exc:  # noqa: BLE001  (a SyntaxError, or anything compile() raises)
        job.error = _describe(exc, job.package_errors)
        return job.output()
    if compiled.co_flags & inspect.CO_COROUTINE:
        return _run_async(job, compiled)
    with job.running():
        exec(compiled, job.namespace)
    return job.output()


async def _run_async(job, compiled):
    with job.running():
        await eval(compiled, job.namespace)
    return job.output()
