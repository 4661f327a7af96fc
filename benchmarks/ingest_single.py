"""Single-event ingest: one CloudEvent per POST from many keep-alive connections, against a baseline.

Measures, in one run and with the same load generator (wrk, see README.md for why):

1. baseline: a no-database aiohttp server (baseline_server.py) that validates each body with the engine's
   own `parse_http` and answers 202;
2. engine: the real engine (`python -m journey_engine serve`) on a fresh database, answering 202 after
   the commit: `POST /v1/workspaces/{W}/events`, `application/json`, one unique event per request.

It prints events/s, p50 and p99 of each, CPU time per event (server, PostgreSQL, wrk) and the ratio.
Target: the engine takes >= 8,000 events/s with p99 <= 50 ms (about 30% of the baseline).

    .venv/bin/python benchmarks/ingest_single.py [--duration 10] [--connections 64] [--processes 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import harness

HERE = Path(__file__).resolve().parent
INSTALL_WRK = (
    "wrk (HTTP load generator) is needed: sudo apt-get install wrk  (Debian/Ubuntu; macOS: brew install wrk)"
)


@dataclass
class Result:
    name: str
    stats: dict[str, float]
    cpu: harness.Cpu
    wrk_seconds: float

    @property
    def ok(self) -> int:
        return int(self.stats["requests"] - self.stats["status_errors"])

    @property
    def rate(self) -> float:
        return self.ok / (self.stats["duration_us"] / 1e6)

    def row(self) -> str:
        s, ok = self.stats, self.ok
        errors = int(s["status_errors"] + s["socket_errors"] + s["timeouts"])
        return (
            f"{self.name:28} {self.rate:9,.0f} {s['p50_us'] / 1000:7.2f} {s['p99_us'] / 1000:7.2f}"
            f" {s['max_us'] / 1000:7.1f} {errors:7,} {self.cpu.per_event_us('server', ok):8.0f}"
            f" {self.cpu.per_event_us('postgres', ok):8.0f} {self.wrk_seconds / max(ok, 1) * 1e6:6.1f}"
            f" {self.cpu.others(self.wrk_seconds):6.2f}"
        )


HEADER = (
    f"{'':28} {'events/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'errors':>7}"
    f" {'server':>8} {'postgres':>8} {'wrk':>6} {'others':>6}\n"
    f"{'':28} {'':>9} {'':>7} {'':>7} {'':>7} {'':>7} {'CPU µs per event':>24} {'cores':>6}"
)


async def run_wrk(url: str, args: argparse.Namespace, tmp: Path, token: str, tag: str, seconds: int) -> dict:
    command = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--timeout", "5s",
        "-s", str(HERE / "events.lua"), url, "--", str(tmp / "templates.txt"), token,
        str(args.identities), tag,
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=seconds + 30)
    for line in out.decode().splitlines():
        if line.startswith("RESULT "):
            stats: dict = json.loads(line.removeprefix("RESULT "))
            return stats
    raise RuntimeError(f"wrk printed no RESULT line:\n{out.decode()}\n{err.decode()}")


async def measure(
    name: str, tag: str, servers: harness.Servers, args: argparse.Namespace, tmp: Path, key: tuple, dsn: str
) -> Result:
    """Warm up, then run wrk for --duration; events get ids `bench-<tag>-...` (`<tag>w` in the warm-up)."""
    workspace_id, token = key
    url = f"{servers.url}/v1/workspaces/{workspace_id}/events"
    if args.warmup:
        await run_wrk(url, args, tmp, token, f"{tag}w", args.warmup)
    if not args.cold:
        await harness.analyze(dsn)
    async with harness.cpu_meter({"server": servers.pids}, dsn) as cpu:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        stats = await run_wrk(url, args, tmp, token, tag, args.duration)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_seconds = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Result(name, stats, cpu, wrk_seconds)


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="je-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "templates.txt").write_text("\n".join(harness.TEMPLATES) + "\n")
        async with (
            harness.postgres(args.database_url, tmp) as server_dsn,
            harness.fresh_database(server_dsn) as dsn,
        ):
            key = await harness.make_key(dsn)
            port = harness.free_port()
            baseline_cmd = [sys.executable, str(HERE / "baseline_server.py"), "--port", str(port)]
            if args.processes > 1:
                baseline_cmd.append("--reuse-port")
            async with harness.run_servers(
                baseline_cmd, port, args.processes, {}, tmp / "baseline.log", "/healthz"
            ) as servers:
                baseline = await measure("baseline (no database)", "b", servers, args, tmp, key, dsn)
            env = harness.engine_env(dsn, args.log_level, tmp)
            async with harness.run_servers(
                harness.engine_command(port, args.processes),
                port,
                args.processes,
                env,
                tmp / "engine.log",
                "/readyz",
            ) as servers:
                engine = await measure("engine (202 after commit)", "e", servers, args, tmp, key, dsn)
            conn = await asyncpg.connect(dsn)
            stored, commits = await conn.fetchrow(
                "SELECT count(*), count(DISTINCT xmin::text) FROM events WHERE id LIKE 'bench-e-%'"
            )
            await conn.close()
            if args.keep_log:
                shutil.copy(tmp / "engine.log", args.keep_log)

    where = "embedded PostgreSQL" if not args.database_url else args.database_url
    print(
        f"single-event POSTs: {args.connections} connections, {args.duration} s each (after {args.warmup} s"
        f" of warm-up{', no ANALYZE' if args.cold else ' and ANALYZE'}), {args.processes} server process(es),"
        f" {where}, engine log level {args.log_level}\n"
    )
    print(HEADER)
    print(baseline.row())
    print(engine.row())
    ratio = engine.rate / baseline.rate
    p99_ms = engine.stats["p99_us"] / 1000
    met = engine.rate >= 8000 and p99_ms <= 50
    print(
        f"\nengine / baseline: {ratio:.2f}"
        f"   (target: >= 8,000 events/s with p99 <= 50 ms: {'met' if met else 'MISSED'})"
    )
    # wrk stops with up to --connections requests in flight: those may be stored but are not counted.
    print(
        f"events stored by the measured engine run: {stored:,} (answered 202: {engine.ok:,})"
        f" in {commits:,} transactions ({stored / max(commits, 1):.1f} events per commit)"
    )
    harness.check_quiet([r.cpu.others(r.wrk_seconds) for r in (baseline, engine)])
    if not engine.ok <= stored <= engine.ok + args.connections:
        print("warning: stored events do not match the 202 answers", file=sys.stderr)
        return 1
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help=harness.DATABASE_URL_HELP)
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per server (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per server (default 2)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent clients (default 64)")
    parser.add_argument(
        "--threads", type=int, default=1, help="wrk threads (default 1: leaves CPU to the server)"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="server processes sharing the port (reuse_port)"
    )
    parser.add_argument("--identities", type=int, default=50_000, help="distinct identities (default 50000)")
    parser.add_argument("--log-level", default="INFO", help="the engine's JOURNEY_LOG_LEVEL (default INFO)")
    parser.add_argument("--cold", action="store_true", help="skip ANALYZE after the warm-up (see README.md)")
    parser.add_argument("--keep-log", metavar="PATH", help="copy the engine's log (stderr) here")
    args = parser.parse_args()
    if not 1 <= args.duration <= 600 or not 0 <= args.warmup <= 60:
        parser.error("--duration must be 1..600 s and --warmup 0..60 s")
    if shutil.which("wrk") is None:
        parser.exit(2, f"{parser.prog}: {INSTALL_WRK}\n")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
