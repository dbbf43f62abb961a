"""Answering one chat job (the worker's side of a question): retrieve, build the prompt,
stream the provider's text into the job's event stream, then save the answer and its usage in
one transaction.

The answer's own failures (the provider refused, timed out, broke off, the prompt does not
fit the model, the model said nothing) end its stream with an `Error` event whose code says
which, and fail the job without a retry; what escapes from here is the infrastructure's, for
workers/outcomes.py to retry."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import msgspec

from db.chat import JOB_STATUS, ChatTask, FinishedAnswer, load_chat_task, save_answer
from db.engine import unit_of_work
from db.jobs import claim_job, finish_job
from db.models import Job
from db.search import term_counts
from pipeline.chunking import count_tokens
from pipeline.errors import (
    ContextOverflow,
    PipelineError,
    ProviderRejected,
    ProviderUnavailable,
)
from pipeline.generation import Finished
from pipeline.lexicon import TermCounts
from pipeline.prompting import Prompt, Source, Turn, build_prompt
from pipeline.retrieval import embed_question
from transport import events
from transport import fleet_metrics as metrics
from transport.events import EventWriter
from usecases.ports import WorkerParts
from usecases.retrieval import search_chunks
from usecases.streaming import Relayed, relay_generation

log = logging.getLogger("docuchat.usecases")

RESTART_REASON = "the answer was interrupted (its worker or the queue failed) and starts again"
EMPTY_ANSWER = (
    "the model finished without a word (finish reason: {reason}), so there is no answer; "
    "ask again, perhaps in other words, or choose another model"
)


def answer(
    resources: WorkerParts,
    writer: EventWriter,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    worker: str | None = None,
) -> None:
    with unit_of_work(resources.engine, tenant_id) as session:
        claimed = claim_job(session, job_id, worker)
        if claimed is None:
            return  # cancelled before it started, or a duplicate delivery of finished work
        job = claimed.job
        task = load_chat_task(session, job)
        if task is None:
            finish_job(session, job_id, "cancelled", error="the session was deleted")
            return
    if claimed.earlier_attempt:
        # Whatever an earlier attempt streamed is a half answer that will never finish, and
        # the stream may even be gone (Redis lost it): clients drop what they have shown.
        writer.emit(events.Restart(RESTART_REASON))
    prompt, overflow = _prompt(resources, tenant_id, job, task)
    citations = [_citation(source) for source in prompt.sources]
    writer.emit(events.Citations(citations))
    # With no sources there is nothing to send a model: the extractive answerer says so.
    provider = resources.chat_provider if prompt.sources else resources.extractive
    model = provider.model_for(task.model)
    generation = _raising(overflow) if overflow else provider.stream(prompt, model)
    relayed = relay_generation(generation, writer)
    answer = _finished_answer(prompt, model, citations, relayed)
    with unit_of_work(resources.engine, tenant_id) as session:
        saved = save_answer(session, tenant_id, job, answer)
    if not saved:  # the session was deleted meanwhile: its stream goes with it
        writer.discard()
        return
    spent = (answer.prompt_tokens, answer.completion_tokens)
    metrics.record_job(resources.redis, "chat", JOB_STATUS[answer.status])
    first = relayed.first_piece_at
    metrics.record_answer(
        resources.redis,
        first - job.created_at.timestamp() if first is not None else None,
        answer.completion_tokens,
    )
    if answer.status == "failed":
        log.warning("chat job %s failed: %s", job_id, answer.error, exc_info=relayed.error)
        message = answer.error or ""
        code = _code(relayed.error) if relayed.error else "empty_answer"
        writer.emit(events.Error(code, message, events.Usage.of(*spent)))
        return
    finished = relayed.finished
    reason = finished.finish_reason if finished and answer.status == "complete" else "cancelled"
    writer.emit(events.End(reason, events.Usage.of(*spent)))


def _raising(error: PipelineError) -> Iterator[str | Finished]:
    raise error
    yield  # a generator that fails as a provider's stream would


def _prompt(
    resources: WorkerParts, tenant_id: uuid.UUID, job: Job, task: ChatTask
) -> tuple[Prompt, ContextOverflow | None]:
    """Retrieve the question's sources (its embedding is counted with the search), with how
    many of the tenant's chunks hold each of its words, and fit them to the model's window; a
    question that cannot fit comes back as the error."""
    query = embed_question(task.question, resources.embedder)
    with unit_of_work(resources.engine, tenant_id) as session:
        hits = search_chunks(
            session,
            tenant_id,
            job.user_id,
            query,
            resources.settings.top_k,
            task.document_ids or None,
            job_id=job.id,
        )
        counts = term_counts(session, tenant_id, query.text) if hits else TermCounts()
    sources = [
        Source(
            n, h.chunk_id, h.document_id, h.filename, h.page_start, h.page_end, h.text, h.section
        )
        for n, h in enumerate(hits, start=1)
    ]
    history = [Turn(role, content) for role, content in task.history]
    settings = resources.settings
    window = settings.model_context_tokens if settings.chat_provider_name == "openai" else None
    try:
        prompt = build_prompt(
            task.question,
            sources,
            history,
            settings.max_context_tokens,
            window,
            settings.max_answer_tokens,
        )
    except ContextOverflow as exc:
        return build_prompt(task.question, [], [], settings.max_context_tokens), exc
    return replace(prompt, term_counts=counts), None


def _citation(source: Source) -> events.Citation:
    return events.Citation(
        n=source.n,
        document_id=str(source.document_id),
        filename=source.filename,
        page_start=source.page_start,
        page_end=source.page_end,
        chunk_id=str(source.chunk_id),
        section=source.section,
    )


def _finished_answer(
    prompt: Prompt, model: str, cited: list[events.Citation], relayed: Relayed
) -> FinishedAnswer:
    citations: list[dict[str, Any]] = msgspec.to_builtins(cited)
    if relayed.finished is not None and not relayed.cancelled:
        usage = relayed.finished.usage
        counted = (usage.prompt_tokens, usage.completion_tokens)
        if not relayed.text.strip():
            error = EMPTY_ANSWER.format(reason=relayed.finished.finish_reason)
            return FinishedAnswer(
                relayed.text, "failed", citations, model, *counted, error, usage.estimated
            )
        return FinishedAnswer(
            relayed.text, "complete", citations, model, *counted, estimated=usage.estimated
        )
    # Stopped early: the provider reported nothing, so tiktoken counts what was spent.
    spent = count_tokens(relayed.text)
    prompt_tokens = prompt.tokens if spent or relayed.cancelled else 0
    if relayed.cancelled:
        return FinishedAnswer(
            relayed.text, "cancelled", citations, model, prompt_tokens, spent, estimated=True
        )
    error = _sentence(relayed.error) if relayed.error else "the provider stopped without finishing"
    return FinishedAnswer(
        relayed.text, "failed", citations, model, prompt_tokens, spent, error, estimated=True
    )


def _code(exc: BaseException | None) -> str:
    """The `code` of the `Error` event that ends a failed answer."""
    if isinstance(exc, ContextOverflow):
        return "context_overflow"
    if isinstance(exc, ProviderUnavailable):
        return "provider_unavailable"
    if isinstance(exc, ProviderRejected):
        return "provider_rejected"
    return "internal_error"


def _sentence(exc: BaseException) -> str:
    """A sentence for the failed answer; details stay in the worker's log."""
    return (
        str(exc) if isinstance(exc, PipelineError) else "an internal error (logged on the worker)"
    )
