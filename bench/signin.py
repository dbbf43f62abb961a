"""Sign-in benchmark: does `POST /v1/auth/request-code` take longer for a member than for an
address that may not sign in? It must not: the answer, and its timing, may not tell them apart.

Run with `make bench`. Starts a private embedded Postgres and Redis under .bench/ and the API
(the Procfile's command). An invite-only tenant gets ROUNDS invited members; the bench then
asks for a code for a member and for an outsider in turn, each address once (the per-address
throttle), and compares the latencies. Mail goes to the console of the API, which is muted.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import time
import uuid
from pathlib import Path

import httpx

from bench.chat import _percentile, _process
from bench.stack import database_environ, migrated_owner, wait_healthy
from core.settings import load_settings
from db.engine import unit_of_work
from tools.devstack import api_command
from tools.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from usecases.members import create_tenant
from usecases.members import invite as invite_member

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"
ROUNDS = 400
WARM_UP = 20


def main() -> None:
    stack = WORK / "signin-stack"
    shutil.rmtree(stack, ignore_errors=True)
    stack.mkdir(parents=True)
    postgres, embedded_redis = EmbeddedPostgres(stack), EmbeddedRedis(stack)
    redis_url = embedded_redis.start()
    settings = load_settings(
        {**database_environ(postgres), "REDIS_URL": redis_url, "JWT_SECRET": "b" * 40}
    )
    owner = migrated_owner(settings)
    try:
        slug = f"signin-{uuid.uuid4().hex[:6]}"
        members = [f"member{n}@example.com" for n in range(ROUNDS + WARM_UP)]
        with unit_of_work(owner) as session:
            tenant = create_tenant(session, slug, "Sign-in bench")  # invite-only
            for address in members:
                invite_member(session, tenant.id, address, "member", None)
        outsiders = [f"outsider{n}@example.com" for n in range(ROUNDS + WARM_UP)]
        port = free_port()
        environment = os.environ | {
            "APP_ENV": "development",
            "DATABASE_URL": settings.database_url or "",
            "REDIS_URL": redis_url,
            "JWT_SECRET": settings.jwt_secret.get_secret_value(),
            "RATE_LIMIT_PER_MINUTE": "10000000",
            "LOGIN_CODES_PER_HOUR": "1000000",
        }
        timings: dict[str, list[float]] = {"member": [], "outsider": []}
        with (
            _process(api_command("127.0.0.1", port), environment),
            httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers={"X-Tenant-ID": slug}, timeout=30
            ) as client,
        ):
            wait_healthy(client)
            for n in range(ROUNDS + WARM_UP):
                pair = [("member", members[n]), ("outsider", outsiders[n])]
                random.shuffle(pair)  # neither always goes first
                for who, address in pair:
                    started = time.perf_counter()
                    response = client.post("/v1/auth/request-code", json={"email": address})
                    elapsed = (time.perf_counter() - started) * 1000
                    assert response.status_code == 202, response.text
                    if n >= WARM_UP:
                        timings[who].append(elapsed)
    finally:
        owner.dispose()
        embedded_redis.stop()
        postgres.stop()
    medians = {who: statistics.median(ms) for who, ms in timings.items()}
    for who, ms in timings.items():
        print(
            f"request-code for {who + 's':9}: median {medians[who]:.2f} ms, "
            f"p90 {_percentile(ms, 0.9):.2f} ms (n={len(ms)})"
        )
    print(f"median ratio, member / outsider: {medians['member'] / medians['outsider']:.3f}")


if __name__ == "__main__":
    main()
