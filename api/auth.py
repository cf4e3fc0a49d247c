"""Who is calling: bearer JWTs with roles, checked once per request, plus the caller's rate limit.

Roles: `merchant` (the merchant's backend), `customer` (only its own checkouts and payments),
`operator` (support staff), `admin`. Webhooks authenticate by their signature instead."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from api.context import AppContext, app_context
from api.problems import Problem
from settings import Settings


class Role(StrEnum):
    MERCHANT = "merchant"
    CUSTOMER = "customer"
    OPERATOR = "operator"
    ADMIN = "admin"


STAFF = (Role.MERCHANT, Role.OPERATOR, Role.ADMIN)
TOKEN_LEEWAY_SECONDS = 30

AUTH_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, invalid or expired bearer token"},
    403: {"description": "the caller's role may not do this"},
    429: {"description": "rate limit exceeded; see Retry-After"},
}


@dataclass(frozen=True)
class Caller:
    subject: str
    roles: frozenset[Role]
    customer_id: str | None

    def may_see(self, customer_id: str) -> bool:
        """Staff see every payment; a customer only its own."""
        if self.roles & set(STAFF):
            return True
        return Role.CUSTOMER in self.roles and self.customer_id == customer_id

    def list_scope(self) -> str | None:
        """The customer whose rows alone a list may show this caller: None (every row) for staff,
        the token's own customer for a customer, whatever filter it asks for."""
        if self.roles & set(STAFF):
            return None
        if Role.CUSTOMER in self.roles and self.customer_id is not None:
            return self.customer_id
        raise Problem(403, "forbidden", "a customer token without a customer_id lists nothing")


class Policy(StrEnum):
    """Rate-limit policies; each endpoint names one, and the settings give its limit."""

    READ = "read"
    WRITE = "write"
    REFUND = "refund"
    EVIDENCE = "evidence"


def _unauthenticated(detail: str) -> Problem:
    return Problem(
        401, "unauthenticated", detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


def _verification_keys(settings: Settings, token: str) -> list[Any]:
    algorithm = jwt.get_unverified_header(token).get("alg", "")
    if algorithm not in settings.jwt_algorithm_list:
        raise _unauthenticated(f"token algorithm {algorithm!r} is not accepted")
    if algorithm.startswith("HS"):
        return [settings.jwt_secret.get_secret_value()]
    return list(settings.jwt_public_key_list)


def decode_caller(settings: Settings, token: str) -> Caller:
    try:
        keys = _verification_keys(settings, token)
    except jwt.PyJWTError:
        raise _unauthenticated("the bearer token is not a JWT") from None
    claims: dict[str, Any] | None = None
    for key in keys:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=settings.jwt_algorithm_list,
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                leeway=TOKEN_LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            raise _unauthenticated("the bearer token has expired") from None
        except jwt.PyJWTError as error:
            raise _unauthenticated(f"the bearer token is not valid: {error}") from None
    if claims is None:
        raise _unauthenticated("the bearer token's signature does not verify")
    _check_lifetime(settings, claims)
    roles = claims.get("roles", [])
    if not isinstance(roles, list):
        raise _unauthenticated("the roles claim must be a list")
    known = frozenset(Role(r) for r in roles if r in {role.value for role in Role})
    customer_id = claims.get("customer_id")
    return Caller(
        subject=str(claims["sub"]),
        roles=known,
        customer_id=str(customer_id) if customer_id is not None else None,
    )


def _check_lifetime(settings: Settings, claims: dict[str, Any]) -> None:
    """A stolen token is worth at most JWT_MAX_LIFETIME_SECONDS: a token must say when it was
    issued, and may not outlive the cap."""
    cap = settings.jwt_max_lifetime_seconds
    if cap <= 0:
        return
    issued, expires = claims.get("iat"), claims["exp"]
    if not isinstance(issued, int | float) or isinstance(issued, bool):
        raise _unauthenticated("the bearer token has no iat claim")
    if issued > time.time() + TOKEN_LEEWAY_SECONDS:
        raise _unauthenticated("the bearer token was issued in the future")
    if expires - issued > cap:
        raise _unauthenticated(f"bearer tokens may live at most {cap} s")


bearer = HTTPBearer(auto_error=False, description="A JWT with a `roles` claim")


class RateLimits:
    """Per-caller moving-window limits in memory, or in Redis shared by every API replica."""

    def __init__(self, settings: Settings) -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(settings.rate_limit_storage))
        self._items: dict[Policy, RateLimitItem] = {
            Policy.READ: parse(settings.rate_limit_read),
            Policy.WRITE: parse(settings.rate_limit_write),
            Policy.REFUND: parse(settings.rate_limit_refund),
            Policy.EVIDENCE: parse(settings.rate_limit_evidence),
        }

    async def hit(self, policy: Policy, caller: Caller) -> None:
        item = self._items[policy]
        if await self._limiter.hit(item, policy.value, caller.subject):
            return
        stats = await self._limiter.get_window_stats(item, policy.value, caller.subject)
        retry_after = max(1, int(stats.reset_time - time.time()) + 1)
        raise Problem(
            429, "rate_limited", f"too many {policy.value} requests; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )  # fmt: skip


def access(*roles: Role, policy: Policy = Policy.READ) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the caller, if it holds one of `roles` and is within its rate limit."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        ctx: Annotated[AppContext, Depends(app_context)],
    ) -> Caller:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise _unauthenticated("a bearer token is required")
        caller = decode_caller(ctx.settings, credentials.credentials)
        request.state.caller = caller  # for the caller audit (api/audit.py), refused or not
        if not caller.roles & set(roles):
            raise Problem(403, "forbidden", "this role may not do that")
        rate_limits: RateLimits = request.app.state.rate_limits
        await rate_limits.hit(policy, caller)
        return caller

    return dependency


def mint_token(
    settings: Settings,
    subject: str,
    roles: list[Role],
    *,
    customer_id: str | None = None,
    ttl_seconds: int = 3600,
) -> str:
    """An HS256 token for development and tests, signed with the configured secret."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "roles": [r.value for r in roles],
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if customer_id is not None:
        claims["customer_id"] = customer_id
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
