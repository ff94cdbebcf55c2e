"""Bearer-token check. A constant-time compare so the key cannot be guessed byte by byte
from response times."""

from __future__ import annotations

import hmac


def authorized(header: str | None, key: str | None) -> bool:
    """``header`` is the raw Authorization value; no key configured means open."""
    if key is None:
        return True
    if not header:
        return False
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), key.encode())
