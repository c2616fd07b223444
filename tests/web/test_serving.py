"""What `GET /`, `/static/...` and the GraphiQL page answer, without a browser: the
headers that keep a browser to this origin, and no reference to any other origin in the
page, GraphiQL's page or any file they load (issue 10, acceptance 7)."""

from __future__ import annotations

import hashlib
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.support import Api

WEB = Path(__file__).resolve().parents[2] / "web"
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


class References(HTMLParser):
    """Every src and href of a page, inline scripts, event-handler and style attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        "Every src, href and action: links included."
        self.assets: list[str] = []
        "What the browser loads by itself: src, and the href of a <link>."
        self.inline_scripts = 0
        self.handlers: list[str] = []
        self.styles = 0
        self._in_script_without_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.urls += [v for k, v in attrs if k in {"src", "href", "action"} and v]
        self.assets += [
            v for k, v in attrs if v and (k == "src" or (tag == "link" and k == "href"))
        ]
        self.handlers += [k for k, _ in attrs if k.startswith("on")]
        self.styles += tag == "style" or "style" in values
        self._in_script_without_src = tag == "script" and not values.get("src")

    def handle_data(self, data: str) -> None:
        if self._in_script_without_src and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script_without_src = False


def references(html: str) -> References:
    parser = References()
    parser.feed(html)
    return parser


def same_origin(url: str) -> bool:
    return url.startswith("data:") or (url.startswith(("/", "#")) and not url.startswith("//"))


CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)")
JS_IMPORT = re.compile(r"""(?:import|from)\s*\(?\s*["']([^"']+)["']""")


async def assert_assets_stay_home(api: Api, page: str) -> list[str]:
    """Loads every asset of ``page``; each is same-origin, 200, with the page headers."""
    found = references(page)
    assert found.urls
    assert all(same_origin(url) for url in found.urls), found.urls
    loaded = []
    for url in (u for u in found.assets if u.startswith("/")):
        response = await api.client.get(url)
        assert response.status_code == 200, url
        assert_secure_headers(response)
        body = response.text
        nested = CSS_URL.findall(body) if url.endswith(".css") else []
        if url.startswith("/static/") and not url.startswith("/static/vendor/"):
            nested += [u for u in JS_IMPORT.findall(body) if not u.startswith("./")]
        assert all(same_origin(u) for u in nested), (url, nested)
        loaded.append(url)
    return loaded


def assert_secure_headers(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self';" in csp, csp
    assert "frame-ancestors 'none'" in csp and "base-uri 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "cache-control" in response.headers


async def test_the_settings_page_is_served_at_the_root_with_its_policy(api: Api) -> None:
    response = await api.client.get("/", headers=BROWSER)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_secure_headers(response)
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "style-src 'self';" in csp
    assert response.headers["cache-control"] == "no-cache"
    assert 'for="token">API token<' in response.text
    assert ">Sign in<" in response.text


async def test_the_page_has_no_inline_script_handler_or_style(api: Api) -> None:
    found = references((await api.client.get("/")).text)
    assert found.inline_scripts == 0
    assert found.handlers == []
    assert found.styles == 0


async def test_every_file_the_page_loads_is_same_origin(api: Api) -> None:
    loaded = await assert_assets_stay_home(api, (await api.client.get("/")).text)
    assert "/static/app.js" in loaded and "/static/app.css" in loaded


async def test_the_page_scripts_write_no_html_from_strings() -> None:
    # the page escapes everything from the server by building nodes with textContent
    for script in sorted((WEB / "static").glob("*.js")):
        source = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in source, f"{script.name} uses {sink}"


async def test_graphiql_is_served_from_the_package(api: Api) -> None:
    response = await api.client.get("/graphql", headers=BROWSER)
    assert response.status_code == 200
    assert_secure_headers(response)
    assert "unsafe" not in response.headers["content-security-policy"]
    found = references(response.text)
    assert found.inline_scripts == 0 and found.handlers == []
    loaded = await assert_assets_stay_home(api, response.text)
    assert "/static/vendor/graphiql-3.8.3/graphiql.min.js" in loaded
    assert "/static/vendor/react-18.2.0/react.production.min.js" in loaded
    assert "unpkg" not in response.text and "cdn" not in response.text.lower()


async def test_vendored_files_are_cached_for_good_and_the_pages_own_are_revalidated(
    api: Api,
) -> None:
    vendored = await api.client.get("/static/vendor/react-18.2.0/react.production.min.js")
    assert vendored.headers["cache-control"] == "public, max-age=31536000, immutable"
    own = await api.client.get("/static/app.js")
    assert own.headers["cache-control"] == "no-cache"
    assert own.headers["content-type"].startswith("text/javascript")
    again = await api.client.get("/static/app.js", headers={"If-None-Match": own.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize(
    "path", ["/static/../app.py", "/static/%2e%2e/app.py", "/static/nothing.js", "/static/"]
)
async def test_nothing_outside_the_static_directory_is_served(api: Api, path: str) -> None:
    response = await api.client.get(path)
    assert response.status_code == 404
    assert "create_app" not in response.text


def test_the_vendored_files_are_the_ones_the_readme_names() -> None:
    readme = (WEB / "static" / "vendor" / "README.md").read_text()
    listed = dict(
        (path, digest)
        for digest, path in re.findall(r"^([0-9a-f]{64})  (\S+/\S+\.(?:js|css))$", readme, re.M)
    )
    shipped = {
        p.relative_to(WEB / "static" / "vendor").as_posix(): p
        for p in (WEB / "static" / "vendor").glob("*/*")
        if p.suffix in {".js", ".css"}
    }
    assert set(listed) == set(shipped)
    for name, path in shipped.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == listed[name], name
        assert (path.parent / "LICENSE").is_file(), f"no licence beside {name}"


def test_package_data_ships_every_file_of_the_page() -> None:
    # an installed wheel must serve the same page: every non-Python file under web/ matches
    # a package-data pattern of tocsin.web
    project = tomllib.loads((WEB.parent / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["tocsin.web"]
    covered = {p for pattern in patterns for p in WEB.glob(pattern) if p.is_file()}
    needed = {p for p in WEB.rglob("*") if p.is_file() and p.suffix not in {".py", ".pyc"}}
    assert needed - covered == set()
