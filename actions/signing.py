"""Standard Webhooks signatures (https://www.standardwebhooks.com, spec 1.0.0, symmetric scheme ``v1``).

Every webhook the engine sends carries three headers:

- ``webhook-id``: the firing's stable id; the same on every retry, so receivers deduplicate on it;
- ``webhook-timestamp``: the attempt's time, integer seconds since the Unix epoch;
- ``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256>`` signatures, one per active secret
  (the new and the old one while a secret is being rotated).

The signed content is ``f"{webhook_id}.{timestamp}."`` followed by the raw body bytes, and the HMAC key is
the base64-decoded secret (the text after ``whsec_``).

How a receiver checks a request (aiohttp shown; any framework works the same way)::

    from actions.signing import SignatureError, verify

    SECRETS = ["whsec_..."]  # the endpoint's secret(s), as the engine showed them

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()  # the raw bytes: parsing and re-serialising JSON breaks signatures
        try:
            verify(SECRETS, request.headers, body)  # tolerance: 5 minutes either way
        except SignatureError as exc:
            return web.Response(status=401, text=exc.reason)
        if already_seen(request.headers["webhook-id"]):  # retries repeat the id
            return web.Response(status=200)
        ...

``verify`` checks the headers are present, that the timestamp is within ``tolerance`` of now (replays of old
requests fail), and that one of the signatures matches one of the secrets, comparing in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets as _random
import time as _time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

SECRET_PREFIX = "whsec_"
VERSION = "v1"
DEFAULT_TOLERANCE = timedelta(minutes=5)
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


class SignatureError(Exception):
    """A webhook request that does not verify; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def generate_secret(nbytes: int = 32) -> str:
    """A new signing secret: ``whsec_`` and the base64 of ``nbytes`` (24 to 64) random bytes."""
    if not 24 <= nbytes <= 64:
        raise ValueError("a secret has 24 to 64 random bytes")
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(nbytes)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret (with or without its ``whsec_`` prefix); ValueError when not base64."""
    text = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from None
    if not key:
        raise ValueError("a webhook secret must not be empty")
    return key


def _digest(key: bytes, msg_id: str, timestamp: int | str, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one request. ``msg_id`` may not contain a ``.`` (per the spec) and,
    travelling in the ``webhook-id`` header, must be printable ASCII."""
    if "." in msg_id or not msg_id:
        raise ValueError("a webhook id must be non-empty and contain no '.'")
    if not (msg_id.isascii() and msg_id.isprintable()):
        raise ValueError("a webhook id must be printable ASCII (it is sent as a header)")
    signature = _digest(secret_key(secret), msg_id, timestamp, body)
    return f"{VERSION},{base64.b64encode(signature).decode('ascii')}"


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per active secret, space-separated."""
    if isinstance(secrets, str) or not secrets:
        raise ValueError("give a list of one or more secrets")
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)


def webhook_headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one delivery attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:  # a plain dict with other capitalisation
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if value is None or not value.strip():
        raise SignatureError(f"missing {name} header")
    return value.strip()


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def verify(
    secrets: str | Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float | timedelta = DEFAULT_TOLERANCE,
    now: float | datetime | None = None,
) -> None:
    """Check a received webhook; raises :class:`SignatureError` with the reason when it does not verify.

    ``secrets``: one secret, or several (any may match, e.g. during rotation). ``tolerance``: how far
    ``webhook-timestamp`` may be from ``now`` (seconds or timedelta). ``now``: epoch seconds or an aware
    datetime; default: the clock.
    """
    keys = [secret_key(s) for s in ([secrets] if isinstance(secrets, str) else secrets)]
    if not keys:
        raise ValueError("give at least one secret")
    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    offered = _header(headers, "webhook-signature")
    if not _TIMESTAMP.fullmatch(stamp):
        raise SignatureError("webhook-timestamp is not an integer number of seconds")
    timestamp = int(stamp)
    current = _time.time() if now is None else now.timestamp() if isinstance(now, datetime) else float(now)
    limit = _seconds(tolerance)
    if timestamp < current - limit:
        raise SignatureError("webhook-timestamp is too old")
    if timestamp > current + limit:
        raise SignatureError("webhook-timestamp is too new (in the future)")
    expected = [_digest(key, msg_id, stamp, body) for key in keys]  # signed as sent
    matched = False
    for entry in offered.split():
        version, _, encoded = entry.partition(",")
        if version != VERSION:
            continue  # v1a (asymmetric) or a future scheme: not ours to check
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except ValueError:
            continue
        for digest in expected:  # no early exit: the time taken does not depend on which one matched
            matched |= hmac.compare_digest(candidate, digest)
    if not matched:
        raise SignatureError("no matching signature")
