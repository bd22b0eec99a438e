"""Where a webhook may be sent: public addresses only, unless the installation allows private ones.

A notifications URL is given by whoever holds a workspace's API key, and the scheduler or staging
POSTs to it from inside the installation; left unchecked, a URL could make Sluice reach what only
the installation can (a cloud's metadata service at 169.254.169.254, a database on 10.0.0.5, the
services' own loopback ports). With private addresses denied, the host of each attempt is
resolved, every address it resolves to must be a public unicast one, and the connection goes to
an address that was checked (a DNS answer that changes between the check and the connection
cannot slip a private address in). Proxies from the environment are not used then: the
connection must go where the check looked.

`SLUICE_WEBHOOK_PRIVATE_ADDRESSES`: `deny` (the default) or `allow`. `sluice up` sets `allow` for
the local stack unless the environment says otherwise, since a laptop's receivers are usually on
localhost; a fleet's manifests set `deny`.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import urllib.request
from typing import Any

PRIVATE_ADDRESSES_ENV = "SLUICE_WEBHOOK_PRIVATE_ADDRESSES"
_CHOICES = {"deny": False, "allow": True}


class ForbiddenAddress(OSError):
    """The webhook host resolves to an address that is not public."""


def private_addresses_allowed(environ: dict[str, str] | None = None) -> bool:
    """What SLUICE_WEBHOOK_PRIVATE_ADDRESSES says (unset: deny); SystemExit for another value."""
    value = (os.environ if environ is None else environ).get(PRIVATE_ADDRESSES_ENV, "") or "deny"
    if value not in _CHOICES:
        raise SystemExit(f"{PRIVATE_ADDRESSES_ENV} must be 'deny' or 'allow', not {value!r}")
    return _CHOICES[value]


def is_public(address: str) -> bool:
    """Whether `address` (an IPv4 or IPv6 literal, maybe with a %zone) is a public unicast one:
    not loopback, private, link-local, shared (100.64/10), multicast, reserved or unspecified.
    An IPv4-mapped IPv6 address is judged as its IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def public_addresses(host: str, port: int) -> list[tuple[Any, ...]]:
    """The socket addresses `host` resolves to, all of them public; ForbiddenAddress when one is
    not (the message names the host and that address, which are the receiver's, not secret)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [info[4] for info in infos]
    for sockaddr in addresses:
        if not is_public(str(sockaddr[0])):
            raise ForbiddenAddress(
                f"{host} resolves to {sockaddr[0]}, which is not a public address "
                f"({PRIVATE_ADDRESSES_ENV}=allow lets webhooks reach private addresses)"
            )
    return addresses


def _connect_public(host: str, port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to one of the public addresses of `host`."""
    last: OSError | None = None
    for sockaddr in public_addresses(host, port):
        family = socket.AF_INET6 if ":" in str(sockaddr[0]) else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if timeout is not None:
                sock.settimeout(timeout)
            sock.connect(sockaddr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as error:
            sock.close()
            last = error
    raise last or OSError(f"{host} resolves to no address")


class _PublicHTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = _connect_public(self.host, self.port, self.timeout)


class _PublicHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        sock = _connect_public(self.host, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PublicHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_PublicHTTPConnection, req)


class _PublicHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_PublicHTTPSConnection, req, context=self._context)  # type: ignore[attr-defined]


def public_only_handlers() -> list[urllib.request.BaseHandler]:
    """urllib handlers that send only to public addresses, directly (no proxy)."""
    return [urllib.request.ProxyHandler({}), _PublicHTTPHandler(), _PublicHTTPSHandler()]
