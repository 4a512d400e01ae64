"""Prompt patterns, run through the gatehouse client as its caller.

- :mod:`~gatehouse.prompts.templates`: sandboxed, named and versioned Jinja2
  templates with declared, checked variables.
- :mod:`~gatehouse.prompts.fewshot`: examples chosen by embedding similarity
  and a token budget.
- :mod:`~gatehouse.prompts.reasoning`: chain-of-thought prompts and the final
  answer read apart from the reasoning.
- :mod:`~gatehouse.prompts.tree`: tree-of-thought search with model-scored,
  bounded expansion.
- :mod:`~gatehouse.prompts.structured`: a pydantic model or JSON schema in, a
  validated object out.
- :mod:`~gatehouse.prompts.compression`: a conversation fitted to a token budget.

The patterns that call a model are generators of model calls (``.flow(...)``),
run with :func:`run` (a :class:`~gatehouse.Client`) or :func:`arun` (an
:class:`~gatehouse.AsyncClient`). See ``docs/prompts.md``.
"""

from gatehouse.prompts._flow import Flow, arun, run
from gatehouse.prompts.compression import Compressed, Compressor, count_tokens
from gatehouse.prompts.fewshot import Example, FewShotSelector
from gatehouse.prompts.reasoning import (
    DATA_ANALYSIS,
    DEBUGGING,
    PROBLEM_SOLVING,
    ChainOfThought,
    Reasoned,
    extract_answer,
)
from gatehouse.prompts.structured import (
    Structured,
    StructuredOutput,
    StructuredOutputError,
    extract_json,
)
from gatehouse.prompts.templates import (
    PromptTemplate,
    TemplateError,
    TemplateRegistry,
    TemplateVariableError,
    Variable,
)
from gatehouse.prompts.tree import ThoughtNode, ThoughtTree, TreeOfThought, parse_score

__all__ = [
    "DATA_ANALYSIS",
    "DEBUGGING",
    "PROBLEM_SOLVING",
    "ChainOfThought",
    "Compressed",
    "Compressor",
    "Example",
    "FewShotSelector",
    "Flow",
    "PromptTemplate",
    "Reasoned",
    "Structured",
    "StructuredOutput",
    "StructuredOutputError",
    "TemplateError",
    "TemplateRegistry",
    "TemplateVariableError",
    "ThoughtNode",
    "ThoughtTree",
    "TreeOfThought",
    "Variable",
    "arun",
    "count_tokens",
    "extract_answer",
    "extract_json",
    "parse_score",
    "run",
]
