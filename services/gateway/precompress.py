"""``make assets``: gzip the client page's assets ahead, for the build the gateway will serve.

Here, not in compression.py: it needs the client page's build id and what the
page may load (pages.py), and pages.py needs compression.py; this module
depends on both, so neither depends on the other.
"""

from services.gateway.compression import CompressedAssets, compress_all
from services.gateway.pages import OTHER_PAGES, ClientPages
from shared.assets import AssetStore
from shared.settings import get_settings


def main() -> None:
    settings = get_settings()
    assets = AssetStore(settings)
    assets.check()
    build = ClientPages(settings, assets).build
    made, present = compress_all(assets, CompressedAssets(settings.compressed_assets_dir), build, skip=OTHER_PAGES)
    print(
        f"compressed assets for build {build}: {made} made, {present} already there ({settings.compressed_assets_dir})"
    )


if __name__ == "__main__":
    main()
