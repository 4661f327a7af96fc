"""Profile read through HTTP over 1M events and 100k persons: target p99 <= 5 ms at 1,000 requests/s.

Load (not measured): a fresh database gets 100,000 persons with one email alias each and 1,000,000
`task:connected` events (10 per person, times spread over the last 30 days) by server-side bulk insert
(bulk.py), then ANALYZE. The real engine (`python -m journey_engine serve`) starts on it, and a
5-attribute template on `task:connected` (Count 24 h, Sum 7 d, Max 30 d, Distinct 30 d, Value 1 d) is
created with `profiles.catalog.create`, which marks the 100k persons due: with `--compute sweeper`
(default) the engine's own decay sweeper computes the values (timed: the sweeper's throughput on a
new template), with `--compute refresh` this script calls `profiles.store.refresh` in chunks of 500.
VACUUM (ANALYZE), so no autovacuum of the loaded rows runs during the measurements.

Measured, through one open-loop client process at a fixed rate (openloop.py: wrk2-style, latency from
each request's intended send time), each after a warm-up at the same rate:

1. baseline: `GET /healthz` on the same engine: HTTP and the middleware, no database;
2. view: `GET /v1/api/progressive-profile-view/workspace-id/{W}/identity/user{i}@bench.example/
   template-name/bench-profile` with a `read` key, a random person per request;

then, without HTTP, the handler's queries (`views.read_view` and the verbose events, as `api/profiles.py`
runs them) on one connection, one request at a time: the database's share.

    .venv/bin/python benchmarks/profile_read.py [--persons 100000] [--events 1000000] [--rate 1000]
        [--duration 20] [--processes 1] [--py-spy DIR --py-spy-bin PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import bulk
import harness
import openloop
import spy

from journey_engine import views
from journey_engine.db import connect
from profiles import store

TEMPLATE = "bench-profile"
EVENT = "task:connected"
TARGET_P99_MS = 5.0
SPREAD = timedelta(days=30)


def template_spec() -> dict[str, Any]:
    a = bulk.attribute
    return {
        "name": TEMPLATE,
        "attributes": [
            a("Contacts today", EVENT, "taskId", "string", "Count", 24, "hours"),
            a("Talk time this week", EVENT, "durationSeconds", "integer", "Sum", 7, "days"),
            a("Longest call this month", EVENT, "durationSeconds", "integer", "Max", 30, "days"),
            a("Queues this month", EVENT, "queueId", "string", "Distinct", 30, "days"),
            a("Last channel", EVENT, "channelType", "string", "Value", 1, "days", limit=1),
        ],
    }


async def load(dsn: str, args: argparse.Namespace) -> tuple[str, str, dict[str, float]]:
    """Workspace, read token, and how long each load step took."""
    workspace_id, _ = await harness.make_key(dsn)
    token = await bulk.add_key(dsn, workspace_id, ["read"])
    conn = await asyncpg.connect(dsn)
    try:
        took = {"persons": await bulk.load_persons(conn, workspace_id, args.persons)}
        took["events"] = await bulk.load_events_spread(
            conn, workspace_id, args.events, args.persons, EVENT, datetime.now(UTC), SPREAD
        )
    finally:
        await conn.close()
    started = time.perf_counter()
    await harness.analyze(dsn)
    took["analyze"] = time.perf_counter() - started
    return workspace_id, token, took


async def wait_computed(dsn: str, template_id: str, persons: int, deadline_s: float) -> None:
    """Until no value of the template is still marked for computation (empty vals)."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            left = await conn.fetchval(
                "SELECT count(*) FROM profile_values WHERE template_id = $1 AND vals::text = '[]'",
                template_id,
            )
            done = await conn.fetchval(
                "SELECT count(*) FROM profile_values WHERE template_id = $1", template_id
            )
            if left == 0 and done >= persons:
                return
            await asyncio.sleep(1.0)
    finally:
        await conn.close()
    raise TimeoutError(f"values not computed within {deadline_s:.0f} s")


async def refresh_all(dsn: str, workspace_id: str, persons: int, template: store.StoredTemplate) -> None:
    conn = await connect(dsn)
    try:
        for k in range(0, persons, 500):
            ids = [bulk.person_id(i) for i in range(k, min(k + 500, persons))]
            async with conn.transaction():
                await store.refresh(conn, workspace_id, ids, datetime.now(UTC), templates=[template])
    finally:
        await conn.close()


