"""Windowed aggregation maths for progressive profiles: casting data values, the seven modes, windows.

Pure functions only. Decisions (each pinned by a unit test):

- Casting (`cast_value`): integer takes ints, integral floats (JSON cannot tell 4 from 4.0) and strings
  of digits ("42", "-7"; not "4.0", "4.2", "1e3"), within the signed 64-bit range; double takes finite
  numbers and decimal strings (no NaN, no infinities, no "1_000"); string takes strings, and renders numbers
  and booleans as JDS would (42 -> "42", 4.5 -> "4.5", True -> "true"); utc_datetime takes RFC 3339
  strings with an offset ("...Z" or "+02:00"; digits past microseconds are truncated) and numbers as epoch
  milliseconds (Webex CC task events carry epoch-millisecond times). Booleans are never numbers; null,
  objects and arrays never cast.
- Count counts the matching events, whether or not they carry the field; the other modes ignore events
  whose field is missing or does not cast.
- Typed results: integer Sum -> int, double Sum -> float (math.fsum, so the order of events does not matter),
  Average -> float, Max/Min -> the value's type, Value -> tuple of values newest first, Distinct -> tuple of
  distinct values newest first (first occurrence). An empty set gives Count 0, Sum 0 (0.0 for double), the
  other modes None.
- Window: an event counts iff `now - lookback <= event_time <= now` (closed at both ends), to the microsecond
  (the precision of Python datetimes and PostgreSQL timestamptz). A day is 24 hours (UTC, no calendar).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, cast, get_args

MetaDataType = Literal["string", "integer", "double", "utc_datetime"]
AggregationMode = Literal["Value", "Count", "Sum", "Max", "Min", "Average", "Distinct"]
LookbackUnit = Literal["minutes", "hours", "days"]
Typed = str | int | float | datetime
Result = Typed | tuple[Typed, ...] | None

META_DATA_TYPES: Final[tuple[MetaDataType, ...]] = get_args(MetaDataType)
AGGREGATION_MODES: Final[tuple[AggregationMode, ...]] = get_args(AggregationMode)
LOOKBACK_UNITS: Final[tuple[LookbackUnit, ...]] = get_args(LookbackUnit)
NUMERIC_TYPES: Final[frozenset[MetaDataType]] = frozenset({"integer", "double"})
RESOLUTION: Final = timedelta(microseconds=1)
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

_INTEGER = re.compile(r"[+-]?\d{1,20}")
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LAST: Final = datetime.max.replace(tzinfo=UTC)
LAST_MICROS: Final = (_LAST - EPOCH) // RESOLUTION
"""The last instant Python (and asyncpg) has a datetime for, in microseconds since 1970."""
_UNIT_SECONDS: Final[dict[LookbackUnit, int]] = {"minutes": 60, "hours": 3600, "days": 86400}


class CastError(ValueError):
    """A raw value does not fit the declared type; `reason` reads on from "value ": "'abc' is not ..."."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class _Missing:
    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()
"""What `get_path` returns when the field is absent (a present JSON null is returned as None)."""


def parse_type(text: str) -> MetaDataType:
    """Normalise a type name, any case ("Integer" -> "integer")."""
    for name in META_DATA_TYPES:
        if text.strip().lower() == name:
            return name
    raise ValueError(f"unknown type {text!r} (expected one of {', '.join(META_DATA_TYPES)})")


def parse_mode(text: str) -> AggregationMode:
    """Normalise an aggregation mode, any case ("sum" -> "Sum")."""
    for name in AGGREGATION_MODES:
        if text.strip().lower() == name.lower():
            return name
    raise ValueError(f"unknown aggregation mode {text!r} (expected one of {', '.join(AGGREGATION_MODES)})")


def parse_unit(text: str) -> LookbackUnit:
    for name in LOOKBACK_UNITS:
        if text.strip().lower() == name:
            return name
    raise ValueError(f"unknown lookback unit {text!r} (expected one of {', '.join(LOOKBACK_UNITS)})")


