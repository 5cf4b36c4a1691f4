"""A call to another service's app in this process is the request an HTTP server would hand it:
path, query, headers and body arrive as sent, and its answer comes back whole; a service that
does not answer over the network is PeerUnreachable (the clients' 503)."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar, Request, get, post

from services.runtime.peer_http import InProcess, OverNetwork, PeerUnreachable


@post("/echo/{item_id:str}", status_code=201)
async def echo(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return {"item_id": request.path_params["item_id"], "path": request.url.path,
            "query": dict(request.query_params),
            "authorization": request.headers.get("authorization"),
            "content_type": request.headers.get("content-type"),
            "host": request.headers.get("host"), "body": (await request.body()).decode()}


@get("/big")
async def big() -> str:
    return "x" * 200_000


APP = Litestar([echo, big])


async def test_an_in_process_call_arrives_as_sent_and_its_answer_comes_back_whole() -> None:
    peer = InProcess(APP, "probe.internal")
    answer = await peer.request(
        "POST", "/echo/draw:a.b-c_d", {"Authorization": "Bearer t", "Content-Type": "text/plain"},
        {"limit": 5, "after": "a b&c"}, b"{\"n\": 1}")
    assert answer.status_code == 201
    assert msgspec.json.decode(answer.content) == {
        "item_id": "draw:a.b-c_d", "path": "/echo/draw:a.b-c_d",
        "query": {"limit": "5", "after": "a b&c"}, "authorization": "Bearer t",
        "content_type": "text/plain", "host": "probe.internal", "body": "{\"n\": 1}"}
    whole = await peer.request("GET", "/big", {}, None, None)
    assert (whole.status_code, len(whole.content)) == (200, 200_000)
    missing = await peer.request("GET", "/nowhere", {}, None, None)
    assert missing.status_code == 404


async def test_an_app_that_does_not_answer_is_an_error_not_an_empty_answer() -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    with pytest.raises(RuntimeError, match="left GET /x unanswered"):
        await InProcess(silent, "probe.internal").request("GET", "/x", {}, None, None)


async def test_a_service_that_does_not_answer_over_the_network_is_unreachable() -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    peer = OverNetwork(httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2))
    try:
        with pytest.raises(PeerUnreachable, match="ConnectError"):
            await peer.request("GET", "/points/v1/rules", {}, None, None)
    finally:
        await peer.aclose()


async def test_the_path_goes_escaped_in_raw_path_and_an_answer_in_parts_is_joined() -> None:
    seen: dict[str, Any] = {}

    async def in_parts(scope: Any, receive: Any, send: Any) -> None:
        seen.update(path=scope["path"], raw_path=scope["raw_path"], query=scope["query_string"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    answer = await InProcess(in_parts, "probe.internal").request(
        "GET", "/members/a b%/tier:1", {}, {"limit": 2}, None)
    assert answer == (200, b"one,two,three")
    assert seen == {"path": "/members/a b%/tier:1", "raw_path": b"/members/a%20b%25/tier:1",
                    "query": b"limit=2"}
