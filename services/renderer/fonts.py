"""Which fonts this machine's Chromium can draw with (fontconfig), for the page's warnings.

A figure may ask for a font family the renderer does not have; Chromium then
quietly draws the next family in its list, or fontconfig's default. The page
cannot find out which (every family "exists" to a web page), so the renderer
asks fontconfig once and tells the page; ``make`` installs a fixed set
(README, "Fonts").
"""

import asyncio

import structlog

log = structlog.get_logger(__name__)


async def _fontconfig(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await process.communicate()
    return out.decode(errors="replace")


async def installed_fonts() -> dict:
    """``{"installed": [family, ...], "fallback": family}``; empty when fontconfig is missing."""
    try:
        listing = await _fontconfig("fc-list", ":", "family")
        fallback = (await _fontconfig("fc-match", "sans-serif", "family")).strip()
    except FileNotFoundError:
        log.warning("fontconfig (fc-list) is missing: no warnings about substituted fonts")
        return {"installed": [], "fallback": "sans-serif"}
    families = sorted({name.strip() for line in listing.splitlines() for name in line.split(",") if name.strip()})
    return {"installed": families, "fallback": fallback.split(",")[0] or "sans-serif"}