def mode_type_problem(mode: AggregationMode, type_: MetaDataType) -> str | None:
    """Why `mode` cannot aggregate values of `type_`, or None when it can.

    Sum and Average need integer or double. Max and Min also take utc_datetime (latest, earliest), but not
    string: the JDS documentation lists them as numeric, and a lexicographic maximum is rarely what is meant.
    """
    if mode in ("Sum", "Average") and type_ not in NUMERIC_TYPES:
        return f"{mode} needs a numeric type, not {type_}"
    if mode in ("Max", "Min") and type_ == "string":
        return f"{mode} needs a numeric or utc_datetime type, not string"
    return None


def _describe(raw: object) -> str:
    if raw is None:
        return "null"
    if isinstance(raw, Mapping):
        return "an object"
    if isinstance(raw, list | tuple):
        return "an array"
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def _cast_integer(raw: object) -> int:
    if isinstance(raw, bool):
        raise CastError(f"{_describe(raw)} is a boolean, not an integer")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        value = int(raw)
    elif isinstance(raw, str) and _INTEGER.fullmatch(raw.strip()):
        value = int(raw.strip())
    else:
        raise CastError(f"{_describe(raw)} is not an integer")
    if not INT64_MIN <= value <= INT64_MAX:
        raise CastError(f"{_describe(raw)} is outside the 64-bit integer range")
    return value


def _cast_double(raw: object) -> float:
    if isinstance(raw, bool):
        raise CastError(f"{_describe(raw)} is a boolean, not a number")
    try:
        if isinstance(raw, int | float):
            value = float(raw)
        elif isinstance(raw, str) and _DECIMAL.fullmatch(raw.strip()):
            value = float(raw.strip())
        else:
            raise CastError(f"{_describe(raw)} is not a number")
    except OverflowError:
        raise CastError(f"{_describe(raw)} is too large for a double") from None
    if not math.isfinite(value):
        raise CastError(f"{_describe(raw)} is not a finite number")
    return value


def _cast_datetime(raw: object) -> datetime:
    if isinstance(raw, datetime):
        if raw.tzinfo is None:
            raise CastError(f"{_describe(raw)} has no UTC offset")
        return raw.astimezone(UTC)
    if isinstance(raw, str) and _RFC3339.fullmatch(raw.strip()):
        text = raw.strip().replace("z", "Z").replace("t", "T")
        try:
            return datetime.fromisoformat(text).astimezone(UTC)
        except ValueError:
            raise CastError(f"{_describe(raw)} is not a valid date-time") from None
    if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
        try:
            return EPOCH + timedelta(milliseconds=raw)
        except OverflowError:
            raise CastError(f"{_describe(raw)} is out of range for epoch milliseconds") from None
    raise CastError(f"{_describe(raw)} is not an RFC 3339 date-time")


def render_value(value: Typed) -> str:
    """One typed value as JDS shows it: ints plainly, floats in shortest repr, datetimes ISO 8601 with Z."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, datetime):
        utc = value.astimezone(UTC)
        micros = utc.microsecond
        spec = "seconds" if not micros else "milliseconds" if not micros % 1000 else "microseconds"
        return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"
    return str(value)


def cast_value(raw: object, type_: MetaDataType) -> Typed:
    """Cast a raw JSON value to `type_`, or raise CastError with the reason."""
    if type_ == "integer":
        return _cast_integer(raw)
    if type_ == "double":
        return _cast_double(raw)
    if type_ == "utc_datetime":
        return _cast_datetime(raw)
    if isinstance(raw, str):
        return raw
    if isinstance(raw, float) and not math.isfinite(raw):
        raise CastError(f"{_describe(raw)} is not a finite number")
    if isinstance(raw, bool | int | float | datetime):
        return render_value(raw)
    raise CastError(f"{_describe(raw)} is not a string")


def caster(type_: MetaDataType) -> Callable[[object], Typed]:
    """`cast_value(raw, type_)` as a function of `raw`: the same results and errors, with a quick path for a
    raw value that already has the type's JSON shape (a str for string, an int for integer, ...)."""
    if type_ == "string":

        def cast_string(raw: object) -> Typed:
            return raw if type(raw) is str else cast_value(raw, "string")

        return cast_string
    if type_ == "integer":

        def cast_integer(raw: object) -> Typed:
            if type(raw) is int and INT64_MIN <= raw <= INT64_MAX:
                return raw
            return _cast_integer(raw)

        return cast_integer
    if type_ == "double":

        def cast_double(raw: object) -> Typed:
            if type(raw) is float and math.isfinite(raw):
                return raw
            return _cast_double(raw)

        return cast_double
    if type_ == "utc_datetime":
        return _cast_datetime
    raise ValueError(f"unknown type {type_!r} (expected one of {', '.join(META_DATA_TYPES)})")


