"""Stripe adapter over the official SDK: PaymentIntents with manual capture, refunds."""

from __future__ import annotations

from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import stripe
from temporalio.exceptions import ApplicationError

from activities.gateways.base import refused, unavailable
from domain.checkout import (
    CaptureGatewayPayment,
    CardSignals,
    CreateGatewayPayment,
    Gateway,
    GatewayPayment,
    GatewayPaymentRef,
    PaymentInstructions,
    PaymentStatus,
    ReleaseGatewayPayment,
)
from domain.dispute import (
    DisputeEvidence,
    DisputeStage,
    DisputeStatus,
    GatewayDispute,
    GatewayDisputeAcceptance,
    GatewayDisputeRef,
    GatewayEvidence,
)
from domain.refund import CreateGatewayRefund, GatewayRefund, GatewayRefundRef, RefundStatus

T = TypeVar("T")

_STATUSES = {
    "requires_payment_method": PaymentStatus.CREATED,
    "requires_confirmation": PaymentStatus.CREATED,
    "requires_action": PaymentStatus.REQUIRES_ACTION,
    "processing": PaymentStatus.PROCESSING,
    "requires_capture": PaymentStatus.AUTHORIZED,
    "succeeded": PaymentStatus.CAPTURED,
    "canceled": PaymentStatus.CANCELED,
}
_REFUND_REASONS = {"duplicate", "fraudulent", "requested_by_customer"}
_REFUND_STATUSES = {
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.REQUIRES_ACTION,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.CANCELED,
}

_DISPUTE_STATUSES = {
    "warning_needs_response": DisputeStatus.OPEN,
    "needs_response": DisputeStatus.OPEN,
    "warning_under_review": DisputeStatus.CHALLENGED,
    "under_review": DisputeStatus.CHALLENGED,
    "won": DisputeStatus.WON,
    "lost": DisputeStatus.LOST,
    "warning_closed": DisputeStatus.CLOSED,
    "charge_refunded": DisputeStatus.CLOSED,
    "prevented": DisputeStatus.PREVENTED,
}


# Stripe saves the answer of a request that reached an endpoint, a 500 included, and replays it for
# the same key for at least 24 hours ("Idempotent requests", https://docs.stripe.com/api/
# idempotent_requests). A key whose saved failure a look-up showed had no effect is spent; the
# next generation of the key is used, never a random one.
MAX_KEY_GENERATIONS = 5


def key_generations(key: str) -> Iterator[str]:
    yield key
    for generation in range(2, MAX_KEY_GENERATIONS + 1):
        yield f"{key}-g{generation}"


def replayed(error: stripe.StripeError) -> bool:
    """Whether the failure is Stripe replaying the saved answer of an earlier request."""
    return any(
        k.lower() == "idempotent-replayed" and v == "true" for k, v in (error.headers or {}).items()
    )


def keys_spent(what: str) -> ApplicationError:
    return unavailable(
        "gateway_error", f"stripe: {what}: every key generation replays a failure; later"
    )


def classify(error: stripe.StripeError) -> ApplicationError:
    """The one place that decides which Stripe errors are worth retrying."""
    code = getattr(error, "code", None) or ""
    message = f"stripe: {error.user_message or error}"
    if isinstance(error, stripe.CardError):
        decline = getattr(error, "decline_code", None) or code
        return refused("card_declined", f"{message} ({decline})")
    if isinstance(error, stripe.IdempotencyError):
        return refused("idempotency_conflict", message)
    if isinstance(error, stripe.InvalidRequestError):
        return refused(f"invalid_request:{code}" if code else "invalid_request", message)
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return refused("gateway_misconfigured", message)
    if isinstance(error, stripe.RateLimitError):
        return unavailable("gateway_rate_limited", message)
    if isinstance(error, stripe.APIConnectionError):
        return unavailable("gateway_unreachable", message)
    return unavailable("gateway_error", message)


def stripe_client(api_key: str, api_base: str, timeout_seconds: float) -> stripe.StripeClient:
    """The official SDK's client as every Stripe adapter uses it."""
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        http_client=stripe.HTTPXClient(timeout=timeout_seconds),
        max_network_retries=0,  # Temporal's retry policy owns retries
    )


async def stripe_call(call: Awaitable[T]) -> T:
    """A Stripe call whose errors are classified here, once (`classify`)."""
    try:
        return await call
    except stripe.StripeError as error:
        raise classify(error) from None


