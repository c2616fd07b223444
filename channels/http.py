"""The HTTP client every HTTP channel sends with, and how its outcomes become SendResults.

httpx's API over aiohttp (``httpx-aiohttp``), with the destination guard in two places:

- ``GuardedResolver`` resolves names for aiohttp's connector and hands back only
  addresses ``egress.address_allowed`` accepts, so a connection only ever goes to
  an address that was checked (no second lookup);
- ``check_url`` judges the URL of every request (redirects are never followed, so
  there is no other): its host as written, in every spelling of an address
  (``2130706433``, ``0x7f.1``, ``[::ffff:7f00:1]``), and the scheme (``http://``
  only inside the allowed private networks). ``GuardedTransport`` applies it to
  requests made through httpx's client API; ``GuardedClient.exchange``, the senders'
  fast path on the same aiohttp session, through ``checked_url``.

Redirects are not followed. A refusal is raised as ``egress.DestinationNotAllowed``.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from httpx_aiohttp import AiohttpTransport
from multidict import CIMultiDict

from tocsin import __version__
from tocsin.channels import egress
from tocsin.channels.base import Answer, Destination, SendContext, SendResult
from tocsin.channels.rendering import (
    exception_chain,
    response_snippet,
    secret_fragments,
    short_error,
)
from tocsin.settings import IPNetwork

USER_AGENT = f"Tocsin/{__version__}"
RETRY_AFTER_CAP = 3600.0
BODY_READ_LIMIT = 16 * 1024
DNS_CACHE_SECONDS = 10


class GuardedResolver(AbstractResolver):
    """Resolves with aiohttp's default resolver and drops every refused address."""

    def __init__(self, allowed: Sequence[IPNetwork], inner: AbstractResolver | None = None) -> None:
        self._allowed = tuple(allowed)
        self._inner = inner if inner is not None else aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        parsed = [(result, _parse_address(result["host"])) for result in results]
        addresses = [address for _, address in parsed if address is not None]
        permitted = set(egress.allowed_resolved(host, addresses, self._allowed))
        return [result for result, address in parsed if address in permitted]

    async def close(self) -> None:
        await self._inner.close()


def _parse_address(host: str) -> egress.IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_url(url: httpx.URL, allowed: Sequence[IPNetwork]) -> None:
    """Refuse a URL whose scheme or literal address Tocsin may not use.

    Every spelling of an address counts (``2130706433``, ``0x7f.1``, ``[2002:7f00:1::]``):
    whatever aiohttp would hand to ``getaddrinfo`` as a "name" is judged as the address
    ``getaddrinfo`` would make of it.
    """
    if url.scheme not in {"http", "https"}:
        raise egress.DestinationNotAllowed("destination not allowed: only http(s) URLs")
    host = url.host
    egress.check_host(host, allowed)
    if url.scheme == "http" and not egress.url_allowed_scheme(str(url), allowed):
        raise egress.DestinationNotAllowed(
            "destination not allowed: plain http:// only goes to addresses in "
            "TOCSIN_ALLOWED_PRIVATE_NETWORKS; use https://"
        )


