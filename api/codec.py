"""The codec server (Temporal's codec HTTP protocol, temporalio/samples-go codec-server/
protocol.md): `POST /codec/decode` and `/codec/encode` take and give `Payloads` as protobuf JSON,
so the Temporal UI and CLI show an authorised operator the payloads the workers sealed
(payload_codec.py). Operators and admins only; in development the key is public, so the dev UI,
which has no login, may call it without a token. The UI's origin (TEMPORAL_UI_ORIGIN) may call
it from the browser (api/app.py, CORS)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from temporalio.api.common.v1 import Payloads

from api.auth import AUTH_PROBLEMS, Caller, Role, access, bearer
from api.context import AppContext, app_context
from api.problems import Problem
from payload_codec import EncryptionCodec, PayloadKeyError
from settings import Environment

router = APIRouter(prefix="/codec", tags=["codec"], responses=AUTH_PROBLEMS)
Context = Annotated[AppContext, Depends(app_context)]
_staff = access(Role.OPERATOR, Role.ADMIN)

PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "not Payloads JSON, or a payload sealed with a key this service lacks"},
}


async def codec_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ctx: Context,
) -> Caller | None:
    if ctx.settings.environment is Environment.DEVELOPMENT and credentials is None:
        return None
    return await _staff(request, credentials, ctx)


Authorised = Annotated[Caller | None, Depends(codec_caller)]


def _codec(ctx: AppContext) -> EncryptionCodec:
    return EncryptionCodec(ctx.settings.payload_keys)


async def _payloads(request: Request) -> Payloads:
    try:
        return ParseDict(await request.json(), Payloads())
    except (ValueError, TypeError, AttributeError, ParseError):
        raise Problem(400, "malformed_payloads", "the body must be Payloads as JSON") from None


def _answer(payloads: list[Any]) -> JSONResponse:
    return JSONResponse(MessageToDict(Payloads(payloads=payloads)))


@router.post("/decode", responses=PROBLEMS)
async def decode(request: Request, ctx: Context, caller: Authorised) -> JSONResponse:
    """Open sealed payloads; unsealed ones come back as they are."""
    payloads = await _payloads(request)
    try:
        return _answer(await _codec(ctx).decode(payloads.payloads))
    except PayloadKeyError as error:
        raise Problem(400, "payload_key_unknown", str(error)) from None


@router.post("/encode", responses=PROBLEMS)
async def encode(request: Request, ctx: Context, caller: Authorised) -> JSONResponse:
    """Seal payloads with the current key (the CLI uses it to send encrypted input)."""
    payloads = await _payloads(request)
    return _answer(await _codec(ctx).encode(payloads.payloads))
