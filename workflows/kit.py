"""The saga kit: machinery every saga shares, kept apart from the business stories."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar, cast

from temporalio import workflow

P = ParamSpec("P")
R = TypeVar("R")


def update(
    name: str,
) -> Callable[[Callable[P, Awaitable[R]]], workflow.UpdateMethodMultiParam[P, R]]:
    """`@workflow.update(name=...)` for an async handler, typed as the SDK types the bare form
    (its named overload leaves the coroutine in the return type)."""
    return cast(
        Callable[[Callable[P, Awaitable[R]]], workflow.UpdateMethodMultiParam[P, R]],
        workflow.update(name=name),
    )
