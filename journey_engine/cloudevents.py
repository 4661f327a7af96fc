"""CloudEvents 1.0 with the JDS extensions: validation, the three HTTP content modes, rendering.

No CloudEvents SDK: it fills in a missing ``id`` or ``specversion``, which must be errors here. Every problem
of a request is collected (with its index in a batch) before :class:`EventValidationError` is raised.

Rules (``null`` is the same as absent, for every attribute and extension):

- required: ``id``, ``type``, ``identity`` (non-blank strings), ``source`` (non-blank, no control characters;
  spaces are tolerated because JDS flows send ``"Voice Contact"``), ``specversion`` (exactly ``"1.0"``),
  ``identitytype`` (one of the :class:`IdentityType` values, any case). ``identity`` must normalise under its
  type (see :mod:`journey_engine.identities`). ``data`` and ``datacontenttype``, required by the JDS schema,
  are optional as in CloudEvents.
- optional: ``time`` (RFC 3339 with ``Z`` or a ``+hh:mm`` offset, in the years 0001-9999 once in UTC: later or
  earlier ones could be stored but not read back; absent: the caller stamps the receive time), ``subject``,
  ``datacontenttype`` (strings), ``dataschema`` (absolute URI), ``data`` (any JSON) or ``data_base64``
  (base64 text), never both.
- ``previousidentity`` (optional string) has no type: it is matched against aliases of every type, through
  :func:`~journey_engine.identities.previous_identity_candidates`; ``"none"``/``""`` link nothing.
- any other top-level member is an extension: kept as given in ``extensions``, never an error, whatever its
  name (JDS clients send legacy ``previously`` or camelCase members), as the anchors require.
- limits: ``id``, ``type``, ``subject`` 512 characters; ``source``, ``dataschema`` 2048.

``content_hash`` is the SHA-256 of the event's canonical JSON (all non-null members as given, ``time``
included, keys sorted, no spaces, UTF-8): same ``(source, id)`` and same hash is a retry. Hashes are stored,
so the canonical bytes are those ``json.dumps`` writes, forever: orjson writes them, ten times faster, for
plain JSON values only (see :func:`is_plain_json`), for which it writes the same bytes.

Binary mode (HTTP binding 1.0): attributes from ``ce-*`` headers (names lower-cased, values percent-decoded
as UTF-8); ``Content-Type`` becomes ``datacontenttype`` (a ``ce-datacontenttype`` header is ignored); the
body is ``data``, JSON-decoded for a JSON media type (``application/json``, ``text/json``, ``*+json``),
otherwise kept as text when it is UTF-8, otherwise as ``data_base64``. ``ce-data`` headers are errors.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote

import orjson

from journey_engine.errors import BadRequest, Problem, UnsupportedMediaType
from journey_engine.identities import (
    IdentityError,
    IdentityType,
    normalise,
    parse_identity_type,
    previous_identity_candidates,
)

Mode = Literal["structured", "batch", "binary"]
SPECVERSION = "1.0"
STRUCTURED_TYPES = frozenset({"application/cloudevents+json", "application/json"})
BATCH_TYPE = "application/cloudevents-batch+json"
MAX_PROBLEMS = 100
# The context attributes (CloudEvents core + JDS); every other top-level member is an extension.
ATTRIBUTES = frozenset(
    "id source specversion type time subject datacontenttype dataschema data data_base64"
    " identity identitytype previousidentity".split()
)
_LIMITS = {"id": 512, "type": 512, "subject": 512, "source": 2048, "dataschema": 2048}
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s\x00-\x1f\x7f]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# How deep a value may nest and still be plain JSON: well below orjson's limit (it refuses 255 levels) and
# the interpreter's recursion limit; deeper values take the json path.
PLAIN_DEPTH = 64


class EventValidationError(BadRequest):
    """One or more events are invalid; ``problems`` lists them all (``index`` set in a batch)."""

    default_message = "Invalid CloudEvent"

    def __init__(self, problems: list[Problem]) -> None:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}" if problems else None, problems)


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """A valid event. ``identity``/``previous_identity`` are as sent; ``*_normalised`` are alias keys."""

    id: str
    source: str
    specversion: str
    type: str
    time: datetime | None
    identity: str
    identity_type: IdentityType
    identity_normalised: str
    previous_identity: str | None
    previous_identity_normalised: str | None
    previous_identity_candidates: tuple[str, ...]
    subject: str | None
    datacontenttype: str | None
    dataschema: str | None
    data: Any
    data_base64: str | None
    extensions: dict[str, Any] = field(default_factory=dict)
    content_hash: bytes = b""
    plain: bool = False
    """Its members are plain JSON (`is_plain_json`): no float, so its data reads back from jsonb as sent
    (False: it may or may not)."""


def is_plain_json(value: Any, depth: int = PLAIN_DEPTH) -> bool:
    """Whether ``value`` is plain JSON: only ``dict`` (with ``str`` keys), ``list``, ``str``, ``int``,
    ``bool`` and ``None``, of exactly these types, nested at most ``depth`` levels.

    orjson writes a plain value as ``json.dumps(..., separators=(",", ":"), ensure_ascii=False)`` does, byte
    for byte (keys sorted by code point with ``OPT_SORT_KEYS``; only ``"``, ``\\`` and control characters
    escaped, the same way), or raises (an integer beyond 64 bits, a lone surrogate). Plain leaves out where
    the two part: floats (``1e-07`` against ``1e-7``) and the types orjson writes that json rejects or
    writes otherwise (subclasses, enums, UUIDs, dates, dataclasses).
    """
    kind = type(value)
    if kind is dict:
        for key in value:
            if type(key) is not str:
                return False
        items = value.values()
    elif kind is list:
        items = value
    else:
        return kind is str or kind is int or kind is bool or value is None
    if depth <= 0:
        return False
    for item in items:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if (kind is dict or kind is list) and is_plain_json(item, depth - 1):
            continue
        return False
    return True


def canonical_json(value: Any, plain: bool | None = None) -> bytes:
    """The canonical JSON of ``value``: sorted keys, no whitespace, UTF-8; NaN and Infinity rejected.
    ``plain``: what ``is_plain_json(value)`` says, when the caller knows."""
    if is_plain_json(value) if plain is None else plain:
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass  # an integer beyond 64 bits or a lone surrogate: json decides, as it always has
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode()


def content_hash(members: Mapping[str, Any]) -> tuple[bytes, bool]:
    """SHA-256 of the canonical JSON of an event's non-null members, and whether they are plain JSON
    (`is_plain_json`, walked once for both)."""
    present = {k: v for k, v in members.items() if v is not None}
    plain = is_plain_json(present)
    return hashlib.sha256(canonical_json(present, plain)).digest(), plain


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 40 else text[:40] + "…"


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else "null" if value is None else "a value"
    )


def _check(obj: Any, region: str, index: int | None, where: str = "event") -> ParsedEvent | list[Problem]:
    """Validate one event object; the event, or every problem found."""
    if not isinstance(obj, dict):
        return [Problem(where, f"must be a JSON object, got {_kind(obj)}", index)]
    if not all(isinstance(key, str) for key in obj):
        return [Problem(where, "member names must be strings", index)]
    members = {k: v for k, v in obj.items() if v is not None}
    problems: list[Problem] = []

    def bad(name: str, reason: str) -> None:
        problems.append(Problem(name, reason, index))

    def text(name: str, *, required: bool) -> str | None:
        value = members.get(name)
        if value is None:
            if required:
                twin = next((k for k in members if k.lower() == name and k != name), None)
                hint = f' (found "{twin}": attribute names are lower-case)' if twin else ""
                bad(name, "required" + hint)
            return None
        if not isinstance(value, str) or (required and not value.strip()):
            bad(name, "must be a non-empty string" if required else "must be a string")
            return None
        if len(value) > _LIMITS.get(name, 1 << 30):
            bad(name, f"must be at most {_LIMITS[name]} characters")
            return None
        return value

    event_id, type_ = text("id", required=True), text("type", required=True)
    source = text("source", required=True)
    if source is not None and _CONTROL.search(source):
        bad("source", "must be a URI-reference (control characters are not allowed)")
    specversion = members.get("specversion")
    if specversion is None:
        text("specversion", required=True)
    elif specversion != SPECVERSION:
        bad("specversion", f'must be "{SPECVERSION}", got {_shown(specversion)}')
    identity_type: IdentityType | None = None
    if "identitytype" in members:
        try:
            identity_type = parse_identity_type(members["identitytype"])
        except IdentityError as exc:
            bad(exc.field, exc.reason)
    else:
        text("identitytype", required=True)
    identity, normalised = text("identity", required=True), None
    if identity is not None and identity_type is not None:
        try:
            normalised = normalise(identity_type, identity, region)
        except IdentityError as exc:
            bad(exc.field, exc.reason)
    previous, candidates = text("previousidentity", required=False), tuple[str, ...]()
    if previous is not None:
        try:
            candidates = previous_identity_candidates(previous, region)
        except IdentityError as exc:
            bad(exc.field, exc.reason)
    time = _time(members.get("time"), bad)
    subject, datacontenttype = text("subject", required=False), text("datacontenttype", required=False)
    dataschema = text("dataschema", required=False)
    if dataschema is not None and not _ABSOLUTE_URI.fullmatch(dataschema):
        bad("dataschema", "must be an absolute URI")
    data, data_base64 = members.get("data"), text("data_base64", required=False)
    if data is not None and "data_base64" in members:
        bad("data_base64", "must not be present together with data")
    elif data_base64 is not None and not _is_base64(data_base64):
        bad("data_base64", "must be base64 text (RFC 4648)")
    try:
        digest, plain = content_hash(members)
    except (TypeError, ValueError):
        bad(where, "is not JSON (NaN, Infinity or a non-JSON value)")
    if problems:
        return problems
    assert event_id and source and type_ and identity and identity_type and normalised  # for mypy
    return ParsedEvent(
        id=event_id,
        source=source,
        specversion=SPECVERSION,
        type=type_,
        time=time,
        identity=identity,
        identity_type=identity_type,
        identity_normalised=normalised,
        previous_identity=previous,
        previous_identity_normalised=candidates[0] if candidates else None,
        previous_identity_candidates=candidates,
        subject=subject,
        datacontenttype=datacontenttype,
        dataschema=dataschema,
        data=data,
        data_base64=data_base64,
        extensions={k: v for k, v in members.items() if k not in ATTRIBUTES},
        content_hash=digest,
        plain=plain,
    )


def _time(value: Any, bad: Callable[[str, str], None]) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        try:
            parsed = datetime.fromisoformat(value[:10] + "T" + value[11:].upper())
        except ValueError:
            pass
        else:
            try:
                parsed.astimezone(UTC)
            except OverflowError:  # 9999-12-31T23:00-05:00: stored, it would not read back into Python
                bad("time", "must fall within the years 0001-9999 in UTC")
                return None
            return parsed
    bad("time", "not an RFC 3339 timestamp with a UTC offset")
    return None


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except ValueError:
        return False
    return True


def parse_event(obj: Any, *, default_region: str, index: int | None = None) -> ParsedEvent:
    """Validate one decoded event object; raises :class:`EventValidationError` with every problem."""
    result = _check(obj, default_region, index)
    if isinstance(result, list):
        raise EventValidationError(result)
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(body: bytes | bytearray | memoryview | str) -> Any:
    """Decode a JSON request body; raises :class:`EventValidationError` naming line and column."""
    try:
        text = body if isinstance(body, str) else bytes(body).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EventValidationError([Problem("body", f"not valid UTF-8 (byte {exc.start})")]) from None
    if not text.strip():
        raise EventValidationError([Problem("body", "empty; expected JSON")])
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        reason = f"not valid JSON (line {exc.lineno} column {exc.colno})"
    except RecursionError:
        reason = "not valid JSON (nested too deeply)"
    except ValueError as exc:  # NaN/Infinity, or an integer too long to convert
        reason = f"not valid JSON ({exc})"
    raise EventValidationError([Problem("body", reason)])


Body = bytes | bytearray | memoryview | str


def parse_structured(body: Body | dict[str, Any], *, default_region: str) -> ParsedEvent:
    """Structured mode: one event as a JSON object (raw body, or already decoded)."""
    obj = load_json(body) if isinstance(body, Body) else body
    if isinstance(obj, list):
        reason = "must be a JSON object; send several events as application/cloudevents-batch+json"
        raise EventValidationError([Problem("body", reason)])
    result = _check(obj, default_region, None, where="body")
    if isinstance(result, list):
        raise EventValidationError(result)
    return result


def parse_batch(body: Body | list[Any], *, default_region: str, max_events: int = 1000) -> list[ParsedEvent]:
    """Batch mode: a JSON array of event objects. All valid, or every bad event reported by index."""
    items = load_json(body) if isinstance(body, Body) else body
    if not isinstance(items, list):
        raise EventValidationError([Problem("body", f"must be a JSON array of events, got {_kind(items)}")])
    if not items:
        raise EventValidationError([Problem("body", "must contain at least one event")])
    if len(items) > max_events:
        reason = f"has {len(items)} events; at most {max_events} are accepted in one request"
        raise EventValidationError([Problem("body", reason)])
    events: list[ParsedEvent] = []
    problems: list[Problem] = []
    for i, item in enumerate(items):
        result = _check(item, default_region, i)
        if isinstance(result, list):
            problems.extend(result)
        else:
            events.append(result)
    if problems:
        if len(problems) > MAX_PROBLEMS:
            extra = Problem("body", f"{len(problems) - MAX_PROBLEMS} more problems not listed")
            problems = [*problems[:MAX_PROBLEMS], extra]
        raise EventValidationError(problems)
    return events


def _media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    if not content_type:
        return "", {}
    media, *params = content_type.split(";")
    pairs = (p.split("=", 1) for p in params if "=" in p)
    return media.strip().lower(), {k.strip().lower(): v.strip().strip('"').lower() for k, v in pairs}


def is_json_media_type(content_type: str | None) -> bool:
    media, _ = _media_type(content_type)
    return media in ("application/json", "text/json") or media.endswith("+json")


def parse_binary(
    headers: Mapping[str, str], body: bytes, content_type: str | None, *, default_region: str
) -> ParsedEvent:
    """Binary mode: attributes in ``ce-*`` headers, the body is the event's data."""
    members: dict[str, Any] = {}
    problems: list[Problem] = []
    for name, value in headers.items():
        lowered = name.lower()
        attr = lowered[3:]
        if not lowered.startswith("ce-") or not attr or attr in members or attr == "datacontenttype":
            continue
        if attr in ("data", "data_base64"):
            problems.append(Problem(lowered, "not allowed in binary mode: the body is the data"))
            continue
        try:
            members[attr] = unquote(value.encode("utf-8").decode("ascii"), errors="strict")
        except UnicodeError:
            problems.append(Problem(lowered, "not valid percent-encoded UTF-8"))
    if content_type:
        members["datacontenttype"] = content_type
    if body and is_json_media_type(content_type):
        try:
            members["data"] = load_json(body)
        except EventValidationError as exc:
            problems.extend(exc.problems)
    elif body:
        try:
            members["data"] = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            members["data_base64"] = base64.b64encode(body).decode("ascii")
    result = _check(members, default_region, None)
    problems.extend(result if isinstance(result, list) else [])
    if problems:
        raise EventValidationError(problems)
    assert isinstance(result, ParsedEvent)
    return result


