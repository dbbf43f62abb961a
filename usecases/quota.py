"""The monthly token quota: every route that spends tokens asks before it accepts work."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import QuotaExceeded
from db.usage import quota_state
from usecases.ports import Who


async def require_quota(session: AsyncSession, who: Who) -> None:
    """Refuse work that spends tokens once the tenant has used its monthly quota."""
    state = await quota_state(session, who.tenant_id)
    if state.exceeded and state.monthly_tokens is not None:
        raise QuotaExceeded(
            who.tenant_slug, state.used, state.monthly_tokens, state.resets_at, state.at
        )
