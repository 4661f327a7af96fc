"""HTTP routes: the native `/v1` API and the JDS-compatible paths."""

from journey_engine.api import events, health, ingest, workspaces

ROUTE_TABLES = (health.routes, ingest.routes, events.routes, workspaces.routes)

__all__ = ["ROUTE_TABLES"]
