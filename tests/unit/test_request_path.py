"""Every request runs on the API's event loop. FastAPI hands a plain `def` endpoint or dependency
to its thread pool, a hop per request that waits on the pool under load (py-spy showed webhook
intake at 300/s spending a fifth of its samples handing the app's context over to threads)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.app import create_app
from settings import development_settings


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Also those of included routers (FastAPI keeps those as routers of their own)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)


def calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from calls(sub)


def runs_on_the_loop(call: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(call):
        return True
    return not inspect.isfunction(call) and inspect.iscoroutinefunction(type(call).__call__)


def test_no_endpoint_or_dependency_runs_in_the_thread_pool() -> None:
    app = create_app(development_settings(_env_file=None))
    in_threads = {
        f"{route.path}: {getattr(call, '__qualname__', type(call).__name__)}"
        for route in api_routes(app.routes)
        for call in calls(route.dependant)
        if not runs_on_the_loop(call)
    }
    assert len(list(api_routes(app.routes))) > 30
    assert in_threads == set()
