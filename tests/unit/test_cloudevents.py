"""CloudEvents 1.0 + JDS validation, the HTTP content modes, and rendering: pure, no database."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from journey_engine.cloudevents import (
    EventValidationError,
    ParsedEvent,
    canonical_json,
    detect_mode,
    format_time,
    is_plain_json,
    parse_batch,
    parse_binary,
    parse_event,
    parse_http,
    parse_structured,
    to_cloudevent,
)
from journey_engine.errors import BadRequest, Problem, UnsupportedMediaType
from journey_engine.identities import IdentityType
from profiles.jsonb import reads_back_unchanged

REGION = "US"


def event(**changes: Any) -> dict[str, Any]:
    """A valid JDS event (the shape of the anchors' sample), with changes; a value of ... removes a member."""
    base: dict[str, Any] = {
        "id": "9ab65fdf-9643-417f-9974-ad72cae0e10f",
        "specversion": "1.0",
        "type": "Payment",
        "source": "/com/cisco/wxcc/123",
        "time": "2022-08-15T22:29:43.768Z",
        "identity": "+12263762555",
        "identitytype": "phone",
        "datacontenttype": "application/json",
        "data": {"category": "Water", "status": "overdue"},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def problems_of(obj: Any, **kwargs: Any) -> list[Problem]:
    with pytest.raises(EventValidationError) as caught:
        parse_event(obj, default_region=REGION, **kwargs)
    return caught.value.problems


def reasons(obj: Any) -> list[str]:
    return [str(p) for p in problems_of(obj)]


# --- a valid event -------------------------------------------------------------------------------------


def test_valid_event_gives_every_attribute() -> None:
    parsed = parse_event(event(subject="s", dataschema="https://example.com/schema"), default_region=REGION)
    assert parsed.id == "9ab65fdf-9643-417f-9974-ad72cae0e10f"
    assert parsed.source == "/com/cisco/wxcc/123"
    assert parsed.specversion == "1.0"
    assert parsed.type == "Payment"
    assert parsed.time == datetime(2022, 8, 15, 22, 29, 43, 768000, tzinfo=UTC)
    assert parsed.identity == "+12263762555"
    assert parsed.identity_type is IdentityType.PHONE
    assert parsed.identity_normalised == "+12263762555"
    assert parsed.previous_identity is None
    assert parsed.previous_identity_normalised is None
    assert parsed.previous_identity_candidates == ()
    assert parsed.subject == "s"
    assert parsed.datacontenttype == "application/json"
    assert parsed.dataschema == "https://example.com/schema"
    assert parsed.data == {"category": "Water", "status": "overdue"}
    assert parsed.data_base64 is None
    assert parsed.extensions == {}
    assert len(parsed.content_hash) == 32


def test_parsed_event_is_frozen() -> None:
    parsed = parse_event(event(), default_region=REGION)
    with pytest.raises(AttributeError):
        parsed.id = "other"  # type: ignore[misc]


def test_identity_is_kept_raw_and_normalised_under_its_type() -> None:
    parsed = parse_event(event(identity="(226) 376-2555", identitytype="PHONE"), default_region=REGION)
    assert parsed.identity == "(226) 376-2555"
    assert parsed.identity_normalised == "+12263762555"
    assert parsed.identity_type is IdentityType.PHONE


def test_identity_type_is_canonicalised() -> None:
    parsed = parse_event(event(identity="C-42", identitytype="customerid"), default_region=REGION)
    assert parsed.identity_type is IdentityType.CUSTOMER_ID
    assert parsed.identity_normalised == "C-42"


def test_email_identity_is_casefolded_for_matching_only() -> None:
    parsed = parse_event(event(identity="Jes@Gmail.com", identitytype="email"), default_region=REGION)
    assert (parsed.identity, parsed.identity_normalised) == ("Jes@Gmail.com", "jes@gmail.com")


def test_default_region_reads_national_phone_numbers() -> None:
    parsed = parse_event(event(identity="020 7183 8750"), default_region="GB")
    assert parsed.identity_normalised == "+442071838750"


def test_data_and_datacontenttype_are_optional_as_in_cloudevents() -> None:
    parsed = parse_event(event(data=..., datacontenttype=...), default_region=REGION)
    assert parsed.data is None and parsed.datacontenttype is None


@pytest.mark.parametrize("data", ["plain text", 42, [1, 2], True, {"nested": {"deep": [None, 1.5]}}])
def test_data_may_be_any_json_value(data: Any) -> None:
    assert parse_event(event(data=data), default_region=REGION).data == data


def test_null_members_are_treated_as_absent() -> None:
    parsed = parse_event(event(time=None, subject=None, data=None, legacy=None), default_region=REGION)
    assert parsed.time is None and parsed.subject is None and parsed.data is None
    assert parsed.extensions == {}


def test_source_may_contain_spaces_as_jds_flows_send_them() -> None:
    assert parse_event(event(source="Voice Contact"), default_region=REGION).source == "Voice Contact"


def test_source_may_be_a_full_url() -> None:
    url = "https://shop.example.com/pay?x=1&y=%20#top"
    assert parse_event(event(source=url), default_region=REGION).source == url


# --- required attributes -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["id", "source", "specversion", "type", "identity", "identitytype"])
def test_missing_required_attribute_is_reported_by_name(name: str) -> None:
    assert reasons(event(**{name: ...})) == [f"{name}: required"]


@pytest.mark.parametrize("name", ["id", "source", "type", "identity"])
@pytest.mark.parametrize("value", ["", "   ", 7, ["x"], {"a": 1}, True])
def test_required_string_that_is_empty_or_not_a_string_is_an_error(name: str, value: Any) -> None:
    assert reasons(event(**{name: value})) == [f"{name}: must be a non-empty string"]


def test_missing_attribute_sent_in_camel_case_gets_a_hint() -> None:
    obj = event(identitytype=..., identityType="phone")
    assert reasons(obj) == ['identitytype: required (found "identityType": attribute names are lower-case)']


def test_every_problem_is_reported_not_just_the_first() -> None:
    obj = {"specversion": "0.3", "identitytype": "mobile", "time": "yesterday"}
    assert reasons(obj) == [
        "id: required",
        "type: required",
        "source: required",
        'specversion: must be "1.0", got "0.3"',
        "identitytype: must be one of phone, email, customerId, temporaryId, socialId",
        "identity: required",
        "time: not an RFC 3339 timestamp with a UTC offset",
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [("0.3", '"0.3"'), ("1.0.2", '"1.0.2"'), (1.0, "1.0"), ("", '""'), (["1.0"], '["1.0"]')],
)
def test_specversion_must_be_exactly_1_0(value: Any, shown: str) -> None:
    assert reasons(event(specversion=value)) == [f'specversion: must be "1.0", got {shown}']


def test_unknown_identity_type_is_reported_and_identity_left_unchecked() -> None:
    assert reasons(event(identitytype="mobile", identity="not a number")) == [
        "identitytype: must be one of phone, email, customerId, temporaryId, socialId"
    ]


def test_invalid_phone_identity_is_reported_with_the_value() -> None:
    assert reasons(event(identity="12")) == ["identity: '12' is not a valid phone number"]


def test_invalid_email_identity_is_reported_with_the_value() -> None:
    assert reasons(event(identity="jes", identitytype="email")) == [
        "identity: 'jes' is not a valid email address"
    ]


def test_identity_longer_than_512_characters_is_an_error() -> None:
    assert reasons(event(identity="c" * 513, identitytype="customerId")) == [
        "identity: must be at most 512 characters"
    ]


@pytest.mark.parametrize(("name", "limit"), [("id", 512), ("type", 512), ("subject", 512), ("source", 2048)])
def test_attribute_lengths_are_capped(name: str, limit: int) -> None:
    assert parse_event(event(**{name: "x" * limit}), default_region=REGION)
    assert reasons(event(**{name: "x" * (limit + 1)})) == [f"{name}: must be at most {limit} characters"]


@pytest.mark.parametrize("source", ["a\nb", "tab\there", "nul\x00", "del\x7f"])
def test_source_with_control_characters_is_an_error(source: str) -> None:
    assert reasons(event(source=source)) == [
        "source: must be a URI-reference (control characters are not allowed)"
    ]


@pytest.mark.parametrize("obj", [[], "event", 3, None, True])
def test_non_object_gives_one_problem_for_the_whole_event(obj: Any) -> None:
    [problem] = problems_of(obj)
    assert problem.field == "event"
    assert problem.reason.startswith("must be a JSON object, got ")


def test_problems_carry_the_index_given() -> None:
    [problem] = problems_of(event(id=...), index=4)
    assert problem == Problem("id", "required", 4)
    assert str(problem) == "[4].id: required"


def test_event_validation_error_is_a_400_bad_request_summarising_the_first_problem() -> None:
    with pytest.raises(EventValidationError) as caught:
        parse_event(event(id=..., type=...), default_region=REGION)
    assert isinstance(caught.value, BadRequest) and caught.value.status == 400
    assert caught.value.message == "id: required (and 1 more problems)"


# --- time ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2022-08-15T22:29:43.768Z", datetime(2022, 8, 15, 22, 29, 43, 768000, tzinfo=UTC)),
        ("2022-08-15T22:29:43Z", datetime(2022, 8, 15, 22, 29, 43, tzinfo=UTC)),
        ("2022-08-15t22:29:43z", datetime(2022, 8, 15, 22, 29, 43, tzinfo=UTC)),
        ("2022-08-15 22:29:43+00:00", datetime(2022, 8, 15, 22, 29, 43, tzinfo=UTC)),
        ("2022-08-16T04:59:43.5+05:30", datetime(2022, 8, 15, 23, 29, 43, 500000, tzinfo=UTC)),
        ("2022-08-15T17:29:43-05:00", datetime(2022, 8, 15, 22, 29, 43, tzinfo=UTC)),
        ("2022-08-15T22:29:43.123456789Z", datetime(2022, 8, 15, 22, 29, 43, 123456, tzinfo=UTC)),
    ],
)
def test_time_with_an_offset_is_parsed_to_an_aware_datetime(value: str, expected: datetime) -> None:
    parsed = parse_event(event(time=value), default_region=REGION)
    assert parsed.time == expected
    assert parsed.time is not None and parsed.time.tzinfo is not None


