"""The embedded Redis of `docuchat dev` keeps its data across restarts: a clean stop, a kill
(what was written a second before survives), and a data folder from before the append-only
file, whose snapshot is loaded and then kept append-only."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import redis

from tools.embedded import AOF, EmbeddedRedis


def _restarted(server: EmbeddedRedis, kill: bool = False) -> redis.Redis:
    if kill:
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)
        time.sleep(0.2)
    else:
        server.stop()
    server.start()
    return redis.Redis.from_url(server.url)


def test_queues_survive_a_clean_stop_and_a_kill(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    client = redis.Redis.from_url(server.start())
    try:
        client.rpush("docuchat:ingest", "turn-1")
        client = _restarted(server)
        assert client.lrange("docuchat:ingest", 0, -1) == [b"turn-1"]
        assert (server.dir / "dump.rdb").exists()  # the snapshot of a clean stop
        client.rpush("docuchat:ingest", "turn-2")
        time.sleep(1.5)  # the append-only file is synced every second
        client = _restarted(server, kill=True)
        assert client.lrange("docuchat:ingest", 0, -1) == [b"turn-1", b"turn-2"]
    finally:
        client.close()
        server.stop()


def test_a_snapshot_from_before_the_append_only_file_is_kept(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    client = redis.Redis.from_url(server.start())
    try:
        client.set("docuchat:kept", "yes")
        server.stop()
        (server.dir / AOF).unlink()  # a data folder as older versions left it
        client = redis.Redis.from_url(server.start())
        assert client.get("docuchat:kept") == b"yes"
        deadline = time.monotonic() + 10
        while (
            client.info("persistence")["aof_rewrite_in_progress"]
            or client.config_get("appendonly")["appendonly"] != "yes"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        client = _restarted(server, kill=True)  # from the append-only file alone now
        assert client.get("docuchat:kept") == b"yes"
    finally:
        client.close()
        server.stop()
