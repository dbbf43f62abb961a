"""Connections that never finish sending a request's head are closed with 408, so idle or
half-sent requests cannot pile up file descriptors; through a real uvicorn on loopback."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from api.http_protocol import PROTOCOL, HeadTimeoutProtocol
from tests.stack import LiveServer, Services, settings_for
from tools.devstack import api_command

ROOT = Path(__file__).resolve().parent.parent


class QuickDeadline(HeadTimeoutProtocol):
    head_timeout_seconds = 0.5


@pytest.fixture(scope="module")
def server(services: Services, engine: Engine) -> Iterator[LiveServer]:
    with LiveServer(settings_for(services), protocol=QuickDeadline) as live:
        yield live


def _connect(server: LiveServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_half_sent_head_gets_408_and_the_connection_is_closed(server: LiveServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: docuchat\r\nX-Slow: ")
        answer = _read_all(sock)  # returns once the server has closed the connection
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"did not arrive within 0.5 s" in answer


def test_a_hundred_silent_connections_are_all_closed_and_the_server_carries_on(
    server: LiveServer,
) -> None:
    idle = [_connect(server) for _ in range(100)]
    try:
        for sock in idle:  # each read returns once the server has answered and closed
            assert _read_all(sock).startswith(b"HTTP/1.1 408"), "still open"
    finally:
        for sock in idle:
            sock.close()
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: docuchat\r\nConnection: close\r\n\r\n")
        assert _read_all(sock).startswith(b"HTTP/1.1 200")


def test_a_slow_head_in_time_and_a_kept_alive_connection_work(server: LiveServer) -> None:
    with _connect(server) as sock:
        for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: docuchat\r\n", b"\r\n"):
            sock.sendall(piece)
            time.sleep(0.1)  # 0.3 s in all, inside the deadline
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        # The next request on the same connection is held to the deadline as well.
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: doc")
        assert _read_all(sock).startswith(b"HTTP/1.1 408")


def test_every_way_of_running_the_api_uses_the_protocol() -> None:
    command = api_command("127.0.0.1", 8000)
    assert command[command.index("--http") + 1] == PROTOCOL
    assert f"--http {PROTOCOL}" in (ROOT / "Procfile").read_text()
    assert f"--http {PROTOCOL}" in (ROOT / "Dockerfile").read_text()
