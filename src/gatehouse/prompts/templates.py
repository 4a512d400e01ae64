"""Named, versioned prompt templates: sandboxed Jinja2 with declared variables.

A :class:`PromptTemplate` declares its variables and their types; rendering
checks the values first (a missing, undeclared or wrongly typed variable is a
:class:`TemplateVariableError` naming each one) and then renders in Jinja2's
``ImmutableSandboxedEnvironment`` with ``StrictUndefined``: a template can
neither reach Python internals nor change the values it is given, and a name
it uses but was not given is an error, never an empty string. A template
that uses a variable it does not declare, or names a dunder attribute
(``x.__class__``), is refused when it is defined.

A template stored in the gateway renders in the server's process, so the
sandbox (:mod:`gatehouse.prompts._sandbox`) also bounds what a rendering may
cost: steps (loop iterations and calls, 500,000), time (0.5 s) and the size of
its output and of any string it builds (10 million characters), as well as
``*`` and ``**``. Nested loops over large ranges, a recursive macro or a string
doubled in a loop stop with a :class:`TemplateError` naming the bound.

A :class:`TemplateRegistry` holds templates by name and version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gatehouse.core.types import ChatMessage
from gatehouse.prompts._sandbox import bound, check_size, environment, rendering

if TYPE_CHECKING:
    from jinja2 import Template

# The value types a variable may declare (JSON's, as Python types).
VariableType = (
    type[str] | type[int] | type[float] | type[bool] | type[list[Any]] | type[dict[Any, Any]]
)
# The same types by their JSON-schema names, as a stored template declares them.
JSON_TYPES: dict[str, VariableType] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}
_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "a list",
    dict: "an object",
}


class TemplateError(ValueError):
    """A template that cannot be defined or rendered."""


class TemplateVariableError(TemplateError):
    """The values given to a template do not match its declared variables."""

    def __init__(self, template: str, problems: Sequence[str]) -> None:
        super().__init__(f"template {template!r}: " + "; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class Variable:
    """A declared template variable: its type, whether it must be given, its default."""

    type: VariableType = str
    required: bool = True
    default: Any = None
    description: str = ""

    def check(self, name: str, value: Any) -> str | None:
        """What is wrong with ``value`` for this variable, or ``None``."""
        expected = self.type
        # bool is an int to Python, never to a template's author.
        if isinstance(value, bool) and expected is not bool:
            ok = False
        elif expected is float:
            ok = isinstance(value, int | float)
        else:
            ok = isinstance(value, expected)
        if ok:
            return None
        return (
            f"variable {name!r} must be {_TYPE_NAMES.get(expected, expected.__name__)}, "
            f"got {type(value).__name__}"
        )


def _compile(name: str, source: str, declared: set[str]) -> Template:
    from jinja2 import TemplateSyntaxError, meta, nodes

    env = environment()
    try:
        parsed = env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template {name!r} line {exc.lineno}: {exc.message}") from None
    unknown = sorted(meta.find_undeclared_variables(parsed) - declared)
    if unknown:
        raise TemplateError(f"template {name!r} uses undeclared variables: {', '.join(unknown)}")
    for node in parsed.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            attribute: str | None = node.attr
        else:
            assert isinstance(node, nodes.Getitem)
            attribute = _constant(node.arg)
        if attribute is not None and attribute.startswith("__"):
            raise TemplateError(
                f"template {name!r} line {node.lineno}: {attribute!r} reaches Python internals"
            )
    return env.from_string(bound(parsed))


def _constant(node: Any) -> str | None:
    from jinja2 import nodes

    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return node.value
    return None


@dataclass(frozen=True)
class PromptTemplate:
    """A named, versioned prompt: an optional system part and a user part.

    ``variables`` maps each name to a :class:`Variable` or simply to its type
    (required, no default).
    """

    name: str
    template: str
    version: int = 1
    variables: Mapping[str, Variable | VariableType] = field(default_factory=dict)
    system: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.version < 1:
            raise TemplateError(f"template {self.name!r}: version must be 1 or more")
        declared = self.declared()
        compiled = [_compile(self.name, self.template, set(declared))]
        if self.system is not None:
            compiled.append(_compile(f"{self.name}.system", self.system, set(declared)))
        object.__setattr__(self, "_compiled", compiled)

    def declared(self) -> dict[str, Variable]:
        return {
            name: spec if isinstance(spec, Variable) else Variable(type=spec)
            for name, spec in self.variables.items()
        }

    def values(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """``given`` checked against the declared variables, with defaults filled in."""
        declared = self.declared()
        problems = [
            f"missing variable {n!r}" for n, v in declared.items() if v.required and n not in given
        ]
        problems += [f"undeclared variable {n!r}" for n in given if n not in declared]
        for name, value in given.items():
            if name in declared and (problem := declared[name].check(name, value)):
                problems.append(problem)
        if problems:
            raise TemplateVariableError(self.name, problems)
        return {
            **{n: v.default for n, v in declared.items() if not v.required},
            **given,
        }

    def render(self, /, **values: Any) -> str:
        """The user part, rendered."""
        return self._render(0, self.values(values))

    def messages(self, /, **values: Any) -> list[ChatMessage]:
        """The chat messages: the system part (if any), then the user part."""
        checked = self.values(values)
        out = []
        if self.system is not None:
            out.append(ChatMessage(role="system", content=self._render(1, checked)))
        out.append(ChatMessage(role="user", content=self._render(0, checked)))
        return out

    def _render(self, index: int, values: dict[str, Any]) -> str:
        from jinja2 import TemplateError as JinjaError

        compiled: list[Template] = getattr(self, "_compiled")  # noqa: B009
        pieces: list[str] = []
        size = 0
        try:
            with rendering():
                for piece in compiled[index].generate(values):
                    size += len(piece)
                    check_size(size, charge=False)  # built already, by the pieces
                    pieces.append(piece)
        # SecurityError (the bounds) and UndefinedError among them; OverflowError
        # is the sandbox's refusal of a range past 100,000 items; RecursionError,
        # a macro that calls itself without end. The rest is Python failing on the
        # values given (a divisor of 0, text plus a number, an integer too long
        # to print): the template's or its caller's error, never the server's.
        except (
            JinjaError,
            ArithmeticError,
            LookupError,
            TypeError,
            ValueError,
            RecursionError,
        ) as exc:
            raise TemplateError(f"template {self.name!r}: {exc}") from None
        return "".join(pieces)


class TemplateRegistry:
    """Templates by name and version; the latest version unless one is asked for."""

    def __init__(self, templates: Sequence[PromptTemplate] = ()) -> None:
        self._templates: dict[str, dict[int, PromptTemplate]] = {}
        for template in templates:
            self.register(template)

    def register(self, template: PromptTemplate) -> PromptTemplate:
        """Add a template. A version, once registered, cannot be changed."""
        versions = self._templates.setdefault(template.name, {})
        known = versions.get(template.version)
        if known is not None and known != template:
            raise TemplateError(
                f"template {template.name!r} version {template.version} is already registered "
                "with other content: register a new version"
            )
        versions[template.version] = template
        return template

    def get(self, name: str, version: int | None = None) -> PromptTemplate:
        versions = self._templates.get(name)
        if not versions:
            raise KeyError(f"no template named {name!r}")
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise KeyError(f"template {name!r} has no version {version} (has {sorted(versions)})")
        return versions[version]

    def versions(self, name: str) -> list[int]:
        return sorted(self._templates.get(name, {}))

    def names(self) -> list[str]:
        return sorted(self._templates)
