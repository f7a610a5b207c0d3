"""The dashboard: one static page (HTML, a script, a style sheet) over the authenticated API.

The page holds no data and needs no token to load; the script asks for an API token and reads
and acts through ``/v1/...`` with it, like any client. Addresses are relative, so the page also
works behind a path prefix (an ingress serving the service under ``/cronjob/``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import RedirectResponse, Response

_STATIC = Path(__file__).with_name("static")
_ASSETS = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}

#: Only the page's own script and style run; it talks to this origin only; no other site may frame
#: it (clickjacking a cancel button); and, with Trusted Types required, a string assigned as markup
#: (``innerHTML``) is refused by the browser rather than parsed.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def dashboard_router() -> APIRouter:
    """``GET /dashboard`` (the page), its two assets, and ``GET /`` and ``GET /dashboard/``
    redirecting to it (relative redirects, which keep an ingress's path prefix)."""
    router = APIRouter(include_in_schema=False)
    page = (_STATIC / "dashboard.html").read_bytes()
    assets = {name: ((_STATIC / name).read_bytes(), media) for name, media in _ASSETS.items()}

    @router.get("/")
    async def home() -> RedirectResponse:
        return RedirectResponse("dashboard", status_code=307)

    @router.get("/dashboard/")
    async def dashboard_slash() -> RedirectResponse:
        # Served as is, its relative addresses would resolve under /dashboard/; Starlette's own
        # slash redirect would name the host and drop an ingress's path prefix.
        return RedirectResponse("../dashboard", status_code=307)

    @router.api_route("/dashboard", methods=["GET", "HEAD"])
    async def dashboard() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=HEADERS)

    @router.api_route("/dashboard/{name}", methods=["GET", "HEAD"])
    async def asset(name: str) -> Response:
        found = assets.get(name)
        if found is None:
            raise HTTPException(404, f"the dashboard has no file {name!r}")
        return Response(found[0], media_type=found[1], headers=HEADERS)

    return router
