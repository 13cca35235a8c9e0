"""The on-disk spool: order, bound, reopen after a restart, torn tail."""

from __future__ import annotations

from pathlib import Path

from services.gateway.spool import Record, Spool


def _recs(n: int, start: int = 0) -> list[Record]:
    return [Record("calls", f"k{i}".encode(), f"v{i}".encode()) for i in range(start, start + n)]


def _drain(spool: Spool) -> list[Record]:
    out: list[Record] = []
    while (seg := spool.oldest()) is not None:
        path, recs = seg
        out.extend(recs)
        spool.remove(path)
    return out


def test_order_is_kept_across_segments_and_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    assert spool.append(_recs(5)) == 5
    first = spool.oldest()
    assert first is not None
    assert spool.append(_recs(5, 5)) == 5  # a new segment while the first is being replayed
    spool.close()
    reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert reopened.size > 0
    assert _drain(reopened) == _recs(10)
    assert reopened.empty()


def test_bound_refuses_what_does_not_fit(tmp_path: Path) -> None:
    one = len(_recs(1)[0].frame())
    spool = Spool(tmp_path, max_bytes=one * 3)
    assert spool.append(_recs(5)) == 3
    assert spool.append(_recs(1)) == 0
    assert _drain(spool) == _recs(3)


def test_rewrite_keeps_only_unsent(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(_recs(4))
    seg = spool.oldest()
    assert seg is not None
    spool.rewrite(seg[0], seg[1][2:])
    assert _drain(spool) == _recs(2, 2)
    assert spool.size == 0


def test_torn_tail_is_skipped(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(_recs(3))
    spool.close()
    seg = sorted(tmp_path.glob("*.seg"))[0]
    seg.write_bytes(seg.read_bytes()[:-2])
    assert _drain(Spool(tmp_path, max_bytes=1 << 20)) == _recs(2)
