"""DocuChat behind Debian's nginx, configured as deploy/nginx.conf says (docs/deploy.md):
answers and progress stream through it, a 20 MB upload passes, its access log keeps no token,
and with TRUSTED_PROXIES the API limits each client, not the proxy."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fpdf import FPDF
from httpx_sse import connect_sse
from PIL import Image
from sqlalchemy import Engine

from standins.chat_client import ask, read_stream
from standins.documents import filler
from tests.ingest_helpers import tenant_client
from tests.stack import LiveServer, Services, settings_for
from tools.embedded import free_port

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf"
TWENTY_MB = 20 * 1024 * 1024


@dataclass
class Proxy:
    url: str
    access_log: Path


@contextmanager
def nginx(api_url: str, folder: Path, read_timeout: str | None = None) -> Iterator[Proxy]:
    """Debian's nginx with deploy/nginx.conf, in front of the API at `api_url` (and, for the
    keep-alive test, a shorter proxy_read_timeout)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    access_log = folder / "access.log"
    site = CONFIG.read_text()
    site = site.replace("server 127.0.0.1:8000;", f"server {api_url.removeprefix('http://')};")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    site = site.replace("/var/log/nginx/docuchat.access.log", str(access_log))
    assert str(port) in site and str(access_log) in site  # the shipped file, these ports
    if read_timeout is not None:
        site = site.replace("proxy_read_timeout 75s;", f"proxy_read_timeout {read_timeout};")
        assert read_timeout in site
    (folder / "docuchat.conf").write_text(site)
    temp = "\n".join(
        f"{kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (folder / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\npid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} info;\n"
        + "events { worker_connections 1024; }\n"
        + f"http {{\n{temp}\ninclude {folder / 'docuchat.conf'};\n}}\n"
    )
    process = subprocess.Popen([binary, "-p", str(folder), "-c", str(folder / "nginx.conf")])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, (folder / "error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        yield Proxy(f"http://127.0.0.1:{port}", access_log)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def proxy(server: LiveServer, tmp_path: Path) -> Iterator[Proxy]:
    with nginx(server.url, tmp_path) as running:
        yield running


@pytest.fixture
def through(proxy: Proxy, client: httpx.Client) -> Iterator[httpx.Client]:
    """The member's client, talking to the API through nginx."""
    with httpx.Client(base_url=proxy.url, headers=client.headers, timeout=60) as member:
        yield member


def _pdf_of_about(size: int, pages: int) -> bytes:
    """A PDF of `pages` pages of text and, on the first, a picture of noise that makes the file
    `size` bytes or more (noise does not compress)."""
    pdf = FPDF(format="A4")
    pdf.set_font("helvetica", size=11)
    side = int((size / 3) ** 0.5) + 1
    noise = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    for number in range(pages):
        pdf.add_page()
        if number == 0:
            pdf.image(noise, x=10, y=200, w=40)
        pdf.multi_cell(0, 6, filler(700 + number, 12))
    data = bytes(pdf.output())
    assert len(data) >= size, len(data)
    return data


def test_a_20_mb_upload_and_its_progress_stream_through_nginx(
    through: httpx.Client, proxy: Proxy
) -> None:
    data = _pdf_of_about(TWENTY_MB, pages=16)
    response = through.post("/v1/files", files={"file": ("big.pdf", data, "application/pdf")})
    assert response.status_code == 202, response.text[:500]
    job = response.json()["job"]

    # The job's events through nginx: a progress event arrives while the job still runs, so
    # nothing between the worker and this client holds the stream back until the end.
    seen_running = False
    with connect_sse(through, "GET", job["events_url"], timeout=60) as events:
        assert events.response.headers["content-type"].startswith("text/event-stream")
        for sse in events.iter_sse():
            if sse.event == "progress" and not seen_running:
                now = through.get(f"/v1/jobs/{job['id']}").json()
                seen_running = now["status"] in ("queued", "running")
            if sse.event == "end":
                assert json.loads(sse.data)["status"] == "succeeded", sse.data
                break
    assert seen_running
    document = through.get(f"/v1/files/{response.json()['document']['id']}").json()
    assert document["status"] == "ready" and document["pages"] == 16

    # An answer streams through it too, and the log keeps no token of its URL.
    started = ask(through, "What does the document say?")
    answer = read_stream(through, started["stream_url"])
    assert answer.names[0] == "start" and answer.names[-1] == "end" and answer.text
    streamed = r'"GET /v1/chat/[0-9a-f-]+/stream HTTP/1.1" 200'
    deadline = time.monotonic() + 10  # nginx logs a request once it has closed it
    while not re.search(streamed, log := proxy.access_log.read_text()):
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert re.search(streamed, log), log[-2000:]
    assert "token=" not in log and "eyJ" not in log


def test_an_upload_past_max_upload_mb_gets_the_apis_sentence_not_nginxs_page(
    through: httpx.Client,
) -> None:
    too_big = b"%PDF-1.7\n" + bytes(25 * 1024 * 1024 + 1000)
    response = through.post("/v1/files", files={"file": ("huge.pdf", too_big, "application/pdf")})
    assert response.status_code == 413
    assert "MAX_UPLOAD_MB" in response.json()["detail"] or "25 MB" in response.json()["detail"]


def test_behind_trusted_proxies_each_client_has_its_own_budget(
    services: Services, engine: Engine, tmp_path: Path
) -> None:
    settings = settings_for(
        services, TRUSTED_PROXIES="127.0.0.1/32", READ_RATE_LIMIT_PER_MINUTE="3"
    )
    with LiveServer(settings) as server, nginx(server.url, tmp_path) as running:

        def client_at(address: str) -> httpx.Client:
            transport = httpx.HTTPTransport(local_address=address)
            return httpx.Client(base_url=running.url, transport=transport, timeout=10)

        with client_at("127.0.0.2") as first, client_at("127.0.0.3") as second:
            answers = [first.get("/schema/openapi.json").status_code for _ in range(4)]
            assert answers == [200, 200, 200, 429], answers
            assert second.get("/schema/openapi.json").status_code == 200  # another client


def test_an_idle_stream_outlives_nginx_read_timeout_through_its_keep_alives(
    services: Services, engine: Engine, tmp_path: Path, redis_database: str
) -> None:
    """deploy/nginx.conf's rule, shrunk to seconds: proxy_read_timeout (3 s here) above
    SSE_KEEPALIVE_SECONDS (1 s) keeps a stream that has nothing to say open for good."""
    # A queue no worker reads.
    settings = settings_for(services, REDIS_URL=redis_database, SSE_KEEPALIVE_SECONDS="1")
    with (
        LiveServer(settings) as server,
        nginx(server.url, tmp_path, read_timeout="3s") as running,
        tenant_client(engine, settings, running.url) as client,
    ):
        started = ask(client, "Will anyone answer this?")  # queued, and it stays queued
        job = client.get(f"/v1/jobs/{started['job_id']}").json()
        lines: list[str] = []
        cancelled = False
        opened = time.monotonic()
        with client.stream("GET", job["events_url"], timeout=30) as events:
            for line in events.iter_lines():
                lines.append(line)
                if not cancelled and time.monotonic() - opened > 7:  # over twice the timeout
                    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
                    cancelled = True
                if line.startswith("data:") and lines[-2] == "event: end":
                    break
        comments = sum(line == ": keep-alive" for line in lines)
        rest = "\n".join(lines)
        assert comments >= 6, comments  # one a second, through nginx, for 7 s
        # The cancel ends the stream with its `end`, as it must (it once ended it silently).
        assert "event: end" in rest and '"cancelled"' in rest, rest
