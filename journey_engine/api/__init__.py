"""HTTP routes: the native `/v1` API and the JDS-compatible paths."""

from journey_engine.api import (
    actions,
    deliveries,
    events,
    health,
    history,
    ingest,
    persons,
    persons_native,
    profiles,
    templates,
    workspaces,
)

ROUTE_TABLES = (
    health.routes,
    ingest.routes,
    events.routes,
    workspaces.routes,
    persons.routes,
    persons_native.routes,
    templates.routes,
    profiles.routes,
    history.routes,
    actions.routes,
    deliveries.routes,
)

__all__ = ["ROUTE_TABLES"]
