"""`docuchat dev` from a fresh data folder, driven like a person at a terminal would."""

import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx
import jwt
import pytest

from standins.documents import costly_pdf, filler
from tests.ingest_helpers import upload, wait_for_job
from tools.embedded import free_port

pytestmark = pytest.mark.stack  # `docuchat dev` from nothing: its own Postgres and Redis

BIN = Path(sys.executable).parent


def _clean_env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL", "JWT_SECRET"}
    }
    env["DATA_DIR"] = str(data_dir)
    env["READ_RATE_LIMIT_PER_MINUTE"] = "100000"  # the test polls jobs ten times a second
    return env


def _wait_for_workers(url: str, deadline: float) -> dict:  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2)
            body = response.json()
            if response.status_code == 200 and body["checks"]["broker"]["detail"]["workers"] >= 1:
                return body
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} never reported a healthy stack with a live worker")


def _console_code(log: IO[str], email: str, deadline: float) -> str:
    while time.monotonic() < deadline:
        log.seek(0)
        found = re.search(
            rf"to {re.escape(email)}: Your DocuChat sign-in code.*?\n\s+(\d{{6}})\n",
            log.read(),
            re.DOTALL,
        )
        if found:
            return found.group(1)
        time.sleep(0.2)
    raise AssertionError("the dev console never printed a sign-in code")


def test_dev_stack_starts_from_nothing_serves_health_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    env = _clean_env(data_dir)
    log = (tmp_path / "dev.log").open("w+")
    dev = subprocess.Popen(
        [str(BIN / "docuchat"), "dev", "--port", str(port), "--data-dir", str(data_dir)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        body = _wait_for_workers(f"http://127.0.0.1:{port}/healthz", time.monotonic() + 120)
        assert body["status"] == "ok"

        # An admin command in another process reaches the same (running) embedded database.
        command = [str(BIN / "docuchat"), "token", "demo", "ops@example.com"]
        token = subprocess.run(
            [*command, "--data-dir", str(data_dir)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert token.returncode == 0, token.stderr
        secret = (data_dir / "jwt_secret").read_text().strip()
        claims = jwt.decode(token.stdout.split()[-1], secret, algorithms=["HS256"])
        assert claims["sub"] and claims["tenant_id"]
        assert (data_dir / "postgres" / "postmaster.pid").exists()  # still running for dev

        # A new user of `demo` signs in with the code the dev console prints.
        base, tenant = f"http://127.0.0.1:{port}", {"X-Tenant-ID": "demo"}
        email = "newcomer@example.com"
        asked = httpx.post(f"{base}/v1/auth/request-code", json={"email": email}, headers=tenant)
        assert asked.status_code == 202
        code = _console_code(log, email, time.monotonic() + 20)
        verified = httpx.post(
            f"{base}/v1/auth/verify-code", json={"email": email, "code": code}, headers=tenant
        )
        assert verified.status_code == 200, verified.text
        bearer = {"Authorization": f"Bearer {verified.json()['access_token']}"}
        me = httpx.get(f"{base}/v1/me", headers=bearer | tenant)
        assert me.status_code == 200 and me.json()["email"] == email

        # Ctrl-C while a PDF is being read: the worker hands its batch back as it stops.
        client = httpx.Client(base_url=base, headers=bearer | tenant, timeout=30)
        pages = [f"Page {n} of the dev log. " + filler(n, 3) for n in range(1, 17)]
        uploaded = upload(client, costly_pdf([(page, 4_000_000) for page in pages]), "dev-log.pdf")
        assert uploaded.status_code == 202, uploaded.text
        job_id = uploaded.json()["job"]["id"]
        deadline = time.monotonic() + 60
        while client.get(f"/v1/jobs/{job_id}").json()["progress"].get("pages_done", 0) < 2:
            assert time.monotonic() < deadline, "the ingestion never started"
            time.sleep(0.1)
        dev.send_signal(signal.SIGINT)
        assert dev.wait(timeout=60) == 0
    finally:
        output = _ended(dev, log)
    assert "DocuChat is running" in output and f"http://127.0.0.1:{port}/healthz" in output
    assert "Traceback" not in output
    assert not (data_dir / "postgres" / "postmaster.pid").exists()  # Postgres stopped
    assert (data_dir / "redis" / "appendonly.aof").stat().st_size > 0  # the queues were kept
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)

    # `docuchat dev` again: the same document finishes within a minute, nothing to retry.
    again = subprocess.Popen(
        [str(BIN / "docuchat"), "dev", "--port", str(port), "--data-dir", str(data_dir)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_for_workers(f"http://127.0.0.1:{port}/healthz", time.monotonic() + 120)
        job = wait_for_job(client, job_id, timeout=60)
        document = client.get(f"/v1/files/{job['document_id']}").json()
        again.send_signal(signal.SIGINT)
        assert again.wait(timeout=60) == 0
    finally:
        if again.poll() is None:
            again.kill()
        client.close()
    assert job["status"] == "succeeded", job
    assert document["status"] == "ready" and document["pages"] == len(pages)


def test_second_dev_on_the_same_data_folder_refuses(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with (data_dir / "dev.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = subprocess.run(
            [str(BIN / "docuchat"), "dev", "--port", str(free_port()), "--data-dir", str(data_dir)],
            env=_clean_env(data_dir), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2
    assert "another `docuchat dev` is already running" in result.stderr


def test_dev_stack_starts_again_whatever_part_crashes(tmp_path: Path) -> None:
    """The API, a worker, Redis and Postgres, each SIGKILLed in turn: `docuchat dev` says why
    and starts it again, and the stack is healthy again, with a live worker, each time."""
    data_dir = tmp_path / "data"
    port = free_port()
    log = (tmp_path / "dev.log").open("w+")
    dev = subprocess.Popen(
        [str(BIN / "docuchat"), "dev", "--port", str(port), "--data-dir", str(data_dir)],
        env=_clean_env(data_dir), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    health = f"http://127.0.0.1:{port}/healthz"
    try:
        _wait_for_workers(health, time.monotonic() + 120)
        postmaster = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        for part, pid in [
            ("api", _child(dev.pid, "uvicorn")),
            ("worker-chat", _child(dev.pid, "--queues chat")),
            ("Redis", _child(dev.pid, "redis-server")),
            ("Postgres", postmaster),
        ]:
            os.kill(pid, signal.SIGKILL)
            _wait_for_workers(health, time.monotonic() + 90)
            assert _said(log, f"docuchat dev: {part} started again", time.monotonic() + 60)
        dev.send_signal(signal.SIGINT)
        assert dev.wait(timeout=60) == 0
    finally:
        output = _ended(dev, log)
    assert "api was killed by SIGKILL; starting it again in 1 s" in output
    assert "worker-chat was killed by SIGKILL" in output
    assert "Traceback" not in output


def _ended(dev: subprocess.Popen[bytes], log: IO[str]) -> str:
    """What `docuchat dev` printed, once it has ended (killed if a test failed mid-way)."""
    if dev.poll() is None:
        dev.kill()
    log.seek(0)
    return log.read()


def _said(log: IO[str], line: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        log.seek(0)
        if line in log.read():
            return True
        time.sleep(0.2)
    return False


def _child(parent: int, marker: str) -> int:
    """The pid of `parent`'s child whose command line holds `marker`."""
    for pid in subprocess.run(
        ["pgrep", "-P", str(parent)], capture_output=True, text=True
    ).stdout.split():
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if marker in command:
            return int(pid)
    raise AssertionError(f"no child of {parent} runs {marker!r}")
