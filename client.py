#!/usr/bin/env python3
"""Submit Plotly code to plotfarm, wait for it, and write the figures.

    python client.py --code "import plotly.graph_objects as go; fig = go.Figure(go.Bar(y=[1, 3, 2])); fig.show()"
    python client.py --file script.py --out plots/
    echo "..." | python client.py -
    python client.py --no-wait --code "..."      # print the job id and exit

    python client.py scripts/ --out plots/        # a batch: every *.py in scripts/
    python client.py a.py b.py "more/*.py" --concurrency 8 --format svg --format png --scale 2

    python client.py --file plot.py --data sales.csv --data inputs/ --var 'n=3' -o plot.png
    python client.py --figure fig.json -o fig.pdf   # a figure's JSON (fig.to_json()), drawn with no Python

--data FILE gives the job an input file it reads by name from its working directory
(``pd.read_csv("sales.csv")``); a directory adds the files directly in it (not its
subdirectories or hidden files). --var name=JSON binds a Python global before the code runs. In a batch
every job gets the same files and variables. -o FILE writes the first figure to FILE in
the format its extension names (.svg .png .jpg/.jpeg .webp .pdf .json .html), as
``fig.write_image`` does; that format is added to the ones asked for.

One job (--code, stdin, or a single --file) writes <job id>.svg (<job id>-2.svg for
a second figure, ...). A batch (files, directories, globs, or several --file)
writes files named after each input: b1.py -> OUT/b1.svg, OUT/b1-2.svg, OUT/b1.png.
A batch waits and retries whenever the gateway answers 429 or 503 (as its
Retry-After says), so a large batch finishes at the gateway's rate limit.

Uses only the standard library, so it runs with any Python 3.9+ from a checkout,
without the project's virtualenv; how it reads the gateway's answers and waits
it out is shared/gateway_policy.py (the MCP service's too), which does the same.

Exit status: 0 done; 1 the job failed (its traceback is printed); 2 the
request was refused (bad input); 3 the gateway is unreachable or busy;
4 no result within --timeout. A batch exits with the most serious of its
jobs' outcomes: 3, then 4, then 2, then 1 (any job failed), else 0.
"""

import argparse
import base64
import glob
import json
import os
import queue
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from shared.gateway_policy import Busy, GatewayError, Patience, Refused, Resubmissions, Unreachable, error_for

DEFAULT_GATEWAY = os.environ.get("PLOTFARM_GATEWAY", "http://localhost:3000")
EXIT_DONE, EXIT_FAILED, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_TIMEOUT = 0, 1, 2, 3, 4
POLL_S = 25.0
# The vocabulary's formats and file extensions (shared/vocabulary.py, which needs pydantic: a unit test
# keeps these equal to it).
FORMATS = ("svg", "png", "jpeg", "webp", "pdf", "json", "html")
FORMAT_BY_EXTENSION = {**{fmt: fmt for fmt in FORMATS}, "jpg": "jpeg"}
MAX_SCALE = 10
# One job says at once what went wrong. A batch waits out a busy gateway for as long as it stays busy
# (so a large batch finishes at the gateway's rate limit), retries a refused connection a few times,
# and polls its jobs through a gateway briefly away until --timeout.
AT_ONCE = Patience(busy_retries=0, connect_retries=0, poll_until_deadline=False)
BATCH = Patience(busy_retries=None, connect_retries=3, max_wait_s=30.0, jitter_s=0.25)


def _open(url, body=None, timeout=60.0, api_key=None, accept="application/json"):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Accept", accept)
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    if data:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        raise error_for(exc.code, exc.read(), str(exc.reason), exc.headers.get("Retry-After")) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(
            f"cannot reach the gateway at {url}: {reason}", nothing_sent=isinstance(reason, ConnectionRefusedError)
        ) from None


def request_json(url, body=None, timeout=60.0, api_key=None):
    return json.loads(_open(url, body, timeout, api_key))


def request_bytes(url, timeout=60.0, api_key=None):
    return _open(url, timeout=timeout, api_key=api_key, accept="*/*")


