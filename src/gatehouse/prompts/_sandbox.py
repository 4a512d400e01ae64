"""The Jinja2 sandbox that stored prompt templates render in, with bounds on the work.

Jinja2's ``ImmutableSandboxedEnvironment`` keeps a template from Python's
internals and from changing its values; it does not bound what a template
costs. A template stored in the gateway renders in the server's process, on
behalf of whoever calls it, so here every rendering is bounded:

- **steps**: a loop iteration or a call (of a function, a method, a macro,
  ``loop()``) is a step, at most :data:`MAX_RENDER_STEPS`; the ``wordwrap``
  filter costs the lines it could cut, times its text's length in
  :data:`_WRAP_CHARS_A_STEP` (it copies what is left of a long word per line);
- **time**: at most :data:`MAX_RENDER_SECONDS`, checked at every step, for steps
  that are each slow (a sort of a long list in a loop);
- **size**: at most :data:`MAX_RENDER_CHARS` characters in the output, and in any
  string or list that ``+``, ``~``, ``%`` (and the ``format`` filter), ``*``
  (:data:`MAX_REPEAT`), or a width given to ``center``, ``ljust``, ``rjust``,
  ``zfill``, ``indent``, ``expandtabs``, ``replace``, ``join`` or
  ``str.format`` would build, refused before it is built; a list, tuple or
  dict turned into text (output, ``~``, ``%``, ``join``, ``format``, the
  ``string``, ``pprint``, ``tojson``, ``urlize`` and ``xmlattr`` filters) is
  sized by what it holds first, since a list of one long string repeated is
  cheap to build and huge to print; ``wordwrap`` with its wrap string, and
  ``escape`` and ``urlencode`` as much as their text can grow;
- **characters built in all**: at most :data:`MAX_RENDER_BUILT` over the whole
  rendering, so that many strings each within the size bound (a filter mapped
  over a range, a loop) cannot fill memory together;
- exponents past :data:`MAX_EXPONENT`; the sandbox caps ``range`` at 100,000.

A bound is a ``jinja2.exceptions.SecurityError`` that names it. Steps are
counted by rewriting the parsed template (:func:`bound`): each ``for`` loop's
items pass through a counting filter and ``~`` through a bounded join, the
other checks are the sandbox's own hooks (``call``, ``call_binop``) and the
filters replaced in :func:`environment`.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_REPEAT = 1_000_000
MAX_EXPONENT = 1_000
MAX_RENDER_STEPS = 500_000
MAX_RENDER_SECONDS = 0.5
MAX_RENDER_CHARS = 10_000_000
MAX_RENDER_BUILT = 5 * MAX_RENDER_CHARS
# How much longer than its contents' text a value's text may be, per filter.
# (Escaping and quoting make text of a string too: ``'`` is ``&#39;``, a
# character up to four UTF-8 bytes of ``%XX``, a control character ``\\x00``.)
# Each filter's factor, and the position of its value among its arguments (1
# after a Jinja context argument).
_TEXT_FACTORS = {
    "string": (1, 0),
    "pprint": (10, 0),
    "tojson": (6, 1),
    "urlize": (8, 1),
    "xmlattr": (6, 1),
    "escape": (5, 0),
    "e": (5, 0),
    "forceescape": (5, 0),
    "urlencode": (12, 0),
}
# ``wordwrap`` copies what is left of a long word for each line it cuts off:
# a line costs a step for every this many characters of the text.
_WRAP_CHARS_A_STEP = 100_000
# A printf-style field's width or precision: ``%5d``, ``%(name)-9s``, ``%.3f``, ``%*d``.
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\d+|\*)?(?:\.(\d+|\*))?")
# A number inside a ``str.format`` field's spec: ``{:>20}``, ``{0:.5f}``.
_BRACES = re.compile(r"\{[^{}]*:[^{}]*\}")
_DIGITS = re.compile(r"\d+")
_NESTED = re.compile(r"\{[^{}]*:[^{}]*\{")


def _refuse(problem: str) -> Exception:
    from jinja2.exceptions import SecurityError

    return SecurityError(problem)


class _Budget:
    """What one rendering may still spend: steps, and time until ``deadline``."""

    __slots__ = ("built", "deadline", "steps")

    def __init__(self) -> None:
        self.steps = MAX_RENDER_STEPS
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS
        self.built = 0  # characters (or list items) built so far

    def spend(self, steps: int = 1) -> None:
        self.steps -= steps
        if self.steps < 0:
            raise _refuse(f"rendering took more than {MAX_RENDER_STEPS} steps")
        if time.monotonic() > self.deadline:
            raise _refuse(f"rendering took longer than {MAX_RENDER_SECONDS} s")


# The rendering under way in this context; None outside one (compiling a template).
_BUDGET: ContextVar[_Budget | None] = ContextVar("gatehouse_template_budget", default=None)


@contextmanager
def rendering() -> Iterator[None]:
    """Bound the steps and time of the renderings inside, together."""
    token = _BUDGET.set(_Budget())
    try:
        yield
    finally:
        _BUDGET.reset(token)


def spend(steps: int = 1) -> None:
    """Steps of the rendering under way (one, by default)."""
    budget = _BUDGET.get()
    if budget is not None:
        budget.spend(steps)


def check_size(size: int, *, charge: bool = True) -> None:
    """Refuse a string or list of ``size`` items, past :data:`MAX_RENDER_CHARS`;
    with ``charge``, it is about to be built: counted against the rendering's
    :data:`MAX_RENDER_BUILT`."""
    if size > MAX_RENDER_CHARS:
        raise _refuse(f"a string or list longer than {MAX_RENDER_CHARS} characters")
    budget = _BUDGET.get()
    if charge and budget is not None:
        budget.built += size
        if budget.built > MAX_RENDER_BUILT:
            raise _refuse(f"rendering built more than {MAX_RENDER_BUILT} characters in all")


def _sized(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple) else 0


def text_size(value: Any, limit: int = MAX_RENDER_CHARS) -> int:
    """About how long ``str(value)`` is, or at least; counted no further than
    just past ``limit`` (a list of a million references to one long string is
    cheap, its text is not)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return value.bit_length() * 3 // 10 + 2  # its decimal digits, and a sign
    if isinstance(value, float):
        return 24
    if isinstance(value, Mapping):
        parts: Iterable[Any] = (part for pair in value.items() for part in pair)
    elif isinstance(value, Collection) and not isinstance(value, bytes | range):
        parts = value
    else:
        return 0
    total = 2
    for part in parts:
        total += text_size(part, limit - total) + 4  # quotes, a separator
        if total > limit:
            break
    return total


