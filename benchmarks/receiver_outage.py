"""A receiver that is down for a while and then returns: every firing delivered, none under two
different webhook-ids (duplicates of one webhook-id are allowed: delivery is at least once).

Setup as webhook_latency.py (its template, action and event body: every event for a new person fires
once), with a short retry schedule for the run, JOURNEY_WEBHOOK_RETRY_SCHEDULE (`--schedule`, default
1,1,2,2,2,3,3,3,3,3,3,3,3,3,3: 15 attempts over ~38 s; the deployed default starts at 5 s, 5 min, 30 min).

1. down: nothing listens on the receiver's port (connection refused); `--firings` events are posted
   (batches of 100, each event a new person: one firing each);
2. after `--refused` seconds from the first firing the receiver starts but answers 503 (no Retry-After)
   for `--failing` seconds;
3. then it answers 200, and the run waits until the outbox is drained (no delivery pending or in flight).

Reported: firings, distinct webhook-ids received with a 2xx, firings never delivered (must be 0),
firings seen under two webhook-ids (must be 0), duplicate deliveries of one webhook-id (allowed;
counted), deliveries dead-lettered, attempts, and the time from the receiver's return to the drain.
`--processes 2` runs two engines on one database (outbox rows claimed with FOR UPDATE SKIP LOCKED).

    .venv/bin/python benchmarks/receiver_outage.py [--firings 2000] [--refused 10] [--failing 10]
        [--processes 1]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import aiohttp
import asyncpg
import bulk
import harness
import webhook_latency

HERE = Path(__file__).resolve().parent


async def outbox(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT status, count(*) FROM deliveries GROUP BY status")
        out = {r["status"]: r["count"] for r in rows}
        out["firings"] = await conn.fetchval("SELECT count(*) FROM firings")
        out["attempts"] = await conn.fetchval("SELECT count(*) FROM delivery_attempts")
        out["max_attempts"] = await conn.fetchval("SELECT coalesce(max(attempts), 0) FROM deliveries")
        return out
    finally:
        await conn.close()


async def delivery_ids(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return {r["delivery_id"] for r in await conn.fetch("SELECT delivery_id FROM deliveries")}
    finally:
        await conn.close()


async def set_status(receiver_url: str, status: int) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{receiver_url}/_control?status={status}") as r,
    ):
        r.raise_for_status()


async def main(args: argparse.Namespace) -> int:
    schedule = [float(x) for x in args.schedule.split(",")]
    async with harness.scratch_database(args.database_url) as (tmp, dsn):
        rport = harness.free_port()
        workspace_id, token = await webhook_latency.setup(dsn, rport)
        port = harness.free_port()
        env = harness.engine_env(
            dsn, args.log_level, tmp, JOURNEY_WEBHOOK_RETRY_SCHEDULE=args.schedule,
            **bulk.reuse_port_env(args.processes),
        )  # fmt: skip
        command = harness.engine_command(port, 1)
        receiver_cmd = [
            sys.executable,
            str(HERE / "webhook_receiver.py"),
            "--port",
            str(rport),
            "--status",
            "503",
        ]
        async with harness.run_servers(
            command, port, args.processes, env, tmp / "engine.log", "/readyz"
        ) as engine:
            started = time.monotonic()
            fire_s = await webhook_latency.fire(
                f"{engine.url}/v1/workspaces/{workspace_id}/events", token, args.firings
            )
            await asyncio.sleep(max(0.0, started + args.refused - time.monotonic()))
            during_refused = await outbox(dsn)
            async with harness.run_servers(
                receiver_cmd, rport, 1, {}, tmp / "receiver.log", "/_ping"
            ) as receiver:
                await asyncio.sleep(args.failing)
                during_failing = await outbox(dsn)
                await set_status(receiver.url, 200)
                up = time.monotonic()
                drained = await webhook_latency.wait_drained(dsn, args.firings, args.deadline)
                await asyncio.sleep(args.linger)  # any late duplicate would arrive now
                got = await webhook_latency.records(receiver.url)
        after = await outbox(dsn)
        ids = await delivery_ids(dsn)
    report(args, schedule, fire_s, during_refused, during_failing, after, drained, up - started, got, ids)
    return 0


def report(
    args: argparse.Namespace, schedule: list[float], fire_s: float, refused: dict[str, int],
    failing: dict[str, int], after: dict[str, int], drained: float, outage: float,
    got: dict[str, list[object]], ids: set[str],
) -> None:  # fmt: skip
    ok_ids: Counter[str] = Counter()
    identity_ids: dict[str, set[str]] = defaultdict(set)
    answered: Counter[int] = Counter()
    for webhook_id, identity, status in zip(got["webhook_id"], got["identity"], got["status"], strict=True):
        assert isinstance(webhook_id, str) and isinstance(identity, str) and isinstance(status, int)
        answered[status] += 1
        identity_ids[identity].add(webhook_id)
        if 200 <= status < 300:
            ok_ids[webhook_id] += 1
    delivered_identities = {
        identity for identity, wids in identity_ids.items() if any(ok_ids[w] for w in wids)
    }
    expected = {f"wh{i}@bench.example" for i in range(args.firings)}
    never = len(expected - delivered_identities)
    two_ids = sum(1 for wids in identity_ids.values() if len(wids) > 1)
    duplicates = sum(n - 1 for n in ok_ids.values())
    unknown = len(set(ok_ids) - ids)
    where = args.database_url or "embedded PostgreSQL"
    print(
        f"\nreceiver outage: {args.firings:,} firings posted"
        f" in {fire_s:.1f} s while nothing listened; connection"
        f" refused for {args.refused} s, then 503 for {args.failing}"
        " s, then 200; JOURNEY_WEBHOOK_RETRY_SCHEDULE"
        f" {args.schedule} ({len(schedule)} retries over {sum(schedule):.0f} s); {args.processes} engine"
        f" process(es); {where}\n"
    )
    print(f"outbox when the receiver started (503): {refused}")
    print(f"outbox when it turned to 200:          {failing}")
    print(f"outbox at the end:                     {after}")
    print(f"requests the receiver saw, by answer: {dict(answered)}")
    print(
        f"\nfirings: {after['firings']:,}; distinct webhook-ids received with a 2xx: {len(ok_ids):,}"
        f" (not in the outbox: {unknown})"
    )
    print(f"firings never delivered: {never}   (must be 0)")
    print(f"firings seen under two webhook-ids: {two_ids}   (must be 0)")
    print(f"duplicate 2xx deliveries of one webhook-id: {duplicates}   (allowed: at least once)")
    print(
        f"dead-lettered: {after.get('dead', 0)}; attempts in all:"
        f" {after['attempts']:,} (at most {after['max_attempts']} for one delivery)"
    )
    print(f"time to drain after the receiver returned: {drained:.1f} s (the outage lasted {outage:.1f} s)")
    ok = never == 0 and two_ids == 0 and after["firings"] == args.firings
    print(f"\n{'met' if ok else 'MISSED'}: every firing delivered, none under two webhook-ids")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help=harness.DATABASE_URL_HELP)
    parser.add_argument("--firings", type=int, default=2000, help="events, each firing once (default 2000)")
    parser.add_argument(
        "--refused", type=float, default=10, help="seconds of connection refused (default 10)"
    )
    parser.add_argument(
        "--failing", type=float, default=10, help="seconds of 503 answers after that (default 10)"
    )
    parser.add_argument(
        "--schedule",
        default="1,1,2,2,2,3,3,3,3,3,3,3,3,3,3",
        help="JOURNEY_WEBHOOK_RETRY_SCHEDULE for the run (seconds)",
    )
    parser.add_argument(
        "--deadline", type=float, default=300, help="most seconds to wait for the drain (default 300)"
    )
    parser.add_argument(
        "--linger", type=float, default=3, help="seconds to wait after the drain for late duplicates"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="engine processes on the database (default 1)"
    )
    parser.add_argument("--log-level", default="INFO", help="the engine's JOURNEY_LOG_LEVEL (default INFO)")
    args = parser.parse_args()
    schedule = [float(x) for x in args.schedule.split(",")]
    if not (1 <= args.firings <= 100_000 and 0 <= args.refused <= 600 and 0 <= args.failing <= 600):
        parser.error("--firings 1..100000, --refused and --failing 0..600 s")
    if 0.9 * sum(schedule) < args.refused + args.failing + 10:
        parser.error("the retry schedule must outlast the outage (0.9 x its sum > refused + failing + 10 s)")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
