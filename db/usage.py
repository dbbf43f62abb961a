"""Usage records and what is read from them: rolling windows and the monthly quota.

A record is one metered model call: an answer (kind `chat`), or an embedding (kind
`embedding`: a document's chunks, a chat question, a search query). Each is written at most
once per job and kind, so a retried job never counts twice.

The windows are summed from the records themselves, through covering indexes. The quota
reads `usage_months`, each tenant's tokens per UTC calendar month, which triggers on the
records keep in the same transaction (migration 0006).

Every time here is computed by Postgres on `timestamptz`, never in the session's time zone:
the rolling windows are exact spans of hours (168, not "7 days", which a daylight-saving
change would stretch), and the quota month runs from midnight UTC on the first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    cast,
    func,
    literal,
    literal_column,
    select,
    tuple_,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.types import Date, DateTime

from db.models import Tenant, UsageMonth, UsageRecord, User


def record_usage(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID | None,
    job_id: uuid.UUID | None,
    kind: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int = 0,
    estimated: bool = False,
) -> bool:
    """Count a model call's tokens; False (and nothing written) when this job counted this
    kind already. Calls made outside a job (a search) have no job id and always count."""
    inserted = session.execute(
        insert(UsageRecord)
        .values(
            tenant_id=tenant_id,
            user_id=user_id,
            job_id=job_id,
            kind=kind,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            estimated=estimated,
        )
        .on_conflict_do_nothing(index_elements=[UsageRecord.job_id, UsageRecord.kind])
        .returning(UsageRecord.id)
    ).first()
    return inserted is not None


# ---- rolling windows -------------------------------------------------------------------------

WINDOW_HOURS = {"last_24h": 24, "last_7d": 168}


@dataclass(frozen=True)
class Tally:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    estimated_tokens: int = 0  # of the total, counted with tiktoken: no provider reported them

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class UsageWindow:
    since: datetime
    total: Tally = Tally()
    by_model: dict[str, Tally] = field(default_factory=dict)
    by_kind: dict[str, Tally] = field(default_factory=dict)
    by_user: dict[uuid.UUID | None, Tally] = field(default_factory=dict)


@dataclass(frozen=True)
class UsageReport:
    at: datetime
    windows: dict[str, UsageWindow]  # keyed as WINDOW_HOURS
    emails: dict[uuid.UUID, str]  # of the users in `by_user`


def _ago(at: ColumnElement[datetime], hours: int) -> ColumnElement[datetime]:
    return at - literal_column(f"interval '{hours} hours'")


def _moment(at: datetime | None) -> ColumnElement[datetime]:
    """`at` as a timestamptz expression; the transaction's now() when None."""
    return func.now() if at is None else type_coerce(literal(at), DateTime(timezone=True))


def windows_statement(
    tenant_id: uuid.UUID, user_id: uuid.UUID | None, at: datetime | None = None
) -> Select[*tuple[Any, ...]]:
    """One scan of the covering index: per window, the totals and the sums by model, by kind
    and (for a whole tenant, when `user_id` is None) by user, as grouping sets."""
    now = _moment(at)
    record = UsageRecord
    # The breakdowns, named as UsageWindow's fields; grouping(x) is 0 on the rows grouped by x.
    dimensions: dict[str, Any] = {"by_model": record.model, "by_kind": record.kind}
    if user_id is None:
        dimensions["by_user"] = record.user_id
    grouped_by = [func.grouping(column).label(name) for name, column in dimensions.items()]
    measures: list[ColumnElement[Any]] = []
    for hours in WINDOW_HOURS.values():
        inside = record.created_at > _ago(now, hours)
        spent = record.prompt_tokens + record.completion_tokens
        measures += [
            func.coalesce(func.sum(record.prompt_tokens).filter(inside), 0),
            func.coalesce(func.sum(record.completion_tokens).filter(inside), 0),
            func.count().filter(inside),
            func.coalesce(func.sum(spent).filter(inside, record.estimated), 0),
        ]
    widest = max(WINDOW_HOURS.values())
    query = (
        select(now.label("at"), *dimensions.values(), *grouped_by, *measures)
        .where(
            record.tenant_id == tenant_id,
            record.created_at > _ago(now, widest),
            record.created_at <= now,
        )
        .group_by(func.grouping_sets(tuple_(), *(tuple_(c) for c in dimensions.values())))
    )
    return query.where(record.user_id == user_id) if user_id is not None else query


_MEASURES = 4  # per window: prompt, completion, requests, estimated
_DIMENSION_OF = {"by_model": "model", "by_kind": "kind", "by_user": "user_id"}


