"""Answer generation behind one small interface, and the OpenAI-compatible provider.

A provider's `stream` yields the answer's text as it is produced, then exactly one `Finished`
with the finish reason and the token usage. Closing the iterator early stops the generation.

- `openai`: any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp server)
  through the official client. The provider's reported usage is the truth; tiktoken counts
  stand in when a server reports none, marked as estimated. A failed attempt is retried only
  while no text has been produced: once a reader has seen words, a second answer cannot
  replace them. A prompt too large for the model's context (an error saying so, or an empty
  stream, as llama.cpp sends) is `ContextOverflow`, never retried.
- `extractive` (pipeline/extractive.py): the embedded default, no model at all.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import httpx
import openai

from pipeline.chunking import count_tokens
from pipeline.embedding import provider_message
from pipeline.errors import ContextOverflow, ProviderRejected, ProviderUnavailable
from pipeline.prompting import Prompt


@dataclass(frozen=True)
class TokenUsage:
    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False  # counted with tiktoken: the provider reported nothing

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Finished:
    finish_reason: str  # stop | length | content_filter | ...
    usage: TokenUsage


class ChatProvider(Protocol):
    def model_for(self, requested: str) -> str:
        """The model that will really answer a request naming `requested`."""
        ...

    def stream(self, prompt: Prompt, model: str) -> Iterator[str | Finished]: ...


class OpenAIChatProvider:
    """Streams chat completions from any OpenAI-compatible endpoint."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
        max_retries: int,
        max_tokens: int,
        retry_pause: float = 0.5,
    ) -> None:
        # The client's own retries are off: ours must know whether text was already produced.
        self._client = openai.OpenAI(
            api_key=api_key or "not-needed",
            base_url=base_url,
            timeout=timeout,
            max_retries=0,
        )
        self._timeout = timeout
        self._max_retries = max_retries
        self._max_tokens = max_tokens
        self._retry_pause = retry_pause

    def model_for(self, requested: str) -> str:
        return requested

    def stream(self, prompt: Prompt, model: str) -> Iterator[str | Finished]:
        attempt = 0
        while True:
            produced: list[str] = []
            try:
                yield from self._attempt(prompt, model, produced)
                return
            except ProviderUnavailable:
                if produced or attempt >= self._max_retries:
                    raise
            attempt += 1
            time.sleep(min(8.0, self._retry_pause * 2 ** (attempt - 1)))

    def _attempt(self, prompt: Prompt, model: str, produced: list[str]) -> Iterator[str | Finished]:
        usage: TokenUsage | None = None
        finish_reason: str | None = None
        try:
            stream = self._client.chat.completions.create(  # type: ignore[call-overload]
                model=model,
                messages=prompt.messages,
                stream=True,
                stream_options={"include_usage": True},
                max_tokens=self._max_tokens,
            )
            with stream:
                for chunk in stream:
                    if chunk.usage is not None:
                        usage = TokenUsage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    for choice in chunk.choices:
                        piece = choice.delta.content if choice.delta else None
                        if piece:
                            produced.append(piece)
                            yield piece
                        if choice.finish_reason:
                            finish_reason = choice.finish_reason
        except openai.APIStatusError as exc:
            raise _status_error(exc, prompt) from None
        except (openai.APITimeoutError, httpx.TimeoutException):
            silence = f"nothing arrived for {self._timeout:g} s"
            raise ProviderUnavailable(
                _broke_off(produced, silence)
                or f"the language model did not answer within {self._timeout:g} s"
            ) from None
        except (openai.APIError, httpx.HTTPError) as exc:
            raise ProviderUnavailable(
                _broke_off(produced, "the connection was lost")
                or f"the language model provider is unreachable: {exc}"
            ) from None
        if finish_reason is None and not produced:  # a clean, empty body: no room to answer
            raise ContextOverflow(_overflow(prompt, "it answered with an empty stream"))
        if finish_reason is None:  # the body ended cleanly but the answer did not
            raise ProviderUnavailable(
                _broke_off(produced, "it ended without finishing")
                or "the language model's stream ended without an answer"
            )
        if usage is None:  # a server that reports no usage: count it ourselves
            usage = TokenUsage(prompt.tokens, count_tokens("".join(produced)), estimated=True)
        yield Finished(finish_reason, usage)


def _broke_off(produced: list[str], cause: str) -> str | None:
    if not produced:
        return None
    return (
        f"the language model's answer broke off after {len(produced)} pieces "
        f"({cause}); the partial answer is kept"
    )


# What servers say when a prompt is over the context: OpenAI's code, llama.cpp's, vLLM's words.
_OVERFLOW = re.compile(
    r"context_length_exceeded|exceed_context_size|context (length|size|window)|maximum context"
    r"|too many tokens|prompt is too long|exceeds the available context",
    re.IGNORECASE,
)


def _overflow(prompt: Prompt, said: str) -> str:
    return (
        f"the prompt ({prompt.tokens} tokens by tiktoken's count) does not fit the model's "
        f"context window ({said}): set MODEL_CONTEXT_TOKENS to the context size the model "
        "really has (a llama.cpp server's --ctx-size), or lower MAX_CONTEXT_TOKENS"
    )


def _status_error(
    exc: openai.APIStatusError, prompt: Prompt
) -> ProviderUnavailable | ProviderRejected:
    said = provider_message(exc)
    if exc.status_code in (400, 413, 422) and (
        _OVERFLOW.search(said) or _OVERFLOW.search(str(exc.body))
    ):
        return ContextOverflow(_overflow(prompt, f"HTTP {exc.status_code}: {said}"))
    if exc.status_code == 429 or exc.status_code >= 500:
        return ProviderUnavailable(
            f"the language model provider is busy or failing (HTTP {exc.status_code})"
        )
    return ProviderRejected(
        f"the language model provider refused the request (HTTP {exc.status_code}): "
        f"{provider_message(exc)}"
    )
