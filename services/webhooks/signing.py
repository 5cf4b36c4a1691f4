"""Secrets and signatures of the Standard Webhooks specification. Pure, no I/O.

A secret is never stored. Each one is derived from the deployment key and a random salt of
its own: ``whsec_`` + base64(HMAC-SHA256(key, "fuli-webhooks-secret:" + salt)), 32 bytes of
key material; the database keeps the salt. Whoever holds the database alone cannot sign
(when FULI_WEBHOOKS_KEY is set), and no secret is ever written to a log.

A message is signed with ``v1,`` + base64(HMAC-SHA256(secret bytes, id.timestamp.body)); during
a rotation's overlap each live secret signs, the signatures separated by spaces in one
``webhook-signature`` header, as the specification allows."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
SALT_BYTES = 24
_DERIVATION = b"fuli-webhooks-secret:"


def deployment_key(text: str) -> bytes:
    """The 32-byte key of a FULI_WEBHOOKS_KEY value."""
    return hashlib.sha256(b"fuli-webhooks-key:" + text.encode()).digest()


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def secret_bytes(key: bytes, salt: bytes) -> bytes:
    return hmac.new(key, _DERIVATION + salt, hashlib.sha256).digest()


def secret_text(key: bytes, salt: bytes) -> str:
    """The secret as shown to the endpoint's owner."""
    return SECRET_PREFIX + base64.b64encode(secret_bytes(key, salt)).decode()


def signature(secret: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()


def headers(secrets_: Sequence[bytes], message_id: str, timestamp: int,
            body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one send, signed by each of ``secrets_``."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, message_id, timestamp, body)
                                      for s in secrets_),
        "content-type": "application/json",
        "user-agent": "fuli-webhooks/1",
    }
