"""A template that fails on the values it is given is the caller's 400, never a 500.

Division by a variable that is 0, arithmetic on a value of another type, a
format that does not fit its value, an integer too long to print: Python
raises them inside the rendering, outside Jinja's own error classes.
"""

from __future__ import annotations

import openai
import pytest

from gatehouse.prompts.templates import PromptTemplate, TemplateError

from .fakes import RequestKeepingChat
from .governed import Governed
from .test_prompt_library_api import call, chat, gov, team_key

__all__ = ["chat", "gov"]  # fixtures of the prompt library's API tests

FAILING = {
    "zero_division": ("{{ total // parts }}", {"total": 10, "parts": 0}),
    "wrong_type": ("{{ text + parts }}", {"text": "x", "parts": 1}),
    "bad_format": ('{{ "{:d}".format(text) }}', {"text": "x"}),
    "long_integer": ("{{ (9 ** 999) * (9 ** 999) * (9 ** 999) * (9 ** 999) * (9 ** 999) }}", {}),
}
VARIABLES = {"total": int, "parts": int, "text": str}


@pytest.mark.parametrize(("source", "values"), FAILING.values(), ids=FAILING.keys())
def test_a_rendering_that_raises_is_a_template_error(
    source: str, values: dict[str, object]
) -> None:
    template = PromptTemplate("t", source, variables=VARIABLES)
    given = {"total": 1, "parts": 1, "text": "x", **values}
    with pytest.raises(TemplateError, match="template 't'"):
        template.render(**given)


async def test_a_divisor_of_zero_from_the_caller_is_a_400(
    gov: Governed, chat: RequestKeepingChat
) -> None:
    key = await team_key(gov, "red")
    body = {
        "name": "share",
        "template": "Each gets {{ total // parts }}.",
        "variables": {"total": "integer", "parts": "integer"},
    }
    assert (await call(gov, key, "POST", "/v1/prompts", body)).status_code == 201
    with pytest.raises(openai.BadRequestError) as refused:
        await gov.sdk(key).chat.completions.create(
            model="test/rec",
            messages=[],
            extra_body={"prompt": {"id": "share", "variables": {"total": 10, "parts": 0}}},
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["param"] == "prompt"
    assert "division" in error["message"]
    assert chat.seen == []
