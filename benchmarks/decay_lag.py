"""Time decay: target p99 lag <= 1 s between an event leaving its window and the stored value changing,
with 100k values due within the same minute.

Setup (not measured): a fresh database, a template `bench-decay` (Count of `bench:decay` events over a
`--lookback-minutes` window, default 2), 100,000 persons with one email alias and ONE `bench:decay` event
each (bulk.py), stamped so that the events leave their windows at instants spread evenly over one minute
(`--spread` seconds) starting at T0, in an order unrelated to the person ids. Each value is computed
once with `profiles.store.refresh` at the real current time, in chunks of 500 (Count 1, next change
= the event's departure); the lookback is longer than the minute so that every event is already in its
window when its value is computed and every value is stored before T0.

A benchmark-only trigger on `profile_values` (created in this run's own database; no engine code
changes) copies each update that changes `vals` into a side table `bench_changes`, with the row's
`computed_at` and `clock_timestamp()` at the write. Then the real engine (`python -m journey_engine
serve`, whose APScheduler job sweeps every JOURNEY_SWEEP_INTERVAL, 0.25 s by default) runs through the
minute, and for each value:

    lag = computed_at of the recompute that changed it - the instant its event left the window
          (event time + lookback + 1 µs)

(`computed_at` is the instant the sweep started; the write lag, `clock_timestamp()` at the UPDATE, is
also shown; the commit follows within the same sweep batch). While it runs, the backlog (values due
and not yet recomputed) is sampled every half second.

Baseline, in the same run: the same 100,000 recomputations (same persons, same template, events now out
of the window, so the same queries and the same stored result) by `profiles.store.refresh` in one process
without the scheduler, in transactions of 500 (the sweeper's batch): its time is the raw cost, the
sweeper's CPU per value is compared with it, and `raw cost / the minute` is the share of one engine's
capacity the minute needs.

    .venv/bin/python benchmarks/decay_lag.py [--persons 100000] [--lookback-minutes 3] [--spread 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import bulk
import harness
import openloop
import spy

from journey_engine.db import connect
from profiles import store

EVENT = "bench:decay"
TEMPLATE = "bench-decay"
TARGET_P99_S = 1.0
CHUNK = 500  # the sweeper's batch (DecaySweeper's default)
ONE_US = timedelta(microseconds=1)

SIDE_TABLE = """
CREATE TABLE bench_changes (person_id text, computed_at timestamptz, written_at timestamptz, vals json);
CREATE FUNCTION bench_record_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_changes VALUES (NEW.person_id, NEW.computed_at, clock_timestamp(), NEW.vals);
    RETURN NULL;
END $$;
CREATE TRIGGER bench_record_change AFTER UPDATE ON profile_values
    FOR EACH ROW WHEN (OLD.vals::text IS DISTINCT FROM NEW.vals::text) EXECUTE FUNCTION bench_record_change();
"""

# Per person: the instant its event leaves the window, and the first change recorded after it.
LAGS = """
WITH departures AS (
    SELECT a.person_id, e.time + $2::interval + interval '1 microsecond' AS departs
    FROM aliases a JOIN events e ON e.workspace_id = a.workspace_id AND e.identity = a.alias
    WHERE a.workspace_id = $1 AND e.type = $3
), first_change AS (
    SELECT DISTINCT ON (person_id) person_id, computed_at, written_at, vals
    FROM bench_changes ORDER BY person_id, written_at
), changes AS (
    SELECT person_id, count(*) AS changes FROM bench_changes GROUP BY person_id
)
SELECT d.person_id, extract(epoch FROM f.computed_at - d.departs) AS lag,
       extract(epoch FROM f.written_at - d.departs) AS write_lag, f.written_at, f.vals, c.changes