def read_code(args):
    if args.file:
        with open(args.file[0], encoding="utf-8") as handle:
            return handle.read()
    if args.code == "-" or args.inputs == ["-"]:
        return sys.stdin.read()
    if args.code is not None:
        return args.code
    raise SystemExit("give the code with --code, --file, or - (stdin)")


def read_inputs(args):
    """``--data`` files (a directory: the files directly in it) as name -> base64, ``--var`` as name -> value.

    Raises ValueError with a message for the user."""
    files = {}
    for item in args.data or []:
        if os.path.isdir(item):
            paths = sorted(p for p in glob.glob(os.path.join(glob.escape(item), "*")) if os.path.isfile(p))
            if not paths:
                raise ValueError(
                    f"--data {item}: the directory has no files (subdirectories and hidden files are not read)"
                )
        elif os.path.isfile(item):
            paths = [item]
        else:
            raise ValueError(f"--data {item}: no such file or directory")
        for path in paths:
            name = os.path.basename(path)
            if name in files:
                raise ValueError(f"--data: two files are named {name!r}; a job sees files by name only")
            try:
                with open(path, "rb") as handle:
                    files[name] = base64.b64encode(handle.read()).decode("ascii")
            except OSError as exc:
                raise ValueError(f"--data {path}: cannot read: {exc}") from None
    variables = {}
    for item in args.var or []:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--var {item!r}: write it as name=JSON, e.g. --var 'n=3' or --var 'title=\"Sales\"'")
        try:
            variables[name] = json.loads(text)
        except ValueError:
            raise ValueError(
                f"--var {name}: {text[:60]!r} is not JSON (a string needs its quotes: --var '{name}=\"...\"')"
            ) from None
    return files, variables


def read_figure(path):
    """The figure (or list of figures) in a JSON file, as ``fig.write_json`` writes it."""
    try:
        with open(path, encoding="utf-8") as handle:
            figure = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ValueError(f"--figure {path}: cannot read a figure's JSON: {exc}") from None
    if not isinstance(figure, (dict, list)):
        raise ValueError(f'--figure {path}: a figure is a JSON object ({{"data": [...], "layout": {{...}}}})')
    return figure


def job_body(args, code):
    body = {"figure": args.figure_json} if getattr(args, "figure_json", None) is not None else {"code": code}
    if getattr(args, "files", None):
        body["files"] = {name: {"base64": content} for name, content in args.files.items()}
    if getattr(args, "variables", None):
        body["variables"] = args.variables
    for field in ("width", "height"):
        if getattr(args, field):
            body[field] = getattr(args, field)
    if args.job_timeout:
        body["timeout_s"] = args.job_timeout
    # Sent only when asked for: the gateway's default is ["svg"], and older gateways know no `formats`.
    if formats_asked(args):
        body["formats"] = formats_asked(args)
    if args.scale is not None:
        body["scale"] = args.scale
    return body


def submit(args, code):
    return request_json(f"{args.gateway}/api/jobs", job_body(args, code), api_key=args.api_key)


def wait_for(args, job_id, patience):
    """Long-poll until the job is final or --timeout passed; a failed poll is repeated as ``patience`` says."""
    deadline = time.monotonic() + args.timeout
    status = {"job_id": job_id, "status": "queued", "status_url": f"{args.gateway}/api/jobs/{job_id}"}
    while True:
        remaining = deadline - time.monotonic()
        wait = max(0.0, min(POLL_S, remaining))
        try:
            status = request_json(
                f"{args.gateway}/api/jobs/{job_id}?wait={wait:.1f}&include=svg",
                timeout=wait + 30,
                api_key=args.api_key,
            )
        except GatewayError as exc:
            pause = patience.before_polling_again(exc, remaining)
            if pause is None:
                raise
            time.sleep(pause)
            continue
        if status["status"] in ("done", "failed") or remaining <= 0:
            return status


def formats_asked(args):
    """--format's formats, and -o's (last): what the job asks for, or None for the gateway's default."""
    asked = list(args.format or [])
    if getattr(args, "output_format", None):
        asked.append(args.output_format)
    return list(dict.fromkeys(asked)) or None


