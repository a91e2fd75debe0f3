"""V8's sampling profiler on every interpreter worker a renderer page starts.

``python -m scripts.profile_restore --cpu-profile`` uses it: the per-phase
marks say how long a restore takes, this says what the worker's thread spends
that time on (Emscripten's linking, the heap copy, the libraries, ...), and
how much of it is idle, waiting for scripts and messages.

Workers are reached through the page's DevTools session: auto-attach with
``waitForDebuggerOnStart`` holds each new worker before its first script, the
profiler starts, the worker is released, and ``window_s`` later (its restore
done, no job yet) the profile is taken. The older, non-flat target protocol
(``Target.sendMessageToTarget``) is used because Playwright's CDP sessions
cannot address a child session directly.
"""

import asyncio
import itertools
import json
from collections import Counter

SAMPLING_INTERVAL_US = 250


class WorkerProfiler:
    def __init__(self, page, window_s: float = 1.5):
        self.page, self.window_s = page, window_s
        self.profiles: list[dict] = []
        self._ids = itertools.count(1)
        self._answers: dict[int, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self.cdp = await self.page.context.new_cdp_session(self.page)
        self.cdp.on("Target.receivedMessageFromTarget", self._on_message)
        self.cdp.on("Target.attachedToTarget", self._on_attached)
        await self.cdp.send(
            "Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": False}
        )

    async def stop(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.cdp.detach()

    def _send(self, session_id: str, method: str, params: dict | None = None) -> asyncio.Future:
        message_id = next(self._ids)
        answer = self._answers[message_id] = asyncio.get_running_loop().create_future()
        message = json.dumps({"id": message_id, "method": method, "params": params or {}})
        task = asyncio.ensure_future(
            self.cdp.send("Target.sendMessageToTarget", {"sessionId": session_id, "message": message})
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return answer

    def _on_message(self, event: dict) -> None:
        message = json.loads(event["message"])
        answer = self._answers.pop(message.get("id"), None)
        if answer is not None and not answer.done():
            answer.set_result(message)

    def _on_attached(self, event: dict) -> None:
        if event["targetInfo"]["type"] == "worker":
            task = asyncio.ensure_future(self._profile(event["sessionId"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _profile(self, session_id: str) -> None:
        await self._send(session_id, "Profiler.enable")
        await self._send(session_id, "Profiler.setSamplingInterval", {"interval": SAMPLING_INTERVAL_US})
        await self._send(session_id, "Profiler.start")
        await self._send(session_id, "Runtime.runIfWaitingForDebugger")
        await asyncio.sleep(self.window_s)
        answer = await asyncio.wait_for(self._send(session_id, "Profiler.stop"), 10)
        if "result" in answer:  # a worker that ended meanwhile (the snapshot maker) answers nothing useful
            self.profiles.append(answer["result"]["profile"])


def _frame(node: dict) -> str:
    frame = node["callFrame"]
    where = frame["url"].rsplit("/", 1)[-1]
    return (
        f"{frame['functionName'] or '(anonymous)'} {where}:{frame['lineNumber'] + 1}"
        if where
        else frame["functionName"]
    )


def report(profiles: list[dict], min_ms: float = 3.0, depth: int = 5) -> list[str]:
    """Lines: the mean worker's time top-down (inclusive ms), nodes under ``min_ms`` left out."""
    if not profiles:
        return ["no worker profiles"]
    inclusive: Counter = Counter()
    for profile in profiles:
        nodes = {node["id"]: node for node in profile["nodes"]}
        parent = {child: node["id"] for node in profile["nodes"] for child in node.get("children", [])}
        # timeDeltas[i] is the time before sample i: sample i lasted until the next one.
        for sample, lasted in zip(profile["samples"], profile["timeDeltas"][1:] + [0], strict=True):
            path, node = [], sample
            while node in nodes and node in parent:  # up to, not including, (root)
                path.append(_frame(nodes[node]))
                node = parent[node]
            path.reverse()
            for end in range(1, len(path) + 1):
                inclusive[tuple(path[:end])] += lasted
    scale = 1000 * len(profiles)  # microseconds over all profiles -> mean milliseconds
    lines = [f"{len(profiles)} workers, {SAMPLING_INTERVAL_US} us sampling; mean ms per worker, inclusive:"]

    def walk(prefix: tuple, level: int) -> None:
        below = [(path, us) for path, us in inclusive.items() if len(path) == len(prefix) + 1 and path[:-1] == prefix]
        for path, us in sorted(below, key=lambda item: -item[1]):
            if us / scale >= min_ms:
                lines.append(f"{us / scale:8.1f}  {'  ' * level}{path[-1][:100]}")
                if level + 1 < depth:
                    walk(path, level + 1)

    walk((), 0)
    return lines
