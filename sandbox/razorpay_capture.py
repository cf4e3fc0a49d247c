"""Razorpay's capture settings: whether a payment is captured by Razorpay itself once authorized.

An order may carry its own setting, which "take[s] precedence over the account level auto-capture
settings" ("Configure Payment Capture Settings using Orders API",
https://razorpay.com/docs/payments/payments/capture-settings/api):
``payment: {capture: "automatic" | "manual", capture_options: {automatic_expiry_period,
manual_expiry_period, refund_speed}}`` (minutes; automatic_expiry_period required for automatic,
at least 12; manual_expiry_period at most 7200 and not below automatic_expiry_period;
refund_speed "optimum" or "normal", required when capture_options is sent). The older boolean
``payment_capture`` (true: captured automatically) is still accepted ("Create Subsequent
Payments" for e-mandates, https://razorpay.com/docs/api/recurring-payments/emandate/
subsequent-payments; razorpay-node issue #149 calls it deprecated). Without either the order
follows the account ("Payment Capture Settings",
https://razorpay.com/docs/payments/payments/capture-settings), which captures automatically
unless switched, and always for Direct Settlement accounts.
"""

from typing import Any

from sandbox.behaviour import RazorpayAccount
from sandbox.state import JSON

_MAX_MANUAL_EXPIRY = 7200
_MIN_AUTOMATIC_EXPIRY = 12


class InvalidCaptureSetting(ValueError):
    """An order's capture setting Razorpay would refuse; ``field`` names the parameter."""

    def __init__(self, description: str, field: str) -> None:
        super().__init__(description)
        self.field = field


def order_capture_setting(params: JSON) -> JSON:
    """The capture setting a new order asks for (empty: the account's), or InvalidCaptureSetting."""
    payment = params.get("payment")
    if payment is not None:
        return _payment_setting(payment)
    legacy = params.get("payment_capture")
    if legacy is None:
        return {}
    if legacy not in (True, False, 0, 1, "0", "1", "true", "false"):
        raise InvalidCaptureSetting(
            "The payment capture field must be true or false.", "payment_capture"
        )
    return {"capture": "automatic" if legacy in (True, 1, "1", "true") else "manual"}


def _payment_setting(payment: Any) -> JSON:
    if not isinstance(payment, dict):
        raise InvalidCaptureSetting("The payment must be an array.", "payment")
    capture = payment.get("capture")
    if capture is None:
        raise InvalidCaptureSetting("The payment.capture field is required.", "payment.capture")
    if capture not in ("automatic", "manual"):
        raise InvalidCaptureSetting("The selected payment.capture is invalid.", "payment.capture")
    options = payment.get("capture_options")
    if options is None:
        if capture == "automatic":
            raise _required("automatic_expiry_period")
        return {"capture": capture}
    if not isinstance(options, dict):
        raise InvalidCaptureSetting(
            "The payment.capture_options must be an array.", "payment.capture_options"
        )
    automatic = _minutes(options, "automatic_expiry_period")
    manual = _minutes(options, "manual_expiry_period")
    if capture == "automatic" and automatic is None:
        raise _required("automatic_expiry_period")
    if automatic is not None and automatic < _MIN_AUTOMATIC_EXPIRY:
        raise _option_error("automatic_expiry_period", f"must be at least {_MIN_AUTOMATIC_EXPIRY}")
    if manual is not None and manual > _MAX_MANUAL_EXPIRY:
        raise _option_error("manual_expiry_period", f"may not be greater than {_MAX_MANUAL_EXPIRY}")
    if manual is not None and automatic is not None and manual < automatic:
        raise _option_error(
            "manual_expiry_period", "must be greater than or equal to automatic_expiry_period"
        )
    speed = options.get("refund_speed")
    if speed is None:
        raise _required("refund_speed")
    if speed not in ("optimum", "normal"):
        raise _option_error("refund_speed", "is invalid")
    return {
        "capture": capture,
        "automatic_expiry_period": automatic,
        "manual_expiry_period": manual if manual is not None else _MAX_MANUAL_EXPIRY,
        "refund_speed": speed,
    }


def _minutes(options: JSON, name: str) -> int | None:
    value = options.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _option_error(name, "must be an integer")
    return value


def _required(name: str) -> InvalidCaptureSetting:
    field = f"payment.capture_options.{name}"
    return InvalidCaptureSetting(f"The {field} field is required.", field)


def _option_error(name: str, problem: str) -> InvalidCaptureSetting:
    field = f"payment.capture_options.{name}"
    return InvalidCaptureSetting(f"The {field} {problem}.", field)


def captures_automatically(
    setting: JSON, account: RazorpayAccount, minutes_since_creation: float
) -> bool:
    """Whether Razorpay captures a payment authorized this long after its creation: a payment
    authorized after the auto-capture period stays authorized for a manual capture."""
    if account.direct_settlement:
        return True
    if (setting.get("capture") or account.capture) == "manual":
        return False
    window = setting.get("automatic_expiry_period") or account.automatic_expiry_minutes
    return minutes_since_creation <= window
