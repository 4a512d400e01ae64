"""Structured output: response_format, fallback, parse-validate-repair, on scripted answers."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field

from gatehouse.client import BadRequestError, InternalServerError
from gatehouse.core.types import ChatCompletionRequest
from gatehouse.prompts import StructuredOutput, StructuredOutputError, extract_json
from gatehouse.prompts._flow import ModelAnswer, ModelCall

from .prompt_fakes import chat_texts, completion, drive


class Person(BaseModel):
    name: str
    age: int = Field(ge=0)


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


def replies(*texts: str) -> Any:
    queue = list(texts)

    def answer(call: ModelCall) -> ModelAnswer:
        return completion(queue.pop(0))

    return answer


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('Sure! Here it is: {"a": {"b": [1, 2]}} Hope that helps.', {"a": {"b": [1, 2]}}),
        ("The list: [1, 2, 3]", [1, 2, 3]),
        ('{broken {"a": 2}', {"a": 2}),
    ],
)
def test_extract_json_finds_the_value_in_chatter(text: str, value: Any) -> None:
    assert extract_json(text) == value


@pytest.mark.parametrize("text", ["", "no json here", '{"a": '])
def test_extract_json_says_what_is_missing(text: str) -> None:
    with pytest.raises(ValueError, match=r"empty|no JSON"):
        extract_json(text)


def test_a_valid_first_answer_uses_response_format() -> None:
    calls: list[ModelCall] = []
    result = drive(
        StructuredOutput(Person, model="m").flow("Ada, 36"),
        replies('{"name": "Ada", "age": 36}'),
        calls,
    )
    assert result.value == Person(name="Ada", age=36)
    assert (result.attempts, result.mode) == (1, "response_format")
    (request,) = chat_texts(calls)
    assert request.response_format is not None
    assert request.response_format["type"] == "json_schema"
    assert request.response_format["json_schema"]["name"] == "Person"
    assert request.response_format["json_schema"]["schema"]["required"] == ["name", "age"]
    assert request.messages[0].role == "system"
    assert '"required":["name","age"]' in request.messages[0].text()


def test_an_invalid_answer_is_repaired_with_the_validation_error_fed_back() -> None:
    calls: list[ModelCall] = []
    result = drive(
        StructuredOutput(Person).flow("Ada, 36"),
        replies('{"name": "Ada", "age": -3}', 'Fixed: {"name": "Ada", "age": 36}'),
        calls,
    )
    assert result.value.age == 36
    assert result.attempts == 2
    first, second = chat_texts(calls)
    assert (first.temperature, second.temperature) == (0.0, 0.7)
    assert second.messages[-2].role == "assistant"
    assert second.messages[-2].text() == '{"name": "Ada", "age": -3}'
    feedback = second.messages[-1].text()
    assert "age: Input should be greater than or equal to 0" in feedback


def test_a_json_schema_dict_is_validated_with_jsonschema() -> None:
    result = drive(
        StructuredOutput(SCHEMA).flow("Paris"),
        replies(
            '{"city": "Paris"}',
            '{"city": "Paris", "population": "many"}',
            '{"city": "Paris", "population": 2}',
        ),
    )
    assert result.value == {"city": "Paris", "population": 2}
    assert result.attempts == 3


def test_giving_up_reports_every_error_and_the_last_answer() -> None:
    with pytest.raises(StructuredOutputError) as caught:
        drive(StructuredOutput(SCHEMA, max_attempts=2).flow("x"), replies("nope", '{"city": 1}'))
    assert caught.value.attempts == 2
    assert caught.value.raw == '{"city": 1}'
    assert "no JSON" in caught.value.errors[0]
    assert "'population' is a required property" in caught.value.errors[1]
    assert "1 is not of type 'string'" in caught.value.errors[1]


def test_a_deployment_refusing_response_format_falls_back_to_the_prompt() -> None:
    refused = BadRequestError(
        "no", status=400, code="unsupported_parameter", param="response_format"
    )
    seen: list[ChatCompletionRequest] = []

    def answer(call: ModelCall) -> ModelAnswer | Exception:
        assert isinstance(call, ChatCompletionRequest)
        seen.append(call)
        if call.response_format is not None:
            return refused
        return completion('{"name": "Bo", "age": 4}')

    result = drive(StructuredOutput(Person, max_attempts=1).flow("Bo"), answer)
    assert result.value.name == "Bo"
    assert result.mode == "prompt"
    assert result.attempts == 1  # the refusal does not use up an attempt
    assert [c.response_format is None for c in seen] == [False, True]


def test_other_errors_and_forced_mode_pass_through() -> None:
    refused = BadRequestError(
        "no", status=400, code="unsupported_parameter", param="response_format"
    )
    with pytest.raises(BadRequestError):
        drive(StructuredOutput(Person, mode="response_format").flow("x"), lambda call: refused)
    failed = InternalServerError("down", status=502)
    with pytest.raises(InternalServerError):
        drive(StructuredOutput(Person).flow("x"), lambda call: failed)
    calls: list[ModelCall] = []
    drive(
        StructuredOutput(Person, mode="prompt").flow("x"), replies('{"name": "A", "age": 1}'), calls
    )
    assert chat_texts(calls)[0].response_format is None


def test_bad_schemas_are_refused_up_front() -> None:
    from jsonschema.exceptions import SchemaError

    with pytest.raises(SchemaError):
        StructuredOutput({"type": "no-such-type"})
    with pytest.raises(TypeError):
        StructuredOutput(42)  # type: ignore[arg-type]
    assert StructuredOutput({"title": "My answer!", "type": "object"}).name == "My_answer_"
