"""Usage benchmark: how long `GET /v1/usage` and the quota check take on a busy tenant.

Run with `make bench`. Starts a private embedded Postgres and Redis under .bench/ and the API
(the Procfile's uvicorn command); no worker is needed. It writes a month of usage records:
a busy tenant of 50 users making 10,000 metered calls a day, next to 20 quieter tenants with
as many records between them, then vacuums as autovacuum would. Through the real HTTP API it
times `GET /v1/usage` for one user and for the whole tenant; in-process it times the quota
check every chat, search and upload makes (with a quota, and the no-quota fast path), and
reports which plan Postgres chose.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections.abc import Callable

import httpx
from sqlalchemy import Connection, Engine, text
from sqlalchemy.sql.expression import Executable

from api.signin.tokens import issue_access_token
from bench.chat import _percentile
from bench.stack import WORK, environment, fresh_stack, running, wait_healthy
from bootstrap import bootstrap
from db.engine import unit_of_work
from db.usage import quota_statement, record_usage, windows_statement
from tools.devstack import api_command
from tools.embedded import free_port
from usecases.members import create_tenant, get_or_create_user, promote_user

USERS = 50
CALLS_PER_DAY = 10_000
DAYS = 30
QUIET_TENANTS = 20
ROUNDS = 50

FILL = text("""
    INSERT INTO usage_records (tenant_id, user_id, kind, model, prompt_tokens,
                               completion_tokens, created_at)
    SELECT :tenant, (:users)[1 + n % cardinality(:users)],
           CASE WHEN n % 2 = 0 THEN 'chat' ELSE 'embedding' END,
           CASE WHEN n % 2 = 0 THEN (ARRAY['gpt-4o-mini', 'gpt-4o'])[1 + n % 3 % 2]
                ELSE 'text-embedding-3-small' END,
           200 + n % 1800, CASE WHEN n % 2 = 0 THEN n % 400 ELSE 0 END,
           now() - make_interval(secs => n::float8 * :span / :rows)
    FROM generate_series(1, :rows) AS n
""")


def _timed(call: Callable[[], object], rounds: int = ROUNDS) -> list[float]:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _summary(name: str, ms: list[float]) -> str:
    return (
        f"{name}: median {statistics.median(ms):.1f} ms, p99 {_percentile(ms, 0.99):.1f} ms "
        f"(n={len(ms)})"
    )


def _plan(conn: Connection, statement: Executable) -> str:
    """The scan nodes of the plan Postgres picks for a statement."""
    compiled = statement.compile(conn, compile_kwargs={"literal_binds": True})
    lines = conn.execute(text(f"EXPLAIN {compiled}")).scalars()
    scans = [line.strip().lstrip("-> ") for line in lines if " Scan " in line]
    return "; ".join(sorted({scan.split("  (")[0] for scan in scans}))


def _record_cost(owner: Engine, app: Engine, tenant: uuid.UUID, user: uuid.UUID) -> str:
    """What keeping the monthly totals adds to recording usage: one record per transaction,
    as workers write them, with the triggers on and then off."""

    def record() -> None:
        with unit_of_work(app, tenant) as session:
            record_usage(
                session, tenant_id=tenant, user_id=user, job_id=None, kind="chat",
                model="gpt-4o-mini", prompt_tokens=1200, completion_tokens=300,
            )  # fmt: skip

    with_totals = _timed(record, 200)
    with owner.begin() as conn:
        conn.execute(text("ALTER TABLE usage_records DISABLE TRIGGER USER"))
    try:
        without = _timed(record, 200)
    finally:
        with owner.begin() as conn:
            conn.execute(text("ALTER TABLE usage_records ENABLE TRIGGER USER"))
    kept, bare = statistics.median(with_totals), statistics.median(without)
    return (
        f"recording one usage record per transaction: median {kept:.2f} ms with the monthly "
        f"totals, {bare:.2f} ms without (x{kept / bare:.2f}, n=200 each)"
    )


def main() -> None:
    stack = fresh_stack(WORK / "usage-stack", "b" * 40)
    settings, owner = stack.settings, stack.owner
    app = bootstrap(settings).engine
    report: list[str] = []
    try:
        rows = CALLS_PER_DAY * DAYS
        started = time.perf_counter()
        with unit_of_work(owner) as session:
            busy = create_tenant(session, f"busy-{uuid.uuid4().hex[:6]}", "Busy")
            users = [get_or_create_user(session, busy, f"u{n}@example.com") for n in range(USERS)]
            admin = promote_user(session, busy, "u0@example.com")
            member = users[1]
            busy.monthly_token_quota = 10**12
            span = DAYS * 86_400
            fill = {"span": span, "rows": rows}
            session.execute(FILL, {"tenant": busy.id, "users": [u.id for u in users]} | fill)
            for n in range(QUIET_TENANTS):
                quiet = create_tenant(session, f"quiet-{n}-{uuid.uuid4().hex[:6]}", "Quiet")
                one = get_or_create_user(session, quiet, "q@example.com")
                each = {"rows": rows // QUIET_TENANTS, "span": span}
                session.execute(FILL, {"tenant": quiet.id, "users": [one.id]} | each)
        with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE usage_records"))
        report.append(
            f"usage records: {rows * 2:,} ({rows:,} of the busy tenant, {USERS} users, "
            f"{DAYS} days), written and vacuumed in {time.perf_counter() - started:.1f} s"
        )
        port = free_port()
        with running(api_command("127.0.0.1", port), environment(settings)):
            for who, user, params in [
                ("one member", member, {}),
                ("the whole tenant (admin)", admin, {"scope": "tenant"}),
            ]:
                token = issue_access_token(settings, user.id, busy.id).token
                headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": busy.slug}
                with httpx.Client(
                    base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60
                ) as client:
                    wait_healthy(client)
                    body = client.get("/v1/usage", params=params).json()
                    ms = _timed(lambda c=client, p=params: c.get("/v1/usage", params=p))
                    report.append(
                        _summary(f"GET /v1/usage, {who}", ms)
                        + f"; {body['last_7d']['requests']:,} calls in the last 7 days"
                    )
        with app.connect() as conn:
            conn.execute(text("SELECT set_config('app.tenant_id', :t, false)"), {"t": str(busy.id)})
            for label, statement in [
                ("quota check, tenant with a quota", quota_statement(busy.id)),
                ("usage windows, one user", windows_statement(busy.id, member.id)),
                ("usage windows, whole tenant", windows_statement(busy.id, None)),
            ]:
                ms = _timed(lambda s=statement: conn.execute(s).all())
                report.append(_summary(label, ms) + f" [{_plan(conn, statement)}]")
            report.append(_record_cost(owner, app, busy.id, member.id))
            with unit_of_work(owner) as session:
                session.get_one(type(busy), busy.id).monthly_token_quota = None
            no_quota = quota_statement(busy.id)
            ms = _timed(lambda: conn.execute(no_quota).all())
            report.append(_summary("quota check, tenant without a quota", ms))
    finally:
        app.dispose()
        stack.stop()
    print("\n".join(report))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
