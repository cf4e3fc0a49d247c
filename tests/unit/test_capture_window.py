"""A manual-capture checkout never waits for its capture call past the point where the gateway
gives the money back on its own: Razorpay refunds an authorized payment nobody captured within
its manual capture period (7200 minutes at most, counted from the payment's creation)."""

from __future__ import annotations

from datetime import timedelta

from api.checkouts import checkout_request
from api.models import CreateCheckout
from domain.checkout import RAZORPAY_MANUAL_CAPTURE_MINUTES, CaptureMode, Gateway
from settings import Settings, development_settings

RAZORPAY_REFUNDS_AFTER = timedelta(minutes=RAZORPAY_MANUAL_CAPTURE_MINUTES)


def _request(gateway: Gateway, settings: Settings) -> tuple[timedelta, timedelta]:
    body = CreateCheckout(
        order_id="o1",
        amount=2_500,
        currency="INR",
        gateway=gateway,
        customer_id="c_1",
        capture_mode=CaptureMode.MANUAL,
    )
    request = checkout_request(body, settings, idempotency_key="key-00000001", attempt=1)
    return (
        timedelta(seconds=request.authorization_window_seconds),
        timedelta(seconds=request.manual_capture_window_seconds),
    )


def test_razorpay_capture_window_closes_before_razorpay_refunds_the_authorization() -> None:
    settings = development_settings(_env_file=None)
    authorization_window, capture_window = _request(Gateway.RAZORPAY, settings)

    # The payment may be created at the checkout's start and authorized only at its deadline,
    # where the capture window starts; the capture itself needs time too.
    assert authorization_window + capture_window <= RAZORPAY_REFUNDS_AFTER - timedelta(hours=1)
    assert capture_window >= timedelta(days=4), "capped, not cut to nothing"


def test_a_shorter_configured_window_is_kept_and_stripe_keeps_the_configured_one() -> None:
    short = development_settings(_env_file=None, manual_capture_window_seconds=3600)
    assert _request(Gateway.RAZORPAY, short)[1] == timedelta(hours=1)
    settings = development_settings(_env_file=None)
    configured = timedelta(seconds=settings.manual_capture_window_seconds)
    assert _request(Gateway.STRIPE, settings)[1] == configured


def test_razorpay_orders_ask_for_the_manual_capture_period_the_window_is_capped_by() -> None:
    from activities.gateways.razorpay.adapter import MANUAL_CAPTURE

    assert MANUAL_CAPTURE["capture"] == "manual"
    assert MANUAL_CAPTURE["capture_options"]["manual_expiry_period"] == (
        RAZORPAY_MANUAL_CAPTURE_MINUTES
    )
