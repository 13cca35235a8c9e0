"""A bounded on-disk spool of Kafka records, replayed in order.

Records are appended to the open segment file with a length-prefixed frame and flushed to
the OS at once, so a crash of the gateway process (even SIGKILL) loses nothing already
spooled; a crash of the machine (power loss, kernel panic) can lose what the OS had not yet
written to disk, as nothing is fsynced on the hot path. A torn frame at the end of a segment
(crash mid-write) is detected and skipped when read.

Segments are named by a growing sequence number; the replayer seals the open segment,
reads the oldest sealed one, and deletes it only after every record in it was acknowledged.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">HHI")  # topic length, key length, value length


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: bytes
    value: bytes

    def frame(self) -> bytes:
        t = self.topic.encode()
        return _HEADER.pack(len(t), len(self.key), len(self.value)) + t + self.key + self.value


class SpoolFull(Exception):
    """The spool is at its byte bound; the record was not written."""


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self._dir = directory
        self._max = max_bytes
        self._dir.mkdir(parents=True, exist_ok=True)
        existing = self._segments()
        self._next_seq = (int(existing[-1].stem) + 1) if existing else 0
        self._bytes = sum(p.stat().st_size for p in existing)
        self._open: BinaryIO | None = None
        self._open_path: Path | None = None

    @property
    def size(self) -> int:
        return self._bytes

    def empty(self) -> bool:
        return self._bytes == 0

    def _segments(self) -> list[Path]:
        return sorted(self._dir.glob("*.seg"), key=lambda p: int(p.stem))

    def append(self, records: list[Record]) -> int:
        """Write records in order; returns how many were written before the bound was hit."""
        written = 0
        for rec in records:
            frame = rec.frame()
            if self._bytes + len(frame) > self._max:
                break
            if self._open is None:
                self._open_path = self._dir / f"{self._next_seq:012d}.seg"
                self._next_seq += 1
                self._open = self._open_path.open("ab")
            self._open.write(frame)
            self._bytes += len(frame)
            written += 1
        if self._open is not None:
            self._open.flush()
        return written

    def seal(self) -> None:
        # No fsync here: it would stall the event loop (and every call) on a busy disk.
        if self._open is not None:
            self._open.flush()
            self._open.close()
            self._open = None
            self._open_path = None

    def oldest(self) -> tuple[Path, list[Record]] | None:
        """The oldest sealed segment and its records (sealing the open one if it is the only one)."""
        sealed = [p for p in self._segments() if p != self._open_path]
        if not sealed:
            if self._open is None:
                return None
            self.seal()
            sealed = self._segments()
            if not sealed:
                return None
        path = sealed[0]
        return path, _read(path)

    def remove(self, path: Path) -> None:
        size = path.stat().st_size
        path.unlink()
        self._bytes = max(0, self._bytes - size)

    def rewrite(self, path: Path, records: list[Record]) -> None:
        """Replace a sealed segment by the subset of its records still to send (same order)."""
        before = path.stat().st_size
        after = _rewrite(path, records)
        self._bytes = max(0, self._bytes - before + after)

    def close(self) -> None:
        self.seal()


def _read(path: Path) -> list[Record]:
    data = path.read_bytes()
    out: list[Record] = []
    pos = 0
    while pos + _HEADER.size <= len(data):
        tl, kl, vl = _HEADER.unpack_from(data, pos)
        start = pos + _HEADER.size
        end = start + tl + kl + vl
        if end > len(data):
            break
        topic = data[start : start + tl].decode()
        key = data[start + tl : start + tl + kl]
        value = data[start + tl + kl : end]
        out.append(Record(topic, key, value))
        pos = end
    if pos != len(data):
        log.warning("spool segment %s ends with a torn record (%d bytes skipped)", path.name, len(data) - pos)
    return out


def _rewrite(path: Path, records: list[Record]) -> int:
    tmp = path.with_suffix(".tmp")
    data = b"".join(r.frame() for r in records)
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(data)
