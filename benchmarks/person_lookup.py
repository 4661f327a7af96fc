"""Person lookup by a phone alias through HTTP, with 1M aliases stored: target p99 <= 5 ms.

Load (not measured): a fresh database gets 500,000 persons with two aliases each, 1,000,000 aliases:
an email (bulk.py) and a phone, inserted server-side, then ANALYZE. Phone ``k`` is ``+1226`` followed by
``2000000 + k`` and belongs to person ``k * STRIDE % persons``, so consecutive phones belong to persons
scattered over the tables.

Measured with the real engine (``python -m journey_engine serve``), each after a warm-up:

1. at a constant rate (openloop.py: wrk2-style, latency from each request's intended send time),
   ``--rate`` requests/s (default 500):
   - baseline: ``GET /healthz`` on the same engine: HTTP and the middleware, no database;
   - lookup: ``GET /admin/v1/api/person/workspace-id/{W}/aliases/%2B1226XXXXXXX`` with a ``read`` key,
     each request the next phone (another person): authentication, normalising the alias, one query,
     the JDS person JSON;
2. closed loop (wrk, ``--connections`` keep-alive connections, lookups.lua), the same two with a random
   phone per request: the throughput one engine process saturates at, and latencies that include
   queueing behind the other connections;
3. without HTTP: ``persons.lookup`` (the alias normalised, the query) on one asyncpg connection, one
   random phone at a time: the engine's share below HTTP.

Target: the constant-rate lookup's p99 <= 5 ms.

    .venv/bin/python benchmarks/person_lookup.py [--persons 500000] [--rate 500] [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import bulk
import harness
import openloop

from journey_engine.db import connect
from journey_engine.identities import IdentityType
from journey_engine.persons import lookup

HERE = Path(__file__).resolve().parent
FIRST_LINE = 2_000_000  # phone k is +1226 followed by FIRST_LINE + k
STRIDE = 1_000_003  # a prime: k * STRIDE % persons visits every person once
TARGET_P99_MS = 5.0


def phone(k: int) -> str:
    return f"+1226{FIRST_LINE + k}"


def owner(k: int, persons: int) -> int:
    return k * STRIDE % persons


async def load(dsn: str, persons: int) -> tuple[str, str, float]:
    """The workspace, a `read` key, and the seconds the persons and aliases took to load."""
    workspace_id, _ = await harness.make_key(dsn)
    token = await bulk.add_key(dsn, workspace_id, ["read"])
    conn = await connect(dsn)
    try:
        seconds = await bulk.load_persons(conn, workspace_id, persons)
        started = time.perf_counter()
        await conn.execute(
            "INSERT INTO aliases (workspace_id, alias, alias_type, person_id)"
            " SELECT $1, '+1226' || ($3 + k), 'phone', lpad(to_hex((k::bigint * $4) % $2), 24, '0')"
            " FROM generate_series(0, $2 - 1) AS k",
            workspace_id, persons, FIRST_LINE, STRIDE,
        )  # fmt: skip
        seconds += time.perf_counter() - started
    finally:
        await conn.close()
    await harness.analyze(dsn)
    return workspace_id, token, seconds


async def check_answer(base: str, workspace_id: str, token: str, persons: int) -> None:
    """One lookup through HTTP finds the person with both aliases (so the runs measure real answers)."""
    url = f"{base}/admin/v1/api/person/workspace-id/{workspace_id}/aliases/%2B1226{FIRST_LINE + 7}"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        body = await response.json()
    person = owner(7, persons)
    expected = {"id": bulk.person_id(person), "phone": [phone(7)], "email": [bulk.email(person)]}
    if response.status != 200 or {k: body["data"][0][k] for k in expected} != expected:
        raise RuntimeError(f"the lookup answered {response.status}: {body}")


def spec(
    port: int, args: argparse.Namespace, path: str, token: str, seconds: float, first: int
) -> dict[str, Any]:
    return {
        "host": harness.HOST, "port": port, "rate": args.rate, "duration": seconds,
        "connections": args.connections, "method": "GET", "path": path, "body": None,
        "headers": {"Authorization": f"Bearer {token}"}, "pick": {"kind": "sequence", "first": first},
    }  # fmt: skip


async def constant_rate(
    port: int, args: argparse.Namespace, path: str, token: str, tmp: Path, servers: harness.Servers, dsn: str
) -> dict[str, Any]:
    """One open-loop run after a warm-up (on other phones): its summary, with CPU per request."""
    first = FIRST_LINE + random.randrange(args.persons - math.ceil(args.rate * (args.warmup + args.duration)))
    if args.warmup:
        await openloop.run(spec(port, args, path, token, args.warmup, first), tmp)
    first += math.ceil(args.rate * args.warmup)
    async with harness.cpu_meter({"server": servers.pids}, dsn) as cpu:
        result = await openloop.run(spec(port, args, path, token, args.duration, first), tmp)
    out = result.summary()
    out["server_us"] = cpu.per_event_us("server", int(out["requests"]))
    out["others"] = cpu.others(result.cpu_seconds)
    return out


async def run_wrk(
    url: str, args: argparse.Namespace, token: str, persons: int, seconds: int
) -> dict[str, Any]:
    command = [
        "wrk", "-t1", f"-c{args.connections}", f"-d{seconds}s", "--timeout", "5s",
        "-s", str(HERE / "lookups.lua"), url, "--", token, str(persons),
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=seconds + 30)
    for line in out.decode().splitlines():
        if line.startswith("RESULT "):
            stats: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
            return stats
    raise RuntimeError(f"wrk printed no RESULT line:\n{out.decode()}\n{err.decode()}")


async def closed_loop(
    url: str, args: argparse.Namespace, token: str, persons: int, servers: harness.Servers, dsn: str
) -> dict[str, Any]:
    """One wrk run after a warm-up, in the units of `openloop.Result.summary`, with CPU per request."""
    if args.warmup:
        await run_wrk(url, args, token, persons, args.warmup)
    async with harness.cpu_meter({"server": servers.pids}, dsn) as cpu:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        stats = await run_wrk(url, args, token, persons, args.duration)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_seconds = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    out = {f"{k[:-3]}_ms": stats[k] / 1000 for k in ("p50_us", "p90_us", "p99_us", "max_us")}
    out["requests"] = stats["requests"]
    out["rate"] = stats["requests"] / (stats["duration_us"] / 1e6)
    out["errors"] = stats["status_errors"] + stats["socket_errors"] + stats["timeouts"]
    out["server_us"] = cpu.per_event_us("server", stats["requests"])
    out["others"] = cpu.others(wrk_seconds)
    return out


async def without_http(dsn: str, workspace_id: str, persons: int, count: int) -> dict[str, Any]:
    """`persons.lookup` of random phones, one at a time, on one connection set up as the engine's pool."""
    conn = await connect(dsn)
    try:
        times = []
        for _ in range(count):
            k = random.randrange(persons)
            started = time.perf_counter()
            found = await lookup(conn, workspace_id, [phone(k)], "US")
            times.append(time.perf_counter() - started)
            if [(p.person_id, p.of_type(IdentityType.PHONE)) for p in found] != [
                (bulk.person_id(owner(k, persons)), [phone(k)])
            ]:
                raise RuntimeError(f"phone {k}: found {found}")
    finally:
        await conn.close()
    return openloop.stats_ms(times)


