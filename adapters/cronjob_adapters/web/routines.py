"""The routines the ``python`` task type runs, and the schema of each one's arguments:
``GET /v1/routines`` and ``GET /v1/routines/{name}``."""

from __future__ import annotations

from typing import Annotated, Any

import pydantic
from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from cronjob_adapters.tasks.builtin_routines import PurgeArgs
from cronjob_adapters.tasks.python import MAX_NAME_LENGTH, PythonTaskHandler, Routine, RoutineRegistry
from cronjob_adapters.tasks.registry import TaskRegistry
from cronjob_adapters.web.problems import problem_responses

#: The rule of the example bodies: any valid one would do.
_EXAMPLE_SCHEDULE = "daily at 03:00"


class RoutineView(BaseModel):
    """A routine registered in code, which a `python` task runs by name."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "cronjob.purge_runs",
        "description": "Delete finished schedules not updated for ``older_than_days``.",
        "schema_url": "/v1/routines/cronjob.purge_runs",
        "timeout_seconds": None,
    }]})

    name: str = Field(description="What a `python` task names in `routine`.")
    description: str = Field(description="What it does (its docstring unless registered with one).")
    schema_url: str = Field(description="Where the JSON Schema of its `args` is.")
    timeout_seconds: float | None = Field(
        description="How long a run of it may take unless its schedule says (`run_timeout_seconds`); null: "
                    "the service's limit (`CRONJOB_RUN_TIMEOUT_SECONDS`).")


class RoutineDetail(RoutineView):
    """A routine with the JSON Schema of its arguments and, where one can be made, a request that
    schedules it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "cronjob.purge_runs",
        "description": "Delete finished schedules not updated for ``older_than_days``.",
        "schema_url": "/v1/routines/cronjob.purge_runs",
        "timeout_seconds": None,
        "args_schema": PurgeArgs.model_json_schema(),  # the built-in routine's own, as the route shows it
        "example": {"task": {"type": "python", "routine": "cronjob.purge_runs", "args": {
            "older_than_days": 30, "statuses": ["succeeded", "cancelled", "missed"], "limit": 10_000}},
                    "schedule": _EXAMPLE_SCHEDULE},
    }]})

    args_schema: dict[str, Any] = Field(description="JSON Schema of the task's `args`, which are checked "
                                                    "against it when the schedule is created (422 naming "
                                                    "`task.args.<field>`).")
    example: dict[str, Any] | None = Field(
        description="A `POST /v1/schedules` body that runs it daily: its `args` are the first of the schema's "
                    "`examples` that the routine accepts, else its defaults; null when it has neither (a "
                    "required argument, and no example).")


def _view(found: Routine) -> dict[str, Any]:
    return {"name": found.name, "description": found.description,
            "schema_url": f"/v1/routines/{found.name}",
            "timeout_seconds": found.timeout.total_seconds() if found.timeout is not None else None}


def _example_args(found: Routine, schema: dict[str, Any]) -> dict[str, Any] | None:
    """Arguments the routine accepts: the first of its schema's ``examples`` that validates, else
    its defaults (all of its fields have one, and together they validate), else None."""
    for candidate in [*schema.get("examples", ()), {}]:
        try:
            args = found.args_model.model_validate(candidate)
        except pydantic.ValidationError:
            continue
        return dict(candidate) if candidate else args.model_dump(mode="json")
    return None


def _detail(found: Routine) -> dict[str, Any]:
    schema = found.args_model.model_json_schema()
    args = _example_args(found, schema)
    example = None if args is None else {
        "task": {"type": PythonTaskHandler.task_type, "routine": found.name, "args": args},
        "schedule": _EXAMPLE_SCHEDULE}
    return {**_view(found), "args_schema": schema, "example": example}


def routines_router(routines: RoutineRegistry | None, task_types: TaskRegistry) -> APIRouter:
    """The two routes, for the API's router behind the bearer token (whose checks they take).
    ``routines`` are those the deployment's ``python`` task type runs. When ``task_types`` has
    no ``python`` type (or there are no ``routines``), no routine can be scheduled: the list is
    empty and every name a 404, as for a deployment that registered none (the routes stay, so
    that the API document is the same everywhere)."""
    router = APIRouter()
    served = task_types.get(PythonTaskHandler.task_type) is not None
    registry = routines if routines is not None and served else RoutineRegistry()

    @router.get("/v1/routines", response_model=list[RoutineView], tags=["task types"])
    async def list_routines() -> list[dict[str, Any]]:
        """The routines a `python` task can run here, by name, each with where its argument
        schema is. Empty when this deployment does not serve the `python` task type."""
        return [_view(found) for found in registry]

    @router.get("/v1/routines/{name}", response_model=RoutineDetail, tags=["task types"],
                responses=problem_responses(404))
    async def get_routine(
        name: Annotated[str, Path(max_length=MAX_NAME_LENGTH, examples=["cronjob.purge_runs"],
                                  description="The routine's registered name (dots and all).")],
    ) -> dict[str, Any]:
        """One routine with the JSON Schema of its `args` and a `POST /v1/schedules` body that
        runs it (null when its schema gives no example and its arguments have no defaults).
        An unknown name is a 404."""
        found = registry.get(name)
        if found is None:
            raise HTTPException(404, f"unknown routine {name!r}; registered: {', '.join(registry.names()) or 'none'}")
        return _detail(found)

    return router
