"""AssetStore.resolve: only the files we serve, whatever the path says; AssetStore.paths: all of them."""

import pytest

from shared.assets import AssetStore
from shared.settings import Settings


@pytest.fixture
def store(tmp_path):
    web = tmp_path / "web"
    (web / "runtime").mkdir(parents=True)
    (web / "runtime" / "svg.mjs").write_text("export {}")
    (web / "node_modules" / "pyodide").mkdir(parents=True)
    (web / "node_modules" / "pyodide" / "pyodide.mjs").write_text("")
    (web / "node_modules" / "pyodide" / "package.json").write_text("{}")
    (tmp_path / "secret.txt").write_text("secret")
    (web / "secret-link.mjs").write_text("")
    (web / "runtime" / "escape").symlink_to(tmp_path)
    return AssetStore(Settings(_env_file=None, web_dir=web, wheels_dir=tmp_path / "build" / "wheels"))


def test_our_files_resolve(store):
    assert store.resolve("runtime/svg.mjs").name == "svg.mjs"
    assert store.resolve("/runtime//svg.mjs").name == "svg.mjs"
    assert store.resolve("pyodide/pyodide.mjs").name == "pyodide.mjs"


@pytest.mark.parametrize(
    "path",
    [
        "../secret.txt",
        "runtime/../../secret.txt",
        "runtime/..%2F..%2Fsecret.txt",
        "runtime/escape/secret.txt",  # a symlink out of the served directory
        "runtime\\..\\..\\secret.txt",
        "pyodide/package.json",  # in node_modules, but not one of the files we serve
        "node_modules/pyodide/pyodide.mjs",
        "secret-link.mjs",
        "runtime",
        "",
        "/",
    ],
)
def test_nothing_else_does(store, path):
    assert store.resolve(path) is None
    assert store.get(path) is None


def test_paths_lists_what_resolves_and_nothing_else(store):
    paths = store.paths()
    assert "runtime/svg.mjs" in paths and "pyodide/pyodide.mjs" in paths and "manifest.json" in paths
    assert all(store.resolve(path) is not None for path in paths if path != "manifest.json")
    assert not [p for p in paths if "secret" in p or "escape" in p]  # the symlink out is not followed


def test_paths_of_the_real_build_all_resolve():
    assets = AssetStore(Settings(_env_file=None))
    if not assets.plotly_js.is_file():
        pytest.skip("no assets here: `make assets` first")
    paths = assets.paths()
    assert {"precompiled/base.bin", "pyodide/pyodide.asm.wasm", "plotly/plotly.min.js", "client/client.mjs"} <= set(
        paths
    )
    assert all(assets.resolve(path) is not None for path in paths if path != "manifest.json")
