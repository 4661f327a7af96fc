"""A webhook receiver for the benchmarks, in a process of its own (aiohttp, 127.0.0.1 only).

Every request to `/hook` is recorded: arrival time (`time.monotonic()`, CLOCK_MONOTONIC on Linux, the
clock `openloop.py` uses too), its `webhook-id` header, the `identity` member of its JSON body, and the
status it was answered with: `--status` (200; 503 plays a receiver that is up but failing), switched at
run time by `POST /_control?status=N`. `GET /_records` returns the records as JSON columns; `GET /_ping`
answers 200 (readiness).

    python benchmarks/webhook_receiver.py --port P [--status 503]
"""

from __future__ import annotations

import argparse
import json
import time

from aiohttp import web

STATUS = web.AppKey("status", list)
RECORDS = web.AppKey("records", dict)


async def hook(request: web.Request) -> web.Response:
    at = time.monotonic()
    body = await request.read()
    try:
        identity = json.loads(body).get("identity")
    except (ValueError, AttributeError):
        identity = None
    status = request.app[STATUS][0]
    records = request.app[RECORDS]
    records["at"].append(at)
    records["webhook_id"].append(request.headers.get("webhook-id"))
    records["identity"].append(identity)
    records["status"].append(status)
    return web.Response(status=status)


async def control(request: web.Request) -> web.Response:
    request.app[STATUS][0] = int(request.query["status"])
    return web.Response(status=200)


async def get_records(request: web.Request) -> web.Response:
    return web.Response(body=json.dumps(request.app[RECORDS]), content_type="application/json")


async def ping(request: web.Request) -> web.Response:
    return web.Response(status=200)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--status", type=int, default=200, help="status of every answer to /hook (default 200)"
    )
    args = parser.parse_args()
    app = web.Application()
    app[STATUS] = [args.status]
    app[RECORDS] = {"at": [], "webhook_id": [], "identity": [], "status": []}
    app.router.add_post("/hook", hook)
    app.router.add_post("/_control", control)
    app.router.add_get("/_records", get_records)
    app.router.add_get("/_ping", ping)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
