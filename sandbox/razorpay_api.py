"""Razorpay emulator: Orders, Payments and Refunds under ``/razorpay/v1``.

Bodies are JSON, auth is HTTP basic with the key id and secret, errors carry
Razorpay's ``{"error": {"code": ..., "description": ...}}`` shape so the ``razorpay``
SDK raises ``BadRequestError``/``ServerError``. Refund creation honours the
``X-Refund-Idempotency`` header. Also serves the customer's side: paying an order the
way Razorpay Checkout would, handing back the signed payment id.
"""

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from sandbox.behaviour import Behaviour
from sandbox.config import SandboxConfig
from sandbox.razorpay_capture import (
    InvalidCaptureSetting,
    captures_automatically,
    order_capture_setting,
)
from sandbox.state import (
    JSON,
    IdempotencyKeys,
    MovementKind,
    SavedResponse,
    Store,
    fingerprint,
    new_id,
    now,
)
from sandbox.webhooks import WebhookDispatcher, hmac_hex

_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{10,}")
_DOCUMENT_EVIDENCE = (
    "shipping_proof", "billing_proof", "cancellation_proof", "customer_communication",
    "proof_of_service", "explanation_letter", "refund_confirmation", "access_activity_log",
    "refund_cancellation_policy", "term_and_conditions",
)  # fmt: skip
_DECLINED = (
    "Your payment didn't go through as it was declined by the bank. "
    "Try another payment method or contact your bank."
)


class RazorpayError(Exception):
    """An error answer in Razorpay's ``{"error": {...}}`` shape."""

    def __init__(
        self,
        status: int,
        description: str,
        *,
        code: str = "BAD_REQUEST_ERROR",
        field: str | None = None,
        source: str = "business",
        step: str = "payment_initiation",
        reason: str = "input_validation_failed",
        metadata: JSON | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error: JSON = {
            "code": code,
            "description": description,
            "source": source,
            "step": step,
            "reason": reason,
            "metadata": metadata or {},
        }
        if field is not None:
            self.error["field"] = field

    def body(self) -> JSON:
        """The JSON body Razorpay answers with."""
        return {"error": self.error}


def _bad(description: str, field: str | None = None) -> RazorpayError:
    return RazorpayError(400, description, field=field)


def _na(status: int, description: str, code: str = "BAD_REQUEST_ERROR") -> RazorpayError:
    return RazorpayError(status, description, code=code, source="NA", step="NA", reason="NA")


# Razorpay's rate limiter answers HTTP 429 ("Pagination" page, section "Rate Limiter":
# https://razorpay.com/docs/api/pagination, "watch for HTTP status code 429"). Its body is the
# error envelope of requests refused before any business step ("About Errors",
# https://razorpay.com/docs/errors; source/step/reason "NA" as in "Common Errors"), with
# code BAD_REQUEST_ERROR: the `razorpay` SDK picks its exception by that code, so a 429 reaches
# the client as a BadRequestError, not as a server error. Nothing is applied.
_RATE_LIMITED = _na(429, "Too many requests")
# A server error: "5xx: Something went wrong on Razorpay's end" ("About Errors",
# https://razorpay.com/docs/errors, SERVER_ERROR in "Common Errors"); the SDK raises ServerError.
# Razorpay does not say whether such a request was applied: the `error_500` fault applies
# nothing, `applied_then_500` applies the write and answers this all the same.
_SERVER_ERROR = _na(
    500,
    "The server encountered an error. The incident has been reported to admins.",
    "SERVER_ERROR",
)


def _amount(params: JSON) -> int | None:
    raw = params.get("amount")
    if raw is None:
        return None
    if isinstance(raw, bool) or not (
        isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit())
    ):
        raise _bad("The amount must be an integer.", "amount")
    return int(raw)


def _collection(items: list[JSON]) -> JSON:
    return {"entity": "collection", "count": len(items), "items": items}


class RazorpayPayRequest(BaseModel):
    """The customer's choice on the sandbox checkout page; ``pending``: the bank has not
    answered and the payment stays ``created`` (see ``authorize_late``)."""

    outcome: Literal["success", "failure", "pending", "authenticate"]
    method: str = "card"


