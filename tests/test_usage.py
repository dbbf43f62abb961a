"""Usage and quotas through the real API: what each answer and embedding spent, the rolling
windows, the tenant view for admins, and the monthly quota set with the CLI."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import DateTime, Engine, literal, select, text

from core.settings import Settings
from db.usage import Tally, fold_windows, month_bounds, windows_statement
from pipeline.chunking import count_tokens
from pipeline.normalise import normalise_text
from standins.chat_client import ask, read_stream
from standins.documents import english_pdf, filler
from tests.ingest_helpers import colleague_client, ingest, upload
from tools.cli import main

PAGES = [
    "The copper lantern hangs in the old harbour. Fishermen light it every evening. "
    + filler(1, 4),
    "The glacier above the village hides a quartz cave. Climbers reach it in summer. "
    + filler(2, 4),
]
WINDOWS = ("last_24h", "last_7d")


def _me(client: httpx.Client) -> dict[str, Any]:
    me: dict[str, Any] = client.get("/v1/me").json()
    return me


def _usage(client: httpx.Client, **params: str) -> dict[str, Any]:
    response = client.get("/v1/usage", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _tokens(
    prompt: int, completion: int, requests: int, *, estimated: bool = False
) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "requests": requests,
        "estimated_tokens": prompt + completion if estimated else 0,
    }


def _spent(
    engine: Engine,
    client: httpx.Client,
    ago: timedelta,
    prompt: int,
    completion: int = 0,
    model: str = "earlier-model",
) -> None:
    """A usage record of this client's user, made `ago` before now (as if spent then)."""
    me = _me(client)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO usage_records (tenant_id, user_id, kind, model, prompt_tokens, "
                "completion_tokens, created_at) VALUES (:t, :u, 'chat', :m, :p, :c, now() - :ago)"
            ),
            {
                "t": me["tenant"]["id"],
                "u": me["user_id"],
                "m": model,
                "p": prompt,
                "c": completion,
                "ago": ago,
            },
        )


def _chunk_texts(engine: Engine, document_id: str) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT text FROM chunks WHERE document_id = :d ORDER BY ordinal"),
            {"d": document_id},
        )
        return [row.text for row in rows]


def _count_jobs(engine: Engine, tenant_slug: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM jobs j JOIN tenants t ON t.id = j.tenant_id "
                    "WHERE t.slug = :s"
                ),
                {"s": tenant_slug},
            ).scalar_one()
        )


def test_every_answer_and_embedding_is_counted_as_spent(
    client: httpx.Client, engine: Engine, api_settings: Settings
) -> None:
    document = ingest(client, english_pdf(PAGES), "harbour.pdf")
    questions = ["When do fishermen light the lantern?", "Where is the quartz cave?"]
    answers = [read_stream(client, ask(client, q)["stream_url"]) for q in questions]
    search = client.post("/v1/search", json={"query": "copper lantern"})
    assert search.status_code == 200
    usage = _usage(client)

    completions = [count_tokens(a.text) for a in answers]
    prompts = [a.last("end")["usage"]["prompt_tokens"] for a in answers]
    assert all(completions) and all(prompts)
    # The offline answerer and the local embedder spend nothing a provider reports: every
    # token here is tiktoken's count, an estimate.
    chat = _tokens(sum(prompts), sum(completions), 2, estimated=True)
    embedded = [*_chunk_texts(engine, document["id"]), *questions, "copper lantern"]
    tokens = sum(count_tokens(normalise_text(t)) for t in embedded)
    embedding = _tokens(tokens, 0, 4, estimated=True)
    model = api_settings.embedding_model_name
    for window in WINDOWS:
        assert usage[window]["by_model"] == {"extractive": chat, model: embedding}
        assert usage[window]["by_kind"] == {"chat": chat, "embedding": embedding}
        totals = {k: usage[window][k] for k in chat}
        spent = sum(prompts) + embedding["prompt_tokens"]
        assert totals == _tokens(spent, sum(completions), 6, estimated=True)
        assert "by_user" not in usage[window]
    assert usage["scope"] == "user"
    assert usage["quota"]["monthly_tokens"] is None
    assert usage["quota"]["used_tokens"] == usage["last_24h"]["total_tokens"]


