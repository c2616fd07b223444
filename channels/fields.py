"""Validators of channel fields, declared by the kinds (``Field.check``).

Each adds problems to the sink it is given (the resolvers' ``Problems``) and answers the
value to store; none touches storage. URLs and hosts go through the egress policy.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Mapping, Sequence
from ipaddress import IPv4Address
from typing import Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from tocsin.channels.base import CheckContext
from tocsin.channels.base import ProblemSink as Problems
from tocsin.channels.egress import (
    NotAnAddress,
    host_refusal,
    in_allowed_networks,
    is_loopback_name,
    parse_host,
    url_allowed_scheme,
)
from tocsin.settings import IPNetwork

MAX_URL = 2048
MAX_HEADERS = 20
MAX_HEADER_VALUE = 4096
MAX_RECIPIENTS = 50
MAX_SECRET = 1024
MAX_LINE = 320

# \Z, not $: "$" also matches before a final newline, which let "X-Name\n" through
_TOKEN_CHARS = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_FORBIDDEN_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-type",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
}
_HOSTNAME = re.compile(
    r"^(?=.{1,253}\Z)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?\Z"
)
_BOT_TOKEN = re.compile(r"^\d{3,20}:[A-Za-z0-9_-]{30,64}\Z")
_CHAT_ID = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})\Z")


def check_url(problems: Problems, path: str, url: str, allowed: Sequence[IPNetwork]) -> None:
    """A destination URL: https (or http to an allowed private address), a host, no secrets
    in the message — the URL itself is never repeated back."""
    if len(url) > MAX_URL:
        problems.add(path, "URL_TOO_LONG", f"Use a URL of at most {MAX_URL} characters.")
        return
    if any(c.isspace() for c in url):
        problems.add(path, "INVALID_URL", "The URL must not contain spaces or line breaks.")
        return
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        problems.add(path, "INVALID_URL", "This is not a valid URL.")
        return
    if parts.scheme not in {"http", "https"} and parts.scheme and parts.netloc:
        # a well-formed URL of another scheme, such as ftp://host/ or ws://host/
        problems.add(path, "URL_SCHEME_NOT_ALLOWED", "Use an https:// URL.")
        return
    if parts.scheme not in {"http", "https"} or not host:
        problems.add(path, "INVALID_URL", "Enter a full URL starting with https://.")
        return
    if parts.username or parts.password:
        problems.add(path, "INVALID_URL", "Put credentials in headers, not in the URL.")
        return
    invalid = ("INVALID_URL", "The URL's host name is not valid.")
    if not _check_destination(
        problems, path, host, allowed, what="The URL's host", invalid=invalid
    ):
        return
    if not url_allowed_scheme(url, allowed):
        problems.add(
            path,
            "URL_SCHEME_NOT_ALLOWED",
            "Use https://; plain http:// is only allowed to an address inside "
            "TOCSIN_ALLOWED_PRIVATE_NETWORKS.",
        )


def check_email(problems: Problems, path: list[str] | str, address: str) -> str | None:
    """The normalized address, or None after adding a problem."""
    try:
        result = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        problems.add(path, "INVALID_EMAIL", f"Not a valid e-mail address: {exc}")
        return None
    return str(result.normalized)


def check_recipients(problems: Problems, path: str, addresses: list[str]) -> list[str]:
    if len(addresses) > MAX_RECIPIENTS:
        problems.add(path, "TOO_MANY", f"Use at most {MAX_RECIPIENTS} recipients.")
        return []
    normalized = []
    for index, address in enumerate(addresses):
        value = check_email(problems, [path, str(index)], address)
        if value is not None:
            normalized.append(value)
    return normalized


def check_port(problems: Problems, path: str, port: int) -> None:
    if not 1 <= port <= 65535:
        problems.add(path, "INVALID_PORT", "A port is a number from 1 to 65535.")


def check_smtp_host(problems: Problems, path: str, host: str, allowed: Sequence[IPNetwork]) -> None:
    _check_destination(
        problems,
        path,
        host,
        allowed,
        what="The SMTP host",
        invalid=("INVALID_HOST", "Enter a host name such as smtp.example.com."),
    )


def _check_destination(
    problems: Problems,
    path: str,
    host: str,
    allowed: Sequence[IPNetwork],
    *,
    what: str,
    invalid: tuple[str, str],
) -> bool:
    """The egress policy on a host as written (a URL's, or the SMTP host); False after
    adding a problem. Names are checked again after resolution, at every attempt."""
    code, bad_name = invalid
    try:
        address = parse_host(host)
        refused = host_refusal(host, allowed)
    except NotAnAddress:
        problems.add(path, code, f"{what} looks like an IP address but is not a valid one.")
        return False
    if address is None and not _HOSTNAME.match(host):
        problems.add(path, code, bad_name)
        return False
    if refused is not None:
        problems.add(
            path,
            "DESTINATION_NOT_ALLOWED",
            f"{what} {refused}; Tocsin sends to such an address only when "
            "TOCSIN_ALLOWED_PRIVATE_NETWORKS includes it.",
        )
        return False
    if isinstance(address, IPv4Address) and host != str(address):
        # Allowed, but in a spelling only some clients read (httpx refuses 0177.0.0.1).
        problems.add(path, code, f"Write the address as {address}.")
        return False
    return True


PLAINTEXT_LOGIN_FIELDS = {"security", "password", "username", "smtp_host"}


def check_plaintext_login(
    problems: Problems,
    config: Mapping[str, Any],
    *,
    password_set: bool,
    changed: Collection[str],
    allowed: Sequence[IPNetwork],
) -> None:
    """Security NONE with a login sends the password in clear text: only to an SMTP host
    inside the allowed networks. A name is decided at send, on the connected address (it
    can pass there only if some network is allowed); an update that touches none of these
    fields is not refused, so that a channel saved earlier can still be renamed or disabled.
    """
    if not PLAINTEXT_LOGIN_FIELDS & set(changed):
        return
    if config.get("security") != "NONE" or not (password_set and config.get("username")):
        return
    host = str(config.get("smtp_host") or "")
    try:
        address = IPv4Address("127.0.0.1") if is_loopback_name(host) else parse_host(host)
    except NotAnAddress:
        return  # the host itself is refused (INVALID_HOST)
    if address is None:
        permitted = bool(allowed)
    else:
        permitted = in_allowed_networks(address, allowed)
    if permitted:
        return
    where = (
        "the SMTP host is a name and TOCSIN_ALLOWED_PRIVATE_NETWORKS is empty"
        if address is None
        else f"{host} is not inside TOCSIN_ALLOWED_PRIVATE_NETWORKS"
    )
    problems.add(
        "security" if "security" in changed or "password" not in changed else "password",
        "PLAINTEXT_LOGIN_NOT_ALLOWED",
        "With security NONE the SMTP password would travel in clear text: use STARTTLS or "
        f"TLS. Plain text with a login only goes to a host inside the allowed networks ({where}).",
    )


def check_signing_secret(problems: Problems, path: str, secret: str) -> None:
    message = "Use the whsec_<base64> form (24 to 64 random bytes, base64-encoded)."
    if not secret.startswith("whsec_"):
        problems.add(path, "INVALID_SIGNING_SECRET", message)
        return
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        problems.add(path, "INVALID_SIGNING_SECRET", message)
        return
    if not 24 <= len(key) <= 64:
        problems.add(path, "INVALID_SIGNING_SECRET", message)


def check_headers(
    problems: Problems, path: str, headers: Any, stored: dict[str, str]
) -> dict[str, str] | None:
    """Headers replace the stored set; a null value keeps that header's stored value."""
    if not isinstance(headers, dict):
        problems.add(path, "INVALID_HEADERS", "Headers are a JSON object of name to value.")
        return None
    if len(headers) > MAX_HEADERS:
        problems.add(path, "TOO_MANY", f"Use at most {MAX_HEADERS} headers.")
        return None
    stored_by_lower = {name.lower(): value for name, value in stored.items()}
    result: dict[str, str] = {}
    for name, value in headers.items():
        where = [path, name]
        if not isinstance(name, str) or not _TOKEN_CHARS.match(name) or len(name) > 100:
            problems.add(where, "INVALID_HEADER_NAME", "A header name is letters, digits and -.")
        elif name.lower() in _FORBIDDEN_HEADERS:
            problems.add(where, "HEADER_NOT_ALLOWED", f"Tocsin sets the {name} header itself.")
        elif value is None:
            if name.lower() not in stored_by_lower:
                problems.add(where, "REQUIRED", "Give this header a value.")
            else:
                result[name] = stored_by_lower[name.lower()]
        elif not isinstance(value, str):
            problems.add(where, "INVALID_HEADER_VALUE", "A header value is a string.")
        elif any(c in value for c in "\r\n\0") or len(value) > MAX_HEADER_VALUE:
            problems.add(
                where,
                "INVALID_HEADER_VALUE",
                f"A header value is one line of at most {MAX_HEADER_VALUE} characters.",
            )
        else:
            result[name] = value
    return result


def check_bot_token(problems: Problems, path: str, token: str) -> None:
    if not _BOT_TOKEN.match(token):
        problems.add(
            path,
            "INVALID_BOT_TOKEN",
            "A bot token looks like 123456789:AA… as given by @BotFather.",
        )


def check_chat_id(problems: Problems, path: str, chat_id: str) -> None:
    if not _CHAT_ID.match(chat_id):
        problems.add(
            path,
            "INVALID_CHAT_ID",
            "A chat id is a number such as -1001234567890, or @channelname.",
        )


# -- the validators as kinds declare them: (problems, path, value, context) -> stored value


def url(problems: Problems, path: str, value: str, context: CheckContext) -> str:
    check_url(problems, path, value, context.allowed_networks)
    return value


def signing_secret(problems: Problems, path: str, value: str, context: CheckContext) -> str:
    check_signing_secret(problems, path, value)
    return value


def headers(
    problems: Problems, path: str, value: Any, context: CheckContext
) -> dict[str, str] | None:
    stored = context.stored if isinstance(context.stored, dict) else {}
    return check_headers(problems, path, value, stored)


def bot_token(problems: Problems, path: str, value: str, context: CheckContext) -> str:
    check_bot_token(problems, path, value)
    return value


def chat_id(problems: Problems, path: str, value: str, context: CheckContext) -> str:
    check_chat_id(problems, path, value)
    return value


def recipients(problems: Problems, path: str, value: list[str], context: CheckContext) -> Any:
    return check_recipients(problems, path, value)


def smtp_host(problems: Problems, path: str, value: str, context: CheckContext) -> str:
    check_smtp_host(problems, path, value, context.allowed_networks)
    return value


def port(problems: Problems, path: str, value: int, context: CheckContext) -> int:
    check_port(problems, path, value)
    return value


def email_address(problems: Problems, path: str, value: str, context: CheckContext) -> Any:
    return check_email(problems, path, value)


def one_line(problems: Problems, path: str, value: str, context: CheckContext) -> str:
    if len(value) > MAX_LINE or any(c in value for c in "\r\n\0"):
        problems.add(path, "INVALID_VALUE", f"Use one line of at most {MAX_LINE} characters.")
    return value


def at_most_1024(problems: Problems, path: str, value: str, context: CheckContext) -> str:
    if len(value) > MAX_SECRET:
        problems.add(path, "TOO_LONG", f"Use at most {MAX_SECRET} characters.")
    return value
