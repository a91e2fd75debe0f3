"""The client page as the gateway writes it: its import map, allowed by its hash and nothing else
inline, and the input limits the page enforces, taken from the settings."""

import base64
import hashlib
import json
import re

import pytest

from services.gateway.pages import PAGE_POLICY, SCRIPT_SRC, ClientPages
from shared.assets import EDITOR_PACKAGES, AssetStore
from shared.settings import Settings
from shared.vocabulary import FILE_NAME_PATTERN, MAX_FILE_NAME_BYTES


@pytest.fixture
def pages():
    settings = Settings(_env_file=None, max_input_bytes=1234, max_input_files=7)
    assets = AssetStore(settings)
    if not (assets.web_dir / "client" / "index.html").is_file() or not assets.editor_modules:
        pytest.skip("no web assets here: `make assets` first")
    return ClientPages(settings, assets)


def test_the_import_map_is_the_one_inline_script_and_the_policy_allows_it_by_hash(pages):
    html = pages.render_page().decode()
    scripts = re.findall(r"<script( [^>]*)?>(.*?)</script>", html, re.DOTALL)
    inline = [
        (attrs, text) for attrs, text in scripts if "src=" not in attrs and 'type="application/json"' not in attrs
    ]
    assert [attrs for attrs, _ in inline] == [' type="importmap"']
    text = inline[0][1]
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    assert pages._policy == PAGE_POLICY.replace(SCRIPT_SRC, f"{SCRIPT_SRC} 'sha256-{digest}'")
    imports = json.loads(text)["imports"]
    assert set(imports) == set(EDITOR_PACKAGES)
    for url in imports.values():
        assert url.startswith(pages.asset_base) and pages.assets.resolve(url.removeprefix(pages.asset_base)), url


def test_the_page_learns_the_input_limits_from_the_settings(pages):
    html = pages.render_page().decode()
    config = json.loads(re.search(r'id="plotfarm-config">(.*?)</script>', html, re.DOTALL).group(1))
    assert config["inputs"] == {
        "maxBytes": 1234,
        "maxFiles": 7,
        "namePattern": FILE_NAME_PATTERN,
        "maxNameBytes": MAX_FILE_NAME_BYTES,
    }
