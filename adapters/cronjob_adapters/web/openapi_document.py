"""Completions of the app's OpenAPI document, made once when it is first built."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel


def extend_openapi(app: FastAPI, extend: Callable[[dict[str, Any]], None]) -> None:
    """Have ``extend`` complete the app's OpenAPI document once, when it is first built."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            extend(build())  # build() keeps the document in app.openapi_schema
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def keep_examples(models: Iterable[type[BaseModel]]) -> Callable[[dict[str, Any]], None]:
    """What puts the ``examples`` of ``models`` back into a document as the models give them.

    FastAPI writes its document without any member whose value is ``None``, inside examples
    too: an example's ``null`` (a nullable field that is required) was left out, so the example
    no longer fitted its own schema."""
    def extend(document: dict[str, Any]) -> None:
        schemas = document["components"]["schemas"]
        for model in models:
            schemas[model.__name__]["examples"] = model.model_json_schema()["examples"]
    return extend