def test_the_windows_roll_by_the_hour_whatever_the_server_time_zone(
    client: httpx.Client, engine: Engine
) -> None:
    for ago, tokens in [
        (timedelta(minutes=5), 1),
        (timedelta(hours=23, minutes=55), 10),
        (timedelta(hours=24, minutes=5), 100),
        (timedelta(days=6, hours=23, minutes=55), 1_000),
        (timedelta(days=7, minutes=5), 10_000),
        (timedelta(days=40), 100_000),
    ]:
        _spent(engine, client, ago, tokens)
    usage = _usage(client)
    assert usage["last_24h"]["total_tokens"] == 11
    assert usage["last_24h"]["requests"] == 2
    assert usage["last_7d"]["total_tokens"] == 1_111
    assert usage["last_7d"]["by_model"] == {"earlier-model": _tokens(1_111, 0, 4)}
    at = datetime.fromisoformat(usage["at"])
    assert at.utcoffset() == timedelta(0)  # UTC, though the database runs at UTC+14
    assert abs(at - datetime.now(UTC)) < timedelta(minutes=1)
    assert datetime.fromisoformat(usage["last_24h"]["since"]) == at - timedelta(hours=24)
    assert datetime.fromisoformat(usage["last_7d"]["since"]) == at - timedelta(hours=168)


def test_members_see_their_own_usage_and_admins_the_whole_tenant_by_user(
    client: httpx.Client, engine: Engine, api_settings: Settings
) -> None:
    with (
        colleague_client(engine, api_settings, client) as member,
        colleague_client(engine, api_settings, client, role="admin") as admin,
    ):
        _spent(engine, client, timedelta(hours=2), 300, 30)
        _spent(engine, member, timedelta(hours=30), 50, 5)
        _spent(engine, admin, timedelta(hours=1), 7, 0, model="other-model")
        assert _usage(member)["last_7d"]["total_tokens"] == 55
        assert _usage(member)["last_24h"]["total_tokens"] == 0
        refused = member.get("/v1/usage", params={"scope": "tenant"})
        assert refused.status_code == 403
        assert "only a tenant admin" in refused.json()["detail"]
        tenant = _usage(admin, scope="tenant")
        member_email, admin_email = _me(member)["email"], _me(admin)["email"]
    assert tenant["scope"] == "tenant"
    assert tenant["last_24h"]["total_tokens"] == 337
    assert tenant["last_7d"]["total_tokens"] == 392
    assert tenant["last_7d"]["by_model"] == {
        "earlier-model": _tokens(350, 35, 2),
        "other-model": _tokens(7, 0, 1),
    }
    by_user = [(u["email"], u["total_tokens"], u["requests"]) for u in tenant["last_7d"]["by_user"]]
    assert by_user == [(_me(client)["email"], 330, 1), (member_email, 55, 1), (admin_email, 7, 1)]
    in_a_day = {u["email"] for u in tenant["last_24h"]["by_user"]}
    assert in_a_day == {_me(client)["email"], admin_email}


def test_a_bad_scope_is_refused_with_the_choices(client: httpx.Client) -> None:
    response = client.get("/v1/usage", params={"scope": "everyone"})
    assert response.status_code == 422
    assert response.json()["field"] == "scope"
    assert response.json()["detail"] == (
        "scope must be `user` (your own usage) or `tenant` (the whole tenant, for admins), "
        "not 'everyone'"
    )


