"""Secrets never reach the logs: codes, access and stream tokens, API keys and passwords are
masked in every log record, the API's access log included."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine

from core.redaction import MASK, install_log_redaction, redact
from db.engine import unit_of_work
from tests.auth_helpers import Inbox, sign_in
from tests.stack import TEST_JWT_SECRET, Services, wait_until_healthy
from tools.devstack import api_command
from tools.embedded import free_port
from usecases.members import create_tenant

API_KEY = "sk-proj-" + "k" * 40


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("GET /v1/chat/1/stream?token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbg HTTP/1.1",
         "eyJhbGciOiJIUzI1NiJ9"),
        ("GET /v1/chat/1/stream?token=opaque-value&x=1", "opaque-value"),
        ("Authorization: Bearer abcdefghijklmnop", "abcdefghijklmnop"),
        (f"openai key {API_KEY}", API_KEY),
        ('{"email": "a@example.com", "code": "123456"}', "123456"),
        ("verify code=654321 for a@example.com", "654321"),
        ("postgresql://docuchat:hunter2@db:5432/docuchat", "hunter2"),
        ("redis://:s3cr3t-pass@cache:6379/0", "s3cr3t-pass"),
        ("Settings(jwt_secret='very-secret-value')", "very-secret-value"),
    ],
)  # fmt: skip
def test_secrets_are_masked(line: str, secret: str) -> None:
    masked = redact(line)
    assert secret not in masked
    assert MASK in masked


@pytest.mark.parametrize(
    "line",
    [
        "ingested document 3ea5d8ea-6b24-450e-9e4b-acef21e4c5bc: 12 pages, 40 chunks",
        "job 3ea5d8ea-6b24-450e-9e4b-acef21e4c5bc will be retried: Error code: 500",
        "max_tokens=100 prompt_tokens=5 completion_tokens=7",
        "the worker process exited (code 137)",
        'GET /v1/files?limit=20&cursor=abc HTTP/1.1" 200',
    ],
)
def test_ordinary_lines_are_left_alone(line: str) -> None:
    assert redact(line) == line


def test_messages_arguments_and_tracebacks_are_masked_in_every_logger() -> None:
    install_log_redaction()
    install_log_redaction()  # twice is harmless
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger(f"any.library.{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("sent %s with %r", "Bearer abcdefghijklmnop", {"password": "hunter2"})
        try:
            raise ValueError(f"provider refused key {API_KEY}")
        except ValueError:
            logger.exception("call failed")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "abcdefghijklmnop" not in text and "hunter2" not in text and API_KEY not in text
    assert "call failed" in text and "ValueError: provider refused key" in text
    assert text.count(MASK) == 3


@pytest.fixture
def api_process(
    services: Services,
    smtp: tuple[Inbox, int],
    engine: Engine,
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The Procfile's API command with its access log on, its output captured."""
    port = free_port()
    environ = os.environ | {
        "APP_ENV": "test",
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp[1]),
        "SMTP_STARTTLS": "false",
        "OPENAI_API_KEY": API_KEY,
        "EMBEDDING_PROVIDER": "local",
        "RATE_LIMIT_PER_MINUTE": "10000",
    }
    process = subprocess.Popen(
        api_command("127.0.0.1", port),
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until_healthy(base, process)
    try:
        yield base, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=20)


def test_the_api_s_logs_hold_no_code_token_or_key(
    api_process: tuple[str, subprocess.Popen[str]],
    smtp: tuple[Inbox, int],
    engine: Engine,
) -> None:
    base, process = api_process
    with unit_of_work(engine) as session:
        slug = create_tenant(
            session, f"t-{uuid.uuid4().hex[:10]}", "Logs", signup_policy="open"
        ).slug
    email = f"u-{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=base, timeout=10) as client:
        token = sign_in(client, smtp[0], slug, email)
        code = smtp[0].code_for(email)
        headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": slug}
        started = client.post("/v1/chat", json={"message": "Anything?"}, headers=headers)
        assert started.status_code == 202, started.text
        stream_url = started.json()["stream_url"]
        stream_token = stream_url.split("token=", 1)[1]
        with client.stream("GET", stream_url) as response:
            assert response.status_code == 200
            next(response.iter_lines())  # the stream is open: its request line is logged
        # A replayed code and a token in the wrong place are logged requests too.
        replay = {"email": email, "code": code}
        client.post("/v1/auth/verify-code", json=replay, headers={"X-Tenant-ID": slug})
        client.get(f"/v1/me?token={token}", headers={"X-Tenant-ID": slug})
        # Percent-escaped, name and value: the server decodes it, so must the masking.
        escaped = "".join(f"%{byte:02X}" for byte in stream_token.encode())
        sneaky = f"{stream_url.split('?')[0]}?%74oken={escaped}&limit=1"
        with client.stream("GET", sneaky) as response:
            assert response.status_code == 200  # it is served as the token it is
            next(response.iter_lines())
    process.terminate()
    output, _ = process.communicate(timeout=20)
    for secret in (code, token, stream_token, escaped, escaped[:40], API_KEY, TEST_JWT_SECRET):
        assert secret not in output
    assert f"stream?token={MASK}" in output  # the access log did log the stream request
    assert f"/v1/me?token={MASK}" in output
    assert f"stream?token={MASK}&limit=1" in output
