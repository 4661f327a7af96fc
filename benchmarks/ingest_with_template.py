"""Batch ingest with one 5-attribute template active: target >= 60% of the ingest rate with no template,
in the same run.

The batch ingest of ingest_batch.py (its `engine_run`: the real engine, `POST /v1/workspaces/{W}/events`
with `application/cloudevents-batch+json`, 500 events per request, 4 clients, timed from the first
request to the last 202), the same 100,000 `task:connected` events over 50,000 identities
(`harness.event_json`), into two kinds of database made from one start (schema, workspace, key):

- no template: the workspace keeps only `journey-default-template`, which aggregates `task:new`, so no
  template matches these events (checked after each run: no profile value stored);
- template: one more template, `bench-5`, on `task:connected` with 5 attributes in 5 modes and windows of
  minutes, hours and days (Count 30 min, Sum 24 h, Max 7 d, Distinct 30 d, Value 2 h): every event is
  aggregated and every touched person's values are recomputed and stored in the batch's transaction
  (checked after each run: one value per person, and one person's values).

One difference from ingest_batch.py: the events carry no `time`, so the engine stamps them on receipt.
`harness.TEMPLATES` stamps every event 2025-06-01T12:00Z, which is outside every window up to 400 days
now, and a profile computation that finds no event in its windows is not the cost to measure.

Each kind gets `--preload` events of other identities posted through the engine (after the template is
made, so those persons have values too), then ANALYZE (see README.md); each run gets its own
`CREATE DATABASE ... TEMPLATE` copy. Rounds alternate which kind runs first. The result is the median of
the rounds' ratios: each round's two runs are seconds apart, while on a shared VM the speed of the
machine drifts by up to 30% over minutes, which moves the ratio of the two kinds' medians (also printed)
when the rounds of one kind fall on the slower minutes.

    .venv/bin/python benchmarks/ingest_with_template.py [--events 100000] [--rounds 5] [--py-spy DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import bulk
import harness
import ingest_batch
import spy

from journey_engine import views
from journey_engine.db import connect
from profiles import store

EVENT = "task:connected"
TEMPLATE = "bench-5"
TARGET = 0.60
_STAMP = '"time":"2025-06-01T12:00:00.000Z",'


def template_spec() -> dict[str, Any]:
    a = bulk.attribute
    return {
        "name": TEMPLATE,
        "attributes": [
            a("Contacts in 30 minutes", EVENT, "taskId", "string", "Count", 30, "minutes"),
            a("Talk time today", EVENT, "durationSeconds", "integer", "Sum", 24, "hours"),
            a("Longest call this week", EVENT, "durationSeconds", "integer", "Max", 7, "days"),
            a("Queues this month", EVENT, "queueId", "string", "Distinct", 30, "days"),
            a("Last channel", EVENT, "channelType", "string", "Value", 2, "hours", limit=1),
        ],
    }


def unstamped(n: int, identities: int, first_identity: int = 0) -> str:
    text = harness.event_json(n, identities, first_identity)
    if _STAMP not in text:
        raise RuntimeError(f"harness.TEMPLATES changed: no {_STAMP} in {text}")
    return text.replace(_STAMP, "")


async def check_values(dsn: str, workspace_id: str, with_template: bool, persons: int) -> str:
    """What the run stored as profile values: none without the template, one per person with it."""
    conn = await connect(dsn)
    try:
        count = await conn.fetchval("SELECT count(*) FROM profile_values")
        matching = await store.templates_for(conn, workspace_id, [EVENT])
        if not with_template:
            if count or matching:
                raise RuntimeError(
                    f"no-template run: {count} values stored, templates on {EVENT}: {matching}"
                )
            return "0 values stored, no template on task:connected"
        view, _ = await views.read_view(conn, workspace_id, TEMPLATE, views.Who(identity="user0@example.com"))
    finally:
        await conn.close()
    results = [a.jds_result for a in view.values.attributes]
    if count != persons or results != ["2", "190", "95", "queue-7", "telephony"]:
        raise RuntimeError(f"template run: {count} values for {persons} persons; user0: {results}")
    return f"{count:,} values stored; user0: {results}"


async def prepare(
    args: argparse.Namespace, server_dsn: str, base: str, key: tuple[str, str], with_template: bool,
    tmp: Path, stack: AsyncExitStack,
) -> str:  # fmt: skip
    """A start database of one kind (a copy of `base`): the template (or not), preload, ANALYZE."""
    dsn: str = await stack.enter_async_context(harness.fresh_database(server_dsn, base))
    if with_template:
        await bulk.create_template(dsn, key[0], template_spec())
    preload = [unstamped(10**9 + n, args.identities, args.identities) for n in range(args.preload)]
    await ingest_batch.engine_run(args, dsn, key, ingest_batch.batches(preload, args.batch), tmp)
    if not args.cold:
        await harness.analyze(dsn)
    return dsn


async def main(args: argparse.Namespace) -> int:
    runs: dict[bool, list[tuple[float, harness.Cpu, str]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="je-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with AsyncExitStack() as stack:
            server_dsn = await stack.enter_async_context(harness.postgres(args.database_url, tmp))
            base = await stack.enter_async_context(harness.fresh_database(server_dsn))
            key = await harness.make_key(base)
            starts = {
                kind: await prepare(args, server_dsn, base, key, kind, tmp, stack) for kind in (False, True)
            }
            bodies = ingest_batch.batches(
                [unstamped(n, args.identities) for n in range(args.events)], args.batch
            )
            persons = min(args.identities, args.events) + min(args.preload, args.identities)
            for k in range(args.rounds):
                for kind in (False, True) if k % 2 == 0 else (True, False):
                    async with harness.fresh_database(server_dsn, starts[kind]) as dsn:
                        seconds, cpu = await ingest_batch.engine_run(
                            args, dsn, key, bodies, tmp, f"{'template' if kind else 'plain'}-{k + 1}"
                        )
                        await ingest_batch.check_stored(dsn, args.preload + args.events)
                        checked = await check_values(dsn, key[0], kind, persons)
                    runs[kind].append((seconds, cpu, checked))
                    print(
                        f"round {k + 1} {'template   ' if kind else 'no template'}:"
                        f" {args.events / seconds:9,.0f} events/s  ({checked})",
                        flush=True,
                    )
    report(args, runs)
    return 0


def report(args: argparse.Namespace, runs: dict[bool, list[tuple[float, harness.Cpu, str]]]) -> None:
    n = args.events
    where = args.database_url or "embedded PostgreSQL"
    print(
        "\nbatch ingest with and without a 5-attribute template:"
        f" {n:,} events over {args.identities:,} identities,"
        f" batches of {args.batch}, {args.clients} clients, {args.processes} engine process(es), log level"
        f" {args.log_level}; {where}; {args.preload:,} events stored before\n"
    )
    print(
        f"{'round':>5} {'no template ev/s':>17} {'template ev/s':>14}"
        f" {'ratio':>6}   CPU µs/event (engine, postgres):"
    )
    for k, ((s0, c0, _), (s1, c1, _)) in enumerate(zip(runs[False], runs[True], strict=True), 1):
        print(
            f"{k:>5} {n / s0:>17,.0f} {n / s1:>14,.0f} {s0 / s1:>6.2f}"
            f"   no template {c0.per_event_us('engine', n):5.1f} {c0.per_event_us('postgres', n):5.1f}"
            f"   template {c1.per_event_us('engine', n):5.1f} {c1.per_event_us('postgres', n):5.1f}"
            f"   others {max(c0.others(), c1.others()):.2f} cores"
        )
    plain = n / statistics.median(s for s, _, _ in runs[False])
    with_template = n / statistics.median(s for s, _, _ in runs[True])
    ratio = statistics.median(s0 / s1 for (s0, _, _), (s1, _, _) in zip(runs[False], runs[True], strict=True))
    print(f"{'median':>5} {plain:>17,.0f} {with_template:>14,.0f} {ratio:>6.2f}")
    print(
        f"\ntemplate / no template, median of the rounds' ratios: {ratio:.2f}   (target >="
        f" {TARGET:.2f}: {'met' if ratio >= TARGET else 'MISSED'}); ratio of the medians:"
        f" {with_template / plain:.2f}"
    )
    harness.check_quiet([c.others() for kind in runs.values() for _, c, _ in kind])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ingest_batch.add_run_arguments(parser, "rounds of both kinds; the medians are the result")
    spy.add_arguments(parser)
    args = parser.parse_args()
    if not (
        0 <= args.preload <= min(args.identities, 1_000_000)
        and 1 <= args.batch <= 1000
        and 1 <= args.events <= 1_000_000
        and 1 <= args.rounds <= 10
        and args.identities % 4 == 0
    ):
        parser.error(
            "--batch 1..1000, --events 1..1000000, --rounds 1..10, --preload 0..identities,"
            " --identities a multiple of 4 (each identity keeps one identity type)"
        )
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
