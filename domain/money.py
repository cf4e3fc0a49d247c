"""Money is an integer amount of minor units plus an ISO 4217 currency; nothing here uses floats."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints

# ISO 4217 exponents for the currencies the gateways settle. Anything else is refused, because a
# wrong exponent would multiply or divide a customer's charge by ten or a hundred.
CURRENCY_EXPONENTS: dict[str, int] = {
    "AED": 2, "AUD": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CNY": 2, "CZK": 2, "DKK": 2,
    "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "JOD": 3, "JPY": 0,
    "KRW": 0, "KWD": 3, "MXN": 2, "MYR": 2, "NOK": 2, "NZD": 2, "OMR": 3, "PHP": 2, "PLN": 2,
    "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TND": 3, "TRY": 2, "USD": 2, "VND": 0, "ZAR": 2,
}  # fmt: skip

STRIPE_CURRENCIES = frozenset(CURRENCY_EXPONENTS) - {"BHD", "JOD", "KWD", "OMR", "TND"}
RAZORPAY_CURRENCIES = frozenset(CURRENCY_EXPONENTS) - {"BHD", "JOD", "KWD", "OMR", "TND", "VND"}


def _known_currency(code: str) -> str:
    if code not in CURRENCY_EXPONENTS:
        raise ValueError(f"unsupported currency {code!r}: expected an ISO 4217 code we settle")
    return code


Currency = Annotated[
    str,
    StringConstraints(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$"),
    AfterValidator(_known_currency),
]


def format_amount(amount: int, currency: str) -> str:
    """Human-readable amount for summaries and logs, e.g. 1050 INR -> '10.50 INR'."""
    exponent = CURRENCY_EXPONENTS[currency]
    if exponent == 0:
        return f"{amount} {currency}"
    units, minor = divmod(abs(amount), 10**exponent)
    sign = "-" if amount < 0 else ""
    return f"{sign}{units}.{minor:0{exponent}d} {currency}"