async def check_answer(base: str, workspace_id: str, token: str) -> dict[str, Any]:
    url = (
        f"{base}/v1/api/progressive-profile-view/workspace-id/{workspace_id}"
        f"/identity/{bulk.email(7)}/template-name/{TEMPLATE}"
    )
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        body: dict[str, Any] = await response.json()
    attributes = body.get("data", [{}])[0].get("attributes", []) if response.status == 200 else []
    if len(attributes) != 5 or attributes[2]["result"] is None:
        raise RuntimeError(f"the view answered {response.status}: {json.dumps(body)[:800]}")
    return body


async def handler_only(dsn: str, workspace_id: str, persons: int, count: int) -> dict[str, float]:
    """The view handler's queries and JSON, without HTTP, on one connection, one request at a time."""
    conn = await connect(dsn)
    rng = random.Random(7)
    times = []
    try:
        for _ in range(count):
            identity = bulk.email(rng.randrange(persons))
            started = time.perf_counter()
            who = views.Who(identity=identity)
            view, firings = await views.read_view(
                conn, workspace_id, TEMPLATE, who, by_name=True, region="US", firings=100
            )
            events = await views.verbose_events(conn, workspace_id, view)
            json.dumps(views.jds_view(view, workspace_id, identity, events, firings))
            times.append(time.perf_counter() - started)
    finally:
        await conn.close()
    return openloop.stats_ms(times)


def spec(
    port: int, args: argparse.Namespace, path: str, token: str, seconds: float, seed: int
) -> dict[str, Any]:
    return {
        "host": harness.HOST, "port": port, "rate": args.rate, "duration": seconds,
        "connections": args.connections, "method": "GET", "path": path, "body": None,
        "headers": {"Authorization": f"Bearer {token}"},
        "pick": {"kind": "random", "n": args.persons, "seed": seed},
    }  # fmt: skip


async def measure(
    port: int,
    args: argparse.Namespace,
    path: str,
    token: str,
    tmp: Path,
    pids: list[int],
    dsn: str,
    seed: int,
) -> tuple[openloop.Result, harness.Cpu]:
    if args.warmup:
        await openloop.run(spec(port, args, path, token, args.warmup, seed + 1000), tmp)
    name = "healthz" if path == "/healthz" else "view"
    async with (
        spy.recording(args.py_spy_bin, args.py_spy, name, pids, args.duration),
        harness.cpu_meter({"engine": pids}, dsn) as cpu,
    ):
        result = await openloop.run(spec(port, args, path, token, args.duration, seed), tmp)
    return result, cpu


def row(name: str, result: openloop.Result, cpu: harness.Cpu | None) -> str:
    s = result.summary()
    cpu_text = ""
    if cpu is not None:
        n = s["requests"]
        cpu_text = (
            f"  engine {cpu.per_event_us('engine', n):5.0f} µs "
            f" postgres {cpu.per_event_us('postgres', n):5.0f} µs"
            f"  client {s['client_cpu_us']:4.0f} µs  others {cpu.others(result.cpu_seconds):.2f} cores"
        )
    return (
        f"{name:28} {s['rate']:8,.0f} {s['p50_ms']:7.2f}"
        f" {s['p90_ms']:7.2f} {s['p99_ms']:7.2f} {s['max_ms']:8.2f}"
        f" {int(s['errors']):6,} {int(s['connections']):5}{cpu_text}"
    )