def _check_text(*values: Any, factor: int = 1) -> None:
    """Refuse turning ``values`` into text, when that text would pass the size bound."""
    total = 0
    for value in values:
        if isinstance(value, str):
            total += len(value) * factor if factor > 1 else 0
        else:
            total += text_size(value, MAX_RENDER_CHARS // factor + 1) * factor
    if total:
        check_size(total)


def _printf_size(spec: str, values: Any) -> int:
    """The longest field ``spec % values`` asks for (``*`` takes its size from
    ``values``), plus the text of ``values``."""
    sizes = [int(n) for m in _PRINTF.finditer(spec) for n in m.groups() if n and n != "*"]
    if "*" in spec:
        given = values if isinstance(values, tuple | list) else (values,)
        sizes += [abs(v) for v in given if isinstance(v, int)]
    return max(sizes, default=0) + text_size(values)


def _widened(name: str, text: str, args: Sequence[Any], kwargs: dict[str, Any]) -> int:
    """How long ``text.<name>(*args)`` (or the filter ``name``) could be, at most;
    0 for an operation that does not widen a string."""
    first = args[0] if args else None
    if name in {"center", "ljust", "rjust", "zfill"}:
        width = kwargs.get("width", first)
        return width if isinstance(width, int) else 0
    if name == "indent":
        width = kwargs.get("width", 4 if first is None else first)
        per_line = width if isinstance(width, int) else len(str(width))
        return len(text) + (text.count("\n") + 1) * max(per_line, 0)
    if name == "expandtabs":
        size = kwargs.get("tabsize", 8 if first is None else first)
        return len(text) + text.count("\t") * (size if isinstance(size, int) else 0)
    if name == "replace" and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        times = text.count(old) if old else len(text) + 1
        return len(text) + times * max(len(new) - len(old), 0)
    if name in {"str.format", "str.format_map"}:
        numbers = [int(n) for spec in _BRACES.findall(text) for n in _DIGITS.findall(spec)]
        if _NESTED.search(text):  # a width given as an argument: ``{:>{w}}``
            given = [*args, *kwargs.values(), *(first.values() if isinstance(first, dict) else [])]
            numbers += [abs(v) for v in given if isinstance(v, int)]
        return len(text) + max(numbers, default=0) + text_size(args) + text_size(kwargs)
    if name == "format":  # the filter: printf-style
        return len(text) + _printf_size(text, tuple(args) or kwargs)
    if name == "wordwrap":  # the filter: a wrap string between lines
        wrap = kwargs.get("wrapstring", args[2] if len(args) > 2 else None)
        return len(text) + _wrapped_lines(text, args, kwargs) * len(str(wrap or "\n"))
    return 0


def _wrapped_lines(text: str, args: Sequence[Any], kwargs: dict[str, Any]) -> int:
    """How many lines the ``wordwrap`` filter could cut ``text`` into, at most."""
    width = kwargs.get("width", args[0] if args else 79)
    width = width if isinstance(width, int) and width > 0 else 1
    return len(text) // width + text.count("\n") + 1


def _join_size(separator: str, items: Sequence[Any]) -> int:
    size = len(separator) * max(len(items) - 1, 0)
    for item in items:
        size += text_size(item, MAX_RENDER_CHARS - size)
        if size > MAX_RENDER_CHARS:
            break
    return size


def _counted(items: Iterable[Any]) -> Iterator[Any]:
    """A loop's items, a step each."""
    for item in items:
        spend()
        yield item


def _joined(values: list[Any]) -> str:
    """``a ~ b ~ ...``, refused past the size bound before it is built."""
    _check_text(*values)
    texts = [str(value) for value in values]
    check_size(sum(len(text) for text in texts))
    return "".join(texts)


def _checked_filter(name: str, original: Callable[..., Any], text_at: int) -> Callable[..., Any]:
    """The filter ``original``, refused before it builds a string past the bound.

    ``text_at`` is the position of the filtered value among the arguments (1
    after a Jinja context argument)."""

    @functools.wraps(original)  # keeps the pass_eval_context mark of join and replace
    def checked(*args: Any, **kwargs: Any) -> Any:
        value, rest = args[text_at], args[text_at + 1 :]
        if name == "join":
            items = list(value)  # a generator is read once, here
            check_size(_join_size(str(rest[0] if rest else kwargs.get("d", "")), items))
            args = (*args[:text_at], items, *rest)
        else:  # the filters make text of any value first: ``1|center(10**9)`` too
            _check_text(value)
            text = str(value)
            check_size(_widened(name, text, rest, kwargs))
            if name == "wordwrap":
                lines = _wrapped_lines(text, rest, kwargs)
                spend(lines * (len(text) // _WRAP_CHARS_A_STEP + 1))
        return original(*args, **kwargs)

    return checked


def _texted_filter(original: Callable[..., Any], factor: int, value_at: int) -> Callable[..., Any]:
    """The filter ``original``, which turns its value (argument ``value_at``) into
    text at most ``factor`` times as long as the value's own, refused past the
    size bound first."""

    @functools.wraps(original)  # keeps the pass_eval_context mark of urlize and xmlattr
    def checked(*args: Any, **kwargs: Any) -> Any:
        value = args[value_at]
        if factor > 1 or not isinstance(value, str | int | float | None):
            _check_text(value, factor=factor)
        return original(*args, **kwargs)

    return checked


def _output(value: Any) -> Any:
    """An output value (``{{ ... }}``), refused before a long text is made of it."""
    _check_text(value)
    return value


@functools.cache
def environment() -> ImmutableSandboxedEnvironment:
    """The one bounded sandbox every stored template compiles in."""
    from jinja2 import StrictUndefined, pass_context
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Bounded(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "+", "%"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise _refuse(f"exponent {right} is larger than {MAX_EXPONENT}")
            if operator == "*":
                for items, times in ((left, right), (right, left)):
                    if isinstance(times, int) and _sized(items) * times > MAX_REPEAT:
                        raise _refuse(f"a repetition longer than {MAX_REPEAT}")
            if operator == "+" and isinstance(left, str | list | tuple):
                check_size(len(left) + _sized(right))
            if operator == "%" and isinstance(left, str):
                check_size(len(left) + _printf_size(left, right))
            return super().call_binop(context, operator, left, right)

        def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
            # ``"{:>99999999}".format(1)`` is sandboxed here, where it is looked up.
            sandboxed = super().wrap_str_format(value)
            if sandboxed is None:
                return None
            text, name = value.__self__, f"str.{value.__name__}"

            def checked(*args: Any, **kwargs: Any) -> str:
                check_size(_widened(name, text, args, kwargs))
                return sandboxed(*args, **kwargs)

            return checked

        def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
            owner = getattr(obj, "__self__", None)
            if isinstance(owner, str):  # a string's method
                name = obj.__name__
                if name == "join" and args and isinstance(args[0], list | tuple):
                    check_size(_join_size(owner, args[0]))
                else:
                    check_size(_widened(name, owner, args, kwargs))
            # After the size: a refusal that does not depend on the machine's speed goes first.
            spend()
            return super().call(context, obj, *args, **kwargs)

    # Prompts are not HTML: no autoescaping; keep the text's final newline.
    # ``finalize`` sees each output value before it becomes text.
    env = Bounded(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_output,
    )
    for name, text_at in (
        ("center", 0),
        ("indent", 0),
        ("format", 0),
        ("replace", 1),
        ("join", 1),
        ("wordwrap", 1),
    ):
        env.filters[name] = _checked_filter(name, env.filters[name], text_at)
    for name, (factor, value_at) in _TEXT_FACTORS.items():
        env.filters[name] = _texted_filter(env.filters[name], factor, value_at)
    # ``pass_context``: never run while compiling (constant folding), only rendering.
    env.filters["gatehouse_counted"] = pass_context(lambda context, items: _counted(items))
    env.filters["gatehouse_joined"] = pass_context(lambda context, values: _joined(values))
    return env


def bound(parsed: nodes.Template) -> nodes.Template:
    """``parsed``, with a step spent on each loop iteration and ``~`` bounded."""
    from jinja2 import nodes
    from jinja2.visitor import NodeTransformer

    class Bind(NodeTransformer):
        def visit_For(self, node: nodes.For) -> nodes.Node:
            self.generic_visit(node)
            node.iter = nodes.Filter(
                node.iter, "gatehouse_counted", [], [], None, None, lineno=node.lineno
            )
            return node

        def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
            self.generic_visit(node)
            values = nodes.List(node.nodes, lineno=node.lineno)
            return nodes.Filter(values, "gatehouse_joined", [], [], None, None, lineno=node.lineno)

    bound_template: nodes.Template = Bind().visit(parsed)
    return bound_template
