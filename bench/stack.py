"""What both benchmarks need to drive a running API."""

from __future__ import annotations

import time

import httpx


def wait_healthy(client: httpx.Client, timeout: float = 60) -> None:
    """Wait until the API answers /healthz with 200 (databases, Redis and broker up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the API did not become healthy")
        time.sleep(0.2)
