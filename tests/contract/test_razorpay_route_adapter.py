"""The Razorpay Route adapter against the sandbox over HTTP with the official SDK: a transfer
made on hold once, even when Razorpay applied it and answered 500 (it takes no idempotency key:
the adapter looks first), released by lifting the hold, reversed once per key."""

from __future__ import annotations

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.gateways.razorpay.adapter import RazorpayGateway
from activities.gateways.razorpay.route import RazorpayRouteGateway
from domain.checkout import Gateway, GatewayPayment
from domain.marketplace import CreateTransfer, ReverseTransfer
from tests.contract.conftest import SANDBOX_RAZORPAY_KEY, SandboxControl
from tests.contract.test_razorpay_adapter import _captured


@pytest.fixture
def gateway(sandbox_url: str) -> RazorpayGateway:
    key_id, secret = SANDBOX_RAZORPAY_KEY
    return RazorpayGateway(key_id, secret, f"{sandbox_url}/razorpay", timeout_seconds=5)


@pytest.fixture
def route(sandbox_url: str) -> RazorpayRouteGateway:
    key_id, secret = SANDBOX_RAZORPAY_KEY
    return RazorpayRouteGateway(key_id, secret, f"{sandbox_url}/razorpay", timeout_seconds=5)


async def linked_account(sandbox_url: str) -> str:
    async with httpx.AsyncClient(base_url=sandbox_url, auth=SANDBOX_RAZORPAY_KEY) as client:
        account = (await client.post("/razorpay/v2/accounts", json={"type": "route"})).json()
        (
            await client.post(f"/sandbox/razorpay/accounts/{account['id']}/activate")
        ).raise_for_status()
    return str(account["id"])


def transfer_of(payment: GatewayPayment, account: str, amount: int, n: int = 0) -> CreateTransfer:
    return CreateTransfer(
        transfer_id=f"tr_{payment.ref.gateway_payment_id}_{n}",
        gateway=Gateway.RAZORPAY,
        gateway_account_id=account,
        amount=amount,
        currency="INR",
        gateway_payment_id=payment.ref.gateway_payment_id,
        gateway_charge_id=payment.ref.gateway_charge_id,
        transfer_group=payment.ref.gateway_payment_id,
        idempotency_key="unused",
    )


async def test_a_transfer_applied_then_answered_500_is_found_not_made_twice(
    gateway: RazorpayGateway,
    route: RazorpayRouteGateway,
    sandbox_url: str,
    sandbox_control: SandboxControl,
) -> None:
    payment = await _captured(gateway, sandbox_url)
    account = await linked_account(sandbox_url)
    sandbox_control.arm("razorpay", "payments.transfer", "applied_then_500")

    with pytest.raises(ApplicationError) as failed:
        await route.transfer(transfer_of(payment, account, 3_000))
    assert not failed.value.non_retryable
    made = await route.transfer(transfer_of(payment, account, 3_000))  # the activity's retry

    async with httpx.AsyncClient(base_url=sandbox_url, auth=SANDBOX_RAZORPAY_KEY) as client:
        listed = await client.get(
            f"/razorpay/v1/payments/{payment.ref.gateway_charge_id}/transfers"
        )
    items = listed.json()["items"]
    assert [(t["id"], t["amount"], t["on_hold"]) for t in items] == [
        (made.gateway_transfer_id, 3_000, True)
    ]


async def test_a_held_transfer_is_reversed_once_per_key_and_released(
    gateway: RazorpayGateway, route: RazorpayRouteGateway, sandbox_url: str
) -> None:
    payment = await _captured(gateway, sandbox_url)
    account = await linked_account(sandbox_url)
    made = await route.transfer(transfer_of(payment, account, 4_000))

    reverse = ReverseTransfer(
        gateway=Gateway.RAZORPAY, gateway_transfer_id=made.gateway_transfer_id, amount=1_000,
        idempotency_key="pay_x:clawback:1000:tr_0",
    )  # fmt: skip
    first = await route.reverse_transfer(reverse)
    second = await route.reverse_transfer(reverse)
    assert first.gateway_reversal_id == second.gateway_reversal_id

    released = await route.release_transfer(made.gateway_transfer_id)
    assert (released.amount, released.amount_reversed) == (4_000, 1_000)
