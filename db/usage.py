"""Usage records: the tokens each metered model call spent, written at most once per job and
kind."""

from __future__ import annotations

import uuid

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import UsageRecord


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
        )
        .on_conflict_do_nothing(index_elements=[UsageRecord.job_id, UsageRecord.kind])
        .returning(UsageRecord.id)
    ).first()
    return inserted is not None
