"""AssetStore.resolve: only the files we serve, whatever the path says; AssetStore.paths: all of them."""

import json
import re

import pytest

from shared.assets import EDITOR_PACKAGES, AssetStore
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


# ---- the cache: one copy per file, bounded in bytes ----------------------------------------


def _store_with_files(tmp_path, sizes: dict[str, int], cache_bytes: int) -> AssetStore:
    web = tmp_path / "web"
    (web / "runtime").mkdir(parents=True)
    for name, size in sizes.items():
        (web / "runtime" / name).write_bytes(name.encode().ljust(size, b"."))
    settings = Settings(
        _env_file=None, web_dir=web, wheels_dir=tmp_path / "build" / "wheels", asset_cache_bytes=cache_bytes
    )
    return AssetStore(settings)


SPELLINGS = [
    "runtime/svg.mjs",
    "/runtime/svg.mjs",
    "runtime//svg.mjs",
    "runtime///svg.mjs",
    "runtime////////////////svg.mjs",
    "//runtime/svg.mjs",
    "runtime/svg.mjs/",
    "runtime/svg.mjs//",
]


def test_every_spelling_of_a_file_shares_one_cached_copy(store):
    first = store.get(SPELLINGS[0])
    assert first is not None
    for spelling in SPELLINGS:
        assert store.get(spelling) is first, spelling
    assert store.cached_bytes == len(first.body)
    assert store.canonical("runtime///svg.mjs") == "runtime/svg.mjs"
    assert store.canonical("runtime/../secret.txt") is None


def test_the_cache_never_exceeds_its_bound_and_keeps_what_is_used(tmp_path):
    sizes = {f"f{n}.mjs": 5_000 for n in range(30)}
    store = _store_with_files(tmp_path, sizes, cache_bytes=40_000)  # room for 8 of them
    hot = store.get("runtime/f0.mjs")
    for n in range(1, 30):
        asset = store.get(f"runtime/f{n}.mjs")
        assert asset.body.startswith(f"f{n}.mjs".encode()) and len(asset.body) == 5_000
        assert store.cached_bytes <= 40_000
        assert store.get("runtime//f0.mjs") is hot  # used all along: never the one evicted
    assert store.cached_bytes == 40_000


def test_a_file_too_large_for_the_cache_is_served_without_evicting_the_rest(tmp_path):
    store = _store_with_files(tmp_path, {"small.mjs": 5_000, "huge.bin": 30_000}, cache_bytes=40_000)
    small = store.get("runtime/small.mjs")
    for spelling in ("runtime/huge.bin", "runtime//huge.bin", "runtime/huge.bin"):
        assert len(store.get(spelling).body) == 30_000
        assert store.get("runtime/small.mjs") is small
        assert store.cached_bytes == 5_000


def test_no_cache_at_all_still_serves(tmp_path):
    store = _store_with_files(tmp_path, {"a.mjs": 5_000}, cache_bytes=0)
    assert len(store.get("runtime/a.mjs").body) == 5_000
    assert store.cached_bytes == 0


# ---- the client page's code editor: CodeMirror's ES module entries, nothing else of node_modules ----


def test_only_the_editor_packages_entry_files_resolve(tmp_path):
    web = tmp_path / "web"
    package = web / "node_modules" / "@codemirror" / "view"
    (package / "dist").mkdir(parents=True)
    (package / "package.json").write_text('{"version": "6.0.0", "exports": {".": {"import": "./dist/index.js"}}}')
    for name in ("index.js", "index.cjs", "index.d.ts"):
        (package / "dist" / name).write_text("export {}")
    (web / "node_modules" / "left-pad").mkdir()
    (web / "node_modules" / "left-pad" / "index.js").write_text("")
    store = AssetStore(Settings(_env_file=None, web_dir=web, wheels_dir=tmp_path / "build" / "wheels"))
    assert store.editor_modules == {"@codemirror/view": "editor/codemirror/view/dist/index.js"}
    assert store.resolve("editor/codemirror/view/dist/index.js") == (package / "dist" / "index.js").resolve()
    assert store.editor_versions() == {"@codemirror/view": "6.0.0"}
    for path in (
        "editor/codemirror/view/dist/index.cjs",
        "editor/codemirror/view/package.json",
        "editor/@codemirror/view/dist/index.js",
        "editor/codemirror/view",
        "editor/left-pad/index.js",
        "editor/codemirror/view/dist/../package.json",
    ):
        assert store.resolve(path) is None, path
    assert [p for p in store.paths() if p.startswith("editor/")] == ["editor/codemirror/view/dist/index.js"]


IMPORT = re.compile(
    r"""(?:^|[;\s})])(?:import|export)\s*(?:[\w*${}\s,]+?\s*from\s*)?["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)""",
    re.MULTILINE,
)


def test_the_editor_packages_are_all_there_and_import_only_each_other():
    """EDITOR_PACKAGES is closed: what the served files import, and what the packages depend on, is listed
    (else the page's import map misses a specifier and the editor does not load: the page falls back)."""
    assets = AssetStore(Settings(_env_file=None))
    if not (assets.modules_dir / "@codemirror" / "view").is_dir():
        pytest.skip("no node_modules here: `make assets` first")
    modules = assets.editor_modules
    assert set(modules) == set(EDITOR_PACKAGES)
    for package, url in modules.items():
        text = re.sub(r"/\*.*?\*/", "", assets.resolve(url).read_text(), flags=re.DOTALL)  # docs quote imports
        imported = {a or b for a, b in IMPORT.findall(text)}
        assert imported <= set(EDITOR_PACKAGES), (package, imported - set(EDITOR_PACKAGES))
        manifest = json.loads((assets.modules_dir / package / "package.json").read_text())
        dependencies = {**manifest.get("dependencies", {}), **manifest.get("peerDependencies", {})}
        assert set(dependencies) <= set(EDITOR_PACKAGES), (package, set(dependencies) - set(EDITOR_PACKAGES))
    # Pinned: every one is in package-lock.json with an integrity hash.
    lock = json.loads((assets.web_dir / "package-lock.json").read_text())["packages"]
    for package in EDITOR_PACKAGES:
        entry = lock[f"node_modules/{package}"]
        assert entry["integrity"].startswith("sha512-") and entry["version"] == assets.editor_versions()[package]
