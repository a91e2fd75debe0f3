"""Every tunable of plotfarm, read once from ``PLOTFARM_*`` environment variables.

One class for all services keeps the names consistent: the gateway and the
renderer must agree on limits, the broker URL and the namespace, so they read
them from the same place. Every field says what it does; the README's
configuration table mirrors this file (a unit test keeps it complete).
"""

import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


# What a renderer needs beside its jobs' own memory, measured on 2026-12-07 (2 cores, as
# root, `job` isolation, after a few px jobs: the renderer tree's PSS was 2.0 GB with two
# pages, 1.7 GB with the single page before): Chromium's browser, GPU and utility processes
# with the renderer service; and each renderer page (its interpreter snapshot in shared
# memory, plotly.js and MathJax, its spare interpreters). See Settings.renderer_memory_mb.
RENDERER_BASE_MB = 768
RENDERER_PAGE_MB = 672


def _default_renderer_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLOTFARM_", extra="ignore", populate_by_name=True)

    # Broker
    amqp_url: str = Field("amqp://guest:guest@127.0.0.1:5672/", description="The RabbitMQ every service uses.")
    amqp_urls: str = Field(
        "",
        description="Comma-separated URLs of every node of a RabbitMQ cluster; connections try them in turn and "
        "fail over to the next node when theirs is lost (shared/amqp_nodes.py). Empty = just amqp_url.",
    )
    namespace: str = Field(
        "plotfarm",
        pattern=r"^[A-Za-z0-9_.-]{1,100}$",
        description="Prefix of every exchange and queue name; tests use a unique one per run.",
    )
    publish_timeout_s: float = Field(5.0, gt=0, description="Longest wait for a publisher confirm.")
    result_publish_attempts: int = Field(
        10,
        ge=1,
        description="Tries at publishing a job's result, 0.5 s to 5 s apart (about 35 s in all, enough for a broker "
        "restart), before the job is handed back to the queue.",
    )
    delivery_limit: int = Field(
        3, ge=1, description="Deliveries of a job before it is dead-lettered as a failed result."
    )
    max_queued_jobs: int = Field(100_000, ge=1, description="Jobs queue length; beyond it the gateway answers 503.")
    events_max_age: str = Field("7D", description="Retention of the events stream (RabbitMQ x-max-age).")
    events_max_bytes: int = Field(1_000_000_000, ge=1_000_000, description="Retention of the events stream, bytes.")
    events_prefetch: int = Field(
        500, ge=1, description="Events a gateway or viewer may have unacked while it folds them in."
    )

    # Gateway
    gateway_host: str = Field("0.0.0.0", description="Address the gateway listens on.")
    gateway_port: int = Field(3000, description="Port the gateway listens on.")
    public_gateway_url: str = Field("http://localhost:3000", description="Base of the URLs the gateway hands out.")
    public_viewer_url: str = Field("http://localhost:8000", description="Base of the viewer links.")
    compressed_assets_dir: Path = Field(
        PROJECT_ROOT / "build" / "gzip",
        description="Where the client page's assets are kept gzipped, per build (`make assets` makes them; "
        "the gateway adds what is missing, or keeps it in memory if it cannot write here).",
    )
    results_cache_bytes: int = Field(
        256_000_000,
        ge=1_000_000,
        validation_alias=AliasChoices("PLOTFARM_RESULTS_CACHE_BYTES", "PLOTFARM_GATEWAY_CACHE_BYTES"),
        description="Results a gateway or viewer keeps in memory, oldest finished dropped first "
        "(PLOTFARM_GATEWAY_CACHE_BYTES, its old name, still works).",
    )
    tenant_share: float = Field(
        0.25,
        gt=0,
        le=1,
        description="A tenant's share of the results cache and of the events stream: a tenant holding more loses "
        "its own oldest results from the cache first, and its submissions get 429 while its next result would "
        "push another tenant's out of the stream (services/gateway/quota.py). A tenant alone may use all of both.",
    )
    max_wait_s: float = Field(120.0, gt=0, description="Longest long-poll a client may ask for (?wait=).")
    retry_after_s: int = Field(5, ge=1, description="Retry-After sent with a 503 when the broker cannot take a job.")
    api_keys: str = Field("", description="Comma-separated API keys, each `tenant=key` or a bare key; empty = open.")
    api_keys_file: Path | None = Field(None, description="A file of API keys, one `tenant=key` (or key) per line.")
    rate_limit_per_minute: int = Field(600, ge=0, description="Job submissions per tenant (or client IP); 0 = off.")
    rate_limit_burst: int = Field(200, ge=1, description="Submissions allowed at once before the rate applies.")
    asset_cache_bytes: int = Field(
        256_000_000,
        ge=0,
        description="Asset files (Pyodide, plotly.js, the precompiled layers, ...) the gateway, the viewer and the "
        "renderer's asset server keep in memory, least recently used dropped first; a file over a quarter of it is "
        "read from disk each time instead. The renderer loads ~125 MB, the client page ~75 MB. 0 = none.",
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated IP addresses and CIDR ranges of the proxies in front of the gateway and the "
        "viewer (an ingress); only from them are X-Forwarded-For (the client's address, for rate limits) and "
        "X-Forwarded-Proto (https: Secure cookies, the viewer's origin) believed. Empty = none.",
    )

    # Viewer
    viewer_host: str = Field("0.0.0.0", description="Address the viewer listens on.")
    viewer_port: int = Field(8000, description="Port the viewer listens on.")
    viewer_history: int = Field(500, ge=100, description="Results the viewer keeps for newly opened pages.")
    viewer_require_key: Literal["auto"] | bool = Field(
        "auto",
        description="auto (and true): whenever API keys are set, the viewer asks for one and shows only that key's "
        "tenant's jobs; false: every job to anyone who reaches it (an operator's own view; logged as a warning).",
    )
    viewer_catch_up_wait_s: float = Field(
        20.0,
        gt=0,
        description="A page (re)connecting while the viewer still replays the stream waits this long for the replay.",
    )
    viewer_outbox_size: int = Field(
        2000, ge=10, description="Changes queued for one page; a page that falls further behind is told to reconnect."
    )
    websocket_heartbeat_s: float = Field(15.0, gt=0, description="Ping interval of the viewer's WebSockets.")
    viewer_allowed_origins: str = Field(
        "",
        description="Comma-separated origins (https://host[:port]) whose pages may open the viewer's WebSocket, "
        "besides the viewer's own (from the request's Host and scheme) and PLOTFARM_PUBLIC_VIEWER_URL's.",
    )

    # Jobs and their limits
    max_code_bytes: int = Field(64 * 1024, ge=1, description="Largest `code`, in UTF-8 bytes.")
    max_input_bytes: int = Field(
        20_000_000,
        ge=1,
        description="A job's input files and variables together, in bytes (text as UTF-8, variables as JSON); "
        "they travel inside the job's message, so keep it well under RabbitMQ's max_message_size (128 MiB).",
    )
    max_input_files: int = Field(100, ge=1, description="Input files one job may carry.")
    default_timeout_s: float = Field(10.0, gt=0, description="A job's time limit when it asks for none.")
    max_timeout_s: float = Field(60.0, gt=0, description="The longest time limit a job may ask for.")
    default_width: int = Field(700, ge=50, description="Figure width when neither the job nor the figure sets one.")
    default_height: int = Field(450, ge=50, description="Figure height when neither the job nor the figure sets one.")
    max_figures: int = Field(20, ge=1, description="Figures one job may show.")
    max_figure_bytes: int = Field(8_000_000, description="JSON of one captured figure.")
    max_svg_bytes: int = Field(
        16_000_000, description="One rendered SVG; a world map at 50 m resolution with its countries is ~9.4 MB."
    )
    max_png_pixels: int = Field(
        40_000_000,
        ge=10_000,
        description="Pixels of one PNG, JPEG or WebP (width x height x scale²); beyond it the job fails.",
    )
    max_png_bytes: int = Field(8_000_000, description="One PNG file; one JPEG or WebP file too.")
    max_pdf_bytes: int = Field(
        8_000_000, ge=1, description="One PDF file (printed from the figure's SVG: about the SVG's size or less)."
    )
    max_result_bytes: int = Field(32_000_000, description="A whole result message; RabbitMQ's own limit is 128 MiB.")
    max_output_chars: int = Field(64_000, description="Captured stdout and stderr, each.")
    max_error_chars: int = Field(
        20_000, ge=1_000, description="An error's message, and its traceback, each; the rest is cut with a marker."
    )
    max_figure_depth: int = Field(
        64,
        ge=8,
        le=200,
        description="Levels of nested arrays and objects in one figure's JSON (real figures use about 10); "
        "deeper fails the job with OutputLimitExceeded.",
    )
    export_timeout_s: float = Field(
        20.0,
        gt=0,
        description="Time to draw a job's figures once its code has run (on top of its own time limit); "
        "beyond it the job fails with TimeoutError and only its own page is replaced.",
    )

    # Renderer
    renderer_id: str = Field(default_factory=_default_renderer_id, description="Renderer name in results and logs.")
    renderers: int = Field(
        1,
        ge=0,
        le=64,
        validation_alias=AliasChoices("PLOTFARM_RENDERERS", "RENDERERS"),
        description="Renderers `make run` starts (RENDERERS=N make run).",
    )
    renderer_concurrency: int = Field(
        2, ge=1, le=32, description="Jobs in flight per renderer (= prefetch), each on a renderer page of its own."
    )
    isolation: Literal["job", "tenant", "none"] = Field(
        "job",
        description="job: a fresh interpreter per job; tenant: reuse within one tenant; none: reuse freely.",
    )
    spare_interpreters: int = Field(0, ge=0, le=64, description="Fresh interpreters kept ready; 0 = concurrency.")
    parallel_restores: int = Field(
        2,
        ge=1,
        le=16,
        validation_alias=AliasChoices("PLOTFARM_PARALLEL_RESTORES", "PLOTFARM_PARALLEL_BOOTS"),
        description="Interpreters restored at the same time (PLOTFARM_PARALLEL_BOOTS, its old name, still works).",
    )
    stored_snapshot: bool = Field(
        True,
        validation_alias=AliasChoices("PLOTFARM_STORED_SNAPSHOT", "PLOTFARM_STORED_TEMPLATE"),
        description="Keep the interpreter snapshot on disk (snapshot_store_dir) so a restart restores it "
        "instead of making one: ~4 s less per cold start (PLOTFARM_STORED_TEMPLATE, its old name, still works).",
    )
    snapshot_store_dir: Path = Field(
        PROJECT_ROOT / "build" / "snapshots",
        validation_alias=AliasChoices("PLOTFARM_SNAPSHOT_STORE_DIR", "PLOTFARM_TEMPLATE_STORE_DIR"),
        description="Where stored snapshots live; renderers may share it (a volume), each build keeps one (~150 MB) "
        "(PLOTFARM_TEMPLATE_STORE_DIR, its old name, still works).",
    )
    interpreter_heap_limit_mb: int = Field(512, ge=64, description="A reused interpreter past this heap is discarded.")
    interpreter_max_heap_mb: int = Field(
        2048,
        ge=256,
        le=4096,
        description="The most memory one job's interpreter may use (its WebAssembly memory's maximum; "
        "beyond it the job gets MemoryError). A renderer needs 0.75 GB + concurrency x (0.65 GB + this "
        "+ js_heap_mb): shared/settings.py renderer_memory_mb.",
    )
    js_heap_mb: int = Field(
        1024, ge=128, description="V8 heap per JavaScript context; a job exhausting it crashes its page, not the host."
    )
    interrupt_grace_s: float = Field(1.0, gt=0, description="From interrupt to worker.terminate().")
    page_allowance_s: float = Field(
        15.0,
        gt=0,
        description="Beyond a job's limit and the grace: time to get an interpreter before its page counts as hung.",
    )
    start_timeout_s: float = Field(
        120.0,
        gt=0,
        validation_alias=AliasChoices("PLOTFARM_START_TIMEOUT_S", "PLOTFARM_BOOT_TIMEOUT_S"),
        description="Longest a renderer page may take to start its interpreters (the first, made from scratch, "
        "included) (PLOTFARM_BOOT_TIMEOUT_S, its old name, still works).",
    )
    renderer_health_host: str = Field("0.0.0.0", description="Address of the renderer's health server.")
    renderer_health_port: int = Field(8001, ge=0, description="Liveness/readiness HTTP port; 0 turns it off.")
    renderer_stats_public: bool = Field(
        False,
        description="Serve the health port's /stats (Chromium's processes and sandbox, the pool) to any address; "
        "by default only to loopback peers. /healthz, /readyz and /metrics are served to all.",
    )
    shutdown_grace_s: float = Field(30.0, ge=0, description="On SIGTERM, time for in-flight jobs to finish.")
    chromium_path: str = Field("", description="Chromium binary; found automatically when empty.")
    network_namespace: Literal["auto", "on", "off"] = Field(
        "auto", description="Start Chromium in an empty network namespace (unshare); auto: when the kernel allows."
    )
    chromium_sandbox: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Chromium's own sandbox: auto and on keep it on (as root, Chromium then runs as the system"
        " user plotfarm-chromium); off passes --no-sandbox and logs a warning at every start.",
    )

    # MCP service (services/mcp): a client of the gateway's HTTP API, nothing else
    mcp_host: str = Field("0.0.0.0", description="Address the MCP server listens on.")
    mcp_port: int = Field(3001, ge=0, le=65535, description="Port the MCP server listens on (endpoint /mcp).")
    mcp_gateway_url: str = Field(
        "http://127.0.0.1:3000", description="The gateway the MCP server submits jobs to (its own HTTP API)."
    )
    mcp_wait_margin_s: float = Field(
        60.0,
        gt=0,
        description="How long a tool call waits for its result beyond the job's own time limit "
        "(queueing, packages, images); after that it answers with the job id and an error.",
    )
    mcp_busy_retries: int = Field(
        3, ge=0, le=20, description="Times a submission is retried when the gateway answers 429 or 503."
    )
    mcp_max_retry_after_s: float = Field(
        10.0, gt=0, description="Longest single wait when retrying after 429/503 (Retry-After is capped to it)."
    )
    mcp_request_timeout_s: float = Field(
        30.0, gt=0, description="Time limit of one gateway request other than the long poll (which adds its wait)."
    )
    mcp_allowed_hosts: str = Field(
        "localhost,127.0.0.1,[::1]",
        description="Comma-separated Host header values /mcp answers (DNS-rebinding protection, on whatever the "
        "listen address): a name (any port), name:port, or name:*; browser pages may call it only from these "
        "hosts' origins. Add the names clients reach it by (compose: mcp; k8s: plotfarm-mcp).",
    )

    # Paths and logging
    web_dir: Path = Field(PROJECT_ROOT / "web", description="Our web files, with node_modules from `make assets`.")
    wheels_dir: Path = Field(
        PROJECT_ROOT / "build" / "wheels",
        description="The PyPI wheels; the verified Pyodide packages and the precompiled layers sit beside it.",
    )
    log_format: Literal["auto", "console", "json"] = Field(
        "auto", description="console, json, or auto (console on a terminal, JSON otherwise)."
    )
    log_level: str = Field("INFO", description="Lowest level logged.")


def renderer_memory_mb(settings: Settings) -> int:
    """The memory a renderer container must be allowed, from the settings that bound it.

    Every job in flight has a page of its own and may fill both its interpreter's
    memory (``interpreter_max_heap_mb``, the WebAssembly maximum no job can raise)
    and its worker's JavaScript heap (``js_heap_mb``, where V8 stops it). Compose
    and the k8s manifests set their limits from this (tests/unit/test_deploy_config.py).
    """
    per_job = RENDERER_PAGE_MB + settings.interpreter_max_heap_mb + settings.js_heap_mb
    return RENDERER_BASE_MB + settings.renderer_concurrency * per_job


@lru_cache
def get_settings() -> Settings:
    return Settings()
