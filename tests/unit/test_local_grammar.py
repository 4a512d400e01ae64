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
    from gatehouse.providers.local import grammar

    depth = MAX_NESTING + 1
    deep = 'root ::= "(" ' + '("a" ' * depth + ")?" * depth
    monkeypatch.setattr(grammar, "_schema_to_gbnf", lambda schema: deep)
    with pytest.raises(ValidationFailedError, match="too large") as caught:
        grammar_text(schema_format({"type": "string"}))
    assert caught.value.param == "response_format"
    shallow = 'root ::= "((((" [(] ' + '("a" ' * 10 + ")?" * 10
    monkeypatch.setattr(grammar, "_schema_to_gbnf", lambda schema: shallow)
    assert grammar_text(schema_format({"type": "string"})) == shallow


def test_an_unknown_format_type_is_unsupported() -> None:
    with pytest.raises(UnsupportedParameterError) as caught:
        grammar_text({"type": "yaml"})
    assert caught.value.param == "response_format"


def rule_of(grammar: str, name: str) -> str:
    return next(line for line in grammar.splitlines() if line.startswith(f"{name} ::= "))


def test_a_bounded_integer_admits_only_its_range() -> None:
    schema = {
        "type": "object",
        "properties": {
            "minutes": {"type": "integer", "minimum": 1, "maximum": 600},
            "offset": {"type": "integer", "exclusiveMinimum": -3, "exclusiveMaximum": 3},
            "count": {"type": ["integer", "null"], "minimum": 0},
            "price": {"type": "number", "minimum": 0, "maximum": 10},
            "level": {"type": "integer", "enum": [1, 2], "maximum": 1},
        },
        "required": ["minutes", "offset", "count", "price", "level"],
    }
    grammar = grammar_text(schema_format(schema))
    assert grammar is not None
    assert rule_of(grammar, "minutes") == (
        'minutes ::= ([1-9] | [1-9] [0-9] | [1-5] [0-9]{2} | "600") space'
    )
    assert rule_of(grammar, "offset") == 'offset ::= ("-" [1-2] | [0-2]) space'
    # Each type of a list keeps the bounds; null is still null.
    assert rule_of(grammar, "count") == "count ::= count-0 | null"
    assert rule_of(grammar, "count-0") == "count-0 ::= ([0-9] | [1-9] [0-9]{1,15}) space"
    # Numbers cannot be spelled out exactly: left to validation.
    assert rule_of(grammar, "price-kv").endswith(" number")
    # An enum (or const, $ref, anyOf) is the converter's, bounds or not.
    assert rule_of(grammar, "level") == 'level ::= "1" | "2"'


def test_a_bounded_integer_at_the_root_and_in_refs_and_unions() -> None:
    bounded = {"type": "integer", "minimum": -5, "maximum": -2}
    root = grammar_text(schema_format(bounded))
    assert root is not None
    assert rule_of(root, "root") == 'root ::= ("-" [2-5]) space'
    referenced = grammar_text(
        schema_format(
            {
                "$defs": {"small": bounded},
                "type": "object",
                "properties": {
                    "a": {"$ref": "#/$defs/small"},
                    "b": {"anyOf": [bounded, {"type": "string"}]},
                },
                "required": ["a", "b"],
            }
        )
    )
    assert referenced is not None
    assert rule_of(referenced, "small") == 'small ::= ("-" [2-5]) space'
    assert rule_of(referenced, "b-0") == 'b-0 ::= ("-" [2-5]) space'


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ({"type": "integer", "minimum": 10, "maximum": 9}, "no integer"),
        ({"type": "integer", "exclusiveMinimum": 1, "exclusiveMaximum": 2}, "no integer"),
        ({"type": "integer", "maximum": "600"}, "maximum must be a finite number"),
    ],
)
def test_an_unsatisfiable_or_malformed_integer_range_is_a_400(
    schema: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValidationFailedError, match=says) as caught:
        grammar_text(schema_format(schema))
    assert caught.value.param == "response_format"
