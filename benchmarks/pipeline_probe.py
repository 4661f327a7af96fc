"""The ingest write path alone, with and without a 5-attribute template, batch for batch: where the
template's cost goes, measured so that the machine's drift cancels out.

`ingest_with_template.py` measures the rate through HTTP, whose rounds move by up to 30% on this VM
as its speed drifts over minutes. This probe takes HTTP and the batcher out: one process runs
`pipeline.IngestPipeline` (the engine's write, in the engine's event loop and garbage-collector
settings) on two databases made alike (schema, workspace, key, `--preload` events of other identities,
ANALYZE), one with the template of `ingest_with_template.py` and one without, sending each batch of
the same events to both, one after the other, the order flipped every batch. It times each write with
the engine's CPU (`time.process_time`) and its backend's (from `/proc`, so only for a server on this
machine: the embedded one by default), and prints them per event, apart for the first half of the
events (each creates its person) and the second (each finds its person, as the HTTP benchmark's).

    .venv/bin/python benchmarks/pipeline_probe.py [--events 100000] [--batch 500] [--preload 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import bulk
import harness
import ingest_with_template

from journey_engine import cli
from journey_engine.cloudevents import ParsedEvent, parse_batch
from journey_engine.db import create_pool
from journey_engine.events import EventRow
from journey_engine.pipeline import IngestPipeline

REGION = "US"


def parsed_batches(texts: list[str], size: int) -> list[list[ParsedEvent]]:
    return [
        parse_batch(f"[{','.join(texts[k : k + size])}]", default_region=REGION)
        for k in range(0, len(texts), size)
    ]


async def write(
    pool: asyncpg.Pool, pipeline: IngestPipeline, workspace_id: str, events: list[ParsedEvent]
) -> None:
    now = datetime.now(UTC)  # as the engine stamps events sent without a time
    rows = [EventRow(workspace_id, e, now) for e in events]
    async with pool.acquire() as conn, conn.transaction():
        await pipeline(conn, rows)


async def main(args: argparse.Namespace) -> int:
    cli._settle_heap(REGION)  # the engine's garbage-collector thresholds
    pipeline = IngestPipeline(REGION)
    identities = args.events // 2
    measured = parsed_batches(
        [ingest_with_template.unstamped(n, identities) for n in range(args.events)], args.batch
    )
    preload = parsed_batches(
        [ingest_with_template.unstamped(10**9 + n, identities, identities) for n in range(args.preload)],
        args.batch,
    )
    with tempfile.TemporaryDirectory(prefix="je-bench-") as tmp_name:
        async with harness.postgres(args.database_url, Path(tmp_name)) as server_dsn:
            async with (
                harness.fresh_database(server_dsn) as plain_dsn,
                harness.fresh_database(server_dsn) as tpl_dsn,
            ):
                kinds = {}
                for with_template, dsn in ((False, plain_dsn), (True, tpl_dsn)):
                    workspace_id, _ = await harness.make_key(dsn)
                    if with_template:
                        await bulk.create_template(dsn, workspace_id, ingest_with_template.template_spec())
                    pool = await create_pool(dsn, min_size=1, max_size=1)
                    for events in preload:
                        await write(pool, pipeline, workspace_id, events)
                    await harness.vacuum(dsn)
                    async with pool.acquire() as conn:
                        backend = await conn.fetchval("SELECT pg_backend_pid()")
                    kinds[with_template] = (pool, workspace_id, backend)
                local = all(_is_local_postgres(backend) for _, _, backend in kinds.values())
                try:
                    cpu = await measure(kinds, pipeline, measured)
                finally:
                    for pool, _, _ in kinds.values():
                        await pool.close()
    report(args, cpu, local=local)
    return 0


def _is_local_postgres(pid: int) -> bool:
    """Whether the backend's pid is a PostgreSQL process on this machine (its CPU can be read)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip().startswith("postgres")
    except OSError:
        return False


async def measure(
    kinds: dict[bool, tuple[asyncpg.Pool, str, int]],
    pipeline: IngestPipeline,
    measured: list[list[ParsedEvent]],
) -> dict[tuple[bool, int], list[float]]:
    """{(with template, half): [engine seconds, backend seconds, events]}."""
    tick = os.sysconf("SC_CLK_TCK")
    cpu = {(kind, half): [0.0, 0.0, 0.0] for kind in (False, True) for half in (0, 1)}
    for b, events in enumerate(measured):
        half = 0 if b < len(measured) // 2 else 1
        for kind in (False, True) if b % 2 == 0 else (True, False):
            pool, workspace_id, backend = kinds[kind]
            engine, server = time.process_time(), harness._ticks(backend)
            await write(pool, pipeline, workspace_id, events)
            totals = cpu[(kind, half)]
            totals[0] += time.process_time() - engine
            totals[1] += (harness._ticks(backend) - server) / tick
            totals[2] += len(events)
    return cpu


def report(args: argparse.Namespace, cpu: dict[tuple[bool, int], list[float]], *, local: bool) -> None:
    print(
        f"\nthe ingest pipeline alone: {args.events:,} events over {args.events // 2:,} identities in batches"
        f" of {args.batch}, each batch to both databases in turn; {args.preload:,} events stored before;"
        f" {args.database_url or 'embedded PostgreSQL'}\n"
    )
    print(f"{'events':<24} {'CPU µs per event:':>18} {'no template':>12} {'template':>9} {'extra':>6}")
    for half, name in ((0, "first (new persons)"), (1, "second (their persons)")):
        plain, with_template = cpu[(False, half)], cpu[(True, half)]
        for k, what in ((0, "engine"), (1, "postgres" if local else "postgres (not local)")):
            a, b = plain[k] / plain[2] * 1e6, with_template[k] / with_template[2] * 1e6
            print(f"{name if k == 0 else '':<24} {what:>18} {a:12.1f} {b:9.1f} {b - a:6.1f}")
    if local:
        plain_total = sum(cpu[(False, h)][0] + cpu[(False, h)][1] for h in (0, 1))
        template_total = sum(cpu[(True, h)][0] + cpu[(True, h)][1] for h in (0, 1))
        print(
            f"\nCPU per event, no template / template (engine + postgres): {plain_total / template_total:.2f}"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help=harness.DATABASE_URL_HELP)
    parser.add_argument("--events", type=int, default=100_000, help="events measured (default 100000)")
    parser.add_argument("--batch", type=int, default=500, help="events per batch (default 500)")
    parser.add_argument("--preload", type=int, default=20_000, help="events stored before (default 20000)")
    args = parser.parse_args()
    if not (
        2 <= args.events <= 1_000_000
        and args.events % 2 == 0
        and 1 <= args.batch <= 1000
        and args.preload >= 0
    ):
        parser.error("--events 2..1000000 and even, --batch 1..1000, --preload >= 0")
    return args


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=cli._event_loop_factory()) as runner:  # the engine's event loop
        sys.exit(runner.run(main(parse_args())))
