"""What a store gives the consumer loop: open, write a batch (all or nothing), close."""

from __future__ import annotations

from typing import Protocol

from services.sink.batch import Batch


class Store(Protocol):
    name: str

    async def open(self) -> None: ...

    async def write(self, batch: Batch) -> None:
        """Store every row of ``batch`` or none; raise StoreUnavailable / StoreRejected otherwise.

        Must be idempotent: the same rows may come again after a crash or a rebalance.
        """

    async def close(self) -> None: ...
