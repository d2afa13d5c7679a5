"""The `fleet dlq` options, defined once: queue and reason names as choice types built from
the catalog and service.dlq.reasons, the shared filter options, and how errors print."""

from __future__ import annotations

import functools
import inspect
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import redis
import typer
from redis.exceptions import RedisClusterException

from service.catalog.queues import CATALOG
from service.cli_support import error
from service.config.settings import get_settings
from service.dlq.reader import Filter
from service.dlq.reasons import Reason
from service.redaction import mask_text

_Command = TypeVar("_Command", bound=Callable[..., Any])

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


class NameChoice:
    """A parser for one of a fixed set of names: --help lists them, and a wrong one is a
    usage error (exit 2) that says which exist."""

    def __init__(self, kind: str, names: Sequence[str]) -> None:
        self.kind = kind
        self.names = tuple(names)

    def __call__(self, value: str) -> str:
        if value in self.names:
            return value
        # click prints this as text (never Rich markup): `[/]` in a name stays `[/]`.
        known = ", ".join(self.names)
        raise typer.BadParameter(f"unknown {self.kind} {value!r}; known {self.kind}s: {known}")

    def help(self, text: str) -> str:
        return f"{text} One of: {', '.join(self.names)}."


QUEUE_NAMES = NameChoice("queue", CATALOG.names)
REASON_NAMES = NameChoice("reason", [r.value for r in Reason])

QueueOption = Annotated[
    str | None,
    typer.Option("--queue", "-q", help=QUEUE_NAMES.help("Source queue."), parser=QUEUE_NAMES),
]
ToQueueOption = Annotated[
    str | None,
    typer.Option(
        "--to-queue", help=QUEUE_NAMES.help("Send to this queue instead."), parser=QUEUE_NAMES
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
EntryIds = Annotated[
    list[str] | None, typer.Argument(help="Entry ids; or use filters / --all.", show_default=False)
]
_AGE_HELP = "ISO time or age like 30m, 2h, 1d."
TaskOption = Annotated[str | None, typer.Option("--task", "-t", help="Exact task name.")]
ReasonOption = Annotated[
    str | None,
    typer.Option(
        "--reason", "-r", help=REASON_NAMES.help("Dead-letter reason."), parser=REASON_NAMES
    ),
]
SinceOption = Annotated[str | None, typer.Option("--since", help=_AGE_HELP)]
UntilOption = Annotated[str | None, typer.Option("--until", help=_AGE_HELP)]
# The filter shared by list, replay and purge: (parameter, annotation), in --help order.
_FILTER_PARAMETERS: tuple[tuple[str, Any], ...] = (
    ("queue", QueueOption),
    ("task", TaskOption),
    ("reason", ReasonOption),
    ("since", SinceOption),
    ("until", UntilOption),
)


def parse_time(value: str | None, option: str) -> int | None:
    """Milliseconds since the epoch, from ISO 8601 or a relative age ("30m" = 30 min ago)."""
    if value is None:
        return None
    match = _RELATIVE.match(value.strip())
    if match:
        return int((time.time() - float(match[1]) * _UNIT_SECONDS[match[2]]) * 1000)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise error(f"{option}: {value!r} is neither ISO 8601 nor an age like 30m/2h/1d") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def filter_options(command: _Command) -> _Command:
    """Give `command` the shared filter options; it receives them as one `flt: Filter`."""
    signature = inspect.signature(command, eval_str=True)
    params: list[inspect.Parameter] = []
    for param in signature.parameters.values():
        if param.name != "flt":
            params.append(param)
            continue
        # The shared options take flt's place, so --help lists them where flt stands.
        params += [
            inspect.Parameter(name, param.kind, default=None, annotation=hint)
            for name, hint in _FILTER_PARAMETERS
        ]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        queue, task, reason, since, until = (kwargs.pop(name) for name, _ in _FILTER_PARAMETERS)
        flt = Filter(
            queue, task, reason, parse_time(since, "--since"), parse_time(until, "--until")
        )
        return command(*args, flt=flt, **kwargs)

    # typer reads the signature and the type hints: both list the shared options, not flt.
    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        **{p.name: p.annotation for p in params},
        "return": signature.return_annotation,
    }
    return wrapper  # type: ignore[return-value]


def redis_errors(command: _Command) -> _Command:
    """Redis down, hung (socket timeout) or refusing: one line on stderr, exit 1. A cluster
    that cannot be reached raises RedisClusterException, which is no RedisError."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (redis.RedisError, RedisClusterException) as exc:
            detail = mask_text(str(exc), sensitive_keys(), limit=300).splitlines()
            raise error(
                f"Redis is unavailable ({type(exc).__name__}: {detail[0] if detail else ''})", 1
            ) from None

    return wrapper  # type: ignore[return-value]


def sensitive_keys() -> tuple[str, ...]:
    return get_settings().sensitive_keys
