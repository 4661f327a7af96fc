"""The no-database baseline of ingest_single.py: validate the body with the engine's own code, answer 202.

No middleware, no authentication, no database, no logging: what is left is aiohttp plus
`journey_engine.cloudevents.parse_http`, called exactly as `journey_engine.api.ingest` calls it.

    python benchmarks/baseline_server.py --port 8081 [--reuse-port]
"""

from __future__ import annotations

import argparse

from aiohttp import web

from journey_engine.app import RUNNER_OPTIONS
from journey_engine.cloudevents import parse_http
from journey_engine.errors import JourneyError
from journey_engine.settings import Settings

SETTINGS = Settings()


async def post_events(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        parse_http(
            request.content_type if request.headers.get("Content-Type") else None,
            request.headers,
            body,
            default_region=SETTINGS.phone_region,
            max_events=SETTINGS.max_batch_events,
        )
    except JourneyError as exc:
        return web.json_response({"message": exc.message}, status=exc.status)
    return web.Response(status=202)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--reuse-port", action="store_true", help="share the port with other processes")
    args = parser.parse_args()
    app = web.Application(client_max_size=SETTINGS.max_body_bytes)
    app.router.add_post("/v1/workspaces/{workspace_id}/events", post_events)
    app.router.add_get("/healthz", healthz)
    web.run_app(
        app, host="127.0.0.1", port=args.port, reuse_port=args.reuse_port, print=None, **RUNNER_OPTIONS
    )


if __name__ == "__main__":
    main()
