"""The `journey-engine` command as a user runs it: a real process, real signals, real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from journey_engine.sql import LATEST_VERSION
from tests.helpers import WebhookReceiver

TOKEN = re.compile(r"je_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_") and k != "DATABASE_URL"}
    env.update(extra)
    return env


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "journey_engine", *args],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class Served:
    process: asyncio.subprocess.Process
    url: str
    stdout: str = ""


@pytest.fixture
async def serve() -> AsyncIterator[object]:
    """Start `journey-engine serve` with the given environment; wait until /healthz answers."""
    started: list[Served] = []

    async def start(**env: str) -> Served:
        port = _free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "journey_engine",
            "serve",
            "--port",
            str(port),
            env=_env(**env),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        served = Served(process, f"http://127.0.0.1:{port}")
        started.append(served)
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                try:
                    async with session.get(f"{served.url}/healthz") as response:
                        if response.status == 200:
                            return served
                except aiohttp.ClientConnectionError:
                    pass
                if process.returncode is not None:
                    break
                await asyncio.sleep(0.1)
        err = await process.stderr.read() if process.stderr else b""
        raise AssertionError(f"engine did not start: {err.decode()[-2000:]}")

    async def stop(served: Served) -> tuple[int, str, str]:
        served.process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(served.process.communicate(), 30)
        return served.process.returncode or 0, out.decode(), err.decode()

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    for served in started:
        if served.process.returncode is None:
            served.process.kill()
            await served.process.wait()


async def _get(url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.json()


def _postgres_running_in(data_dir: Path) -> bool:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return any(
        line.startswith(str(Path(sys.prefix).parent)) is False and f"-D {data_dir}" in line
        for line in out.splitlines()
        if "postgres" in line
    )


async def test_serve_on_embedded_postgres_prints_a_key_once_and_stops_cleanly(
    serve: object, tmp_path: Path
) -> None:
    data_dir = tmp_path / "engine-data"
    served = await serve(JOURNEY_DATA_DIR=str(data_dir))  # type: ignore[operator]
    assert (await _get(f"{served.url}/readyz"))[0] == 200
    code, out, err = await serve.stop(served)  # type: ignore[attr-defined]
    assert code == 0, err[-2000:]
    assert str(data_dir) in err
    tokens = TOKEN.findall(out)
    assert len(tokens) == 1
    assert tokens[0] not in err
    assert not _postgres_running_in(data_dir)

    again = await serve(JOURNEY_DATA_DIR=str(data_dir))  # type: ignore[operator]
    workspace = re.search(r"\(([0-9a-f]{24})\)", out)
    assert workspace is not None
    status, _ = await _get(f"{again.url}/v1/workspaces/{workspace.group(1)}")
    assert status == 401
    status, body = await _get(f"{again.url}/v1/workspaces/{workspace.group(1)}", tokens[0])
    assert status == 200, body
    code, out, _ = await serve.stop(again)  # type: ignore[attr-defined]
    assert code == 0
    assert TOKEN.findall(out) == []


async def test_serve_with_database_url_answers_ready(serve: object, fresh_database: str) -> None:
    served = await serve(DATABASE_URL=fresh_database)  # type: ignore[operator]
    assert await _get(f"{served.url}/readyz") == (200, {"status": "ready", "schemaVersion": LATEST_VERSION})
    code, _, err = await serve.stop(served)  # type: ignore[attr-defined]
    assert code == 0, err


def test_workspace_and_key_commands(fresh_database: str) -> None:
    created = run_cli("workspace", "create", "support", DATABASE_URL=fresh_database)
    assert created.returncode == 0, created.stderr
    workspace_id = re.search(r"[0-9a-f]{24}", created.stdout)
    assert workspace_id
    key = run_cli(
        "key", "create", "--workspace", "support", "--scope", "read,events:write", DATABASE_URL=fresh_database
    )
    assert key.returncode == 0, key.stderr
    assert len(TOKEN.findall(key.stdout)) == 1
    key_id = re.search(r"key ([0-9a-f]{16})", key.stdout)
    assert key_id
    listed = run_cli("key", "list", "--workspace", workspace_id.group(0), DATABASE_URL=fresh_database)
    assert key_id.group(1) in listed.stdout
    assert TOKEN.findall(listed.stdout) == []
    revoked = run_cli("key", "revoke", key_id.group(1), DATABASE_URL=fresh_database)
    assert revoked.returncode == 0
    again = run_cli("key", "revoke", key_id.group(1), DATABASE_URL=fresh_database)
    assert again.returncode == 1
    assert "already revoked" in again.stderr
    duplicate = run_cli("workspace", "create", "support", DATABASE_URL=fresh_database)
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr


def test_bad_scope_is_refused(fresh_database: str) -> None:
    run_cli("workspace", "create", "w", DATABASE_URL=fresh_database)
    result = run_cli("key", "create", "--workspace", "w", "--scope", "root", DATABASE_URL=fresh_database)
    assert result.returncode == 1
    assert "scopes" in result.stderr


def test_invalid_setting_stops_start_naming_the_variable() -> None:
    result = run_cli("serve", JOURNEY_PORT="eighty")
    assert result.returncode == 2
    assert "JOURNEY_PORT" in result.stderr


def test_help_explains_each_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("serve", "migrate", "workspace", "key"):
        assert command in result.stdout
    assert "DATABASE_URL" in result.stdout


async def test_sigterm_lets_in_flight_ingest_finish_before_exit(serve: object, fresh_database: str) -> None:
    from journey_engine import workspaces
    from journey_engine.db import connect

    conn = await connect(fresh_database)
    try:
        served = await serve(DATABASE_URL=fresh_database)  # type: ignore[operator]
        created = await workspaces.create_workspace(conn, "w")
        key = await workspaces.create_key(conn, created.workspace_id, ["events:write"])
        event = {
            "id": "inflight", "specversion": "1.0", "type": "t", "source": "s",
            "identity": "v-1", "identitytype": "temporaryId",
        }  # fmt: skip
        lock = conn.transaction()
        await lock.start()
        await conn.execute("LOCK TABLE events IN EXCLUSIVE MODE")
        async with aiohttp.ClientSession() as session:
            posting = asyncio.create_task(
                session.post(
                    f"{served.url}/v1/workspaces/{created.workspace_id}/events",
                    json=event,
                    headers={"Authorization": f"Bearer {key.token}"},
                )
            )
            await asyncio.sleep(0.5)
            served.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            assert served.process.returncode is None  # still draining
            await lock.rollback()
            response = await posting
            assert response.status == 202
        assert await asyncio.wait_for(served.process.wait(), 30) == 0
        assert await conn.fetchval("SELECT count(*) FROM events WHERE id = 'inflight'") == 1
    finally:
        await conn.close()


async def test_worker_process_delivers_webhooks_from_the_outbox(
    fresh_database: str, webhook_receiver: WebhookReceiver
) -> None:
    from datetime import UTC, datetime

    from actions import catalog as actions_catalog
    from actions.models import ActionSpec
    from journey_engine import workspaces
    from journey_engine.cloudevents import parse_event
    from journey_engine.db import connect
    from journey_engine.events import EventRow
    from journey_engine.pipeline import IngestPipeline
    from profiles import catalog

    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "journey_engine", "worker",
        env=_env(DATABASE_URL=fresh_database), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    conn = await connect(fresh_database)
    try:
        created = await workspaces.create_workspace(conn, "w")
        default = await catalog.find(conn, created.workspace_id, "journey-default-template")
        assert default is not None
        spec = ActionSpec.model_validate(
            {"name": "a", "rules": "task:new,origin,string,Count GTE 1",
             "actionTriggers": [{"type": "Webhook", "webhookURL": f"{webhook_receiver.url}/hook"}]}
        )  # fmt: skip
        await actions_catalog.create(conn, created.workspace_id, default.template_id, default.spec, spec, "t")
        event = parse_event(
            {"id": "1", "specversion": "1.0", "type": "task:new", "source": "cc", "identity": "c-1",
             "identitytype": "customerId", "data": {"origin": "+1555"}},
            default_region="US",
        )  # fmt: skip
        async with conn.transaction():
            await IngestPipeline("US")(conn, [EventRow(created.workspace_id, event, datetime.now(UTC))])
        (got,) = await webhook_receiver.wait_for(1, within=15)
        assert got.path == "/hook"
    finally:
        await conn.close()
        worker.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(worker.communicate(), 30)
    assert worker.returncode == 0, err.decode()[-2000:]


async def test_serve_with_two_processes_shares_the_port_and_stops_both(
    serve: object, fresh_database: str
) -> None:
    served = await serve(DATABASE_URL=fresh_database, JOURNEY_PROCESSES="2")  # type: ignore[operator]
    children: list[int] = []
    for _ in range(100):
        children = await asyncio.to_thread(_children_of, served.process.pid)
        if children:
            break
        await asyncio.sleep(0.1)
    assert len(children) == 1
    async with aiohttp.ClientSession() as session:
        for _ in range(20):  # new connections land on either process; all are served
            async with session.get(f"{served.url}/readyz", headers={"Connection": "close"}) as response:
                assert response.status == 200
    code, _, err = await serve.stop(served)  # type: ignore[attr-defined]
    assert code == 0, err[-2000:]
    assert not await asyncio.to_thread(_alive, children)


def _children_of(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in out.stdout.split()]


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        status = Path(f"/proc/{pid}/status")
        if status.exists() and "zombie" not in status.read_text().lower():
            alive.append(pid)
    return alive


def test_processes_flag_is_validated() -> None:
    result = run_cli("serve", "--processes", "0")
    assert result.returncode == 1
    assert "JOURNEY_PROCESSES" in result.stderr
