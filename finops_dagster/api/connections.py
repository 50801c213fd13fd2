"""The HTTP connections' limits, enforced where uvicorn reads the bytes (before any ASGI code runs).

uvicorn's httptools parser accepts request heads of any size and gives a connection all the time it
wants to send one; only an idle keep-alive connection times out. A few hundred clients sending a
header byte a second (slowloris) then hold as many sockets for ever, and once the process runs out
of file descriptors even `/healthz` is refused. `GuardedHttpToolsProtocol` adds:

- a bound on the request head (`max_header_bytes`): beyond it, 431 and the connection is closed;
- a deadline for the whole head (`header_timeout_s`), from the connection's start or the end of the
  previous response: a connection still short of a complete head then is closed;
- an idle timeout between requests (`idle_timeout_s`, uvicorn's keep-alive timeout);
- a connection cap (`max_connections`, kept below the process's file limit): at the cap, a new
  connection closes the one that has waited longest without a complete head (a slow or idle
  client), so connections that are sending requests are never starved by ones that are not.
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from finops_dagster.api.settings import ConnectionLimits

RESERVED_DESCRIPTORS = 128
"""File descriptors kept for the pool, the logs and the process itself, below RLIMIT_NOFILE."""


def default_max_connections() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1000
    return max(16, min(1000, soft - RESERVED_DESCRIPTORS))


_TOO_LARGE_BODY = b"request header fields too large\n"
HEADER_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY)
)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with ConnectionLimits (taken from `config.connection_limits`)."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.limits: ConnectionLimits = getattr(config, "connection_limits", None) or ConnectionLimits()
        self.timeout_keep_alive = self.limits.idle_timeout_s
        self.awaiting_head_since: float | None = None
        self.head_bytes = 0
        self.head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()
        if len(self.connections) > self.limits.max_connections:
            self._shed_one()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.awaiting_head_since is not None:
            self.head_bytes += len(data)
            if self.head_bytes > self.limits.max_header_bytes:
                self._refuse_large_head()
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self.awaiting_head_since = None
        self._stop_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._await_head()

    def _await_head(self) -> None:
        self.awaiting_head_since = time.monotonic()
        self.head_bytes = 0
        self._stop_deadline()
        self.head_deadline = self.loop.call_later(self.limits.header_timeout_s, self._head_too_slow)

    def _stop_deadline(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def _head_too_slow(self) -> None:
        self.head_deadline = None
        if self.awaiting_head_since is not None and not self.transport.is_closing():
            self.transport.close()

    def _refuse_large_head(self) -> None:
        self.awaiting_head_since = None
        self._stop_deadline()
        if not self.transport.is_closing():
            self.transport.write(HEADER_TOO_LARGE)
            self.transport.close()

    def _shed_one(self) -> None:
        """Close the connection that has waited longest for a complete head (this one, if it is the
        only such), so the cap holds without turning away clients that send whole requests."""
        waiting = [
            connection
            for connection in self.connections
            if isinstance(connection, GuardedHttpToolsProtocol)
            and connection.awaiting_head_since is not None
            and not connection.transport.is_closing()
        ]
        if waiting:
            oldest = min(waiting, key=lambda connection: connection.awaiting_head_since or 0.0)
            oldest.transport.close()
