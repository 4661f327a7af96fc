"""Batch ingest end to end, against a raw COPY of the same rows into the same table, in one run.

Each round, on two fresh copies of one database (schema, workspace, key, --preload events of other
identities, ANALYZE: the same table, indexes and rows before):

1. raw COPY: asyncpg `copy_records_to_table` of the rows the engine would store (parsed and hashed
   beforehand, outside the timing) into `events`, in one call;
2. engine: the real engine (`python -m journey_engine serve`, started on the second copy) takes the same
   events as `POST /v1/workspaces/{W}/events` with `application/cloudevents-batch+json`, in batches, from
   several concurrent clients; timed from the first request to the last 202 (each 202 follows its commit).
   Besides `events`, the engine also writes what it derives from them (persons, aliases, profiles).

It prints events/s of each, CPU time per event, and the ratio. Target: the engine >= 30% of raw COPY.

    .venv/bin/python benchmarks/ingest_batch.py [--events 100000] [--batch 500] [--clients 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import harness
import spy

from journey_engine.cloudevents import BATCH_TYPE, parse_event

# The columns `journey_engine.events.insert_events` writes, in its order.
COLUMNS = [
    "workspace_id", "id", "source", "specversion", "type", "time", "identity", "identity_raw",
    "identity_type", "previous_identity", "subject", "datacontenttype", "dataschema", "data",
    "data_base64", "extensions", "content_hash",
]  # fmt: skip


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def batches(texts: list[str], size: int) -> list[bytes]:
    return [f"[{','.join(texts[k : k + size])}]".encode() for k in range(0, len(texts), size)]


def build(args: argparse.Namespace, workspace_id: str) -> tuple[list[bytes], list[tuple[Any, ...]]]:
    """The request bodies (batches of events) and the same events as `events` rows for COPY."""
    texts = [harness.event_json(n, args.identities) for n in range(args.events)]
    bodies = batches(texts, args.batch)
    now = datetime.now(UTC)
    records = []
    for text in texts:
        e = parse_event(json.loads(text), default_region="US")
        records.append((
            workspace_id, e.id, e.source, e.specversion, e.type, e.time or now, e.identity_normalised,
            e.identity, str(e.identity_type), e.previous_identity, e.subject, e.datacontenttype,
            e.dataschema, _json(e.data), e.data_base64, _json(e.extensions or None), e.content_hash,
        ))  # fmt: skip
    return bodies, records


async def check_stored(dsn: str, expected: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        stored = await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()
    if stored != expected:
        raise RuntimeError(f"expected {expected} stored events, found {stored}")


async def raw_copy(dsn: str, records: list[tuple[Any, ...]]) -> tuple[float, harness.Cpu]:
    """COPY every record into `events` in one call: seconds taken, and CPU."""
    conn = await asyncpg.connect(dsn)
    try:
        async with harness.cpu_meter({"client": [os.getpid()]}, dsn) as cpu:
            started = time.perf_counter()
            await conn.copy_records_to_table("events", records=records, columns=COLUMNS)
            seconds = time.perf_counter() - started
    finally:
        await conn.close()
    return seconds, cpu


async def engine_run(
    args: argparse.Namespace, dsn: str, key: tuple[str, str], bodies: list[bytes], tmp: Path,
    profile: str | None = None,
) -> tuple[float, harness.Cpu]:  # fmt: skip
    """Start the engine on `dsn`, POST every body, stop it: seconds from first request to last 202, CPU.
    With `profile` (a name) and `args.py_spy`, the engine is recorded with py-spy meanwhile (spy.py)."""
    workspace_id, token = key
    port = harness.free_port()
    env = harness.engine_env(dsn, args.log_level, tmp)
    command = harness.engine_command(port, args.processes)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": BATCH_TYPE}
    async with (
        harness.run_servers(command, port, args.processes, env, tmp / "engine.log", "/readyz") as servers,
        aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=120)) as session,
    ):
        url = f"{servers.url}/v1/workspaces/{workspace_id}/events"
        out_dir = getattr(args, "py_spy", None) if profile else None
        async with (
            spy.recording(getattr(args, "py_spy_bin", None), out_dir, profile or "", servers.pids, 600),
            harness.cpu_meter({"engine": servers.pids, "client": [os.getpid()]}, dsn) as cpu,
        ):
            seconds = await post_batches(session, url, bodies, args.clients)
    return seconds, cpu


async def post_batches(session: aiohttp.ClientSession, url: str, bodies: list[bytes], clients: int) -> float:
    """POST every body from `clients` concurrent clients; each needs a 202 accepting all its events."""
    todo = iter(bodies)
    deadline = time.monotonic() + 600

    async def client() -> None:
        for body in todo:
            if time.monotonic() > deadline:
                raise TimeoutError("the engine took more than 600 s")
            async with session.post(url, data=body) as response:
                answer = await response.json()
                if response.status != 202 or answer["duplicates"]:
                    raise RuntimeError(f"unexpected answer {response.status}: {str(answer)[:500]}")

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started


@dataclass
class Round:
    copy_seconds: float
    copy_cpu: harness.Cpu
    engine_seconds: float
    engine_cpu: harness.Cpu


async def main(args: argparse.Namespace) -> int:
    rounds = []
    with tempfile.TemporaryDirectory(prefix="je-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with (
            harness.postgres(args.database_url, tmp) as server_dsn,
            harness.fresh_database(server_dsn) as template,
        ):
            key = await harness.make_key(template)
            bodies, records = build(args, key[0])
            # The start every run gets a copy of: schema, workspace, key (and the engine's defaults),
            # --preload events of other identities posted through the engine, and statistics.
            first = 10**9
            preload = [
                harness.event_json(first + n, args.identities, args.identities) for n in range(args.preload)
            ]
            await engine_run(args, template, key, batches(preload, args.batch), tmp)
            if not args.cold:
                await harness.analyze(template)
            expected = args.preload + args.events
            for _ in range(args.rounds):
                async with harness.fresh_database(server_dsn, template) as dsn:
                    copy_seconds, copy_cpu = await raw_copy(dsn, records)
                    await check_stored(dsn, expected)
                async with harness.fresh_database(server_dsn, template) as dsn:
                    engine_seconds, engine_cpu = await engine_run(args, dsn, key, bodies, tmp)
                    await check_stored(dsn, expected)
                rounds.append(Round(copy_seconds, copy_cpu, engine_seconds, engine_cpu))
    report(args, rounds)
    return 0


def report(args: argparse.Namespace, rounds: list[Round]) -> None:
    n = args.events
    where = args.database_url or "embedded PostgreSQL"
    print(
        f"batch ingest: {n:,} events over {args.identities:,} identities; engine: batches of {args.batch},"
        f" {args.clients} clients, {args.processes} process(es), log level {args.log_level}; {where};"
        f" {args.preload:,} events stored before{' (no ANALYZE)' if args.cold else ''}\n"
    )
    print(f"{'round':>5} {'raw COPY ev/s':>14} {'engine ev/s':>12} {'ratio':>6}   CPU µs/event:")
    for k, r in enumerate(rounds, 1):
        copy_rate, engine_rate = n / r.copy_seconds, n / r.engine_seconds
        print(
            f"{k:>5} {copy_rate:>14,.0f} {engine_rate:>12,.0f} {engine_rate / copy_rate:>6.2f}"
            f"   COPY: client {r.copy_cpu.per_event_us('client', n):.1f}"
            f" postgres {r.copy_cpu.per_event_us('postgres', n):.1f}"
            f"   engine: engine {r.engine_cpu.per_event_us('engine', n):.1f}"
            f" postgres {r.engine_cpu.per_event_us('postgres', n):.1f}"
            f" client {r.engine_cpu.per_event_us('client', n):.1f}"
            f"   others: {r.engine_cpu.others():.2f} cores"
        )
    copy_rate = n / statistics.median(r.copy_seconds for r in rounds)
    engine_rate = n / statistics.median(r.engine_seconds for r in rounds)
    ratio = engine_rate / copy_rate
    print(f"{'median':>5} {copy_rate:>14,.0f} {engine_rate:>12,.0f} {ratio:>6.2f}")
    print(f"\nengine / raw COPY: {ratio:.2f}   (target >= 0.30: {'met' if ratio >= 0.30 else 'MISSED'})")
    harness.check_quiet([cpu.others() for r in rounds for cpu in (r.copy_cpu, r.engine_cpu)])


def add_run_arguments(parser: argparse.ArgumentParser, rounds: str) -> None:
    """The options of a batch-ingest run through `engine_run` (also ingest_with_template.py's);
    `rounds` says what a round is."""
    parser.add_argument("--database-url", help=harness.DATABASE_URL_HELP)
    parser.add_argument("--events", type=int, default=100_000, help="events per run (default 100000)")
    parser.add_argument("--identities", type=int, default=50_000, help="distinct identities (default 50000)")
    parser.add_argument("--batch", type=int, default=500, help="events per request (default 500)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help=rounds)
    parser.add_argument(
        "--processes", type=int, default=1, help="engine processes sharing the port (reuse_port)"
    )
    parser.add_argument("--log-level", default="INFO", help="the engine's JOURNEY_LOG_LEVEL (default INFO)")
    parser.add_argument(
        "--preload", type=int, default=20_000, help="events of other identities stored before (default 20000)"
    )
    parser.add_argument("--cold", action="store_true", help="skip ANALYZE after the preload (see README.md)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_arguments(parser, "COPY + engine rounds; the median is the result")
    args = parser.parse_args()
    if not (
        0 <= args.preload <= 1_000_000
        and 1 <= args.batch <= 1000
        and 1 <= args.events <= 1_000_000
        and 1 <= args.rounds <= 10
    ):
        parser.error("--batch must be 1..1000 (the engine's limit), --events 1..1000000, --rounds 1..10")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
