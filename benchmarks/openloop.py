"""A constant-rate (open-loop, wrk2-style) HTTP/1.1 client, run in a process of its own.

Debian's `wrk` is closed loop (each connection waits for its answer before sending again) and has no
`-R`; wrk2 is not packaged. This client sends request k at `start + k / rate` whatever the answers do,
on up to `connections` keep-alive connections (a request finding none idle waits for one, or opens one),
and times each from its *intended* send time, so a stall counts for every request it delayed (no
coordinated omission). Plain asyncio protocols with a minimal HTTP/1.1 parser: ~50 µs of CPU per
request, 5% of a core at 1,000 requests/s.

Each request fills "{i}" in the path and body with its number: random in [0, n) (`pick: random`) or
`first + k` (`pick: sequence`, a new identity per request). Times are `time.monotonic()`, which on
Linux is CLOCK_MONOTONIC, one clock for every process of the machine, so other processes (a webhook
receiver) can compare theirs with these.

    python benchmarks/openloop.py SPEC.json OUT.json        # run by `run()` below
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import socket
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DRAIN_SECONDS = 15.0  # after the last send, how long answers are awaited before counting as timeouts


class _Connection(asyncio.Protocol):
    def __init__(self, client: _Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.current: int | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, k: int, payload: bytes) -> None:
        assert self.transport is not None
        self.current = k
        self.client.sent[k] = time.monotonic()
        self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.current is not None:
            parsed = _parse(self.buf)
            if parsed is None:
                return
            status, used, close = parsed
            del self.buf[:used]
            k, self.current = self.current, None
            self.client.finished(self, k, status, time.monotonic())
            if close:
                self.closed = True
                if self.transport is not None:
                    self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.current is not None:
            k, self.current = self.current, None
            self.client.finished(self, k, 0, time.monotonic())
        self.client.lost(self)


def _parse(buf: bytearray) -> tuple[int, int, bool] | None:
    """(status, bytes used, server closes) of one complete response at the start of `buf`, or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    length, chunked, close = 0, False, False
    for line in head[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    pos = end + 4
    if not chunked:
        return (status, pos + length, close) if len(buf) >= pos + length else None
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
        pos = line_end + 2 + size + 2
        if len(buf) < pos:
            return None
        if size == 0:
            return status, pos, close


class _Client:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.host: str = spec["host"]
        self.port: int = spec["port"]
        self.total = int(spec["rate"] * spec["duration"])
        self.ids = self._ids()
        self.intended = [0.0] * self.total
        self.sent = [0.0] * self.total
        self.done = [0.0] * self.total
        self.status = [-1] * self.total
        self.idle: deque[_Connection] = deque()
        self.waiting: deque[int] = deque()
        self.opening = 0
        self.open: set[_Connection] = set()
        self.opened = 0
        self.remaining = self.total
        self.all_done = asyncio.get_running_loop().create_future()
        headers = "".join(f"{k}: {v}\r\n" for k, v in spec.get("headers", {}).items())
        self.head = f"{{method}} {{path}} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{headers}"

    def _ids(self) -> list[int]:
        pick = self.spec["pick"]
        if pick["kind"] == "random":
            rng = random.Random(pick.get("seed", 1))
            return [rng.randrange(pick["n"]) for _ in range(self.total)]
        return [pick["first"] + k for k in range(self.total)]

    def payload(self, k: int) -> bytes:
        i = str(self.ids[k])
        path = self.spec["path"].replace("{i}", i)
        body = (self.spec.get("body") or "").replace("{i}", i).encode()
        head = self.head.format(method=self.spec["method"], path=path)
        if body or self.spec["method"] != "GET":
            head += f"Content-Length: {len(body)}\r\n"
        return (head + "\r\n").encode() + body

    def dispatch(self, k: int) -> None:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                conn.send(k, self.payload(k))
                return
        self.waiting.append(k)
        if len(self.open) + self.opening < self.spec["connections"]:
            self.opening += 1
            asyncio.get_running_loop().create_task(self.connect())

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
        except OSError:
            self.opening -= 1
            if self.waiting:  # count it against the oldest waiting request: the server refuses
                self.finished(None, self.waiting.popleft(), 0, time.monotonic())
            return
        self.opening -= 1
        self.opened += 1
        self.open.add(conn)
        self.ready(conn)

    def ready(self, conn: _Connection) -> None:
        if conn.closed:
            return
        if self.waiting:
            k = self.waiting.popleft()
            conn.send(k, self.payload(k))
        else:
            self.idle.append(conn)

    def finished(self, conn: _Connection | None, k: int, status: int, when: float) -> None:
        if self.status[k] != -1:
            return
        self.status[k] = status
        self.done[k] = when
        self.remaining -= 1
        if self.remaining == 0 and not self.all_done.done():
            self.all_done.set_result(None)
        if conn is not None and not conn.closed:
            self.ready(conn)

    def lost(self, conn: _Connection) -> None:
        self.open.discard(conn)
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)
        if self.waiting and len(self.open) + self.opening < self.spec["connections"]:
            self.opening += 1
            asyncio.get_running_loop().create_task(self.connect())

    async def run(self) -> dict[str, Any]:
        # Connections opened before the clock starts, as wrk does.
        for _ in range(min(self.spec.get("preopen", 8), self.spec["connections"])):
            self.opening += 1
            await self.connect()
        rate = float(self.spec["rate"])
        start = time.monotonic() + 0.05
        k = 0
        while k < self.total:
            now = time.monotonic()
            while k < self.total and start + k / rate <= now:
                self.intended[k] = start + k / rate
                self.dispatch(k)
                k += 1
            if k < self.total:
                await asyncio.sleep(max(0.0, start + k / rate - time.monotonic()))
        last = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.all_done), DRAIN_SECONDS)
        for k in range(self.total):
            if self.status[k] == -1:  # never answered: a timeout
                self.status[k], self.done[k] = 0, last + DRAIN_SECONDS
        for conn in list(self.open):
            if conn.transport is not None:
                conn.transport.close()
        return {
            "ids": self.ids, "intended": self.intended, "sent": self.sent, "done": self.done,
            "status": self.status, "connections": self.opened, "start": start,
        }  # fmt: skip


