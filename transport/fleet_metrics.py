"""The fleet's metrics, kept in Redis so any API process can report all of them.

Workers run on many machines and come and go; a Prometheus scrape reaches one API process. So
what workers measure (jobs finished, time to first token, tokens streamed, pages ingested) is
added to one Redis hash with HINCRBY, and `/metrics` on any API process reads it back, with
the queue depths and the unfinished jobs read at scrape time. What an API process measures
itself (request latency by route) stays in that process, as Prometheus expects.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis import Redis

from transport.queue import BROKER_NAMESPACE

log = logging.getLogger("docuchat.metrics")

KEY = f"{BROKER_NAMESPACE}:metrics"
# Seconds from a question to its answer's first token at the worker.
TTFT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def record_job(redis: Redis, kind: str, status: str) -> None:
    _add(redis, {f"jobs|{kind}|{status}": 1})


def record_answer(redis: Redis, first_token_seconds: float | None, tokens: int) -> None:
    fields: dict[str, float] = {"tokens_streamed": tokens}
    if first_token_seconds is not None:
        bucket = next((b for b in TTFT_BUCKETS if first_token_seconds <= b), None)
        fields[f"ttft_bucket|{bucket if bucket is not None else '+Inf'}"] = 1
        fields["ttft_count"] = 1
        fields["ttft_sum"] = first_token_seconds
    _add(redis, fields)


def record_ingestion(redis: Redis, pages: int, seconds: float) -> None:
    _add(redis, {"ingest_pages": pages, "ingest_seconds": seconds})


def _add(redis: Redis, fields: dict[str, float]) -> None:
    """Best effort: a metric never fails the work it measures."""
    try:
        pipe = redis.pipeline(transaction=False)
        for name, amount in fields.items():
            if isinstance(amount, int):
                pipe.hincrby(KEY, name, amount)
            else:
                pipe.hincrbyfloat(KEY, name, amount)
        pipe.execute()
    except Exception as exc:
        log.warning("could not record metrics: %s", exc)


@dataclass(frozen=True)
class FleetSnapshot:
    """What a scrape reads: the fleet's counters, queue depths, unfinished jobs."""

    counters: dict[str, float]
    queue_depth: dict[str, int]
    jobs_by_tenant: list[tuple[str, str, str, int]]  # queue (the job's kind), tenant, status, n
    batches_by_tenant: list[tuple[str, str, int]]  # tenant, status, n


class FleetCollector(Collector):
    def __init__(self, snapshot: FleetSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        counters = self.snapshot.counters
        jobs = CounterMetricFamily(
            "docuchat_jobs_finished",
            "Jobs finished, by kind and outcome",
            labels=["kind", "status"],
        )
        for name, value in sorted(counters.items()):
            if name.startswith("jobs|"):
                _, kind, status = name.split("|")
                jobs.add_metric([kind, status], value)
        yield jobs
        totals: Counter[tuple[str, str]] = Counter()
        per_tenant = GaugeMetricFamily(
            "docuchat_tenant_jobs",
            "Unfinished jobs now, by queue, tenant id and status (queued: waiting; running)",
            labels=["queue", "tenant", "status"],
        )
        for kind, tenant, status, count in sorted(self.snapshot.jobs_by_tenant):
            per_tenant.add_metric([kind, tenant, status], count)
            totals[kind, status] += count
        unfinished = GaugeMetricFamily(
            "docuchat_jobs", "Unfinished jobs now, by kind and status", labels=["kind", "status"]
        )
        for (kind, status), count in sorted(totals.items()):
            unfinished.add_metric([kind, status], count)
        yield unfinished
        yield per_tenant
        batches = GaugeMetricFamily(
            "docuchat_ingest_batches",
            "Batches of pages waiting for an ingest slot (queued) or in one (running), by "
            "tenant id",
            labels=["tenant", "status"],
        )
        for tenant, status, count in sorted(self.snapshot.batches_by_tenant):
            batches.add_metric([tenant, status], count)
        yield batches
        depth = GaugeMetricFamily(
            "docuchat_queue_depth",
            "Messages waiting in each queue (chat: questions; ingest: turns, one per batch "
            "that may start now)",
            labels=["queue"],
        )
        for queue, count in sorted(self.snapshot.queue_depth.items()):
            depth.add_metric([queue], count)
        yield depth
        cumulative, buckets = 0.0, []
        for bound in [*TTFT_BUCKETS, "+Inf"]:
            cumulative += counters.get(f"ttft_bucket|{bound}", 0)
            buckets.append((str(bound), cumulative))
        yield HistogramMetricFamily(
            "docuchat_time_to_first_token_seconds",
            "From a question's pick-up by a worker to its answer's first token",
            buckets=buckets,
            sum_value=counters.get("ttft_sum", 0.0),
        )
        yield CounterMetricFamily(
            "docuchat_tokens_streamed",
            "Answer tokens streamed",
            value=counters.get("tokens_streamed", 0),
        )
        yield CounterMetricFamily(
            "docuchat_ingest_pages",
            "PDF pages ingested (rate over docuchat_ingest_seconds: pages per second)",
            value=counters.get("ingest_pages", 0),
        )
        yield CounterMetricFamily(
            "docuchat_ingest_seconds",
            "Seconds spent ingesting those pages",
            value=counters.get("ingest_seconds", 0.0),
        )
