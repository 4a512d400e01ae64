"""``response_format`` for the local model: grammars that constrain sampling to JSON.

llama.cpp samples under a GBNF grammar by masking, at every step, each token
that cannot continue a text the grammar accepts, and allows the end of the
turn only once the text is complete. ``{"type": "json_object"}`` takes
llama.cpp's JSON grammar; ``{"type": "json_schema"}`` the grammar
llama-cpp-python's converter derives from the schema, with one addition: an
``integer`` with ``minimum`` / ``maximum`` (or their exclusive forms) admits
only the integers in range (grammar_ranges.py), where the converter alone
lets any integer through. Number ranges stay unenforced: a grammar cannot
spell them out exactly.

Schemas come from clients, and neither the converter nor llama.cpp's parser
is built for hostile input: the converter spells ``maxLength: N`` as N nested
groups (a large N exhausts memory) and the parser recurses once per group (a
deep nesting overflows the C stack and kills the process). So the schema's
repetition counts and the grammar's size and nesting are bounded first, and
anything refused or failing is a 400 naming ``response_format``.

A grammar is compiled once per distinct format and kept in a small LRU;
each sequence samples with its own clone, as a grammar sampler carries the
parse state of the text generated so far.
"""

from __future__ import annotations

import functools
import re
import threading
import weakref
from collections import OrderedDict
from typing import Any

import orjson

from gatehouse.core.errors import UnsupportedParameterError, ValidationFailedError
from gatehouse.providers.local.grammar_ranges import (
    BOUND_KEYWORDS,
    integer_bounds,
    integer_range_rule,
)

MAX_REPEAT = 1000  # largest minLength/maxLength/minItems/maxItems or {m,n} in a pattern
MAX_GRAMMAR_CHARS = 256 * 1024
MAX_NESTING = 2000  # llama.cpp's parser overflowed an 8 MiB stack at 20,000 here
CACHE_SIZE = 64

# Keywords the converter reads before a node's type: bounds beside them change nothing.
_TAKES_PRECEDENCE = ("$ref", "oneOf", "anyOf")
_REPEAT_KEYWORDS = ("minLength", "maxLength", "minItems", "maxItems")
_QUANTIFIER = re.compile(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}")
# GBNF string literals and character classes, where parentheses are not groups.
_LITERALS = re.compile(r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]')


def grammar_text(response_format: dict[str, Any] | None) -> str | None:
    """The GBNF grammar that honours ``response_format``; ``None`` for plain text.

    Needs no model. Raises a 400 (``param="response_format"``) for a format the
    local model cannot honour or a schema that cannot become a grammar.
    """
    kind = (response_format or {}).get("type", "text")
    if kind == "text":
        return None
    from llama_cpp import llama_grammar

    if kind == "json_object":
        return llama_grammar.JSON_GBNF
    if kind != "json_schema":
        raise UnsupportedParameterError(
            f"response_format type {kind!r} is not supported", param="response_format"
        )
    assert response_format is not None
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict):
        raise _invalid("response_format.json_schema must be an object")
    schema = spec.get("schema")
    if schema is None:
        return llama_grammar.JSON_GBNF  # a named format without a schema: any JSON object
    if not isinstance(schema, dict):
        raise _invalid("response_format.json_schema.schema must be an object")
    _check_schema(schema)
    try:
        grammar = _schema_to_gbnf(orjson.dumps(schema).decode())
    except Exception as exc:  # third-party code fed client input: any failure is the schema's
        raise _invalid(f"the JSON schema cannot be turned into a grammar: {exc}") from None
    if len(grammar) > MAX_GRAMMAR_CHARS or _nesting(grammar) > MAX_NESTING:
        raise _invalid("the JSON schema makes a grammar too large for the local model")
    return grammar


def _schema_to_gbnf(schema: str) -> str:
    """``llama_grammar.json_schema_to_gbnf`` with integer ranges enforced."""
    converter = _converter_class()(
        prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False
    )
    converter.visit(converter.resolve_refs(orjson.loads(schema), "stdin"), "")
    return str(converter.format_grammar())