class RazorpayAuthenticateRequest(BaseModel):
    """The customer on the bank's 3-D Secure / OTP page: completes it or fails it (one who
    abandons it does nothing; the payment stays ``created``)."""

    outcome: Literal["complete", "fail"]


class LateAuthorization(BaseModel):
    """How long after its creation the late authorization arrives (default: the real time)."""

    minutes_since_creation: float | None = Field(default=None, ge=0)


class RazorpayApi:
    """The Razorpay endpoints' behaviour over the shared store."""

    def __init__(
        self,
        config: SandboxConfig,
        store: Store,
        behaviour: Behaviour,
        webhooks: WebhookDispatcher,
    ) -> None:
        self._config = config
        self._store = store
        self._behaviour = behaviour
        self._webhooks = webhooks
        self._idempotency = IdempotencyKeys(store.table("razorpay_idempotency"))
        self._orders = store.table("razorpay_orders")
        self._capture_settings = store.table("razorpay_order_capture")
        self._payments = store.table("razorpay_payments")
        self._refunds = store.table("razorpay_refunds")
        self._disputes = store.table("razorpay_disputes")

    async def call(
        self,
        request: Request,
        operation: str,
        action: Callable[[JSON], JSON],
        idempotency_key: str | None = None,
        subject: str | None = None,
    ) -> Response:
        """Authenticate, parse, apply faults (and refund idempotency), run ``action`` in the
        turn of the object it writes (``subject``)."""
        if not self._authorized(request.headers.get("authorization", "")):
            return _json(_na(401, "Authentication failed").body(), 401)
        writes = request.method in ("POST", "PATCH")
        if writes:
            raw = await request.body()
            try:
                params: Any = json.loads(raw) if raw.strip() else {}
            except ValueError:
                params = None
            if not isinstance(params, dict):
                return _json(_bad("The request body must be a JSON object.").body(), 400)
        else:
            params = dict(request.query_params)
        fault = self._behaviour.faults.take("razorpay", operation)
        if fault is not None and fault.kind == "rate_limited":
            return _json(_RATE_LIMITED.body(), 429)
        if fault is not None and fault.kind == "error_500":
            return _json(_SERVER_ERROR.body(), 500)
        digest = fingerprint(request.url.path, params)
        scoped = None
        if idempotency_key is not None:
            if not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
                error = _bad(
                    "The idempotency key must be at least 10 characters long and contain only "
                    "letters, numbers, hyphens and underscores."
                )
                return _json(error.body(), 400)
            scoped = f"{self._config.razorpay_key_id}:{idempotency_key}"
            saved = self._idempotency.saved(scoped)
            # "Create a Normal Refund (Idempotent Request)",
            # https://razorpay.com/docs/api/refunds/normal-refunds-idempotent: another body under
            # a used key "will be rejected as a BAD_REQUEST" (this body), the same key while its
            # refund is being processed gets "a 409 Conflict status code".
            if saved is not None:
                if saved.fingerprint != digest:
                    error = _na(
                        400,
                        "Different request with the same idempotency key has already been "
                        "processed.",
                    )
                    return _json(error.body(), 400)
                return _json(self._refunds[saved.body["id"]], 200)
            if self._idempotency.running(scoped):
                error = _na(409, "A request with the same idempotency key is being processed.")
                return _json(error.body(), 409)
            self._idempotency.begin(scoped)

        def apply() -> tuple[int, JSON]:
            status, body = self._execute(action, params)
            if scoped is not None and status == 200:
                # A replay answers with the refund as it is now, so only its id is kept.
                self._idempotency.save(scoped, SavedResponse(digest, status, {"id": body["id"]}))
            if writes:
                self._store.save()
            if status == 200 and fault is not None and fault.kind == "applied_then_500":
                return 500, _SERVER_ERROR.body()  # applied all the same; the refund keeps its key
            return status, body

        def done() -> None:
            if scoped is not None:
                self._idempotency.end(scoped)

        answered = await self._behaviour.writes.run(subject if writes else None, fault, apply, done)
        if answered is None or (fault is not None and fault.kind == "applied_but_lost"):
            return PlainTextResponse("<html><body><h1>502 Bad Gateway</h1></body></html>", 502)
        status, body = answered
        return _json(body, status)

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return decoded == f"{self._config.razorpay_key_id}:{self._config.razorpay_key_secret}"

    def _execute(self, action: Callable[[JSON], JSON], params: JSON) -> tuple[int, JSON]:
        try:
            status, body = 200, action(params)
        except RazorpayError as error:
            status, body = error.status, error.body()
        return status, body

    # Orders

    def create_order(self, params: JSON) -> JSON:
        """``POST /v1/orders``."""
        amount = _amount(params)
        if amount is None:
            raise _bad("The amount field is required.", "amount")
        if amount < 100:
            raise _bad("Order amount less than minimum amount allowed", "amount")
        currency = params.get("currency")
        if not currency:
            raise _bad("The currency field is required.", "currency")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise _bad("The selected currency is invalid.", "currency")
        receipt = params.get("receipt")
        if receipt is not None and (not isinstance(receipt, str) or len(receipt) > 40):
            raise _bad("The receipt may not be greater than 40 characters.", "receipt")
        notes = params.get("notes") or []
        if not isinstance(notes, dict | list):
            raise _bad("The notes must be an array.", "notes")
        try:
            capture_setting = order_capture_setting(params)
        except InvalidCaptureSetting as invalid:
            raise _bad(str(invalid), invalid.field) from None
        order_id = new_id("order", 14)
        order: JSON = {
            "id": order_id,
            "entity": "order",
            "amount": amount,
            "amount_paid": 0,
            "amount_due": amount,
            "currency": currency.upper(),
            "receipt": receipt,
            "offer_id": None,
            "status": "created",
            "attempts": 0,
            "notes": notes,
            "created_at": now(),
        }
        self._orders[order_id] = order
        self._capture_settings[order_id] = capture_setting
        return order

    def list_orders(self, params: JSON) -> JSON:
        """``GET /v1/orders``, newest first, filtered by ``receipt``, paged by count/skip."""
        try:
            count = min(int(params.get("count", 10)), 100)
            skip = int(params.get("skip", 0))
        except ValueError:
            raise _bad("The count and skip must be integers.") from None
        receipt = params.get("receipt")
        matching = [o for o in reversed(self._orders.values()) if receipt in (None, o["receipt"])]
        return _collection(matching[skip : skip + count])

    def fetch_order(self, order_id: str) -> JSON:
        """``GET /v1/orders/{id}``."""
        return _find(self._orders, order_id)

    def order_payments(self, order_id: str) -> JSON:
        """``GET /v1/orders/{id}/payments``, newest first."""
        _find(self._orders, order_id)
        return _collection(
            [p for p in reversed(self._payments.values()) if p["order_id"] == order_id]
        )

    # Payments

    def fetch_payment(self, payment_id: str) -> JSON:
        """``GET /v1/payments/{id}``."""
        return _find(self._payments, payment_id)

    def capture(self, payment_id: str, params: JSON) -> JSON:
        """``POST /v1/payments/{id}/capture``: the full authorized amount, once."""
        payment = _find(self._payments, payment_id)
        amount = _amount(params)
        if amount is None:
            raise _bad("The amount field is required.", "amount")
        currency = params.get("currency")
        if not currency:
            raise _bad("The currency field is required.", "currency")
        if payment["captured"]:
            # The body of Razorpay's answer, as razorpay/razorpay-mcp-server's capture test
            # (pkg/razorpay/payments_test.go) and the "Capture a Payment" errors
            # (https://razorpay.com/docs/api/payments/capture) give it.
            raise _bad("This payment has already been captured")
        if payment["status"] != "authorized":
            raise _bad(
                "Only payments which have been authorized and not yet captured can be captured"
            )
        if amount != payment["amount"]:
            raise _bad("Capture amount must be equal to the amount authorized", "amount")
        if str(currency).upper() != payment["currency"]:
            raise _bad("Currency should be same as payment currency", "currency")
        order = self._orders[payment["order_id"]]
        if order["status"] == "paid":
            raise _bad("Your payment has been declined as the order is already paid")
        self._capture_now(payment, order)
        return payment

    def _capture_now(self, payment: JSON, order: JSON) -> None:
        amount = payment["amount"]
        payment.update(status="captured", captured=True)
        order.update(status="paid", amount_paid=amount, amount_due=order["amount"] - amount)
        self._move("capture", payment, payment["id"], amount)
        self._webhooks.razorpay_event(order["id"], "payment.captured", {"payment": payment})
        self._webhooks.razorpay_event(
            order["id"], "order.paid", {"payment": payment, "order": order}
        )

    def _authorize(self, payment: JSON, order: JSON, minutes_since_creation: float) -> None:
        """The bank authorized the payment; Razorpay captures it at once when the order's or
        the account's capture setting says so. payment.authorized goes out either way, with the
        payment as it was when authorized ("Payments Webhook Events",
        https://razorpay.com/docs/webhooks/payments)."""
        payment["status"] = "authorized"
        self._move("authorization", payment, payment["id"], payment["amount"])
        self._webhooks.razorpay_event(order["id"], "payment.authorized", {"payment": payment})
        setting = self._capture_settings.get(order["id"], {})
        account = self._behaviour.razorpay_account
        if order["status"] != "paid" and captures_automatically(
            setting, account, minutes_since_creation
        ):
            self._capture_now(payment, order)

    def authorize_late(self, payment_id: str, minutes_since_creation: float | None) -> JSON:
        """Late authorization (sandbox control): the bank confirms a payment Razorpay kept in
        `created` while the customer was gone ("Late Authorization",
        https://razorpay.com/docs/payments/payments/late-authorisation: Razorpay polls the bank
        for days). ``minutes_since_creation`` stands for how late it is (default: as late as
        it really is), which decides whether the auto-capture period is over."""
        payment = _find(self._payments, payment_id)
        if payment["status"] != "created":
            raise _bad(f"The payment is {payment['status']}, not waiting for the bank")
        if minutes_since_creation is None:
            minutes_since_creation = (now() - payment["created_at"]) / 60
        self._authorize(payment, self._orders[payment["order_id"]], minutes_since_creation)
        self._store.save()
        return payment

    def authenticate(self, payment_id: str, outcome: str) -> JSON:
        """The bank's authentication answered. A card payment stays ``created`` while the bank
        authenticates the customer ("About Payments": created is "the customer has provided the
        payment details … not processed yet", https://razorpay.com/docs/payments/payments; the
        bank "requests the authentication of the customer by sending 3DS URL and OTP", step
        `payment_authentication`, https://razorpay.com/docs/errors/payments/payment-methods-error-parameters).
        Completed: authorized as any other payment, with the signature Checkout hands the
        client. Failed: `payment.failed` with the authentication step and reason; the customer
        may pay the order again."""
        payment = _find(self._payments, payment_id)
        if payment["status"] != "created":
            raise _bad(f"The payment is {payment['status']}, not waiting for authentication")
        order = self._orders[payment["order_id"]]
        if outcome == "complete":
            self._authorize(payment, order, (now() - payment["created_at"]) / 60)
            self._store.save()
            return {
                "razorpay_payment_id": payment_id,
                "razorpay_order_id": order["id"],
                "razorpay_signature": hmac_hex(
                    self._config.razorpay_key_secret, f"{order['id']}|{payment_id}"
                ),
            }
        payment.update(
            status="failed", error_code="BAD_REQUEST_ERROR",
            error_description="Payment failed because cardholder couldn't be authenticated",
            error_source="customer", error_step="payment_authentication",
            error_reason="authentication_failed",
        )  # fmt: skip
        self._webhooks.razorpay_event(order["id"], "payment.failed", {"payment": payment})
        self._store.save()
        return payment

    def refund(self, payment_id: str, params: JSON) -> JSON:
        """``POST /v1/payments/{id}/refund``; the amount defaults to what is left."""
        payment = _find(self._payments, payment_id)
        amount = _amount(params)
        speed = params.get("speed") or "normal"
        if speed not in ("normal", "optimum"):
            raise _bad("The selected speed is invalid.", "speed")
        if not payment["captured"]:
            raise _bad("Only captured payments can be refunded")
        remaining = payment["amount"] - payment["amount_refunded"]
        if remaining <= 0:
            raise _bad("The payment has been fully refunded already")
        amount = remaining if amount is None else amount
        if amount < 1:
            raise _bad("The refund amount must be at least 1.", "amount")
        if amount > remaining:
            raise _bad("The refund amount provided is greater than amount captured", "amount")
        instant = self._behaviour.refund_mode == "instant"
        refund_id = new_id("rfnd", 14)
        refund: JSON = {
            "id": refund_id,
            "entity": "refund",
            "amount": amount,
            "currency": payment["currency"],
            "payment_id": payment_id,
            "notes": params.get("notes") or [],
            "receipt": params.get("receipt"),
            "acquirer_data": {"arn": None},
            "created_at": now(),
            "batch_id": None,
            "status": "processed" if instant else "pending",
            "speed_processed": _speed_processed(speed) if instant else None,
            "speed_requested": speed,
        }
        self._refunds[refund_id] = refund
        self._set_refunded(payment, payment["amount_refunded"] + amount)
        entities = {"refund": refund, "payment": payment}
        self._webhooks.razorpay_event(payment["order_id"], "refund.created", entities)
        if instant:
            self._move("refund", payment, refund_id, amount)
            self._webhooks.razorpay_event(payment["order_id"], "refund.processed", entities)
        return refund

    def fetch_refund(self, refund_id: str) -> JSON:
        """``GET /v1/refunds/{id}``."""
        return _find(self._refunds, refund_id)

    def payment_refunds(self, payment_id: str) -> JSON:
        """``GET /v1/payments/{id}/refunds``, newest first."""
        _find(self._payments, payment_id)
        return _collection(
            [r for r in reversed(self._refunds.values()) if r["payment_id"] == payment_id]
        )

    def owns_refund(self, refund_id: str) -> bool:
        """Whether a refund id belongs to this gateway."""
        return refund_id in self._refunds

    def settle_refund(self, refund_id: str, succeeded: bool) -> JSON:
        """Finish a pending refund (sandbox control) and send its webhook."""
        refund = self._refunds[refund_id]
        if refund["status"] != "pending":
            raise ValueError(f"refund {refund_id} is {refund['status']}, not pending")
        payment = self._payments[refund["payment_id"]]
        if succeeded:
            refund.update(
                status="processed", speed_processed=_speed_processed(refund["speed_requested"])
            )
            self._move("refund", payment, refund_id, refund["amount"])
        else:
            refund["status"] = "failed"
            self._set_refunded(payment, payment["amount_refunded"] - refund["amount"])
        event = "refund.processed" if succeeded else "refund.failed"
        self._webhooks.razorpay_event(
            payment["order_id"], event, {"refund": refund, "payment": payment}
        )
        self._store.save()
        return refund

    def _set_refunded(self, payment: JSON, amount_refunded: int) -> None:
        full = amount_refunded >= payment["amount"]
        payment.update(
            amount_refunded=amount_refunded,
            refund_status="full" if full else "partial" if amount_refunded else None,
            status="refunded" if full else "captured",
        )

    def auto_refund(self, payment_id: str) -> JSON:
        """What Razorpay does to a payment authorized but not captured within its window (3 days):
        it refunds it by itself; the payment reads `refunded` with `captured: false` ("Payment
        Capture Settings", https://razorpay.com/docs/payments/payments/capture-settings)."""
        payment = _find(self._payments, payment_id)
        if payment["status"] != "authorized" or payment["captured"]:
            raise _bad("Only an authorized, uncaptured payment is refunded automatically")
        payment.update(status="refunded", amount_refunded=payment["amount"], refund_status="full")
        self._move("void", payment, payment_id, payment["amount"])
        self._webhooks.razorpay_event(
            payment["order_id"] or payment_id, "refund.processed", {"payment": payment}
        )
        self._store.save()
        return payment

    def _move(self, kind: MovementKind, payment: JSON, object_id: str, amount: int) -> None:
        self._store.record_movement(
            "razorpay",
            kind,
            object_id=object_id,
            payment=payment["id"],
            order=payment["order_id"],
            amount=amount,
            currency=payment["currency"],
        )

    # Disputes

    def open_dispute(
        self, payment_id: str, reason: str, amount: int | None, respond_within: int
    ) -> JSON:
        """A chargeback on a captured payment (sandbox control): ``payment.dispute.created``.
        Razorpay deducts the amount only when the dispute is lost."""
        payment = self._payments.get(payment_id)
        if payment is None or not payment["captured"]:
            raise ValueError(f"payment {payment_id} is not captured")
        amount = payment["amount"] if amount is None else amount
        if not 0 < amount <= payment["amount"]:
            raise ValueError(f"a dispute is for 1 to {payment['amount']}")
        dispute_id = new_id("disp", 14)
        dispute: JSON = {
            "id": dispute_id,
            "entity": "dispute",
            "payment_id": payment_id,
            "amount": amount,
            "currency": payment["currency"],
            "amount_deducted": 0,
            "reason_code": reason,
            "reason_description": reason.replace("_", " "),
            "respond_by": now() + respond_within,
            "status": "open",
            "phase": "chargeback",
            "created_at": now(),
            "evidence": {
                "amount": amount,
                "summary": None,
                **dict.fromkeys(_DOCUMENT_EVIDENCE),
                "others": None,
                "submitted_at": None,
            },
        }
        self._disputes[dispute_id] = dispute
        self._dispute_event(dispute, "payment.dispute.created")
        self._store.save()
        return dispute

    def owns_dispute(self, dispute_id: str) -> bool:
        """Whether a dispute id belongs to this gateway."""
        return dispute_id in self._disputes

    def fetch_dispute(self, dispute_id: str) -> JSON:
        """``GET /v1/disputes/{id}``."""
        return _find(self._disputes, dispute_id)

    def contest(self, dispute_id: str, params: JSON) -> JSON:
        """``PATCH /v1/disputes/{id}/contest``: evidence with ``action`` draft or submit."""
        dispute = _find(self._disputes, dispute_id)
        if dispute["status"] != "open":
            raise _bad(f"The dispute is {dispute['status']} and cannot be contested.")
        action = params.get("action")
        if action not in ("draft", "submit"):
            raise _bad("action must be draft or submit", "action")
        evidence = dispute["evidence"]
        for name in ("summary", *_DOCUMENT_EVIDENCE, "others"):
            if params.get(name) is not None:
                evidence[name] = params[name]
        if _amount(params) is not None:
            evidence["amount"] = _amount(params)
        if action == "submit":
            documents = [d for name in _DOCUMENT_EVIDENCE for d in evidence[name] or []]
            documents += [d for other in evidence["others"] or [] for d in other["document_ids"]]
            if not documents:
                raise _bad("At least one document is required to contest a dispute.")
            evidence["submitted_at"] = now()
            dispute["status"] = "under_review"
            self._dispute_event(dispute, "payment.dispute.under_review")
        return dispute

    def accept_dispute(self, dispute_id: str) -> JSON:
        """``POST /v1/disputes/{id}/accept``: the amount is deducted, the dispute lost."""
        dispute = _find(self._disputes, dispute_id)
        if dispute["status"] != "open":
            raise _bad(f"The dispute is {dispute['status']} and cannot be accepted.")
        self._lose(dispute)
        return dispute

    def resolve_dispute(self, dispute_id: str, won: bool) -> JSON:
        """The issuer decides (sandbox control): under review first, then won or lost."""
        dispute = _find(self._disputes, dispute_id)
        if dispute["status"] in ("won", "lost", "closed"):
            raise ValueError(f"dispute {dispute_id} is already {dispute['status']}")
        if dispute["status"] == "open":
            dispute["status"] = "under_review"
            self._dispute_event(dispute, "payment.dispute.under_review")
        if won:
            dispute["status"] = "won"
            self._dispute_event(dispute, "payment.dispute.won")
        else:
            self._lose(dispute)
        self._store.save()
        return dispute

    def _lose(self, dispute: JSON) -> None:
        dispute.update(status="lost", amount_deducted=dispute["amount"])
        self._move("dispute_withdrawal", self._payments[dispute["payment_id"]], dispute["id"],
                   dispute["amount"])  # fmt: skip
        self._dispute_event(dispute, "payment.dispute.lost")

    def _dispute_event(self, dispute: JSON, event_type: str) -> None:
        payment = self._payments[dispute["payment_id"]]
        self._webhooks.razorpay_event(
            payment["order_id"] or payment["id"], event_type,
            {"payment": payment, "dispute": dispute},
        )  # fmt: skip

    # The customer's side

    def pay(self, order_id: str, request: RazorpayPayRequest) -> Response:
        """What Razorpay Checkout does when the customer pays an order."""
        order = self._orders.get(order_id)
        if order is None:
            return _json(_bad("The id provided does not exist").body(), 404)
        if order["status"] == "paid":
            return _json(
                _bad("Your payment has been declined as the order is already paid").body(), 400
            )
        payment_id = new_id("pay", 14)
        failed = request.outcome == "failure"
        payment: JSON = {
            "id": payment_id,
            "entity": "payment",
            "amount": order["amount_due"],
            "currency": order["currency"],
            "status": "failed" if failed else "created",
            "order_id": order_id,
            "invoice_id": None,
            "international": False,
            "method": request.method,
            "amount_refunded": 0,
            "refund_status": None,
            "captured": False,
            "description": None,
            "bank": None,
            "wallet": None,
            "vpa": None,
            "email": "customer@example.com",
            "contact": "+919000090000",
            "notes": order["notes"],
            "fee": None,
            "tax": None,
            "error_code": "BAD_REQUEST_ERROR" if failed else None,
            "error_description": _DECLINED if failed else None,
            "error_source": "bank" if failed else None,
            "error_step": "payment_authorization" if failed else None,
            "error_reason": "payment_failed" if failed else None,
            "acquirer_data": {},
            "created_at": now(),
        }
        self._payments[payment_id] = payment
        order.update(status="attempted", attempts=order["attempts"] + 1)
        if request.outcome == "success":
            self._authorize(payment, order, 0)
        elif failed:
            self._webhooks.razorpay_event(order_id, "payment.failed", {"payment": payment})
        self._store.save()
        if failed:
            error = RazorpayError(
                402,
                _DECLINED,
                source="bank",
                step="payment_authorization",
                reason="payment_failed",
                metadata={"payment_id": payment_id, "order_id": order_id},
            )
            return _json(error.body(), 402)
        if request.outcome == "pending":
            # The customer left (or the bank is slow): Checkout hands the client nothing; the
            # id is only for the test that authorizes the payment later.
            return _json({"razorpay_payment_id": payment_id, "razorpay_order_id": order_id}, 202)
        if request.outcome == "authenticate":
            # The bank asks for 3-D Secure / OTP: Checkout shows its page; the payment stays
            # `created` until the customer completes or fails it (see ``authenticate``).
            return _json(
                {
                    "razorpay_payment_id": payment_id, "razorpay_order_id": order_id,
                    "authentication_url": f"/checkout/razorpay/payments/{payment_id}/authenticate",
                },
                202,
            )  # fmt: skip
        return _json(
            {
                "razorpay_payment_id": payment_id,
                "razorpay_order_id": order_id,
                "razorpay_signature": hmac_hex(
                    self._config.razorpay_key_secret, f"{order_id}|{payment_id}"
                ),
            },
            200,
        )


