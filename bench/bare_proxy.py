"""The ceiling Python allows: a bare aiohttp pass-through proxy, no AgentWatch logic.

It reads the body, parses its JSON, forwards it upstream on a pooled keep-alive session,
reads the usage from the answer and returns it. What AgentWatch's gateway adds on top of
this is what the benchmark compares.

    python bench/bare_proxy.py --port 8300 --upstream http://127.0.0.1:8200
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
import msgspec
import uvloop
from aiohttp import web

UPSTREAM = web.AppKey("upstream", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)
_decode = msgspec.json.Decoder()


async def forward(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    parsed = _decode.decode(body) if body else {}
    url = f"{request.app[UPSTREAM]}/{request.match_info['path']}"
    async with request.app[SESSION].request(
        request.method, url, data=body, headers={"Content-Type": "application/json", "Authorization": "Bearer k"}
    ) as upstream:
        if parsed.get("stream"):
            resp = web.StreamResponse(status=upstream.status, headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            async for chunk in upstream.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp
        data = await upstream.read()
        usage = _decode.decode(data).get("usage") if data else None
        del usage  # read, as a gateway would, then dropped
        return web.Response(body=data, status=upstream.status, content_type="application/json")


async def _session(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector) as session:
        app[SESSION] = session
        yield


def create_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(_session)
    app.router.add_route("*", "/{path:.*}", forward)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8300)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    uvloop.install()
    web.run_app(create_app(args.upstream), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
