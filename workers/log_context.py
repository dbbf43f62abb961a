"""While a worker thread works on a message, its log lines carry the job's and tenant's ids
(every actor's arguments begin with job id, tenant id)."""

from __future__ import annotations

from contextvars import Token
from typing import Any

import dramatiq
from dramatiq import Broker
from dramatiq.broker import MessageProxy

from core import logs


class JobLogContext(dramatiq.Middleware):
    def __init__(self) -> None:
        self._tokens: dict[str, tuple[Token[str | None], Token[str | None]]] = {}

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        job, tenant = [*message.args, None, None][:2]
        self._tokens[message.message_id] = (
            logs.job_id.set(str(job) if job else None),
            logs.tenant_id.set(str(tenant) if tenant else None),
        )

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self._clear(message)

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        self._clear(message)

    def _clear(self, message: MessageProxy) -> None:
        tokens = self._tokens.pop(message.message_id, None)
        if tokens is not None:
            logs.job_id.reset(tokens[0])
            logs.tenant_id.reset(tokens[1])
