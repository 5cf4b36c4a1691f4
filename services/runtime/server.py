"""The HTTP server: uvicorn, on a socket it binds itself or on a listening socket it inherits.

The supervising ``fuli up`` binds the listening socket and hands it to its API process, so a
restarted API process takes over the same socket: connections made meanwhile wait in the
kernel's queue instead of being refused.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.runtime.settings import Settings

# Connections not yet accepted wait in the kernel's queue: a burst of new connections must fit.
# The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 4096
GRACEFUL_SHUTDOWN_S = 10


def unread_bytes(transport: asyncio.BaseTransport) -> int:
    """Bytes received on the transport's socket that the event loop has not read yet."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (OSError, ValueError):
        return 0
    return int(struct.unpack("i", raw)[0])


class KeepAliveSafeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, except that the keep-alive timer never closes a connection
    whose next request has already arrived.

    uvloop runs due timers before it polls for I/O. While a burst keeps the event loop busy, a
    connection's keep-alive timer can fire with the client's next request already waiting,
    unread, in the socket; closing the socket then makes the kernel send a reset (counted as
    TCPAbortOnData) and the client loses the request without an answer or a log line."""

    def timeout_keep_alive_handler(self) -> None:
        if unread_bytes(self.transport) > 0:
            # The loop reads it next; the timer is armed again after that request's response.
            return
        super().timeout_keep_alive_handler()


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (raises OSError if the port is taken)."""
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    return socket.create_server(address, family=family, backlog=LISTEN_BACKLOG)


def serve(app: Any, settings: Settings, sock: socket.socket | None = None) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, on ``sock`` if given, else on settings.host:port."""
    import uvicorn

    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_config=None, access_log=False,
        lifespan="on", loop="auto", http=KeepAliveSafeProtocol,
        # Nothing reads the client's address: a middleware rewriting it is work per request.
        proxy_headers=False,
        timeout_keep_alive=settings.http_keep_alive_s, backlog=LISTEN_BACKLOG,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    uvicorn.Server(config).run(sockets=None if sock is None else [sock])
