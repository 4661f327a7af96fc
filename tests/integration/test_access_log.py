"""The access log: one JSON line per request, written by the engine's own formatter and handler."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from journey_engine.logs import BufferedStreamHandler, JsonFormatter
from tests.helpers import WorkspaceKey

Client = TestClient  # type: ignore[type-arg]
FIELDS = {
    "ts",
    "level",
    "logger",
    "msg",
    "method",
    "path",
    "status",
    "duration_ms",
    "trackingId",
    "workspace",
}


class Captured:
    """What the engine's handler wrote, as the raw text and as the access lines parsed."""

    def __init__(self, handler: BufferedStreamHandler, stream: io.StringIO) -> None:
        self._handler = handler
        self._stream = stream

    def text(self) -> str:
        self._handler.flush()
        return self._stream.getvalue()

    def access(self) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.text().splitlines()]
        return [line for line in lines if line["logger"] == "journey_engine.access"]


@pytest.fixture
def access_log() -> Iterator[Captured]:
    """The engine's handler and formatter on the root logger at INFO, as `logs.configure` sets them up."""
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield Captured(handler, stream)
    finally:
        root.setLevel(level)
        root.removeHandler(handler)
        handler.close()


async def test_each_request_writes_one_json_line_with_its_fields(
    api_client: Client, workspace: WorkspaceKey, access_log: Captured
) -> None:
    response = await api_client.get(f"/v1/workspaces/{workspace.workspace_id}", headers=workspace.headers)
    assert response.status == 200
    (line,) = access_log.access()
    assert set(line) == FIELDS
    assert line["level"] == "info"
    assert line["msg"] == "request"
    assert (line["method"], line["path"], line["status"]) == (
        "GET",
        f"/v1/workspaces/{workspace.workspace_id}",
        200,
    )
    assert line["trackingId"] == response.headers["TrackingID"]
    assert line["workspace"] == workspace.workspace_id
    assert isinstance(line["duration_ms"], float)


async def test_a_public_route_logs_no_workspace_and_the_clients_tracking_id(
    api_client: Client, access_log: Captured
) -> None:
    response = await api_client.get("/healthz", headers={"TrackingID": 'flow "7" \\ x'})
    assert response.status == 200
    (line,) = access_log.access()
    assert line["workspace"] is None
    assert line["trackingId"] == 'flow "7" \\ x'
    assert len(access_log.text().splitlines()) == 1


async def test_a_secret_path_is_logged_as_its_pattern_and_no_token_reaches_the_line(
    api_client: Client, workspace: WorkspaceKey, access_log: Captured
) -> None:
    made = await api_client.post(
        f"/v1/workspaces/{workspace.workspace_id}/history-tokens",
        json={"name": "w"},
        headers=workspace.headers,
    )
    assert made.status == 201
    history = await made.json()
    response = await api_client.get(f"{history['basePath']}/history", params={"username": "cust-1"})
    assert response.status < 500
    await api_client.get(f"/v1/workspaces/{workspace.workspace_id}", params={"bearerToken": workspace.token})
    lines = access_log.access()
    assert [line["path"] for line in lines] == [
        f"/v1/workspaces/{workspace.workspace_id}/history-tokens",
        "/rch/{token}/history",
        f"/v1/workspaces/{workspace.workspace_id}",
    ]
    text = access_log.text()
    for token in (history["token"], workspace.token):  # `je_` or `jh_`, 16 hex digits, `_`, the secret
        assert token[len("je_0123456789abcdef_") :] not in text
    assert "?" not in text and "bearerToken" not in text and "username" not in text


async def test_the_warning_level_silences_the_access_lines(
    api_client: Client, workspace: WorkspaceKey, access_log: Captured
) -> None:
    logging.getLogger().setLevel(logging.WARNING)  # what JOURNEY_LOG_LEVEL=WARNING configures
    await api_client.get(f"/v1/workspaces/{workspace.workspace_id}", headers=workspace.headers)
    await api_client.get("/v1/nothing-here")
    assert access_log.text() == ""


async def test_tracking_ids_differ_per_request(api_client: Client, access_log: Captured) -> None:
    answered = [(await api_client.get("/healthz")).headers["TrackingID"] for _ in range(50)]
    assert len(set(answered)) == 50
    assert all(i.startswith("JE_") for i in answered)
    assert [line["trackingId"] for line in access_log.access()] == answered


# --- the engine as a process: stderr ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def engine(fresh_database: str) -> AsyncIterator[Callable[..., Any]]:
    """Start `journey-engine serve` at a log level; yields its process and URL once /healthz answers."""
    started: list[asyncio.subprocess.Process] = []

    async def start(level: str) -> tuple[asyncio.subprocess.Process, str]:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
        env.update(DATABASE_URL=fresh_database, JOURNEY_LOG_LEVEL=level, JOURNEY_PORT=str(port))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "journey_engine", "serve",
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                try:
                    async with session.get(f"{url}/healthz") as response:
                        if response.status == 200:
                            return process, url
                except aiohttp.ClientConnectionError:
                    pass
                assert process.returncode is None, "the engine stopped while starting"
                await asyncio.sleep(0.1)
        raise AssertionError("the engine did not start")

    yield start
    for process in started:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _get(url: str, tracking_id: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(url, headers={"TrackingID": tracking_id}):
        pass


async def _stop(process: asyncio.subprocess.Process) -> list[str]:
    """Stop the engine as a service manager does; its remaining stderr lines."""
    process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()[-2000:]
    return err.decode().splitlines()


def _access_lines(lines: list[str]) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in lines if line.startswith("{")]
    return [line for line in parsed if line["logger"] == "journey_engine.access"]


async def test_the_engine_writes_access_lines_to_stderr_soon_and_all_by_exit(
    engine: Callable[..., Any],
) -> None:
    process, url = await engine("INFO")
    await _get(f"{url}/readyz", "probe-running")
    seen: list[str] = []
    async with asyncio.timeout(10):  # written by the flush timer while the engine runs, not at exit
        while not any(line["trackingId"] == "probe-running" for line in _access_lines(seen)):
            seen.append((await process.stderr.readline()).decode())
    await _get(f"{url}/readyz", "probe-last")
    rest = await _stop(process)
    assert [line["path"] for line in _access_lines(rest) if line["trackingId"] == "probe-last"] == ["/readyz"]
    for line in _access_lines(seen + rest):
        assert set(line) == FIELDS


async def test_the_engine_at_log_level_warning_writes_no_access_lines(engine: Callable[..., Any]) -> None:
    process, url = await engine("WARNING")
    await _get(f"{url}/readyz", "probe")
    assert _access_lines(await _stop(process)) == []
