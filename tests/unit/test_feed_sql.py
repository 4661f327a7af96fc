"""Building the feed's SQL, its cursor and its rendering: pure, no database."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from journey_engine.errors import BadRequest
from journey_engine.feed import (
    FIELDS,
    Cursor,
    Filters,
    cloudevent,
    keyset_query,
    native_event,
    page_query,
    where_clause,
)

W = "0123456789abcdef01234567"


def error_of(call: Any) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        call()
    return caught.value


def test_no_filters_add_no_conditions() -> None:
    params: list[object] = [W]
    assert where_clause(Filters(), params) == ""
    assert params == [W]


def test_identity_aliases_are_one_array_parameter_on_the_indexed_column() -> None:
    params: list[object] = [W]
    sql = where_clause(Filters(aliases=("+12263762555", "12263762555")), params)
    assert sql == " AND e.identity = ANY($2::text[])"
    assert params == [W, ["+12263762555", "12263762555"]]


def test_filter_identity_compares_the_value_as_sent_and_identity_type_ignores_case() -> None:
    params: list[object] = [W]
    sql = where_clause(Filters(filter="identity=='(226) 376-2555';identityType==PHONE"), params)
    assert sql == " AND ((e.identity_raw = $2::text) AND (lower(e.identity_type) = $3::text))"
    assert params == [W, "(226) 376-2555", "phone"]


def test_lower_casing_keeps_wildcards_and_escapes_of_identity_type_patterns() -> None:
    params: list[object] = [W]
    sql = where_clause(Filters(filter=r"identitytype=='CUST*\*'"), params)
    assert "lower(e.identity_type) LIKE $2::text" in sql
    assert params == [W, "cust%*"]


def test_filter_data_and_identity_combine_with_numbered_parameters() -> None:
    params: list[object] = [W]
    sql = where_clause(Filters(("x",), "type=='Payment'", "category=='Water'"), params)
    assert sql == (
        " AND e.identity = ANY($2::text[]) AND (e.type = $3::text) AND ((e.data #>> $4::text[]) = $5::text)"
    )
    assert params == [W, ["x"], "Payment", ["category"], "Water"]


def test_time_filters_compare_instants() -> None:
    params: list[object] = [W]
    assert where_clause(Filters(filter="time>2024-05-01"), params) == " AND (e.time > $2::timestamptz)"
    assert params[1] == datetime(2024, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (Filters(filter="type=='Payment')"), "filter: unexpected ')' at position 15"),
        (Filters(filter="(type==a"), "filter: unclosed '(' at position 0"),
        (Filters(filter="data.x==1"), "filter: unknown field 'data.x'; allowed fields: "),
        (Filters(data="a..b==1"), "data: invalid selector 'a..b'"),
        (Filters(data=""), "data: empty expression at position 0"),
    ],
)
def test_bad_rsql_is_a_400_naming_the_parameter_and_the_position(filters: Filters, message: str) -> None:
    error = error_of(lambda: where_clause(filters, [W]))
    assert error.message.startswith(message)
    assert [p.field for p in error.problems] == [message.split(":")[0]]


def test_user_text_never_reaches_the_sql() -> None:
    nasty = "x'; DROP TABLE events; --"
    sql, params = page_query(
        W,
        Filters((nasty,), f'type=="{nasty}"', f'k=="{nasty}"'),
        sort_by="time", descending=True, page=0, page_size=10,
    )  # fmt: skip
    assert "DROP" not in sql
    assert params.count(nasty) == 2
    assert [nasty] in params


def test_jds_page_sorts_newest_first_and_skips_whole_pages() -> None:
    sql, params = page_query(W, Filters(), sort_by="time", descending=True, page=3, page_size=25)
    assert "ORDER BY e.time DESC, e.seq DESC\nLIMIT $2 OFFSET $3" in sql
    assert params == [W, 25, 75]


def test_sorting_by_another_field_breaks_ties_by_time_and_seq_in_the_same_direction() -> None:
    sql, _ = page_query(W, Filters(), sort_by="identityType", descending=False, page=0, page_size=1)
    assert "ORDER BY lower(e.identity_type) ASC, e.time ASC, e.seq ASC" in sql


def test_every_filter_field_can_sort_and_nothing_else_can() -> None:
    for field in FIELDS:
        page_query(W, Filters(), sort_by=field, descending=True, page=0, page_size=1)
    error = error_of(lambda: page_query(W, Filters(), sort_by="seq", descending=True, page=0, page_size=1))
    assert error.message.startswith("sortBy: unknown field 'seq'; use one of id, source, type")


def test_keyset_page_continues_strictly_after_the_cursor_in_either_direction() -> None:
    cursor = Cursor(datetime(2024, 5, 1, tzinfo=UTC), 42)
    sql, params = keyset_query(W, Filters(("a",)), cursor=cursor, descending=True, limit=10)
    assert "AND (e.time, e.seq) < ($3::timestamptz, $4::bigint)" in sql
    assert "ORDER BY e.time DESC, e.seq DESC" in sql
    assert params == [W, ["a"], cursor.time, 42, 11, 0]
    sql, _ = keyset_query(W, Filters(), cursor=cursor, descending=False, limit=10)
    assert "AND (e.time, e.seq) > ($2::timestamptz, $3::bigint)" in sql
    assert "ORDER BY e.time ASC, e.seq ASC" in sql
    sql, params = keyset_query(W, Filters(), cursor=None, descending=True, limit=10)
    assert "e.seq) <" not in sql
    assert params == [W, 11, 0]


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_cursor_round_trips_exactly_through_url_safe_text(moment: datetime) -> None:
    cursor = Cursor(moment, 2**62)
    text = cursor.encode()
    assert re.fullmatch(r"[A-Za-z0-9_-]+", text)
    assert Cursor.decode(text) == cursor


@pytest.mark.parametrize(
    "text",
    [
        "",
        "!!!",
        "e30",  # {}
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b'{"t":"2024-05-01T00:00:00","s":1}').decode(),  # naive time
        base64.urlsafe_b64encode(b'{"t":"2024-05-01T00:00:00Z","s":true}').decode(),
        base64.urlsafe_b64encode(b'{"t":5,"s":1}').decode(),
        base64.urlsafe_b64encode(b'["t","s"]').decode(),
        base64.urlsafe_b64encode(b'{"t":"2024-05-01T00:00:00Z","s":9223372036854775808}').decode(),
        base64.urlsafe_b64encode(b"[" * 100_000).decode(),
        "ÿÿÿÿ",
    ],
    ids=lambda text: text[:24],
)
def test_a_cursor_the_feed_did_not_give_out_is_a_400_naming_it(text: str) -> None:
    error = error_of(lambda: Cursor.decode(text))
    assert error.message == "cursor: not a cursor this feed gave out"


ROW: dict[str, Any] = {
    "seq": 7,
    "received_at": datetime(2024, 5, 1, 10, 0, 1, tzinfo=UTC),
    "id": "e1",
    "source": "ivr",
    "specversion": "1.0",
    "type": "Payment",
    "time": datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
    "identity_raw": "(226) 376-2555",
    "identity_type": "phone",
    "previous_identity": None,
    "subject": None,
    "datacontenttype": None,
    "dataschema": None,
    "data": {"category": "Water"},
    "data_base64": None,
    "extensions": {"seq": "mine", "channel": "voice"},
}


def test_events_render_as_cloudevents_with_the_identity_as_sent() -> None:
    assert cloudevent(ROW) == {
        "id": "e1",
        "specversion": "1.0",
        "type": "Payment",
        "source": "ivr",
        "time": "2024-05-01T10:00:00.000Z",
        "identity": "(226) 376-2555",
        "identitytype": "phone",
        "datacontenttype": "application/json",
        "seq": "mine",
        "channel": "voice",
        "data": {"category": "Water"},
    }


def test_native_items_keep_the_engines_fields_apart_from_the_events_extensions() -> None:
    item = native_event(ROW)
    assert item == {"seq": 7, "receivedAt": "2024-05-01T10:00:01.000Z", "event": cloudevent(ROW)}
    assert item["event"]["seq"] == "mine"