def check_destination(url: str, allowed: Sequence[IPNetwork]) -> None:
    """``check_url`` on a URL as stored, naming the rule even for a host httpx can't read
    (``https://0177.0.0.1/`` is 127.0.0.1 to some resolvers, an error to httpx)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        host = ""  # httpx.URL below says what is wrong with it
    egress.check_host(host, allowed)
    check_url(httpx.URL(url), allowed)


class GuardedTransport(httpx.AsyncBaseTransport):
    """Checks each request's URL before the wrapped transport sees it."""

    def __init__(self, inner: httpx.AsyncBaseTransport, allowed: Sequence[IPNetwork]) -> None:
        self.inner = inner
        "The transport it guards; ``GuardedClient.exchange`` posts on its aiohttp session."
        self.allowed = tuple(allowed)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        check_url(request.url, self.allowed)
        if request.url.userinfo:
            # httpx has turned the URL's credentials into an Authorization header already;
            # aiohttp refuses a request that carries both.
            request.url = request.url.copy_with(userinfo=b"")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class GuardedClient(httpx.AsyncClient):
    """The client every sender posts with (``build_http_client``).

    ``exchange`` posts one request with the client's headers on the aiohttp session that
    its transport (httpx-aiohttp) opened: none of httpx's per-request machinery (request
    and response objects built, converted and streamed through three async generators,
    cookie jars, auth and redirect handling, URL merging), which cost more than aiohttp's
    own work (issue 11: 2 400 posts/s through ``stream``, 4 700/s through the transport,
    9 000/s for aiohttp alone). Its URL checks are remembered per URL (``checked_url``);
    the resolver still checks every address, on every new connection.
    """

    def __init__(self, *, transport: GuardedTransport, **kwargs: Any) -> None:
        super().__init__(transport=transport, **kwargs)
        self._guarded = transport
        self._targets: dict[str, tuple[yarl.URL, str | None]] = {}
        "URL -> (aiohttp's URL of it, its Basic Authorization): passed the client's policy."
        self._base_headers = CIMultiDict(self.headers.items())
        # Only what aiohttp can decode (httpx would also offer br or zstd when installed).
        self._base_headers["Accept-Encoding"] = "gzip, deflate"

    def _session(self) -> aiohttp.ClientSession:
        """The transport's aiohttp session (opened on first use, in the running loop)."""
        inner = self._guarded.inner
        if not isinstance(inner, AiohttpTransport):
            raise TypeError("GuardedClient.exchange needs the aiohttp transport")
        if not isinstance(inner.client, aiohttp.ClientSession):
            inner.client = inner.get_client()
        return inner.client

    async def exchange(
        self,
        url: str,
        *,
        content: bytes,
        headers: Mapping[str, str] | httpx.Headers,
        allowed: Sequence[IPNetwork],
        seconds: float | None = None,
    ) -> tuple[Answer, bytes]:
        """POST ``content`` to ``url`` once, within ``seconds`` (None: the client's timeout)
        for the whole exchange (connect, send, answer, body): the answer (its status and
        headers) and up to BODY_READ_LIMIT bytes of its body (decoded). The URL must pass
        ``allowed`` (the sender's policy) and the client's own. Raises
        DestinationNotAllowed, aiohttp and OS errors (a timeout is a TimeoutError)."""
        allowed = tuple(allowed)
        if allowed != self._guarded.allowed:
            checked_url(url, allowed)
        prepared = self._targets.get(url)
        if prepared is None:
            if len(self._targets) >= TARGETS_KEPT:
                self._targets.clear()
            target, auth = checked_url(url, self._guarded.allowed)
            prepared = self._targets[url] = (yarl.URL(str(target), encoded=True), auth)
        target_url, authorization = prepared
        sent = self._base_headers.copy()
        sent.update(headers.items())
        if authorization is not None:
            sent["Authorization"] = authorization
        async with self._session().request(
            "POST",
            target_url,
            data=content,
            headers=sent,
            skip_auto_headers=_NO_AUTO_CONTENT_TYPE,
            allow_redirects=False,
            timeout=_whole_exchange(self.timeout.read if seconds is None else seconds),
        ) as answer:
            body = await _read_head(answer)
            return Answer(answer.status, answer.headers), body


@functools.lru_cache(maxsize=64)
def _whole_exchange(seconds: float | None) -> aiohttp.ClientTimeout:
    """aiohttp's one timer for a whole exchange, made once per value: a timer per read, or
    one of asyncio's around the call as well, costs a post more than the rest of Tocsin's
    work on it (issue 11)."""
    return aiohttp.ClientTimeout(total=seconds)


_NO_AUTO_CONTENT_TYPE = ("Content-Type",)
"aiohttp would label bytes application/octet-stream; httpx sent no Content-Type of its own."
TARGETS_KEPT = 1024
"Destination URLs a client keeps checked and parsed (then it starts again)."