def test_time_keeps_the_offset_it_was_given() -> None:
    parsed = parse_event(event(time="2022-08-16T04:59:43+05:30"), default_region=REGION)
    assert parsed.time is not None
    assert parsed.time.utcoffset() == timedelta(hours=5, minutes=30)


@pytest.mark.parametrize(
    "value",
    [
        "2022-08-15T22:29:43",
        "2022-08-15T22:29:43.768",
        "2022-08-15",
        "yesterday",
        "",
        "1660602583",
        1660602583,
        "2022-08-15T22:29Z",
        "20220815T222943Z",
        "2022-13-15T22:29:43Z",
        "2022-08-15T24:29:43Z",
        "2022-08-15T22:29:60Z",
        "2022-08-15T22:29:43+0000",
        "2022-08-15T22:29:43+24:00",
        "2022-08-15T22:29:43 Z",
    ],
)
def test_time_without_offset_or_not_rfc3339_is_an_error(value: Any) -> None:
    assert reasons(event(time=value)) == ["time: not an RFC 3339 timestamp with a UTC offset"]


@pytest.mark.parametrize("value", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+01:00"])
def test_a_time_whose_utc_falls_outside_years_1_to_9999_is_an_error(value: str) -> None:
    assert reasons(event(time=value)) == ["time: must fall within the years 0001-9999 in UTC"]
    assert parse_event(event(time="9999-12-31T23:00:00+05:00"), default_region=REGION).time


def test_absent_time_is_none_for_the_caller_to_stamp() -> None:
    assert parse_event(event(time=...), default_region=REGION).time is None


# --- previousidentity ----------------------------------------------------------------------------------


def test_previous_identity_is_kept_raw_with_its_alias_candidates() -> None:
    parsed = parse_event(event(previousidentity=" Sdeo@Cisco.com"), default_region=REGION)
    assert parsed.previous_identity == " Sdeo@Cisco.com"
    assert parsed.previous_identity_normalised == "sdeo@cisco.com"
    assert parsed.previous_identity_candidates == ("sdeo@cisco.com", "Sdeo@Cisco.com")


def test_previous_identity_as_temporary_id_matches_as_sent() -> None:
    parsed = parse_event(event(previousidentity="2342s-sdsd-342345"), default_region=REGION)
    assert parsed.previous_identity_normalised == "2342s-sdsd-342345"


@pytest.mark.parametrize("marker", ["none", "None", ""])
def test_previous_identity_none_marker_links_nothing(marker: str) -> None:
    parsed = parse_event(event(previousidentity=marker), default_region=REGION)
    assert parsed.previous_identity == marker
    assert parsed.previous_identity_normalised is None
    assert parsed.previous_identity_candidates == ()


@pytest.mark.parametrize(
    ("value", "reason"), [(5, "must be a string"), ("x" * 513, "must be at most 512 characters")]
)
def test_bad_previous_identity_is_an_error(value: Any, reason: str) -> None:
    assert reasons(event(previousidentity=value)) == [f"previousidentity: {reason}"]


# --- optional attributes -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["subject", "datacontenttype", "dataschema"])
def test_optional_attribute_that_is_not_a_string_is_an_error(name: str) -> None:
    assert reasons(event(**{name: 5})) == [f"{name}: must be a string"]


@pytest.mark.parametrize("value", ["not a uri", "/relative/path", "", "http://a b"])
def test_dataschema_must_be_an_absolute_uri(value: str) -> None:
    assert reasons(event(dataschema=value)) == ["dataschema: must be an absolute URI"]


def test_data_base64_is_kept_as_text() -> None:
    payload = base64.b64encode(b"\x00\xffbinary").decode()
    parsed = parse_event(event(data=..., data_base64=payload), default_region=REGION)
    assert parsed.data_base64 == payload and parsed.data is None


def test_data_and_data_base64_together_are_an_error() -> None:
    assert reasons(event(data_base64="AAAA")) == ["data_base64: must not be present together with data"]


@pytest.mark.parametrize("value", ["not base64!", "AAA", 5])
def test_data_base64_must_be_base64_text(value: Any) -> None:
    expected = (
        "data_base64: must be a string" if value == 5 else "data_base64: must be base64 text (RFC 4648)"
    )
    assert reasons(event(data=..., data_base64=value)) == [expected]


def test_python_values_that_are_not_json_are_an_error() -> None:
    assert reasons(event(data={"x": float("nan")})) == [
        "event: is not JSON (NaN, Infinity or a non-JSON value)"
    ]
    assert reasons(event(data={"x": object()})) == ["event: is not JSON (NaN, Infinity or a non-JSON value)"]


# --- extensions ----------------------------------------------------------------------------------------


def test_unknown_members_are_kept_as_extensions_whatever_their_name() -> None:
    extras = {
        "previously": "+12263762554",
        "traceparent": "00-abc",
        "agentId": "A1",
        "Weird Name": [1, {"a": 2}],
    }
    parsed = parse_event(event(**extras), default_region=REGION)
    assert parsed.extensions == extras


def test_known_attributes_never_land_in_extensions() -> None:
    parsed = parse_event(event(previousidentity="t-1", subject="s"), default_region=REGION)
    assert parsed.extensions == {}


def test_camel_case_twin_of_a_present_attribute_is_an_extension() -> None:
    parsed = parse_event(event(identityType="email"), default_region=REGION)
    assert parsed.identity_type is IdentityType.PHONE
    assert parsed.extensions == {"identityType": "email"}


# --- content hash --------------------------------------------------------------------------------------


def test_content_hash_is_sha256_of_sorted_compact_json() -> None:
    obj = event(previously="x")
    expected = hashlib.sha256(
        json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).digest()
    assert parse_event(obj, default_region=REGION).content_hash == expected


def test_content_hash_is_stable_across_key_order() -> None:
    obj = event(data={"b": 1, "a": {"y": 2, "x": 3}}, legacy="v")
    reordered = json.loads(json.dumps(dict(reversed(list(obj.items())))))
    reordered["data"] = {"a": {"x": 3, "y": 2}, "b": 1}
    first = parse_event(obj, default_region=REGION).content_hash
    assert parse_event(reordered, default_region=REGION).content_hash == first


@pytest.mark.parametrize(
    "change",
    [
        {"data": {"category": "Gas", "status": "overdue"}},
        {"time": "2022-08-15T22:29:43.769Z"},
        {"time": "2022-08-15T22:29:43.768+00:00"},
        {"time": ...},
        {"type": "Other"},
        {"legacy": 1},
        {"identity": "226-376-2555"},
        {"source": "/other"},
        {"previousidentity": "t-1"},
    ],
)
def test_content_hash_differs_for_different_content(change: dict[str, Any]) -> None:
    base = parse_event(event(), default_region=REGION).content_hash
    assert parse_event(event(**change), default_region=REGION).content_hash != base


def test_content_hash_ignores_null_members() -> None:
    base = parse_event(event(), default_region=REGION).content_hash
    assert parse_event(event(subject=None, legacy=None), default_region=REGION).content_hash == base


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values, st.randoms())
def test_content_hash_is_independent_of_member_order(data: Any, rnd: Any) -> None:
    obj = event(data=data)
    items = list(obj.items())
    rnd.shuffle(items)
    assert (
        parse_event(dict(items), default_region=REGION).content_hash
        == parse_event(obj, default_region=REGION).content_hash
    )


