"""The security headers on everything plotfarm serves to a browser, defined once.

Three servers answer browsers: the gateway (the client-side page and its
assets), the viewer (the live page) and the renderer's asset server (its
headless page). Their Content-Security-Policies differ, because each page
needs different things, and are written beside each page; the rest is the
same everywhere and lives here:

* ``nosniff``, ``no-referrer``, and resources only for our own origin (CORP);
* the page opens no cross-origin window (COOP ``same-origin``);
* pages that run Pyodide are *cross-origin isolated* (COEP ``require-corp``
  as well), which gives them the SharedArrayBuffer the runtime interrupts
  runaway code with. A module worker takes its headers from its own script's
  response, so those assets carry the page's CSP too.

Data a page embeds goes in as JSON that cannot end its ``<script>`` element
(:func:`json_for_html`).
"""

import json


def content_security_policy(*directives: str) -> str:
    """Directives joined as a header value: ``content_security_policy("default-src 'none'", ...)``."""
    return "; ".join(directives)


# Directives every page's policy ends with: no <base>, no form posts, never framed.
LOCKED_DOWN = ("base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'")


def security_headers(csp: str, *, cross_origin_isolated: bool) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    if cross_origin_isolated:
        headers["Cross-Origin-Embedder-Policy"] = "require-corp"
    return headers


def json_for_html(value) -> str:
    """JSON that is safe inside a <script type="application/json"> block."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
