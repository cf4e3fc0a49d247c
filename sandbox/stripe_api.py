"""Stripe emulator: PaymentIntents and Refunds under ``/stripe/v1``.

Requests are form encoded with bracketed nested keys, answers and errors have Stripe's
JSON shapes and HTTP codes, so ``stripe.StripeClient`` raises its real exception
classes. Every POST honours ``Idempotency-Key`` like Stripe does: same key and same
request replays the first answer (a 500 included) for 24 hours, a different request under a
used key is an ``idempotency_error``, the same key while its request runs is a 409. Also
serves the customer's side (what Stripe.js confirm does).
"""

import copy
import re
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from sandbox.behaviour import Behaviour
from sandbox.config import SandboxConfig
from sandbox.state import JSON, IdempotencyKeys, SavedResponse, Store, fingerprint, new_id, now
from sandbox.webhooks import WebhookDispatcher

_CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
)
_CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
_REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
_EVIDENCE_FIELDS = (
    "access_activity_log", "billing_address", "cancellation_policy",
    "cancellation_policy_disclosure", "cancellation_rebuttal", "customer_communication",
    "customer_email_address", "customer_name", "customer_purchase_ip", "customer_signature",
    "duplicate_charge_documentation", "duplicate_charge_explanation", "duplicate_charge_id",
    "product_description", "receipt", "refund_policy", "refund_policy_disclosure",
    "refund_refusal_explanation", "service_date", "service_documentation", "shipping_address",
    "shipping_carrier", "shipping_date", "shipping_documentation", "shipping_tracking_number",
    "uncategorized_file", "uncategorized_text",
)  # fmt: skip

