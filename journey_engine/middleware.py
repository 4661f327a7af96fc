"""Request middleware: tracking ids, the access log, JSON errors, and authentication.

Every route declares its access with `@access("read")` (a scope) or `@access(None)` (public);
`check_routes` refuses to build an app with an undeclared route, so no route is open by accident.
A key reaches only its own workspace: a path naming another workspace answers 404, as if it did not exist.
A route whose path holds a credential declares `secret_path=True`: the access log then records its
pattern (`/rch/{token}/history`), never the path itself. A route a browser page on another origin calls
declares `cors=True`: every answer of it, errors included, carries `Access-Control-Allow-Origin: *`.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, TypeVar

from aiohttp import web

from journey_engine.context import KEY_VERIFIER, POOL
from journey_engine.errors import (
    Forbidden,
    JourneyError,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    Problem,
    Unauthorized,
)
from journey_engine.responses import json_response
from journey_engine.workspaces import Principal

log = logging.getLogger("journey_engine.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

PRINCIPAL = web.RequestKey("principal", Principal)
TRACKING_ID = web.RequestKey("tracking_id", str)
JDS_PREFIXES = ("/admin/v1/api/", "/publish/v1/api/", "/v1/api/")
_ACCESS = "__journey_access__"
_QUERY_TOKEN = "__journey_query_token__"
_SECRET_PATH = "__journey_secret_path__"
_CORS = "__journey_cors__"
CORS_HEADERS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "TrackingID"}
_JDS_REASONS = {413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}


def access(
    scope: str | None, *, query_token: bool = False, secret_path: bool = False, cors: bool = False
) -> Callable[[H], H]:
    """Declare what a route needs: a scope, or None for a public route.

    `query_token` also accepts the token as `?bearerToken=` (EventSource clients cannot set headers);
    `secret_path` keeps the path out of the access log; `cors` lets pages of any origin read the answers.
    """

    def mark(handler: H) -> H:
        setattr(handler, _ACCESS, scope)
        setattr(handler, _QUERY_TOKEN, query_token)
        setattr(handler, _SECRET_PATH, secret_path)
        setattr(handler, _CORS, cors)
        return handler

    return mark


def check_routes(app: web.Application) -> None:
    for route in app.router.routes():
        if route.method != "HEAD" and not hasattr(route.handler, _ACCESS):
            raise RuntimeError(f"route {route.method} {route.resource} declares no @access")


def is_jds(path: str) -> bool:
    return path.startswith(JDS_PREFIXES)


def error_response(
    request: web.Request, status: int, message: str, problems: list[Problem] | None = None
) -> web.Response:
    """The error body: JDS's shape on JDS paths, ours elsewhere; both carry the trackingId."""
    tracking_id = request.get(TRACKING_ID, "")
    problems = problems or []
    body: dict[str, Any]
    if is_jds(request.path):
        reason = _JDS_REASONS.get(status) or HTTPStatus(status).phrase.upper().replace(" ", "_")
        body = {
            "status": f"{status} {reason}",
            "message": message,
            "errors": [str(p) for p in problems],
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "trackingId": tracking_id,
        }
    else:
        body = {
            "status": status,
            "error": HTTPStatus(status).phrase,
            "message": message,
            "errors": [p.as_json() for p in problems],
            "trackingId": tracking_id,
        }
    return json_response(body, status=status)


class TrackingIds:
    """`JE_`, 12 random hex digits drawn per process (a forked child draws its own), then a counter in hex.

    Unique across processes and restarts while no two processes draw the same 48 bits, and a fifth of
    the cost of a uuid4. The engine makes one per process.
    """

    def __init__(self) -> None:
        self._reseed()
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._prefix = f"JE_{secrets.token_hex(6)}"
        self._serial = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._serial):x}"


_new_tracking_id = TrackingIds()


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: give the request a tracking id, turn every failure into JSON, write the access line."""
    tracking_id = request.headers.get("TrackingID", "")[:128] or _new_tracking_id()
    request[TRACKING_ID] = tracking_id
    started = time.perf_counter()
    response: web.StreamResponse
    try:
        response = await handler(request)
    except JourneyError as exc:
        response = error_response(request, exc.status, exc.message, exc.problems)
        if isinstance(exc, Overloaded):
            response.headers["Retry-After"] = str(exc.retry_after)
    except web.HTTPRequestEntityTooLarge as exc:
        response = error_response(request, 413, PayloadTooLarge(exc.text).message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(request, exc.status, exc.reason)
        if exc.status == 405:
            response.headers["Allow"] = exc.headers.get("Allow", "")
    except Exception:
        log.exception("unhandled error", extra={"fields": {"trackingId": tracking_id}})
        response = error_response(request, 500, "Internal server error")
    if not response.prepared:
        response.headers["TrackingID"] = tracking_id
        if getattr(request.match_info.handler, _CORS, False):
            response.headers.update(CORS_HEADERS)
    if log.isEnabledFor(logging.INFO):
        _log_access(request, response.status, started, tracking_id)
    return response


def _log_access(request: web.Request, status: int, started: float, tracking_id: str) -> None:
    """`log.info("request", extra={"fields": ...})`, less the caller lookup that nothing reads."""
    principal = request.get(PRINCIPAL)
    fields = {
        "method": request.method,
        "path": _logged_path(request),
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "trackingId": tracking_id,
        "workspace": principal.workspace_id if principal else None,
    }
    log.handle(
        log.makeRecord(
            log.name, logging.INFO, __file__, 0, "request", (), None, "request_context", {"fields": fields}
        )
    )


def _logged_path(request: web.Request) -> str:
    """The path, or for a `secret_path` route the pattern it matched."""
    if not getattr(request.match_info.handler, _SECRET_PATH, False):
        return request.path
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(redacted)"


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check the route's declared access against the bearer token's key."""
    route_handler = request.match_info.handler
    if not hasattr(route_handler, _ACCESS):  # 404/405 answers of the router itself
        return await handler(request)
    scope: str | None = getattr(route_handler, _ACCESS)
    if scope is None:
        return await handler(request)
    token = _bearer(request, allow_query=getattr(route_handler, _QUERY_TOKEN, False))
    verifier = request.app[KEY_VERIFIER]
    found = await verifier.verify(request.app[POOL], token) if token else None
    if found is None:
        raise Unauthorized("Missing or invalid API key: send 'Authorization: Bearer <key>'")
    request[PRINCIPAL] = found
    workspace = request.match_info.get("workspace_id") or request.query.get("workspaceId")
    if workspace is not None and workspace != found.workspace_id:
        raise NotFound(f"workspace '{workspace}' not found")
    if not found.allows(scope):
        raise Forbidden(f"this API key lacks the '{scope}' scope")
    return await handler(request)


def _bearer(request: web.Request, *, allow_query: bool) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if allow_query:
        return request.query.get("bearerToken") or None
    return None


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]
