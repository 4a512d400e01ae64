"""Continuous batching for the in-process chat model: many requests, one llama.cpp decode.

llama.cpp decodes several independent sequences in one call: each token in a
batch names its sequence and position, each sequence has its own range of the
KV cache, and the logits of every sequence's last token come back together.
:class:`SequenceBatcher` keeps up to ``slots`` requests in flight on one
context, on one thread: each step it feeds every active request its next token
(or a chunk of its prompt, up to ``n_batch`` tokens a step in all), decodes
once, and samples each request's next token with the request's own sampler
chain (penalties, its grammar when ``response_format`` asks for JSON, top-p,
temperature, its seed). A request arriving while others generate joins at the
next step, so concurrent requests share model runs instead of queueing behind
each other; a request alone runs exactly as a batch of one.

A request's text does not depend on what it was batched with under greedy
decoding (tested); with sampling, each request draws from its own seeded
sampler.
"""

from __future__ import annotations

import codecs
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from gatehouse.core.types import FinishReason
from gatehouse.providers.local.grammar import Grammar
from gatehouse.providers.local.stops import StopMatcher

log = logging.getLogger("gatehouse.local.chat")

PENALTY_LAST_N = 64


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request turned into what generation needs."""

    prompt_tokens: list[int]
    max_tokens: int
    stops: list[str]
    temperature: float
    top_p: float
    seed: int
    frequency_penalty: float
    presence_penalty: float
    grammar: Grammar | None = None  # constrains the text (``response_format``)


@dataclass(slots=True)
class Outcome:
    completion_tokens: int = 0
    finish_reason: FinishReason = "length"
    stop_sequence: str | None = None  # the stop text that ended it, if one did


@dataclass(slots=True)
class _Sequence:
    """One request in flight: its slot in the context and its generation state."""

    prepared: Prepared
    emit: Callable[[str], None]
    cancel: threading.Event
    done: Future[Outcome] = field(default_factory=Future)
    seq_id: int = -1
    sampler: Any = None  # built on the generation thread when the sequence starts
    feed: list[int] = field(default_factory=list)  # tokens still to decode
    position: int = 0
    logits_at: int | None = None  # this step's batch index of its logits
    outcome: Outcome = field(default_factory=Outcome)
    matcher: StopMatcher = field(init=False)
    decoder: codecs.IncrementalDecoder = field(init=False)

    def __post_init__(self) -> None:
        self.feed = list(self.prepared.prompt_tokens)
        self.matcher = StopMatcher(self.prepared.stops)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")


class SequenceBatcher:
    """Generates for up to ``slots`` requests at once on one llama.cpp context.

    ``llama`` (a ``llama_cpp.Llama``) tokenises and detokenises; ``weights`` (a
    llama.cpp model object: :func:`gatehouse.providers.local.weights.generation_weights`)
    is what the context runs.
    """

    def __init__(
        self,
        llama: Any,
        weights: Any,
        *,
        slots: int,
        context_window: int,
        threads: int,
        eog: frozenset[int],
        n_batch: int = 512,
    ) -> None:
        import llama_cpp
        from llama_cpp import _internals

        self._llama = llama
        self._llama_cpp: Any = llama_cpp
        self._internals: Any = _internals  # untyped bindings
        self._eog = eog
        self._n_batch = n_batch
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = context_window * slots  # each sequence gets a full window
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = slots
        params.n_threads = threads
        params.n_threads_batch = threads
        params.kv_unified = False
        self._weights = weights  # outlives the context built on it
        self._ctx = _internals.LlamaContext(model=weights, params=params, verbose=False)
        self._memory = llama_cpp.llama_get_memory(self._ctx.ctx)
        self._batch = _internals.LlamaBatch(
            n_tokens=n_batch, embd=0, n_seq_max=slots, verbose=False
        )
        self._free = list(range(slots))
        self._waiting: deque[_Sequence] = deque()
        self._active: list[_Sequence] = []
        self._wake = threading.Condition()
        self._closed = False
        self.largest_batch = 0  # most sequences decoded in one step (observability, tests)
        self._thread = threading.Thread(target=self._run, name="gatehouse-llama", daemon=True)
        self._thread.start()

    def submit(
        self, prepared: Prepared, emit: Callable[[str], None], cancel: threading.Event
    ) -> Future[Outcome]:
        """Queue one request; ``emit`` receives its text as it is generated (on the
        generation thread), and the future its outcome. Setting ``cancel`` ends
        it at the next step."""
        sequence = _Sequence(prepared, emit, cancel)
        with self._wake:
            if self._closed:
                raise RuntimeError("the local chat model is shutting down")
            self._waiting.append(sequence)
            self._wake.notify()
        return sequence.done

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=30)

    # -- the generation thread --

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not self._waiting and not self._active:
                    self._wake.wait()
                if self._closed:
                    error = RuntimeError("the local chat model is shutting down")
                    for sequence in [*self._waiting, *self._active]:
                        _settle(sequence.done, error=error)
                    return
                while self._waiting and self._free:
                    self._start(self._waiting.popleft())
            try:
                self._step()
            except Exception as exc:
                log.exception("local generation failed for %d request(s)", len(self._active))
                for sequence in list(self._active):
                    self._finish(sequence, error=exc)

    def _start(self, sequence: _Sequence) -> None:
        prepared = sequence.prepared
        # The lowest free id: llama.cpp's attention spans the streams from the
        # lowest to the highest id in a step, so low, dense ids keep it small.
        sequence.seq_id = min(self._free)
        self._free.remove(sequence.seq_id)
        # A fresh KV range: reusing a previous prompt's cache changes
        # floating-point results, and with them seeded sampling.
        self._llama_cpp.llama_memory_seq_rm(self._memory, sequence.seq_id, -1, -1)
        sampler = self._internals.LlamaSampler()
        sampler.add_penalties(
            n_vocab=self._llama.n_vocab(),
            penalty_last_n=PENALTY_LAST_N,
            penalty_repeat=1.0,
            penalty_freq=prepared.frequency_penalty,
            penalty_present=prepared.presence_penalty,
        )
        if prepared.grammar is not None:
            # Before truncation and temperature, as llama-cpp-python orders its
            # chain: top-p then only ever keeps tokens the grammar allows.
            self._llama_cpp.llama_sampler_chain_add(sampler.sampler, prepared.grammar.sampler())
        if prepared.temperature == 0.0:
            sampler.add_greedy()
        else:
            sampler.add_top_p(prepared.top_p, 1)
            sampler.add_temp(prepared.temperature)
            sampler.add_dist(prepared.seed)
        sequence.sampler = sampler
        self._active.append(sequence)

    def _step(self) -> None:
        batch = self._batch.batch
        batch.n_tokens = 0
        room = self._n_batch
        for sequence in list(self._active):
            if sequence.cancel.is_set():
                self._finish(sequence)
                continue
            take = sequence.feed[:room]
            if not take:
                continue
            for offset, token in enumerate(take):
                j = batch.n_tokens
                batch.token[j] = token
                batch.pos[j] = sequence.position + offset
                batch.seq_id[j][0] = sequence.seq_id
                batch.n_seq_id[j] = 1
                batch.logits[j] = False
                batch.n_tokens += 1
            sequence.position += len(take)
            del sequence.feed[: len(take)]
            room -= len(take)
            # Logits only where the sequence's whole input so far has been fed.
            sequence.logits_at = None if sequence.feed else batch.n_tokens - 1
            if sequence.logits_at is not None:
                batch.logits[sequence.logits_at] = True
        if batch.n_tokens == 0:
            return
        self.largest_batch = max(
            self.largest_batch, sum(1 for s in self._active if s.logits_at is not None)
        )
        self._ctx.decode(self._batch)
        for sequence in list(self._active):
            if sequence.logits_at is not None:
                token = sequence.sampler.sample(self._ctx, sequence.logits_at)
                sequence.logits_at = None
                self._advance(sequence, token)

    def _advance(self, sequence: _Sequence, token: int) -> None:
        outcome, matcher = sequence.outcome, sequence.matcher
        if token in self._eog:
            outcome.finish_reason = "stop"
            self._finish(sequence)
            return
        outcome.completion_tokens += 1
        text = sequence.decoder.decode(self._llama.detokenize([token]))
        released = matcher.feed(text) if text else ""
        if released:
            sequence.emit(released)
        if matcher.stopped:
            outcome.finish_reason = "stop"
            outcome.stop_sequence = matcher.matched
            self._finish(sequence)
            return
        if outcome.completion_tokens >= sequence.prepared.max_tokens:
            self._finish(sequence)
            return
        sequence.feed.append(token)

    def _finish(self, sequence: _Sequence, *, error: BaseException | None = None) -> None:
        if sequence in self._active:
            self._active.remove(sequence)
        self._free.append(sequence.seq_id)
        if sequence.sampler is not None:
            sequence.sampler.close()
            sequence.sampler = None
        if error is None and not sequence.cancel.is_set():
            matcher = sequence.matcher
            if not matcher.stopped:
                tail = matcher.feed(sequence.decoder.decode(b"", final=True)) + matcher.flush()
                if tail:
                    sequence.emit(tail)
        _settle(sequence.done, sequence.outcome, error=error)


def _settle(
    done: Future[Outcome], outcome: Outcome | None = None, *, error: BaseException | None = None
) -> None:
    if done.done():
        return
    if error is not None:
        done.set_exception(error)
    else:
        assert outcome is not None
        done.set_result(outcome)
