"""Webhook signatures, as Stripe and GitHub do them: HMAC-SHA256 over "<timestamp>.<body>".

Header: `X-Triage-Signature: t=<unix seconds>,v1=<hex digest>`. A receiver recomputes the digest
with its endpoint secret, compares in constant time and refuses old timestamps (replays).
"""

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Triage-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, tolerance=DEFAULT_TOLERANCE_SECONDS, now=None) -> bool:
    """True when `header` signs `body` with `secret` and is at most `tolerance` seconds old."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        digest = parts["v1"]
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(digest, signature(secret, timestamp, body))