@functools.lru_cache(maxsize=1024)
def checked_url(url: str, allowed: tuple[IPNetwork, ...]) -> tuple[httpx.URL, str | None]:
    """``url`` passed through ``check_destination`` (a refusal raises and is not
    remembered), without its credentials, and the Basic Authorization header they make
    (as httpx's client would make it), or None."""
    check_destination(url, allowed)
    parsed = httpx.URL(url)
    if not parsed.userinfo:
        return parsed, None
    basic = httpx.BasicAuth(parsed.username, parsed.password)
    authorization = next(basic.auth_flow(httpx.Request("POST", parsed))).headers["Authorization"]
    return parsed.copy_with(userinfo=b""), authorization


def build_http_client(
    *,
    timeout: float,
    allowed_networks: Sequence[IPNetwork],
    ssl_context: ssl.SSLContext | None = None,
    max_connections: int = 200,
) -> GuardedClient:
    """A pooled client that connects only to allowed destinations and follows no redirect.

    ``ssl_context`` is the trust store for HTTPS (None: the system's). Close it with
    ``await client.aclose()``.
    """
    allowed = tuple(allowed_networks)

    def open_session() -> aiohttp.ClientSession:
        # Called by the transport on first use, inside the running event loop.
        connector = aiohttp.TCPConnector(
            limit=max_connections,
            ssl=ssl_context if ssl_context is not None else True,
            resolver=GuardedResolver(allowed),
            ttl_dns_cache=DNS_CACHE_SECONDS,
        )
        return aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
        )

    aiohttp_transport = AiohttpTransport(
        client=open_session, verify=ssl_context if ssl_context is not None else True
    )
    return GuardedClient(
        transport=GuardedTransport(aiohttp_transport, allowed),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
        # No cookie travels from one delivery to the next.
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
    )


async def exchange_within(
    context: SendContext,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str] | httpx.Headers,
) -> tuple[Answer, bytes]:
    """``GuardedClient.exchange`` under the sender context's egress policy and timeout."""
    return await context.http.exchange(
        url,
        content=content,
        headers=headers,
        allowed=context.allowed_networks,
        seconds=context.timeout,
    )


async def post(
    context: SendContext,
    destination: Destination,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str] | httpx.Headers,
    judge: Callable[..., SendResult] | None = None,
) -> SendResult:
    """POST once within ``context.timeout`` (the whole exchange) and judge the answer
    (``judge_response``, or a kind's own with its signature: Slack's API answers 200 for a
    failure); never raises on remote failure."""
    started = time.perf_counter()
    try:
        reply, body = await exchange_within(context, url, content=content, headers=headers)
    except (httpx.HTTPError, httpx.InvalidURL, aiohttp.ClientError, OSError) as exc:
        error, retryable = describe_failure(exc, _host_of(url), context.timeout)
        return SendResult(
            ok=False,
            latency_ms=_since(started),
            error=short_error(error, secret_fragments(destination.secrets)),
            retryable=retryable,
        )
    if judge is None and 200 <= reply.status_code < 300:
        # A plain success says nothing of the answer: no secret to scrub from it.
        return SendResult(ok=True, latency_ms=_since(started), status_code=reply.status_code)
    fragments = secret_fragments(destination.secrets)
    return (judge or judge_response)(
        reply.status_code,
        reply.headers,
        body,
        latency_ms=_since(started),
        fragments=fragments,
    )


