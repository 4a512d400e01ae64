"""Prompt templates: sandboxed Jinja2, declared variables, names and versions."""

from __future__ import annotations

import pytest

from gatehouse.prompts import (
    PromptTemplate,
    TemplateError,
    TemplateRegistry,
    TemplateVariableError,
    Variable,
)


def test_render_fills_declared_variables_and_defaults() -> None:
    template = PromptTemplate(
        "summary",
        "Summarise {{ text }} in {{ words }} words.",
        variables={"text": str, "words": Variable(int, required=False, default=50)},
    )
    assert template.render(text="the memo") == "Summarise the memo in 50 words."
    assert template.render(text="it", words=10) == "Summarise it in 10 words."


def test_missing_extra_and_wrongly_typed_variables_are_each_named() -> None:
    template = PromptTemplate("t", "{{ a }} {{ n }}", variables={"a": str, "n": int})
    with pytest.raises(TemplateVariableError) as caught:
        template.render(n="three", extra=1)
    problems = caught.value.problems
    assert "missing variable 'a'" in problems
    assert "undeclared variable 'extra'" in problems
    assert "variable 'n' must be an integer, got str" in problems
    assert "'t'" in str(caught.value)


def test_bool_is_not_an_integer_but_an_int_is_a_number() -> None:
    template = PromptTemplate("t", "{{ n }} {{ x }}", variables={"n": int, "x": float})
    with pytest.raises(TemplateVariableError, match="'n' must be"):
        template.render(n=True, x=1.5)
    assert template.render(n=2, x=3) == "2 3"


def test_a_template_using_an_undeclared_variable_is_refused_when_defined() -> None:
    with pytest.raises(TemplateError, match="undeclared variables: secret"):
        PromptTemplate("t", "{{ a }} {{ secret }}", variables={"a": str})
    with pytest.raises(TemplateError, match="line 1"):
        PromptTemplate("t", "{% if %}", variables={})


def test_the_sandbox_refuses_python_internals_and_mutation() -> None:
    # Named internals are refused when the template is defined...
    with pytest.raises(TemplateError, match=r"'__[a-z]+__' reaches Python internals"):
        PromptTemplate("t", "{{ a.__class__.__mro__[1].__subclasses__() }}", variables={"a": str})
    with pytest.raises(TemplateError, match="'__globals__' reaches Python internals"):
        PromptTemplate("t", "{{ lipsum['__globals__'] }}", variables={})
    # ...and ones reached some other way by the sandbox, when it renders.
    escape = PromptTemplate("t", "{{ a[k] }}", variables={"a": str, "k": str})
    with pytest.raises(TemplateError, match="unsafe"):
        escape.render(a="x", k="__class__")
    mutate = PromptTemplate("t", "{{ items.append(4) }}{{ items }}", variables={"items": list})
    with pytest.raises(TemplateError):
        mutate.render(items=[1, 2, 3])


def test_loops_and_filters_render() -> None:
    template = PromptTemplate(
        "list",
        "{% for item in items %}- {{ item | upper }}\n{% endfor %}",
        variables={"items": list},
    )
    assert template.render(items=["a", "b"]) == "- A\n- B\n"


def test_messages_have_the_system_part_first() -> None:
    template = PromptTemplate(
        "t", "Hi {{ name }}", variables={"name": str}, system="You greet {{ name }}."
    )
    system, user = template.messages(name="Ada")
    assert (system.role, system.content) == ("system", "You greet Ada.")
    assert (user.role, user.content) == ("user", "Hi Ada")


def test_registry_serves_the_latest_version_or_the_one_asked_for() -> None:
    one = PromptTemplate("greet", "Hello {{ name }}", variables={"name": str})
    two = PromptTemplate("greet", "Hi {{ name }}!", version=2, variables={"name": str})
    registry = TemplateRegistry([one, two])
    assert registry.get("greet").render(name="Bo") == "Hi Bo!"
    assert registry.get("greet", 1).render(name="Bo") == "Hello Bo"
    assert registry.versions("greet") == [1, 2]
    with pytest.raises(KeyError, match="no version 3"):
        registry.get("greet", 3)
    with pytest.raises(KeyError):
        registry.get("nothing")
    registry.register(PromptTemplate("greet", "Hi {{ name }}!", version=2, variables={"name": str}))
    with pytest.raises(TemplateError, match="already registered"):
        registry.register(
            PromptTemplate("greet", "Yo {{ name }}", version=2, variables={"name": str})
        )


def test_repetitions_exponents_and_ranges_are_bounded() -> None:
    for source in (
        "{{ ('ab' * 10**6) | length }}",
        "{{ (items * 10**6) | length }}",
        "{{ 9 ** 5000 }}",
        "{{ range(10**6) | list | length }}",
    ):
        template = PromptTemplate("t", source, variables={"items": Variable(list, required=False)})
        with pytest.raises(TemplateError):
            template.render(items=[1, 2])
    small = PromptTemplate("t", "{{ 'ab' * 3 }} {{ 2 ** 10 }}", variables={})
    assert small.render() == "ababab 1024"