def test_a_tenant_over_its_monthly_quota_gets_429_until_it_resets(
    client: httpx.Client, engine: Engine, cli: CliRunner
) -> None:
    slug = client.headers["X-Tenant-ID"]
    ingest(client, english_pdf(PAGES), "harbour.pdf")
    # Last month's spending does not count against this month's quota.
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    _spent(engine, client, now - month_start + timedelta(minutes=1), 10_000_000)
    used = _usage(client)["quota"]["used_tokens"]
    assert 0 < used < 10_000_000

    set_quota = cli.invoke(main, ["tenant", "set-quota", slug, str(used + 20)])
    assert set_quota.exit_code == 0, set_quota.output
    assert f"{used + 20:,} tokens a month; {used:,} used" in set_quota.output
    # Under the quota: accepted, and this answer takes the tenant over it mid-day.
    answer = read_stream(client, ask(client, "When do fishermen light the lantern?")["stream_url"])
    assert answer.names[-1] == "end"
    jobs = _count_jobs(engine, slug)

    refused = client.post("/v1/chat", json={"message": "Where is the quartz cave?"})
    assert refused.status_code == 429
    body = refused.json()
    reset = (month_start + timedelta(days=32)).replace(day=1)
    assert datetime.fromisoformat(body["resets_at"]) == reset
    assert body["quota"] == used + 20 and body["used"] > used + 20
    assert f"until the quota resets on {reset:%Y-%m-%d} 00:00 UTC" in body["detail"]
    retry_after = int(refused.headers["Retry-After"])
    assert abs(retry_after - (reset - datetime.now(UTC)).total_seconds()) < 60
    assert _count_jobs(engine, slug) == jobs  # refused before anything was queued
    assert client.post("/v1/search", json={"query": "lantern"}).status_code == 429
    assert upload(client, english_pdf(["another"]), "more.pdf").status_code == 429
    quota = _usage(client)["quota"]
    assert quota["remaining_tokens"] == 0 and quota["resets_at"] == body["resets_at"]

    lifted = cli.invoke(main, ["tenant", "set-quota", slug, "none"])
    assert lifted.exit_code == 0 and "no monthly quota" in lifted.output
    assert client.post("/v1/chat", json={"message": "Where is the quartz cave?"}).status_code == 202


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("lots", "not a number of tokens"),
        ("2.5M", "not a number of tokens"),
        ("10000000000000000", "use `none` for no quota"),
    ],
)
def test_set_quota_refuses_what_is_not_a_token_count(
    cli: CliRunner, value: str, message: str
) -> None:
    result = cli.invoke(main, ["tenant", "set-quota", "any-tenant", value])
    assert result.exit_code == 2
    assert message in result.output


def test_set_quota_takes_suffixes_and_names_an_unknown_tenant(
    cli: CliRunner, client: httpx.Client
) -> None:
    slug = client.headers["X-Tenant-ID"]
    result = cli.invoke(main, ["tenant", "set-quota", slug, "2M"])
    assert result.exit_code == 0, result.output
    assert "2,000,000 tokens a month" in result.output
    assert _usage(client)["quota"]["monthly_tokens"] == 2_000_000
    missing = cli.invoke(main, ["tenant", "set-quota", f"no-{uuid.uuid4().hex[:8]}", "5"])
    assert missing.exit_code == 2 and "no tenant" in missing.output


def _utc(moment: str) -> datetime:
    return datetime.fromisoformat(moment).replace(tzinfo=UTC)


def _at(moment: datetime) -> Any:
    return literal(moment, DateTime(timezone=True))


@pytest.mark.parametrize(
    "zone", ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/Berlin", "Asia/Tehran"]
)
def test_the_quota_month_is_the_utc_calendar_month_in_any_session_zone(
    engine: Engine, zone: str
) -> None:
    cases = [
        ("2026-11-30 23:30", "2026-11-01", "2026-12-01"),
        ("2026-12-01 00:00", "2026-12-01", "2027-01-01"),
        ("2026-10-15 12:00", "2026-10-01", "2026-11-01"),  # Berlin leaves summer time inside
        ("2026-02-28 23:59", "2026-02-01", "2026-03-01"),
    ]
    with engine.connect() as conn:
        conn.exec_driver_sql(f"SET TIME ZONE '{zone}'")
        for at, start, end in cases:
            bounds = conn.execute(select(*month_bounds(_at(_utc(at))))).one()
            assert tuple(bounds) == (_utc(start), _utc(end)), (zone, at)


