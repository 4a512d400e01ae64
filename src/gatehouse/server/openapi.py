"""The OpenAPI document, built from the route table and the pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

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

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return keys[(model, "validation")]

    paths: dict[str, Any] = {}
    for spec in routes:
        path = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", spec.path)
        operation: dict[str, Any] = {
            "summary": spec.summary,
            "tags": [spec.tag],
            "operationId": spec.endpoint.__name__,
            "responses": {
                "default": {
                    "description": "Error",
                    "content": {
                        "application/json": {"schema": {"$ref": _REF.format(model="Error")}}
                    },
                }
            },
        }
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
            content["text/event-stream"] = {"schema": ref(spec.stream_model)}
        if content:
            ok["content"] = content
        operation["responses"]["200"] = ok
        paths.setdefault(path, {})[spec.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": components},
    }
