"""The Stripe Connect adapter against the sandbox over HTTP with the official SDK: a transfer
tied to its charge, made once whatever the retries, reversed in part once per key, and refusals
classified as non-retryable. (localstripe has no Connect.)"""

from __future__ import annotations

import uuid

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.gateways.stripe.adapter import StripeGateway
from activities.gateways.stripe.connect import StripeConnectGateway
from domain import names
from domain.checkout import (
    CaptureGatewayPayment,
    CreateGatewayPayment,
    Gateway,
    GatewayPayment,
)
from domain.marketplace import CreateTransfer, ReverseTransfer
from tests.contract.conftest import SANDBOX_STRIPE_KEY

AUTH = {"Authorization": f"Bearer {SANDBOX_STRIPE_KEY}"}


async def captured(url: str, amount: int) -> GatewayPayment:
    gateway = StripeGateway(SANDBOX_STRIPE_KEY, f"{url}/stripe", 5)
    order = uuid.uuid4().hex[:8]
    payment = await gateway.create_payment(
        CreateGatewayPayment(
            gateway=Gateway.STRIPE, checkout_id=f"pay_{order}", order_id=order,
            workflow_id=names.checkout_workflow_id(order), amount=amount, currency="USD",
            customer_email=None, metadata={}, idempotency_key=f"{order}-create",
        )
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=url) as browser:
        paid = await browser.post(
            f"/sandbox/stripe/payment_intents/{payment.ref.gateway_payment_id}/pay",
            json={
                "client_secret": payment.instructions.stripe_client_secret,
                "payment_method": "pm_card_visa",
            },
        )
        assert paid.status_code == 200, paid.text
    return await gateway.capture(
        CaptureGatewayPayment(
            ref=payment.ref, amount=amount, currency="USD", idempotency_key=f"{order}-capture"
        )
    )


async def connected_account(url: str, onboarded: bool = True) -> str:
    async with httpx.AsyncClient(base_url=url, headers=AUTH) as client:
        account = (await client.post("/stripe/v1/accounts", data={"type": "express"})).json()["id"]
        if onboarded:
            (await client.post(f"/sandbox/stripe/accounts/{account}/onboard")).raise_for_status()
    return str(account)


def transfer_of(payment: GatewayPayment, account: str, amount: int, n: int = 0) -> CreateTransfer:
    return CreateTransfer(
        transfer_id=f"tr_{payment.ref.gateway_payment_id}_{n}",
        gateway=Gateway.STRIPE,
        gateway_account_id=account,
        amount=amount,
        currency="USD",
        gateway_payment_id=payment.ref.gateway_payment_id,
        transfer_group=payment.ref.gateway_payment_id,
        idempotency_key=f"tr_{payment.ref.gateway_payment_id}_{n}:transfer",
    )


async def test_a_transfer_is_made_once_and_reversed_in_part_once_per_key(sandbox_url: str) -> None:
    connect = StripeConnectGateway(SANDBOX_STRIPE_KEY, f"{sandbox_url}/stripe", 5)
    payment = await captured(sandbox_url, 10_000)
    account = await connected_account(sandbox_url)

    made = await connect.transfer(transfer_of(payment, account, 7_000))
    again = await connect.transfer(transfer_of(payment, account, 7_000))
    assert again.gateway_transfer_id == made.gateway_transfer_id
    assert made.amount == 7_000

    reverse = ReverseTransfer(
        gateway=Gateway.STRIPE, gateway_transfer_id=made.gateway_transfer_id, amount=1_750,
        idempotency_key=f"{payment.ref.gateway_payment_id}:clawback:2500:tr_0",
    )  # fmt: skip
    first = await connect.reverse_transfer(reverse)
    second = await connect.reverse_transfer(reverse)
    assert first.gateway_reversal_id == second.gateway_reversal_id
    async with httpx.AsyncClient(base_url=sandbox_url, headers=AUTH) as client:
        at_stripe = (await client.get(f"/stripe/v1/transfers/{made.gateway_transfer_id}")).json()
    assert at_stripe["amount_reversed"] == 1_750
    assert at_stripe["source_transaction"] is not None  # tied to the checkout's charge


async def test_more_than_the_charge_left_or_an_account_not_onboarded_is_refused(
    sandbox_url: str,
) -> None:
    connect = StripeConnectGateway(SANDBOX_STRIPE_KEY, f"{sandbox_url}/stripe", 5)
    payment = await captured(sandbox_url, 1_000)
    account = await connected_account(sandbox_url)
    await connect.transfer(transfer_of(payment, account, 800))

    with pytest.raises(ApplicationError) as too_much:
        await connect.transfer(transfer_of(payment, account, 201, n=1))
    assert too_much.value.non_retryable

    pending = await connected_account(sandbox_url, onboarded=False)
    with pytest.raises(ApplicationError) as not_onboarded:
        await connect.transfer(transfer_of(payment, pending, 100, n=2))
    assert not_onboarded.value.non_retryable
    assert "insufficient_capabilities_for_transfer" in (not_onboarded.value.type or "")