class StripeGateway:
    def __init__(self, api_key: str, api_base: str, timeout_seconds: float) -> None:
        self._client = stripe_client(api_key, api_base, timeout_seconds)

    async def _call(self, call: Awaitable[T]) -> T:
        return await stripe_call(call)

    async def create_payment(self, request: CreateGatewayPayment) -> GatewayPayment:
        params: dict[str, Any] = {
            "amount": request.amount,
            "currency": request.currency.lower(),
            "capture_method": "manual",
            "payment_method_types": ["card"],
            "metadata": {
                **request.metadata,
                "order_id": request.order_id,
                "checkout_id": request.checkout_id,
                "workflow_id": request.workflow_id,
            },
        }
        if request.customer_email:
            params["receipt_email"] = request.customer_email
        for key in key_generations(request.idempotency_key):
            try:
                intent = await self._client.v1.payment_intents.create_async(
                    params,  # type: ignore[arg-type]
                    {"idempotency_key": key},
                )
                return self._payment(intent)
            except stripe.StripeError as error:
                if not replayed(error):
                    raise classify(error) from None
                found = await self._intent_of(request.checkout_id)
                if found is not None:
                    return found  # the replayed failure had created it after all
        raise keys_spent("create the PaymentIntent")

    async def _intent_of(self, checkout_id: str) -> GatewayPayment | None:
        """The PaymentIntent a checkout created, found by its metadata (Stripe's search API)."""
        found = await self._call(
            self._client.v1.payment_intents.search_async(
                {"query": f"metadata['checkout_id']:'{checkout_id}'", "limit": 1}
            )
        )
        return self._payment(found.data[0]) if found.data else None

    async def find_payment(self, checkout_id: str) -> GatewayPayment | None:
        return await self._intent_of(checkout_id)

    async def fetch_payment(self, ref: GatewayPaymentRef) -> GatewayPayment:
        intent = await self._call(
            self._client.v1.payment_intents.retrieve_async(
                ref.gateway_payment_id, {"expand": ["latest_charge"]}
            )
        )
        return self._payment(intent)

    async def capture(self, request: CaptureGatewayPayment) -> GatewayPayment:
        """A failed capture may have happened all the same (an answer lost, a commit after the
        client gave up): the PaymentIntent tells, and a capture seen is a success."""
        for key in key_generations(request.idempotency_key):
            try:
                intent = await self._client.v1.payment_intents.capture_async(
                    request.ref.gateway_payment_id,
                    {"amount_to_capture": request.amount},
                    {"idempotency_key": key},
                )
                return self._payment(intent)
            except stripe.StripeError as error:
                current = await self.fetch_payment(request.ref)
                if current.status is PaymentStatus.CAPTURED:
                    return current
                if not (replayed(error) and current.status is PaymentStatus.AUTHORIZED):
                    raise classify(error) from None
        raise keys_spent("capture")

    async def release(self, request: ReleaseGatewayPayment) -> GatewayPayment:
        current = await self.fetch_payment(request.ref)
        if current.status is PaymentStatus.CANCELED:
            return current
        if current.status is PaymentStatus.CAPTURED:
            raise refused("already_captured", "stripe: captured payments can only be refunded")
        for key in key_generations(request.idempotency_key):
            try:
                intent = await self._client.v1.payment_intents.cancel_async(
                    request.ref.gateway_payment_id, {}, {"idempotency_key": key}
                )
                return self._payment(intent)
            except stripe.StripeError as error:
                current = await self.fetch_payment(request.ref)
                if current.status is PaymentStatus.CANCELED:
                    return current
                if current.status is PaymentStatus.CAPTURED:
                    raise refused("already_captured", "stripe: captured meanwhile") from None
                if not replayed(error):
                    raise classify(error) from None
        raise keys_spent("cancel")

    async def refund(self, request: CreateGatewayRefund) -> GatewayRefund:
        """Our refund id is the idempotency key, so a retry after a lost answer gets the same
        refund; the metadata lets webhook routing find the workflow before the ledger knows the
        gateway's refund id."""
        params: dict[str, Any] = {
            "payment_intent": request.ref.gateway_payment_id,
            "amount": request.amount,
            "metadata": {
                "refund_id": request.refund_id,
                "workflow_id": request.workflow_id,
                "payment_id": request.payment_id,
                "reason": request.reason.value,
            },
        }
        if request.reason.value in _REFUND_REASONS:
            params["reason"] = request.reason.value
        for key in key_generations(request.refund_id):
            try:
                refund = await self._client.v1.refunds.create_async(
                    params,  # type: ignore[arg-type]
                    {"idempotency_key": key},
                )
                return _refund(refund, request.ref.gateway_payment_id, request.currency)
            except stripe.StripeError as error:
                if not replayed(error):
                    raise classify(error) from None
                listed = await self._call(
                    self._client.v1.refunds.list_async(
                        {"payment_intent": request.ref.gateway_payment_id, "limit": 100}
                    )
                )
                for made in listed.data:
                    if getattr(made.metadata, "refund_id", None) == request.refund_id:
                        return _refund(made, request.ref.gateway_payment_id, request.currency)
        raise keys_spent("refund")

    async def fetch_refund(self, ref: GatewayRefundRef) -> GatewayRefund:
        refund = await self._call(self._client.v1.refunds.retrieve_async(ref.gateway_refund_id))
        return _refund(refund, None, None)

    async def fetch_dispute(self, ref: GatewayDisputeRef) -> GatewayDispute:
        dispute = await self._call(self._client.v1.disputes.retrieve_async(ref.gateway_dispute_id))
        return _dispute(dispute)

    async def submit_dispute_evidence(self, request: GatewayEvidence) -> GatewayDispute:
        """`POST /v1/disputes/{id}` with the evidence; `submit` false keeps it a draft."""
        params: dict[str, Any] = {
            "evidence": _stripe_evidence(request.evidence),
            "submit": request.submit,
        }
        dispute = await self._call(
            self._client.v1.disputes.update_async(
                request.ref.gateway_dispute_id,
                params,  # type: ignore[arg-type]
                {"idempotency_key": request.idempotency_key},
            )
        )
        return _dispute(dispute)

    async def accept_dispute(self, request: GatewayDisputeAcceptance) -> GatewayDispute:
        current = await self.fetch_dispute(request.ref)
        if current.status is DisputeStatus.LOST:
            return current  # closed by an earlier attempt whose answer was lost
        dispute = await self._call(
            self._client.v1.disputes.close_async(
                request.ref.gateway_dispute_id, {}, {"idempotency_key": request.idempotency_key}
            )
        )
        return _dispute(dispute)

    @staticmethod
    def _payment(intent: stripe.PaymentIntent) -> GatewayPayment:
        error = getattr(intent, "last_payment_error", None)
        status = _STATUSES.get(intent.status, PaymentStatus.UNKNOWN)
        # Older API versions and emulators omit these two; the status tells what they must be.
        capturable = getattr(intent, "amount_capturable", None)
        received = getattr(intent, "amount_received", None)
        if capturable is None:
            capturable = intent.amount if status is PaymentStatus.AUTHORIZED else 0
        if received is None:
            received = intent.amount if status is PaymentStatus.CAPTURED else 0
        # The refunded total lives on the charge, present when the fetch expanded it.
        charge: str | stripe.Charge | None = getattr(intent, "latest_charge", None)
        refunded = 0 if charge is None or isinstance(charge, str) else charge.amount_refunded
        return GatewayPayment(
            ref=GatewayPaymentRef(
                gateway=Gateway.STRIPE,
                gateway_payment_id=intent.id,
                gateway_charge_id=_charge_id(intent),
            ),
            status=status,
            amount=intent.amount,
            currency=intent.currency.upper(),
            amount_capturable=capturable,
            amount_captured=received,
            amount_refunded=refunded,
            instructions=PaymentInstructions(
                stripe_client_secret=intent.client_secret, next_action=_next_action(intent)
            ),
            error_code=(error.decline_code or error.code) if error else None,
            error_message=error.message if error else None,
            card=None if charge is None or isinstance(charge, str) else _card_signals(charge),
        )