def detect_mode(content_type: str | None, headers: Mapping[str, str]) -> Mode:
    """The HTTP content mode of a request; raises :class:`UnsupportedMediaType` (415) naming the type."""
    media, params = _media_type(content_type)
    if media in STRUCTURED_TYPES | {BATCH_TYPE} and params.get("charset", "utf-8") not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"Unsupported content type {content_type!r}: JSON must be UTF-8")
    if media == "application/cloudevents+json":
        return "structured"
    if media == BATCH_TYPE:
        return "batch"
    if any(name.lower() == "ce-specversion" for name in headers):
        return "binary"
    if media == "application/json":
        return "structured"
    raise UnsupportedMediaType(
        f"Unsupported content type {content_type or '(none)'!r}: send application/json, "
        f"application/cloudevents+json, {BATCH_TYPE}, or a binary-mode event with ce-* headers"
    )


def parse_http(
    content_type: str | None, headers: Mapping[str, str], body: bytes, *, default_region: str, max_events: int
) -> list[ParsedEvent]:
    """Parse a request in whichever content mode it uses; one event, or a batch."""
    mode = detect_mode(content_type, headers)
    if mode == "batch":
        return parse_batch(body, default_region=default_region, max_events=max_events)
    if mode == "binary":
        return [parse_binary(headers, body, content_type, default_region=default_region)]
    return [parse_structured(body, default_region=default_region)]


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``: milliseconds when exact (``2022-08-15T22:29:43.768Z``), else micro."""
    if value.tzinfo is None:
        raise ValueError("time must be timezone-aware")
    utc = value.astimezone(UTC)
    spec = "milliseconds" if utc.microsecond % 1000 == 0 else "microseconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def to_cloudevent(
    *,
    id: str,
    source: str,
    type: str,
    time: datetime,
    identity: str,
    identity_type: IdentityType | str,
    specversion: str = SPECVERSION,
    previous_identity: str | None = None,
    subject: str | None = None,
    datacontenttype: str | None = None,
    dataschema: str | None = None,
    data: Any = None,
    data_base64: str | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A stored event in the JDS feed's shape (``JourneyCloudEventModel``): attributes, extensions, data.

    Absent optional members are left out; ``datacontenttype`` defaults to ``application/json`` when there
    is JSON ``data`` (the JSON format's implied type). Extensions never overwrite an attribute.
    """
    out: dict[str, Any] = {
        "id": id,
        "specversion": specversion,
        "type": type,
        "source": source,
        "time": format_time(time),
        "identity": identity,
        "identitytype": str(identity_type),
    }
    optional = {"previousidentity": previous_identity, "subject": subject, "dataschema": dataschema}
    out.update({k: v for k, v in optional.items() if v is not None})
    if datacontenttype is None and data is not None:
        datacontenttype = "application/json"
    if datacontenttype is not None:
        out["datacontenttype"] = datacontenttype
    out.update({k: v for k, v in (extensions or {}).items() if k not in ATTRIBUTES and v is not None})
    if data_base64 is not None:
        out["data_base64"] = data_base64
    elif data is not None:
        out["data"] = data
    return out
