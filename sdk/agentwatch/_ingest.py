"""Direct mode: usage of calls made straight to the provider, reported to ``POST /v1/ingest``.

Records wait in a bounded in-memory queue and a daemon thread posts them in batches,
retrying with capped exponential backoff while the gateway is unreachable. At interpreter
exit the queue is flushed for up to ``flush_timeout_s``. What is still queued after that, or
pushed out of a full queue, is lost and logged: direct mode trades that for never blocking
or failing the agent's own call.
"""

from __future__ import annotations

import atexit
import logging
import queue
import random
import threading
import time
from typing import Any

import httpx

log = logging.getLogger("agentwatch")

MAX_BATCH = 100


class UsageReporter:
    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        max_queue: int = 10_000,
        flush_timeout_s: float = 5.0,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._url = f"{url}/v1/ingest"
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=max_queue)
        self._flush_timeout_s = flush_timeout_s
        self._max_backoff_s = max_backoff_s
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="agentwatch-ingest", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    @property
    def dropped(self) -> int:
        return self._dropped

    def report(self, record: dict[str, Any]) -> None:
        self._idle.clear()
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._dropped += 1
            log.warning("AgentWatch usage queue full: dropped the record of call %s", record.get("call_id"))

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued record was accepted by the gateway; False on timeout."""
        deadline = time.monotonic() + (self._flush_timeout_s if timeout_s is None else timeout_s)
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return self._queue.unfinished_tasks == 0

    def close(self) -> None:
        if self._stop.is_set():
            return
        if not self.flush():
            log.warning("AgentWatch: %d usage records not delivered at exit", self._queue.unfinished_tasks)
        self._stop.set()

    def _take_batch(self) -> list[dict[str, Any]]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(5.0), headers=self._headers) as client:
            while not self._stop.is_set():
                batch = self._take_batch()
                if batch:
                    self._deliver(client, batch)

    def _deliver(self, client: httpx.Client, batch: list[dict[str, Any]]) -> None:
        attempt = 0
        try:
            while not self._stop.is_set():
                try:
                    resp = client.post(self._url, json={"calls": batch})
                except httpx.HTTPError:
                    resp = None
                if resp is not None and resp.status_code < 500 and resp.status_code != 429:
                    if resp.status_code >= 400:
                        # A record the gateway rejects will not become valid by retrying.
                        log.warning("AgentWatch ingest refused %d records: HTTP %d", len(batch), resp.status_code)
                    return
                attempt += 1
                delay = min(self._max_backoff_s, 0.1 * 2**attempt)
                time.sleep(delay * (0.5 + random.random() / 2))
        finally:
            for _ in batch:
                self._queue.task_done()
