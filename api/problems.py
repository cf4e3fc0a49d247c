"""One error format everywhere: RFC 9457 `application/problem+json` with a stable `code`."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from asgi_correlation_id import correlation_id as request_id
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from api.card_data import CARD_DATA_REFUSED

log = logging.getLogger("api")

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def temporal_unavailable() -> Problem:
    return Problem(
        503, "temporal_unavailable", "the workflow service is unreachable; retry shortly",
        headers={"Retry-After": "2"},
    )  # fmt: skip


def problem_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {
        "type": f"https://payments.example/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.code, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Never the input: it may be a secret or, refused below, card data.
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        if any(e["type"] == CARD_DATA_REFUSED for e in errors):
            return problem_response(
                422, CARD_DATA_REFUSED, "the request holds card data, which is never accepted",
                errors=[e for e in errors if e["type"] == CARD_DATA_REFUSED],
            )  # fmt: skip
        return problem_response(422, "validation_error", "the request is not valid", errors=errors)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        codes = {400: "malformed_request", 404: "not_found", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, "http_error")
        return problem_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        correlation_id = request_id.get() or uuid.uuid4().hex
        log.exception("internal error %s", correlation_id, exc_info=exc)
        return problem_response(
            500, "internal_error", "something went wrong on our side",
            correlation_id=correlation_id,
        )  # fmt: skip