@given(json_values)
def test_content_hash_survives_a_json_round_trip(data: Any) -> None:
    obj = event(data=data)
    again = json.loads(json.dumps(obj))
    assert (
        parse_event(again, default_region=REGION).content_hash
        == parse_event(obj, default_region=REGION).content_hash
    )


@given(json_values)
def test_an_event_is_plain_exactly_when_its_members_are_plain_json_and_then_its_data_reads_back(
    data: Any,
) -> None:
    parsed = parse_event(event(data=data), default_region=REGION)
    assert parsed.plain == is_plain_json(data)  # the other members of `event()` are strings
    if parsed.plain:
        assert reads_back_unchanged(parsed.data)


def test_a_float_anywhere_in_an_event_makes_it_not_plain() -> None:
    assert parse_event(event(data={"a": [1, "x", None]}), default_region=REGION).plain
    assert not parse_event(event(data={"a": [1, 2.5]}), default_region=REGION).plain
    assert not parse_event(event(data={"a": 1}, extension1=0.5), default_region=REGION).plain


def test_canonical_json_is_compact_sorted_utf8() -> None:
    assert canonical_json({"b": "é", "a": [1, 2]}) == '{"a":[1,2],"b":"é"}'.encode()


# --- structured mode -----------------------------------------------------------------------------------


