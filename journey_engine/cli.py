"""The `journey-engine` command: serve, migrate, and manage workspaces, API keys and history tokens."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

import asyncpg
from aiohttp import web

from journey_engine import history, identities, logs, workers, workspaces
from journey_engine.app import RUNNER_OPTIONS, create_app
from journey_engine.context import BACKGROUND
from journey_engine.db import connect, create_pool, migrate
from journey_engine.embedded import EmbeddedPostgres
from journey_engine.errors import JourneyError
from journey_engine.settings import Settings
from journey_engine.workspaces import SCOPES

log = logging.getLogger("journey_engine")

SETTINGS_HELP = """\
settings (environment variables):
  DATABASE_URL               PostgreSQL DSN; unset: an embedded PostgreSQL in JOURNEY_DATA_DIR
  JOURNEY_DATA_DIR           embedded PostgreSQL data folder (default ~/.local/share/journey-engine)
  JOURNEY_HOST, JOURNEY_PORT HTTP address (default 127.0.0.1:8080)
  JOURNEY_LOG_LEVEL          DEBUG, INFO, WARNING or ERROR (default INFO)
  see README.md for the full list
"""


@contextlib.asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[Settings]:
    """Settings whose `database_url` is usable: DATABASE_URL, or an embedded server started here."""
    if settings.database_url:
        yield settings
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    print(f"embedded PostgreSQL data folder: {embedded.data_dir}", file=sys.stderr)
    dsn = await asyncio.to_thread(embedded.start)
    try:
        yield settings.model_copy(update={"database_url": dsn})
    finally:
        await asyncio.to_thread(embedded.stop)


@contextlib.asynccontextmanager
async def connection(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    async with database(settings) as resolved:
        assert resolved.database_url is not None
        conn = await connect(resolved.database_url)
        try:
            await migrate(conn)
            yield conn
        finally:
            await conn.close()


async def serve(settings: Settings) -> None:
    async with database(settings) as resolved:
        assert resolved.database_url is not None
        conn = await connect(resolved.database_url)
        try:
            applied = await migrate(conn)
            if applied:
                log.info("database migrated", extra={"fields": {"versions": applied}})
            first = await workspaces.bootstrap(conn)
        finally:
            await conn.close()
        if first is not None:
            _print_first_key(first)
        if resolved.processes > 1:
            resolved = resolved.model_copy(update={"reuse_port": True})
        app = create_app(resolved)
        runner = web.AppRunner(app, shutdown_timeout=resolved.shutdown_timeout, **RUNNER_OPTIONS)
        await runner.setup()
        site = web.TCPSite(runner, resolved.host, resolved.port, reuse_port=resolved.reuse_port or None)
        await site.start()
        _settle_heap(resolved.phone_region)
        children = await _start_children(resolved)
        log.info("serving", extra={"fields": {"url": f"http://{resolved.host}:{resolved.port}"}})
        print(f"Journey Engine listening on http://{resolved.host}:{resolved.port}", file=sys.stderr)
        failed = False
        try:
            watched = [
                *app[BACKGROUND],
                *(asyncio.create_task(c.wait(), name="engine-process") for c in children),
            ]
            failed = await _until_stopped(_stop_on_signals(), watched)
            log.info("shutting down: finishing in-flight requests")
        finally:
            for child in children:
                if child.returncode is None:
                    child.send_signal(signal.SIGTERM)
            await runner.cleanup()
            await asyncio.gather(*(c.wait() for c in children))
        log.info("stopped")
        if failed:
            raise JourneyError("a background task or engine process failed; the engine stopped (see the log)")


# A young collection walks every young object still alive, and an ingest batch keeps tens of thousands
# alive until it commits (its requests' events, the persons' computed values): with the default threshold
# (700) a batch set off dozens of them, each walking thousands of objects. Measured (gc.callbacks,
# benchmarks/ingest_with_template.py): 0.6 s of the engine's 6 s of CPU went to collections with a
# template, 0.2 s of 3 s without; with 50,000, ~0.01 s. Cyclic garbage waits longer: a few MB at most.
_GC_THRESHOLDS = (50_000, 20, 10)


def _settle_heap(region: str) -> None:
    """What is alive once the engine is up (modules, phone metadata, pools) lives as long as it does: move
    it out of the garbage collector's reach (`gc.freeze`), so that its full collections walk only what
    requests made since, instead of pausing every request for tens of milliseconds now and then; and
    collect the young less often (`_GC_THRESHOLDS`)."""
    identities.normalise(identities.IdentityType.PHONE, "+12025550123", region)  # loads the metadata
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


async def _start_children(settings: Settings) -> list[asyncio.subprocess.Process]:
    """The other engine processes of `--processes N`: the same engine on the same database and port
    (SO_REUSEPORT: the kernel spreads connections), each with its own batcher and workers."""
    if settings.processes == 1:
        return []
    assert settings.database_url is not None
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "JOURNEY_PROCESSES": "1",
        "JOURNEY_REUSE_PORT": "true",
        "JOURNEY_HOST": settings.host,
        "JOURNEY_PORT": str(settings.port),
    }
    children = []
    for _ in range(settings.processes - 1):
        children.append(
            await asyncio.create_subprocess_exec(sys.executable, "-m", "journey_engine", "serve", env=env)
        )
    log.info("started engine processes", extra={"fields": {"pids": [c.pid for c in children]}})
    return children


async def work(settings: Settings) -> None:
    """Webhook delivery and the decay sweep without the HTTP API (for extra worker processes)."""
    async with database(settings) as resolved:
        assert resolved.database_url is not None
        conn = await connect(resolved.database_url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        pool = await create_pool(resolved.database_url, min_size=1, max_size=resolved.pool_max_size)
        try:
            async with workers.running(pool, resolved) as tasks:
                log.info("worker running: webhook delivery and the decay sweep")
                failed = await _until_stopped(_stop_on_signals(), tasks)
        finally:
            await pool.close()
        log.info("stopped")
        if failed:
            raise JourneyError("a background task failed; the worker stopped (see the log above)")


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _until_stopped(stop: asyncio.Event, background: list[asyncio.Task[None]]) -> bool:
    """Wait for a stop signal or for a background task to end; True when a task ended (a failure)."""
    waiter = asyncio.create_task(stop.wait(), name="stop-signal")
    done, _ = await asyncio.wait([waiter, *background], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    for task in done:
        if task is not waiter:
            error = None if task.cancelled() else task.exception()
            log.error("background task %s ended unexpectedly: %r", task.get_name(), error)
            return True
    return False


def _print_first_key(key: workspaces.NewKey) -> None:
    print(
        "\nFirst start: created workspace 'default' "
        f"({key.workspace_id}) and an admin API key.\n"
        "Keep this token now; it is shown once and stored only as a hash:\n\n"
        f"    {key.token}\n\n"
        "Use it as 'Authorization: Bearer <token>'. Make more keys with:\n"
        f"    journey-engine key create --workspace {key.workspace_id} --scope read\n",
        flush=True,
    )


async def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    async with connection(settings):
        print("database is at the latest schema version")


async def cmd_workspace_create(settings: Settings, args: argparse.Namespace) -> None:
    async with connection(settings) as conn:
        created = await workspaces.create_workspace(conn, args.name, args.description)
    print(f"workspace {created.workspace_id} '{created.name}' created")


async def cmd_workspace_list(settings: Settings, args: argparse.Namespace) -> None:
    async with connection(settings) as conn:
        for found in await workspaces.list_workspaces(conn):
            print(f"{found.workspace_id}  {found.name}")


async def cmd_key_create(settings: Settings, args: argparse.Namespace) -> None:
    scopes = [s.strip() for chunk in args.scope for s in chunk.split(",") if s.strip()]
    async with connection(settings) as conn:
        found = await workspaces.find_workspace(conn, args.workspace)
        key = await workspaces.create_key(conn, found.workspace_id, scopes, args.name)
    print(f"key {key.key_id} for workspace {key.workspace_id} with scopes {', '.join(key.scopes)}")
    print("token (shown once, stored only as a hash):")
    print(key.token)


async def cmd_key_revoke(settings: Settings, args: argparse.Namespace) -> None:
    async with connection(settings) as conn:
        workspace_id = await workspaces.revoke_key(conn, args.key_id)
    print(f"key {args.key_id} of workspace {workspace_id} revoked (takes effect within 5 seconds)")


async def cmd_key_list(settings: Settings, args: argparse.Namespace) -> None:
    async with connection(settings) as conn:
        found = await workspaces.find_workspace(conn, args.workspace)
        for row in await workspaces.list_keys(conn, found.workspace_id):
            state = "revoked" if row["revoked_at"] else "active"
            print(f"{row['key_id']}  {state:7}  {','.join(row['scopes']):25}  {row['name']}")


async def cmd_history_token_create(settings: Settings, args: argparse.Namespace) -> None:
    async with connection(settings) as conn:
        found = await workspaces.find_workspace(conn, args.workspace)
        made = await history.create_token(conn, found.workspace_id, args.name)
    print(f"history token {made.token_id} for workspace {made.workspace_id}")
    print("the widget's SERVICE_HOME is the engine's address followed by this path (shown once):")
    print(made.base_path)


async def cmd_history_token_list(settings: Settings, args: argparse.Namespace) -> None:
    async with connection(settings) as conn:
        found = await workspaces.find_workspace(conn, args.workspace)
        for row in await history.list_tokens(conn, found.workspace_id):
            state = "revoked" if row["revoked_at"] else "active"
            print(f"{row['token_id']}  {state:7}  {row['name']}")


async def cmd_history_token_revoke(settings: Settings, args: argparse.Namespace) -> None:
    async with connection(settings) as conn:
        workspace_id = await history.revoke_token(conn, args.token_id)
    print(f"history token {args.token_id} of workspace {workspace_id} revoked")


async def cmd_worker(settings: Settings, args: argparse.Namespace) -> None:
    await work(settings)


async def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.processes is not None:
        overrides["processes"] = args.processes
    await serve(Settings.from_env(**overrides) if overrides else settings)  # validates the flags too


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="journey-engine",
        description="Journey Engine: customer-journey events, identities, profiles and actions.",
        epilog=SETTINGS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="migrate the database and serve the HTTP API until SIGINT/SIGTERM")
    p.add_argument("--host", help="address to listen on (default JOURNEY_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default JOURNEY_PORT or 8080)")
    p.add_argument(
        "--processes", type=int, help="engine processes sharing the port (default JOURNEY_PROCESSES or 1)"
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "worker", help="deliver webhooks and sweep aging profile values, without HTTP, until SIGINT/SIGTERM"
    )
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("migrate", help="bring the database schema up to date, then exit")
    p.set_defaults(func=cmd_migrate)

    ws = sub.add_parser("workspace", help="create or list workspaces").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = ws.add_parser("create", help="create a workspace and print its id")
    p.add_argument("name")
    p.add_argument("--description", default="")
    p.set_defaults(func=cmd_workspace_create)
    p = ws.add_parser("list", help="list workspaces")
    p.set_defaults(func=cmd_workspace_list)

    keys = sub.add_parser("key", help="create, list or revoke API keys").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = keys.add_parser("create", help="create an API key and print its token once")
    p.add_argument("--workspace", required=True, help="workspace id or name")
    p.add_argument(
        "--scope",
        action="append",
        required=True,
        help=f"one of {', '.join(SCOPES)}; repeat or comma-separate",
    )
    p.add_argument("--name", default="", help="a label for the key")
    p.set_defaults(func=cmd_key_create)
    p = keys.add_parser("revoke", help="revoke an API key by its id")
    p.add_argument("key_id")
    p.set_defaults(func=cmd_key_revoke)
    p = keys.add_parser("list", help="list a workspace's keys (never their tokens)")
    p.add_argument("--workspace", required=True, help="workspace id or name")
    p.set_defaults(func=cmd_key_list)

    tokens = sub.add_parser(
        "history-token", help="create, list or revoke the history widget's tokens"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    p = tokens.add_parser("create", help="create a history token and print the widget's base path once")
    p.add_argument("--workspace", required=True, help="workspace id or name")
    p.add_argument("--name", default="", help="a label for the token")
    p.set_defaults(func=cmd_history_token_create)
    p = tokens.add_parser("list", help="list a workspace's history tokens (never the tokens themselves)")
    p.add_argument("--workspace", required=True, help="workspace id or name")
    p.set_defaults(func=cmd_history_token_list)
    p = tokens.add_parser("revoke", help="revoke a history token by its id (takes effect at once)")
    p.add_argument("token_id")
    p.set_defaults(func=cmd_history_token_revoke)
    return parser


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (not on Windows; measured here: 16% less CPU per profile
    view than asyncio's own loop), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except JourneyError as exc:
        print(f"journey-engine: invalid settings: {exc.message}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    func: Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, None]] = args.func
    try:
        with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
            runner.run(func(settings, args))
    except JourneyError as exc:
        print(f"journey-engine: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
