"""Low disk space is a state of its own: uploads get 507 and a sentence before the disk is
full, `/healthz` says so (503, `disk` down) and `/metrics` too, while reads, questions and
deletes go on. The threshold is set above the volume's free space, so the disk looks low."""

from __future__ import annotations

import shutil

import httpx

from standins.documents import english_pdf, filler
from tests.ingest_helpers import tenant_client, upload
from tests.stack import LiveServer, OwnDatabase, Services


def test_uploads_are_refused_with_507_while_the_disk_is_low(
    services: Services, own_database: OwnDatabase
) -> None:
    free_mb = shutil.disk_usage(services.root).free // (1024 * 1024)
    settings = own_database.settings(
        services, MIN_FREE_DISK_MB=str(free_mb + 1024), RATE_LIMIT_PER_MINUTE="100000"
    )
    with (
        LiveServer(settings) as server,
        tenant_client(own_database.engine, settings, server.url) as client,
    ):
        refused = upload(client, english_pdf([filler(1, 3)]))
        listed = client.get("/v1/files")
        health = httpx.get(f"{server.url}/healthz")
        metrics = httpx.get(f"{server.url}/metrics").text
    assert refused.status_code == 507, refused.text
    assert "low on disk space" in refused.json()["detail"]
    assert "deleting documents frees theirs" in refused.json()["detail"]
    assert listed.status_code == 200 and listed.json()["items"] == []  # nothing was kept
    assert health.status_code == 503
    disk = health.json()["checks"]["disk"]
    assert disk["status"] == "down" and "low on disk space" in disk["error"]
    assert "docuchat_disk_low 1.0" in metrics
