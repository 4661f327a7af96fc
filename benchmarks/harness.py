"""What the benchmarks share: a PostgreSQL server, fresh databases, servers run as subprocesses, the
events the ingest benchmarks send, and CPU accounting (from /proc, and pg_stat_activity for PostgreSQL).

Everything listens on and talks to 127.0.0.1 only, and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import asyncpg

from journey_engine import workspaces
from journey_engine.db import init_connection, migrate
from journey_engine.embedded import EmbeddedPostgres, with_database

HOST = "127.0.0.1"
DATABASE_URL_HELP = (
    "a database on the PostgreSQL server to use, e.g. postgresql://postgres@127.0.0.1:5432/test (a fresh "
    "database is created on that server and dropped after); default: an embedded PostgreSQL in a temp folder"
)

# One event per identity type. "{n}" is the event's unique number, "{i}" the identity's number, "{p}" a
# phone line built from it: the batch benchmark fills them in Python, the wrk script (events.lua) in Lua.
_IDENTITIES = [
    ("email", "user{i}@example.com"),
    ("phone", "+1226{p}"),
    ("customerId", "C-{i}"),
    ("temporaryId", "tmp-{i}"),
]
TEMPLATES = [
    json.dumps(
        {
            "id": "{n}",
            "specversion": "1.0",
            "type": "task:connected",
            "source": "bench/ingest",
            "time": "2025-06-01T12:00:00.000Z",
            "identity": identity,
            "identitytype": kind,
            "datacontenttype": "application/json",
            "data": {
                "taskId": "{n}",
                "channelType": "telephony",
                "queueId": "queue-7",
                "origin": "+12263762555",
                "durationSeconds": 95,
                "tags": ["vip", "renewal"],
            },
        },
        separators=(",", ":"),
    )
    for kind, identity in _IDENTITIES
]


def event_json(n: int, identities: int, first_identity: int = 0) -> str:
    """Event number `n` as JSON text, of identity number `first_identity + n % identities` (as events.lua)."""
    i = first_identity + n % identities
    text = TEMPLATES[n % len(TEMPLATES)]
    return text.replace("{n}", f"bench-{n}").replace("{i}", str(i)).replace("{p}", str(2_000_000 + i))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def postgres(database_url: str | None, tmp: Path) -> AsyncIterator[str]:
    """DSN of a database on the server to benchmark against: the given one, or an embedded server."""
    if database_url:
        yield database_url
        return
    server = EmbeddedPostgres(tmp / "pg", cleanup="delete")
    await asyncio.to_thread(server.start)
    try:
        yield server.admin_dsn()
    finally:
        await asyncio.to_thread(server.stop)


@contextlib.asynccontextmanager
async def scratch_database(database_url: str | None) -> AsyncIterator[tuple[Path, str]]:
    """A temporary folder and a fresh migrated database (on the server `database_url` names, or an
    embedded one in that folder), both gone when the block ends."""
    with tempfile.TemporaryDirectory(prefix="je-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with postgres(database_url, tmp) as server_dsn, fresh_database(server_dsn) as dsn:
            yield tmp, dsn


@contextlib.asynccontextmanager
async def fresh_database(server_dsn: str, template: str | None = None) -> AsyncIterator[str]:
    """A new database on the server of `server_dsn`, migrated (or a copy of the database `template`,
    whose DSN it is, followed by a checkpoint: PostgreSQL 15+ writes the copy to the WAL, and the run
    measured next would otherwise pay for flushing it); dropped afterwards."""
    name = f"je_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        if template:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{urlsplit(template).path[1:]}"')
            with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
                await admin.execute("CHECKPOINT")
        else:
            await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = with_database(server_dsn, name)
        if not template:
            conn = await asyncpg.connect(dsn)
            try:
                await migrate(conn)
            finally:
                await conn.close()
        yield dsn
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def make_key(dsn: str) -> tuple[str, str]:
    """A workspace and an `events:write` key: (workspace id, token)."""
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)  # the JSON codecs the engine's pool has
    try:
        found = await workspaces.create_workspace(conn, "bench")
        key = await workspaces.create_key(conn, found.workspace_id, ["events:write"], "benchmark")
    finally:
        await conn.close()
    return found.workspace_id, key.token


async def vacuum(dsn: str) -> None:
    """VACUUM (ANALYZE) and CHECKPOINT after a bulk load: the plans as `analyze` says, and no autovacuum of
    the loaded rows left to run meanwhile (on 1M new rows it takes a core for tens of seconds, invisible
    in the CPU columns, and shows as latency spikes of 50-100 ms)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM (ANALYZE)")
        await conn.execute("CHECKPOINT")  # the load's dirty pages written now, not during the measurement
    finally:
        await conn.close()


async def analyze(dsn: str) -> None:
    """ANALYZE the database, as autovacuum does on a live one within a minute or so.

    Without it, the engine's prepared statements keep the plans made while the tables were empty
    (sequential scans), and a benchmark on a fresh database measures that instead (README.md).
    """
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def engine_command(port: int, processes: int) -> list[str]:
    """One engine process; run_servers starts `processes` of them, which then share the port
    (JOURNEY_REUSE_PORT, as `serve --processes N` does), so each one's CPU can be measured apart."""
    return [sys.executable, "-m", "journey_engine", "serve", "--port", str(port)]


