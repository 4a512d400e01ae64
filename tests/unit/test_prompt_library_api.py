"""Stored prompt templates in a governed in-process app: ``/v1/prompts`` and
``prompt`` in chat and Responses requests, through the official openai SDK.

Templates belong to the creating key's team: another team gets 404 on every
route and in chat, administrators see all; rendering runs as the caller
(the ledger tags the call with the template), and a bad variable or a
template reaching Python internals is a 400 naming it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gatehouse.core.types import ChatCompletionRequest

from .fakes import RequestKeepingChat
from .governed import Governed, governed_app

SUMMARY = {
    "name": "summary",
    "template": "Summarise in {{ words }} words: {{ text }}",
    "system": "You write for {{ audience }}.",
    "variables": {
        "text": "string",
        "words": {"type": "integer", "default": 20},
        "audience": {"type": "string", "default": "engineers"},
    },
    "description": "Short summaries",
}


@pytest.fixture
async def chat() -> RequestKeepingChat:
    return RequestKeepingChat("test/rec")


@pytest.fixture
async def gov(tmp_path: Path, chat: RequestKeepingChat) -> AsyncIterator[Governed]:
    async for governed in governed_app(tmp_path, providers=[chat]):
        yield governed


async def team_key(gov: Governed, team: str, *scopes: str) -> str:
    return await gov.new_key(
        team=team, scopes=list(scopes or ("chat", "prompts:read", "prompts:write"))
    )


async def call(gov: Governed, key: str, method: str, path: str, body: Any = None) -> httpx.Response:
    return await gov.http.request(
        method, path, json=body, headers={"authorization": f"Bearer {key}"}
    )


async def with_summary(gov: Governed, team: str = "red") -> str:
    """A key of ``team`` (every prompts scope), after it stored SUMMARY."""
    key = await team_key(gov, team)
    assert (await call(gov, key, "POST", "/v1/prompts", SUMMARY)).status_code == 201
    return key


def turns(request: ChatCompletionRequest) -> list[tuple[str, str]]:
    return [(m.role, m.text()) for m in request.messages]


async def test_versions_are_numbered_immutable_and_listed(gov: Governed) -> None:
    key = await team_key(gov, "red")
    first = await call(gov, key, "POST", "/v1/prompts", SUMMARY)
    assert first.status_code == 201, first.text
    info = first.json()
    assert (info["id"], info["version"], info["versions"]) == ("summary", 1, [1])
    assert info["owner"] == {"kind": "team", "id": "red"}
    assert info["variables"]["words"] == {
        "type": "integer",
        "required": False,
        "default": 20,
        "description": "",
    }
    # The same content again is the same version; new content is the next one.
    again = await call(gov, key, "POST", "/v1/prompts", SUMMARY)
    assert (again.status_code, again.json()["version"]) == (200, 1)
    second = await call(gov, key, "POST", "/v1/prompts", {**SUMMARY, "template": "{{ text }}"})
    assert (second.status_code, second.json()["version"]) == (201, 2)

    latest = (await call(gov, key, "GET", "/v1/prompts/summary")).json()
    assert (latest["version"], latest["template"], latest["versions"]) == (2, "{{ text }}", [1, 2])
    one = (await call(gov, key, "GET", "/v1/prompts/summary/versions/1")).json()
    assert one["template"] == SUMMARY["template"]
    listed = (await call(gov, key, "GET", "/v1/prompts")).json()["data"]
    assert [(t["id"], t["version"]) for t in listed] == [("summary", 2)]

    # A deleted version is gone, and its number is never given to other content.
    deleted = await call(gov, key, "DELETE", "/v1/prompts/summary/versions/2")
    assert deleted.json() == {
        "object": "prompt.template.deleted",
        "id": "summary",
        "versions": [2],
        "deleted": True,
    }
    assert (await call(gov, key, "GET", "/v1/prompts/summary/versions/2")).status_code == 404
    assert (await call(gov, key, "GET", "/v1/prompts/summary")).json()["version"] == 1
    third = await call(gov, key, "POST", "/v1/prompts", {**SUMMARY, "template": "{{ text }}!"})
    assert third.json()["version"] == 3
    audit = (await gov.admin("GET", "/admin/audit")).json()["entries"][::-1]  # oldest first
    assert [(e["action"], e["target"]) for e in audit if e["target"].startswith("prompt:")] == [
        ("create", "prompt:summary@1"),
        ("create", "prompt:summary@2"),
        ("delete", "prompt:summary@2"),
        ("create", "prompt:summary@3"),
    ]


async def test_chat_renders_the_template_before_the_request_messages(
    gov: Governed, chat: RequestKeepingChat
) -> None:
    key = await with_summary(gov)
    sdk = gov.sdk(key)
    answer = await sdk.chat.completions.create(
        model="test/rec",
        messages=[],
        extra_body={"prompt": {"id": "summary", "variables": {"text": "the memo", "words": 5}}},
    )
    assert answer.choices[0].message.content == "Summarise in 5 words: the memo"
    assert turns(chat.seen[-1]) == [
        ("system", "You write for engineers."),
        ("user", "Summarise in 5 words: the memo"),
    ]
    # The request's own messages follow the template's; a version may be named.
    await call(gov, key, "POST", "/v1/prompts", {**SUMMARY, "template": "v2 {{ text }}"})
    await sdk.chat.completions.create(
        model="test/rec",
        messages=[{"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}],
        extra_body={"prompt": {"id": "summary", "version": "1", "variables": {"text": "t"}}},
    )
    assert turns(chat.seen[-1]) == [
        ("system", "You write for engineers."),
        ("user", "Summarise in 20 words: t"),
        ("assistant", "ok"),
        ("user", "more"),
    ]
    # Streamed too.
    stream = await sdk.chat.completions.create(
        model="test/rec",
        messages=[],
        stream=True,
        extra_body={"prompt": {"id": "summary", "variables": {"text": "streamed"}}},
    )
    words = [c.choices[0].delta.content async for c in stream if c.choices]
    assert "".join(w or "" for w in words).strip() == "v2streamed"
    # The upstream never sees the prompt field.
    assert "prompt" not in chat.seen[-1].model_dump()

    await gov.governance.shipper.drain()
    events = (await gov.admin("GET", "/admin/ledger")).json()["events"]
    assert [(e["tag"], e["team"], e["status"]) for e in events] == [
        ("prompt:summary@1", "red", "ok"),
        ("prompt:summary@1", "red", "ok"),
        ("prompt:summary@2", "red", "ok"),
    ]


async def test_bad_variables_are_a_400_naming_each(gov: Governed) -> None:
    key = await with_summary(gov)
    sdk = gov.sdk(key)
    with pytest.raises(openai.BadRequestError) as missing:
        await sdk.chat.completions.create(
            model="test/rec",
            messages=[],
            extra_body={"prompt": {"id": "summary", "variables": {"words": "five", "tone": "x"}}},
        )
    error = missing.value.body
    assert isinstance(error, dict)
    assert error["param"] == "prompt.variables"
    for problem in (
        "missing variable 'text'",
        "undeclared variable 'tone'",
        "variable 'words' must be an integer, got str",
    ):
        assert problem in error["message"]
    with pytest.raises(openai.BadRequestError) as bad_field:
        await sdk.chat.completions.create(
            model="test/rec", messages=[], extra_body={"prompt": {"version": 1}}
        )
    assert isinstance(bad_field.value.body, dict)
    assert bad_field.value.body["param"] == "prompt.id"


async def test_unknown_templates_and_another_teams_are_404_everywhere(
    gov: Governed, chat: RequestKeepingChat
) -> None:
    red = await team_key(gov, "red")
    blue = await team_key(gov, "blue")
    await call(gov, red, "POST", "/v1/prompts", SUMMARY)
    for method, path in (
        ("GET", "/v1/prompts/summary"),
        ("GET", "/v1/prompts/summary/versions/1"),
        ("DELETE", "/v1/prompts/summary/versions/1"),
        ("DELETE", "/v1/prompts/summary"),
        ("GET", "/v1/prompts/nothing"),
    ):
        response = await call(gov, blue, method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    assert (await call(gov, blue, "GET", "/v1/prompts")).json()["data"] == []
    # Names are global: blue cannot take red's, even after red deletes it.
    taken = await call(gov, blue, "POST", "/v1/prompts", {**SUMMARY, "template": "{{ text }}"})
    assert taken.status_code == 409
    for name in ("summary", "nothing"):
        with pytest.raises(openai.NotFoundError):
            await gov.sdk(blue).chat.completions.create(
                model="test/rec",
                messages=[],
                extra_body={"prompt": {"id": name, "variables": {"text": "x"}}},
            )
    with pytest.raises(openai.NotFoundError):
        await gov.sdk(red).chat.completions.create(
            model="test/rec",
            messages=[],
            extra_body={"prompt": {"id": "summary", "version": 9, "variables": {"text": "x"}}},
        )
    assert chat.seen == []
    # Administrators see every template.
    assert (await gov.admin("GET", "/v1/prompts/summary")).status_code == 200
    assert [t["id"] for t in (await gov.admin("GET", "/v1/prompts")).json()["data"]] == ["summary"]
    await call(gov, red, "DELETE", "/v1/prompts/summary")
    taken = await call(gov, blue, "POST", "/v1/prompts", {**SUMMARY, "template": "{{ text }}"})
    assert taken.status_code == 409


async def test_scopes_are_checked(gov: Governed) -> None:
    reader = await team_key(gov, "red", "chat", "prompts:read")
    chat_only = await team_key(gov, "red", "chat")
    refused = await call(gov, reader, "POST", "/v1/prompts", SUMMARY)
    assert refused.status_code == 403
    assert (await call(gov, chat_only, "GET", "/v1/prompts")).status_code == 403
    writer = await team_key(gov, "red", "prompts:write")
    assert (await call(gov, writer, "POST", "/v1/prompts", SUMMARY)).status_code == 201
    # Using a template in a chat request needs only the chat scope (and the team).
    answer = await gov.sdk(chat_only).chat.completions.create(
        model="test/rec",
        messages=[],
        extra_body={"prompt": {"id": "summary", "variables": {"text": "x"}}},
    )
    assert answer.choices[0].message.content == "Summarise in 20 words: x"


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"template": "{% if %}"}, "template", "line 1"),
        ({"template": "{{ secret }}"}, "template", "undeclared variables: secret"),
        (
            {"system": "{{ a.__class__ }}", "variables": {"a": "string", "text": "string"}},
            "system",
            "reaches Python internals",
        ),
        (
            {"variables": {"words": {"type": "integer", "default": "x"}}},
            "variables.words.default",
            "must be an integer",
        ),
        ({"variables": {"bad-name": "string"}}, "variables.bad-name.[key]", "pattern"),
        ({"variables": {"x": "uuid"}}, "variables.x.type", "string"),
        ({"name": "no spaces"}, "name", "pattern"),
        ({"template": ""}, "template", "at least 1"),
    ],
)
async def test_a_bad_template_is_a_400_naming_the_field(
    gov: Governed, body: dict[str, Any], param: str, words: str
) -> None:
    key = await team_key(gov, "red")
    base = {"name": "t", "template": "{{ text }}", "variables": {"text": "string"}}
    response = await call(gov, key, "POST", "/v1/prompts", {**base, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert words in error["message"]


async def test_a_malicious_template_cannot_escape_the_sandbox(
    gov: Governed, chat: RequestKeepingChat
) -> None:
    key = await team_key(gov, "red")
    # Internals named in the text are refused when the template is created...
    for source in (
        "{{ text.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ text['__class__'] }}",
    ):
        body = {"name": "evil", "template": source, "variables": {"text": "string"}}
        response = await call(gov, key, "POST", "/v1/prompts", body)
        assert response.status_code == 400, source
        assert "Python internals" in response.json()["error"]["message"]
    # ...and reached through a variable, or as a huge string, when it renders.
    evil = {
        "name": "evil",
        "template": "{{ text[attr] }}{{ 'x' * times }}",
        "variables": {
            "text": "string",
            "attr": "string",
            "times": {"type": "integer", "default": 1},
        },
    }
    assert (await call(gov, key, "POST", "/v1/prompts", evil)).status_code == 201
    for variables in ({"text": "a", "attr": "__class__"}, {"text": "a", "attr": 0, "times": 10**9}):
        with pytest.raises(openai.BadRequestError) as refused:
            await gov.sdk(key).chat.completions.create(
                model="test/rec",
                messages=[],
                extra_body={"prompt": {"id": "evil", "variables": variables}},
            )
        assert isinstance(refused.value.body, dict)
        assert refused.value.body["param"] in {"prompt", "prompt.variables"}
    assert chat.seen == []


async def test_responses_renders_the_template_before_the_input(
    gov: Governed, chat: RequestKeepingChat
) -> None:
    key = await with_summary(gov)
    sdk = gov.sdk(key)
    response = await sdk.responses.create(
        model="test/rec",
        prompt={"id": "summary", "version": "1", "variables": {"text": "the memo"}},
        input="and add a title",
    )
    assert response.output_text == "and add a title"
    assert turns(chat.seen[-1]) == [
        ("system", "You write for engineers."),
        ("user", "Summarise in 20 words: the memo"),
        ("user", "and add a title"),
    ]
    blue = gov.sdk(await team_key(gov, "blue"))
    with pytest.raises(openai.NotFoundError):
        await blue.responses.create(
            model="test/rec", prompt={"id": "summary", "variables": {"text": "x"}}, input="hi"
        )
    await gov.governance.shipper.drain()
    events = (await gov.admin("GET", "/admin/ledger")).json()["events"]
    assert [(e["tag"], e["team"]) for e in events] == [("responses:prompt:summary@1", "red")]


async def test_input_tokens_counts_the_rendered_template(gov: Governed) -> None:
    key = await with_summary(gov)
    prompted = {
        "model": "test/rec",
        "input": "x",
        "prompt": {"id": "summary", "variables": {"text": "t"}},
    }
    written_out = {
        "model": "test/rec",
        "input": [
            {"role": "system", "content": "You write for engineers."},
            {"role": "user", "content": "Summarise in 20 words: t"},
            {"role": "user", "content": "x"},
        ],
    }
    counts = []
    for body in (prompted, written_out, {"model": "test/rec", "input": "x"}):
        response = await call(gov, key, "POST", "/v1/responses/input_tokens", body)
        assert response.status_code == 200, response.text
        counts.append(response.json()["input_tokens"])
    assert counts[0] == counts[1] > counts[2]
    blue = await team_key(gov, "blue")
    refused = await call(gov, blue, "POST", "/v1/responses/input_tokens", prompted)
    assert refused.status_code == 404


async def test_a_users_templates_are_exported_and_their_creator_erased(gov: Governed) -> None:
    ada = await gov.new_key(team="red", user="ada", scopes=["chat", "prompts:write"])
    await call(gov, ada, "POST", "/v1/prompts", SUMMARY)
    exported = (await gov.admin("GET", "/admin/privacy/users/ada")).json()
    assert [(t["name"], t["version"]) for t in exported["prompt_templates"]] == [("summary", 1)]
    report = (await gov.admin("DELETE", "/admin/privacy/users/ada")).json()
    assert report["deleted"]["prompt_templates"] == 1
    kept = (await gov.admin("GET", "/v1/prompts/summary")).json()
    assert (kept["created_by"], kept["owner"]) == ("user:[erased]", {"kind": "team", "id": "red"})
    assert (await gov.admin("GET", "/admin/privacy/users/ada")).json()["prompt_templates"] == []


async def test_the_openapi_document_shows_prompt_on_chat_completions(gov: Governed) -> None:
    schema = (await gov.http.get("/openapi.json")).json()
    body = schema["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]
    name = body["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    request = schema["components"]["schemas"][name]
    assert "prompt" in request["properties"]
    assert "messages" not in request.get("required", [])
    assert {"/v1/prompts", "/v1/prompts/{name}/versions/{version}"} <= set(schema["paths"])
