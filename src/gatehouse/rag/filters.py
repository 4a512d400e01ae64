"""Metadata filters: Chroma's ``where`` language, validated and evaluated in process.

``{"field": value}`` is equality; ``{"field": {"$op": value}}`` with ``$eq``,
``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$in``, ``$nin``; and
``{"$and": [...]}`` / ``{"$or": [...]}``. Several keys in one object are
ANDed. Using Chroma's syntax means the Chroma backend passes a filter through
unchanged, and the embedded index evaluates the same meaning here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from gatehouse.core.errors import ValidationFailedError

Scalar = str | int | float | bool
Predicate = Callable[[Mapping[str, Any]], bool]

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": lambda a, b: a == b,
    "$ne": lambda a, b: a != b,
    "$gt": lambda a, b: a is not None and _ordered(a, b) and a > b,
    "$gte": lambda a, b: a is not None and _ordered(a, b) and a >= b,
    "$lt": lambda a, b: a is not None and _ordered(a, b) and a < b,
    "$lte": lambda a, b: a is not None and _ordered(a, b) and a <= b,
    "$in": lambda a, b: a in b,
    "$nin": lambda a, b: a not in b,
}


def _ordered(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return (isinstance(a, numbers) and isinstance(b, numbers)) or (
        isinstance(a, str) and isinstance(b, str)
    )


def fields(where: Mapping[str, Any]) -> set[str]:
    """Every metadata field a filter names."""
    found: set[str] = set()
    for key, value in where.items():
        if key in ("$and", "$or"):
            for clause in value:
                found |= fields(clause)
        else:
            found.add(key)
    return found


def compile_filter(where: Mapping[str, Any], known: Collection[str]) -> Predicate:
    """Check ``where`` against the ``known`` fields and build a predicate over metadata.

    Raises :class:`ValidationFailedError` (param ``filter``) for a malformed
    filter or a field the collection has never seen.
    """
    if not isinstance(where, Mapping):
        raise ValidationFailedError("filter must be a JSON object", param="filter")
    return _compile(where, known)


def _compile(where: Mapping[str, Any], known: Collection[str]) -> Predicate:
    if not where:
        raise ValidationFailedError("filter objects may not be empty", param="filter")
    clauses: list[Predicate] = []
    for key, value in where.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise ValidationFailedError(f"{key} takes a non-empty list", param="filter")
            subs = [_compile(_mapping(item), known) for item in value]
            clauses.append(_all(subs) if key == "$and" else _any(subs))
        elif key.startswith("$"):
            raise ValidationFailedError(f"unknown filter operator {key}", param="filter")
        else:
            if key not in known:
                raise ValidationFailedError(
                    f"unknown filter field '{key}'; known fields: {', '.join(sorted(known))}",
                    param="filter",
                )
            clauses.append(_field_clause(key, value))
    return lambda m: all(p(m) for p in clauses)


def _field_clause(field: str, condition: Any) -> Predicate:
    if not isinstance(condition, Mapping):
        condition = {"$eq": condition}
    tests: list[Predicate] = []
    for op, operand in condition.items():
        compare = _COMPARE.get(op)
        if compare is None:
            raise ValidationFailedError(f"unknown operator {op} on field '{field}'", param="filter")
        if op in ("$in", "$nin"):
            if not isinstance(operand, list) or not all(_scalar(v) for v in operand):
                raise ValidationFailedError(f"{op} takes a list of scalars", param="filter")
        elif not _scalar(operand):
            raise ValidationFailedError(f"{op} takes a scalar value", param="filter")
        tests.append(_compare(field, compare, operand))
    return lambda m: all(t(m) for t in tests)


def _all(predicates: list[Predicate]) -> Predicate:
    return lambda m: all(p(m) for p in predicates)


def _any(predicates: list[Predicate]) -> Predicate:
    return lambda m: any(p(m) for p in predicates)


def _compare(field: str, compare: Callable[[Any, Any], bool], operand: Any) -> Predicate:
    return lambda m: compare(m.get(field), operand)


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationFailedError("each $and/$or clause must be an object", param="filter")
    return value


def _scalar(value: Any) -> bool:
    return isinstance(value, Scalar)