def engine_env(dsn: str, log_level: str, tmp: Path, **extra: str) -> dict[str, str]:
    """The engine's environment for a run: its database, log level, a data folder in `tmp`, `extra`."""
    return {"DATABASE_URL": dsn, "JOURNEY_LOG_LEVEL": log_level, "JOURNEY_DATA_DIR": str(tmp / "x"), **extra}


@dataclass
class Servers:
    """Server subprocesses listening on one port."""

    url: str
    procs: list[asyncio.subprocess.Process]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]


@contextlib.asynccontextmanager
async def run_servers(
    command: Sequence[str], port: int, processes: int, env: dict[str, str], log: Path, ready_path: str
) -> AsyncIterator[Servers]:
    """Start `processes` copies of `command`, wait until all listen and `ready_path` answers 200."""
    procs: list[asyncio.subprocess.Process] = []
    with log.open("ab") as out:
        try:
            for _ in range(processes):
                shared = {"JOURNEY_REUSE_PORT": "true"} if processes > 1 else {}
                proc = await asyncio.create_subprocess_exec(
                    *command, env={**os.environ, **shared, **env}, stdout=out, stderr=out
                )
                procs.append(proc)
                await _wait_listening(proc, port, log)
            await _wait_ready(f"http://{HOST}:{port}{ready_path}", log)
            yield Servers(f"http://{HOST}:{port}", procs)
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def _wait_listening(proc: asyncio.subprocess.Process, port: int, log: Path) -> None:
    """Wait until `proc` holds a socket listening on `port` (the engine listens once its pool is up)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.returncode is None:
        if _listening(proc.pid, port):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"server {proc.pid} did not start listening on {port}; its log ends:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def _listening(pid: int, port: int) -> bool:
    suffix = f":{port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(suffix) and fields[3] == "0A":  # 0A: LISTEN
            inodes.add(f"socket:[{fields[9]}]")
    with contextlib.suppress(OSError):
        return any(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir())
    return False


async def _wait_ready(url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200; the servers' log ends:\n{_tail(log)}")


def _ticks(pid: int) -> int:
    """CPU ticks (user + system) of a process and its reaped children; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(f) for f in fields[11:15])


def _machine_busy() -> int:
    """CPU ticks the whole machine spent not idle, over all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return sum(values) - values[3] - values[4]  # minus idle and iowait


async def _server_pids(conn: asyncpg.Connection) -> set[int]:
    """The PostgreSQL server's backends and background processes (not other servers on the machine)."""
    return {r["pid"] for r in await conn.fetch("SELECT pid FROM pg_stat_activity")}


@dataclass
class Cpu:
    """CPU seconds spent during a measured stretch by each group of processes, and by the whole machine."""

    seconds: dict[str, float]
    busy: float = 0.0
    elapsed: float = 0.0

    def per_event_us(self, group: str, events: int) -> float:
        return self.seconds[group] / max(events, 1) * 1e6

    def cores(self, group: str) -> float:
        return self.seconds[group] / max(self.elapsed, 1e-9)

    def others(self, *extra_seconds: float) -> float:
        """Cores used by everything outside the groups: the kernel's own work, and other programs
        (a test suite running meanwhile makes the figures unreliable)."""
        return (self.busy - sum(self.seconds.values()) - sum(extra_seconds)) / max(self.elapsed, 1e-9)


def check_quiet(others: Sequence[float], limit: float = 0.25) -> None:
    """Warn when programs outside the benchmark took CPU meanwhile (`Cpu.others`): the figures are low."""
    if max(others) > limit:
        print(
            f"\nwarning: other programs used up to {max(others):.2f} cores during the measurements;"
            " rerun on a quiet machine for figures worth comparing",
            flush=True,
        )


@contextlib.asynccontextmanager
async def cpu_meter(groups: dict[str, Sequence[int]], database_url: str) -> AsyncIterator[Cpu]:
    """Measure the CPU time of each group of pids over the block, plus a group "postgres": the
    processes of the server behind `database_url` (backends that connect meanwhile count too)."""
    hz = os.sysconf("SC_CLK_TCK")
    conn = await asyncpg.connect(database_url)
    try:
        members = {name: set(pids) for name, pids in groups.items()}
        members["postgres"] = await _server_pids(conn)
        before = {pid: _ticks(pid) for pids in members.values() for pid in pids}
        busy, started = _machine_busy(), time.monotonic()
        result = Cpu({})
        yield result
        result.busy = (_machine_busy() - busy) / hz
        result.elapsed = time.monotonic() - started
        members["postgres"] |= await _server_pids(conn)
        for name, pids in members.items():
            result.seconds[name] = sum(max(_ticks(pid) - before.get(pid, 0), 0) for pid in pids) / hz
    finally:
        await conn.close()
