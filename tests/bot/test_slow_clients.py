"""Slow and idle clients against a real uvicorn server on loopback: headers and bodies that never
finish are cut off, and the server keeps answering."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from tests.fakes.wechat_server import CallbackSigner
from yishi.bot.channels import routes
from yishi.core.config import Settings
from yishi.core.server import GuardedH11Protocol, uvicorn_options


class QuickHeaders(GuardedH11Protocol):
    header_timeout_s = 0.3


@pytest.fixture
def server(tmp_path: Path) -> Iterator[int]:
    settings = Settings(
        data_dir=tmp_path,
        wechat_token=SecretStr("tok"),
        request_body_timeout_s=0.3,
        redis_url=None,
    )
    app = FastAPI()
    app.include_router(routes.router)
    app.state.settings = settings
    options = uvicorn_options(settings) | {"http": QuickHeaders}
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **options)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield port
    srv.should_exit = True
    thread.join(timeout=10)


def _closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded wait)."""
    sock.settimeout(10)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_headers_that_never_finish_are_cut_off(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"GET /wechat/mp HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        assert _closed_by_server(sock) == b""


def test_a_body_shorter_than_its_content_length_gets_408(server: int) -> None:
    query = CallbackSigner(token="tok").plain_query(int(time.time()))
    path = "/wechat/mp?" + "&".join(f"{k}={v}" for k, v in query.items())
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n<xml>".encode()
        )
        answer = _closed_or_answered(sock)
    assert answer.startswith(b"HTTP/1.1 408")


def _closed_or_answered(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    return sock.recv(4096)


def test_the_server_still_answers_while_slow_clients_hang(server: int) -> None:
    hanging = [socket.create_connection(("127.0.0.1", server)) for _ in range(20)]
    try:
        for sock in hanging:
            sock.sendall(b"GET / HTTP/1.1\r\n")
        with socket.create_connection(("127.0.0.1", server)) as sock:
            sock.sendall(b"GET /wechat/mp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert _closed_by_server(sock).startswith(b"HTTP/1.1 403")
    finally:
        for sock in hanging:
            sock.close()
