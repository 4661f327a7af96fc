"""Identity types and the canonical form of an identity value (an alias of a person).

Two spellings of one identity must give one alias, or one person splits in two:

- ``email``: surrounding whitespace stripped, then ``str.casefold()``; it must have one ``@`` with something
  on both sides and no whitespace.
- ``phone``: E.164 (``+12263762555``), parsed with ``phonenumbers`` in the workspace's default region, so
  ``+12263762555``, ``12263762555``, ``(226) 376-2555`` and ``226-376-2555`` (region US) are one number.
  JDS clients put ``+1...`` in URLs unencoded, where the ``+`` arrives as a space: a value that *starts* with
  whitespace followed by a digit is read as international first (``" 12263762555"`` -> ``+12263762555``).
  Only digits, spaces and ``+ ( ) - . /`` are accepted: no letters (vanity numbers), no extensions.
  A value that is not a possible number for its region is an error.
- ``customerId``, ``temporaryId``, ``socialId``: surrounding whitespace stripped; case kept.

Every value is at most 512 characters (after stripping) and not empty.

A ``previousidentity`` carries no type. Real JDS clients send the web session's ``temporaryId`` there, and
the literal ``"none"`` when there is nothing to link: see :func:`previous_identity_candidates`.
"""

from __future__ import annotations

import functools
import re
from enum import StrEnum

import phonenumbers

from journey_engine.errors import BadRequest, Problem

MAX_LENGTH = 512

# Values that clients send in `previousidentity` to mean "no previous identity" (seen in JDS samples).
NO_PREVIOUS_IDENTITY = frozenset({"", "none", "null", "undefined", "unknown"})

_PHONE_CHARS = re.compile(r"\+?[0-9 ()./\-]+")
_WHITESPACE = re.compile(r"\s")


class IdentityType(StrEnum):
    """The identity types of JDS, in their canonical (JDS) spelling."""

    PHONE = "phone"
    EMAIL = "email"
    CUSTOMER_ID = "customerId"
    TEMPORARY_ID = "temporaryId"
    SOCIAL_ID = "socialId"


_BY_FOLDED = {member.value.casefold(): member for member in IdentityType}
TYPE_LIST = ", ".join(member.value for member in IdentityType)


class IdentityError(BadRequest, ValueError):
    """An identity or identity type that cannot be used. ``str()`` gives ``"<field>: <reason>"``."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}", [Problem(field, reason)])


def _shown(value: str, limit: int = 64) -> str:
    """A value quoted for an error message, cut short if long."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def parse_identity_type(value: object, field: str = "identitytype") -> IdentityType:
    """The identity type named by ``value``, whatever its case (``"PHONE"``, ``"customerid"``)."""
    if isinstance(value, str):
        found = _BY_FOLDED.get(value.strip().casefold())
        if found is not None:
            return found
    raise IdentityError(field, f"must be one of {TYPE_LIST}")


def check_region(code: str) -> str:
    """Validate a default phone region (ISO 3166-1 alpha-2, as ``phonenumbers`` knows them); upper-cased."""
    region = code.strip().upper() if isinstance(code, str) else ""
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise IdentityError("default_region", f"{code!r} is not a region code such as US, GB or DE")
    return region


def normalise(
    identity_type: IdentityType | str, value: object, default_region: str = "US", field: str = "identity"
) -> str:
    """The canonical form of ``value`` as an identity of ``identity_type``; raises :class:`IdentityError`."""
    kind = identity_type if isinstance(identity_type, IdentityType) else parse_identity_type(identity_type)
    if not isinstance(value, str):
        raise IdentityError(field, "must be a string")
    stripped = value.strip()
    if not stripped:
        raise IdentityError(field, "must not be empty")
    if len(stripped) > MAX_LENGTH:
        raise IdentityError(field, f"must be at most {MAX_LENGTH} characters")
    if kind is IdentityType.EMAIL:
        return _email(stripped, field)
    if kind is IdentityType.PHONE:
        return _phone(value, stripped, default_region, field)
    return stripped


def _email(stripped: str, field: str) -> str:
    local, at, domain = stripped.partition("@")
    if not at or not local or not domain or "@" in domain or _WHITESPACE.search(stripped):
        raise IdentityError(field, f"{_shown(stripped)} is not a valid email address")
    return stripped.casefold()


def _phone(raw: str, stripped: str, region: str, field: str) -> str:
    e164 = _e164_of(stripped, raw[:1].isspace(), region)
    if e164 is None:
        raise IdentityError(field, f"{_shown(stripped)} is not a valid phone number")
    return e164


@functools.lru_cache(maxsize=65_536)
def _e164_of(stripped: str, space_first: bool, region: str) -> str | None:
    """E.164 of a phone number, or None. Parsing costs ~40 µs and callers repeat numbers: cached."""
    if not _PHONE_CHARS.fullmatch(stripped):
        return None
    if not (space_first and stripped[0].isdigit()):
        return _e164_of_one(stripped, region)
    candidates = ["+" + stripped, stripped]  # a URL's unencoded "+" that arrived as a space, first
    possible: list[phonenumbers.PhoneNumber] = []
    for text in candidates:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return _e164(number)
        if phonenumbers.is_possible_number(number):
            possible.append(number)
    if possible:
        return _e164(possible[0])
    return None


def _e164_of_one(text: str, region: str) -> str | None:
    """E.164 of one spelling: the number when it is valid or at least possible for its region. With one
    spelling "valid, else possible" is "possible or valid", and the cheap length check goes first."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_possible_number(number) or phonenumbers.is_valid_number(number):
        return _e164(number)
    return None


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def guess_type(value: str, default_region: str = "US") -> IdentityType:
    """The most likely type of an untyped identity: email, else phone, else temporaryId."""
    for kind in (IdentityType.EMAIL, IdentityType.PHONE):
        try:
            normalise(kind, value, default_region)
        except IdentityError:
            continue
        return kind
    return IdentityType.TEMPORARY_ID


def previous_identity_candidates(value: str, default_region: str = "US") -> tuple[str, ...]:
    """The aliases an untyped ``previousidentity`` may be stored under, best guess first.

    The value is matched against aliases of any type: its stripped form (how temporaryId, customerId and
    socialId are stored) and, when it reads as one, its email or E.164 form. The no-value markers
    (:data:`NO_PREVIOUS_IDENTITY`, any case) give no candidates: they must never link persons.
    Raises :class:`IdentityError` for a value longer than :data:`MAX_LENGTH`.
    """
    stripped = value.strip()
    if stripped.casefold() in NO_PREVIOUS_IDENTITY:
        return ()
    if len(stripped) > MAX_LENGTH:
        raise IdentityError("previousidentity", f"must be at most {MAX_LENGTH} characters")
    best = guess_type(value, default_region)
    found = [normalise(best, value, default_region)]
    if stripped not in found:
        found.append(stripped)
    return tuple(found)
