"""Card data never enters the service (PCI DSS 3.2, 3.3): one detector for every string a caller
sends — ids, emails, metadata keys and values, cancel reasons, refund and review notes, dispute
evidence — refused with 422 `card_data_refused`, and the value never echoed back or logged.

A card number is found as a run of digits, possibly grouped by spaces, tabs, dots, underscores or
hyphens (up to three between groups), of which some consecutive groups hold 13 to 19 digits that
start with 2 to 6 (the ISO/IEC 7812 industries of payment cards: Mastercard 2-series, Amex, Diners,
JCB, Visa, Mastercard, Discover, UnionPay, Maestro) and pass the Luhn check. Checking group by
group finds a number followed by its expiry or CVV ("4111 1111 1111 1111 12/26"); requiring a card
industry digit keeps millisecond timestamps and other ids starting with 1 out. Keys are refused by
their name: card numbers, security codes, expiry dates, track data, PIN blocks."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, model_validator
from pydantic_core import PydanticCustomError

CARD_DATA_REFUSED = "card_data_refused"

_SEPARATOR = r"[ \t._\-]{1,3}"
_DIGIT_RUN = re.compile(rf"\d+(?:{_SEPARATOR}\d+)*")
_GROUP_SPLIT = re.compile(_SEPARATOR)
_CARD_INDUSTRIES = frozenset("23456")
_KEY_NORMALISE = re.compile(r"[\s._\-]+")
_CARD_KEY = re.compile(
    r"^(pan|primaryaccountnumber|(credit|debit)?card(number|no|num|pan)|cc(number|num|no|v)?"
    r"|cvv2?(code)?|cvc2?(code)?|cav2|(card)?securitycode|(card)?verificationcode"
    r"|card(exp|expiry|expiration)(date|month|year)?|(exp|expiry|expiration)(date|month|year)"
    r"|expiry|track[12](data)?|pinblock)$"
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def contains_card_number(text: str) -> bool:
    for run in _DIGIT_RUN.finditer(text):
        groups = _GROUP_SPLIT.split(run.group())
        for start in range(len(groups)):
            digits = ""
            for group in groups[start:]:
                digits += group
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and digits[0] in _CARD_INDUSTRIES and luhn_valid(digits):
                    return True
    return False


def is_card_data_key(key: str) -> bool:
    return _CARD_KEY.match(_KEY_NORMALISE.sub("", key).lower()) is not None


def find_card_data(value: object) -> bool:
    """True when any string inside `value` (dicts, lists, nested), or any key, is card data."""
    if isinstance(value, str):
        return contains_card_number(value)
    if isinstance(value, dict):
        return any(
            (isinstance(k, str) and (is_card_data_key(k) or contains_card_number(k)))
            or find_card_data(v)
            for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return any(find_card_data(v) for v in value)
    return False


def refuse_card_data(value: object) -> None:
    if find_card_data(value):
        raise PydanticCustomError(
            CARD_DATA_REFUSED,
            "card data (a card number, security code or expiry) is never accepted; send the"
            " gateway's token or id instead",
        )


class CardDataFree(BaseModel):
    """A request body whose every string and key is scanned before anything else is validated."""

    @model_validator(mode="before")
    @classmethod
    def _no_card_data(cls, data: Any) -> Any:
        refuse_card_data(data)
        return data
