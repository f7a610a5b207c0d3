"""The ``python`` task type: routines registered in code by name, each with a schema for its arguments.

Register one with the :func:`routine` decorator (the public API)::

    from pydantic import BaseModel
    from cronjob_adapters.tasks.python import RoutineContext, routine

    class Args(BaseModel):
        days: int = 7

    @routine("reports.weekly", Args, description="Weekly report")
    async def weekly(args: Args, context: RoutineContext) -> dict[str, str]:
        ...

then schedule ``{"task": {"type": "python", "routine": "reports.weekly", "args": {"days": 7}}, ...}``.
``@routine(..., timeout=timedelta(minutes=10))`` bounds how long a run may take (a schedule's own
``run_timeout_seconds`` still comes first); past it the routine is cancelled and the run fails
``run_timeout``: a routine that must clean up catches ``asyncio.CancelledError`` and re-raises it.
A plain ``def`` routine runs in a thread of its own, so that its blocking calls hold up nothing
else; a thread cannot be stopped: past the limit (or at a shutdown) the run ends all the same,
and the thread runs on until the function returns, its outcome dropped.
A routine returns a small ``dict[str, str]`` result (or None; other values are kept as their
``str()``, at most :data:`MAX_RESULT_CHARS` characters in all); anything else fails the run,
without a retry, as ``invalid_result``. Raising ``cronjob.domain.message.DeliveryError`` says
whether a retry may help; any other exception is retried under the schedule's retry policy.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, ClassVar, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cronjob.domain.errors import ValidationError
from cronjob.domain.json_values import MAX_NESTING, TOO_DEEP, check_storable, nesting_beyond
from cronjob.domain.message import DeliveryError
from cronjob.domain.schedule import Schedule, check_run_timeout
from cronjob.ports.clock import Clock
from cronjob.ports.repository import ScheduleRepository
from cronjob.ports.tasks import TaskHandler, TaskOutcome

from cronjob_adapters.tasks.routine_threads import abandoned_threads, is_async, run_in_thread
from cronjob_adapters.tasks.validation import domain_error, invalid_payload, value_error_at

ArgsT = TypeVar("ArgsT", bound=BaseModel)
#: The longest routine name a ``python`` task may give.
MAX_NAME_LENGTH = 200
#: The most characters a routine's result may hold, keys and values together: it is kept with
#: the schedule and in each run's ``succeeded`` event (a recurring schedule keeps 100 of them).
MAX_RESULT_CHARS = 16_384
#: How many threads of a plain ``def`` routine may still run calls whose runs were given up
#: before its runs fail with ``routine_stuck`` (see :func:`_check_not_stuck`).
MAX_ABANDONED_THREADS = 4


#: Schedules a task of a type with a payload, due now; returns the new schedule's id.
TaskScheduler = Callable[[str, dict[str, Any]], Awaitable[str]]

#: What a routine's name may be: it is a path segment of ``GET /v1/routines/{name}`` (no ``/``,
#: nothing a URL must escape, not only dots, which clients resolve away) and is typed by hand.
ROUTINE_NAME = re.compile(r"(?=.*[A-Za-z0-9])[A-Za-z0-9_.\-]{1,100}")


@dataclass
class RoutineContext:
    """What a routine may use: the store, the clock, the schedule it runs for, and
    ``schedule_task`` to hand follow-up work (an e-mail, an HTTP call) to the engine, which then
    runs it with its own retries, dead letters and events."""

    repository: ScheduleRepository
    clock: Clock
    schedule: Schedule
    schedule_task: TaskScheduler | None = None


#: A routine: ``async def f(args, context)`` or a plain ``def f(args, context)`` (run in a thread).
RoutineFunction = Callable[[Any, RoutineContext], Awaitable[dict[str, str] | None] | dict[str, str] | None]


@dataclass(frozen=True)
class Routine:
    """A registered routine: its name, argument schema and function, how long a run of it may
    take when its schedule does not say (None: the service's limit), and whether the function is
    a plain ``def``, run in a thread of its own (``in_thread``) rather than awaited."""

    name: str
    args_model: type[BaseModel]
    function: RoutineFunction
    description: str
    timeout: timedelta | None = None
    in_thread: bool = False


def _markdown(docstring: str | None) -> str:
    """A routine's docstring as the API's descriptions are written (Markdown): without the
    docstring's indentation, and RST's inline literals (in double backquotes) as Markdown's
    (in single ones)."""
    return _RST_LITERAL.sub(r"`\1`", inspect.cleandoc(docstring or ""))


_RST_LITERAL = re.compile(r"``([^`]+)``")


class RoutineRegistry:
    """Routines by name. :data:`routines` is the process-wide one the decorator fills."""

    def __init__(self) -> None:
        self._routines: dict[str, Routine] = {}

    def register(self, name: str, args_model: type[BaseModel], function: RoutineFunction,
                 description: str = "", timeout: timedelta | None = None) -> None:
        if not ROUTINE_NAME.fullmatch(name):
            raise ValueError(f"routine name {name!r}: use letters, digits and . _ - only (1 to 100 of them, "
                             "not only punctuation), so that GET /v1/routines/{name} reaches it")
        if name in self._routines and self._routines[name].function is not function:
            raise ValueError(f"a routine named {name!r} is already registered")
        try:
            check_run_timeout(timeout)
        except ValidationError as exc:
            raise ValueError(f"routine {name!r}: {exc.message}") from None
        try:  # published by GET /v1/routines/{name}: a model that has none fails here, not there
            args_model.model_json_schema()
        except pydantic.PydanticUserError as exc:
            raise ValueError(f"routine {name!r}: its arguments have no JSON Schema: {exc.message}") from None
        self._routines[name] = Routine(name, args_model, function, description or _markdown(function.__doc__),
                                       timeout, in_thread=not is_async(function))

    def get(self, name: str) -> Routine | None:
        return self._routines.get(name)

    def names(self) -> list[str]:
        return sorted(self._routines)

    def __iter__(self) -> Iterator[Routine]:
        """The registered routines, by name."""
        return iter([self._routines[name] for name in self.names()])


routines = RoutineRegistry()


def routine(name: str, args_model: type[ArgsT], *, description: str = "", timeout: timedelta | None = None,
            registry: RoutineRegistry | None = None) -> Callable[[RoutineFunction], RoutineFunction]:
    """Register the decorated ``async def f(args, context)`` as the routine ``name``; ``timeout``:
    how long a run may take unless its schedule has its own ``run_timeout_seconds`` (default: the
    service's ``CRONJOB_RUN_TIMEOUT_SECONDS``; more than 0, at most a day)."""

    def register(function: RoutineFunction) -> RoutineFunction:
        (registry or routines).register(name, args_model, function, description, timeout)
        return function

    return register


class PythonPayload(BaseModel):
    """Run a routine registered in code, with arguments checked against its schema."""

    model_config = ConfigDict(extra="forbid")
    VERSION: ClassVar[int] = 1

    routine: Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH,
                                  description="The routine's registered name (`GET /v1/routines` lists them).")]
    args: Annotated[dict[str, Any], Field(default_factory=dict, description="Arguments, per the routine's schema "
                                                                          "(`GET /v1/routines/{name}`); nested "
                                                                          f"at most {MAX_NESTING} levels.")]

    @field_validator("args")
    @classmethod
    def _not_too_deep(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Nested too deep for a store (and for the model's own serializer): refused here, naming
        where, rather than a server error."""
        if (deep := nesting_beyond(value, MAX_NESTING)) is not None:
            raise value_error_at(deep, TOO_DEEP)
        return value


def _check_args(found: Routine, args: dict[str, Any], context: Mapping[str, Any] | None = None) -> BaseModel:
    try:
        return found.args_model.model_validate(args, context=context)
    except pydantic.ValidationError as exc:
        error = domain_error(exc)
        raise ValidationError(error.message, field=f"args.{error.field}" if error.field else "args") from None


def python_preparer(registry: RoutineRegistry,
                    context: Mapping[str, Any] | None = None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The scheduling-time check: the routine exists and the arguments fit its schema.
    ``context`` is the validation context of the arguments' model: what this deployment offers
    (``email_configured``), for checks that can only be made when the schedule is created."""

    def prepare(payload: dict[str, Any]) -> dict[str, Any]:
        found = registry.get(payload["routine"])
        if found is None:
            raise ValidationError(f"unknown routine {payload['routine']!r}; registered: {', '.join(registry.names())}",
                                  field="routine")
        args = _check_args(found, dict(payload.get("args") or {}), dict(context or {}))
        return {"routine": found.name, "args": args.model_dump(mode="json")}

    return prepare


class PythonTaskHandler(TaskHandler):
    """Runs the routine named in the payload."""

    task_type = "python"

    def __init__(self, registry: RoutineRegistry, repository: ScheduleRepository, clock: Clock,
                 schedule_task: TaskScheduler | None = None) -> None:
        self._registry = registry
        self._repository = repository
        self._clock = clock
        self._schedule_task = schedule_task

    def _routine(self, schedule: Schedule) -> Routine | None:
        return self._registry.get(str(schedule.payload.get("routine")))

    def run_timeout(self, schedule: Schedule) -> timedelta | None:
        """The routine's own limit (see :func:`routine`)."""
        found = self._routine(schedule)
        return found.timeout if found is not None else None

    async def run(self, schedule: Schedule) -> TaskOutcome:
        found = self._routine(schedule)
        if found is None:
            raise DeliveryError("unknown_routine", f"no routine {schedule.payload.get('routine')!r} in this build",
                                retryable=False)
        try:
            args = _check_args(found, dict(schedule.payload.get("args") or {}))
        except ValidationError as exc:
            raise invalid_payload(exc) from None
        context = RoutineContext(self._repository, self._clock, schedule, self._schedule_task)
        if found.in_thread:
            _check_not_stuck(found.name)
            result = await run_in_thread(found.name, found.function, args, context)
            if inspect.isawaitable(result):  # a plain def that hands back a coroutine
                result = await result
        else:
            try:
                result = await found.function(args, context)
            except SystemExit as exc:  # sys.exit() in a routine ends its run, not the service
                raise RuntimeError(f"SystemExit: {exc}") from None
        return TaskOutcome(result=routine_result(found.name, result))


def _check_not_stuck(name: str) -> None:
    """``DeliveryError`` ``routine_stuck`` (retried as its policy says) while
    :data:`MAX_ABANDONED_THREADS` calls of the plain ``def`` routine ``name`` whose runs were
    given up still run in their threads: one that hangs (a call without a timeout) would
    otherwise leave a thread behind at every run until the process runs out of them."""
    stuck = abandoned_threads(name)
    if stuck >= MAX_ABANDONED_THREADS:
        raise DeliveryError("routine_stuck", f"{stuck} earlier runs of routine {name!r} were given up (their time "
                                             "limit, or a shutdown) and still run in their threads; it runs again "
                                             "once fewer than that do", retryable=True)


def routine_result(name: str, returned: object) -> dict[str, str]:
    """The run's result from what the routine ``name`` returned: None is no result, a mapping its
    items with keys and values as text (``str()``). Anything else, or a result above
    :data:`MAX_RESULT_CHARS` or that no store can keep, is ``DeliveryError`` ``invalid_result``,
    not retried: the routine has run to its end, and a retry would only do its work again."""
    if returned is None:
        return {}
    if not isinstance(returned, Mapping):
        raise _invalid_result(name, f"returned {type(returned).__name__}, not a dict (or None)")
    result = {str(key): value if isinstance(value, str) else str(value) for key, value in returned.items()}
    size = sum(len(key) + len(value) for key, value in result.items())
    if size > MAX_RESULT_CHARS:
        raise _invalid_result(name, f"returned a result of {size} characters (keys and values), "
                                    f"more than {MAX_RESULT_CHARS}")
    try:
        check_storable(result)
    except ValidationError as exc:
        raise _invalid_result(name, f"returned a result that cannot be stored: {exc.field}: {exc.message}") from None
    return result


def _invalid_result(name: str, what: str) -> DeliveryError:
    return DeliveryError("invalid_result", f"routine {name!r} {what}; it ran to its end, so it is not run again",
                         retryable=False)
