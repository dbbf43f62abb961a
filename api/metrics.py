"""`GET /metrics` in Prometheus' text format: this API process's request latency by route,
and the fleet's jobs, queues, time to first token, tokens and ingestion (transport.fleet_metrics).

It names tenants by id only, where they have unfinished work (who waits, who runs), and no
user or document. Expose it to your Prometheus, not to the internet.
"""

from __future__ import annotations

from litestar import Response, get
from litestar.types import HTTPScope
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import text

from api.resources import ResourcesDep
from transport.fleet_metrics import KEY, FleetCollector, FleetSnapshot
from transport.queue import QUEUES, queue_key
from usecases.disk_space import disk_space

REGISTRY = CollectorRegistry()
DISK_FREE_BYTES = Gauge(
    "docuchat_disk_free_bytes", "Free space of DATA_DIR's volume", registry=REGISTRY
)
DISK_LOW = Gauge(
    "docuchat_disk_low",
    "1 while uploads are refused for lack of disk space (MIN_FREE_DISK_MB), else 0",
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "docuchat_http_request_duration_seconds",
    "Time to the start of each response, by route (an SSE stream: until it opened)",
    ["method", "route", "status"],
    registry=REGISTRY,
)


def observe_request(scope: HTTPScope, status: int, seconds: float) -> None:
    # The route's template, never the raw path: ids would make a series per document.
    route = str(scope.get("path_template") or "unmatched")
    REQUEST_SECONDS.labels(scope["method"], route, str(status)).observe(seconds)


@get("/metrics", include_in_schema=False)
async def metrics(resources: ResourcesDep) -> Response[bytes]:
    space = disk_space(resources.settings)
    DISK_FREE_BYTES.set(space.free_bytes)
    DISK_LOW.set(int(space.low))
    pipe = resources.redis.pipeline(transaction=False)
    pipe.hgetall(KEY)
    for queue in QUEUES:
        pipe.llen(queue_key(queue))
    counters, *depths = await pipe.execute()
    async with resources.engine.connect() as conn:
        jobs = await conn.execute(text("SELECT * FROM docuchat_unfinished_jobs_by_tenant()"))
        by_tenant = [
            (kind, str(tenant), status, int(count)) for kind, tenant, status, count in jobs
        ]
        batches = await conn.execute(text("SELECT * FROM docuchat_open_batches_by_tenant()"))
        open_batches = [(str(tenant), status, int(count)) for tenant, status, count in batches]
    snapshot = FleetSnapshot(
        counters={key.decode(): float(value) for key, value in counters.items()},
        queue_depth={queue: int(depth) for queue, depth in zip(QUEUES, depths, strict=True)},
        jobs_by_tenant=by_tenant,
        batches_by_tenant=open_batches,
    )
    fleet = CollectorRegistry()
    fleet.register(FleetCollector(snapshot))
    body = generate_latest(REGISTRY) + generate_latest(fleet)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