def test_structured_body_bytes_give_one_event() -> None:
    parsed = parse_structured(json.dumps(event()).encode(), default_region=REGION)
    assert isinstance(parsed, ParsedEvent) and parsed.type == "Payment"


def test_structured_accepts_a_decoded_object_and_a_utf8_bom() -> None:
    assert parse_structured(event(), default_region=REGION).id == event()["id"]
    assert parse_structured(b"\xef\xbb\xbf" + json.dumps(event()).encode(), default_region=REGION)


def test_structured_bad_json_names_line_and_column() -> None:
    with pytest.raises(EventValidationError) as caught:
        parse_structured(b'{\n  "id": "x",\n  "type": }', default_region=REGION)
    assert [str(p) for p in caught.value.problems] == ["body: not valid JSON (line 3 column 11)"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "body: empty; expected JSON"),
        (b"  \n", "body: empty; expected JSON"),
        (b'{"a": NaN}', "body: not valid JSON (NaN is not JSON)"),
        (b'{"a": -Infinity}', "body: not valid JSON (-Infinity is not JSON)"),
        (b'{"a": "\xff"}', "body: not valid UTF-8 (byte 7)"),
        (b"[" * 100_000, "body: not valid JSON (nested too deeply)"),
    ],
)
def test_structured_unreadable_body_is_one_body_problem(body: bytes, reason: str) -> None:
    with pytest.raises(EventValidationError) as caught:
        parse_structured(body, default_region=REGION)
    assert [str(p) for p in caught.value.problems] == [reason]


