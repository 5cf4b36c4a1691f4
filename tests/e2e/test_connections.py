"""No connection is dropped: a burst of concurrent keep-alive connections against `fuli up` gets
an answer on every one, and the keep-alive timer never closes a connection whose next request
has already arrived."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from loadtests.burst import Target, prepare, run_burst
from services.runtime.server import KeepAliveSafeProtocol
from tests.e2e.process import KEY, FuliServer, free_port, fuli

REQUEST = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def server() -> AsyncIterator[uvicorn.Server]:
    config = uvicorn.Config(hello, host="127.0.0.1", port=free_port(), log_config=None,
                            lifespan="off", http=KeepAliveSafeProtocol, timeout_keep_alive=60)
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve())
    for _ in range(500):
        if running.started:
            break
        await asyncio.sleep(0.01)
    yield running
    running.should_exit = True
    await task


async def answered_once(client: socket.socket) -> bytes:
    """Send one request on the (blocking) client socket, let the server loop answer it."""
    client.sendall(REQUEST)
    await asyncio.sleep(0.2)
    return client.recv(65536)


async def test_keep_alive_timer_spares_a_request_that_already_arrived(
        server: uvicorn.Server) -> None:
    with socket.create_connection(("127.0.0.1", server.config.port), timeout=5) as client:
        assert (await answered_once(client)).startswith(b"HTTP/1.1 200")
        (connection,) = server.server_state.connections
        assert isinstance(connection, KeepAliveSafeProtocol)
        # The next request arrives while the event loop is busy (this test holds it): uvloop
        # runs due timers before reading, so the keep-alive timer fires first.
        client.sendall(REQUEST)
        time.sleep(0.05)  # noqa: ASYNC251 - holding the loop is the point
        connection.timeout_keep_alive_handler()
        await asyncio.sleep(0.2)
        assert client.recv(65536).startswith(b"HTTP/1.1 200")


async def test_keep_alive_timer_closes_an_idle_connection(server: uvicorn.Server) -> None:
    with socket.create_connection(("127.0.0.1", server.config.port), timeout=5) as client:
        assert (await answered_once(client)).startswith(b"HTTP/1.1 200")
        (connection,) = server.server_state.connections
        connection.timeout_keep_alive_handler()
        await asyncio.sleep(0.2)
        assert client.recv(65536) == b""  # closed cleanly (FIN), nothing lost


def test_a_burst_of_keep_alive_connections_gets_every_answer(
        configured_env: dict[str, str], tmp_path: Path) -> None:
    env = {**configured_env, "FULI_DATA_DIR": str(tmp_path)}
    tenant = "burst-" + os.urandom(4).hex()
    admin = KEY.search(fuli("tenant", "create", tenant, env=env).stdout)
    assert admin
    server = FuliServer(env)
    server.start()
    try:
        target = Target("127.0.0.1", server.port, prepare(server.base_url, admin.group(1)))
        # Rounds 4.9 s apart: idle connections httpx (5 s expiry) still reuses, which
        # uvicorn's default keep-alive timeout (5 s) used to close as the requests came in.
        report = asyncio.run(run_burst(target, connections=300, rounds=2, requests=2,
                                       gap_s=4.9, bad_share=0.05))
    finally:
        server.stop()
    assert report["dropped"] == 0, report
    assert report["outcomes"] == {"201": 1140, "401": 60}, report
