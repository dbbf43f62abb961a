"""Keeps a worker process's heartbeat going while its threads are busy.

Dramatiq's Redis broker records a worker's heartbeat only when its consumer talks to Redis,
and a consumer whose prefetch is full of long messages does not: a worker busy with long
batches for more than WORKER_HEARTBEAT_TIMEOUT_SECONDS looked dead, and the living took its
messages while it still worked on them. Here a thread of each worker process records the
heartbeat (the same sorted set, the same broker id) four times per timeout, whatever the
threads do, so a heartbeat that stops means a worker that stopped: the reaper hands its work
on (workers/reaper.py) once the heartbeat is older than the timeout, or at once after a clean
stop.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import dramatiq
from dramatiq import Broker

from transport.queue import HEARTBEATS_KEY
from workers.services import services_of

log = logging.getLogger("docuchat.workers")


def worker_id(broker: Broker) -> str:
    """The id this process's heartbeat carries (Dramatiq's RedisBroker broker_id)."""
    return str(getattr(broker, "broker_id", ""))


class Heartbeat(dramatiq.Middleware):
    def __init__(self, timeout_seconds: float) -> None:
        self._interval = max(0.2, timeout_seconds / 4)
        self._stop = threading.Event()

    def after_process_boot(self, broker: Broker) -> None:
        threading.Thread(target=self._beat, args=(broker,), name="heartbeat", daemon=True).start()

    def after_worker_shutdown(self, broker: Broker, worker: Any) -> None:
        """Stopped cleanly: say so at once (a heartbeat from long ago), so the reaper hands on
        whatever this process still held and Dramatiq requeues its unacknowledged messages,
        without waiting for the timeout."""
        self._stop.set()
        try:
            services_of(broker).redis.zadd(HEARTBEATS_KEY, {worker_id(broker): 0})
        except Exception as exc:
            log.debug("could not record the stop: %s", exc)

    def _beat(self, broker: Broker) -> None:
        member = worker_id(broker)
        while not self._stop.wait(self._interval):
            try:
                services_of(broker).redis.zadd(HEARTBEATS_KEY, {member: int(time.time() * 1000)})
            except Exception as exc:  # Redis away for a moment: the next beat tries again
                log.debug("heartbeat not recorded: %s", exc)
