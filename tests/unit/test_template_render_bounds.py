"""A stored template's rendering is bounded by steps, time and size: never a hang or a 500.

The bounds are those of :mod:`gatehouse.prompts._sandbox`. The exact step
count and the deadline are checked with the other bound lifted, so that the
machine's speed decides nothing; hostile templates are checked to stop with
a :class:`TemplateError` naming a bound, and through the API with a 400.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time

import openai
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gatehouse.core.principal import LOCAL
from gatehouse.prompts import _sandbox
from gatehouse.prompts.library import PromptLibrary, PromptReference
from gatehouse.prompts.templates import PromptTemplate, TemplateError
from gatehouse.store.prompt_templates import PromptTemplateStore

from .fakes import RequestKeepingChat
from .governed import Governed
from .test_prompt_library_api import call, chat, gov, team_key

__all__ = ["chat", "gov"]  # fixtures of the prompt library's API tests

WORK = r"rendering took (more than \d+ steps|longer than [\d.]+ s)"
SIZE = r"a string or list longer than \d+ characters"

HOSTILE = {
    # The brief's own: nested loops over large ranges (10**10 iterations).
    "nested_loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        WORK,
    ),
    # 2**40 calls, without a loop.
    "branching_macro": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(40) }}",
        WORK,
    ),
    "endless_recursion": ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion"),
    # A slow step, repeated: each sorts 100,000 numbers.
    "slow_steps": (
        "{% for i in range(100000) %}{{ range(100000)|list|sort|first }}{% endfor %}",
        WORK,
    ),
    "doubled_with_tilde": (
        "{% set ns = namespace(s='xx') %}{% for i in range(64) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        SIZE,
    ),
    "doubled_with_plus": (
        "{% set ns = namespace(s=['x']) %}{% for i in range(64) %}"
        "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
        SIZE,
    ),
    "center_filter": ("{{ 'x'|center(1000000000) }}", SIZE),
    "ljust_method": ("{{ 'x'.ljust(1000000000) }}", SIZE),
    "printf_width": ("{{ '%999999999d' % 1 }}", SIZE),
    "printf_star": ("{{ '%*d' % (999999999, 1) }}", SIZE),
    "format_filter": ("{{ '%.999999999f'|format(1) }}", SIZE),
    "str_format": ("{{ '{:>999999999}'.format(1) }}", SIZE),
    "str_format_width_argument": ("{{ '{:>{w}}'.format(1, w=999999999) }}", SIZE),
    "replace_between_every_character": ("{{ ('x' * 1000)|replace('', 'y' * 100000) }}", SIZE),
    "join_filter": ("{{ range(100000)|join('y' * 1000) }}", SIZE),
    "join_method": ("{{ ('y' * 1000).join(range(100000)|map('string')|list) }}", SIZE),
    "indent_filter": ("{{ ('x\n' * 100000)|indent(100000) }}", SIZE),
    "output": ("{% for i in range(20) %}{{ 'y' * 1000000 }}{% endfor %}", SIZE),
}


@pytest.mark.parametrize(("source", "bound"), HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_template_stops_at_a_bound(source: str, bound: str) -> None:
    template = PromptTemplate("hostile", source)
    with pytest.raises(TemplateError) as caught:
        template.render()
    assert re.search(bound, str(caught.value)), caught.value
    assert str(caught.value).startswith("template 'hostile': ")


def test_every_loop_iteration_and_call_is_a_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sandbox, "MAX_RENDER_SECONDS", 3600.0)
    monkeypatch.setattr(_sandbox, "MAX_RENDER_STEPS", 1000)
    # 9 + 9 x 109 iterations and 10 calls of range(): 1000 steps exactly.
    fits = "{% for i in range(9) %}{% for j in range(109) %}.{% endfor %}{% endfor %}"
    assert PromptTemplate("fits", fits).render() == "." * 981
    one_more = fits.replace("109", "110")
    with pytest.raises(TemplateError, match="more than 1000 steps"):
        PromptTemplate("one_more", one_more).render()
    # A macro's calls are steps too: 500 iterations and 500 calls fit, 501 of each do not.
    calls = PromptTemplate(
        "calls",
        "{% macro f() %}{% endmacro %}{% for i in items %}{{ f() }}{% endfor %}",
        variables={"items": list},
    )
    assert calls.render(items=[0] * 500) == ""
    with pytest.raises(TemplateError, match="more than 1000 steps"):
        calls.render(items=[0] * 501)
    # Each rendering has its own budget: the system part and the user part alike.
    both = PromptTemplate("both", fits, system=fits)
    assert [m.text() for m in both.messages()] == ["." * 981, "." * 981]


def test_the_deadline_is_checked_at_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sandbox, "MAX_RENDER_STEPS", 10**12)
    monkeypatch.setattr(_sandbox, "MAX_RENDER_SECONDS", 0.05)
    slow = PromptTemplate("slow", HOSTILE["slow_steps"][0])
    with pytest.raises(TemplateError, match=r"longer than 0\.05 s"):
        slow.render()


def test_ordinary_templates_render_as_plain_jinja_does() -> None:
    source = (
        "{% macro item(d) %}- {{ d.title|upper }} ({{ caller() }}){% endmacro %}"
        "{% for d in docs if d.keep %}{% call item(d) %}{{ loop.index }}/{{ loop.length }}"
        "{% endcall %}{{ '' if loop.last else '\n' }}{% else %}none{% endfor %}\n"
        "{% for node in tree recursive %}{{ node.name }}[{{ loop(node.children) }}]{% endfor %}\n"
        "{{ 'a' ~ 1 ~ none }} {{ '%5.1f|%-4s|' % (3.14159, 'x') }} {{ '%(n)03d'|format(n=7) }} "
        "{{ '{:>6}'.format('r') }} {{ 'ab'|center(6) }}|{{ [1, 2, 3]|join('+') }} "
        "{{ 'x-y'|replace('-', '--') }} {{ ('a\nb')|indent(2) }} {{ [1] + [2] }} {{ 'q' * 3 }}"
    )
    values = {
        "docs": [
            {"title": "alpha", "keep": True},
            {"title": "beta", "keep": False},
            {"title": "gamma", "keep": True},
        ],
        "tree": [{"name": "r", "children": [{"name": "c", "children": []}]}],
    }
    plain = ImmutableSandboxedEnvironment(keep_trailing_newline=True).from_string(source)
    ours = PromptTemplate("ordinary", source, variables={"docs": list, "tree": list})
    assert ours.render(**values) == plain.render(**values)
    assert ours.render(docs=[], tree=[]).startswith("none\n")


async def test_a_template_that_would_pin_the_cpu_is_a_400_naming_the_bound(
    gov: Governed, chat: RequestKeepingChat
) -> None:
    key = await team_key(gov, "red")
    body = {"name": "spin", "template": HOSTILE["nested_loops"][0]}
    assert (await call(gov, key, "POST", "/v1/prompts", body)).status_code == 201
    with pytest.raises(openai.BadRequestError) as refused:
        await gov.sdk(key).chat.completions.create(
            model="test/rec", messages=[], extra_body={"prompt": {"id": "spin"}}
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["param"] == "prompt"
    assert re.search(WORK, error["message"]), error["message"]
    assert chat.seen == []
    # The server is none the worse: the next call is answered.
    reply = await gov.sdk(key).chat.completions.create(
        model="test/rec", messages=[{"role": "user", "content": "still there?"}]
    )
    assert reply.choices[0].message.content


async def test_a_rendering_holds_a_thread_of_its_own_not_the_event_loop(gov: Governed) -> None:
    key = await team_key(gov, "red")
    body = {"name": "echo", "template": "{{ text }}", "variables": {"text": "string"}}
    assert (await call(gov, key, "POST", "/v1/prompts", body)).status_code == 201
    started, release = threading.Event(), threading.Event()
    # The way out were the rendering on the event loop, which could then set nothing.
    timer = threading.Timer(10, release.set)
    timer.start()

    class Blocking(str):
        """A value whose rendering waits until it is let go."""

        def __str__(self) -> str:
            started.set()
            release.wait()
            return "rendered"

    library = PromptLibrary(PromptTemplateStore(gov.governance.database), clock=time.time)
    reference = PromptReference(id="echo")
    reference.variables["text"] = Blocking("x")
    rendering = asyncio.create_task(library.render(reference, caller=LOCAL))
    assert await asyncio.to_thread(started.wait, 30)
    # The template is rendering, blocked, and this coroutine runs: the loop is free.
    free_while_rendering = not release.is_set()
    release.set()
    timer.cancel()
    assert (await rendering).messages[-1].text() == "rendered"
    assert free_while_rendering
