"""GET /backlog: the tasks that want a worker slot, per machine type, as JSON.

The dispatcher keeps the work queue only as deep as the workers' free slots, so the queue's
lag no longer says how many workers a fleet needs. This endpoint does: for each machine type,
the tasks of active jobs that are waiting, queued or running. KEDA's metrics-api scaler reads
it (deploy/base/autoscaling.yaml). Plain HTTP/1.1, one request per connection, nothing else.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)
KINDS = ("cpu", "gpu", "export")
MAX_REQUEST_BYTES = 8192


def _response(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


async def serve_backlog(
    address: str, backlog: Callable[[], Awaitable[dict[str, int]]]
) -> tuple[asyncio.Server, int]:
    """Serve GET /backlog on `address` (host:port, port 0 picks one); returns the server, port."""
    host, _, port = address.rpartition(":")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, path, *_ = request[:MAX_REQUEST_BYTES].decode("latin-1").split(" ", 2)
            if method != "GET" or path.split("?", 1)[0] != "/backlog":
                writer.write(_response("404 Not Found", b"only GET /backlog\n", "text/plain"))
            else:
                counts = await backlog()
                body = json.dumps({kind: counts.get(kind, 0) for kind in KINDS}).encode()
                writer.write(_response("200 OK", body))
            await writer.drain()
        except Exception as error:  # a bad client must not disturb the scheduler
            log.debug("backlog request failed: %s", error)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host or "127.0.0.1", int(port), limit=MAX_REQUEST_BYTES)
    return server, server.sockets[0].getsockname()[1]
