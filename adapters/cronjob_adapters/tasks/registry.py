"""The task-type registry: each type's versioned payload schema, scheduling-time check and handler."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, create_model

from cronjob.domain.retry import RetryPolicy
from cronjob.ports.tasks import TaskHandler


@dataclass(frozen=True)
class TaskType:
    """A kind of work cronjob can schedule.

    ``payload_model`` is the payload's Pydantic schema (published as JSON Schema, version
    ``version``); ``prepare`` turns a validated payload (``model_dump(mode="json")``) into the
    stored one, raising the domain's ValidationError for what the schema cannot say (templates
    against params); ``handler`` runs it; ``default_retry`` applies unless a schedule has its own.
    """

    name: str
    version: int
    description: str
    payload_model: type[BaseModel]
    prepare: Callable[[dict[str, Any]], dict[str, Any]]
    handler: TaskHandler
    default_retry: RetryPolicy

    def task_model(self) -> type[BaseModel]:
        """The ``task`` object of ``POST /v1/schedules`` for this type: the payload plus ``type``."""
        class_name = "".join(part.capitalize() for part in self.name.replace("_", ".").split(".")) + "Task"
        return create_model(  # type: ignore[call-overload,no-any-return]
            class_name,
            __base__=self.payload_model,
            __doc__=self.description,
            type=(Literal[self.name], Field(description="The task type.")),  # type: ignore[valid-type]
        )


class TaskRegistry:
    """The task types of this deployment, by name."""

    def __init__(self, types: Iterable[TaskType]) -> None:
        self._types = {t.name: t for t in types}

    def __iter__(self) -> Any:
        return iter(sorted(self._types.values(), key=lambda t: t.name))

    def get(self, name: str) -> TaskType | None:
        return self._types.get(name)

    def names(self) -> list[str]:
        return sorted(self._types)

    def handlers(self) -> dict[str, TaskHandler]:
        return {t.name: t.handler for t in self._types.values()}

    def preparers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {t.name: t.prepare for t in self._types.values()}

    def default_retries(self) -> dict[str, RetryPolicy]:
        return {t.name: t.default_retry for t in self._types.values()}

    def task_union(self) -> Any:
        """``Annotated[Union[<each type's task model>], Field(discriminator="type")]``."""
        models = tuple(t.task_model() for t in self)
        return Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007 - built at run time