@dataclass
class Result:
    """One open-loop run: per request its number, intended/sent/answered times (monotonic) and status."""

    ids: list[int]
    intended: list[float]
    sent: list[float]
    done: list[float]
    status: list[int]
    connections: int
    cpu_seconds: float
    rate: float

    def latencies(self, ok: Sequence[int] = (200, 202)) -> list[float]:
        """Seconds from each answered request's intended send time to its answer."""
        return [d - i for d, i, s in zip(self.done, self.intended, self.status, strict=True) if s in ok]

    def errors(self, ok: Sequence[int] = (200, 202)) -> int:
        return sum(s not in ok for s in self.status)

    @property
    def achieved_rate(self) -> float:
        """Answers per second over the span from the first intended send to the last answer."""
        span = max(self.done) - min(self.intended)
        return len(self.status) / span if span > 0 else 0.0

    def summary(self) -> dict[str, float]:
        lat = sorted(self.latencies())
        return {
            "requests": len(self.status), "errors": self.errors(), "rate": self.achieved_rate,
            "p50_ms": percentile(lat, 50) * 1e3, "p90_ms": percentile(lat, 90) * 1e3,
            "p99_ms": percentile(lat, 99) * 1e3, "max_ms": (lat[-1] if lat else float("nan")) * 1e3,
            "connections": self.connections,
            "client_cpu_us": self.cpu_seconds / max(len(self.status), 1) * 1e6,
        }  # fmt: skip


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank) of already sorted values; NaN when there are none."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(p / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def stats_ms(values: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max (milliseconds) of seconds."""
    ordered = sorted(values)
    return {
        "p50_ms": percentile(ordered, 50) * 1e3, "p90_ms": percentile(ordered, 90) * 1e3,
        "p99_ms": percentile(ordered, 99) * 1e3,
        "max_ms": (ordered[-1] if ordered else float("nan")) * 1e3,
        "mean_ms": (statistics.fmean(ordered) if ordered else float("nan")) * 1e3,
    }  # fmt: skip


def _spec_files(spec: dict[str, Any], tmp: Path) -> tuple[Path, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    spec_file = Path(tempfile.mkstemp(dir=tmp, suffix=".spec.json")[1])
    spec_file.write_text(json.dumps(spec))
    return spec_file, spec_file.with_suffix(".out")


def _read(out_file: Path) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(out_file.read_text())
    return raw


async def start(spec: dict[str, Any], tmp: Path) -> tuple[asyncio.subprocess.Process, Path]:
    """Start a client process on `spec` (host, port, rate, duration, connections, method, path, body,
    headers, pick); returns it and the file its results go to."""
    spec_file, out_file = _spec_files(spec, tmp)
    proc = await asyncio.create_subprocess_exec(sys.executable, __file__, str(spec_file), str(out_file))
    return proc, out_file


async def finish(proc: asyncio.subprocess.Process, out_file: Path, spec: dict[str, Any]) -> Result:
    await asyncio.wait_for(proc.wait(), spec["duration"] + DRAIN_SECONDS + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"the open-loop client failed (exit {proc.returncode})")
    raw = _read(out_file)
    return Result(
        raw["ids"], raw["intended"], raw["sent"], raw["done"], raw["status"], raw["connections"],
        raw["cpu_seconds"], spec["rate"],
    )  # fmt: skip


async def run(spec: dict[str, Any], tmp: Path) -> Result:
    """Run a client process on `spec` to its end."""
    proc, out_file = await start(spec, tmp)
    try:
        return await finish(proc, out_file, spec)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def main() -> None:
    spec_file, out_file = Path(sys.argv[1]), Path(sys.argv[2])
    spec = json.loads(spec_file.read_text())
    if not (0 < spec["rate"] <= 100_000 and 0 < spec["duration"] <= 600 and spec["host"] == "127.0.0.1"):
        raise SystemExit("rate must be 1..100000/s, duration 1..600 s, host 127.0.0.1")

    async def go() -> dict[str, Any]:
        return await _Client(spec).run()

    cpu = time.process_time()
    result = asyncio.run(go())
    result["cpu_seconds"] = time.process_time() - cpu
    out_file.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
