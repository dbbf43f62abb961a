"""The Python client in examples/ runs against a live API and worker: upload, wait, ask, and
an answer read across a dropped connection equals the one the API saved."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine

from core.settings import Settings
from standins.documents import english_pdf, filler
from tests.ingest_helpers import tenant_client
from tests.stack import LiveServer, WorkerProcess

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "python_client.py"


def test_the_python_client_uploads_asks_and_resumes_a_dropped_stream(
    settings: Settings, engine: Engine, worker: WorkerProcess, tmp_path: Path
) -> None:
    pdf = tmp_path / "lighthouse.pdf"
    pdf.write_bytes(
        english_pdf(["The lighthouse keeper lights the lamp at dusk. " + filler(8, 12)])
    )
    with LiveServer(settings) as server, tenant_client(engine, settings, server.url) as client:
        token = client.headers["Authorization"].removeprefix("Bearer ")
        tenant = client.headers["X-Tenant-ID"]
        command = [
            sys.executable, str(EXAMPLE), str(pdf), "When is the lamp lit?",
            "--api", server.url, "--tenant", tenant, "--email", "unused@example.com",
            "--drop-after", "1",
        ]  # fmt: skip
        run = subprocess.run(
            command,
            env=os.environ | {"DOCUCHAT_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=120,
        )
        sessions = client.get("/v1/sessions").json()["items"]
        messages = client.get(f"/v1/sessions/{sessions[0]['id']}/messages").json()["messages"]
    assert run.returncode == 0, run.stderr
    assert "lighthouse.pdf: ready, 1 pages" in run.stdout
    assert "[connection dropped; resuming]" in run.stdout
    assert "[1] lighthouse.pdf, page 1" in run.stdout
    saved = next(m["content"] for m in messages if m["role"] == "assistant")
    shown = re.search(r"\((\d+) tokens; (\d+) characters\)", run.stdout)
    assert shown is not None and int(shown.group(2)) == len(saved)  # nothing lost or doubled
