"""Event feed query through HTTP over 1M stored events: target p99 <= 5 ms.

The JDS flow query of use case 1 (a caller's latest overdue Water payment):
`GET /v1/api/events/workspace-id/{W}?identity=X&filter=type=='Payment'&data=category=='Water'&pageSize=1`.

Load (not measured): 100,000 persons with one email alias each and 1,000,000 events, 10 per person,
by server-side bulk insert: half of each person's events `Payment` (data.category Water, Electricity or Gas,
each person has Water ones; data.status overdue or paid), the others `Page Visit`; times spread over 30
days; then VACUUM (ANALYZE) and CHECKPOINT. Every query finds its answer (a 404, JDS's "nothing matches",
would count as an error).

Measured through one open-loop client process at a fixed rate (openloop.py), after a warm-up:
1. baseline: `GET /healthz` on the same engine (HTTP and middleware, no database);
2. the feed query, a random person per request.

    .venv/bin/python benchmarks/feed_query.py [--persons 100000] [--events 1000000] [--rate 500]
        [--duration 20] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import bulk
import harness
from profile_read import measure, row

TARGET_P99_MS = 5.0
_EVENTS = """
INSERT INTO events (workspace_id, id, source, specversion, type, time, identity, identity_raw, identity_type,
                    datacontenttype, data, content_hash)
SELECT $1, 'feed-' || n, 'bench/feed', '1.0', CASE WHEN (n / $3) % 2 = 0 THEN 'Payment' ELSE 'Page Visit' END,
       $2::timestamptz - ((n * 2654435761) % 1000000) / 1e6 * interval '30 days',
       'user' || (n % $3) || '@' || $4, 'user' || (n % $3) || '@' || $4, 'email', 'application/json',
       jsonb_build_object('category', (ARRAY['Water', 'Electricity', 'Gas'])[1 + (n / $3 / 2) % 3],
                          'status', (ARRAY['overdue', 'paid'])[1 + n % 2], 'amount', n % 500),
       sha256(convert_to('feed-' || n, 'UTF8'))
FROM generate_series(0, $5::bigint - 1) AS n
"""


async def load(dsn: str, args: argparse.Namespace) -> tuple[str, str, dict[str, float]]:
    workspace_id, _ = await harness.make_key(dsn)
    token = await bulk.add_key(dsn, workspace_id, ["read"])
    conn = await asyncpg.connect(dsn)
    try:
        took = {"persons": await bulk.load_persons(conn, workspace_id, args.persons)}
        started = time.perf_counter()
        await conn.execute(_EVENTS, workspace_id, datetime.now(UTC), args.persons, bulk.DOMAIN, args.events)
        took["events"] = time.perf_counter() - started
    finally:
        await conn.close()
    started = time.perf_counter()
    await harness.vacuum(dsn)
    took["vacuum"] = time.perf_counter() - started
    return workspace_id, token, took


async def main(args: argparse.Namespace) -> int:
    async with harness.scratch_database(args.database_url) as (tmp, dsn):
        print(f"loading {args.persons:,} persons and {args.events:,} events ...", flush=True)
        workspace_id, token, took = await load(dsn, args)
        print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in took.items()), flush=True)
        port = harness.free_port()
        env = harness.engine_env(dsn, args.log_level, tmp)
        async with harness.run_servers(
            harness.engine_command(port, 1), port, 1, env, tmp / "engine.log", "/readyz"
        ) as servers:
            path = (
                f"/v1/api/events/workspace-id/{workspace_id}?identity=user{{i}}@{bulk.DOMAIN}"
                "&filter=type%3D%3D%27Payment%27&data=category%3D%3D%27Water%27&pageSize=1"
            )
            base, base_cpu = await measure(port, args, "/healthz", token, tmp, servers.pids, dsn, 1)
            feed, feed_cpu = await measure(port, args, path, token, tmp, servers.pids, dsn, 2)
    print(
        f"\nfeed query (identity + filter + data, pageSize=1): {args.persons:,} persons, {args.events:,}"
        f" events; open loop at {args.rate:,} req/s for {args.duration} s after {args.warmup} s of warm-up\n"
    )
    columns = (
        f"{'req/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>8} {'errors':>6} {'conns':>5}"
    )
    print(f"{'':28} {columns}")
    print(row("baseline: GET /healthz", base, base_cpu))
    print(row("feed: GET /v1/api/events/...", feed, feed_cpu))
    b, f = base.summary(), feed.summary()
    print(f"\nfeed p99 / baseline p99: {f['p99_ms'] / b['p99_ms']:.1f}x")
    met = f["p99_ms"] <= TARGET_P99_MS and f["errors"] == 0 and f["rate"] >= 0.97 * args.rate
    print(f"feed p99 {f['p99_ms']:.2f} ms at {f['rate']:,.0f} req/s (target <= {TARGET_P99_MS:g} ms: "
          f"{'met' if met else 'MISSED'})")  # fmt: skip
    harness.check_quiet([base_cpu.others(base.cpu_seconds), feed_cpu.others(feed.cpu_seconds)])
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help=harness.DATABASE_URL_HELP)
    parser.add_argument("--persons", type=int, default=100_000, help="persons (default 100000)")
    parser.add_argument("--events", type=int, default=1_000_000, help="events (default 1000000)")
    parser.add_argument("--rate", type=int, default=500, help="requests per second (default 500)")
    parser.add_argument("--duration", type=int, default=20, help="seconds measured per run (default 20)")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up per run (default 5)")
    parser.add_argument("--connections", type=int, default=64, help="most client connections (default 64)")
    parser.add_argument("--log-level", default="INFO", help="the engine's JOURNEY_LOG_LEVEL (default INFO)")
    args = parser.parse_args()
    args.py_spy, args.py_spy_bin = None, None
    if not (1 <= args.persons <= args.events <= 20_000_000 and 1 <= args.rate <= 20_000):
        parser.error("--persons 1..events, --events <= 2e7, --rate 1..20000")
    return args


def run() -> Any:
    return asyncio.run(main(parse_args()))


if __name__ == "__main__":
    sys.exit(run())
