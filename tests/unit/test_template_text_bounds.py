"""A rendering cannot fill memory with strings each within the size bound, nor
by printing a cheap container of long strings, nor pin a CPU in one filter.

``[a] * 1000`` holds a thousand references to one string (8 KB), but its text
is a thousand copies; a filter mapped over a range builds a string per item.
Both were built whole (a gigabyte and more at larger counts) before any size
was checked. Memory is measured with tracemalloc, never time.
"""

from __future__ import annotations

import re
import tracemalloc

import pytest

from gatehouse.prompts import _sandbox
from gatehouse.prompts.templates import PromptTemplate, TemplateError

SIZE = r"a string or list longer than \d+ characters"
BUILT = r"rendering built more than \d+ characters in all"
WORK = r"rendering took more than \d+ steps"
LONG = '{% set a = "x" * 1000000 %}'  # one string of a million characters

HOSTILE = {
    "filter_mapped_over_a_range": ("{{ range(100)|map('center', 9000000)|list|length }}", BUILT),
    "repeated_reference_printed": (LONG + "{{ [a] * 1000 }}", SIZE),
    "repeated_reference_in_a_dict": (LONG + "{{ {'k': [a] * 1000} }}", SIZE),
    "tilde": (LONG + "{{ '' ~ [a] * 1000 }}", SIZE),
    "printf": (LONG + "{{ '%s' % ([a] * 1000,) }}", SIZE),
    "str_format": (LONG + "{{ '{}'.format([a] * 1000) }}", SIZE),
    "join_of_lists": (LONG + "{{ [[a] * 1000]|join }}", SIZE),
    "string_filter": (LONG + "{{ ([a] * 1000)|string|length }}", SIZE),
    "tojson_filter": (LONG + "{{ ([a] * 1000)|tojson|length }}", SIZE),
    "pprint_filter": (LONG + "{{ ([a] * 1000)|pprint|length }}", SIZE),
    "xmlattr_filter": (LONG + "{{ {'k': [a] * 1000}|xmlattr|length }}", SIZE),
    "long_integers": ("{{ [9 ** 999] * 1000000 }}", SIZE),
    "center_of_a_number": ("{{ 1|center(1000000000) }}", SIZE),
    "wordwrap_string": ("{{ ('x' * 1000000)|wordwrap(1, wrapstring='y' * 1000)|length }}", SIZE),
    # A line cut off a long word copies what is left of it: 500,000 lines of a
    # million characters ran for 15 s in one step.
    "wordwrap_work": ("{{ ('x' * 1000000)|wordwrap(2)|length }}", WORK),
    # Escaping a quote makes five characters of it, urlencoding an é six.
    "escape": ('{% set a = "\'" * 1000000 %}{{ (a ~ a ~ a)|e|length }}', SIZE),
    "urlencode": ("{% set a = 'é' * 1000000 %}{{ (a ~ a)|urlencode|length }}", SIZE),
    "indent_of_a_list": ("{{ ['x']|indent(1000000000, true) }}", SIZE),
}


@pytest.mark.parametrize(("source", "bound"), HOSTILE.values(), ids=HOSTILE.keys())
def test_text_too_long_is_refused_before_it_is_built(source: str, bound: str) -> None:
    template = PromptTemplate("hostile", source)
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError) as caught:
            template.render()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert re.search(bound, str(caught.value)), caught.value
    # What was built within the bounds; never the text refused.
    within = _sandbox.MAX_RENDER_BUILT if bound == BUILT else 2 * _sandbox.MAX_RENDER_CHARS
    assert peak < within + _sandbox.MAX_RENDER_CHARS, peak


def test_strings_within_the_total_render() -> None:
    # Five strings of 9 million characters: 45 million built, within the 50 million.
    template = PromptTemplate("fits", "{{ range(5)|map('center', 9000000)|map('length')|sum }}")
    assert template.render() == "45000000"
    small = PromptTemplate(
        "small",
        "{{ [1, 'a', {'k': none}] }} {{ {'a': [1.5, true]}|tojson }} {{ [[1, 2], [3]]|join('-') }}",
    )
    assert small.render() == "[1, 'a', {'k': None}] {\"a\": [1.5, true]} [1, 2]-[3]"


def test_the_text_size_of_a_container_counts_what_it_holds() -> None:
    assert _sandbox.text_size("abc") == 3
    assert _sandbox.text_size(["abc"] * 10) >= len(str(["abc"] * 10))
    assert _sandbox.text_size({"k": ["v"] * 3}) >= len(str({"k": ["v"] * 3}))
    assert _sandbox.text_size(10**100) >= len(str(10**100))
    # Counted no further than just past the limit: a million references, a few looked at.
    assert _sandbox.text_size(["x" * 1000] * 1_000_000, limit=5000) < 10_000
