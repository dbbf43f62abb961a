"""Usage records: the tokens each job spent, written at most once per job."""

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
    job_id: uuid.UUID,
    kind: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int = 0,
) -> bool:
    """Count a job's tokens; False (and nothing written) when the job was counted already."""
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
        .on_conflict_do_nothing(index_elements=[UsageRecord.job_id])
        .returning(UsageRecord.id)
    ).first()
    return inserted is not None
