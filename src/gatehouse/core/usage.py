"""Billable usage: the one convention every provider's token counts are brought to.

gatehouse's canonical usage is OpenAI's (:class:`gatehouse.core.types.Usage`):

- ``prompt_tokens`` counts every input token, including those read from the
  provider's prompt cache (``prompt_tokens_details.cached_tokens``) and those
  written to it (``prompt_tokens_details.cache_write_tokens``);
- ``completion_tokens`` counts every output token, including the model's
  reasoning (``completion_tokens_details.reasoning_tokens``).

So the five billed buckets are disjoint parts of those two totals (see
:class:`TokenCounts`): uncached input, cache read, cache write, visible output
and reasoning. Providers count differently, and each adapter's translation
calls :func:`billed_usage` with what its upstream reports:

- OpenAI: taken as is (``prompt_tokens`` include ``cached_tokens`` and
  ``cache_write_tokens``; ``completion_tokens`` include ``reasoning_tokens``).
- Anthropic: input is ``input_tokens`` + ``cache_read_input_tokens`` +
  ``cache_creation_input_tokens`` (``input_tokens`` excludes both); output is
  ``output_tokens``, which include thinking without reporting it apart, so no
  reasoning bucket is known and none is priced apart.
- Gemini: input is ``promptTokenCount`` (which includes
  ``cachedContentTokenCount``, the cache read) + ``toolUsePromptTokenCount``;
  output is ``candidatesTokenCount`` + ``thoughtsTokenCount`` (thoughts are
  counted on top of the candidates), reasoning the thoughts.
- The local model: the prompt's and the generated tokens; no prompt cache is
  billed and it does not reason apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from gatehouse.core.types import CompletionTokensDetails, PromptTokensDetails, Usage


def billed_usage(
    *,
    input: int,
    output: int,
    cache_read: int | None = None,
    cache_write: int | None = None,
    reasoning: int | None = None,
) -> Usage:
    """The canonical usage of a call: ``input`` and ``output`` are totals that
    include ``cache_read`` + ``cache_write`` and ``reasoning`` respectively.
    A bucket the upstream does not report is ``None`` and left out of the details."""
    prompt_details = None
    if cache_read is not None or cache_write is not None:
        prompt_details = PromptTokensDetails(
            cached_tokens=cache_read, cache_write_tokens=cache_write
        )
    completion_details = None
    if reasoning is not None:
        completion_details = CompletionTokensDetails(reasoning_tokens=reasoning)
    return Usage(
        prompt_tokens=input,
        completion_tokens=output,
        total_tokens=input + output,
        prompt_tokens_details=prompt_details,
        completion_tokens_details=completion_details,
    )


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """A call's tokens as billed: ``prompt`` and ``completion`` are the totals,
    ``cached`` (cache read) and ``cache_write`` parts of ``prompt``, ``reasoning``
    part of ``completion``. ``queries`` counts rerank searches (Cohere's
    ``search_units``), billed apart from tokens."""

    prompt: int
    completion: int
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0
    queries: int = 0

    @property
    def uncached_input(self) -> int:
        """Input tokens neither read from nor written to a prompt cache."""
        return max(0, self.prompt - self.cached - self.cache_write)

    @property
    def visible_output(self) -> int:
        """Output tokens that are not reasoning."""
        return max(0, self.completion - self.reasoning)

    @classmethod
    def of(cls, usage: Usage) -> TokenCounts:
        """The buckets of a canonical usage."""
        cached = cache_write = reasoning = 0
        prompt_details = usage.prompt_tokens_details
        if prompt_details is not None:
            cached = prompt_details.cached_tokens or 0
            cache_write = prompt_details.cache_write_tokens or 0
        completion_details = usage.completion_tokens_details
        if completion_details is not None:
            reasoning = completion_details.reasoning_tokens or 0
        # An extra field: read pydantic's extras directly, since a missing
        # attribute costs a slow ``__getattr__`` on every request.
        extra = usage.__pydantic_extra__
        searches = None if extra is None else extra.get("search_units")
        return cls(
            prompt=usage.prompt_tokens,
            completion=usage.completion_tokens,
            cached=cached,
            cache_write=cache_write,
            reasoning=reasoning,
            queries=searches if isinstance(searches, int) else 0,
        )
