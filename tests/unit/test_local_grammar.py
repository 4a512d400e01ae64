"""``response_format`` to a llama.cpp grammar for the local model, without the model."""

from __future__ import annotations

from typing import Any

import pytest

from gatehouse.core.errors import UnsupportedParameterError, ValidationFailedError
from gatehouse.providers.local.grammar import MAX_NESTING, grammar_text


def schema_format(schema: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}


def test_text_needs_no_grammar_and_json_object_takes_the_json_grammar() -> None:
    assert grammar_text(None) is None
    assert grammar_text({"type": "text"}) is None
    json_object = grammar_text({"type": "json_object"})
    assert json_object is not None
    assert json_object.strip().startswith("root   ::= object")


def test_a_schema_becomes_a_grammar_that_keeps_its_property_order() -> None:
    grammar = grammar_text(
        schema_format(
            {
                "type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                "required": ["name", "age"],
            }
        )
    )
    assert grammar is not None
    root = next(line for line in grammar.splitlines() if line.startswith("root ::="))
    assert root.index("name-kv") < root.index("age-kv")


@pytest.mark.parametrize(
    ("response_format", "says"),
    [
        ({"type": "json_schema"}, "json_schema must be an object"),
        (schema_format(["not", "a", "schema"]), "schema must be an object"),
        (schema_format({"type": "no-such-type"}), "cannot be turned into a grammar"),
        (schema_format({"$ref": "#/$defs/missing"}), "cannot be turned into a grammar"),
        (schema_format({"type": "string", "pattern": "no anchors"}), "cannot be turned"),
        (schema_format({"$ref": "https://example.com/schema.json"}), "only local schema"),
        (schema_format({"type": "string", "maxLength": 10**6}), "maxLength above"),
        (schema_format({"type": "array", "items": {}, "minItems": 5000}), "minItems above"),
        (schema_format({"type": "string", "pattern": "^a{2,99999}$"}), "pattern repetitions"),
    ],
)
def test_a_schema_that_cannot_be_compiled_is_a_400_naming_response_format(
    response_format: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValidationFailedError, match=says) as caught:
        grammar_text(response_format)
    assert caught.value.http_status == 400
    assert caught.value.param == "response_format"


def test_a_grammar_nested_deeper_than_llama_cpp_parses_safely_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # llama.cpp's parser recurses once per group and overflowed the C stack
    # (killing the process) at 20,000 here. The schema bounds keep today's
    # converter far below that; whatever a converter emits, the depth is checked.
    from llama_cpp import llama_grammar

    depth = MAX_NESTING + 1
    deep = 'root ::= "(" ' + '("a" ' * depth + ")?" * depth
    monkeypatch.setattr(llama_grammar, "json_schema_to_gbnf", lambda schema: deep)
    with pytest.raises(ValidationFailedError, match="too large") as caught:
        grammar_text(schema_format({"type": "string"}))
    assert caught.value.param == "response_format"
    shallow = 'root ::= "((((" [(] ' + '("a" ' * 10 + ")?" * 10
    monkeypatch.setattr(llama_grammar, "json_schema_to_gbnf", lambda schema: shallow)
    assert grammar_text(schema_format({"type": "string"})) == shallow


def test_an_unknown_format_type_is_unsupported() -> None:
    with pytest.raises(UnsupportedParameterError) as caught:
        grammar_text({"type": "yaml"})
    assert caught.value.param == "response_format"