def get_path(data: Mapping[str, object], dotted: str) -> object:
    """The value at a dotted path ("customer.address.city"), or MISSING.

    A key that literally contains the dots wins over traversal; a digit segment indexes into an array.
    """
    if dotted in data:
        return data[dotted]
    current: object = data
    for segment in dotted.split("."):
        if isinstance(current, Mapping) and segment in current:
            current = current[segment]
        elif isinstance(current, list | tuple) and segment.isdigit() and int(segment) < len(current):
            current = current[int(segment)]
        else:
            return MISSING
    return current


def path_reader(dotted: str) -> Callable[[Mapping[str, object]], object]:
    """`get_path(data, dotted)` as a function of `data`, the path split once."""
    if "." not in dotted:

        def read_key(data: Mapping[str, object]) -> object:
            return data[dotted] if dotted in data else MISSING

        return read_key
    steps = tuple((segment, segment.isdigit()) for segment in dotted.split("."))

    def read_path(data: Mapping[str, object]) -> object:
        if dotted in data:
            return data[dotted]
        current: object = data
        for segment, digits in steps:
            if (type(current) is dict or isinstance(current, Mapping)) and segment in current:
                current = current[segment]
            elif digits and isinstance(current, list | tuple) and int(segment) < len(current):
                current = current[int(segment)]
            else:
                return MISSING
        return current

    return read_path


def extract_value(data: Mapping[str, object], dotted: str, type_: MetaDataType) -> Typed | None:
    """The event's typed value for an attribute, or None when the field is missing, null or does not cast."""
    raw = get_path(data, dotted)
    if raw is MISSING or raw is None:
        return None
    try:
        return cast_value(raw, type_)
    except CastError:
        return None


@dataclass(slots=True)
class AggregateResult:  # not frozen: made per attribute and event (see compute.EventFact)
    mode: AggregationMode
    type: MetaDataType
    value: Result
    events: int
    """How many events were aggregated (what Count reports)."""


def _fsum(values: Sequence[float]) -> float:
    try:
        return math.fsum(values)
    except OverflowError:
        return math.inf if sum(values) > 0 else -math.inf


def aggregate(mode: AggregationMode, type_: MetaDataType, values: Sequence[Typed | None]) -> AggregateResult:
    """Aggregate one value per matching event (None: the event lacks the field), newest first, limited."""
    problem = mode_type_problem(mode, type_)
    if problem:
        raise ValueError(problem)
    present = [v for v in values if v is not None]
    result: Result
    if mode == "Count":
        result = len(values)
    elif mode == "Sum":
        if type_ == "integer":
            result = sum(int(v) for v in present if isinstance(v, int))
        else:
            result = _fsum([float(v) for v in present if isinstance(v, int | float)])
    elif not present:
        result = None
    elif mode == "Average":
        numbers = [v for v in present if isinstance(v, int | float)]
        ints = [v for v in numbers if isinstance(v, int)]
        result = sum(ints) / len(ints) if len(ints) == len(numbers) else _fsum(numbers) / len(numbers)
    elif mode in ("Max", "Min"):
        pick = max if mode == "Max" else min
        result = pick(present, key=_sort_key)
    elif mode == "Value":
        result = tuple(present)
    else:
        result = tuple(dict.fromkeys(present))
    return AggregateResult(mode=mode, type=type_, value=result, events=len(values))


