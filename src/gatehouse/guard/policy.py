"""Policies: what to do with each entity type, content category and injection signal.

A :class:`Policy` maps entity types to an action:

- ``allow``: leave the value alone;
- ``redact``: replace it by ``[TYPE]``, for good;
- ``mask``: replace it by a placeholder (``[EMAIL_1]``) that is stable within
  the request (the same value gets the same placeholder everywhere) and put
  the value back in the response, streamed ones included;
- ``block``: refuse the request, naming the rule and never the value.

It also holds the content categories, the entity rules on answers and what
to do with prompt-injection signals (``flag`` or ``block``). A
:class:`PolicySet` gives each call its policy: the default, with the caller
team's, key's and model's overrides. :mod:`gatehouse.guard.request` applies
a policy to one request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from gatehouse.core.config import GuardConfig
from gatehouse.guard.classifier import ClassifierRule, load_classifier
from gatehouse.guard.content import ContentAction, ContentPolicy, ContentRule, EntityRules, Rule
from gatehouse.guard.recognizers import Recognizer

Action = Literal["allow", "flag", "redact", "mask", "block", "wrap"]
# The actions an entity rule may take (``wrap`` is for retrieved passages only).
ACTIONS: tuple[Action, ...] = ("allow", "flag", "redact", "mask", "block")
# Stronger actions win when one policy is asked about several findings.
_STRENGTH = {"allow": 0, "flag": 1, "wrap": 2, "redact": 2, "mask": 2, "block": 3}


def strength(action: Action) -> int:
    """How strong an action is, to pick the strongest of several (block > mask,
    redact > flag > allow)."""
    return _STRENGTH[action]


@dataclass(frozen=True, slots=True)
class InjectionPolicy:
    """What to do with prompt-injection signals in messages of ``roles``."""

    action: Literal["off", "flag", "block"] = "off"
    roles: frozenset[str] = frozenset({"user", "tool"})
    min_score: float = 0.5
    # Scores of your own (``guard.injection.classifier``): ``injection.classifier.<category>``.
    classifier: ClassifierRule | None = None
    # Retrieved passages quoted in a request (RAG answers): flag, block or wrap as data.
    retrieved: Literal["off", "flag", "block", "wrap"] = "off"

    def rule(self, kind: str) -> str:
        return f"injection.{kind}"


@dataclass(frozen=True, slots=True)
class Policy:
    """The action per entity type (types not listed are allowed) and the least
    score a finding needs before the policy acts on it."""

    actions: Mapping[str, Action] = field(default_factory=dict)
    min_score: float = 0.0
    content: ContentPolicy = field(default_factory=ContentPolicy)
    injection: InjectionPolicy = field(default_factory=InjectionPolicy)
    # Entity types acted on in answers: redact or block (``guard.output_entities``).
    output_entities: Mapping[str, ContentAction] = field(default_factory=dict)
    # Detectors beyond the built-in ones (names, places: guard.presidio).
    recognizers: tuple[Recognizer, ...] = ()
    # A classifier of your own on request texts (``guard.content_classifier``).
    content_classifier: ClassifierRule | None = None
    # Worked out once: every request asks.
    _types: frozenset[str] = field(init=False, repr=False, compare=False)
    _output: tuple[Rule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        types = frozenset(t for t, a in self.actions.items() if a != "allow")
        object.__setattr__(self, "_types", types)
        output: tuple[Rule, ...] = self.content.output_rules()
        if self.output_entities:
            output = (*output, EntityRules(self.output_entities, self.min_score))
        object.__setattr__(self, "_output", output)

    def output_rules(self) -> tuple[Rule, ...]:
        """What answers are checked against: content categories, then entity rules."""
        return self._output

    @classmethod
    def from_config(cls, config: GuardConfig) -> Policy:
        """The policy the ``guard:`` section declares; allows everything while it is off."""
        if not config.enabled:
            return cls()
        rules = tuple(
            ContentRule.build(
                category.name,
                keywords=category.keywords,
                patterns=category.patterns,
                action=category.action,
                on_input="input" in category.apply_to,
                on_output="output" in category.apply_to,
            )
            for category in config.content
        )
        injection = config.injection
        recognizers: tuple[Recognizer, ...] = ()
        if config.presidio.enabled:
            from gatehouse.guard.presidio import PresidioRecognizer

            recognizers = (
                PresidioRecognizer(
                    model=config.presidio.model,
                    language=config.presidio.language,
                    types=frozenset(config.presidio.types),
                ),
            )
        content_classifier = None
        if (found := config.content_classifier) is not None:
            content_classifier = ClassifierRule(
                load_classifier(found.factory), found.action, found.min_score, "content"
            )
        injection_classifier = None
        if injection.classifier is not None and injection.action != "off":
            injection_classifier = ClassifierRule(
                load_classifier(injection.classifier),
                injection.action,
                injection.min_score,
                "injection",
            )
        return cls(
            actions=config.entities.actions(),
            min_score=config.min_score,
            content=ContentPolicy(rules, window=config.output_window),
            injection=InjectionPolicy(
                injection.action,
                frozenset(injection.roles),
                injection.min_score,
                injection_classifier,
                injection.retrieved,
            ),
            output_entities=config.output_entities.actions(),
            recognizers=recognizers,
            content_classifier=content_classifier,
        )

    @property
    def blocking(self) -> bool:
        """Whether checking a request may block (a recogniser or classifier runs a
        model): the guard stage then runs it in a worker thread."""
        return bool(self.recognizers or self.content_classifier or self.injection.classifier)

    def active(self) -> bool:
        """Whether the policy acts on anything at all."""
        return bool(
            self._types
            or self.content.rules
            or self.content_classifier
            or self.output_entities
            or self.injection.action != "off"
            or self.injection.retrieved != "off"
        )

    def action(self, entity_type: str) -> Action:
        return self.actions.get(entity_type, "allow")

    def active_types(self) -> frozenset[str]:
        """The types the policy acts on: only these need scanning."""
        return self._types

    @staticmethod
    def rule(entity_type: str) -> str:
        """The name a decision is reported under (``entities.US_SSN``)."""
        return f"entities.{entity_type}"


class PolicySet:
    """The default policy and its per-team, per-key and per-model overrides.

    :meth:`policy_for` gives the policy of one call: the default's entity
    actions, replaced by the caller team's override where it sets a type, then
    by the caller key's, then by the model's (the name the client sent, or the
    group an alias points to). Content categories, injection and ``min_score``
    are the default's.
    """

    def __init__(
        self,
        default: Policy,
        *,
        teams: Mapping[str, Mapping[str, Action]] | None = None,
        keys: Mapping[str, Mapping[str, Action]] | None = None,
        models: Mapping[str, Mapping[str, Action]] | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.default = default
        self._teams = dict(teams or {})
        self._keys = dict(keys or {})
        self._models = dict(models or {})
        self._aliases = dict(aliases or {})
        # One per combination that the config names: bounded by the config.
        self._combined: dict[tuple[str | None, str | None, str | None], Policy] = {}

    @classmethod
    def from_config(
        cls, config: GuardConfig, aliases: Mapping[str, str] | None = None
    ) -> PolicySet:
        if not config.enabled:
            return cls(Policy())
        return cls(
            Policy.from_config(config),
            teams={name: o.entities.actions() for name, o in config.teams.items()},
            keys={name: o.entities.actions() for name, o in config.keys.items()},
            models={name: o.entities.actions() for name, o in config.models.items()},
            aliases=aliases,
        )

    def with_overrides(
        self,
        *,
        teams: Mapping[str, Mapping[str, Action]],
        keys: Mapping[str, Mapping[str, Action]],
    ) -> PolicySet:
        """This set with ``teams``' and ``keys``' overrides (set through the admin
        API) in place of the config's for the same team or key."""
        return PolicySet(
            self.default,
            teams={**self._teams, **teams},
            keys={**self._keys, **keys},
            models=self._models,
            aliases=self._aliases,
        )

    def active(self) -> bool:
        """Whether any call can meet a rule that acts."""
        overrides = [*self._teams.values(), *self._keys.values(), *self._models.values()]
        return self.default.active() or any(
            action != "allow" for actions in overrides for action in actions.values()
        )

    def policy_for(self, team: str | None, model: str | None, key: str | None = None) -> Policy:
        team_key = team if team in self._teams else None
        key_key = key if key in self._keys else None
        model_key = None
        if model is not None:
            if model in self._models:
                model_key = model
            elif self._aliases.get(model) in self._models:
                model_key = self._aliases[model]
        if team_key is None and key_key is None and model_key is None:
            return self.default
        combination = (team_key, key_key, model_key)
        policy = self._combined.get(combination)
        if policy is None:
            actions = dict(self.default.actions)
            if team_key is not None:
                actions.update(self._teams[team_key])
            if key_key is not None:
                actions.update(self._keys[key_key])
            if model_key is not None:
                actions.update(self._models[model_key])
            policy = self._combined[combination] = Policy(
                actions={t: a for t, a in actions.items() if a != "allow"},
                min_score=self.default.min_score,
                content=self.default.content,
                injection=self.default.injection,
                output_entities=self.default.output_entities,
                recognizers=self.default.recognizers,
                content_classifier=self.default.content_classifier,
            )
        return policy