async def _read_head(answer: aiohttp.ClientResponse) -> bytes:
    """Up to BODY_READ_LIMIT bytes of the answer's body; a longer one is cut off and its
    connection closed (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    while size < BODY_READ_LIMIT:
        chunk = await answer.content.read(BODY_READ_LIMIT - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    if not answer.content.at_eof():
        answer.close()
    return b"".join(chunks)


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _host_of(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "the destination"
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{host}:{parsed.port}" if parsed.port else host or "the destination"


def judge_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    latency_ms: float,
    fragments: Sequence[str] = (),
) -> SendResult:
    """Map an HTTP answer to a SendResult: 2xx ok; 408, 429 and 5xx retryable; the rest final."""
    if 200 <= status < 300:
        return SendResult(ok=True, latency_ms=latency_ms, status_code=status)
    if 300 <= status < 400:
        error = f"redirect not followed (HTTP {status})"
        return SendResult(ok=False, latency_ms=latency_ms, status_code=status, error=error)
    snippet = response_snippet(_answer_text(body), fragments)
    error = f"HTTP {status}: {snippet}" if snippet else f"HTTP {status}"
    retryable = status in {408, 429} or status >= 500
    retry_after = None
    if status in {429, 503}:
        retry_after = parse_retry_after(headers.get("retry-after"))
        if retry_after is None and status == 429:
            retry_after = body_retry_after(body)
    return SendResult(
        ok=False,
        latency_ms=latency_ms,
        status_code=status,
        error=short_error(error, fragments),
        retryable=retryable,
        retry_after=retry_after,
    )


def _answer_text(body: bytes) -> bytes:
    """The human part of a JSON error answer (Telegram's "description", Discord's "message")."""
    if not body.lstrip().startswith(b"{"):
        return body
    try:
        answer = json.loads(body)
    except ValueError:
        return body
    if not isinstance(answer, dict):
        return body
    for key in ("description", "message", "error"):
        text = answer.get(key)
        if isinstance(text, str) and text:
            return text.encode()
    return body


def json_body(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the exact bytes that are sent (and signed)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode()


JSON_HEADERS = {"Content-Type": "application/json"}


def body_retry_after(body: bytes) -> float | None:
    """The wait a JSON 429 answer names in its body, capped at an hour: Telegram's
    ``parameters.retry_after``, Discord's ``retry_after`` (both seconds)."""
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    parameters = answer.get("parameters")
    value = (
        parameters.get("retry_after") if isinstance(parameters, dict) else answer.get("retry_after")
    )
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return min(float(value), RETRY_AFTER_CAP)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delay seconds or an HTTP-date), capped at an hour."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def describe_failure(exc: BaseException, host: str, timeout: float) -> tuple[str, bool]:
    """A short, secret-free error for a failed request, and whether retrying makes sense.

    Built from exception types only: httpx's and aiohttp's messages embed the URL.
    httpx-aiohttp maps every aiohttp connection error to ``httpx.ConnectTimeout``,
    so the underlying aiohttp and OS exceptions decide, when there are any.
    """
    causes = list(exception_chain(exc))
    native = [c for c in causes if not isinstance(c, httpx.HTTPError)]

    def found(*kinds: type[BaseException]) -> BaseException | None:
        return next((c for c in native if isinstance(c, kinds)), None)

    refusal = found(egress.DestinationNotAllowed)
    if isinstance(refusal, egress.DestinationNotAllowed):
        return refusal.reason, False
    if found(ssl.SSLCertVerificationError, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate verification failed for {host}", False
    if found(ssl.SSLError, aiohttp.ClientSSLError):
        return f"TLS handshake with {host} failed", True
    if found(TimeoutError) or (not native and isinstance(exc, httpx.TimeoutException)):
        return f"timed out after {timeout:g}s", True
    if found(socket.gaierror, aiohttp.ClientConnectorDNSError):
        return f"could not resolve {host}", True
    if found(ConnectionRefusedError):
        return f"connection refused by {host}", True
    if found(aiohttp.InvalidURL) or isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return "invalid destination URL", False
    if found(aiohttp.ClientConnectorError):
        return f"could not connect to {host}", True
    if found(aiohttp.ServerDisconnectedError) or isinstance(exc, httpx.RemoteProtocolError):
        return f"{host} closed the connection without answering", True
    name = type(native[0] if native else exc).__name__
    return f"network error talking to {host} ({name})", True
