"""Canonical JSON, content hashes, jsonb text and body decoding give exactly what json gave before orjson.

Content hashes are stored and compared with those of retries, so the canonical JSON must stay, byte for byte,
what ``json.dumps`` wrote; decoding must give what ``json.loads`` gave, errors included (a guard for any
faster decoder). Each test compares with the definitions as they were (copied here), on tricky and random
values.
"""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journey_engine.cloudevents import (
    PLAIN_DEPTH,
    EventValidationError,
    canonical_json,
    content_hash,
    is_plain_json,
    load_json,
    parse_batch,
    parse_structured,
)
from journey_engine.errors import Problem

REGION = "US"


# --- the definitions before orjson ---------------------------------------------------------------------


def json_canonical(value: Any) -> bytes:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_load(body: bytes | bytearray | memoryview | str) -> Any:
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
    except ValueError as exc:
        reason = f"not valid JSON ({exc})"
    raise EventValidationError([Problem("body", reason)])


# --- helpers -------------------------------------------------------------------------------------------


def outcome(write: Any, value: Any) -> tuple[str, Any]:
    """What writing ``value`` gives: its text, or the type of exception raised."""
    try:
        return "text", write(value)
    except Exception as exc:
        return "raises", type(exc)


def load_outcome(load: Any, body: Any) -> tuple[str, Any]:
    """What decoding ``body`` gives: the value (its repr shows types and key order), or the problems."""
    try:
        return "value", repr(load(body))
    except EventValidationError as exc:
        return "problems", [str(p) for p in exc.problems]


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


class Level(enum.IntEnum):
    ONE = 1


class Tag(str):
    pass


class Backwards(str):
    def __lt__(self, other: object) -> bool:
        return str.__gt__(self, other)  # type: ignore[operator]


class Record(dict[str, Any]):
    pass


TRICKY_FLOATS = [
    0.0, -0.0, 0.1, 1.5, 100.0, 123456789.0, 1e-4, 1e-5, 1e-7, 1e15, 1.5e15, 1e16, 1e22, 1e23, 5e-324,
    2.2250738585072014e-308, 1.7976931348623157e308, float("nan"), float("inf"), float("-inf"),
]  # fmt: skip
TRICKY_INTS = [
    0, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30, -(10**30),
    True, False,
]  # fmt: skip
TRICKY_STRINGS = [
    "", "plain", "é", "日本語", "😀", "\U0010ffff", "\u2028\u2029", "\x7f", "".join(map(chr, range(32))),
    '"\\/', "\ufeff", "\uffff", "\ue000", "a\x00b", "\ud800", "x\udfffy", "\ud83d\ude00",
]  # fmt: skip
TRICKY_KEYS = {
    "b": 1, "a": 2, "é": 3, "z": 4, "😀": 5, "\uffff": 6, "A": 7, "_": 8, "aa": 9, "a\x00": 10, "": 11,
    "\U0010ffff": 12, "\ue000": 13, "\x7f": 14, "Z": 15, "ß": 16, "\u2028": 17,
}  # fmt: skip
CASES: list[Any] = [
    *TRICKY_FLOATS, *TRICKY_INTS, *TRICKY_STRINGS, None, TRICKY_KEYS,
    [], {}, [[]], {"a": {}}, {"a": [1, {"b": None, "a": [True, "x"]}], "": []},
    {"data": {"amount": 12.5, "n": 1}}, {"\ud800": 1}, {"big": [2**64]},
    nested(PLAIN_DEPTH), nested(PLAIN_DEPTH + 1), nested(254), nested(255), nested(300), nested(5000),
    (1, 2), {"t": (1, "a")}, {1: "a"}, {1: "a", "b": 2}, {None: 1}, {Level.ONE: "x"},
    Level.ONE, {"level": Level.ONE}, Tag("x"), {Tag("b"): 1, "a": 2}, {Backwards("a"): 1, Backwards("b"): 2},
    Record(b=1, a=2), {"id": uuid.UUID(int=1)}, {"at": datetime(2025, 1, 1, tzinfo=UTC)},
    {"n": Decimal("1.5")}, b"bytes", {"o": object()}, {"s": {1, 2}},
]  # fmt: skip


# --- canonical JSON and the content hash ---------------------------------------------------------------


@pytest.mark.parametrize("value", CASES)
def test_canonical_json_is_what_json_dumps_wrote(value: Any) -> None:
    assert outcome(canonical_json, value) == outcome(json_canonical, value)


@pytest.mark.parametrize("value", CASES)
def test_content_hash_is_the_sha256_json_dumps_gave(value: Any) -> None:
    members = {"id": "1", "data": value, "subject": None}
    given_ = {k: v for k, v in members.items() if v is not None}
    assert outcome(lambda m: content_hash(m)[0], members) == outcome(
        lambda m: hashlib.sha256(json_canonical(m)).digest(), given_
    )