def test_structured_array_points_to_batch_mode() -> None:
    with pytest.raises(EventValidationError) as caught:
        parse_structured(json.dumps([event()]).encode(), default_region=REGION)
    assert caught.value.problems[0].reason.endswith(
        "send several events as application/cloudevents-batch+json"
    )


def test_structured_non_object_is_a_body_problem() -> None:
    with pytest.raises(EventValidationError) as caught:
        parse_structured(b'"text"', default_region=REGION)
    assert [str(p) for p in caught.value.problems] == ["body: must be a JSON object, got a string"]


# --- batch mode ----------------------------------------------------------------------------------------


def test_batch_gives_every_event_in_order() -> None:
    body = json.dumps([event(id="a"), event(id="b"), event(id="c")]).encode()
    assert [e.id for e in parse_batch(body, default_region=REGION)] == ["a", "b", "c"]


def test_batch_reports_every_bad_event_with_its_index() -> None:
    body = json.dumps([event(), event(id=...), event(), "nope", event(specversion="0.3", identity="12")])
    with pytest.raises(EventValidationError) as caught:
        parse_batch(body.encode(), default_region=REGION)
    assert [str(p) for p in caught.value.problems] == [
        "[1].id: required",
        "[3].event: must be a JSON object, got a string",
        '[4].specversion: must be "1.0", got "0.3"',
        "[4].identity: '12' is not a valid phone number",
    ]


def test_empty_batch_is_a_problem() -> None:
    with pytest.raises(EventValidationError) as caught:
        parse_batch(b"[]", default_region=REGION)
    assert [str(p) for p in caught.value.problems] == ["body: must contain at least one event"]


def test_batch_over_the_cap_is_a_problem() -> None:
    with pytest.raises(EventValidationError) as caught:
        parse_batch([event()] * 4, default_region=REGION, max_events=3)
    assert [str(p) for p in caught.value.problems] == [
        "body: has 4 events; at most 3 are accepted in one request"
    ]
    assert len(parse_batch([event()] * 3, default_region=REGION, max_events=3)) == 3