def _find(table: dict[str, JSON], object_id: str) -> JSON:
    found = table.get(object_id)
    if found is None:
        raise _bad("The id provided does not exist", "id")
    return found


def _speed_processed(speed_requested: str) -> str:
    return "instant" if speed_requested == "optimum" else "normal"


def _json(body: JSON, status: int) -> JSONResponse:
    return JSONResponse(body, status)


def create_razorpay_router(api: RazorpayApi) -> APIRouter:
    """The ``/razorpay/v1`` routes plus the customer's ``/sandbox/razorpay`` pay route."""
    router = APIRouter()
    base = "/razorpay/v1"

    @router.post(f"{base}/orders")
    async def create_order(request: Request) -> Response:
        return await api.call(request, "orders.create", api.create_order)

    @router.get(f"{base}/orders")
    async def list_orders(request: Request) -> Response:
        return await api.call(request, "orders.all", api.list_orders)

    @router.get(f"{base}/orders/{{order_id}}")
    async def fetch_order(order_id: str, request: Request) -> Response:
        return await api.call(request, "orders.fetch", lambda _: api.fetch_order(order_id))

    @router.get(f"{base}/orders/{{order_id}}/payments")
    async def order_payments(order_id: str, request: Request) -> Response:
        return await api.call(request, "orders.payments", lambda _: api.order_payments(order_id))

    @router.get(f"{base}/payments/{{payment_id}}")
    async def fetch_payment(payment_id: str, request: Request) -> Response:
        return await api.call(request, "payments.fetch", lambda _: api.fetch_payment(payment_id))

    @router.post(f"{base}/payments/{{payment_id}}/capture")
    async def capture(payment_id: str, request: Request) -> Response:
        return await api.call(
            request, "payments.capture", lambda p: api.capture(payment_id, p), None, payment_id
        )

    @router.post(f"{base}/payments/{{payment_id}}/refund")
    async def refund(payment_id: str, request: Request) -> Response:
        return await api.call(
            request,
            "payments.refund",
            lambda p: api.refund(payment_id, p),
            request.headers.get("x-refund-idempotency"),
            payment_id,
        )

    @router.get(f"{base}/payments/{{payment_id}}/refunds")
    async def payment_refunds(payment_id: str, request: Request) -> Response:
        return await api.call(
            request, "payments.refunds", lambda _: api.payment_refunds(payment_id)
        )

    @router.get(f"{base}/refunds/{{refund_id}}")
    async def fetch_refund(refund_id: str, request: Request) -> Response:
        return await api.call(request, "refunds.fetch", lambda _: api.fetch_refund(refund_id))

    @router.get(f"{base}/disputes/{{dispute_id}}")
    async def fetch_dispute(dispute_id: str, request: Request) -> Response:
        return await api.call(request, "disputes.fetch", lambda _: api.fetch_dispute(dispute_id))

    @router.patch(f"{base}/disputes/{{dispute_id}}/contest")
    async def contest_dispute(dispute_id: str, request: Request) -> Response:
        return await api.call(
            request, "disputes.contest", lambda p: api.contest(dispute_id, p), None, dispute_id
        )

    @router.post(f"{base}/disputes/{{dispute_id}}/accept")
    async def accept_dispute(dispute_id: str, request: Request) -> Response:
        return await api.call(
            request, "disputes.accept", lambda _: api.accept_dispute(dispute_id), None, dispute_id
        )

    @router.post("/sandbox/razorpay/orders/{order_id}/pay")
    async def pay(order_id: str, body: RazorpayPayRequest) -> Response:
        return api.pay(order_id, body)

    @router.post("/sandbox/razorpay/payments/{payment_id}/authenticate")
    async def authenticate(payment_id: str, body: RazorpayAuthenticateRequest) -> Response:
        try:
            return _json(api.authenticate(payment_id, body.outcome), 200)
        except RazorpayError as error:
            return _json(error.body(), error.status)

    @router.post("/sandbox/razorpay/payments/{payment_id}/authorize")
    async def authorize_late(payment_id: str, body: LateAuthorization | None = None) -> Response:
        late = body or LateAuthorization()
        try:
            return _json(api.authorize_late(payment_id, late.minutes_since_creation), 200)
        except RazorpayError as error:
            return _json(error.body(), error.status)

    @router.post("/sandbox/razorpay/payments/{payment_id}/auto_refund")
    async def auto_refund(payment_id: str) -> Response:
        try:
            return _json(api.auto_refund(payment_id), 200)
        except RazorpayError as error:
            return _json(error.body(), error.status)

    return router
