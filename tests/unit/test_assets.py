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
    # Exactly the served files present: not the symlink out, not node_modules' package.json.
    assert set(store.paths()) == {"manifest.json", "runtime/svg.mjs", "pyodide/pyodide.mjs"}


def test_paths_of_the_real_build_list_every_served_file():
    assets = AssetStore(Settings(_env_file=None))
    if not assets.plotly_js.is_file():
        pytest.skip("no assets here: `make assets` first")
    paths = set(assets.paths())
    # Counted independently of paths(): every file of our own dirs and of MathJax, and the big ones.
    expected = {
        f"{head}/{file.relative_to(root).as_posix()}"
        for head, root in [
            ("runtime", assets.web_dir / "runtime"),
            ("client", assets.web_dir / "client"),
            ("mathjax", assets.mathjax_dir),
        ]
        for file in root.rglob("*")
        if file.is_file()
    }
    expected |= {"precompiled/base.bin", "precompiled/preload.bin", "pyodide/pyodide.asm.wasm", "plotly/plotly.min.js"}
    expected |= {f"wheels/{wheel}" for wheel in assets.wheels()}
    assert expected <= paths, sorted(expected - paths)[:10]
