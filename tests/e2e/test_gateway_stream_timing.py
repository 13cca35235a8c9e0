"""Streamed answers through the gateway keep the upstream's timing: the head reaches the
client as soon as upstream sent it (not held for the first chunk), and each chunk is passed
on when it arrives (never buffered to the end), while the bytes stay those of a direct call."""

from __future__ import annotations

import time

import aiohttp

from tests.e2e.procs import ServiceProcess
from tests.fixtures import GatewayFactory

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def _timed_stream(url: str, headers: dict[str, str]) -> tuple[float, list[tuple[float, bytes]]]:
    """Seconds to the response head, and each body read with its time."""
    reads: list[tuple[float, bytes]] = []
    async with aiohttp.ClientSession() as http:
        t0 = time.monotonic()
        async with http.post(url, json=CHAT, headers=headers) as r:
            assert r.status == 200
            head_at = time.monotonic() - t0
            async for data in r.content.iter_any():
                reads.append((time.monotonic() - t0, data))
    return head_at, reads


async def test_stream_head_and_chunks_keep_upstream_timing(
    gateway_factory: GatewayFactory, fake_upstream_proc: ServiceProcess
) -> None:
    gw = gateway_factory()
    # Four content chunks (+ the final one and [DONE]), each 250 ms after the previous one.
    fake = {"x-fake-chunks": "4", "x-fake-chunk-delay-ms": "250"}
    head_at, reads = await _timed_stream(
        f"{gw.url}/v1/proxy/openai/chat/completions", {"Authorization": "Bearer tok-alpha", **fake}
    )
    _, direct = await _timed_stream(
        f"{fake_upstream_proc.url}/v1/chat/completions", {"Authorization": "Bearer sk-x", **fake}
    )
    # The head left upstream at once; the first chunk 250 ms later: the client sees the head
    # well before that (it is not held back to share a write with the first chunk).
    assert head_at < 0.2, head_at
    assert reads[0][0] > 0.2
    # Chunks arrive spread over the stream's ~1.5 s, not together at its end.
    assert reads[-1][0] - reads[0][0] > 0.9
    assert len(reads) >= 4
    # The client did not ask for usage: it gets exactly what a direct call gets.
    assert b"".join(d for _, d in reads) == b"".join(d for _, d in direct)