def test_batch_body_that_is_an_object_is_a_problem() -> None:
    with pytest.raises(EventValidationError) as caught:
        parse_batch(json.dumps(event()).encode(), default_region=REGION)
    assert [str(p) for p in caught.value.problems] == ["body: must be a JSON array of events, got an object"]


def test_batch_bad_json_names_line_and_column() -> None:
    with pytest.raises(EventValidationError) as caught:
        parse_batch(b"[{},", default_region=REGION)
    assert [str(p) for p in caught.value.problems] == ["body: not valid JSON (line 1 column 5)"]


def test_batch_problem_list_is_capped() -> None:
    with pytest.raises(EventValidationError) as caught:
        parse_batch([{}] * 50, default_region=REGION)
    problems = caught.value.problems
    assert len(problems) == 101
    assert str(problems[-1]) == "body: 200 more problems not listed"


# --- binary mode ---------------------------------------------------------------------------------------


def binary_headers(**changes: str) -> dict[str, str]:
    headers = {
        "ce-id": "b-1",
        "ce-specversion": "1.0",
        "ce-type": "Payment",
        "ce-source": "/flows/ivr",
        "ce-identity": "+12263762555",
        "ce-identitytype": "phone",
        "Content-Type": "application/json",
    }
    headers.update(changes)
    return headers


def test_binary_attributes_come_from_ce_headers_and_data_from_the_body() -> None:
    parsed = parse_binary(
        binary_headers(), b'{"category": "Water"}', "application/json", default_region=REGION
    )
    assert (parsed.id, parsed.type, parsed.source) == ("b-1", "Payment", "/flows/ivr")
    assert parsed.identity_normalised == "+12263762555"
    assert parsed.data == {"category": "Water"}
    assert parsed.datacontenttype == "application/json"


def test_binary_header_names_are_case_insensitive() -> None:
    headers = {k.upper() if k.startswith("ce-") else k: v for k, v in binary_headers().items()}
    headers["Ce-TraceParent"] = "00-abc"
    parsed = parse_binary(headers, b"{}", "application/json", default_region=REGION)
    assert parsed.id == "b-1"
    assert parsed.extensions == {"traceparent": "00-abc"}


def test_binary_header_values_are_percent_decoded_as_utf8() -> None:
    headers = binary_headers(
        **{
            "ce-source": "Voice%20Contact",
            "ce-type": "Caf%C3%A9%20visit",
            "ce-subject": "100%25",
            "ce-identity": "%2B12263762555",
            "ce-time": "2022-08-15T22%3A29%3A43Z",
        }
    )
    parsed = parse_binary(headers, b"", None, default_region=REGION)
    assert parsed.source == "Voice Contact"
    assert parsed.type == "Café visit"
    assert parsed.subject == "100%"
    assert parsed.identity == "+12263762555"
    assert parsed.time == datetime(2022, 8, 15, 22, 29, 43, tzinfo=UTC)


def test_binary_plus_in_a_header_stays_a_plus() -> None:
    parsed = parse_binary(binary_headers(**{"ce-identity": "+12263762555"}), b"", None, default_region=REGION)
    assert parsed.identity == "+12263762555"


def test_binary_invalid_percent_encoding_is_a_header_problem() -> None:
    with pytest.raises(EventValidationError) as caught:
        parse_binary(
            binary_headers(**{"ce-subject": "%FF%FE"}), b"{}", "application/json", default_region=REGION
        )
    assert [str(p) for p in caught.value.problems] == ["ce-subject: not valid percent-encoded UTF-8"]


def test_binary_missing_attribute_is_reported_by_attribute_name() -> None:
    headers = binary_headers()
    del headers["ce-identitytype"]
    with pytest.raises(EventValidationError) as caught:
        parse_binary(headers, b"{}", "application/json", default_region=REGION)
    assert [str(p) for p in caught.value.problems] == ["identitytype: required"]


def test_binary_text_body_is_kept_as_text() -> None:
    parsed = parse_binary(
        binary_headers(), "héllo".encode(), "text/plain; charset=utf-8", default_region=REGION
    )
    assert parsed.data == "héllo"
    assert parsed.datacontenttype == "text/plain; charset=utf-8"


def test_binary_non_utf8_body_is_kept_as_base64() -> None:
    body = b"\x89PNG\r\n\x1a\n\xff"
    parsed = parse_binary(binary_headers(), body, "image/png", default_region=REGION)
    assert parsed.data is None
    assert parsed.data_base64 is not None and base64.b64decode(parsed.data_base64) == body