def _next_action(intent: stripe.PaymentIntent) -> dict[str, Any] | None:
    """What the client must do while the customer's bank asks for 3-D Secure."""
    action = getattr(intent, "next_action", None)
    if intent.status != "requires_action" or action is None:
        return None
    return cast(dict[str, Any], action.to_dict())


def _card_signals(charge: stripe.Charge) -> CardSignals:
    """The card's fingerprint and issuing country and Radar's rating, as the charge shows them
    (https://docs.stripe.com/api/charges/object: payment_method_details.card, outcome)."""
    details = getattr(charge, "payment_method_details", None)
    card = getattr(details, "card", None) if details else None
    outcome = getattr(charge, "outcome", None)
    return CardSignals(
        fingerprint=getattr(card, "fingerprint", None),
        country=getattr(card, "country", None),
        risk_level=getattr(outcome, "risk_level", None),
        risk_score=getattr(outcome, "risk_score", None),
    )


def _charge_id(intent: stripe.PaymentIntent) -> str | None:
    charge: str | stripe.Charge | None = getattr(intent, "latest_charge", None)
    if charge is None or isinstance(charge, str):
        return charge
    return charge.id


def _refund(refund: stripe.Refund, intent_id: str | None, currency: str | None) -> GatewayRefund:
    # Emulators omit some fields; what we sent stands in for them.
    intent: str | stripe.PaymentIntent | None = getattr(refund, "payment_intent", None)
    return GatewayRefund(
        gateway=Gateway.STRIPE,
        gateway_refund_id=refund.id,
        gateway_payment_id=(intent if isinstance(intent, str) else intent.id if intent else None)
        or intent_id
        or "",
        status=_REFUND_STATUSES.get(refund.status or "pending", RefundStatus.PENDING),
        amount=refund.amount,
        currency=(getattr(refund, "currency", None) or currency or "").upper(),
        failure_reason=getattr(refund, "failure_reason", None),
    )


