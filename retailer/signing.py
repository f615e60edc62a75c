"""Request signing, as the retailer specifies it (see docs/retailer-api.md).

signature = hex(HMAC-SHA256(secret, f"{timestamp}.{body}")), sent with the partner's key
and the timestamp (Unix seconds) in X-Retailer-Key / -Timestamp / -Signature. A request
older or newer than MAX_SKEW_SECONDS is refused, so a captured request cannot be replayed
later.
"""

import hashlib
import hmac
import time

from django.conf import settings

import inbound

MAX_SKEW_SECONDS = 300


class SignatureError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def partner_secrets() -> dict[str, str]:
    """The sandbox has one partner: the platform, with the key and secret from settings."""
    return {settings.RETAILER_API_KEY: settings.RETAILER_API_SECRET}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(*, key: str, timestamp: str, signature: str, body: bytes, now: float | None = None) -> None:
    if not key or not timestamp or not signature:
        raise SignatureError(
            "missing_signature", "X-Retailer-Key, X-Retailer-Timestamp and X-Retailer-Signature are required"
        )
    secret = partner_secrets().get(key)
    if secret is None:
        raise SignatureError("unknown_key", "Unknown partner key")
    seconds = inbound.unix_timestamp(timestamp)
    if seconds is None:
        raise SignatureError("bad_timestamp", "X-Retailer-Timestamp must be Unix seconds")
    now = time.time() if now is None else now
    if abs(now - seconds) > MAX_SKEW_SECONDS:
        raise SignatureError(
            "stale_timestamp", f"Timestamp is more than {MAX_SKEW_SECONDS} s away from the retailer's clock"
        )
    if inbound.hex_signature(signature) is None or not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise SignatureError("bad_signature", "Signature does not match the request body")