@pytest.mark.parametrize(
    "ctype", ["application/json", "application/vnd.acme+json; charset=utf-8", "text/json"]
)
def test_binary_json_media_types_decode_the_body(ctype: str) -> None:
    assert parse_binary(binary_headers(), b'{"a": [1]}', ctype, default_region=REGION).data == {"a": [1]}


def test_binary_bad_json_body_is_reported_with_header_problems() -> None:
    with pytest.raises(EventValidationError) as caught:
        parse_binary(
            binary_headers(**{"ce-specversion": "0.3"}), b'{"a": }', "application/json", default_region=REGION
        )
    assert [str(p) for p in caught.value.problems] == [
        "body: not valid JSON (line 1 column 7)",
        'specversion: must be "1.0", got "0.3"',
    ]


def test_binary_empty_body_means_no_data() -> None:
    parsed = parse_binary(binary_headers(), b"", "application/json", default_region=REGION)
    assert parsed.data is None and parsed.data_base64 is None


def test_binary_ce_data_headers_are_errors_and_ce_datacontenttype_is_ignored() -> None:
    headers = binary_headers(**{"ce-data": "x", "ce-datacontenttype": "text/plain"})
    with pytest.raises(EventValidationError) as caught:
        parse_binary(headers, b"{}", "application/json", default_region=REGION)
    assert [str(p) for p in caught.value.problems] == [
        "ce-data: not allowed in binary mode: the body is the data"
    ]
    del headers["ce-data"]
    assert parse_binary(headers, b"{}", "application/json", default_region=REGION).datacontenttype == (
        "application/json"
    )


def test_binary_and_structured_forms_of_one_event_agree() -> None:
    binary = parse_binary(
        binary_headers(), b'{"category": "Water"}', "application/json", default_region=REGION
    )
    structured = parse_structured(
        {
            "id": "b-1",
            "specversion": "1.0",
            "type": "Payment",
            "source": "/flows/ivr",
            "identity": "+12263762555",
            "identitytype": "phone",
            "datacontenttype": "application/json",
            "data": {"category": "Water"},
        },
        default_region=REGION,
    )
    assert binary == structured


# --- content mode detection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ctype", "headers", "mode"),
    [
        ("application/cloudevents+json", {}, "structured"),
        ("application/cloudevents+json; charset=UTF-8", {}, "structured"),
        ("Application/JSON", {}, "structured"),
        ("application/json; charset=utf-8", {}, "structured"),
        ("application/cloudevents-batch+json", {}, "batch"),
        ("application/json", {"Ce-SpecVersion": "1.0"}, "binary"),
        ("text/plain", {"ce-specversion": "1.0"}, "binary"),
        (None, {"ce-specversion": "1.0"}, "binary"),
        ("application/cloudevents+json", {"ce-specversion": "1.0"}, "structured"),
    ],
)
def test_detect_mode(ctype: str | None, headers: dict[str, str], mode: str) -> None:
    assert detect_mode(ctype, headers) == mode


@pytest.mark.parametrize("ctype", ["text/plain", "application/xml", "application/cloudevents+xml", None, ""])
def test_unsupported_content_type_is_a_415_naming_it(ctype: str | None) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        detect_mode(ctype, {"ce-id": "x"})
    assert caught.value.status == 415
    assert repr(ctype or "(none)") in caught.value.message


def test_json_in_another_charset_is_a_415() -> None:
    with pytest.raises(UnsupportedMediaType, match="must be UTF-8"):
        detect_mode("application/json; charset=latin-1", {})


def test_parse_http_dispatches_on_the_content_mode() -> None:
    one = json.dumps(event()).encode()
    assert len(parse_http("application/json", {}, one, default_region=REGION, max_events=10)) == 1
    many = json.dumps([event(id="1"), event(id="2")]).encode()
    batch = parse_http("application/cloudevents-batch+json", {}, many, default_region=REGION, max_events=10)
    assert [e.id for e in batch] == ["1", "2"]
    binary = parse_http("application/json", binary_headers(), b"{}", default_region=REGION, max_events=10)
    assert binary[0].id == "b-1"


# --- rendering -----------------------------------------------------------------------------------------