def _dispute(dispute: stripe.Dispute) -> GatewayDispute:
    details = getattr(dispute, "evidence_details", None)
    due_by = getattr(details, "due_by", None) if details is not None else None
    # A dispute has "zero, one, or two balance transactions that show funds withdrawn and
    # reinstated" (https://docs.stripe.com/api/disputes/object), but each is in the account's
    # settlement currency, converted by its `exchange_rate`
    # (https://docs.stripe.com/api/balance_transactions/object). The ledger posts in the
    # dispute's currency, so each one moves the dispute's `amount`; its sign tells which way.
    withdrawn = reinstated = 0
    for transaction in getattr(dispute, "balance_transactions", None) or []:
        amount = transaction if isinstance(transaction, int) else transaction.amount
        if amount < 0:
            withdrawn += dispute.amount
        else:
            reinstated += dispute.amount
    intent: str | stripe.PaymentIntent | None = getattr(dispute, "payment_intent", None)
    charge: str | stripe.Charge | None = getattr(dispute, "charge", None)
    return GatewayDispute(
        gateway=Gateway.STRIPE,
        gateway_dispute_id=dispute.id,
        gateway_payment_id=intent if isinstance(intent, str | None) else intent.id,
        gateway_charge_id=charge if isinstance(charge, str | None) else charge.id,
        status=_DISPUTE_STATUSES.get(dispute.status, DisputeStatus.OPEN),
        gateway_status=dispute.status,
        stage=DisputeStage.INQUIRY
        if dispute.status.startswith("warning_")
        else DisputeStage.CHARGEBACK,
        amount=dispute.amount,
        currency=dispute.currency.upper(),
        reason=dispute.reason,
        due_by=datetime.fromtimestamp(due_by, UTC) if due_by else None,
        amount_withdrawn=withdrawn,
        amount_reinstated=reinstated,
    )


def _stripe_evidence(evidence: DisputeEvidence) -> dict[str, str]:
    """Stripe holds one file per kind: the first of each; the others are named in the text."""
    fields: dict[str, str] = {}
    extra: list[str] = []
    for name, documents in (
        ("customer_communication", evidence.customer_communication),
        ("receipt", evidence.receipt),
        ("shipping_documentation", evidence.shipping_documentation),
        ("refund_policy", evidence.refund_policy),
        ("uncategorized_file", evidence.uncategorized_documents),
    ):
        if documents:
            fields[name] = documents[0]
            extra += documents[1:]
    for name in (
        "product_description", "shipping_carrier", "shipping_tracking_number",
        "refund_policy_disclosure", "uncategorized_text",
    ):  # fmt: skip
        value = getattr(evidence, name)
        if value is not None:
            fields[name] = value
    if extra:
        more = "Further documents: " + ", ".join(extra)
        fields["uncategorized_text"] = "\n\n".join(
            t for t in (fields.get("uncategorized_text"), more) if t
        )
    return fields
