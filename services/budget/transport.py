"""A Faust app whose Kafka consumer waits at most a few milliseconds in a broker fetch.

Faust's aiokafka driver hard-codes ``fetch_max_wait_ms=1500``. aiokafka keeps at most one
fetch in flight per broker and leaves out of it every partition whose records are still
buffered; once those are consumed they can only be fetched again when the in-flight fetch
returns. When that fetch holds only idle partitions (the controls and reservations topics,
usually) the broker parks it for the full wait, so a busy partition stalled for up to 1.5 s
at a time: the CallFinished -> replica lag measured 1.5 s at p50 from 100 calls/s on, with
the worker mostly idle (bench/RESULTS.md). A short wait bounds that stall; an idle worker
then sends a few more empty fetches per second, which costs next to nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT


class FetchWaitError(RuntimeError):
    """The installed aiokafka no longer has the attribute this module tunes."""


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # The fetcher is built from this attribute in start(), which has not run yet.
        if not hasattr(consumer, "_fetch_max_wait_ms"):
            raise FetchWaitError(
                "aiokafka.AIOKafkaConsumer has no _fetch_max_wait_ms; update services/budget/transport.py"
            )
        consumer._fetch_max_wait_ms = getattr(self.app, "fetch_max_wait_ms", 1500)
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer: ClassVar[Any] = _Consumer


class ShortFetchApp(faust.App):
    """``faust.App`` whose worker consumer uses ``fetch_max_wait_ms`` instead of 1500 ms."""

    def __init__(self, id: str, *, fetch_max_wait_ms: int, **options: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(id, **options)

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)
