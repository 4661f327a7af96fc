"""The JSON log line, the batching handler and tracking ids: pure, no database."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import time
import warnings
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from http import HTTPStatus

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from journey_engine.logs import BufferedStreamHandler, JsonFormatter
from journey_engine.middleware import TrackingIds


def reference_line(record: logging.LogRecord) -> str:
    """The line as the formatter wrote it before it was made faster: one json.dumps of a dict."""
    line: dict[object, object] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    fields = getattr(record, "fields", None)
    if isinstance(fields, dict):
        line.update(fields)
    if record.exc_info:
        line["exc"] = JsonFormatter().formatException(record.exc_info)
    return json.dumps(line, default=str, ensure_ascii=False)


def make_record(
    created: float = 1_700_000_000.5,
    fields: object = None,
    msg: str = "request",
    level: int = logging.INFO,
) -> logging.LogRecord:
    record = logging.LogRecord("journey_engine.access", level, __file__, 1, msg, (), None)
    record.created = created
    if fields is not None:
        record.fields = fields
    return record


scalars = st.one_of(
    st.text(),
    st.integers(),
    st.floats(),  # NaN and infinities included: json.dumps writes NaN, Infinity
    st.booleans(),
    st.none(),
    st.sampled_from([HTTPStatus.NOT_FOUND, datetime(2024, 5, 6, tzinfo=UTC), b"bytes", ("a", 1)]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner))
keys = st.one_of(
    st.text(), st.sampled_from(["ts", "msg", "level", "logger", "exc"]), st.integers(), st.none()
)


@given(created=st.floats(min_value=0, max_value=4e9), fields=st.dictionaries(keys, values, max_size=8))
@example(created=1_700_000_000.9999995, fields={})  # rounds up into the next second
@example(created=1_700_000_000.0000005, fields={})
@example(created=1_700_000_000.9995, fields={"path": '/a\nb"c\\d\u2028é😀', "status": 404})
def test_a_line_is_what_json_dumps_of_the_dict_wrote(created: float, fields: dict[object, object]) -> None:
    record = make_record(created, fields)
    assert JsonFormatter().format(record) == reference_line(record)


def test_the_access_line_is_one_json_object_with_its_fields() -> None:
    fields = {
        "method": "GET",
        "path": "/v1/workspaces/w1",
        "status": 200,
        "duration_ms": 1.25,
        "trackingId": "JE_1",
        "workspace": None,
    }
    line = JsonFormatter().format(make_record(1_700_000_000.123456, fields))
    assert "\n" not in line
    assert json.loads(line) == {
        "ts": "2023-11-14T22:13:20.123+00:00",
        "level": "info",
        "logger": "journey_engine.access",
        "msg": "request",
        **fields,
    }


def test_an_exception_is_logged_under_exc() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = make_record(fields={"trackingId": "JE_1"}, level=logging.ERROR)
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert line == reference_line(record)
    assert "ValueError: boom" in json.loads(line)["exc"]


def test_fields_that_are_not_a_dict_are_left_out() -> None:
    record = make_record(fields=["not", "a", "dict"])
    assert JsonFormatter().format(record) == reference_line(record)


# --- the handler ----------------------------------------------------------------------------------------


@pytest.fixture
def stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def handler(stream: io.StringIO) -> Iterator[BufferedStreamHandler]:
    """A handler whose timer never fires within a test: lines wait until something writes them."""
    made = BufferedStreamHandler(stream, interval=60, capacity=3)
    made.setFormatter(JsonFormatter())
    yield made
    made.close()


def messages(stream: io.StringIO) -> list[str]:
    return [json.loads(line)["msg"] for line in stream.getvalue().splitlines()]


def test_info_lines_wait_until_flushed(handler: BufferedStreamHandler, stream: io.StringIO) -> None:
    handler.handle(make_record(msg="one"))
    handler.handle(make_record(msg="two"))
    assert stream.getvalue() == ""
    handler.flush()
    assert messages(stream) == ["one", "two"]


def test_a_warning_writes_at_once_after_the_waiting_lines(
    handler: BufferedStreamHandler, stream: io.StringIO
) -> None:
    handler.handle(make_record(msg="one"))
    handler.handle(make_record(msg="careful", level=logging.WARNING))
    assert messages(stream) == ["one", "careful"]


def test_a_full_batch_writes_at_once(handler: BufferedStreamHandler, stream: io.StringIO) -> None:
    for n in range(4):
        handler.handle(make_record(msg=str(n)))
    assert messages(stream) == ["0", "1", "2"]


def test_closing_writes_the_waiting_lines_and_later_lines_at_once(
    handler: BufferedStreamHandler, stream: io.StringIO
) -> None:
    handler.handle(make_record(msg="before"))
    handler.close()
    assert messages(stream) == ["before"]
    handler.handle(make_record(msg="after"))
    assert messages(stream) == ["before", "after"]


def test_logging_shutdown_at_exit_writes_the_waiting_lines(
    handler: BufferedStreamHandler, stream: io.StringIO
) -> None:
    handler.handle(make_record(msg="last words"))
    logging.shutdown([weakref.ref(handler)])  # what atexit runs, on this handler alone
    assert messages(stream) == ["last words"]


def test_a_waiting_line_is_written_after_the_interval_without_a_flush(stream: io.StringIO) -> None:
    handler = BufferedStreamHandler(stream, interval=0.05)
    handler.setFormatter(JsonFormatter())
    try:
        for msg in ("one", "two"):
            handler.handle(make_record(msg=msg))
            deadline = time.monotonic() + 5
            while msg not in messages(stream) and time.monotonic() < deadline:
                time.sleep(0.01)
        assert messages(stream) == ["one", "two"]
    finally:
        handler.close()


# --- tracking ids ---------------------------------------------------------------------------------------


def test_tracking_ids_are_unique_and_start_with_je() -> None:
    first, second = TrackingIds(), TrackingIds()
    ids = [first() for _ in range(10_000)] + [second() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("JE_") for i in ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_process_makes_other_tracking_ids() -> None:
    ids = TrackingIds()
    read, write = os.pipe()
    with warnings.catch_warnings():  # 3.12+ warns about forking a process that has threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: send its first ids and leave at once
        os.write(write, " ".join(ids() for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    parent = [ids() for _ in range(3)]
    assert len(child) == 3
    assert not set(child) & set(parent)
