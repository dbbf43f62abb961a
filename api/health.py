"""`GET /healthz`: each dependency's state, and the disk's; 503 when any of them is down
(the disk: too low on space to take an upload)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
from litestar import Router, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Response
from sqlalchemy import text

from api.identity import PUBLIC
from api.metrics import metrics
from api.resources import ResourcesDep
from core.errors import InsufficientStorage
from pipeline.ocr import ocr_languages, ocr_missing
from transport.queue import HEARTBEATS_KEY, QUEUES, queue_key
from usecases.disk_space import MB, disk_space
from usecases.documents import configured_ocr

CHECK_TIMEOUT_SECONDS = 2.0


class Check(msgspec.Struct, omit_defaults=True):
    status: Literal["ok", "down"]
    latency_ms: float
    error: str | None = None
    detail: dict[str, int] | None = None


class OcrReport(msgspec.Struct):
    """Whether scanned pages can be read (Tesseract with OCR_LANGUAGES); not a health check:
    without it the service runs, and scanned pages fail with a sentence."""

    available: bool
    languages: str
    missing: list[str]  # languages (or "tesseract" itself) to install


class HealthReport(msgspec.Struct):
    status: Literal["ok", "down"]
    checks: dict[str, Check]
    ocr: OcrReport


async def _timed(probe: Callable[[], Awaitable[dict[str, int] | None]]) -> Check:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            detail = await probe()
    except Exception as exc:
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        reason = str(exc) or type(exc).__name__
        return Check(status="down", latency_ms=elapsed, error=reason[:200])
    return Check(
        status="ok", latency_ms=round((time.perf_counter() - started) * 1000, 1), detail=detail
    )


@get(
    "/healthz",
    summary="Service health",
    responses={503: ResponseSpec(HealthReport, description="a dependency is down")},
)
async def healthz(resources: ResourcesDep) -> Response[HealthReport]:

    async def database() -> None:
        async with resources.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def redis() -> None:
        await resources.redis.ping()

    async def broker() -> dict[str, int]:
        # Live workers: a heartbeat younger than the timeout after which they count as dead.
        since_ms = int((time.time() - resources.settings.worker_heartbeat_timeout_seconds) * 1000)
        pipe = resources.redis.pipeline(transaction=False)
        pipe.zcount(HEARTBEATS_KEY, since_ms, "+inf")
        for queue in QUEUES:
            pipe.llen(queue_key(queue))
        workers, *depths = await pipe.execute()
        return {"workers": int(workers)} | {
            f"queued_{queue}": int(depth) for queue, depth in zip(QUEUES, depths, strict=True)
        }

    async def disk() -> dict[str, int]:
        space = disk_space(resources.settings)
        if space.low:
            raise InsufficientStorage(space.sentence())
        return {"free_mb": space.free_bytes // MB, "needed_mb": space.needed_bytes // MB}

    names = ("database", "redis", "broker", "disk")
    results = await asyncio.gather(_timed(database), _timed(redis), _timed(broker), _timed(disk))
    checks = dict(zip(names, results, strict=True))
    healthy = all(check.status == "ok" for check in results)
    settings = resources.settings
    missing = ocr_missing(configured_ocr(settings))
    ocr = OcrReport(
        available=not missing,
        languages=settings.ocr_languages,
        missing=missing if ocr_languages() else ["tesseract", *missing],
    )
    return Response(
        HealthReport(status="ok" if healthy else "down", checks=checks, ocr=ocr),
        status_code=200 if healthy else 503,
    )


# What operators and their probes read: no token, whatever the tenant.
router = Router("/", tags=["operations"], opt={PUBLIC: True}, route_handlers=[healthz, metrics])