def _sort_key(value: Typed) -> int | float | datetime | str:
    return value


Reducer = Callable[[list[Typed], int], Result]
"""reduce(present, events): the value of `events` matching events, `present` their values (newest first)."""


def reducer(mode: AggregationMode, type_: MetaDataType) -> Reducer:
    """`aggregate(...).value` for values already cast to `type_` (as `cast_value` returns them), with the
    events lacking the value left out of `present` and counted in `events`: the same results, with the
    mode and type checked once rather than per call."""
    problem = mode_type_problem(mode, type_)
    if problem:
        raise ValueError(problem)
    if mode == "Count":
        return lambda present, events: events
    if mode == "Sum" and type_ == "integer":
        return lambda present, events: sum(cast(list[int], present))
    if mode == "Sum":
        return lambda present, events: _fsum(cast(list[float], present))
    value_of = _integer_average if (mode, type_) == ("Average", "integer") else _REDUCE[mode]
    return lambda present, events: value_of(present) if present else None


def _average(values: list[Typed]) -> float:
    return _fsum(cast(list[float], values)) / len(values)


def _integer_average(values: list[Typed]) -> float:
    return sum(cast(list[int], values)) / len(values)


# Modes of non-empty values other than Count and Sum; Max and Min of numbers or datetimes, one type per list.
_REDUCE: Final[dict[AggregationMode, Callable[[list[Typed]], Result]]] = {
    "Average": _average,
    "Max": lambda values: max(cast(list[Any], values)),
    "Min": lambda values: min(cast(list[Any], values)),
    "Value": tuple,
    "Distinct": lambda values: tuple(dict.fromkeys(values)),
}


def as_jds_string(result: AggregateResult | Result) -> str | None:
    """The JDS `result` string: a list comma-joined, a scalar rendered, no value as None (JSON null)."""
    value = result.value if isinstance(result, AggregateResult) else result
    if value is None:
        return None
    if isinstance(value, tuple):
        return ",".join(render_value(v) for v in value)
    return render_value(value)


def micros(moment: datetime) -> int:
    """An aware datetime as microseconds since 1970-01-01 UTC (also one whose UTC falls outside years
    1-9999, which has no UTC datetime in Python); how computation holds times: integers compare and add
    several times faster than datetimes."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    """`micros` back to a UTC datetime; past the end of year 9999 (a window's end after a future-stamped
    event there), the last instant Python has."""
    if value >= LAST_MICROS:
        return _LAST
    return EPOCH + timedelta(microseconds=value)


def lookback(period: int, unit: LookbackUnit) -> timedelta:
    if period < 1:
        raise ValueError(f"lookback period must be at least 1, not {period}")
    return timedelta(seconds=period * _UNIT_SECONDS[unit])


def window(now: datetime, period: int, unit: LookbackUnit) -> tuple[datetime, datetime]:
    """The closed interval [start, end] of event times that count at `now`."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now - lookback(period, unit), now


def in_window(now: datetime, span: timedelta, event_time: datetime) -> bool:
    return now - span <= event_time <= now


def next_change(
    now: datetime, span: timedelta, event_times: Iterable[datetime], limit: int | None = None
) -> datetime | None:
    """The earliest instant after `now` at which the value can change without a new event, or None.

    `event_times` are the matching events' times (any order; those older than the window are ignored).
    With a limit (None or 0: no limit) only the newest `limit` events in the window count, so only the
    oldest *counted* event leaving changes the value: events older than it are not counted and leave
    earlier. An event leaves at `event_time + span + 1µs`, the first instant it no longer counts.
    An event stamped after `now` enters the window at its own time, which also changes the value.
    """
    times = list(event_times)
    inside = sorted((t for t in times if in_window(now, span, t)), reverse=True)
    counted = inside[:limit] if limit else inside
    candidates = [t for t in times if t > now]
    if counted:
        candidates.append(counted[-1] + span + RESOLUTION)
    return min(candidates) if candidates else None
