"""The OpenAPI document, built from the route table and the pydantic models.

What it promises is checked against a running server by schemathesis
(tests/integration/test_api_fuzz.py, bench/fuzz_api.py): every status a route
answers is declared, and every body matches its declared schema. Successes are
declared as ``2XX`` (a create answers 201, an upsert 201 or 200, with the same
body); a stream's events by the ``data`` each carries; errors as ``default``,
in the shape the route answers them in: OpenAI's, Anthropic's on the Anthropic
routes, an HTML page on the dashboard's pages.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gatehouse.server.authz import PUBLIC
from gatehouse.server.routes.table import RouteSpec

_REF = "#/components/schemas/{model}"
_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
            "required": ["message", "type", "param", "code"],
        }
    },
    "required": ["error"],
}
_ANTHROPIC_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
            "required": ["type", "message"],
        },
    },
    "required": ["type", "error"],
}
_OPENAI_ERROR_CONTENT = {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}}
# Error bodies by route tag, where not OpenAI's (the route's ``error_shape``).
_ERROR_CONTENT: dict[str, dict[str, Any]] = {
    "anthropic": {"application/json": {"schema": {"$ref": _REF.format(model="AnthropicError")}}},
    # A page's errors are pages; a path no route matches (a file name with a
    # newline under /ui/static) is answered by the app, in the OpenAI shape.
    "ui": {"text/html": {"schema": {"type": "string"}}, **_OPENAI_ERROR_CONTENT},
}
_BEARER = "bearer"


def build_openapi(routes: list[RouteSpec], *, title: str, version: str) -> dict[str, Any]:
    models: set[type[BaseModel]] = set()
    for spec in routes:
        for model in (spec.request_model, spec.response_model, spec.stream_model):
            if model is not None:
                models.add(model)
    ordered = sorted(models, key=lambda m: m.__name__)
    keys, schema = models_json_schema([(m, "validation") for m in ordered], ref_template=_REF)
    components: dict[str, Any] = dict(schema.get("$defs", {}))
    components["Error"] = _ERROR_SCHEMA
    components["AnthropicError"] = _ANTHROPIC_ERROR_SCHEMA
    # An endpoint's name where it is unique; shared names (the CRUD endpoints
    # built once for teams, users and orgs) take the method and path instead.
    names = Counter(spec.endpoint.__name__ for spec in routes)

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return keys[(model, "validation")]

    paths: dict[str, Any] = {}
    for spec in routes:
        path = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", spec.path)
        operation: dict[str, Any] = {
            "summary": spec.summary,
            "tags": [spec.tag],
            "operationId": _operation_id(spec, path, names),
            "responses": {
                "default": {
                    "description": "Error",
                    "content": _ERROR_CONTENT.get(spec.tag, _OPENAI_ERROR_CONTENT),
                }
            },
        }
        if spec.scope == PUBLIC or spec.scope.startswith("ui:"):
            operation["security"] = []  # open, or the dashboard's session cookie
        else:
            operation["security"] = [{_BEARER: []}]
        params = re.findall(r"\{(\w+)", spec.path)
        if params:
            operation["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ]
        if spec.request_model is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(spec.request_model)}},
            }
        ok: dict[str, Any] = {"description": "OK"}
        content: dict[str, Any] = {}
        if spec.response_model is not None:
            content["application/json"] = {"schema": ref(spec.response_model)}
        if spec.stream_model is not None:
            content["text/event-stream"] = {"schema": _sse_event(ref(spec.stream_model))}
        if content:
            ok["content"] = content
        operation["responses"]["2XX"] = ok
        paths.setdefault(path, {})[spec.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                _BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The master key, a virtual key or a JWT.",
                }
            },
        },
    }


def _sse_event(payload: dict[str, Any]) -> dict[str, Any]:
    """One server-sent event: its ``data`` is a JSON ``payload``, or, after the
    stream has begun, one last error in the Error shape (the status is already
    sent), and the stream ends with ``[DONE]``."""
    json_data = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"anyOf": [payload, {"$ref": _REF.format(model="Error")}]},
    }
    return {
        "type": "object",
        "properties": {"data": {"anyOf": [{"const": "[DONE]"}, json_data]}},
        "required": ["data"],
    }


def _operation_id(spec: RouteSpec, path: str, names: Counter[str]) -> str:
    name = spec.endpoint.__name__
    if names[name] == 1:
        return name
    words = re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_")
    return f"{spec.method.lower()}_{words}"
