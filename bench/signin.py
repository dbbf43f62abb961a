"""Sign-in benchmark: does `POST /v1/auth/request-code` take longer for a member than for an
address that may not sign in? It must not: the answer, and its timing, may not tell them apart.

Run with `make bench`. Starts a private embedded Postgres and Redis under .bench/ and the API
(the Procfile's command). An invite-only tenant gets ROUNDS invited members; the bench then
asks for a code for a member and for an outsider in turn, each address once (the per-address
throttle), and compares the latencies. Mail goes to the console of the API, which is muted.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid

import httpx

from bench.chat import _percentile
from bench.stack import WORK, environment, fresh_stack, running, wait_healthy
from db.engine import unit_of_work
from tools.devstack import api_command
from tools.embedded import free_port
from usecases.members import create_tenant
from usecases.members import invite as invite_member

ROUNDS = 400
WARM_UP = 20


def main() -> None:
    stack = fresh_stack(WORK / "signin-stack", "b" * 40)
    try:
        slug = f"signin-{uuid.uuid4().hex[:6]}"
        members = [f"member{n}@example.com" for n in range(ROUNDS + WARM_UP)]
        with unit_of_work(stack.owner) as session:
            tenant = create_tenant(session, slug, "Sign-in bench")  # invite-only
            for address in members:
                invite_member(session, tenant.id, address, "member", None)
        outsiders = [f"outsider{n}@example.com" for n in range(ROUNDS + WARM_UP)]
        port = free_port()
        env = environment(stack.settings, LOGIN_CODES_PER_HOUR="1000000")
        timings: dict[str, list[float]] = {"member": [], "outsider": []}
        with (
            running(api_command("127.0.0.1", port), env),
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
        stack.stop()
    medians = {who: statistics.median(ms) for who, ms in timings.items()}
    for who, ms in timings.items():
        print(
            f"request-code for {who + 's':9}: median {medians[who]:.2f} ms, "
            f"p90 {_percentile(ms, 0.9):.2f} ms (n={len(ms)})"
        )
    print(f"median ratio, member / outsider: {medians['member'] / medians['outsider']:.3f}")


if __name__ == "__main__":
    main()