FROM departures d LEFT JOIN first_change f USING (person_id) LEFT JOIN changes c USING (person_id)
"""


def template_spec(lookback_minutes: int) -> dict[str, Any]:
    return {
        "name": TEMPLATE,
        "attributes": [
            bulk.attribute("Recent", EVENT, "queueId", "string", "Count", lookback_minutes, "minutes")
        ],
    }


async def refresh_chunks(
    conn: asyncpg.Connection, workspace_id: str, ids: list[str], template: store.StoredTemplate
) -> float:
    """`store.refresh` over `ids` in transactions of CHUNK, each at the current time: seconds taken."""
    started = time.perf_counter()
    for k in range(0, len(ids), CHUNK):
        async with conn.transaction():
            await store.refresh(
                conn, workspace_id, ids[k : k + CHUNK], datetime.now(UTC), templates=[template]
            )
    return time.perf_counter() - started


async def watch(dsn: str, until: float, expected: int) -> list[tuple[float, int, int]]:
    """Every half second until `until` (monotonic) or every change is in: (time, due backlog, changes)."""
    samples = []
    conn = await asyncpg.connect(dsn)
    try:
        while time.monotonic() < until:
            due = await conn.fetchval("SELECT count(*) FROM profile_values WHERE next_change_at <= now()")
            changed = await conn.fetchval("SELECT count(*) FROM bench_changes")
            samples.append((time.monotonic(), due, changed))
            if changed >= expected and due == 0:
                break
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    return samples


async def main(args: argparse.Namespace) -> int:
    n = args.persons
    lookback = timedelta(minutes=args.lookback_minutes)
    with tempfile.TemporaryDirectory(prefix="je-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with (
            harness.postgres(args.database_url, tmp) as server_dsn,
            harness.fresh_database(server_dsn) as dsn,
        ):
            workspace_id, _ = await harness.make_key(dsn)
            record = await bulk.create_template(dsn, workspace_id, template_spec(args.lookback_minutes))
            conn = await asyncpg.connect(dsn)
            try:
                load_persons = await bulk.load_persons(conn, workspace_id, n)
                # T0 such that the last event (departing at T0 + spread) is already in the past now.
                t0 = datetime.now(UTC) + lookback - timedelta(seconds=args.spread)
                order = list(range(n))
                random.Random(5).shuffle(order)
                departs = [t0 + timedelta(seconds=args.spread * order[i] / n) for i in range(n)]
                load_events = await bulk.load_events_at(
                    conn, workspace_id, n, EVENT, [d - lookback - ONE_US for d in departs]
                )
            finally:
                await conn.close()
            await harness.analyze(dsn)
            ids = [bulk.person_id(i) for i in range(n)]
            conn = await connect(dsn)
            try:
                setup_s = await refresh_chunks(conn, workspace_id, ids, record.template)
            finally:
                await conn.close()
            left = (t0 - datetime.now(UTC)).total_seconds()
            print(
                f"setup: persons {load_persons:.1f} s, events {load_events:.1f} s, first computation of {n:,}"
                f" values {setup_s:.1f} s ({n / setup_s:,.0f}/s); first departure in {left:.1f} s",
                flush=True,
            )
            if left < 10:
                raise SystemExit(
                    f"the values were ready only {left:.1f} s before T0: raise --lookback-minutes"
                )
            conn = await asyncpg.connect(dsn)
            try:
                scheduled = await conn.fetchval(
                    "SELECT count(*) FROM profile_values WHERE template_id"
                    " = $1 AND next_change_at BETWEEN $2 AND $3",
                    record.template_id, t0, t0 + timedelta(seconds=args.spread),
                )  # fmt: skip
                if scheduled != n:
                    raise RuntimeError(f"{scheduled} values due within the minute, expected {n}")
                await conn.execute(SIDE_TABLE)
            finally:
                await conn.close()
            await harness.analyze(dsn)

            port = harness.free_port()
            env = harness.engine_env(dsn, args.log_level, tmp, **bulk.reuse_port_env(args.processes))
            if args.sweep_interval:
                env["JOURNEY_SWEEP_INTERVAL"] = str(args.sweep_interval)
            command = harness.engine_command(port, 1)
            async with harness.run_servers(
                command, port, args.processes, env, tmp / "engine.log", "/readyz"
            ) as servers:
                wait = (t0 - datetime.now(UTC)).total_seconds() - 0.5
                await asyncio.sleep(max(0.0, wait))
                until = time.monotonic() + args.spread + 0.5 + args.drain
                async with (
                    spy.recording(args.py_spy_bin, args.py_spy, "sweeper", servers.pids, args.spread + 2),
                    harness.cpu_meter({"engine": servers.pids}, dsn) as cpu,
                ):
                    samples = await watch(dsn, until, n)
            conn = await asyncpg.connect(dsn)
            try:
                rows = await conn.fetch(LAGS, workspace_id, lookback, EVENT)
                final_counts = await conn.fetch(
                    "SELECT vals -> 0 ->> 0 AS v, count(*) FROM"
                    " profile_values WHERE template_id = $1 GROUP BY 1",
                    record.template_id,
                )  # fmt: skip
            finally:
                await conn.close()
            # Baseline: the same recomputations, raw, in this process (values already at Count 0: the same
            # queries and upserts as the sweeper's recompute).
            conn = await connect(dsn)  # before the meter starts, so that its backend is counted
            try:
                async with harness.cpu_meter({"client": [os.getpid()]}, dsn) as base_cpu:
                    base_s = await refresh_chunks(conn, workspace_id, ids, record.template)
            finally:
                await conn.close()

    report(args, rows, final_counts, samples, cpu, base_s, base_cpu)
    return 0


def report(
    args: argparse.Namespace, rows: list[asyncpg.Record], final_counts: list[asyncpg.Record],
    samples: list[tuple[float, int, int]], cpu: harness.Cpu, base_s: float, base_cpu: harness.Cpu,
) -> None:  # fmt: skip
    n = args.persons
    changed = [r for r in rows if r["lag"] is not None]
    missing = n - len(changed)
    twice = sum(1 for r in rows if (r["changes"] or 0) > 1)
    lags = [float(r["lag"]) for r in changed]
    write_lags = [float(r["write_lag"]) for r in changed]
    lag, wlag = openloop.stats_ms(lags), openloop.stats_ms(write_lags)
    written = sorted(r["written_at"] for r in changed)
    span = (written[-1] - written[0]).total_seconds() if written else float("nan")
    backlog = max((due for _, due, _ in samples), default=0)
    where = args.database_url or "embedded PostgreSQL"
    interval = args.sweep_interval or "0.25 (default)"
    print(
        f"\ntime decay: {n:,} values (Count over {args.lookback_minutes}"
        " min, one event each) leaving their window"
        f" evenly over {args.spread} s; {args.processes} engine"
        f" process(es), JOURNEY_SWEEP_INTERVAL {interval};"
        f" {where}\n"
    )
    print(f"{'':44} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8} {'mean':>8}  (ms)")
    for name, s in (("lag: computed_at - departure", lag), ("write lag: UPDATE time - departure", wlag)):
        print(
            f"{name:44} {s['p50_ms']:8.1f} {s['p90_ms']:8.1f}"
            f" {s['p99_ms']:8.1f} {s['max_ms']:8.1f} {s['mean_ms']:8.1f}"
        )
    finals = ", ".join(f"Count {r['v']}: {r['count']:,}" for r in final_counts)
    print(
        f"\nvalues changed: {len(changed):,} of {n:,} (never recomputed: {missing:,}; changed more than once:"
        f" {twice:,}); final values: {finals}"
    )
    print(
        f"sweeper: {len(changed) / span:,.0f} values/s over {span:.1f} s between the first and last change;"
        f" largest backlog seen {backlog:,} values; engine {cpu.cores('engine'):.2f} cores,"
        f" postgres {cpu.cores('postgres'):.2f} cores, others {cpu.others():.2f} cores"
    )
    sweep_cpu = (cpu.seconds["engine"] + cpu.seconds["postgres"]) / max(len(changed), 1) * 1e6
    raw_cpu = (base_cpu.seconds["client"] + base_cpu.seconds["postgres"]) / n * 1e6
    print(
        f"baseline: store.refresh of the same {n:,} values in"
        f" one process, {CHUNK} per transaction, no scheduler:"
        f" {base_s:.1f} s = {n / base_s:,.0f} values/s (client {base_cpu.per_event_us('client', n):.0f} µs +"
        f" postgres {base_cpu.per_event_us('postgres', n):.0f} µs CPU per value)"
    )
    if args.spread:  # the sweeper is paced by values falling due, so compare the cost, not the speed
        second = f"the minute's raw cost {base_s:.1f} s = {base_s / args.spread:.0%} of its {args.spread} s"
    else:  # everything due at once: how fast the sweeper catches up against the raw speed
        speed = len(changed) / span
        second = f"sweeper / raw values/s = {speed:,.0f} / {n / base_s:,.0f} = {speed / (n / base_s):.2f}"
    print(
        f"ratios: sweeper CPU per value / raw refresh CPU per value = {sweep_cpu:.0f} / {raw_cpu:.0f} µs ="
        f" {sweep_cpu / raw_cpu:.2f};  {second}"
    )
    met = lag["p99_ms"] <= TARGET_P99_S * 1000 and missing == 0
    print(
        f"\nlag p99 {lag['p99_ms'] / 1000:.3f} s (target <= {TARGET_P99_S:g} s: {'met' if met else 'MISSED'})"
    )
    harness.check_quiet([cpu.others(), base_cpu.others()])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help=harness.DATABASE_URL_HELP)
    parser.add_argument(
        "--persons", type=int, default=100_000, help="values due within the minute (default 100000)"
    )
    parser.add_argument(
        "--lookback-minutes",
        type=int,
        default=2,
        help="the window; must exceed --spread by the setup time (default 2)",
    )
    parser.add_argument(
        "--spread", type=int, default=60, help="seconds over which the events leave (default 60)"
    )
    parser.add_argument(
        "--drain", type=int, default=60, help="seconds to wait after the last departure (default 60)"
    )
    parser.add_argument(
        "--sweep-interval", type=float, help="JOURNEY_SWEEP_INTERVAL (default: the engine's, 0.25)"
    )
    parser.add_argument("--processes", type=int, default=1, help="engine processes (each runs the sweeper)")
    parser.add_argument("--log-level", default="INFO", help="the engine's JOURNEY_LOG_LEVEL (default INFO)")
    spy.add_arguments(parser)
    args = parser.parse_args()
    if not (
        1 <= args.persons <= 2_000_000
        and 0 <= args.spread <= 600
        and 0 <= args.drain <= 600
        and args.lookback_minutes * 60 > args.spread + 10
    ):
        parser.error("--persons 1..2000000, --spread 0..600, --drain 0..600, lookback > spread + 10 s")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