@functools.cache
def _converter_class() -> Any:
    """llama-cpp-python's schema converter, taught integer ranges (imported on first use)."""
    from llama_cpp import llama_grammar

    base: Any = llama_grammar.SchemaConverter  # untyped

    class Converter(base):  # type: ignore[misc]
        def visit(self, schema: dict[str, Any], name: str) -> str:
            bounded = [key for key in BOUND_KEYWORDS if key in schema]
            kind = schema.get("type")
            if not bounded or any(key in schema for key in _TAKES_PRECEDENCE):
                return str(super().visit(schema, name))
            if isinstance(kind, list):
                # The converter would visit each type of the list bare: keep the bounds.
                each = [{"type": t, **{key: schema[key] for key in bounded}} for t in kind]
                return str(self._add_rule(_rule_name(name), self._generate_union_rule(name, each)))
            if kind != "integer" or "const" in schema or "enum" in schema:
                return str(super().visit(schema, name))
            minimum, maximum = integer_bounds(schema)
            rule = f"({integer_range_rule(minimum, maximum)}) space"
            return str(self._add_rule(_rule_name(name), rule))

    def _rule_name(name: str) -> str:
        # As SchemaConverter.visit names a node's rule.
        return name + "-" if name in llama_grammar.RESERVED_NAMES else name or "root"

    return Converter


def _check_schema(node: Any) -> None:
    """Refuse what the converter would fetch from the network or blow up into
    an unbounded grammar, before it runs."""
    if isinstance(node, list):
        for item in node:
            _check_schema(item)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        raise _invalid(f"only local schema references (#/...) are supported, not {ref!r}")
    for keyword in _REPEAT_KEYWORDS:
        count = node.get(keyword)
        if isinstance(count, int | float) and count > MAX_REPEAT:
            raise _invalid(f"{keyword} above {MAX_REPEAT} is not supported by the local model")
    pattern = node.get("pattern")
    if isinstance(pattern, str):
        for match in _QUANTIFIER.finditer(pattern):
            if any(n and int(n) > MAX_REPEAT for n in match.groups()):
                raise _invalid(
                    f"pattern repetitions above {MAX_REPEAT} are not supported by the local model"
                )
    for value in node.values():
        _check_schema(value)


def _nesting(grammar: str) -> int:
    """The deepest parenthesis nesting of a GBNF text, outside literals and classes."""
    depth = deepest = 0
    for char in _LITERALS.sub("", grammar):
        if char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    return deepest


def _invalid(message: str) -> ValidationFailedError:
    return ValidationFailedError(message, param="response_format")


class Grammar:
    """A grammar parsed by llama.cpp against the model's vocabulary.

    It is never sampled with itself: :meth:`sampler` hands each sequence a
    fresh clone. The parsed grammar is freed when the last reference goes
    (the cache may drop it while a queued request still holds it).
    """

    def __init__(self, vocab: Any, text: str) -> None:
        import llama_cpp

        self._llama_cpp: Any = llama_cpp  # untyped bindings
        pointer = llama_cpp.llama_sampler_init_grammar(vocab, text.encode(), b"root")
        if not pointer:
            raise _invalid("llama.cpp could not parse the grammar of this response_format")
        self._pointer = pointer
        finalizer = weakref.finalize(self, llama_cpp.llama_sampler_free, pointer)
        finalizer.atexit = False

    def sampler(self) -> Any:
        """A new grammar sampler at the start of the text, for a sampler chain to own."""
        return self._llama_cpp.llama_sampler_clone(self._pointer)


class GrammarCache:
    """Compiled grammars of the most recent response formats, for one model."""

    def __init__(self, vocab: Any, size: int = CACHE_SIZE) -> None:
        self._vocab = vocab
        self._size = size
        self._grammars: OrderedDict[bytes, Grammar] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, response_format: dict[str, Any] | None) -> Grammar | None:
        """The grammar for ``response_format`` (``None`` for text), compiled on first use."""
        if response_format is None or response_format.get("type", "text") == "text":
            return None
        # Not key-sorted: the schema's property order is the order it asks for.
        key = orjson.dumps(response_format)
        with self._lock:
            grammar = self._grammars.get(key)
            if grammar is not None:
                self._grammars.move_to_end(key)
                return grammar
        text = grammar_text(response_format)
        assert text is not None
        grammar = Grammar(self._vocab, text)
        with self._lock:
            self._grammars[key] = grammar
            if len(self._grammars) > self._size:
                self._grammars.popitem(last=False)
        return grammar