def row(name: str, s: dict[str, Any]) -> str:
    ms = " ".join(f"{s[k]:7.2f}" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms"))
    if "rate" not in s:
        return f"{name:38} {'-':>7} {ms}"
    return f"{name:38} {s['rate']:7,.0f} {ms} {int(s['errors']):6,} {s['server_us']:7.0f} {s['others']:6.2f}"


async def main(args: argparse.Namespace) -> int:
    async with harness.scratch_database(args.database_url) as (tmp, dsn):
        workspace_id, token, load_seconds = await load(dsn, args.persons)
        port = harness.free_port()
        env = harness.engine_env(dsn, args.log_level, tmp)
        command = harness.engine_command(port, args.processes)
        runs: dict[str, dict[str, Any]] = {}
        async with harness.run_servers(
            command, port, args.processes, env, tmp / "engine.log", "/readyz"
        ) as servers:
            await check_answer(servers.url, workspace_id, token, args.persons)
            aliases = f"/admin/v1/api/person/workspace-id/{workspace_id}/aliases/"
            rate = f"{args.rate:,}/s"
            runs[f"baseline: GET /healthz, {rate}"] = await constant_rate(
                port, args, "/healthz", token, tmp, servers, dsn
            )
            runs[f"lookup: GET .../aliases/{{phone}}, {rate}"] = await constant_rate(
                port, args, aliases + "%2B1226{i}", token, tmp, servers, dsn
            )
            runs["baseline: GET /healthz, closed loop"] = await closed_loop(
                f"{servers.url}/healthz", args, token, 0, servers, dsn
            )
            runs["lookup, closed loop"] = await closed_loop(
                servers.url + aliases, args, token, args.persons, servers, dsn
            )
        runs["persons.lookup, no HTTP, 1 connection"] = await without_http(
            dsn, workspace_id, args.persons, args.queries
        )
        if args.keep_log:
            shutil.copy(tmp / "engine.log", args.keep_log)
    where = "embedded PostgreSQL" if not args.database_url else args.database_url
    print(
        f"person lookup by phone: {args.persons:,} persons, {2 * args.persons:,} aliases (loaded in"
        f" {load_seconds:.1f} s); {args.duration} s per run after {args.warmup} s of warm-up, up to"
        f" {args.connections} connections; {args.processes} engine process(es), {where}, engine log level"
        f" {args.log_level}\n"
    )
    print(
        f"{'':38} {'req/s':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} {'errors':>6}"
        f" {'server':>7} {'others':>6}\n{'':38} {'':>45} {'µs/req':>7} {'cores':>6}"
    )
    for name, stats in runs.items():
        print(row(name, stats))
    harness.check_quiet([s["others"] for s in runs.values() if "others" in s])
    paced = runs[f"lookup: GET .../aliases/{{phone}}, {args.rate:,}/s"]
    errors = sum(int(s.get("errors", 0)) for s in runs.values())
    met = paced["p99_ms"] <= TARGET_P99_MS and errors == 0
    print(
        f"\nlookup at {args.rate:,}/s: p99 {paced['p99_ms']:.2f} ms"
        f" (target <= {TARGET_P99_MS:g} ms: {'met' if met else 'MISSED'})"
    )
    return 0 if errors == 0 else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help=harness.DATABASE_URL_HELP)
    parser.add_argument(
        "--persons", type=int, default=500_000, help="persons, two aliases each (default 500000)"
    )
    parser.add_argument(
        "--rate", type=int, default=500, help="requests/s of the constant-rate runs (default 500)"
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per run (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per run (default 2)")
    parser.add_argument("--connections", type=int, default=4, help="client connections (default 4)")
    parser.add_argument("--processes", type=int, default=1, help="engine processes sharing the port")
    parser.add_argument("--queries", type=int, default=5000, help="lookups without HTTP (default 5000)")
    parser.add_argument("--log-level", default="INFO", help="the engine's JOURNEY_LOG_LEVEL (default INFO)")
    parser.add_argument("--keep-log", metavar="PATH", help="copy the engine's log (stderr) here")
    args = parser.parse_args()
    if not 1 <= args.duration <= 600 or not 0 <= args.warmup <= 60 or not 1 <= args.rate <= 100_000:
        parser.error("--duration must be 1..600 s, --warmup 0..60 s, --rate 1..100000/s")
    if (
        not args.rate * (args.warmup + args.duration) < args.persons <= 7_999_999
        or args.persons % STRIDE == 0
    ):
        parser.error("--persons must exceed --rate * (--warmup + --duration) and be at most 7999999")
    if shutil.which("wrk") is None:
        parser.exit(2, f"{parser.prog}: wrk (HTTP load generator) is needed: sudo apt-get install wrk\n")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
