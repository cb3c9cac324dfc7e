"""A stand-in for the cloud PBX's HTTPS API in the lab: answers health checks and records webhooks.

Run inside the cloud namespace: `python -m gateway.lab.cloud_api --host H --port P --cert C --key K --log F`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys

from aiohttp import web


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as log:
        log.write(line + "\n")


def build(log_path: str) -> web.Application:
    """The app: GET / answers 200; POST /hooks/{name} appends the request to the log as one JSON line."""
    app = web.Application()

    async def root(_request: web.Request) -> web.Response:
        return web.json_response({"service": "lab cloud api", "ok": True})

    async def hook(request: web.Request) -> web.Response:
        entry = {"path": request.path, "headers": dict(request.headers), "body": (await request.read()).decode()}
        await asyncio.to_thread(_append, log_path, json.dumps(entry))
        return web.Response(status=204)

    app.router.add_get("/", root)
    app.router.add_post("/hooks/{name}", hook)
    return app


def main(argv: list[str] | None = None) -> int:
    """Serve until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args(argv)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    web.run_app(build(args.log), host=args.host, port=args.port, ssl_context=context, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