# Stripe's test payment methods and card numbers: token -> (brand, last4).
_TEST_CARDS = {
    "pm_card_visa": ("visa", "4242"),
    "4242424242424242": ("visa", "4242"),
    "pm_card_mastercard": ("mastercard", "4444"),
    "5555555555554444": ("mastercard", "4444"),
    "pm_card_chargeDeclined": ("visa", "0002"),
    "pm_card_visa_chargeDeclined": ("visa", "0002"),
    "4000000000000002": ("visa", "0002"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995"),
    "pm_card_visa_chargeDeclinedInsufficientFunds": ("visa", "9995"),
    "4000000000009995": ("visa", "9995"),
    # "International cards" (https://docs.stripe.com/testing#international-cards)
    "pm_card_gb": ("visa", "0000"),
    "4000008260000000": ("visa", "0000"),
    "pm_card_in": ("visa", "0008"),
    "4000003560000008": ("visa", "0008"),
    # "Radar" test cards (https://docs.stripe.com/testing#radar): the charge succeeds, rated
    "pm_card_riskLevelElevated": ("visa", "9235"),
    "4000000000009235": ("visa", "9235"),
    # "Authentication and setup" / "3D Secure" test cards (https://docs.stripe.com/testing#regulatory-cards,
    # https://docs.stripe.com/testing#three-ds-cards): authentication is required on every
    # payment; the test challenge page lets the customer complete or fail it.
    "pm_card_authenticationRequired": ("visa", "3184"),
    "4000002760003184": ("visa", "3184"),
    "pm_card_threeDSecure2Required": ("visa", "3220"),
    "4000000000003220": ("visa", "3220"),
}
# last4 of the cards whose issuer asks for 3-D Secure on every payment.
_AUTHENTICATION_REQUIRED = frozenset({"3184", "3220"})
# last4 -> (issuing country, Radar's risk level) where not the default ("US", "normal"); the charge
# shows them as payment_method_details.card.country and outcome.risk_level
# (https://docs.stripe.com/api/charges/object#charge_object-outcome-risk_level).
_CARD_FACTS = {"0000": ("GB", "normal"), "0008": ("IN", "normal"), "9235": ("US", "elevated")}
# last4 of a declining test card -> (decline_code, message).
_DECLINES = {
    "0002": ("generic_decline", "Your card was declined."),
    "9995": ("insufficient_funds", "Your card has insufficient funds."),
}
_KEY_PART = re.compile(r"\[([^\]]*)\]")
# One clause of a search query we answer: metadata['key']:'value' or status:'value'.
_SEARCH_CLAUSE = re.compile(
    r"(metadata|status)"  # the field
    r"(?:\[['\"]([^'\"\]]+)['\"]\])?"  # a metadata key
    r":['\"]([^'\"]*)['\"]"  # the value
)
# "Idempotent requests" (https://docs.stripe.com/idempotency): keys can be pruned once they are
# at least 24 hours old; a key reused after that makes a new request.
_KEY_LIFETIME = 24 * 3600


class StripeError(Exception):
    """An error answer in Stripe's ``{"error": {...}}`` shape.

    ``saved`` is false for errors Stripe raises before an endpoint starts executing
    (parameter validation), whose answers are not stored under an idempotency key.
    """

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        extra: JSON | None = None,
        saved: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.saved = saved
        self.error: JSON = {"type": error_type, "message": message}
        for key, value in (("code", code), ("param", param), ("decline_code", decline_code)):
            if value is not None:
                self.error[key] = value
        if code is not None:
            self.error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        self.error.update(extra or {})

    def body(self) -> JSON:
        """The JSON body Stripe answers with."""
        return {"error": self.error}


def _invalid(message: str, *, code: str | None = None, param: str | None = None) -> StripeError:
    return StripeError(400, "invalid_request_error", message, code=code, param=param)


def _bad_param(message: str, param: str, code: str | None = None) -> StripeError:
    return StripeError(400, "invalid_request_error", message, code=code, param=param, saved=False)


def _missing(kind: str, object_id: str, param: str) -> StripeError:
    return StripeError(
        404,
        "invalid_request_error",
        f"No such {kind}: '{object_id}'",
        code="resource_missing",
        param=param,
    )


def _unexpected_state(message: str) -> StripeError:
    return _invalid(message, code="payment_intent_unexpected_state")


def _fail_with_500(_: JSON) -> JSON:
    """The ``error_500`` fault: the endpoint began executing and failed, applying nothing.
    Stripe saves this answer under the request's idempotency key like any other and replays it
    to every retry with that key ("Idempotent requests": "including 500 errors")."""
    raise StripeError(500, "api_error", "An unknown error occurred")


def _applied_then_500(action: Callable[[JSON], JSON]) -> Callable[[JSON], JSON]:
    """The ``applied_then_500`` fault: the endpoint applies the call, then fails with a 500.
    "Advanced error handling" (https://docs.stripe.com/error-low-level#server-errors): the
    result of a 500 is indeterminate, the request may have been applied; like any answer of an
    endpoint that began executing, the 500 is saved under the idempotency key and replayed to
    every retry with that key ("Idempotent requests", https://docs.stripe.com/idempotency), so
    only a look-up tells whether the object changed."""

    def applied(params: JSON) -> JSON:
        action(params)
        raise StripeError(500, "api_error", "An unknown error occurred")

    return applied


# "Rate limits" (https://docs.stripe.com/rate-limits): too many requests get status 429; the
# body carries the error code `rate_limit` ("Error codes", https://docs.stripe.com/error-codes).
# Nothing is executed or saved under the idempotency key, so a later retry runs normally.
_RATE_LIMITED = StripeError(
    429,
    "invalid_request_error",
    "Too many requests hit the API too quickly. We recommend an exponential backoff of your "
    "requests.",
    code="rate_limit",
)


def parse_form(raw: str) -> JSON:
    """Decode Stripe's form encoding (``metadata[k]=v``, ``types[0]=card``) into JSON."""
    root: JSON = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        head = key.split("[", 1)[0]
        path = [head, *_KEY_PART.findall(key[len(head) :])]
        node = root
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return _listify(root)


def _listify(node: JSON) -> JSON:
    out: JSON = {}
    for key, value in node.items():
        if isinstance(value, dict):
            value = _listify(value)
            if value and all(k.isdigit() for k in value):
                value = [value[k] for k in sorted(value, key=int)]
        out[key] = value
    return out


def _int(params: JSON, name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise _bad_param(f"Invalid integer: {raw}", name, "parameter_invalid_integer") from None


def _required_int(params: JSON, name: str) -> int:
    value = _int(params, name)
    if value is None:
        raise _bad_param(f"Missing required param: {name}.", name, "parameter_missing")
    return value


def _choice(
    params: JSON,
    name: str,
    choices: tuple[str, ...],
    default: str | None,
    param: str | None = None,
) -> Any:
    value = params.get(name) or default
    if value is not None and value not in choices:
        raise _bad_param(f"Invalid {name}: must be one of {', '.join(choices)}", param or name)
    return value


def _metadata(params: JSON) -> JSON:
    metadata = params.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise _bad_param("Invalid object", "metadata")
    return {key: value for key, value in metadata.items() if value != ""}


class AuthenticateRequest(BaseModel):
    """What the customer does on the issuer's 3-D Secure challenge: complete it, or fail it (a
    customer who abandons it does nothing; the PaymentIntent stays `requires_action`)."""

    outcome: Literal["complete", "fail"]


class PayRequest(BaseModel):
    """What Stripe.js sends when the customer confirms a PaymentIntent, plus what the card's
    issuer approves (sandbox control): less than the amount is a partial authorization when the
    PaymentIntent asked for one, else a decline for insufficient funds."""

    client_secret: str
    payment_method: str
    authorized_amount: int | None = Field(default=None, ge=1)


class StripeApi:
    """The Stripe endpoints' behaviour over the shared store."""

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
        self._idempotency = IdempotencyKeys(store.table("stripe_idempotency"), _KEY_LIFETIME)
        self._intents = store.table("stripe_payment_intents")
        self._methods = store.table("stripe_payment_methods")
        self._charges = store.table("stripe_charges")
        self._refunds = store.table("stripe_refunds")
        self._disputes = store.table("stripe_disputes")

    async def call(
        self,
        request: Request,
        operation: str,
        action: Callable[[JSON], JSON],
        subject: str | None = None,
    ) -> Response:
        """Authenticate, apply faults and idempotency, run ``action`` in the turn of the object
        it writes (``subject``) and answer."""
        api_key = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if api_key != self._config.stripe_secret_key:
            shown = api_key[:8] + "*" * max(len(api_key) - 12, 0) + api_key[-4:]
            return _json(
                StripeError(
                    401,
                    "invalid_request_error",
                    f"Invalid API Key provided: {shown}"
                    if api_key
                    else "You did not provide an API key.",
                ).body(),
                401,
            )
        writes = request.method == "POST"
        raw = (await request.body()).decode() if writes else request.url.query
        params = parse_form(raw)
        fault = self._behaviour.faults.take("stripe", operation)
        if fault is not None and fault.kind == "rate_limited":
            return _json(_RATE_LIMITED.body(), 429)
        if fault is not None and fault.kind == "error_500":
            action = _fail_with_500
        if fault is not None and fault.kind == "applied_then_500":
            action = _applied_then_500(action)
        key = request.headers.get("idempotency-key") if writes else None
        scoped = f"{api_key}:{key}" if key else None
        digest = fingerprint(request.url.path, params)
        if scoped is not None:
            saved = self._idempotency.saved(scoped)
            if saved is not None:
                if saved.fingerprint != digest:
                    message = (
                        "Keys for idempotent requests can only be used with the same parameters "
                        f"they were first used with. Try using a key other than '{key}' if you "
                        "meant to execute a different request."
                    )
                    return _json(StripeError(400, "idempotency_error", message).body(), 400)
                return _json(
                    saved.body,
                    saved.status,
                    {"Idempotency-Key": str(key), "Idempotent-Replayed": "true"},
                )
            if self._idempotency.running(scoped):
                message = (
                    "There is currently another in-progress request using this Idempotent Key "
                    "(that probably means you submitted twice, and the other request is still "
                    f"going through): {key}. Please try again later."
                )
                error = StripeError(
                    409, "idempotency_error", message, code="idempotency_key_in_use"
                )
                return _json(error.body(), 409)
            self._idempotency.begin(scoped)

        def apply() -> tuple[int, JSON]:
            answer = self._execute(action, params, scoped, digest)
            if writes:
                self._store.save()
            return answer

        def done() -> None:
            if scoped is not None:
                self._idempotency.end(scoped)

        answered = await self._behaviour.writes.run(
            (subject or self._refund_subject(params)) if writes else None, fault, apply, done
        )
        if answered is None or (fault is not None and fault.kind == "applied_but_lost"):
            return PlainTextResponse("<html><body><h1>502 Bad Gateway</h1></body></html>", 502)
        status, body = answered
        return _json(body, status, {"Idempotency-Key": key} if key else {})

    def expire_idempotency_keys(self) -> int:
        """Forget every saved answer (sandbox control); returns how many there were."""
        count = self._idempotency.expire()
        self._store.save()
        return count

    def _refund_subject(self, params: JSON) -> str | None:
        """The PaymentIntent a new refund writes to, named directly or through its charge."""
        intent = params.get("payment_intent")
        if isinstance(intent, str) and intent:
            return intent
        charge = self._charges.get(str(params.get("charge")))
        return charge["payment_intent"] if charge else None

    def _execute(
        self,
        action: Callable[[JSON], JSON],
        params: JSON,
        key: str | None = None,
        digest: str = "",
    ) -> tuple[int, JSON]:
        """Run ``action``; under an idempotency key save its answer, errors included, unless
        the request failed validation before the endpoint began executing."""
        try:
            status, body, saved = 200, action(params), True
        except StripeError as error:
            status, body, saved = error.status, error.body(), error.saved
        body = copy.deepcopy(body)
        if key is not None and saved:
            self._idempotency.save(key, SavedResponse(digest, status, body))
        return status, body

    # PaymentIntents

    def create_payment_intent(self, params: JSON) -> JSON:
        """``POST /v1/payment_intents``."""
        amount = _required_int(params, "amount")
        if amount < 1:
            raise _bad_param("Amount must be at least 1", "amount", "amount_too_small")
        currency = str(params.get("currency") or "").lower()
        if not currency:
            raise _bad_param("Missing required param: currency.", "currency", "parameter_missing")
        if not re.fullmatch(r"[a-z]{3}", currency):
            raise _bad_param(
                f"Invalid currency: {currency}.", "currency", "parameter_invalid_string"
            )
        capture_method = _choice(
            params, "capture_method", ("automatic", "automatic_async", "manual"), "automatic"
        )
        metadata = _metadata(params)
        payment_method = (
            self._payment_method(params["payment_method"]) if params.get("payment_method") else None
        )
        method_options = params.get("payment_method_options")
        card_options = method_options.get("card") if isinstance(method_options, dict) else None
        partial = _choice(
            card_options if isinstance(card_options, dict) else {},
            "request_partial_authorization",
            ("if_available", "never"),
            None,
            "payment_method_options[card][request_partial_authorization]",
        )
        intent_id = new_id("pi", 24)
        intent: JSON = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": capture_method,
            "client_secret": f"{intent_id}_secret_{new_id('', 25)[1:]}",
            "confirmation_method": "automatic",
            "created": now(),
            "currency": currency,
            "customer": None,
            "description": params.get("description") or None,
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": metadata,
            "next_action": None,
            "payment_method": payment_method["id"] if payment_method else None,
            "payment_method_options": (
                {"card": {"request_partial_authorization": partial}} if partial else {}
            ),
            "payment_method_types": params.get("payment_method_types") or ["card"],
            "receipt_email": params.get("receipt_email") or None,
            "statement_descriptor": params.get("statement_descriptor") or None,
            "status": "requires_confirmation" if payment_method else "requires_payment_method",
        }
        self._intents[intent_id] = intent
        self._webhooks.stripe_event(intent_id, "payment_intent.created", intent)
        if params.get("confirm") == "true":
            self._confirm(intent, None)
        return intent

    def retrieve_payment_intent(self, intent_id: str) -> JSON:
        """``GET /v1/payment_intents/{id}``."""
        intent = self._intents.get(intent_id)
        if intent is None:
            raise _missing("payment_intent", intent_id, "intent")
        return intent

    def search_payment_intents(self, params: JSON) -> JSON:
        """``GET /v1/payment_intents/search`` ("Search PaymentIntents",
        https://docs.stripe.com/api/payment_intents/search), for clauses ``metadata['k']:'v'``
        and ``status:'s'`` joined by ``AND`` ("Search query language",
        https://docs.stripe.com/search#search-query-language); newest first. Stripe's search
        lags writes ("Don't use search in read-after-write flows ... data is searchable in less
        than a minute"); the sandbox's does not (not modelled)."""
        query = str(params.get("query") or "")
        if not query:
            raise _bad_param("Missing required param: query.", "query", "parameter_missing")
        clauses = []
        for clause in re.split(r"\s+AND\s+", query.strip()):
            match = _SEARCH_CLAUSE.fullmatch(clause.strip())
            if match is None:
                raise _bad_param(
                    f"We were unable to parse your search query. Clause: {clause!r}", "query"
                )
            clauses.append(match.groups())
        limit = _int(params, "limit") or 10

        def matches(intent: JSON) -> bool:
            return all(
                (intent["metadata"].get(key) if field == "metadata" else intent.get(field)) == value
                for field, key, value in clauses
            )

        found = [i for i in reversed(self._intents.values()) if matches(i)]
        return {
            "object": "search_result",
            "url": "/v1/payment_intents/search",
            "data": found[:limit],
            "has_more": len(found) > limit,
            "next_page": None,
        }

    def expanded(self, intent: JSON, expand: object) -> JSON:
        """``expand[]=latest_charge`` answers with the charge object in place of its id
        (https://docs.stripe.com/api/expanding_objects); the stored intent keeps the id."""
        charge_id = intent["latest_charge"]
        if not isinstance(expand, list) or "latest_charge" not in expand or not charge_id:
            return intent
        return {**intent, "latest_charge": self._charges[charge_id]}

    def confirm(self, intent_id: str, params: JSON) -> JSON:
        """``POST /v1/payment_intents/{id}/confirm``."""
        intent = self.retrieve_payment_intent(intent_id)
        self._confirm(intent, params.get("payment_method") or None)
        return intent

    def capture(self, intent_id: str, params: JSON) -> JSON:
        """``POST /v1/payment_intents/{id}/capture``; a partial capture releases the rest."""
        intent = self.retrieve_payment_intent(intent_id)
        if intent["status"] != "requires_capture":
            raise _unexpected_state(
                "This PaymentIntent could not be captured because it has a status of "
                f"{intent['status']}. Only a PaymentIntent with one of the following statuses "
                "may be captured: requires_capture."
            )
        capturable = intent["amount_capturable"]
        amount = _int(params, "amount_to_capture")
        amount = capturable if amount is None else amount
        if amount < 1 or amount > capturable:
            raise _bad_param(
                "The amount to capture must be a positive integer less than or equal to the "
                f"amount_capturable ({capturable}).",
                "amount_to_capture",
                "amount_too_large" if amount > capturable else "amount_too_small",
            )
        intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        charge = self._charges[intent["latest_charge"]]
        charge.update(captured=True, amount_captured=amount)
        self._move("capture", intent, amount)
        if amount < capturable:
            self._move("void", intent, capturable - amount)
        self._webhooks.stripe_event(intent_id, "payment_intent.succeeded", intent)
        return intent

    def cancel(self, intent_id: str, params: JSON) -> JSON:
        """``POST /v1/payment_intents/{id}/cancel``; cancelling an authorization voids it."""
        intent = self.retrieve_payment_intent(intent_id)
        reason = _choice(params, "cancellation_reason", _CANCELLATION_REASONS, None)
        if intent["status"] not in _CANCELABLE:
            raise _unexpected_state(
                "You cannot cancel this PaymentIntent because it has a status of "
                f"{intent['status']}. Only a PaymentIntent with one of the following statuses "
                f"may be canceled: {', '.join(_CANCELABLE)}."
            )
        if intent["status"] == "requires_capture":
            charge = self._charges[intent["latest_charge"]]
            charge.update(refunded=True, amount_refunded=charge["amount"])
            self._move("void", intent, intent["amount_capturable"])
        intent.update(
            status="canceled", amount_capturable=0, canceled_at=now(), cancellation_reason=reason
        )
        self._webhooks.stripe_event(intent_id, "payment_intent.canceled", intent)
        return intent

    def _payment_method(self, token: str) -> JSON:
        """The PaymentMethod a test token/card number stands for (created on first use)."""
        if token in self._methods:
            return self._methods[token]
        if token not in _TEST_CARDS:
            raise _missing("PaymentMethod", token, "payment_method")
        brand, last4 = _TEST_CARDS[token]
        method: JSON = {
            "id": new_id("pm", 24),
            "object": "payment_method",
            "type": "card",
            "card": {"brand": brand, "last4": last4, "exp_month": 12, "exp_year": 2034},
            "billing_details": {"email": None, "name": None},
            "created": now(),
            "customer": None,
            "livemode": False,
            "metadata": {},
        }
        self._methods[method["id"]] = method
        return method

    def _confirm(
        self,
        intent: JSON,
        token: str | None,
        approved: int | None = None,
        *,
        challenge_url: str | None = None,
    ) -> None:
        """The card's issuer approves ``approved`` (default: the whole amount).

        Partial authorization (https://docs.stripe.com/payments/partial-authorization): a
        PaymentIntent created with ``payment_method_options[card][request_partial_authorization]
        =if_available`` is authorized for what the issuer approves, its ``amount_capturable``
        below its ``amount``; without it an insufficient balance is a decline."""
        if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise _unexpected_state(
                "You cannot confirm this PaymentIntent because it has a status of "
                f"{intent['status']}."
            )
        if token is not None:
            method = self._payment_method(token)
        elif intent["payment_method"] is not None:
            method = self._methods[intent["payment_method"]]
        else:
            raise StripeError(
                400,
                "invalid_request_error",
                "You cannot confirm this PaymentIntent because it's missing a payment method. "
                "Update the PaymentIntent with a payment method and then confirm it again.",
                code="payment_intent_unexpected_state",
                param="payment_method",
            )
        if method["card"]["last4"] in _AUTHENTICATION_REQUIRED and challenge_url is not None:
            # The issuer asks for 3-D Secure: the PaymentIntent waits in `requires_action` with a
            # `next_action` the client follows (Stripe.js `handleNextAction`, or the redirect),
            # and Stripe sends `payment_intent.requires_action`
            # (https://docs.stripe.com/payments/paymentintents/lifecycle,
            # https://docs.stripe.com/payments/3d-secure/authentication-flow).
            intent.update(
                status="requires_action",
                payment_method=method["id"],
                last_payment_error=None,
                next_action={
                    "type": "redirect_to_url",
                    "redirect_to_url": {"url": challenge_url, "return_url": None},
                },
            )
            self._webhooks.stripe_event(intent["id"], "payment_intent.requires_action", intent)
            return
        intent.update(next_action=None)
        authorized = intent["amount"] if approved is None else approved
        if authorized > intent["amount"]:
            raise _bad_param(
                "The issuer cannot approve more than the PaymentIntent's amount.",
                "authorized_amount",
            )
        partial_allowed = (
            intent["payment_method_options"].get("card", {}).get("request_partial_authorization")
            == "if_available"
        )
        decline = _DECLINES.get(method["card"]["last4"])
        if decline is None and authorized < intent["amount"] and not partial_allowed:
            decline = _DECLINES["9995"]
        if decline is not None:
            decline_code, message = decline
            error = StripeError(
                402,
                "card_error",
                message,
                code="card_declined",
                decline_code=decline_code,
                extra={"payment_method": method},
            )
            intent.update(
                status="requires_payment_method",
                payment_method=None,
                last_payment_error=dict(error.error),
            )
            error.error["payment_intent"] = copy.deepcopy(intent)
            self._webhooks.stripe_event(intent["id"], "payment_intent.payment_failed", intent)
            raise error
        charge_id = new_id("ch", 24)
        automatic = intent["capture_method"] != "manual"
        last4 = method["card"]["last4"]
        country, risk_level = _CARD_FACTS.get(last4, ("US", "normal"))
        risk_score = 70 if risk_level == "elevated" else 20
        self._charges[charge_id] = {
            "id": charge_id,
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": authorized if automatic else 0,
            "amount_refunded": 0,
            "captured": automatic,
            "created": now(),
            "currency": intent["currency"],
            "description": intent["description"],
            "livemode": False,
            "metadata": intent["metadata"],
            "paid": True,
            "payment_intent": intent["id"],
            "payment_method": method["id"],
            "payment_method_details": {
                "type": "card",
                "card": {
                    "brand": method["card"]["brand"],
                    "last4": method["card"]["last4"],
                    "amount_authorized": authorized,
                    # "Uniquely identifies this particular card number" (Charge object docs)
                    "fingerprint": fingerprint("card", method["card"]["brand"], last4)[:16],
                    "country": country,
                },
            },
            "outcome": {"type": "authorized", "risk_level": risk_level, "risk_score": risk_score},
            "receipt_email": intent["receipt_email"],
            "refunded": False,
            "status": "succeeded",
        }
        intent.update(payment_method=method["id"], last_payment_error=None, latest_charge=charge_id)
        self._move("authorization", intent, authorized)
        if automatic:
            intent.update(status="succeeded", amount_received=authorized)
            self._move("capture", intent, authorized)
            self._webhooks.stripe_event(intent["id"], "payment_intent.succeeded", intent)
        else:
            intent.update(status="requires_capture", amount_capturable=authorized)
            self._webhooks.stripe_event(
                intent["id"], "payment_intent.amount_capturable_updated", intent
            )

    def _move(
        self, kind: Literal["authorization", "capture", "void"], intent: JSON, amount: int
    ) -> None:
        self._store.record_movement(
            "stripe",
            kind,
            object_id=intent["id"],
            payment=intent["id"],
            order=None,
            amount=amount,
            currency=intent["currency"],
        )

    # Refunds

    def create_refund(self, params: JSON) -> JSON:
        """``POST /v1/refunds`` against a PaymentIntent or a Charge."""
        amount = _int(params, "amount")
        reason = _choice(params, "reason", _REFUND_REASONS, None)
        metadata = _metadata(params)
        if params.get("payment_intent"):
            intent = self.retrieve_payment_intent(params["payment_intent"])
            charge = self._charges.get(intent["latest_charge"] or "")
            if charge is None or not charge["captured"]:
                raise _invalid(
                    f"This PaymentIntent ({intent['id']}) does not have a successful charge "
                    "to refund.",
                    param="payment_intent",
                )
        elif params.get("charge"):
            charge = self._charges.get(params["charge"])
            if charge is None:
                raise _missing("charge", params["charge"], "charge")
        else:
            raise _bad_param(
                "One of the following params should be provided for this request: "
                "payment_intent or charge.",
                "payment_intent",
                "parameter_missing",
            )
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        if remaining <= 0:
            raise _invalid(
                f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
            )
        amount = remaining if amount is None else amount
        if amount < 1 or amount > remaining:
            raise _invalid(
                f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                f"({remaining})",
                code="amount_too_large",
                param="amount",
            )
        refund_id = new_id("re", 24)
        instant = self._behaviour.refund_mode == "instant"
        refund: JSON = {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "balance_transaction": None,
            "charge": charge["id"],
            "created": now(),
            "currency": charge["currency"],
            "failure_reason": None,
            "metadata": metadata,
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "receipt_number": None,
            "status": "succeeded" if instant else "pending",
        }
        self._refunds[refund_id] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
        chain = charge["payment_intent"]
        self._webhooks.stripe_event(chain, "charge.refunded", charge)
        self._webhooks.stripe_event(chain, "refund.created", refund)
        if instant:
            self._move_refund(refund)
        return refund

    def retrieve_refund(self, refund_id: str) -> JSON:
        """``GET /v1/refunds/{id}``."""
        refund = self._refunds.get(refund_id)
        if refund is None:
            raise _missing("refund", refund_id, "id")
        return refund

    def list_refunds(self, params: JSON) -> JSON:
        """``GET /v1/refunds``, newest first, optionally for one PaymentIntent or Charge."""
        limit = _int(params, "limit") or 10
        matching = [
            r
            for r in reversed(self._refunds.values())
            if params.get("payment_intent") in (None, r["payment_intent"])
            and params.get("charge") in (None, r["charge"])
        ]
        return {
            "object": "list",
            "data": matching[:limit],
            "has_more": len(matching) > limit,
            "url": "/v1/refunds",
        }

    def owns_refund(self, refund_id: str) -> bool:
        """Whether a refund id belongs to this gateway."""
        return refund_id in self._refunds

    def settle_refund(self, refund_id: str, succeeded: bool) -> JSON:
        """Finish a pending refund (sandbox control) and send its webhooks."""
        refund = self._refunds[refund_id]
        if refund["status"] != "pending":
            raise ValueError(f"refund {refund_id} is {refund['status']}, not pending")
        chain = refund["payment_intent"]
        if succeeded:
            refund["status"] = "succeeded"
            self._move_refund(refund)
            self._webhooks.stripe_event(chain, "refund.updated", refund)
        else:
            refund.update(status="failed", failure_reason="declined")
            charge = self._charges[refund["charge"]]
            charge["amount_refunded"] -= refund["amount"]
            charge["refunded"] = False
            self._webhooks.stripe_event(chain, "refund.updated", refund)
            self._webhooks.stripe_event(chain, "refund.failed", refund)
        self._store.save()
        return refund

    def _move_refund(self, refund: JSON) -> None:
        self._store.record_movement(
            "stripe",
            "refund",
            object_id=refund["id"],
            payment=refund["payment_intent"],
            order=None,
            amount=refund["amount"],
            currency=refund["currency"],
        )

    # Disputes

    def open_dispute(
        self, intent_id: str, reason: str, amount: int | None, respond_within: int
    ) -> JSON:
        """A cardholder disputes a captured payment (sandbox control): Stripe withdraws the
        amount at once and sends ``charge.dispute.created`` and ``.funds_withdrawn``."""
        intent = self.retrieve_payment_intent(intent_id)
        charge = self._charges.get(intent["latest_charge"] or "")
        if charge is None or not charge["captured"]:
            raise ValueError(f"PaymentIntent {intent_id} has no captured charge to dispute")
        amount = charge["amount_captured"] if amount is None else amount
        if not 0 < amount <= charge["amount_captured"]:
            raise ValueError(f"a dispute is for 1 to {charge['amount_captured']}")
        dispute_id = new_id("dp", 24)
        dispute: JSON = {
            "id": dispute_id,
            "object": "dispute",
            "amount": amount,
            "balance_transactions": [],
            "charge": charge["id"],
            "created": now(),
            "currency": charge["currency"],
            "evidence": dict.fromkeys(_EVIDENCE_FIELDS),
            "evidence_details": {
                "due_by": now() + respond_within,
                "has_evidence": False,
                "past_due": False,
                "submission_count": 0,
            },
            "is_charge_refundable": False,
            "livemode": False,
            "metadata": {},
            "payment_intent": intent_id,
            "reason": reason,
            "status": "needs_response",
        }
        self._disputes[dispute_id] = dispute
        charge["disputed"] = True
        self._webhooks.stripe_event(intent_id, "charge.dispute.created", dispute)
        self._dispute_funds(dispute, -amount)
        self._store.save()
        return dispute

    def owns_dispute(self, dispute_id: str) -> bool:
        """Whether a dispute id belongs to this gateway."""
        return dispute_id in self._disputes

    def retrieve_dispute(self, dispute_id: str) -> JSON:
        """``GET /v1/disputes/{id}``."""
        dispute = self._disputes.get(dispute_id)
        if dispute is None:
            raise _missing("dispute", dispute_id, "dispute")
        return dispute

    def update_dispute(self, dispute_id: str, params: JSON) -> JSON:
        """``POST /v1/disputes/{id}``: evidence, and ``submit`` (default true, as at Stripe)."""
        dispute = self.retrieve_dispute(dispute_id)
        if dispute["status"] not in ("needs_response", "warning_needs_response"):
            raise _invalid(
                f"This dispute is {dispute['status']} and can no longer be updated.",
                code="dispute_already_submitted" if "review" in dispute["status"] else None,
            )
        evidence = params.get("evidence") or {}
        if not isinstance(evidence, dict) or set(evidence) - set(_EVIDENCE_FIELDS):
            raise _bad_param("Invalid evidence", "evidence")
        dispute["evidence"].update({k: v for k, v in evidence.items() if v != ""})
        dispute["evidence_details"]["has_evidence"] = any(dispute["evidence"].values())
        if str(params.get("submit", "true")).lower() == "true":
            dispute["evidence_details"]["submission_count"] += 1
            dispute["status"] = dispute["status"].replace("needs_response", "under_review")
        self._webhooks.stripe_event(dispute["payment_intent"], "charge.dispute.updated", dispute)
        return dispute

    def close_dispute(self, dispute_id: str) -> JSON:
        """``POST /v1/disputes/{id}/close``: the merchant concedes; the dispute is lost."""
        dispute = self.retrieve_dispute(dispute_id)
        if dispute["status"] in ("won", "lost", "warning_closed"):
            raise _invalid(f"This dispute is already {dispute['status']}.")
        dispute["status"] = "lost"
        self._webhooks.stripe_event(dispute["payment_intent"], "charge.dispute.closed", dispute)
        return dispute

    def resolve_dispute(self, dispute_id: str, won: bool) -> JSON:
        """The issuer decides (sandbox control): under review first, then won (funds
        reinstated) or lost, with the webhooks Stripe sends."""
        dispute = self.retrieve_dispute(dispute_id)
        if dispute["status"] in ("won", "lost", "warning_closed"):
            raise ValueError(f"dispute {dispute_id} is already {dispute['status']}")
        chain = dispute["payment_intent"]
        if dispute["status"] == "needs_response":
            dispute["status"] = "under_review"
            self._webhooks.stripe_event(chain, "charge.dispute.updated", dispute)
        dispute["status"] = "won" if won else "lost"
        if won:
            self._dispute_funds(dispute, dispute["amount"])
        self._webhooks.stripe_event(chain, "charge.dispute.closed", dispute)
        self._store.save()
        return dispute

    def _dispute_funds(self, dispute: JSON, amount: int) -> None:
        """A balance transaction of the dispute: negative withdraws, positive reinstates."""
        dispute["balance_transactions"].append(
            {
                "id": new_id("txn", 24),
                "object": "balance_transaction",
                "amount": amount,
                "currency": dispute["currency"],
                "fee": 0,
                "reporting_category": "dispute" if amount < 0 else "dispute_reversal",
                "type": "adjustment",
            }
        )
        self._store.record_movement(
            "stripe",
            "dispute_withdrawal" if amount < 0 else "dispute_reinstatement",
            object_id=dispute["id"],
            payment=dispute["payment_intent"],
            order=None,
            amount=abs(amount),
            currency=dispute["currency"],
        )
        kind = "funds_withdrawn" if amount < 0 else "funds_reinstated"
        self._webhooks.stripe_event(dispute["payment_intent"], f"charge.dispute.{kind}", dispute)

    def expire_authorization(self, intent_id: str) -> Response:
        """What Stripe does to an authorization nobody captured in time (about 7 days, "Place a
        hold on a payment method", https://docs.stripe.com/payments/place-a-hold-on-a-payment-method):
        the PaymentIntent is canceled with reason `automatic` and the hold released."""

        def action(_: JSON) -> JSON:
            intent = self.retrieve_payment_intent(intent_id)
            if intent["status"] != "requires_capture":
                raise _unexpected_state("Only an uncaptured authorization can expire.")
            charge = self._charges[intent["latest_charge"]]
            charge.update(refunded=True, amount_refunded=charge["amount"])
            self._move("void", intent, intent["amount_capturable"])
            intent.update(
                status="canceled",
                amount_capturable=0,
                canceled_at=now(),
                cancellation_reason="automatic",
            )
            self._webhooks.stripe_event(intent_id, "payment_intent.canceled", intent)
            return intent

        status, body = self._execute(action, {})
        self._store.save()
        return _json(body, status)

    # The customer's side

    def pay(self, intent_id: str, request: PayRequest, base_url: str) -> Response:
        """What Stripe.js ``confirmCardPayment`` does with the PaymentIntent's client secret."""

        def action(_: JSON) -> JSON:
            intent = self.retrieve_payment_intent(intent_id)
            if request.client_secret != intent["client_secret"]:
                raise _invalid(
                    "The client_secret provided does not match the client_secret associated "
                    "with the PaymentIntent.",
                    param="client_secret",
                )
            self._confirm(
                intent, request.payment_method, request.authorized_amount,
                challenge_url=f"{base_url.rstrip('/')}/checkout/stripe/{intent_id}/authenticate",
            )  # fmt: skip
            return intent

        status, body = self._execute(action, {})
        self._store.save()
        return _json(body, status)

    def authenticate(self, intent_id: str, request: AuthenticateRequest) -> Response:
        """The issuer's challenge, answered. Completed: the payment is authorized as any other.
        Failed: the PaymentIntent returns to `requires_payment_method` with
        `payment_intent_authentication_failure` and `payment_intent.payment_failed` is sent; the
        customer may try again (https://docs.stripe.com/error-codes#payment-intent-authentication-failure)."""

        def action(_: JSON) -> JSON:
            intent = self.retrieve_payment_intent(intent_id)
            if intent["status"] != "requires_action":
                raise _unexpected_state(
                    f"This PaymentIntent has a status of {intent['status']}:"
                    " nothing to authenticate."
                )
            if request.outcome == "complete":
                intent["status"] = "requires_confirmation"
                self._confirm(intent, None)
                return intent
            intent.update(
                status="requires_payment_method",
                payment_method=None,
                next_action=None,
                last_payment_error={
                    "type": "invalid_request_error",
                    "code": "payment_intent_authentication_failure",
                    "message": "The provided PaymentMethod has failed authentication. You can"
                    " provide payment_method_data or a new PaymentMethod to attempt to fulfill"
                    " this PaymentIntent again.",
                },
            )
            self._webhooks.stripe_event(intent["id"], "payment_intent.payment_failed", intent)
            return intent

        status, body = self._execute(action, {})
        self._store.save()
        return _json(body, status)


def _json(body: JSON, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status, {"Request-Id": new_id("req", 14), **(headers or {})})


def create_stripe_router(api: StripeApi) -> APIRouter:
    """The ``/stripe/v1`` routes plus the customer's ``/sandbox/stripe`` pay route."""
    router = APIRouter()
    base = "/stripe/v1"

    @router.post(f"{base}/payment_intents")
    async def create_payment_intent(request: Request) -> Response:
        return await api.call(request, "payment_intents.create", api.create_payment_intent)

    @router.get(f"{base}/payment_intents/search")
    async def search_payment_intents(request: Request) -> Response:
        return await api.call(request, "payment_intents.search", api.search_payment_intents)

    @router.get(f"{base}/payment_intents/{{intent_id}}")
    async def retrieve_payment_intent(intent_id: str, request: Request) -> Response:
        return await api.call(
            request,
            "payment_intents.retrieve",
            lambda p: api.expanded(api.retrieve_payment_intent(intent_id), p.get("expand")),
        )

    @router.post(f"{base}/payment_intents/{{intent_id}}/confirm")
    async def confirm_payment_intent(intent_id: str, request: Request) -> Response:
        return await api.call(
            request, "payment_intents.confirm", lambda p: api.confirm(intent_id, p), intent_id
        )

    @router.post(f"{base}/payment_intents/{{intent_id}}/capture")
    async def capture_payment_intent(intent_id: str, request: Request) -> Response:
        return await api.call(
            request, "payment_intents.capture", lambda p: api.capture(intent_id, p), intent_id
        )

    @router.post(f"{base}/payment_intents/{{intent_id}}/cancel")
    async def cancel_payment_intent(intent_id: str, request: Request) -> Response:
        return await api.call(
            request, "payment_intents.cancel", lambda p: api.cancel(intent_id, p), intent_id
        )

    @router.post(f"{base}/refunds")
    async def create_refund(request: Request) -> Response:
        return await api.call(request, "refunds.create", api.create_refund)

    @router.get(f"{base}/refunds")
    async def list_refunds(request: Request) -> Response:
        return await api.call(request, "refunds.list", api.list_refunds)

    @router.get(f"{base}/refunds/{{refund_id}}")
    async def retrieve_refund(refund_id: str, request: Request) -> Response:
        return await api.call(request, "refunds.retrieve", lambda _: api.retrieve_refund(refund_id))

    @router.get(f"{base}/disputes/{{dispute_id}}")
    async def retrieve_dispute(dispute_id: str, request: Request) -> Response:
        return await api.call(
            request, "disputes.retrieve", lambda _: api.retrieve_dispute(dispute_id)
        )

    @router.post(f"{base}/disputes/{{dispute_id}}")
    async def update_dispute(dispute_id: str, request: Request) -> Response:
        return await api.call(
            request, "disputes.update", lambda p: api.update_dispute(dispute_id, p), dispute_id
        )

    @router.post(f"{base}/disputes/{{dispute_id}}/close")
    async def close_dispute(dispute_id: str, request: Request) -> Response:
        return await api.call(
            request, "disputes.close", lambda _: api.close_dispute(dispute_id), dispute_id
        )

    @router.post("/sandbox/stripe/payment_intents/{intent_id}/pay")
    async def pay(intent_id: str, body: PayRequest, request: Request) -> Response:
        return api.pay(intent_id, body, str(request.base_url))

    @router.post("/sandbox/stripe/payment_intents/{intent_id}/authenticate")
    async def authenticate(intent_id: str, body: AuthenticateRequest) -> Response:
        return api.authenticate(intent_id, body)

    @router.post("/sandbox/stripe/payment_intents/{intent_id}/expire")
    async def expire(intent_id: str) -> Response:
        return api.expire_authorization(intent_id)

    @router.post("/sandbox/stripe/idempotency_keys/expire")
    async def expire_idempotency_keys() -> JSON:
        """Every saved answer is forgotten, as once its key is 24 hours old."""
        return {"expired": api.expire_idempotency_keys()}

    return router
