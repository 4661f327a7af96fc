"""From the 202 of the event that makes a rule true to the webhook arriving at a local receiver: target
p50 <= 50 ms and p99 <= 250 ms, at 1,000 firings/s.

Setup: a fresh database; a template `bench-webhook` (Count of `order:placed` over 60 minutes) and an
action on it whose rule `Count GTE 1` is true on every event, no cooldown, one webhook trigger to a
local receiver (webhook_receiver.py, its own process) with the body `{"identity": "{{identity}}"}`;
both made with the engine's catalog functions. The real engine (`python -m journey_engine serve`,
which runs the delivery worker beside the HTTP API) on it.

Measured, through one open-loop client process (openloop.py) at a fixed rate:

1. baseline: the client POSTs `{"identity": "direct-{i}"}` straight to the receiver at the same rate:
   the latency of the receiver and the client themselves, and send -> arrival;
2. engine: the client POSTs one event per request (`application/json`, one CloudEvent), each for a new
   person (`wh{i}@bench.example`), so each makes the rule true once and fires once; for each firing,
   latency = arrival at the receiver (its `identity` ties it to the event) - the client's receipt of
   the event's 202. Both are `time.monotonic()`, one clock for the machine's processes.

Before the measurement, as in the ingest benchmarks (README.md, "Steady-state plans"): `--preload`
firings (events posted in batches of 100) are delivered, then ANALYZE, so the engine's prepared
statements are planned for tables that hold firings, deliveries and persons, not for empty ones; then
a warm-up at the rate (other identities), whose deliveries drain before the measured run.

    .venv/bin/python benchmarks/webhook_latency.py [--rate 1000] [--duration 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import bulk
import harness
import openloop
import spy

from journey_engine.cloudevents import BATCH_TYPE

EVENT = "order:placed"
HERE = Path(__file__).resolve().parent
TARGET_P50_MS, TARGET_P99_MS = 50.0, 250.0


def template_spec() -> dict[str, Any]:
    return {
        "name": "bench-webhook",
        "attributes": [bulk.attribute("orders", EVENT, "orderId", "string", "Count", 60, "minutes")],
    }


def action_spec(receiver_port: int) -> dict[str, Any]:
    return {
        "name": "bench-notify",
        "cooldownPeriodInMinutes": 0,
        "rules": {"logic": "SINGLE", "condition": f"{EVENT},orderId,string,Count GTE 1"},
        "actionTriggers": [
            {
                "type": "Webhook",
                "webhookURL": f"http://{harness.HOST}:{receiver_port}/hook",
                "attributes": {"httpverb": "post", "requestbody": '{"identity": "{{identity}}"}'},
            }
        ],
    }


def event_body() -> str:
    return json.dumps(
        {
            "id": "wh-{i}", "specversion": "1.0", "type": EVENT, "source": "bench/webhook",
            "identity": "wh{i}@bench.example", "identitytype": "email",
            "datacontenttype": "application/json", "data": {"orderId": "o{i}", "amount": 42},
        },
        separators=(",", ":"),
    )  # fmt: skip


async def fire(url: str, token: str, count: int, first: int = 0, batch: int = 100) -> float:
    """Post `count` events (numbers first.., each for a new person) in batches; seconds taken."""
    template = event_body()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": BATCH_TYPE}
    started = time.perf_counter()
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=120)) as session:
        for k in range(first, first + count, batch):
            size = min(batch, first + count - k)
            body = "[" + ",".join(template.replace("{i}", str(i)) for i in range(k, k + size)) + "]"
            async with session.post(url, data=body) as response:
                answer = await response.json()
                if response.status != 202 or answer["accepted"] != size:
                    raise RuntimeError(f"unexpected answer {response.status}: {str(answer)[:300]}")
    return time.perf_counter() - started


async def setup(dsn: str, receiver_port: int) -> tuple[str, str]:
    workspace_id, token = await harness.make_key(dsn)
    template = await bulk.create_template(dsn, workspace_id, template_spec())
    await bulk.create_action(dsn, workspace_id, template, action_spec(receiver_port))
    return workspace_id, token


async def records(receiver_url: str) -> dict[str, list[Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"{receiver_url}/_records") as response:
        got: dict[str, list[Any]] = await response.json()
        return got


async def xact_commits(dsn: str) -> int:
    """Transactions committed in the database so far (pg_stat_database, updated within ~1 s)."""
    await asyncio.sleep(1.1)  # the statistics collector's flush interval
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        return count
    finally:
        await conn.close()


async def delivered(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM deliveries")
        return count
    finally:
        await conn.close()


async def wait_drained(dsn: str, expected: int, seconds: float) -> float:
    """Until `expected` deliveries exist and none is pending or in flight; seconds waited."""
    conn = await asyncpg.connect(dsn)
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            total, open_ = await conn.fetchrow(
                "SELECT count(*), count(*) FILTER (WHERE status IN ('pending', 'delivering')) FROM deliveries"
            )
            if total >= expected and open_ == 0:
                return time.monotonic() - started
            await asyncio.sleep(0.25)
    finally:
        await conn.close()
    raise TimeoutError(f"deliveries did not drain within {seconds:.0f} s")


def client_spec(
    port: int,
    args: argparse.Namespace,
    path: str,
    body: str,
    headers: dict[str, str],
    first: int,
    seconds: float,
) -> dict[str, Any]:
    return {
        "host": harness.HOST, "port": port, "rate": args.rate, "duration": seconds,
        "connections": args.connections, "method": "POST", "path": path, "body": body,
        "headers": headers, "pick": {"kind": "sequence", "first": first},
    }  # fmt: skip


async def main(args: argparse.Namespace) -> int:
    async with harness.scratch_database(args.database_url) as (tmp, dsn):
        rport = harness.free_port()
        workspace_id, token = await setup(dsn, rport)
        await harness.analyze(dsn)
        receiver_cmd = [sys.executable, str(HERE / "webhook_receiver.py"), "--port", str(rport)]
        port = harness.free_port()
        env = harness.engine_env(dsn, args.log_level, tmp, **bulk.reuse_port_env(args.processes))
        async with (
            harness.run_servers(receiver_cmd, rport, 1, {}, tmp / "receiver.log", "/_ping") as receiver,
            harness.run_servers(
                harness.engine_command(port, 1), port, args.processes, env, tmp / "engine.log", "/readyz"
            ) as engine,
        ):
            headers = {"Content-Type": "application/json"}
            direct_spec = client_spec(
                rport, args, "/hook", '{"identity":"direct-{i}"}', headers, 0, args.duration
            )
            async with harness.cpu_meter(
                {"receiver": receiver.pids, "engine": engine.pids}, dsn
            ) as direct_cpu:
                direct = await openloop.run(direct_spec, tmp)
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
            path = f"/v1/workspaces/{workspace_id}/events"
            # Steady-state plans (README.md): firings, deliveries and persons exist, then ANALYZE.
            await fire(f"{engine.url}{path}", token, args.preload, first=10**9)
            await wait_drained(dsn, args.preload, 300)
            await harness.analyze(dsn)
            if args.warmup:
                await openloop.run(
                    client_spec(port, args, path, event_body(), headers, 10**8, args.warmup), tmp
                )
            before = await delivered(dsn)
            await wait_drained(dsn, before, 300)
            engine_spec = client_spec(port, args, path, event_body(), headers, 0, args.duration)
            commits = await xact_commits(dsn)
            async with (
                spy.recording(args.py_spy_bin, args.py_spy, "webhook", engine.pids, args.duration),
                harness.cpu_meter({"receiver": receiver.pids, "engine": engine.pids}, dsn) as engine_cpu,
            ):
                fired = await openloop.run(engine_spec, tmp)
                drain = await wait_drained(dsn, before + sum(s == 202 for s in fired.status), 120)
            commits = await xact_commits(dsn) - commits
            got = await records(receiver.url)
        conn = await asyncpg.connect(dsn)
        try:
            firings = await conn.fetchval("SELECT count(*) FROM firings") - before
            attempts = await conn.fetchval(
                "SELECT count(*) FROM delivery_attempts WHERE status_code <> 200 OR status_code IS NULL"
            )
        finally:
            await conn.close()
    report(args, direct, fired, got, direct_cpu, engine_cpu, firings, attempts, drain, commits)
    return 0


def report(
    args: argparse.Namespace, direct: openloop.Result, fired: openloop.Result, got: dict[str, list[Any]],
    direct_cpu: harness.Cpu, engine_cpu: harness.Cpu, firings: int, failed_attempts: int, drain: float,
    commits: int,
) -> None:  # fmt: skip
    arrival: dict[str, float] = {}
    seen: dict[str, int] = {}
    for at, identity, status in zip(got["at"], got["identity"], got["status"], strict=True):
        if identity is not None and 200 <= status < 300:
            seen[identity] = seen.get(identity, 0) + 1
            arrival.setdefault(identity, at)
    # Baseline: the client's own latency to the receiver, and send -> arrival.
    direct_lat = openloop.stats_ms(direct.latencies((200,)))
    direct_wire = openloop.stats_ms(
        [arrival[f"direct-{i}"] - s for i, s, st in zip(direct.ids, direct.sent, direct.status, strict=True)
         if st == 200 and f"direct-{i}" in arrival]
    )  # fmt: skip
    ingest = openloop.stats_ms(fired.latencies((202,)))
    delays, missing = [], 0
    for i, done, status in zip(fired.ids, fired.done, fired.status, strict=True):
        if status != 202:
            continue
        at = arrival.get(f"wh{i}@bench.example")
        if at is None:
            missing += 1
        else:
            delays.append(at - done)
    webhook = openloop.stats_ms(delays)
    duplicates = sum(n - 1 for k, n in seen.items() if k.startswith("wh") and n > 1)
    where = args.database_url or "embedded PostgreSQL"
    print(
        f"\nwebhook latency: {args.rate:,} events/s for"
        f" {args.duration} s, each for a new person, each firing one"
        f" webhook; {args.processes} engine process(es) (serve: HTTP + delivery worker), {where}, log level"
        f" {args.log_level}\n"
    )
    print(f"{'':50} {'rate/s':>7} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}  ms   errors")

    def line(name: str, rate: float | str, s: dict[str, float], errors: int | str = "") -> None:
        rate_text = f"{rate:7,.0f}" if isinstance(rate, float) else f"{rate:>7}"
        print(
            f"{name:50} {rate_text} {s['p50_ms']:8.1f} {s['p90_ms']:8.1f}"
            f" {s['p99_ms']:8.1f} {s['max_ms']:8.1f}  {errors:>7}"
        )

    line("baseline: client -> receiver, answered", direct.achieved_rate, direct_lat, direct.errors((200,)))
    line("baseline: client send -> receiver arrival", "-", direct_wire)
    line("engine: POST event -> 202 (rate: 202s/s)", fired.achieved_rate, ingest, fired.errors((202,)))
    arrivals = sorted(arrival[f"wh{i}@bench.example"] for i, st in zip(fired.ids, fired.status, strict=True)
                      if st == 202 and f"wh{i}@bench.example" in arrival)  # fmt: skip
    arrival_rate = len(arrivals) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
    line("engine: 202 -> webhook arrival (rate: arrivals/s)", arrival_rate, webhook, missing)
    statuses = Counter(fired.status)
    print(
        f"\nanswers to the event POSTs: {dict(statuses)} (0: no"
        " answer within the client's drain, or a socket error)"
    )
    print(
        f"firings {firings:,} for {sum(s == 202 for s in fired.status):,} accepted events; webhooks received"
        f" {len(delays):,}, never received {missing:,}, duplicates"
        f" {duplicates:,}; failed attempts {failed_attempts:,};"
        f" outbox drained {drain:.1f} s after the last request; PostgreSQL transactions per firing"
        f" {commits / max(firings, 1):.1f} (pg_stat_database, monitoring queries included)"
    )
    for name, cpu, n, client in (
        ("baseline", direct_cpu, len(direct.status), direct),
        ("engine", engine_cpu, len(fired.status), fired),
    ):
        print(
            f"CPU per request, {name}: engine {cpu.per_event_us('engine', n):.0f} µs, postgres"
            f" {cpu.per_event_us('postgres', n):.0f} µs, receiver"
            f" {cpu.per_event_us('receiver', n):.0f} µs, client"
            f" {client.cpu_seconds / n * 1e6:.0f} µs; others {cpu.others(client.cpu_seconds):.2f} cores"
        )
    print(
        "\nratio 202 -> arrival / baseline send -> arrival:"
        f" p50 {webhook['p50_ms'] / direct_wire['p50_ms']:.0f}x,"
        f" p99 {webhook['p99_ms'] / direct_wire['p99_ms']:.0f}x"
    )
    rate = min(fired.achieved_rate, arrival_rate)
    met = (webhook["p50_ms"] <= TARGET_P50_MS and webhook["p99_ms"] <= TARGET_P99_MS and missing == 0
           and rate >= 0.97 * args.rate)  # fmt: skip
    print(
        f"202 -> webhook p50 {webhook['p50_ms']:.1f} ms, p99 {webhook['p99_ms']:.1f} ms at {rate:,.0f}"
        f" firings/s (target p50 <= {TARGET_P50_MS:g}, p99 <= {TARGET_P99_MS:g} ms at {args.rate:,}/s:"
        f" {'met' if met else 'MISSED'})"
    )
    harness.check_quiet([direct_cpu.others(direct.cpu_seconds), engine_cpu.others(fired.cpu_seconds)])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help=harness.DATABASE_URL_HELP)
    parser.add_argument("--rate", type=int, default=1000, help="events (= firings) per second (default 1000)")
    parser.add_argument("--duration", type=int, default=20, help="seconds measured (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up (default 3)")
    parser.add_argument(
        "--preload",
        type=int,
        default=10_000,
        help="firings made (batch posts) and delivered before ANALYZE and the warm-up (default 10000)",
    )
    parser.add_argument(
        "--connections", type=int, default=64, help="most connections the client opens (default 64)"
    )
    parser.add_argument("--processes", type=int, default=1, help="engine processes sharing the port")
    parser.add_argument("--log-level", default="INFO", help="the engine's JOURNEY_LOG_LEVEL (default INFO)")
    spy.add_arguments(parser)
    args = parser.parse_args()
    if not (1 <= args.rate <= 20_000 and 1 <= args.duration <= 300 and 0 <= args.warmup <= 60):
        parser.error("--rate 1..20000, --duration 1..300, --warmup 0..60")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
