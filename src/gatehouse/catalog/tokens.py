"""How many tokens a request's prompt takes.

:func:`prompt_tokens` answers before any tokenizer has seen the request, in
one of two ways:

- the estimate (4 characters a token, 4 tokens of framing a message): cheap
  and close for English prose. Token-per-minute limits, soft budgets and the
  router's context-window check use it; they settle with the real count or
  only steer.
- the bound (``bound=True``): never below what any upstream will count, so a
  hard budget that reserves it cannot be overspent. No tokenizer emits more
  tokens than its text has UTF-8 bytes: byte-level BPE (GPT, Llama 3, Qwen)
  and SentencePiece with byte fallback (Llama 2, Gemma, Mistral) spend at
  least one byte a token, and the worst case is a token per byte. To the bytes
  of every message (text, name, tool calls) it adds what a chat template puts
  around each message and in front of the prompt, the tool schemas and the
  instructions providers add with them, and an allowance per image.

:func:`tiktoken_tokens` counts with the OpenAI model's own encoding
(``tiktoken``), for the token-counting routes. Its BPE ranks come from a
package on disk, never the network: tiktoken would download them on first
use, so :func:`openai_encoding` builds the encoding from the copies that the
``quicktok-v1`` package ships, and checks them against the SHA-256 that
tiktoken itself checks its downloads against before using them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.util
import json
import logging
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gatehouse.core.rerank import RerankRequest
from gatehouse.core.types import ChatCompletionRequest, EmbeddingRequest, ImagePart

if TYPE_CHECKING:
    import tiktoken

log = logging.getLogger("gatehouse.tokens")

# How a token count was made, named in the counting routes' answers: the
# model's own tokenizer (the local model), OpenAI's encoding, the upstream's
# own count endpoint, or the estimate of :func:`prompt_tokens`.
CountMethod = Literal["tokenizer", "tiktoken", "provider", "estimate"]

# Role markers, separators and the end-of-turn token around one message: OpenAI
# counts 3-4, Llama 3 and ChatML templates 5.
MESSAGE_OVERHEAD = 8
# Beginning-of-text, the system prompt some templates add when the caller gives
# none (Llama 3.1's dates, Qwen's "You are Qwen", gpt-oss's channels: 20 to 70
# tokens), and the header that opens the reply.
PROMPT_OVERHEAD = 128
# The instructions a provider puts in front of tool definitions (Anthropic
# documents about 350 tokens) and the framing of each definition.
TOOLS_OVERHEAD = 512
TOOL_OVERHEAD = 16
# An image costs what the provider says, not its bytes: OpenAI at most 1,445
# (gpt-4o, high detail), Anthropic about 1,600, Gemini 258 a 768-pixel tile.
IMAGE_TOKENS = 4096
# The special tokens an embedding model adds to each input ([CLS] and [SEP]).
INPUT_OVERHEAD = 2


def prompt_tokens(
    request: ChatCompletionRequest | EmbeddingRequest | RerankRequest, *, bound: bool = False
) -> int:
    """The prompt tokens of ``request``: an estimate, or with ``bound`` an upper bound."""
    if isinstance(request, EmbeddingRequest):
        return _input_tokens(request, bound)
    if isinstance(request, RerankRequest):
        # A reranker reads the query beside each document.
        texts = [request.query + text for text in request.texts()]
        if bound:
            return sum(_bytes(t) + INPUT_OVERHEAD for t in texts)
        return sum(len(t) for t in texts) // 4 + 1
    if not bound:
        return sum(len(m.text()) for m in request.messages) // 4 + 4 * len(request.messages)
    total = PROMPT_OVERHEAD
    for message in request.messages:
        total += MESSAGE_OVERHEAD + _bytes(message.text())
        if message.name:
            total += _bytes(message.name)
        if message.tool_call_id:
            total += _bytes(message.tool_call_id)
        if message.tool_calls:
            total += _json_bytes(message.tool_calls)
        if isinstance(message.content, list):
            total += IMAGE_TOKENS * sum(isinstance(p, ImagePart) for p in message.content)
    if request.tools:
        # Rendered indented, as some templates do (Llama 3.1: four spaces): the
        # longest rendering is the safe one to count.
        total += TOOLS_OVERHEAD + TOOL_OVERHEAD * len(request.tools)
        total += _json_bytes(request.tools)
    if isinstance(request.tool_choice, dict):
        total += _json_bytes(request.tool_choice)
    if request.response_format:
        # A JSON schema reaches the model as text (OpenAI's structured outputs,
        # Anthropic's forced tool).
        total += _json_bytes(request.response_format)
    return total


def _input_tokens(request: EmbeddingRequest, bound: bool) -> int:
    ids = 0  # token-id inputs are already counted
    if isinstance(request.input, list):
        for item in request.input:
            if isinstance(item, int):
                ids += 1
            elif isinstance(item, list):
                ids += len(item)
    texts = request.texts()
    if not texts:
        return ids
    if bound:
        return ids + sum(_bytes(t) + INPUT_OVERHEAD for t in texts)
    return ids + sum(len(t) for t in texts) // 4 + 1


def _bytes(text: str) -> int:
    if text.isascii():
        return len(text)
    # surrogatepass: a lone surrogate from JSON still counts (3 bytes) instead of raising.
    return len(text.encode("utf-8", "surrogatepass"))


def _json_bytes(value: Any) -> int:
    # ASCII escapes (6 bytes for any non-ASCII character) are never shorter than UTF-8.
    return len(json.dumps(value, indent=4))


# -- OpenAI's encodings, offline ------------------------------------------------

# OpenAI's framing of chat messages (the "How to count tokens with tiktoken"
# cookbook, for every chat model since gpt-3.5-turbo-0613): 3 tokens open
# each message, a name costs 1 more, and 3 prime the reply.
TIKTOKEN_PER_MESSAGE = 3
TIKTOKEN_PER_NAME = 1
TIKTOKEN_REPLY = 3
# An image, counted as OpenAI bills a 1024x1024 high-detail one (85 + 4 tiles
# of 170): the count cannot see the image's size. An estimate, and said so in docs.
TIKTOKEN_IMAGE = 765


@functools.cache
def openai_encoding(model: str) -> tiktoken.Encoding | None:
    """tiktoken's encoding for the OpenAI model ``model``, or ``None`` when ``model``
    is not one tiktoken knows, or its encoding is not shipped (then: estimate)."""
    try:
        from tiktoken.model import encoding_name_for_model
    except ImportError:  # pragma: no cover - tiktoken is a dependency
        return None
    try:
        name = encoding_name_for_model(model)
    except KeyError:
        return None
    return _encoding(name)


def tiktoken_tokens(request: ChatCompletionRequest, encoding: tiktoken.Encoding) -> int:
    """The prompt tokens of ``request`` in ``encoding``, framed as OpenAI frames chat.

    Exact for text messages; tool definitions and tool calls are counted as
    the tokens of their JSON (OpenAI renders them in a form it does not
    publish), images as :data:`TIKTOKEN_IMAGE` each.
    """

    def count(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    total = TIKTOKEN_REPLY
    for message in request.messages:
        total += TIKTOKEN_PER_MESSAGE + count(message.role) + count(message.text())
        if message.name:
            total += TIKTOKEN_PER_NAME + count(message.name)
        if message.tool_calls:
            total += count(json.dumps(message.tool_calls))
        if message.tool_call_id:
            total += count(message.tool_call_id)
        if isinstance(message.content, list):
            total += TIKTOKEN_IMAGE * sum(isinstance(p, ImagePart) for p in message.content)
    if request.tools:
        total += count(json.dumps(request.tools))
    if request.response_format:
        total += count(json.dumps(request.response_format))
    return total


# Each encoding tiktoken names, as the quicktok-v1 package ships its ranks
# (quicktok/data/<file>.vocab), with the SHA-256 of OpenAI's published
# ``<name>.tiktoken`` file (the hash tiktoken checks its own downloads
# against, in tiktoken_ext/openai_public.py). Its pattern and special tokens
# are tiktoken's own, copied (tests/unit/test_token_counting.py compares them).
_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
    r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_SHIPPED: dict[str, tuple[str, str, str, dict[str, int]]] = {
    "o200k_base": (
        "o200k",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PATTERN,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": (
        "cl100k",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        _CL100K_PATTERN,
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
}


@functools.cache
def _encoding(name: str) -> tiktoken.Encoding | None:
    shipped = _SHIPPED.get(name)
    if shipped is None:
        return None
    file, sha256, pattern, specials = shipped
    ranks = shipped_ranks(file, sha256)
    if ranks is None:
        return None
    import tiktoken

    return tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)


def shipped_ranks(file: str, sha256: str) -> dict[bytes, int] | None:
    """The BPE ranks in quicktok-v1's ``data/<file>.vocab``, if they are exactly
    OpenAI's (their ``.tiktoken`` rendering hashes to ``sha256``); else ``None``."""
    spec = importlib.util.find_spec("quicktok")
    if spec is None or not spec.submodule_search_locations:
        log.warning("quicktok-v1 is not installed: OpenAI models' tokens are estimated")
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{file}.vocab"
    try:
        ranks = _read_vocab(path.read_bytes())
    except (OSError, struct.error, ValueError) as exc:
        log.warning("cannot read %s (%s): OpenAI models' tokens are estimated", path, exc)
        return None
    # The file tiktoken would have downloaded: one "base64(token) rank" line each.
    rendered = "".join(f"{base64.b64encode(t).decode()} {r}\n" for t, r in ranks.items())
    if hashlib.sha256(rendered.encode()).hexdigest() != sha256:
        log.warning("%s is not OpenAI's %s encoding: its tokens are estimated", path, file)
        return None
    return ranks


def _read_vocab(data: bytes) -> dict[bytes, int]:
    # quicktok's layout: u32 count, then per token u16 length, the bytes, u32 rank
    # (little-endian), in rank order.
    (count,) = struct.unpack_from("<I", data, 0)
    offset = 4
    ranks: dict[bytes, int] = {}
    for _ in range(count):
        (length,) = struct.unpack_from("<H", data, offset)
        offset += 2
        token = data[offset : offset + length]
        offset += length
        (rank,) = struct.unpack_from("<I", data, offset)
        offset += 4
        ranks[token] = rank
    if offset != len(data):
        raise ValueError(f"{len(data) - offset} bytes after the last token")
    return ranks