def formats_of(args):
    """The formats written to --out: --format's; with -o and no --format, none (-o is the one file)."""
    if getattr(args, "output_format", None):
        return list(args.format or [])
    return args.format or ["svg"]


def figure_name(stem, n, fmt):
    return f"{stem}.{fmt}" if n == 0 else f"{stem}-{n + 1}.{fmt}"


def on_our_gateway(args, url):
    """The gateway hands out its public URLs; fetch through the address we were given."""
    parts = urllib.parse.urlsplit(url)
    return args.gateway + parts.path + (f"?{parts.query}" if parts.query else "")


def figure_bytes(args, status, figure, fmt):
    if fmt == "svg" and figure.get("svg"):
        return figure["svg"].encode("utf-8")
    files = figure.get("files") or {}
    url = (files.get(fmt) or {}).get("url")
    if url is None and fmt == "svg":
        url = figure.get("url")
    if url is None:
        url = f"/api/jobs/{status['job_id']}/figures/{figure['index']}.{fmt}"
    return request_bytes(on_our_gateway(args, url), api_key=args.api_key)


def write_figures(args, status, stem=None):
    """Write every figure in every asked-for format; ``stem`` names them (default: the job id); -o the first."""
    stem = stem or status["job_id"]
    paths = []
    figures = status.get("figures", [])
    for n, figure in enumerate(figures):
        figure.setdefault("index", n)
    if getattr(args, "output", None) and figures:
        data = figure_bytes(args, status, figures[0], args.output_format)
        with open(args.output, "wb") as handle:
            handle.write(data)
        paths.append(args.output)
    if formats_of(args):
        os.makedirs(args.out, exist_ok=True)
    for n, figure in enumerate(figures):
        for fmt in formats_of(args):
            data = figure_bytes(args, status, figure, fmt)
            path = os.path.join(args.out, figure_name(stem, n, fmt))
            with open(path, "wb") as handle:
                handle.write(data)
            paths.append(path)
    return paths


def report(status, paths):
    t = status.get("timings") or {}
    where = f" on {status['renderer_id']}" if status.get("renderer_id") else ""
    print(
        f"job {status['job_id']} {status['status']}{where}: total {t.get('total_ms', 0):.0f} ms "
        f"(queued {t.get('queued_ms', 0):.0f}, run {t.get('run_ms', 0):.0f}, svg {t.get('svg_ms', 0):.0f})"
    )
    if status.get("stdout"):
        print("--- stdout ---\n" + status["stdout"].rstrip("\n"))
    if status.get("stderr"):
        print("--- stderr ---\n" + status["stderr"].rstrip("\n"), file=sys.stderr)
    for path in paths:
        print(f"wrote {path}")
    for warning in status.get("warnings") or []:
        print(f"warning: {warning}", file=sys.stderr)
    error = status.get("error")
    if error:
        print(error.get("traceback") or "", end="", file=sys.stderr)
        print(f"{error['type']}: {error['message']}", file=sys.stderr)
    print(f"view: {status['viewer_url']}")


def exit_code_for(exc):
    return EXIT_REFUSED if isinstance(exc, Refused) else EXIT_UNAVAILABLE


def run_single(args):
    code = None if args.figure_json is not None else read_code(args)
    try:
        accepted = submit(args, code)
        if args.no_wait:
            print(accepted["job_id"])
            print(f"status: {accepted['status_url']}", file=sys.stderr)
            print(f"view: {accepted['viewer_url']}", file=sys.stderr)
            return EXIT_DONE
        status = wait_for(args, accepted["job_id"], AT_ONCE)
        if status["status"] not in ("done", "failed"):
            print(f"job {status['job_id']} is still {status['status']} after {args.timeout:.0f} s", file=sys.stderr)
            print(f"status: {status['status_url']}", file=sys.stderr)
            return EXIT_TIMEOUT
        paths = write_figures(args, status)
    except GatewayError as exc:
        print(f"error: {exc.describe()}", file=sys.stderr)
        return exit_code_for(exc)
    try:
        report(status, paths)
    except BrokenPipeError:
        # The reader went away (`client.py ... | head -1`); the SVGs are written
        # and the exit code still says how the job ended.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_DONE if status["status"] == "done" else EXIT_FAILED


