"""The client page's assets gzipped once per build, kept on disk, served from the first request."""

import asyncio
import gzip
import os

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.compression import NOT_WORTH_IT, CompressedAssets, compress_all, gzipped
from services.gateway.pages import add_page_routes
from shared.assets import MATHJAX_PACKAGE, PLOTLY_JS_PACKAGE, TOPOJSON_PACKAGE, AssetStore
from shared.settings import Settings

TEXT = b"import plotly.graph_objects as go\n" * 2000


@pytest.fixture
def layout(tmp_path):
    """A web/ with one compressible file, one that does not pay, and one the gateway does not serve."""
    web_dir = tmp_path / "web"
    for head in ("runtime", "client", "renderer"):
        (web_dir / head).mkdir(parents=True)
    (web_dir / "runtime" / "big.mjs").write_bytes(TEXT)
    (web_dir / "runtime" / "later.mjs").write_bytes(TEXT + b"# later\n")
    (web_dir / "runtime" / "noise.bin").write_bytes(os.urandom(50_000))
    (web_dir / "renderer" / "index.html").write_bytes(TEXT)
    (web_dir / "client" / "index.html").write_text("<html>{{assets}}</html>")
    for package in ("pyodide", PLOTLY_JS_PACKAGE, TOPOJSON_PACKAGE, MATHJAX_PACKAGE):  # for manifest.json
        (web_dir / "node_modules" / package).mkdir(parents=True)
        (web_dir / "node_modules" / package / "package.json").write_text('{"version": "1.0.0"}')
    settings = Settings(
        _env_file=None, web_dir=web_dir, wheels_dir=tmp_path / "build" / "wheels", compressed_assets_dir=tmp_path / "gz"
    )
    return settings, AssetStore(settings)


def test_gzip_is_kept_only_when_it_pays():
    assert gzip.decompress(gzipped(TEXT)) == TEXT
    assert gzipped(os.urandom(10_000)) == NOT_WORTH_IT


def test_stored_per_build_and_other_builds_forgotten(tmp_path):
    store = CompressedAssets(tmp_path / "gz")
    assert store.load("b1", "runtime/big.mjs") is None
    store.save("b1", "runtime/big.mjs", gzipped(TEXT))
    store.save("b1", "runtime/noise.bin", NOT_WORTH_IT)
    assert gzip.decompress(store.load("b1", "runtime/big.mjs")) == TEXT
    assert store.load("b1", "runtime/noise.bin") == NOT_WORTH_IT  # known: send it plain
    assert not [p for p in (tmp_path / "gz").rglob(".staging-*")]
    store.save("b2", "runtime/big.mjs", gzipped(TEXT))
    assert store.load("b1", "runtime/big.mjs") is None and (tmp_path / "gz" / "b2").is_dir()


@pytest.mark.parametrize("path", ["/runtime/big.mjs", "//runtime/big.mjs", "runtime//big.mjs"])
def test_kept_inside_its_directory_whatever_the_path_looks_like(tmp_path, path):
    store = CompressedAssets(tmp_path / "gz")
    store.save("b1", path, gzipped(TEXT))
    assert (tmp_path / "gz" / "b1" / "runtime" / "big.mjs.gz").is_file()
    assert gzip.decompress(store.load("b1", "runtime/big.mjs")) == TEXT
    with pytest.raises(ValueError):
        store.load("b1", "runtime/../../escape")


def test_a_directory_it_cannot_write_costs_nothing_but_the_disk(tmp_path):
    (tmp_path / "gz").write_text("a file where the directory should be")
    store = CompressedAssets(tmp_path / "gz")
    store.save("b1", "runtime/big.mjs", gzipped(TEXT))  # logged, not raised
    assert store.load("b1", "runtime/big.mjs") is None


def test_compress_all_makes_what_is_missing_once(layout):
    settings, assets = layout
    store = CompressedAssets(settings.compressed_assets_dir)
    made, present = compress_all(assets, store, "b1", skip=("renderer",))
    assert (made, present) == (3, 0)  # big, later, noise (plain); not renderer/, nor the small manifest
    assert store.load("b1", "renderer/index.html") is None
    assert compress_all(assets, store, "b1", skip=("renderer",)) == (0, 3)


async def test_the_gateway_sends_the_stored_gzip_from_the_first_request(layout):
    settings, assets = layout
    app = web.Application()
    add_page_routes(app, settings, assets)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        html = await (await client.get("/client-plot")).text()
        base = html.removeprefix("<html>").removesuffix("</html>")
        build = base.split("/")[2]
        CompressedAssets(settings.compressed_assets_dir).save(build, "runtime/big.mjs", gzipped(TEXT))
        first = await client.get(f"{base}runtime/big.mjs", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
        assert first.headers["Content-Encoding"] == "gzip" and gzip.decompress(await first.read()) == TEXT
        plain = await client.get(f"{base}runtime/big.mjs", headers={"Accept-Encoding": "identity"})
        assert "Content-Encoding" not in plain.headers and await plain.read() == TEXT
        # Not made yet: the first answer goes plain while the gateway makes it, and keeps it on disk.
        later = await client.get(f"{base}runtime/later.mjs", headers={"Accept-Encoding": "gzip"})
        assert "Content-Encoding" not in later.headers and await later.read() == TEXT + b"# later\n"
        for _ in range(100):
            if CompressedAssets(settings.compressed_assets_dir).load(build, "runtime/later.mjs"):
                break
            await asyncio.sleep(0.05)
        assert gzip.decompress(CompressedAssets(settings.compressed_assets_dir).load(build, "runtime/later.mjs"))
        again = await client.get(f"{base}runtime/later.mjs", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
        assert again.headers["Content-Encoding"] == "gzip"
        # One where gzip does not pay goes plain, now and later.
        for _ in range(2):
            noise = await client.get(f"{base}runtime/noise.bin", headers={"Accept-Encoding": "gzip"})
            assert "Content-Encoding" not in noise.headers
            await asyncio.sleep(0.2)
    finally:
        await client.close()


async def test_the_asset_route_checks_the_build_before_reading_and_reads_each_file_by_one_name(layout):
    settings, assets = layout
    reads = []
    read = assets.get
    assets.get = lambda path: reads.append(path) or read(path)
    app = web.Application()
    add_page_routes(app, settings, assets)
    async with TestClient(TestServer(app)) as client:
        other_build = "0" * 12
        for path in ("runtime/big.mjs", "runtime//big.mjs", "plotly/plotly.min.js"):
            response = await client.get(f"/assets/{other_build}/{path}")
            assert response.status == 404 and response.content_type == "application/json"
        assert reads == []  # an old build's URL reads nothing
        build = assets_build(settings, assets)
        for spelling in ("runtime/big.mjs", "runtime//big.mjs", "runtime///big.mjs/"):
            response = await client.get(f"/assets/{build}/{spelling}", headers={"Accept-Encoding": "identity"})
            assert response.status == 200 and await response.read() == TEXT
        assert set(reads) - {"client/index.html"} == {"runtime/big.mjs"}


def assets_build(settings, assets) -> str:
    from services.gateway.pages import ClientPages

    return ClientPages(settings, AssetStore(settings)).build
