"""Schemathesis generates requests from the OpenAPI document; no endpoint may answer with a 5xx."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case

from api.auth import Role
from devstack.stack import Stack
from tests.e2e.conftest import bearer

EXAMPLES_PER_OPERATION = 12


def test_no_endpoint_answers_with_a_server_error(stack: Stack) -> None:
    schema = schemathesis.openapi.from_url(f"{stack.api_url}/openapi.json")
    headers = bearer(Role.ADMIN, subject="fuzzer")
    tested = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Case[Any]) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error], timeout=30)

        call()
        tested.append(operation.label)
    assert len(tested) >= 8, tested