def test_to_cloudevent_renders_the_jds_feed_shape() -> None:
    rendered = to_cloudevent(
        id="e1",
        source="/com/cisco/wxcc/123",
        type="Payment",
        time=datetime(2022, 8, 15, 22, 29, 43, 768000, UTC),
        identity="sjohndeo@cisco.com",
        identity_type=IdentityType.EMAIL,
        previous_identity="sdeo@cisco.com",
        datacontenttype="application/json",
        data={"agentId": "A"},
        extensions={"previously": "x"},
    )
    assert rendered == {
        "id": "e1",
        "specversion": "1.0",
        "type": "Payment",
        "source": "/com/cisco/wxcc/123",
        "time": "2022-08-15T22:29:43.768Z",
        "identity": "sjohndeo@cisco.com",
        "identitytype": "email",
        "previousidentity": "sdeo@cisco.com",
        "datacontenttype": "application/json",
        "previously": "x",
        "data": {"agentId": "A"},
    }
    assert list(rendered)[:7] == ["id", "specversion", "type", "source", "time", "identity", "identitytype"]
    assert list(rendered)[-1] == "data"


def test_to_cloudevent_leaves_out_absent_members_and_implies_json() -> None:
    rendered = to_cloudevent(
        id="e",
        source="s",
        type="t",
        time=datetime(2024, 1, 1, tzinfo=UTC),
        identity="i",
        identity_type="temporaryId",
        data=[1],
    )
    assert rendered["datacontenttype"] == "application/json"
    assert "previousidentity" not in rendered and "subject" not in rendered and "dataschema" not in rendered
    bare = to_cloudevent(
        id="e",
        source="s",
        type="t",
        time=datetime(2024, 1, 1, tzinfo=UTC),
        identity="i",
        identity_type="temporaryId",
    )
    assert "data" not in bare and "datacontenttype" not in bare


def test_to_cloudevent_extensions_never_overwrite_attributes() -> None:
    rendered = to_cloudevent(
        id="e",
        source="s",
        type="t",
        time=datetime(2024, 1, 1, tzinfo=UTC),
        identity="i",
        identity_type="email",
        extensions={"id": "forged", "identitytype": "phone", "data": 1, "keep": True},
    )
    assert rendered["id"] == "e" and rendered["identitytype"] == "email" and "data" not in rendered
    assert rendered["keep"] is True


def test_to_cloudevent_renders_data_base64() -> None:
    rendered = to_cloudevent(
        id="e",
        source="s",
        type="t",
        time=datetime(2024, 1, 1, tzinfo=UTC),
        identity="i",
        identity_type="email",
        datacontenttype="image/png",
        data_base64="AAEC",
    )
    assert rendered["data_base64"] == "AAEC" and "data" not in rendered


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2022, 8, 15, 22, 29, 43, 768000, tzinfo=UTC), "2022-08-15T22:29:43.768Z"),
        (datetime(2022, 8, 15, 22, 29, 43, tzinfo=UTC), "2022-08-15T22:29:43.000Z"),
        (datetime(2022, 8, 15, 22, 29, 43, 123456, tzinfo=UTC), "2022-08-15T22:29:43.123456Z"),
        (
            datetime(2022, 8, 16, 4, 59, 43, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            "2022-08-15T23:29:43.000Z",
        ),
    ],
)
def test_format_time_is_utc_with_z(value: datetime, text: str) -> None:
    assert format_time(value) == text


def test_format_time_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2024, 1, 1))


def test_parsed_event_round_trips_through_to_cloudevent() -> None:
    original = event(previousidentity="t-1", subject="s", legacy={"a": 1})
    parsed = parse_event(original, default_region=REGION)
    assert parsed.time is not None
    rendered = to_cloudevent(
        id=parsed.id,
        source=parsed.source,
        type=parsed.type,
        time=parsed.time,
        identity=parsed.identity,
        identity_type=parsed.identity_type,
        previous_identity=parsed.previous_identity,
        subject=parsed.subject,
        datacontenttype=parsed.datacontenttype,
        dataschema=parsed.dataschema,
        data=parsed.data,
        data_base64=parsed.data_base64,
        extensions=parsed.extensions,
    )
    assert rendered == original
    assert parse_event(rendered, default_region=REGION).content_hash == parsed.content_hash


def test_binary_raw_non_ascii_header_value_is_a_header_problem() -> None:
    with pytest.raises(EventValidationError) as caught:
        parse_binary(binary_headers(**{"ce-subject": "café"}), b"", None, default_region=REGION)
    assert [str(p) for p in caught.value.problems] == ["ce-subject: not valid percent-encoded UTF-8"]


def test_member_names_that_are_not_strings_are_an_error() -> None:
    assert reasons({**event(), 1: "x"}) == ["event: member names must be strings"]
