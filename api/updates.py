"""Running a workflow update from the API: the one place that turns a validator's refusal into a
409 with the validator's `type` as the problem code."""

from __future__ import annotations

from typing import Any, TypeVar

from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.problems import Problem, temporal_unavailable

T = TypeVar("T")


async def run_update(
    handle: WorkflowHandle[Any, Any], update: Any, arg: Any, result_type: type[T], closed: str
) -> T:
    """The update's result; 409 when refused or when the workflow has closed (`closed` names
    what has finished), 503 when Temporal cannot be reached."""
    try:
        result: T = await handle.execute_update(update, arg, result_type=result_type)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        code = cause.type if isinstance(cause, ApplicationError) and cause.type else "rejected"
        raise Problem(409, code, str(getattr(cause, "message", cause))) from None
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise Problem(409, f"{closed}_closed", f"the {closed} has already finished") from None
        raise temporal_unavailable() from error
    return result
