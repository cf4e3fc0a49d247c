"""The sandbox's memory: gateway objects, idempotency records and money movements.

Gateway objects are kept as the JSON dicts the APIs return, so persisting them is a
plain ``json.dump``. When a state file is configured it is rewritten atomically after
every mutation, so a restarted sandbox still knows every object it ever created.
"""

import hashlib
import json
import os
import secrets
import string
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

JSON = dict[str, Any]
Gateway = Literal["stripe", "razorpay"]
MovementKind = Literal[
    "authorization",
    "capture",
    "void",
    "refund",
    "dispute_withdrawal",
    "dispute_reinstatement",
    "transfer",
    "transfer_reversal",
]
Table = Literal[
    "stripe_payment_intents",
    "stripe_payment_methods",
    "stripe_charges",
    "stripe_refunds",
    "stripe_disputes",
    "stripe_idempotency",
    "stripe_accounts",
    "stripe_transfers",
    "razorpay_orders",
    "razorpay_order_capture",
    "razorpay_payments",
    "razorpay_refunds",
    "razorpay_disputes",
    "razorpay_idempotency",
    "razorpay_accounts",
    "razorpay_transfers",
]

# The operations a fault can be armed on: reads, and writes (which change an existing object or
# create one; only they can commit late or be applied and answered 500).
READS: dict[Gateway, frozenset[str]] = {
    "stripe": frozenset(
        {
            "payment_intents.retrieve",
            "payment_intents.search",
            "refunds.retrieve",
            "refunds.list",
            "disputes.retrieve",
            "accounts.retrieve",
            "transfers.retrieve",
            "transfers.list",
        }
    ),
    "razorpay": frozenset(
        {
            "orders.all",
            "orders.fetch",
            "orders.payments",
            "payments.fetch",
            "payments.refunds",
            "refunds.fetch",
            "disputes.fetch",
            "payments.transfers",
            "transfers.fetch",
            "transfers.reversals",
        }
    ),
}
WRITES: dict[Gateway, frozenset[str]] = {
    "stripe": frozenset(
        {
            "payment_intents.create",
            "payment_intents.confirm",
            "payment_intents.capture",
            "payment_intents.cancel",
            "refunds.create",
            "accounts.create",
            "transfers.create",
            "transfers.reversals.create",
            "disputes.update",
            "disputes.close",
        }
    ),
    "razorpay": frozenset(
        {
            "orders.create",
            "payments.capture",
            "payments.refund",
            "disputes.contest",
            "disputes.accept",
            "accounts.create",
            "payments.transfer",
            "transfers.edit",
            "transfers.reverse",
        }
    ),
}
OPERATIONS: dict[Gateway, frozenset[str]] = {
    gateway: READS[gateway] | WRITES[gateway] for gateway in ("stripe", "razorpay")
}

_ALPHANUMERIC = string.ascii_letters + string.digits


def new_id(prefix: str, length: int) -> str:
    """A random id shaped like the gateways' own, e.g. ``new_id("pay", 14)``."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def now() -> int:
    """Unix seconds, the timestamp unit both gateways use."""
    return int(time.time())


def fingerprint(*parts: object) -> str:
    """A stable digest of a request, used to tell a retry from a different request."""
    encoded = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()


class Store:
    """Every object the sandbox created plus the log of money it moved."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._tables: dict[str, dict[str, JSON]] = {name: {} for name in get_args(Table)}
        self._movements: list[JSON] = []
        if path is not None and path.exists():
            saved = json.loads(path.read_text())
            self._tables.update(saved["tables"])
            self._movements = saved["movements"]

    def table(self, name: Table) -> dict[str, JSON]:
        """The objects of one kind, by id (insertion ordered, oldest first)."""
        return self._tables[name]

    def record_movement(
        self,
        gateway: Gateway,
        kind: MovementKind,
        *,
        object_id: str,
        payment: str,
        order: str | None,
        amount: int,
        currency: str,
        account: str | None = None,
    ) -> None:
        """Append one money movement to the log (`account`: the connected or linked account a
        transfer or its reversal moved money to or from)."""
        self._movements.append(
            {
                "id": new_id("mv", 16),
                "gateway": gateway,
                "kind": kind,
                "object_id": object_id,
                "payment": payment,
                "order": order,
                "amount": amount,
                "currency": currency,
                "account": account,
                "at": datetime.now(UTC).isoformat(),
            }
        )

    def movements(self, gateway: str | None, payment: str | None) -> list[JSON]:
        """The movement log, optionally narrowed to a gateway and a payment/PI/order id."""
        return [
            m
            for m in self._movements
            if (gateway is None or m["gateway"] == gateway)
            and (payment is None or payment in (m["payment"], m["order"]))
        ]

    def save(self) -> None:
        """Write the whole state to the state file (if any) via an atomic rename."""
        if self._path is None:
            return
        tmp = self._path.with_name(self._path.name + ".tmp")
        tmp.write_text(json.dumps({"tables": self._tables, "movements": self._movements}))
        os.replace(tmp, self._path)


@dataclass
class SavedResponse:
    """What an idempotent request answered the first time."""

    fingerprint: str
    status: int
    body: JSON


class IdempotencyKeys:
    """Remembers answers by idempotency key and notices keys whose request is still running.

    ``lifetime_seconds``: how long an answer is kept; after that the key makes a new request
    (Stripe prunes keys once they are at least 24 hours old, docs "Idempotent requests").
    """

    def __init__(self, table: dict[str, JSON], lifetime_seconds: int | None = None) -> None:
        self._table = table
        self._lifetime = lifetime_seconds
        self._running: set[str] = set()

    def saved(self, key: str) -> SavedResponse | None:
        """The stored answer for a key, if its request has finished and the key is alive."""
        record = self._table.get(key)
        if record is None:
            return None
        if self._lifetime is not None and now() - record.get("at", now()) >= self._lifetime:
            del self._table[key]
            return None
        return SavedResponse(record["fingerprint"], record["status"], record["body"])

    def expire(self) -> int:
        """Forget every saved answer, as if the keys had outlived their lifetime."""
        count = len(self._table)
        self._table.clear()
        return count

    def running(self, key: str) -> bool:
        """Whether a request with this key is being executed right now."""
        return key in self._running

    def begin(self, key: str) -> None:
        """Mark a key's request as in progress (until ``end``)."""
        self._running.add(key)

    def end(self, key: str) -> None:
        """The key's request has finished (its answer saved, or not worth saving)."""
        self._running.discard(key)

    def save(self, key: str, saved: SavedResponse) -> None:
        """Store the answer a key will replay from now on."""
        self._table[key] = {
            "fingerprint": saved.fingerprint,
            "status": saved.status,
            "body": saved.body,
            "at": now(),
        }