def fold_windows(rows: Sequence[Row[Any]]) -> tuple[datetime, dict[str, UsageWindow]]:
    """The windows from `windows_statement`'s rows: the grand total row, then one row per
    model, per kind and per user, each carrying every window's sums."""
    at: datetime = rows[0].at  # the empty grouping set always yields its row
    windows = {name: UsageWindow(at - timedelta(hours=h)) for name, h in WINDOW_HOURS.items()}
    for row in rows:
        fields = row._mapping
        breakdown = next((name for name in _DIMENSION_OF if fields.get(name) == 0), None)
        measures = tuple(row)[-_MEASURES * len(windows) :]
        for n, window in enumerate(windows.values()):
            values = measures[_MEASURES * n : _MEASURES * (n + 1)]
            tally = Tally(*(int(value) for value in values))
            if breakdown is None:
                window.total = tally
            elif tally.requests:  # a group seen only in the wider window is not in this one
                getattr(window, breakdown)[fields[_DIMENSION_OF[breakdown]]] = tally
    return at, windows


def _user_ids(windows: Iterable[UsageWindow]) -> set[uuid.UUID]:
    return {user for window in windows for user in window.by_user if user is not None}


async def usage_report(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID | None,
    at: datetime | None = None,
) -> UsageReport:
    """The rolling windows ending at `at` (now by default) for one user, or for the whole
    tenant with a per-user breakdown when `user_id` is None."""
    rows = (await session.execute(windows_statement(tenant_id, user_id, at))).all()
    moment, windows = fold_windows(rows)
    users = _user_ids(windows.values())
    emails: dict[uuid.UUID, str] = {}
    if users:
        found = await session.execute(select(User.id, User.email).where(User.id.in_(users)))
        emails = {row.id: row.email for row in found}
    return UsageReport(moment, windows, emails)


def usage_report_of(
    session: Session, tenant_id: uuid.UUID, user_id: uuid.UUID | None
) -> UsageReport:
    """`usage_report`, for the admin commands' synchronous sessions."""
    rows = session.execute(windows_statement(tenant_id, user_id, None)).all()
    moment, windows = fold_windows(rows)
    users = _user_ids(windows.values())
    emails: dict[uuid.UUID, str] = {}
    if users:
        found = session.execute(select(User.id, User.email).where(User.id.in_(users)))
        emails = {row.id: row.email for row in found}
    return UsageReport(moment, windows, emails)


# ---- the monthly quota -----------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaState:
    monthly_tokens: int | None  # None: no quota
    used: int  # tokens counted since `period_start`
    period_start: datetime
    resets_at: datetime
    at: datetime

    @property
    def exceeded(self) -> bool:
        return self.monthly_tokens is not None and self.used >= self.monthly_tokens

    @property
    def remaining(self) -> int | None:
        return None if self.monthly_tokens is None else max(0, self.monthly_tokens - self.used)


def month_bounds(at: ColumnElement[datetime]) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """The UTC calendar month holding `at`: [midnight UTC on the 1st, the next 1st)."""
    start = func.date_trunc("month", func.timezone("UTC", at))
    following = start + literal_column("interval '1 month'")
    return func.timezone("UTC", start), func.timezone("UTC", following)


def quota_statement(tenant_id: uuid.UUID, at: datetime | None = None) -> Select[*tuple[Any, ...]]:
    """The tenant's quota, its tokens this month (one row of `usage_months`), the month's
    bounds, and the moment it was read."""
    now = _moment(at)
    start, end = month_bounds(now)
    month = cast(func.date_trunc("month", func.timezone("UTC", now)), Date)
    used = (
        select(UsageMonth.tokens)
        .where(UsageMonth.tenant_id == tenant_id, UsageMonth.month == month)
        .scalar_subquery()
    )
    return select(
        Tenant.monthly_token_quota, func.coalesce(used, 0), start, end, now.label("at")
    ).where(Tenant.id == tenant_id)


def quota_state_of(row: Row[Any]) -> QuotaState:
    quota, used, start, end, at = tuple(row)
    return QuotaState(quota, int(used), start, end, at)


async def quota_state(session: AsyncSession, tenant_id: uuid.UUID) -> QuotaState:
    row = (await session.execute(quota_statement(tenant_id))).one()
    return quota_state_of(row)


def set_quota(session: Session, tenant: Tenant, monthly_tokens: int | None) -> QuotaState:
    """Set (or, with None, remove) the tenant's monthly token quota; the state it leaves."""
    tenant.monthly_token_quota = monthly_tokens
    session.flush()
    return quota_state_of(session.execute(quota_statement(tenant.id)).one())