async def main(args: argparse.Namespace) -> int:
    async with harness.scratch_database(args.database_url) as (tmp, dsn):
        print(f"loading {args.persons:,} persons and {args.events:,} events ...", flush=True)
        workspace_id, token, took = await load(dsn, args)
        print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in took.items()), flush=True)
        port = harness.free_port()
        env = harness.engine_env(dsn, args.log_level, tmp, **bulk.reuse_port_env(args.processes))
        command = harness.engine_command(port, 1)
        async with harness.run_servers(
            command, port, args.processes, env, tmp / "engine.log", "/readyz"
        ) as servers:
            started = time.perf_counter()
            record = await bulk.create_template(dsn, workspace_id, template_spec())
            marked = time.perf_counter() - started
            async with harness.cpu_meter({"engine": servers.pids}, dsn) as compute_cpu:
                if args.compute == "refresh":
                    await refresh_all(dsn, workspace_id, args.persons, record.template)
                await wait_computed(dsn, record.template_id, args.persons, 3600)
            compute_s = time.perf_counter() - started - marked
            print(
                f"  template created and {args.persons:,} persons"
                f" marked due in {marked:.1f} s; values computed"
                f" by the {args.compute} in {compute_s:.1f} s ({args.persons / compute_s:,.0f} values/s;"
                f" engine {compute_cpu.cores('engine'):.2f} cores,"
                f" postgres {compute_cpu.cores('postgres'):.2f})",
                flush=True,
            )
            await harness.vacuum(dsn)
            sample = await check_answer(servers.url, workspace_id, token)
            view_path = (
                f"/v1/api/progressive-profile-view/workspace-id/{workspace_id}/identity/"
                f"user{{i}}@{bulk.DOMAIN}/template-name/{TEMPLATE}"
            )
            base, base_cpu = await measure(port, args, "/healthz", token, tmp, servers.pids, dsn, 1)
            view, view_cpu = await measure(port, args, view_path, token, tmp, servers.pids, dsn, 2)
        sql = await handler_only(dsn, workspace_id, args.persons, args.queries)
    where = args.database_url or "embedded PostgreSQL"
    print(
        "\nprofile read (JDS view by identity, template-name):"
        f" {args.persons:,} persons, {args.events:,} events,"
        f" 5-attribute template; open loop at {args.rate:,} req/s for {args.duration} s after {args.warmup} s"
        f" of warm-up, up to {args.connections} connections; {args.processes} engine process(es), {where},"
        f" log level {args.log_level}\n"
    )
    print(f"sample answer (user7): {json.dumps([a['result'] for a in sample['data'][0]['attributes']])}\n")
    print(
        f"{'':28} {'req/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7}"
        f" {'max ms':>8} {'errors':>6} {'conns':>5}  CPU per request"
    )
    print(row("baseline: GET /healthz", base, base_cpu))
    print(row("view: GET .../identity/...", view, view_cpu))
    print(
        f"{'handler without HTTP, 1 conn':28} {'-':>8}"
        f" {sql['p50_ms']:7.2f} {sql['p90_ms']:7.2f} {sql['p99_ms']:7.2f}"
        f" {sql['max_ms']:8.2f}   ({args.queries:,} sequential requests)"
    )
    b, v = base.summary(), view.summary()
    print(
        f"\nview p99 / baseline p99: {v['p99_ms'] / b['p99_ms']:.1f}x;"
        f"  view p50 / baseline p50: {v['p50_ms'] / b['p50_ms']:.1f}x"
    )
    met = v["p99_ms"] <= TARGET_P99_MS and v["errors"] == 0 and v["rate"] >= 0.97 * args.rate
    print(
        f"view p99 {v['p99_ms']:.2f} ms at {v['rate']:,.0f} req/s (target <="
        f" {TARGET_P99_MS:g} ms at {args.rate:,}: {'met' if met else 'MISSED'})"
    )
    harness.check_quiet([base_cpu.others(base.cpu_seconds), view_cpu.others(view.cpu_seconds)])
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help=harness.DATABASE_URL_HELP)
    parser.add_argument(
        "--persons", type=int, default=100_000, help="persons, one email alias each (default 100000)"
    )
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="events over the persons (default 1000000)"
    )
    parser.add_argument(
        "--rate", type=int, default=1000, help="requests per second, open loop (default 1000)"
    )
    parser.add_argument("--duration", type=int, default=20, help="seconds measured per run (default 20)")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up per run (default 5)")
    parser.add_argument(
        "--connections", type=int, default=64, help="most connections the client opens (default 64)"
    )
    parser.add_argument("--processes", type=int, default=1, help="engine processes sharing the port")
    parser.add_argument(
        "--compute",
        choices=("sweeper", "refresh"),
        default="sweeper",
        help="who computes the values after the template is made (default: the engine's sweeper)",
    )
    parser.add_argument("--queries", type=int, default=3000, help="handler-only requests (default 3000)")
    parser.add_argument("--log-level", default="INFO", help="the engine's JOURNEY_LOG_LEVEL (default INFO)")
    spy.add_arguments(parser)
    args = parser.parse_args()
    if not (
        1 <= args.persons <= 10_000_000
        and args.persons <= args.events <= 20_000_000
        and 1 <= args.rate <= 20_000
        and 1 <= args.duration <= 300
        and 0 <= args.warmup <= 60
    ):
        parser.error(
            "--persons 1..1e7, --events >= persons and <= 2e7,"
            " --rate 1..20000, --duration 1..300, --warmup 0..60"
        )
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
