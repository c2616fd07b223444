"""The settings page at ``/``, its static files under ``/static/``, and the offline GraphiQL
page, each with headers that keep the browser to this origin."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WEB = Path(__file__).resolve().parent
STATIC = WEB / "static"

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# GraphiQL's page differs in one directive: its CSS embeds its fonts as data: URLs. It
# needs no inline style or script and no eval (checked in a browser: tests/web).
GRAPHIQL_CSP = PAGE_CSP.replace("img-src", "font-src 'self' data:; img-src")
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# The vendored files live under a directory named after their version: never changed in place.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


def page_headers(csp: str = PAGE_CSP) -> dict[str, str]:
    """Security headers of a page (HTML) answer."""
    return {"Content-Security-Policy": csp, **COMMON_HEADERS, "Cache-Control": REVALIDATE}


class StaticHeaders:
    """Adds the security and cache headers to every answer of the static files app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cache = IMMUTABLE if "/vendor/" in scope.get("path", "") else REVALIDATE

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"cache-control"]
                extra = {"Content-Security-Policy": PAGE_CSP, **COMMON_HEADERS}
                headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
                headers.append((b"cache-control", cache.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


# Read once at import: no file I/O on the event loop per request.
INDEX_HTML = (WEB / "index.html").read_text(encoding="utf-8")
GRAPHIQL_HTML = (WEB / "graphiql.html").read_text(encoding="utf-8")


async def settings_page(request: Request) -> Response:
    """GET /: the settings page."""
    return HTMLResponse(INDEX_HTML, headers=page_headers())


def graphiql_headers() -> dict[str, str]:
    """Headers of the GraphiQL page (GRAPHIQL_HTML), whose files are all in /static/vendor/."""
    return page_headers(GRAPHIQL_CSP)


def web_routes() -> list[BaseRoute]:
    """The routes of the page and its files, for create_app()."""
    static = StaticHeaders(StaticFiles(directory=STATIC, follow_symlink=False))
    return [
        Route("/", settings_page, methods=["GET", "HEAD"]),
        Mount("/static", app=static, name="static"),
    ]
