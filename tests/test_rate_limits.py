"""Rate limits are per caller and, with Redis storage, shared by every API replica."""

from __future__ import annotations

import socket
import uuid

import pytest

from api.auth import Caller, Policy, RateLimits, Role
from api.problems import Problem
from settings import development_settings


def redis_running() -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", 6379)) == 0


def caller(name: str) -> Caller:
    return Caller(subject=name, roles=frozenset({Role.OPERATOR}), customer_id=None)


async def test_limits_are_per_caller_in_memory() -> None:
    limits = RateLimits(development_settings(rate_limit_refund="2/minute"))
    alice, bob = caller("alice"), caller("bob")
    await limits.hit(Policy.REFUND, alice)
    await limits.hit(Policy.REFUND, alice)
    with pytest.raises(Problem) as refused:
        await limits.hit(Policy.REFUND, alice)
    assert refused.value.status == 429 and int(refused.value.headers["Retry-After"]) >= 1
    await limits.hit(Policy.REFUND, bob)
    await limits.hit(Policy.READ, alice)  # another policy, another budget


@pytest.mark.skipif(not redis_running(), reason="needs Redis on 127.0.0.1:6379")
async def test_two_replicas_share_limits_through_redis() -> None:
    settings = development_settings(
        rate_limit_storage="async+redis://127.0.0.1:6379", rate_limit_refund="3/minute"
    )
    replica_a, replica_b = RateLimits(settings), RateLimits(settings)
    probe = caller(f"probe-{uuid.uuid4().hex}")
    await replica_a.hit(Policy.REFUND, probe)
    await replica_b.hit(Policy.REFUND, probe)
    await replica_a.hit(Policy.REFUND, probe)
    with pytest.raises(Problem):
        await replica_b.hit(Policy.REFUND, probe)
