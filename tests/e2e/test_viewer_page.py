"""The live viewer (http://localhost:8000) in a real browser.

Results arrive over the WebSocket as they happen; history survives a viewer
restart; a dropped connection resumes from the last offset with nothing missing
and nothing twice; untrusted results never execute anything in the page.
"""

import asyncio
import re
import statistics
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

from shared.broker import Broker
from shared.messages import JobQueued, RenderResult, Timings, ms_between, new_job_id, utcnow
from shared.settings import Settings
from tests.e2e.conftest import csp_violations, percentile, record, screenshot
from tests.support import ROOT

pytestmark = pytest.mark.integration

LIVE = 30_000  # ms; generous, the machine is small and shared
EXAMPLES = ["scatter", "bar", "pie", "heatmap", "subplots", "two_figures"]
TITLES = {
    "scatter": "Example scatter",
    "bar": "Fruit sold this week",
    "pie": "Share of elements",
    "heatmap": "sin(x)·cos(y)",
    "subplots": "Two panels, one figure",
    "two_figures": "First figure",
}
FAILING = "print('loading the data…')\nrows = [1, 2, 3]\ntotal = sum(rows) / (len(rows) - 3)\n"


def example(name: str) -> str:
    return (ROOT / "examples" / f"{name}.py").read_text()


def open_viewer(new_page, e2e, query: str = ""):
    page = new_page(f"{e2e.viewer_url}/{query}")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=LIVE)
    return page


def card(page, job_id: str):
    return page.locator(f'.card[data-job-id="{job_id}"]')


def arrivals(page, job_id: str) -> list[dict]:
    return page.evaluate("(id) => window.plotfarmViewer.arrivals(id)", job_id)


def all_card_ids(page) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('.card')].map((c) => c.dataset.jobId)")


