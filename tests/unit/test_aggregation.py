"""Windowed aggregation maths: casting, paths, the seven modes, JDS rendering, windows and next_change."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from profiles.aggregation import (
    AGGREGATION_MODES,
    META_DATA_TYPES,
    MISSING,
    RESOLUTION,
    AggregateResult,
    AggregationMode,
    CastError,
    MetaDataType,
    Typed,
    aggregate,
    as_jds_string,
    cast_value,
    caster,
    extract_value,
    get_path,
    in_window,
    lookback,
    mode_type_problem,
    next_change,
    parse_mode,
    parse_type,
    parse_unit,
    path_reader,
    reducer,
    render_value,
    window,
)

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
T0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


# --- names -------------------------------------------------------------------------------------------


def test_type_names_are_case_insensitive_and_normalised() -> None:
    assert parse_type("Integer") == "integer"
    assert parse_type(" UTC_DATETIME ") == "utc_datetime"


def test_unknown_type_names_the_expected_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown type 'bool' \(expected one of string, integer, double"):
        parse_type("bool")


def test_mode_names_are_case_insensitive_and_normalised() -> None:
    assert parse_mode("sum") == "Sum"
    assert parse_mode("DISTINCT") == "Distinct"
    with pytest.raises(ValueError, match="unknown aggregation mode 'Median'"):
        parse_mode("Median")


def test_units_are_case_insensitive() -> None:
    assert parse_unit("Days") == "days"
    with pytest.raises(ValueError, match="unknown lookback unit 'weeks'"):
        parse_unit("weeks")


@pytest.mark.parametrize(
    ("mode", "type_", "problem"),
    [
        ("Sum", "string", "Sum needs a numeric type, not string"),
        ("Average", "utc_datetime", "Average needs a numeric type, not utc_datetime"),
        ("Max", "string", "Max needs a numeric or utc_datetime type, not string"),
        ("Min", "string", "Min needs a numeric or utc_datetime type, not string"),
    ],
)
def test_mode_type_misfits_are_explained(mode: str, type_: str, problem: str) -> None:
    assert mode_type_problem(mode, type_) == problem  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mode", "type_"),
    [
        ("Sum", "integer"),
        ("Average", "double"),
        ("Max", "utc_datetime"),
        ("Min", "double"),
        ("Count", "string"),
        ("Value", "string"),
        ("Distinct", "utc_datetime"),
    ],
)
def test_mode_type_fits(mode: str, type_: str) -> None:
    assert mode_type_problem(mode, type_) is None  # type: ignore[arg-type]


# --- casting -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [(42, 42), ("42", 42), (" -7 ", -7), ("+3", 3), (4.0, 4)])
def test_integer_accepts_ints_digit_strings_and_integral_floats(raw: object, expected: int) -> None:
    value = cast_value(raw, "integer")
    assert value == expected and type(value) is int


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (True, "True is a boolean, not an integer"),
        ("4.2", "'4.2' is not an integer"),
        ("4.0", "'4.0' is not an integer"),
        ("1e3", "'1e3' is not an integer"),
        (4.5, "4.5 is not an integer"),
        (math.nan, "nan is not an integer"),
        ("", "'' is not an integer"),
        (None, "null is not an integer"),
        ({"a": 1}, "an object is not an integer"),
        (2**63, "is outside the 64-bit integer range"),
        ("9" * 25, "is not an integer"),
    ],
)
def test_integer_rejects_with_reason(raw: object, reason: str) -> None:
    with pytest.raises(CastError) as info:
        cast_value(raw, "integer")
    assert reason in info.value.reason


def test_integer_bounds_are_inclusive() -> None:
    assert cast_value(2**63 - 1, "integer") == 2**63 - 1
    assert cast_value(str(-(2**63)), "integer") == -(2**63)


@pytest.mark.parametrize(
    ("raw", "expected"), [(3, 3.0), (2.5, 2.5), ("2.5", 2.5), (" -1e3 ", -1000.0), (".5", 0.5), ("7.", 7.0)]
)
def test_double_accepts_numbers_and_decimal_strings(raw: object, expected: float) -> None:
    value = cast_value(raw, "double")
    assert value == expected and type(value) is float


@pytest.mark.parametrize(
    "raw",
    [False, "NaN", "nan", "inf", "-Infinity", math.inf, math.nan, "1_000", "0x10", "1e999", 10**400, "", "€"],
)
def test_double_rejects_non_finite_and_non_decimal(raw: object) -> None:
    with pytest.raises(CastError):
        cast_value(raw, "double")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Water", "Water"), ("", ""), (42, "42"), (4.5, "4.5"), (4.0, "4.0"), (True, "true"), (False, "false")],
)
def test_string_renders_scalars_as_jds_does(raw: object, expected: str) -> None:
    assert cast_value(raw, "string") == expected


@pytest.mark.parametrize("raw", [None, {"a": 1}, [1, 2], math.nan])
def test_string_rejects_null_objects_arrays_and_nan(raw: object) -> None:
    with pytest.raises(CastError):
        cast_value(raw, "string")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-01-02T03:04:05Z", T0),
        ("2024-01-02t03:04:05z", T0),
        ("2024-01-02 03:04:05Z", T0),
        ("2024-01-02T05:04:05+02:00", T0),
        ("2024-01-02T03:04:05.5Z", T0.replace(microsecond=500000)),
        ("2024-01-02T03:04:05.123456789Z", T0.replace(microsecond=123456)),
        (1704164645000, T0),
        (1704164645000.5, T0 + timedelta(microseconds=500)),
        (datetime(2024, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1))), T0),
    ],
)
def test_utc_datetime_accepts_rfc3339_and_epoch_millis(raw: object, expected: datetime) -> None:
    value = cast_value(raw, "utc_datetime")
    assert value == expected
    assert isinstance(value, datetime) and value.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "raw",
    [
        "2024-01-02T03:04:05",  # no offset
        "2024-01-02",
        "2024-13-02T03:04:05Z",
        "2024-01-02T03:04:60Z",
        "yesterday",
        "1704164645000",  # digits in a string are not epoch millis
        True,
        math.inf,
        1e20,
        datetime(2024, 1, 2),  # naive
    ],
)
def test_utc_datetime_rejects_anything_else(raw: object) -> None:
    with pytest.raises(CastError):
        cast_value(raw, "utc_datetime")


# --- paths -------------------------------------------------------------------------------------------


def test_get_path_reads_nested_fields_and_array_indexes() -> None:
    data = {"customer": {"address": {"city": "Oslo"}}, "items": [{"price": 3}], "a.b": 1, "nil": None}
    assert get_path(data, "customer.address.city") == "Oslo"
    assert get_path(data, "items.0.price") == 3
    assert get_path(data, "a.b") == 1
    assert get_path(data, "nil") is None


@pytest.mark.parametrize(
    "path", ["missing", "customer.zip", "items.1.price", "items.x", "customer.address.city.x"]
)
def test_get_path_returns_missing_for_absent_fields(path: str) -> None:
    data = {"customer": {"address": {"city": "Oslo"}}, "items": [{"price": 3}]}
    assert get_path(data, path) is MISSING
    assert not MISSING


def test_extract_value_is_none_for_missing_null_or_uncastable() -> None:
    data = {"price": "12", "bad": "x", "nil": None}
    assert extract_value(data, "price", "integer") == 12
    assert extract_value(data, "bad", "integer") is None
    assert extract_value(data, "nil", "string") is None
    assert extract_value(data, "gone", "string") is None


# --- aggregate ---------------------------------------------------------------------------------------


def test_count_counts_events_even_without_the_field() -> None:
    result = aggregate("Count", "string", ["a", None, "b"])
    assert result == AggregateResult("Count", "string", 3, 3)
    assert as_jds_string(result) == "3"


def test_sum_of_integers_is_an_int_and_ignores_missing() -> None:
    result = aggregate("Sum", "integer", [5, None, 7])
    assert result.value == 12 and type(result.value) is int
    assert as_jds_string(result) == "12"


def test_sum_of_doubles_is_exactly_rounded() -> None:
    result = aggregate("Sum", "double", [0.1] * 10)
    assert result.value == 1.0
    assert as_jds_string(result) == "1.0"


def test_sum_overflowing_doubles_is_infinite() -> None:
    assert aggregate("Sum", "double", [1e308, 1e308]).value == math.inf
    assert as_jds_string(aggregate("Sum", "double", [-1e308, -1e308])) == "-Infinity"


def test_average_is_a_float() -> None:
    assert aggregate("Average", "integer", [1, 2]).value == 1.5
    assert as_jds_string(aggregate("Average", "integer", [2, 4])) == "3.0"
    assert aggregate("Average", "double", [0.5, None, 1.5]).value == 1.0


def test_max_and_min_of_numbers_and_datetimes() -> None:
    assert aggregate("Max", "integer", [3, 9, None, 1]).value == 9
    assert aggregate("Min", "double", [3.5, -1.25]).value == -1.25
    later = T0 + timedelta(hours=1)
    assert aggregate("Max", "utc_datetime", [T0, later]).value == later
    assert as_jds_string(aggregate("Min", "utc_datetime", [T0, later])) == "2024-01-02T03:04:05Z"


def test_value_lists_values_newest_first_comma_joined() -> None:
    result = aggregate("Value", "string", ["newest", None, "older", "newest"])
    assert result.value == ("newest", "older", "newest")
    assert as_jds_string(result) == "newest,older,newest"


def test_distinct_keeps_first_occurrence_newest_first() -> None:
    result = aggregate("Distinct", "string", ["b", "a", None, "b", "c", "a"])
    assert result.value == ("b", "a", "c")
    assert as_jds_string(result) == "b,a,c"


@pytest.mark.parametrize(
    ("mode", "type_", "expected", "text"),
    [
        ("Count", "string", 0, "0"),
        ("Sum", "integer", 0, "0"),
        ("Sum", "double", 0.0, "0.0"),
        ("Average", "double", None, None),
        ("Max", "integer", None, None),
        ("Min", "utc_datetime", None, None),
        ("Value", "string", None, None),
        ("Distinct", "integer", None, None),
    ],
)
def test_empty_sets(mode: str, type_: str, expected: object, text: str | None) -> None:
    result = aggregate(mode, type_, [])  # type: ignore[arg-type]
    assert result.value == expected
    assert as_jds_string(result) == text


@pytest.mark.parametrize("mode", ["Sum", "Average", "Max", "Min", "Value", "Distinct"])
def test_events_without_values_aggregate_like_no_events_except_count(mode: str) -> None:
    assert aggregate(mode, "integer", [None, None]).value == aggregate(mode, "integer", []).value  # type: ignore[arg-type]
    assert aggregate("Count", "integer", [None, None]).value == 2


def test_aggregate_refuses_a_misfit_mode() -> None:
    with pytest.raises(ValueError, match="Sum needs a numeric type, not string"):
        aggregate("Sum", "string", ["1"])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (7, "7"),
        (-0.5, "-0.5"),
        (1e20, "1e+20"),
        ("a,b", "a,b"),
        (T0.replace(microsecond=120000), "2024-01-02T03:04:05.120Z"),
        (T0.replace(microsecond=123456), "2024-01-02T03:04:05.123456Z"),
        (datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))), "2024-01-02T03:04:05Z"),
    ],
)
def test_render_value(value: object, text: str) -> None:
    assert render_value(value) == text  # type: ignore[arg-type]


def test_as_jds_string_takes_bare_results() -> None:
    assert as_jds_string(None) is None
    assert as_jds_string((1, 2)) == "1,2"
    assert as_jds_string(2.5) == "2.5"


@given(st.lists(st.one_of(st.none(), st.integers(-(2**40), 2**40))))
def test_integer_sum_and_count_invariants(values: list[int | None]) -> None:
    present = [v for v in values if v is not None]
    assert aggregate("Count", "integer", values).value == len(values)
    assert aggregate("Sum", "integer", values).value == sum(present)
    assert aggregate("Sum", "integer", values[::-1]).value == sum(present)
    if present:
        assert aggregate("Min", "integer", values).value == min(present)
        assert aggregate("Max", "integer", values).value == max(present)
        assert aggregate("Average", "integer", values).value == pytest.approx(sum(present) / len(present))


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)))
def test_double_sum_does_not_depend_on_order(values: list[float]) -> None:
    forward = aggregate("Sum", "double", values).value
    assert forward == aggregate("Sum", "double", values[::-1]).value == math.fsum(values)


@given(st.lists(st.one_of(st.none(), st.sampled_from("abcde"))))
def test_distinct_is_the_ordered_set_of_values(values: list[str | None]) -> None:
    result = aggregate("Distinct", "string", values).value
    present = [v for v in values if v is not None]
    if not present:
        assert result is None
    else:
        assert isinstance(result, tuple)
        assert set(result) == set(present) and len(result) == len(set(present))
        assert list(result) == sorted(set(present), key=present.index)


# --- windows -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "unit", "delta"),
    [
        (5, "minutes", timedelta(minutes=5)),
        (24, "hours", timedelta(days=1)),
        (10, "days", timedelta(days=10)),
    ],
)
def test_window_is_now_minus_lookback_to_now(period: int, unit: str, delta: timedelta) -> None:
    assert window(NOW, period, unit) == (NOW - delta, NOW)  # type: ignore[arg-type]


def test_window_needs_an_aware_now_and_a_positive_period() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        window(datetime(2024, 1, 1), 1, "days")
    with pytest.raises(ValueError, match="at least 1"):
        lookback(0, "days")


def test_window_is_closed_at_both_ends_to_the_microsecond() -> None:
    span = timedelta(minutes=5)
    assert in_window(NOW, span, NOW - span)
    assert in_window(NOW, span, NOW)
    assert not in_window(NOW, span, NOW - span - RESOLUTION)
    assert not in_window(NOW, span, NOW + RESOLUTION)


SPAN = timedelta(minutes=5)


def test_next_change_is_none_without_events_in_the_window() -> None:
    assert next_change(NOW, SPAN, []) is None
    assert next_change(NOW, SPAN, [NOW - SPAN - RESOLUTION]) is None


def test_next_change_is_when_the_oldest_event_stops_counting() -> None:
    times = [NOW - timedelta(minutes=1), NOW - timedelta(minutes=3), NOW - timedelta(minutes=10)]
    change = next_change(NOW, SPAN, times)
    assert change == NOW + timedelta(minutes=2) + RESOLUTION
    assert change is not None
    oldest = NOW - timedelta(minutes=3)
    assert in_window(change - RESOLUTION, SPAN, oldest)
    assert not in_window(change, SPAN, oldest)


def test_next_change_for_an_event_exactly_on_the_edge_is_one_microsecond_later() -> None:
    assert next_change(NOW, SPAN, [NOW - SPAN]) == NOW + RESOLUTION


def test_next_change_with_a_limit_waits_for_the_oldest_counted_event() -> None:
    times = [NOW - timedelta(minutes=m) for m in (1, 2, 3, 4)]
    assert next_change(NOW, SPAN, times, limit=2) == NOW + timedelta(minutes=3) + RESOLUTION
    assert next_change(NOW, SPAN, times, limit=10) == NOW + timedelta(minutes=1) + RESOLUTION
    assert next_change(NOW, SPAN, times, limit=0) == NOW + timedelta(minutes=1) + RESOLUTION
    assert next_change(NOW, SPAN, times, limit=None) == NOW + timedelta(minutes=1) + RESOLUTION


def test_next_change_counts_an_event_stamped_in_the_future_entering() -> None:
    times = [NOW - timedelta(minutes=4), NOW + timedelta(seconds=30)]
    assert next_change(NOW, SPAN, times) == NOW + timedelta(seconds=30)
    assert next_change(NOW, SPAN, [NOW + timedelta(minutes=9)]) == NOW + timedelta(minutes=9)


@given(
    st.lists(st.integers(min_value=-600_000_000, max_value=0), max_size=20),
    st.one_of(st.none(), st.integers(min_value=1, max_value=5)),
)
def test_next_change_is_the_first_instant_the_counted_set_changes(
    offsets: list[int], limit: int | None
) -> None:
    times = [NOW + timedelta(microseconds=o) for o in offsets]

    def counted(at: datetime) -> list[datetime]:
        inside = sorted((t for t in times if in_window(at, SPAN, t)), reverse=True)
        return inside[:limit] if limit else inside

    change = next_change(NOW, SPAN, times, limit)
    if change is None:
        assert counted(NOW) == []
        return
    assert change > NOW
    assert counted(change) != counted(NOW)
    assert counted(change - RESOLUTION) == counted(NOW)


# --- the compiled forms: caster, path_reader, reducer ------------------------------------------------

_RAW_VALUES: list[object] = [
    None, True, False, 0, -7, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 4.0, 2.5, -0.0, 1e308, float("inf"),
    float("nan"), 1.7e12, "42", " 17 ", "4.0", "1e3", "abc", "", "2026-11-21T11:55:00Z",
    "2026-11-21t11:55:00.123456789+02:00", "2026-13-40T00:00:00Z", [], {"x": 1},
    datetime(2026, 11, 21, 11, 0, tzinfo=UTC), datetime(2026, 11, 21, 11, 0),
]  # fmt: skip


def _cast_outcome(cast: Callable[[object], object], raw: object) -> tuple[str, str]:
    try:
        return "value", repr(cast(raw))
    except CastError as exc:
        return "error", exc.reason


@pytest.mark.parametrize("type_", META_DATA_TYPES)
def test_caster_casts_as_cast_value_does(type_: MetaDataType) -> None:
    for raw in _RAW_VALUES:
        expected = _cast_outcome(lambda r: cast_value(r, type_), raw)
        assert _cast_outcome(caster(type_), raw) == expected, raw


def test_path_reader_reads_as_get_path_does() -> None:
    data: dict[str, object] = {
        "customer": {"address": {"city": "Oslo"}}, "items": [{"price": 3}, (4, 5)], "a.b": 1, "a": {"b": 2},
        "nil": None, "view": MappingProxyType({"k": "v"}), "list": [0, 1], "s": "text",
    }  # fmt: skip
    paths = ["customer.address.city", "customer.zip", "items.0.price", "items.1.1", "items.2", "items.x",
             "a.b", "a", "nil", "nil.x", "view.k", "list.01", "s.0", "gone", "customer.city.x"]  # fmt: skip
    for path in paths:
        assert path_reader(path)(data) == get_path(data, path), path
        assert (path_reader(path)(data) is MISSING) == (get_path(data, path) is MISSING), path


def test_path_reader_fails_as_get_path_does_on_a_digit_int_cannot_read() -> None:
    data = {"list": [1, 2]}
    for read in (path_reader("list.²"), lambda d: get_path(d, "list.²")):
        with pytest.raises(ValueError):
            read(data)


@pytest.mark.parametrize(
    ("mode", "type_"),
    [(m, t) for m in AGGREGATION_MODES for t in META_DATA_TYPES if mode_type_problem(m, t) is None],
)
def test_reducer_aggregates_as_aggregate_does(mode: AggregationMode, type_: MetaDataType) -> None:
    rng = random.Random(f"{mode}-{type_}")
    cast = caster(type_)
    castable = []
    for raw in [*_RAW_VALUES, 2**62, -(2**62), 3, 1.5, 1e-300, "b", "a"]:
        try:
            castable.append(cast(raw))
        except CastError:
            pass
    for _ in range(200):
        values: list[Typed | None] = [rng.choice([*castable, None]) for _ in range(rng.randint(0, 6))]
        present = [v for v in values if v is not None]
        expected = aggregate(mode, type_, values)
        actual = AggregateResult(mode, type_, reducer(mode, type_)(present, len(values)), len(values))
        assert actual == expected and repr(actual) == repr(expected), values


def test_reducer_refuses_a_misfit_mode() -> None:
    with pytest.raises(ValueError, match="numeric"):
        reducer("Sum", "string")
