"""Payloads leave a process sealed (AES-256-GCM, the key id in their metadata): nothing of the
customer's data is readable in a history without a key; keys rotate; unsealed payloads (old
histories) pass through."""

from __future__ import annotations

import base64
import os

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter

from domain.checkout import CheckoutRequest
from payload_codec import (
    ENCODING,
    KEY_ID,
    EncryptionCodec,
    PayloadKeyError,
    parse_keys,
    with_encryption,
)
from settings import development_settings
from temporal_client import connect_options


def keys(*ids: str) -> dict[str, bytes]:
    return {key_id: os.urandom(32) for key_id in ids}


REQUEST = CheckoutRequest(
    order_id="order-1", amount=2500, currency="USD", gateway="stripe", customer_id="c_42",  # type: ignore[arg-type]
    customer_email="asha@example.com", idempotency_key="key-00000001",
    authorization_window_seconds=900, manual_capture_window_seconds=3600,
    metadata={"gift_note": "happy birthday"},
)  # fmt: skip


async def test_a_sealed_payload_shows_nothing_and_names_its_key() -> None:
    converter = with_encryption(pydantic_data_converter, keys("k1"))
    [sealed] = await converter.encode([REQUEST])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID] == b"k1"
    for plain in (b"asha@example.com", b"order-1", b"happy birthday", b"c_42"):
        assert plain not in sealed.SerializeToString()
    [opened] = await converter.decode([sealed], [CheckoutRequest])
    assert opened == REQUEST


async def test_rotation_seals_with_the_first_key_and_opens_with_any() -> None:
    old = keys("2025")
    sealed_before = await EncryptionCodec(old).encode([Payload(data=b"before")])
    rotated = EncryptionCodec({**keys("2026"), **old})
    sealed_after = await rotated.encode([Payload(data=b"after")])
    assert sealed_after[0].metadata[KEY_ID] == b"2026"
    opened = await rotated.decode([*sealed_before, *sealed_after])
    assert [p.data for p in opened] == [b"before", b"after"]
    with pytest.raises(PayloadKeyError, match="2026"):
        await EncryptionCodec(old).decode(sealed_after)


async def test_a_tampered_or_foreign_payload_is_refused() -> None:
    codec = EncryptionCodec(keys("k1"))
    [sealed] = await codec.encode([Payload(data=b"amount=2500")])
    tampered = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + b"\x00")
    with pytest.raises(PayloadKeyError):
        await codec.decode([tampered])
    with pytest.raises(PayloadKeyError):
        await EncryptionCodec({"k1": os.urandom(32)}).decode([sealed])


async def test_unsealed_payloads_pass_through_so_old_histories_replay() -> None:
    codec = EncryptionCodec(keys("k1"))
    [plain] = await pydantic_data_converter.encode([REQUEST])
    assert await codec.decode([plain]) == [plain]


def test_keys_are_parsed_and_checked() -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    assert list(parse_keys(f"new:{key}, old:{key}")) == ["new", "old"]
    for bad in (
        "nokey",
        f"a:{key},a:{key}",
        "a:not-base64!",
        "a:" + base64.b64encode(b"short").decode(),
    ):
        with pytest.raises(ValueError, match="PAYLOAD_ENCRYPTION_KEYS") as refused:
            parse_keys(bad)
        assert key not in str(refused.value)


def test_development_seals_with_the_public_development_key() -> None:
    converter = connect_options(development_settings(_env_file=None))["data_converter"]
    assert isinstance(converter.payload_codec, EncryptionCodec)
