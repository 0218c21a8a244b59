"""Tasks: functions registered on a queue by name, their calls validated as job data."""

from __future__ import annotations

import asyncio
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from ..core._errors import PermanentError
from ._groups import GROUP_KIND, GroupOutcome

__all__ = ["GENERATE_KIND", "Task", "TaskCall", "task"]

P = ParamSpec("P")

GENERATE_KIND = "generate"


@dataclass(frozen=True, slots=True)
class TaskCall:
    """A validated call of a registered task: its name and JSON-ready arguments."""

    kind: str
    arguments: dict[str, Any]


class Task(Generic[P]):
    """A function registered on a queue under a name; ``call()`` makes a job of it.

    ``timeout`` (seconds, or None) bounds each run of its jobs unless ``submit`` gives
    one: a run past it is cancelled and retried as a failed attempt.
    """

    def __init__(self, fn: Callable[P, Any], name: str, *, timeout: float | None = None) -> None:
        if timeout is not None and not 0 < timeout < float("inf"):
            raise ValueError(f"task {name}: timeout must be > 0 seconds, got {timeout}")
        self.fn = fn
        self.name = name
        self.timeout = timeout
        self.signature = inspect.signature(fn)
        # A parameter annotated GroupOutcome is filled in by the worker when the task
        # runs as a group's on_complete; call() leaves it out.
        self.group_parameter = _group_parameter(fn, self.signature)
        self._arguments = _arguments_model(fn, name, skip=self.group_parameter)

    def __repr__(self) -> str:
        return f"Task({self.name!r})"

    def call(self, *args: P.args, **kwargs: P.kwargs) -> TaskCall:
        """Validate the arguments now (not in the worker) and return the job to submit.

        A parameter annotated ``GroupOutcome`` is left out: the worker fills it in when
        the call runs as a group's ``on_complete``.

        Raises:
            ValueError: Arguments that do not match the signature or are not JSON.
        """
        signature = self.signature
        if self.group_parameter is not None:
            signature = signature.replace(
                parameters=[
                    p for p in signature.parameters.values() if p.name != self.group_parameter
                ]
            )
        names = signature.parameters
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise ValueError(
                f"task {self.name}: unknown argument(s) {', '.join(unknown)}; it takes "
                f"{', '.join(names) or 'none'}"
            )
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ValueError(f"task {self.name}: {exc}") from None
        try:
            model = self._arguments.model_validate(dict(bound.arguments))
        except ValidationError as exc:
            raise ValueError(f"task {self.name}: invalid arguments: {exc}") from None
        return TaskCall(self.name, model.model_dump(mode="json"))

    async def run(self, arguments: dict[str, Any], *, group: GroupOutcome | None = None) -> Any:
        """Run the function with stored arguments (async or sync; sync runs in a thread),
        and ``group`` for its GroupOutcome parameter when it has one.

        Raises:
            PermanentError: It takes a GroupOutcome but runs outside a group.
        """
        values = self._arguments.model_validate(arguments)
        kwargs = {name: getattr(values, name) for name in type(values).model_fields}
        if self.group_parameter is not None:
            if group is None:
                raise PermanentError(
                    f"task {self.name} takes a GroupOutcome: submit it as a group's "
                    "on_complete (queue.submit_group(jobs, on_complete=...)), not alone"
                )
            kwargs[self.group_parameter] = group
        fn: Callable[..., Any] = self.fn
        if inspect.iscoroutinefunction(fn):
            return await fn(**kwargs)
        return await asyncio.to_thread(functools.partial(fn, **kwargs))


class _TaskMaker:
    def __init__(self, name: str | None, timeout: float | None) -> None:
        self.name = name
        self.timeout = timeout

    # A function whose first parameter takes the GroupOutcome (a group's on_complete)
    # makes a Task whose call() takes the rest: the worker fills that one in.
    @typing.overload
    def __call__(self, fn: Callable[Concatenate[GroupOutcome, P], Any]) -> Task[P]: ...

    @typing.overload
    def __call__(self, fn: Callable[P, Any]) -> Task[P]: ...

    def __call__(self, fn: Callable[..., Any]) -> Task[Any]:
        task_name = self.name or f"{fn.__module__}.{fn.__qualname__}"
        if task_name == GENERATE_KIND:
            raise ValueError(f"'{GENERATE_KIND}' is reserved for GenerationJobs")
        if task_name == GROUP_KIND:
            raise ValueError(f"'{GROUP_KIND}' is reserved for groups without on_complete")
        return Task(fn, task_name, timeout=self.timeout)


def task(*, name: str | None = None, timeout: float | None = None) -> _TaskMaker:
    """Make a Task of a function without a queue: ``@task()``, ``@task(name=...)``,
    ``@task(timeout=60)`` (seconds per run; a run past it is cancelled and retried).

    Register it on a queue with ``queue.register(t)``; ``asyncgen worker --tasks MODULE``
    registers every Task found in MODULE.

    Raises:
        ValueError: The reserved name "generate", or a timeout that is not > 0.
        TypeError: A signature with ``*args`` or ``**kwargs``.
    """
    return _TaskMaker(name, timeout)


def _group_parameter(fn: Callable[..., Any], signature: inspect.Signature) -> str | None:
    """The name of the first parameter when it is annotated GroupOutcome, else None.

    Raises:
        TypeError: A GroupOutcome parameter that is not the first (type checkers see
            only the first: ``call()`` leaves it out).
    """
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation that cannot be resolved: read it as written
        hints = {}
    found = [
        p.name
        for p in signature.parameters.values()
        if hints.get(p.name, p.annotation) is GroupOutcome or p.annotation == "GroupOutcome"
    ]
    if not found:
        return None
    if found != [next(iter(signature.parameters))]:
        raise TypeError(
            f"{fn.__qualname__}: the GroupOutcome parameter must be the first, and only one"
        )
    return found[0]


def _arguments_model(fn: Callable[..., Any], name: str, *, skip: str | None) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"task {name}: *args and **kwargs cannot be stored as job data")
        if parameter.name == skip:
            continue
        annotation = Any if parameter.annotation is parameter.empty else parameter.annotation
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=False)
    return create_model(f"{name}_arguments", __config__=config, **fields)
