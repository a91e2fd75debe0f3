#!/usr/bin/env python3
"""Submit Plotly code to plotfarm, wait for it, and write the SVGs.

    python client.py --code "import plotly.graph_objects as go; fig = go.Figure(go.Bar(y=[1, 3, 2])); fig.show()"
    python client.py --file script.py --out plots/
    echo "..." | python client.py -
    python client.py --no-wait --code "..."      # print the job id and exit

Uses only the standard library, so it runs with any Python 3.9+.

Exit status: 0 done; 1 the job failed (its traceback is printed); 2 the
request was refused (bad input); 3 the gateway is unreachable or busy;
4 no result within --timeout.
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

DEFAULT_GATEWAY = os.environ.get("PLOTFARM_GATEWAY", "http://localhost:3000")
EXIT_DONE, EXIT_FAILED, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_TIMEOUT = 0, 1, 2, 3, 4
POLL_S = 25.0


class GatewayError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def request_json(url, body=None, timeout=60.0, api_key=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Accept", "application/json")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    if data:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read())
            message = payload.get("error", str(payload))
            details = payload.get("details")
            if details:
                message += "".join(f"\n  {d.get('field')}: {d.get('message')}" for d in details)
        except ValueError:
            message = exc.reason
        raise GatewayError(exc.code, message) from None
    except (urllib.error.URLError, OSError) as exc:
        raise GatewayError(None, f"cannot reach the gateway at {url}: {getattr(exc, 'reason', exc)}") from None


def read_code(args):
    if args.file:
        with open(args.file, encoding="utf-8") as handle:
            return handle.read()
    if args.code == "-" or args.stdin == "-":
        return sys.stdin.read()
    if args.code is not None:
        return args.code
    raise SystemExit("give the code with --code, --file, or - (stdin)")


def submit(args, code):
    body = {"code": code}
    for field in ("width", "height"):
        if getattr(args, field):
            body[field] = getattr(args, field)
    if args.job_timeout:
        body["timeout_s"] = args.job_timeout
    return request_json(f"{args.gateway}/api/jobs", body, api_key=args.api_key)


def wait_for(args, job_id):
    deadline = time.monotonic() + args.timeout
    while True:
        remaining = deadline - time.monotonic()
        wait = max(0.0, min(POLL_S, remaining))
        status = request_json(
            f"{args.gateway}/api/jobs/{job_id}?wait={wait:.1f}&include=svg", timeout=wait + 30, api_key=args.api_key
        )
        if status["status"] in ("done", "failed") or remaining <= 0:
            return status


def write_figures(args, status):
    os.makedirs(args.out, exist_ok=True)
    paths = []
    for n, figure in enumerate(status.get("figures", [])):
        name = f"{status['job_id']}.svg" if n == 0 else f"{status['job_id']}-{n + 1}.svg"
        path = os.path.join(args.out, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(figure["svg"])
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
    error = status.get("error")
    if error:
        print(error.get("traceback") or "", end="", file=sys.stderr)
        print(f"{error['type']}: {error['message']}", file=sys.stderr)
    print(f"view: {status['viewer_url']}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--code", help='Python code, or "-" to read it from stdin')
    source.add_argument("--file", help="a Python file to run")
    source.add_argument("stdin", nargs="?", choices=["-"], help="read the code from stdin")
    parser.add_argument(
        "--gateway", default=DEFAULT_GATEWAY, help="gateway URL (default %(default)s, or $PLOTFARM_GATEWAY)"
    )
    parser.add_argument("--out", default="output", help="directory for the SVGs (default %(default)s)")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the result (default %(default)s)"
    )
    parser.add_argument(
        "--job-timeout", type=float, help="the job's own time limit in the sandbox (server default 10 s, max 60)"
    )
    parser.add_argument("--width", type=int, help="figure width in pixels when the figure does not set one")
    parser.add_argument("--height", type=int, help="figure height in pixels when the figure does not set one")
    parser.add_argument("--no-wait", action="store_true", help="print the job id and exit")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("PLOTFARM_API_KEY"),
        help="API key, when the gateway requires one (default $PLOTFARM_API_KEY)",
    )
    args = parser.parse_args(argv)
    args.gateway = args.gateway.rstrip("/")

    code = read_code(args)
    try:
        accepted = submit(args, code)
        if args.no_wait:
            print(accepted["job_id"])
            print(f"status: {accepted['status_url']}", file=sys.stderr)
            print(f"view: {accepted['viewer_url']}", file=sys.stderr)
            return EXIT_DONE
        status = wait_for(args, accepted["job_id"])
    except GatewayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED if exc.status and 400 <= exc.status < 500 and exc.status != 429 else EXIT_UNAVAILABLE
    if status["status"] not in ("done", "failed"):
        print(f"job {status['job_id']} is still {status['status']} after {args.timeout:.0f} s", file=sys.stderr)
        print(f"status: {status['status_url']}", file=sys.stderr)
        return EXIT_TIMEOUT
    paths = write_figures(args, status)
    try:
        report(status, paths)
    except BrokenPipeError:
        # The reader went away (`client.py ... | head -1`); the SVGs are written
        # and the exit code still says how the job ended.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_DONE if status["status"] == "done" else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