def test_viewer_shows_jobs_from_the_gateway_live(e2e, gateway, new_page):
    page = open_viewer(new_page, e2e)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=e2e.viewer_url)
    jobs = {}
    for name in [*EXAMPLES, "failing"]:
        code = FAILING if name == "failing" else example(name)
        job_id = gateway.submit(code)
        jobs[name] = (job_id, code)
        final = gateway.wait(job_id)
        expect(card(page, job_id)).to_have_attribute("data-status", final["status"], timeout=LIVE)

    push, websocket = [], []
    for job_id, _code in jobs.values():
        seen = arrivals(page, job_id)
        statuses = [a["status"] for a in seen]
        rank = {"queued": 0, "running": 1, "done": 2, "failed": 2}
        assert all(a["via"] == "push" for a in seen), seen
        assert statuses[0] in ("queued", "running") and statuses[-1] in ("done", "failed"), statuses
        assert [rank[s] for s in statuses] == sorted(rank[s] for s in statuses), statuses
        assert page.evaluate("(id) => window.plotfarmViewer.cardCount(id)", job_id) == 1
        push.append(float(card(page, job_id).get_attribute("data-push-ms")))
        websocket.append(float(card(page, job_id).get_attribute("data-ws-ms")))

    # Each card: the figure as an image from a blob: URL, title, status, timings, renderer.
    for name in EXAMPLES:
        job_id, code = jobs[name]
        item = card(page, job_id)
        expect(item.locator(".status")).to_have_text("done")
        expect(item.locator(".title")).to_have_text(TITLES[name])
        images = item.locator(".figures img")
        expect(images).to_have_count(2 if name == "two_figures" else 1)
        item.scroll_into_view_if_needed()
        assert images.first.get_attribute("src").startswith("blob:")
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=images.first.element_handle())
        timings = item.locator(".timings").inner_text()
        for label in ("queue wait", "run", "SVG", "total", "shown after"):
            assert label in timings, timings
        expect(item.locator(".meta")).to_contain_text("renderer renderer-e2e")
        expect(item.locator("a.download").first).to_have_attribute("download", re.compile(rf"^{job_id}-0\.svg$"))

    # A failure: its type and message, a collapsible traceback, and the stdout.
    failed = card(page, jobs["failing"][0])
    expect(failed.locator(".status")).to_have_text("failed")
    expect(failed.locator(".error")).to_contain_text("ZeroDivisionError: division by zero")
    traceback = failed.locator("details.traceback")
    expect(traceback.locator("pre")).to_be_hidden()
    traceback.locator("summary").click()
    expect(traceback.locator("pre")).to_contain_text("line 3, in <module>")
    failed.locator("details.stdout summary").click()
    expect(failed.locator("details.stdout pre")).to_have_text("loading the data…\n")

    # Click to enlarge; copy the code.
    scatter = card(page, jobs["scatter"][0])
    scatter.scroll_into_view_if_needed()
    scatter.locator(".figures button").first.click()
    expect(page.locator("#zoom")).to_have_attribute("open", "")
    expect(page.locator("#zoom-img")).to_have_attribute("src", re.compile("^blob:"))
    page.keyboard.press("Escape")
    expect(page.locator("#zoom")).not_to_have_attribute("open", "")
    scatter.locator("button.copy").click()
    expect(scatter.locator("button.copy")).to_have_text("copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == jobs["scatter"][1]

    # Real figures in the header: jobs per minute and the latencies.
    expect(page.locator("#rate")).not_to_have_text("0")
    expect(page.locator("#push")).to_have_text(re.compile(r"^\d+ ms$"))
    assert csp_violations(page) == [] and page.errors == []

    page.evaluate("() => window.scrollTo(0, 0)")
    screenshot(page, e2e, "viewer.png")
    record(
        f"viewer push latency (renderer published the result -> its card on the page), {len(push)} sequential jobs: "
        f"p50 {statistics.median(push):.1f} ms, max {max(push):.1f} ms "
        f"(of which viewer -> page over the WebSocket: p50 {statistics.median(websocket):.1f} ms, "
        f"max {max(websocket):.1f} ms)"
    )


def test_a_job_with_a_png_gets_a_png_download_link(e2e, gateway, new_page):
    page = open_viewer(new_page, e2e)
    job_id = gateway.submit(example("bar"), formats=["svg", "png"], scale=2)
    assert gateway.wait(job_id)["status"] == "done"
    item = card(page, job_id)
    expect(item).to_have_attribute("data-status", "done", timeout=LIVE)
    link = item.locator("a.download.png")
    expect(link).to_have_attribute("download", f"{job_id}-0.png")
    with page.expect_download() as downloaded:
        link.click()
    data = open(downloaded.value.path(), "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(data[16:20], "big") == 1400  # 700 px at scale 2
    assert csp_violations(page) == []


def test_a_jobs_warnings_are_shown_in_its_card(e2e, gateway, new_page):
    page = open_viewer(new_page, e2e)
    code = "import plotly.graph_objects as go\ngo.Figure(go.Scattergl(y=[1, 3, 2])).show()"
    job_id = gateway.submit(code)
    assert gateway.wait(job_id)["status"] == "done"
    item = card(page, job_id)
    expect(item).to_have_attribute("data-status", "done", timeout=LIVE)
    expect(item.locator(".warnings li")).to_have_count(1)
    expect(item.locator(".warnings li")).to_contain_text("scattergl is drawn with WebGL")
    assert csp_violations(page) == []


def test_viewer_filters_and_job_link(e2e, gateway, new_page):
    page = open_viewer(new_page, e2e)
    marker = "needle-7f3a"
    done_id = gateway.submit(f"# {marker}\n" + example("bar"))
    failed_id = gateway.submit("raise RuntimeError('filter me')\n")
    gateway.wait(done_id), gateway.wait(failed_id)
    expect(card(page, done_id)).to_have_attribute("data-status", "done", timeout=LIVE)
    expect(card(page, failed_id)).to_have_attribute("data-status", "failed", timeout=LIVE)

    page.click('[data-filter="failed"]')
    expect(card(page, failed_id)).to_be_visible()
    expect(card(page, done_id)).to_be_hidden()
    visible = page.locator(".card:visible")
    for n in range(visible.count()):
        expect(visible.nth(n)).to_have_attribute("data-status", "failed")
    page.click('[data-filter="all"]')

    page.fill("#search", marker)
    expect(page.locator(".card:visible")).to_have_count(1)
    expect(card(page, done_id)).to_be_visible()
    page.fill("#search", "")
    expect(card(page, failed_id)).to_be_visible()

    # The link client.py prints opens that one result.
    linked = open_viewer(new_page, e2e, f"?job={done_id}")
    expect(linked.locator(".card:visible")).to_have_count(1)
    expect(card(linked, done_id)).to_have_class(re.compile(r"\bfocused\b"))
    expect(linked.locator("#focus-text")).to_contain_text(done_id)
    expect(linked.locator(".filters")).to_be_hidden()
    # A result older than the history a page gets is fetched on its own.
    one = linked.request.get(f"{e2e.viewer_url}/api/jobs/{done_id}")
    assert one.status == 200 and one.json()["status"] == "done" and "<svg" in one.json()["figures"][0]["svg"][:500]
    assert linked.request.get(f"{e2e.viewer_url}/api/jobs/{'0' * 32}").status == 404


PAYLOAD = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script><svg onload="window.__pwned=1">'


def test_untrusted_results_do_not_execute_in_the_viewer(e2e, gateway, new_page):
    page = open_viewer(new_page, e2e)
    code = (
        f"# {PAYLOAD}\n"
        "import plotly.graph_objects as go\n"
        f"print({PAYLOAD!r})\n"
        "fig = go.Figure(go.Scatter(y=[1, 3, 2]))\n"
        f"fig.update_layout(title={PAYLOAD!r})\n"
        f"fig.add_annotation(text={PAYLOAD!r}, x=1, y=3)\n"
        "fig.show()\n"
    )
    shown = gateway.submit(code)
    failing = gateway.submit(f"print({PAYLOAD!r})\nraise ValueError({PAYLOAD!r})\n")
    gateway.wait(shown), gateway.wait(failing)
    expect(card(page, shown)).to_have_attribute("data-status", "done", timeout=LIVE)
    expect(card(page, failing)).to_have_attribute("data-status", "failed", timeout=LIVE)
    for details in page.locator("details").all():
        details.evaluate("(d) => { d.open = true; }")
    page.wait_for_timeout(500)  # give any smuggled handler its chance to run

    # The payloads are on the page as text, and nothing of them became markup.
    expect(card(page, shown).locator("details.code pre")).to_have_text(code)
    expect(card(page, shown).locator("details.stdout pre")).to_have_text(PAYLOAD + "\n")
    expect(card(page, failing).locator(".error")).to_contain_text(PAYLOAD)
    expect(card(page, failing).locator("details.traceback pre")).to_contain_text(PAYLOAD)
    assert page.evaluate("() => window.__pwned") is None
    assert (
        page.locator("#jobs script, #jobs svg, #jobs [onerror], #jobs [onload], #jobs iframe, #jobs object").count()
        == 0
    )
    sources = page.evaluate("() => [...document.querySelectorAll('#jobs img')].map((img) => img.src)")
    assert sources and all(src.startswith("blob:") for src in sources), sources
    assert csp_violations(page) == [] and page.errors == []

    response = page.request.get(f"{e2e.viewer_url}/")
    policy = response.headers["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "script-src 'self'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ):
        assert directive in policy, policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_reconnect_after_a_dropped_websocket_misses_nothing_and_shows_nothing_twice(e2e, gateway, new_page):
    page = new_page()
    link = {"blocked": False, "routes": [], "urls": []}

    def route(ws):
        link["urls"].append(ws.url)
        if link["blocked"]:
            ws.close(code=4000, reason="network blip")  # the page sees a connection that dies at once
            return
        ws.connect_to_server()
        link["routes"].append(ws)

    page.route_web_socket(re.compile(r"/ws(\?|$)"), route)
    page.goto(f"{e2e.viewer_url}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=LIVE)
    before = gateway.submit(example("scatter"))
    gateway.wait(before)
    expect(card(page, before)).to_have_attribute("data-status", "done", timeout=LIVE)

    # The connection drops, and stays unreachable while jobs are published.
    link["blocked"] = True
    link["routes"][-1].close(code=4000, reason="network blip")
    expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting", timeout=LIVE)
    during = [gateway.submit(example(name)) for name in ("bar", "pie", "heatmap")]
    during.append(gateway.submit("raise KeyError('gap')\n"))
    for job_id in during:
        gateway.wait(job_id)
    expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    link["blocked"] = False

    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=LIVE)
    for job_id in during:
        expect(card(page, job_id)).to_have_attribute("data-status", re.compile("^(done|failed)$"), timeout=LIVE)
        assert arrivals(page, job_id)[-1]["via"] == "resume"
    assert "since=" in link["urls"][-1]
    after = gateway.submit(example("bar"))
    gateway.wait(after)
    expect(card(page, after)).to_have_attribute("data-status", "done", timeout=LIVE)

    ids = all_card_ids(page)
    assert len(ids) == len(set(ids)), "a job is shown twice"
    for job_id in [before, *during, after]:
        assert ids.count(job_id) == 1
    hellos = page.evaluate("() => window.plotfarmViewer.hellos()")
    assert hellos[0]["resumed"] is False and hellos[-1]["resumed"] is True
    assert csp_violations(page) == [] and page.errors == []


def seed_results(e2e, svg: str, count: int, per_second: float) -> list[str]:
    """Publish ``count`` finished jobs straight into the events stream, as renderers would.

    The renderers run one fresh interpreter per job (~1 s each on this
    machine), so a hundred real jobs would take minutes; the viewer cannot tell
    these from real ones: same exchange, same messages, same stream.
    """

    async def publish() -> list[str]:
        settings = Settings(_env_file=None, amqp_url=e2e.stack.amqp_url, namespace=e2e.stack.namespace)
        broker = await Broker(settings).connect()
        try:
            job_ids = []
            for n in range(count):
                job_id, submitted = new_job_id(), utcnow()
                code = f"# history {n}\nimport plotly.graph_objects as go\ngo.Figure(go.Bar(y=[{n}, 1])).show()\n"
                await broker.publish_event(JobQueued(job_id=job_id, code=code, submitted_at=submitted))
                finished = utcnow()
                await broker.publish_event(
                    RenderResult(
                        job_id=job_id,
                        status="done",
                        code=code,
                        figures=[svg],
                        renderer_id="history-seed",
                        submitted_at=submitted,
                        finished_at=finished,
                        timings=Timings(total_ms=ms_between(submitted, finished)),
                    )
                )
                job_ids.append(job_id)
                await asyncio.sleep(1 / per_second)
            return job_ids
        finally:
            await broker.close()

    with ThreadPoolExecutor(1) as pool:  # its own event loop, away from Playwright's
        return pool.submit(asyncio.run, publish()).result()


def test_history_survives_a_viewer_restart(e2e, gateway, new_page):
    page = open_viewer(new_page, e2e)  # stays open across the restart
    real = gateway.render(example("bar"), include_svg=True)
    rate = 20  # results/s: about what the whole farm managed at best in `make bench`
    burst = seed_results(e2e, real["figures"][0]["svg"], 100, per_second=rate)
    for job_id in (burst[0], burst[-1]):
        expect(card(page, job_id)).to_have_attribute("data-status", "done", timeout=LIVE)
    latencies = page.evaluate(
        "(ids) => ids.map((id) => document.querySelector(`.card[data-job-id='${id}']`)?.dataset)"
        ".filter((d) => d && d.pushMs).map((d) => [Number(d.pushMs), Number(d.wsMs)])",
        burst,
    )
    pushed = [push for push, _ws in latencies]
    websocket = [ws for _push, ws in latencies]

    def while_down():
        expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting", timeout=LIVE)
        return gateway.render(example("pie"))["job_id"]

    during = e2e.restart_viewer(while_down)

    # The page that stayed open reconnects and gets what it missed, once.
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=LIVE)
    expect(card(page, during)).to_have_attribute("data-status", "done", timeout=LIVE)
    ids = all_card_ids(page)
    assert len(ids) == len(set(ids))

    # A page opened after the restart shows the history the restarted viewer replayed: all of it.
    fresh = open_viewer(new_page, e2e)
    expect(card(fresh, during)).to_have_attribute("data-status", "done", timeout=LIVE)
    fresh_ids = all_card_ids(fresh)
    assert len(fresh_ids) >= 100 and len(fresh_ids) == len(set(fresh_ids))
    assert set(burst) | {real["job_id"], during} <= set(fresh_ids)
    assert set(ids) <= set(fresh_ids)
    assert fresh.evaluate("() => window.plotfarmViewer.hellos()")[0]["jobs"] == len(fresh_ids)
    assert fresh_ids[0] == during  # newest first
    assert csp_violations(page) == [] and csp_violations(fresh) == []
    record(
        f"viewer push latency for {len(burst)} results published at {rate}/s, a page of 100+ cards: "
        f"p50 {statistics.median(pushed):.1f} ms, p95 {percentile(pushed, 0.95):.1f} ms, max {max(pushed):.1f} ms "
        f"(of which viewer -> page: p50 {statistics.median(websocket):.1f} ms, max {max(websocket):.1f} ms)"
    )