# --- batches ----------------------------------------------------------------------------


def expand_inputs(items):
    """Files, directories (their *.py) and glob patterns, in order, each file once."""
    paths, seen = [], set()
    for item in items:
        if os.path.isdir(item):
            found = sorted(glob.glob(os.path.join(item, "*.py")))
            if not found:
                raise ValueError(f"no *.py files in {item}")
        elif any(ch in item for ch in "*?["):
            found = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not found:
                raise ValueError(f"no files match {item}")
        elif os.path.isfile(item):
            found = [item]
        else:
            raise ValueError(f"no such file or directory: {item}")
        for path in found:
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                paths.append(path)
    return paths


def output_stems(paths):
    """b1.py -> b1; inputs that share a name get their directories in it (a/x.py -> a-x)."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    clashes = {s for s in stems if stems.count(s) > 1}
    if not clashes:
        return stems
    common = os.path.commonpath([os.path.abspath(p) for p in paths])
    result = []
    for path, stem in ((path, stems[i]) for i, path in enumerate(paths)):
        if stem in clashes:
            relative = os.path.splitext(os.path.relpath(os.path.abspath(path), common))[0]
            stem = relative.replace(os.sep, "-")
        result.append(stem)
    return result


class Batch:
    """Shared state of a batch: counts, the progress line, and a pause every worker honours."""

    OUTCOMES = ("done", "failed", "refused", "unavailable", "timeout")

    def __init__(self, total, show_progress):
        self.total = total
        self.show_progress = show_progress
        self.lock = threading.Lock()
        self.counts = dict.fromkeys(self.OUTCOMES, 0)
        self.in_flight = 0
        self.written = 0
        self.started = time.monotonic()
        self.pause_until = 0.0  # no submissions before this (after a 429/503)
        self.last_busy_note = 0.0
        self.stop = threading.Event()  # the gateway is gone: submit nothing more
        self._drawn = 0.0

    def finished(self):
        return sum(self.counts.values())

    def line(self):
        elapsed = time.monotonic() - self.started
        c = self.counts
        text = f"[{self.finished()}/{self.total}] done={c['done']} failed={c['failed']} running={self.in_flight}"
        others = " ".join(f"{k}={c[k]}" for k in ("refused", "unavailable", "timeout") if c[k])
        if others:
            text += " " + others
        pause = self.pause_until - time.monotonic()
        if pause > 0:
            text += f" (gateway busy: waiting {pause:.0f} s)"
        rate = (c["done"] + c["failed"]) / elapsed if elapsed > 0 else 0.0
        return f"{text} {rate:.1f} jobs/s"

    def draw(self, force=False):
        """Redraw the progress line (terminals only); call with the lock held."""
        if not self.show_progress:
            return
        now = time.monotonic()
        if force or now - self._drawn >= 0.1:
            self._drawn = now
            sys.stderr.write("\r\033[K" + self.line())
            sys.stderr.flush()

    def say(self, text, stream=None):
        """Print a line above the progress line."""
        stream = stream or sys.stderr
        with self.lock:
            if self.show_progress:
                sys.stderr.write("\r\033[K")
                sys.stderr.flush()
            print(text, file=stream, flush=True)
            self.draw(force=True)

    def busy(self, status, wait, message):
        with self.lock:
            now = time.monotonic()
            self.pause_until = max(self.pause_until, now + wait)
            note = now - self.last_busy_note >= 10 and not self.show_progress
            if note:
                self.last_busy_note = now
        if note:
            self.say(f"gateway busy ({status}: {message.splitlines()[0]}); retrying in {wait:.0f} s")

    def wait_for_pause(self):
        while not self.stop.is_set():
            remaining = self.pause_until - time.monotonic()
            if remaining <= 0:
                return
            with self.lock:
                self.draw()
            time.sleep(min(remaining, 0.5))

    def record(self, outcome, written=0):
        with self.lock:
            self.counts[outcome] += 1
            self.in_flight -= 1
            self.written += written
            self.draw(force=True)

    def summary(self):
        elapsed = time.monotonic() - self.started
        c = self.counts
        rate = (c["done"] + c["failed"]) / elapsed if elapsed > 0 else 0.0
        text = f"done={c['done']} failed={c['failed']} seconds={elapsed:.1f} jobs/s={rate:.2f}"
        others = " ".join(f"{k}={c[k]}" for k in ("refused", "unavailable", "timeout") if c[k])
        skipped = self.total - self.finished()
        if skipped:
            others = (others + f" not_submitted={skipped}").strip()
        return text + (f" {others}" if others else "")

    def exit_code(self):
        c = self.counts
        if c["unavailable"] or self.total - self.finished():
            return EXIT_UNAVAILABLE
        if c["timeout"]:
            return EXIT_TIMEOUT
        if c["refused"]:
            return EXIT_REFUSED
        if c["failed"]:
            return EXIT_FAILED
        return EXIT_DONE


def submit_patiently(args, batch, code):
    """Submit; when the gateway is busy, pause the whole batch as Retry-After says (capped) and try
    again, for as long as it keeps answering so. A refused connection is retried a few times, then
    the batch stops (:data:`BATCH`)."""
    retries = Resubmissions(BATCH)
    while True:
        batch.wait_for_pause()
        if batch.stop.is_set():
            return None
        try:
            return submit(args, code)
        except (Busy, Unreachable) as exc:
            wait = retries.wait_after(exc)
            if wait is None:
                raise
            if isinstance(exc, Busy):
                batch.busy(exc.status, wait, exc.message)
            else:
                time.sleep(wait)


def run_one(args, batch, path, stem):
    try:
        with open(path, encoding="utf-8") as handle:
            code = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        batch.say(f"{path}: cannot read: {exc}")
        return "refused", 0
    try:
        accepted = submit_patiently(args, batch, code)
        if accepted is None:
            return None, 0
        if args.no_wait:
            batch.say(f"{path} {accepted['job_id']}", stream=sys.stdout)
            return "done", 0
        status = wait_for(args, accepted["job_id"], BATCH)
        if status["status"] not in ("done", "failed"):
            batch.say(f"{path}: job {status['job_id']} still {status['status']} after {args.timeout:.0f} s")
            return "timeout", 0
        paths = write_figures(args, status, stem)
    except GatewayError as exc:
        outcome = "refused" if exit_code_for(exc) == EXIT_REFUSED else "unavailable"
        if outcome == "unavailable":
            batch.stop.set()
        batch.say(f"{path}: error: {exc.describe()}")
        return outcome, 0
    if status["status"] == "failed":
        error = status.get("error") or {}
        trace = (error.get("traceback") or "").rstrip("\n")
        batch.say(
            f"{path}: failed (job {status['job_id']}): {error.get('type')}: {error.get('message')}"
            + (f"\n{trace}" if trace else "")
        )
        return "failed", 0
    for warning in status.get("warnings") or []:
        batch.say(f"{path}: warning: {warning}")
    return "done", len(paths)


def run_batch(args, paths):
    stems = output_stems(paths)
    batch = Batch(len(paths), show_progress=sys.stderr.isatty())
    work = queue.Queue()
    for i, path in enumerate(paths):
        work.put((path, stems[i]))

    def worker():
        while not batch.stop.is_set():
            try:
                path, stem = work.get_nowait()
            except queue.Empty:
                return
            with batch.lock:
                batch.in_flight += 1
            try:
                outcome, written = run_one(args, batch, path, stem)
            except Exception as exc:  # noqa: BLE001  (one broken job must not hang the batch)
                batch.say(f"{path}: {type(exc).__name__}: {exc}")
                outcome, written = "unavailable", 0
            if outcome is None:  # not submitted: the batch was stopped
                with batch.lock:
                    batch.in_flight -= 1
                return
            batch.record(outcome, written)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(args.concurrency, len(paths)))]
    for thread in threads:
        thread.start()
    try:
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(0.2)
            with batch.lock:
                batch.draw()
    except KeyboardInterrupt:
        batch.stop.set()
        if batch.show_progress:
            sys.stderr.write("\n")
        print(f"interrupted: {batch.summary()}", file=sys.stderr)
        return 130
    if batch.show_progress:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
    print(batch.summary())
    if batch.written:
        print(f"wrote {batch.written} file(s) to {args.out}")
    return batch.exit_code()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", help='Python code, or "-" to read it from stdin')
    parser.add_argument("--file", action="append", help="a Python file to run; give it several times for a batch")
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="PATH",
        help='files, directories (their *.py) or glob patterns to run as a batch; "-" reads one job from stdin',
    )
    parser.add_argument(
        "--gateway", default=DEFAULT_GATEWAY, help="gateway URL (default %(default)s, or $PLOTFARM_GATEWAY)"
    )
    parser.add_argument("--out", default="output", help="directory for the figures (default %(default)s)")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for a result (default %(default)s)"
    )
    parser.add_argument(
        "--job-timeout", type=float, help="the job's own time limit in the sandbox (server default 10 s, max 60)"
    )
    parser.add_argument("--width", type=int, help="figure width in pixels when the figure does not set one")
    parser.add_argument("--height", type=int, help="figure height in pixels when the figure does not set one")
    parser.add_argument(
        "--format",
        action="append",
        choices=FORMATS,
        help="output format, repeatable (default svg); sent to the gateway as `formats`",
    )
    parser.add_argument(
        "--scale",
        type=float,
        help=f"pixels per figure pixel for png, jpeg and webp, above 0 up to {MAX_SCALE} (default 1)",
    )
    parser.add_argument(
        "--data",
        action="append",
        metavar="FILE",
        help="an input file the job reads by name (repeatable); a directory adds the files directly in it, "
        "not its subdirectories or hidden files",
    )
    parser.add_argument(
        "--var", action="append", metavar="NAME=JSON", help="a Python global bound before the code runs (repeatable)"
    )
    parser.add_argument(
        "--figure", metavar="FIG.json", help="draw this figure's JSON (fig.write_json's) instead of running code"
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the first figure to FILE, in the format its extension names: "
        + " ".join(f".{ext}" for ext in FORMAT_BY_EXTENSION),
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="jobs of a batch in flight at once (threads; default %(default)s)"
    )
    parser.add_argument("--no-wait", action="store_true", help="print the job id and exit")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("PLOTFARM_API_KEY"),
        help="API key, when the gateway requires one (default $PLOTFARM_API_KEY)",
    )
    args = parser.parse_args(argv)
    args.gateway = args.gateway.rstrip("/")
    if args.format:
        args.format = list(dict.fromkeys(args.format))
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    if args.scale is not None and not 0 < args.scale <= MAX_SCALE:
        parser.error(f"--scale must be above 0 and at most {MAX_SCALE}")
    args.output_format = None
    if args.output:
        extension = os.path.splitext(args.output)[1].lstrip(".").lower()
        if extension not in FORMAT_BY_EXTENSION:
            known = " ".join(f".{ext}" for ext in FORMAT_BY_EXTENSION)
            parser.error(f"-o {args.output}: the extension must name a format ({known})")
        args.output_format = FORMAT_BY_EXTENSION[extension]
    try:
        args.files, args.variables = read_inputs(args)
        args.figure_json = read_figure(args.figure) if args.figure else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED

    files = args.file or []
    if args.figure and (files or args.inputs or args.code is not None):
        parser.error("--figure is instead of code: it cannot be combined with --code, --file or paths")
    if args.figure and (args.files or args.variables):
        parser.error("--data and --var are for code; a figure runs no Python")
    if "-" in args.inputs and (len(args.inputs) > 1 or files or args.code is not None):
        parser.error('"-" (stdin) cannot be combined with other inputs')
    if args.code is not None and (files or args.inputs):
        parser.error("--code cannot be combined with files")
    single = args.figure or args.code is not None or args.inputs == ["-"] or (len(files) == 1 and not args.inputs)
    if single or not (files or args.inputs):
        return run_single(args)
    if args.output:
        parser.error("-o names one file: it is for one job, not a batch (use --out DIR and --format)")
    try:
        paths = expand_inputs([*files, *args.inputs])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return run_batch(args, paths)


if __name__ == "__main__":
    sys.exit(main())
