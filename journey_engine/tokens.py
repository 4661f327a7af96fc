"""Bearer credentials: `<prefix>_<id>_<secret>`, stored as the id and the SHA-256 of the secret.

The id finds the stored row; the secret is checked against its digest in constant time. Secrets carry
256 bits of entropy, so a plain hash is as strong as a slow one and costs microseconds per request.
API keys use the prefix `je`, history-widget tokens `jh`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class Minted:
    token_id: str
    secret_sha256: bytes
    token: str
    """The whole token: shown once, never stored."""


def mint(prefix: str) -> Minted:
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    return Minted(token_id, digest(secret), f"{prefix}_{token_id}_{secret}")


def parse(prefix: str, token: str) -> tuple[str, str] | None:
    """(id, secret) of a token of this kind; None when it is not one."""
    match = re.fullmatch(rf"{re.escape(prefix)}_([0-9a-f]{{16}})_([A-Za-z0-9_-]{{43}})", token)
    return None if match is None else (match.group(1), match.group(2))


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def matches(stored_sha256: bytes, secret: str) -> bool:
    return hmac.compare_digest(bytes(stored_sha256), digest(secret))
