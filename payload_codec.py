"""Payload encryption for Temporal: every payload a process hands to Temporal (workflow inputs and
results, activity arguments, signals, updates, queries, memos, failures' details) is sealed with
AES-256-GCM before it leaves, so customer emails, client secrets and metadata are not kept in
plain text in workflow histories. Search attributes are not payloads: they hold no secrets.

`PAYLOAD_ENCRYPTION_KEYS` is `id:base64key,id:base64key…`; the first key seals, every listed key
opens (rotation: put the new key first, keep the old ones until no history needs them). The key id
travels in the payload's metadata. A payload that was never sealed (a history recorded before
encryption) passes through as it is, so old histories still replay.

A codec server (`/codec/encode`, `/codec/decode` on the API, api/codec.py) lets the Temporal UI
and CLI show decrypted payloads to authorised operators."""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

ENCODING = b"binary/encrypted"
"""The `encoding` metadata of a sealed payload (the name Temporal's samples use)."""
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class PayloadKeyError(ValueError):
    """A sealed payload names a key this process does not hold, or does not open with it."""


def parse_keys(configured: str) -> dict[str, bytes]:
    """`id:base64key,…` → {id: key}, in order (the first seals). Keys must be 32 bytes."""
    keys: dict[str, bytes] = {}
    for item in (part.strip() for part in configured.split(",")):
        if not item:
            continue
        key_id, sep, encoded = item.partition(":")
        if not sep or not key_id or key_id in keys:
            raise ValueError("PAYLOAD_ENCRYPTION_KEYS must be `id:base64key` pairs with unique ids")
        try:
            key = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise ValueError(f"PAYLOAD_ENCRYPTION_KEYS: key {key_id!r} is not base64") from None
        if len(key) != 32:
            raise ValueError(f"PAYLOAD_ENCRYPTION_KEYS: key {key_id!r} must be 32 bytes (AES-256)")
        keys[key_id] = key
    return keys


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: dict[str, bytes]) -> None:
        if not keys:
            raise ValueError("an encryption codec needs at least one key")
        self._keys = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._sealing_id = next(iter(keys))

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(p) for p in payloads]

    def seal(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        key_id = self._sealing_id
        sealed = self._keys[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: key_id.encode()}, data=nonce + sealed
        )

    def open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # never sealed: recorded before encryption, or by another tool
        key_id = payload.metadata.get(KEY_ID, b"").decode()
        cipher = self._keys.get(key_id)
        if cipher is None:
            raise PayloadKeyError(f"no payload key {key_id!r} in PAYLOAD_ENCRYPTION_KEYS")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            opened = cipher.decrypt(nonce, sealed, key_id.encode())
        except Exception:
            raise PayloadKeyError(f"a payload does not open with key {key_id!r}") from None
        return Payload.FromString(opened)


def with_encryption(converter: DataConverter, keys: dict[str, bytes]) -> DataConverter:
    """The converter with the codec, or as it is when no key is configured."""
    if not keys:
        return converter
    return dataclasses.replace(converter, payload_codec=EncryptionCodec(keys))
