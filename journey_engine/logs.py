"""Structured logging: one JSON object per line on stderr.

Fields passed as `extra={"fields": {...}}` are merged into the line. Nothing here ever sees a token:
the access log records the path without its query string.

The engine writes a line per request, so lines are made cheaply: the formatter writes the JSON of the
usual values (str, int, float, bool, None) itself and hands only the rest to json.dumps, and the handler
gathers lines and writes them together, at most `FLUSH_INTERVAL` seconds after the first (warnings and
errors at once, and everything at exit: `logging.shutdown` flushes and closes the handlers).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import threading
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import TextIO

FLUSH_INTERVAL = 0.25
_BASE_KEYS = frozenset({"ts", "level", "logger", "msg", "exc"})
_MILLIS = tuple(f".{ms:03d}+00:00" for ms in range(1000))


class JsonFormatter(logging.Formatter):
    """The line `json.dumps(line, default=str, ensure_ascii=False)` would write, built faster."""

    def __init__(self) -> None:
        super().__init__()
        self._second = (-1, "")  # the last second seen and its text, `YYYY-MM-DDTHH:MM:SS`

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if not isinstance(fields, dict):
            fields = {}
        if not _BASE_KEYS.isdisjoint(fields):
            return self._format_dict(record, fields)
        parts = [
            f'{{"ts": "{self._timestamp(record.created)}", '
            f'"level": {encode_basestring(record.levelname.lower())}, '
            f'"logger": {encode_basestring(record.name)}, '
            f'"msg": {encode_basestring(record.getMessage())}'
        ]
        for key, value in fields.items():
            if type(key) is not str:  # json.dumps turns or refuses such keys: let it
                return self._format_dict(record, fields)
            text = encode_basestring(value) if type(value) is str else _json_value(value)
            parts.append(f", {encode_basestring(key)}: {text}")
        if record.exc_info:
            parts.append(f', "exc": {encode_basestring(self.formatException(record.exc_info))}')
        parts.append("}")
        return "".join(parts)

    def _format_dict(self, record: logging.LogRecord, fields: dict[object, object]) -> str:
        line: dict[object, object] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(fields)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)

    def _timestamp(self, created: float) -> str:
        """`datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")`, the date and time
        of day made once a second."""
        second = int(created)
        micros = round((created - second) * 1e6)  # rounded like fromtimestamp: half to even
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        cached, text = self._second
        if second != cached:
            text = datetime.fromtimestamp(second, UTC).isoformat()[:19]
            self._second = (second, text)
        return text + _MILLIS[micros // 1000]


def _json_value(value: object) -> str:
    """`json.dumps(value, default=str, ensure_ascii=False)`, written here for the usual types."""
    if type(value) is str:
        return encode_basestring(value)
    if type(value) is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    return json.dumps(value, default=str, ensure_ascii=False)


class BufferedStreamHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler that writes its lines in batches, from a thread that wakes when a line waits.

    A line waits at most `interval` seconds; a WARNING or worse, the `capacity`-th waiting line, `flush()`
    and `close()` write at once.
    """

    def __init__(self, stream: TextIO, interval: float = FLUSH_INTERVAL, capacity: int = 256) -> None:
        super().__init__(stream)
        self.interval = interval
        self.capacity = capacity
        self._lines: list[str] = []
        self._waiting = threading.Event()
        self._stopping = threading.Event()
        self._flusher: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:  # called holding self.lock
        try:
            self._lines.append(self.format(record))
            if (
                record.levelno >= logging.WARNING
                or len(self._lines) >= self.capacity
                or self._stopping.is_set()
            ):
                self.flush()
            elif len(self._lines) == 1:
                self._wake_flusher()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.acquire()
        try:
            if self._lines:
                text = self.terminator.join(self._lines) + self.terminator
                self._lines.clear()
                self._waiting.clear()
                self.stream.write(text)
            super().flush()
        finally:
            self.release()

    def close(self) -> None:
        self._stopping.set()
        self._waiting.set()
        try:
            self.flush()
        finally:
            super().close()

    def _wake_flusher(self) -> None:
        if self._flusher is None or not self._flusher.is_alive():  # not alive: in a forked child
            self._flusher = threading.Thread(target=self._flush_when_waited, name="log-flush", daemon=True)
            self._flusher.start()
        self._waiting.set()

    def _flush_when_waited(self) -> None:
        while not self._stopping.is_set():
            self._waiting.wait()
            self._stopping.wait(self.interval)
            # A failing stream is stderr itself: there is nowhere left to report it.
            with contextlib.suppress(Exception):
                self.flush()


def configure(level: str = "INFO") -> None:
    handler = BufferedStreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's own access log prints the request line with its query string (tokens may ride there).
    logging.getLogger("aiohttp.access").disabled = True
    # pgserver narrates every pg_ctl call at INFO.
    logging.getLogger("pgserver").setLevel(max(logging.WARNING, root.level))
    # APScheduler logs every run of every job at INFO (the sweep runs four times a second).
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
