"""Job changes as they happen, for the API's job event streams, from Postgres itself.

A trigger on `jobs` (migration 0012) sends a NOTIFY on `docuchat_jobs` whenever a job's
status or progress changes, whoever changed it: a worker's progress report, a finished batch,
the reaper, a cancel. Each API process LISTENs on one connection (`JobWatch`) and hands each
notice to the readers of that job; nobody polls. Notices carry ids only; a reader fetches the
job through row-level security, so a notice can never show one tenant another's job.

Notices sent while the listening connection was down are lost, so `JobWatch` counts its
reconnections and readers look at their job again when the count moves (and at every
keep-alive anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict

import psycopg

log = logging.getLogger("docuchat.db")

CHANNEL = "docuchat_jobs"
RECONNECT_SECONDS = 1.0


class JobWatch:
    """One LISTEN connection per process; `watch(job_id)` gives an event set on each change."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._watchers: dict[uuid.UUID, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.connections = 0  # how many times it (re)connected: notices between are lost

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="job-watch")

    async def ready(self, seconds: float) -> bool:
        """Whether it listens, waiting up to `seconds` for it."""
        try:
            await asyncio.wait_for(self._listening.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def watch(self, job_id: uuid.UUID) -> asyncio.Event:
        changed = asyncio.Event()
        self._watchers[job_id].add(changed)
        return changed

    def unwatch(self, job_id: uuid.UUID, changed: asyncio.Event) -> None:
        watchers = self._watchers.get(job_id)
        if watchers is not None:
            watchers.discard(changed)
            if not watchers:
                del self._watchers[job_id]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.wake_all()

    def wake_all(self) -> None:
        """Every reader looks at its job again (notices were missed, or the server drains)."""
        for watchers in self._watchers.values():
            for changed in watchers:
                changed.set()

    async def _run(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self.connections += 1
                    self._listening.set()
                    self.wake_all()  # notices may have been missed meanwhile: look again
                    async for notice in connection.notifies():
                        self._dispatch(notice.payload)
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as exc:
                self._listening.clear()
                log.warning("job notices interrupted, listening again: %s", exc)
                self.wake_all()
                await asyncio.sleep(RECONNECT_SECONDS)

    def _dispatch(self, payload: str) -> None:
        try:
            job_id = uuid.UUID(payload)
        except ValueError:
            return
        for changed in self._watchers.get(job_id, ()):
            changed.set()