def test_plain_json_is_exact_json_types_without_floats_nested_boundedly() -> None:
    assert is_plain_json({"a": [1, "x", None, True, {"b": []}], "c": 2**70})
    assert is_plain_json(nested(PLAIN_DEPTH)) and not is_plain_json(nested(PLAIN_DEPTH + 1))
    for value in [1.0, [0.5], {"a": {"b": -0.0}}, (1,), {1: "a"}, Tag("x"), {"a": Level.ONE}, Record()]:
        assert not is_plain_json(value)


# Characters where writers may differ: escapes, separators, BOM, non-BMP, lone surrogates (which
# hypothesis' characters() never gives).
_chars = st.characters() | st.sampled_from('\x00\x08\x1f\x7f"\\/\u2028\u2029\ufeff\ue000\ud800\udfff😀')
_texts = st.text(_chars, max_size=8)
_ints = st.integers() | st.sampled_from(TRICKY_INTS) | st.integers(-(2**64) - 2, 2**64 + 2)
plain_values = st.recursive(
    st.none() | st.booleans() | _ints | _texts,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_texts, children, max_size=5),
    max_leaves=25,
)
json_values = st.recursive(
    st.none() | st.booleans() | _ints | _texts | st.floats() | st.sampled_from(TRICKY_FLOATS),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_texts, children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=500, derandomize=True)
@given(plain_values | json_values)
def test_canonical_json_matches_json_dumps_for_random_values(value: Any) -> None:
    assert outcome(canonical_json, value) == outcome(json_canonical, value)


# --- decoding bodies -----------------------------------------------------------------------------------


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


TRICKY_BODIES: list[Any] = [
    b'{"a": 1, "a": 2}', b'{"b":1,"a":2,"b":3}', b'"\\ud800"', b'"\\udc00\\ud800"', b'"\\ud83d\\ude00"',
    b'"\\ud83d\\u0041"', b'"\\u2028\\u0000\\/"', "\u2028".encode(), b'"\x7f"', b'"\x1f"', b"[NaN]",
    b"[-Infinity]", b"[Infinity]", b"[1e400]", b"[-1e400]", b"[123456789012345678901234567890]",
    b"[18446744073709551615]", b"[18446744073709551616]", b"[-9223372036854775808]",
    b"[-9223372036854775809]", b"[1.0]", b"[-0]", b"[-0.0]", b"[1E5]", b"[0.1, 1e-7, 5e-324]",
    b'\xef\xbb\xbf{"a":1}', b"\xef\xbb\xbf", b" {} ", b"\t[]\r\n", b"\x0c[]", b"\xc2\xa0[]", b"[]\x0b",
    b"[1,]", b'{"a":1}x', b"0123", b"", b" \n", b"\xff", b'"\xed\xa0\x80"', b'"\xc0\xaf"', b"[true,null]",
    b'{"\xc3\xa9":{"":[{}]}}', deep(PLAIN_DEPTH), deep(PLAIN_DEPTH + 1), deep(500), deep(1024), deep(1025),
    b"[" * 100_000, "\ufeff{}", '"\ud800"', '{"a": [1, "é"]}', bytearray(b'{"a":1}'), memoryview(b"[1,2]"),
]  # fmt: skip


@pytest.mark.parametrize("body", TRICKY_BODIES)
def test_body_decodes_as_json_loads_decoded_it(body: Any) -> None:
    assert load_outcome(load_json, body) == load_outcome(json_load, body)


@settings(max_examples=300, derandomize=True)
@given(json_values, st.booleans(), st.sampled_from([None, 0, 2]), st.booleans())
def test_random_body_decodes_as_json_loads_decoded_it(
    value: Any, ascii: bool, indent: Any, bom: bool
) -> None:
    text = json.dumps(value, ensure_ascii=ascii, indent=indent)
    body = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass")
    assert load_outcome(load_json, body) == load_outcome(json_load, body)


def test_batch_hashes_are_those_of_the_json_definition() -> None:
    events = [
        {"data": {"n": 1, "tags": ["a"], "é": "ü"}},
        {"data": {"amount": 12.5, "big": 2**70}, "previously": "x"},
        {"data": {"big": 123456789012345678901234567890}},
        {"data": "\u2028\x00", "subject": None},
        {"data": {"amount": 1e-7}},
    ]
    base = {
        "specversion": "1.0", "type": "t", "source": "/s", "identity": "c-1", "identitytype": "customerId",
        "time": "2025-06-01T12:00:00.000Z",
    }  # fmt: skip
    body = json.dumps(
        [{"id": str(i), **base, **e} for i, e in enumerate(events)], ensure_ascii=False
    ).encode()
    expected = [
        hashlib.sha256(json_canonical({k: v for k, v in obj.items() if v is not None})).digest()
        for obj in json.loads(body)
    ]
    assert [e.content_hash for e in parse_batch(body, default_region=REGION)] == expected
    assert [parse_structured(json.dumps(obj).encode(), default_region=REGION).content_hash
            for obj in json.loads(body)] == expected  # fmt: skip
