"""The HTTP server's guards against slow and idle clients (uvicorn's h11 protocol, bounded).

uvicorn times out idle keep-alive connections but not a client that opens a connection and
then sends its request headers slowly or never: such a connection is held for good. The
protocol below closes it after `header_timeout_s`. Request bodies get their own deadline in the
webhook route (`read_body_limited`), and `limit_concurrency` bounds open connections.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from yishi.core.config import Settings


class GuardedH11Protocol(H11Protocol):  # type: ignore[misc]
    """h11 with a deadline for each request's headers (slowloris)."""

    header_timeout_s: float | None = None  # None: `http_header_timeout_s` from the settings

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request's headers."""
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        if getattr(self, "_header_timer", None) is None:
            timeout = self.header_timeout_s
            if timeout is None:
                from yishi.core.config import get_settings

                timeout = get_settings().http_header_timeout_s
            self._header_timer = self.loop.call_later(timeout, self._headers_late)

    def _disarm_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._waiting_for_headers():
            self.transport.close()

    def _waiting_for_headers(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def data_received(self, data: bytes) -> None:
        """Feed h11; a request whose headers are complete no longer needs the header clock."""
        if self._waiting_for_headers():
            self._arm_header_timer()
        super().data_received(data)
        if not self._waiting_for_headers():
            self._disarm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the timer with the connection."""
        self._disarm_header_timer()
        super().connection_lost(exc)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The server options that bound slow clients and open requests (picklable, so that
    `--workers N` can hand them to its processes)."""
    return {
        "http": GuardedH11Protocol,
        "limit_concurrency": settings.http_max_concurrency,
        "timeout_keep_alive": 5,
        "h11_max_incomplete_event_size": 16 * 1024,  # request line + headers
    }
