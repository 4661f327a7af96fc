"""Typed keys for what the app holds: settings and the long-lived resources opened at start."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from journey_engine.ingest import Batcher
from journey_engine.settings import Settings
from journey_engine.workspaces import KeyVerifier

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
KEY_VERIFIER = web.AppKey("key_verifier", KeyVerifier)
BATCHER = web.AppKey("batcher", Batcher)
# Long-running tasks of the app (batcher, workers...); `serve` stops the engine if one ends unexpectedly.
BACKGROUND = web.AppKey("background", list)