def test_the_seven_day_window_is_168_hours_across_a_daylight_saving_change(
    engine: Engine,
) -> None:
    at = _utc("2026-10-27 12:00")  # Berlin left summer time on 25 October
    with engine.connect() as conn:
        conn.exec_driver_sql("SET TIME ZONE 'Europe/Berlin'")
        tenant = conn.execute(
            text("INSERT INTO tenants (slug, name) VALUES (:s, 'DST') RETURNING id"),
            {"s": f"t-{uuid.uuid4().hex[:10]}"},
        ).scalar_one()
        for hours, tokens in [(23.5, 1), (24.5, 10), (167.5, 100), (168.5, 1_000)]:
            conn.execute(
                text(
                    "INSERT INTO usage_records (tenant_id, kind, model, prompt_tokens, created_at)"
                    " VALUES (:t, 'chat', 'm', :p, :at)"
                ),
                {"t": tenant, "p": tokens, "at": at - timedelta(hours=hours)},
            )
        _, windows = fold_windows(conn.execute(windows_statement(tenant, None, at)).all())
        conn.rollback()
    assert windows["last_24h"].total.prompt_tokens == 1
    assert windows["last_7d"].total.prompt_tokens == 111
    assert windows["last_7d"].by_user == {None: Tally(111, 0, 3)}


def test_the_monthly_totals_follow_every_insert_change_and_delete(engine: Engine) -> None:
    """`usage_months` is kept by a trigger; it must always equal the records' own sums."""
    truth = text(
        "SELECT date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month, "
        "sum(prompt_tokens + completion_tokens) FROM usage_records WHERE tenant_id = :t "
        "GROUP BY 1 ORDER BY 1"
    )
    kept = text("SELECT month, tokens FROM usage_months WHERE tenant_id = :t ORDER BY month")
    with engine.connect() as conn:
        conn.exec_driver_sql("SET TIME ZONE 'Pacific/Kiritimati'")
        tenant = conn.execute(
            text("INSERT INTO tenants (slug, name) VALUES (:s, 'Months') RETURNING id"),
            {"s": f"t-{uuid.uuid4().hex[:10]}"},
        ).scalar_one()
        ids = [
            conn.execute(
                text(
                    "INSERT INTO usage_records (tenant_id, kind, model, prompt_tokens, "
                    "completion_tokens, created_at) VALUES (:t, 'chat', 'm', :p, 1, :at) "
                    "RETURNING id"
                ),
                {"t": tenant, "p": tokens, "at": _utc(at)},
            ).scalar_one()
            for tokens, at in [
                (10, "2026-10-31 23:59"),  # already November in Kiritimati, October in UTC
                (20, "2026-11-01 00:00"),
                (40, "2026-11-30 12:00"),
            ]
        ]
        first = conn.execute(kept, {"t": tenant}).all()
        conn.execute(
            text("UPDATE usage_records SET prompt_tokens = 100 WHERE id = :i"), {"i": ids[1]}
        )
        conn.execute(
            text("UPDATE usage_records SET created_at = :at WHERE id = :i"),
            {"i": ids[2], "at": _utc("2026-12-01 00:00")},
        )
        conn.execute(text("DELETE FROM usage_records WHERE id = :i"), {"i": ids[0]})
        after = conn.execute(kept, {"t": tenant}).all()
        expected = conn.execute(truth, {"t": tenant}).all()
        conn.rollback()
    assert [tuple(row) for row in first] == [
        (date(2026, 10, 1), 11),
        (date(2026, 11, 1), 62),
    ]
    months = {month: tokens for month, tokens in after if tokens}
    assert months == {month: total for month, total in expected}
    assert months == {date(2026, 11, 1): 101, date(2026, 12, 1): 41}
