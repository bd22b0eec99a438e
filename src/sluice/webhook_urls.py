"""Notifications URLs: what is accepted, and what of one may be shown or logged.

Apart from sluice.webhooks (the delivery loop, with asyncpg) so that the CLI and the dashboard
check and show URLs without importing it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sluice.errors import InvalidArgument

MAX_URL_LENGTH = 2048


def validate_url(url: str) -> str:
    """The URL when it is http or https with a host; InvalidArgument otherwise.

    The message names the scheme and host at most, never the path or query string (which may
    carry a token)."""
    if not url:
        raise InvalidArgument("notifications URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidArgument(f"notifications URL is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidArgument("notifications URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
    except ValueError:
        raise InvalidArgument("notifications URL is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        scheme = f" (got {parts.scheme!r})" if parts.scheme else ""
        raise InvalidArgument(f"notifications URL must start with http:// or https://{scheme}")
    if not host:
        raise InvalidArgument("notifications URL must name a host, e.g. https://hooks.example.com/sluice")
    if parts.username is not None or parts.password is not None:
        raise InvalidArgument("notifications URL must not carry a user name or password")
    return url


def display_url(url: str) -> str:
    """What of a notifications URL may be shown or logged: scheme, host and port."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(invalid URL)"
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}"
