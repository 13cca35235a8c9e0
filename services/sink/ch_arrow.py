"""Decoded events → one Arrow IPC stream per ClickHouse table, built column by column.

ClickHouse reads Arrow natively: no text to parse, and on our side one C-level conversion per
column instead of a tuple and a JSON line per row. The column types here are the ClickHouse
columns' own (``ch_schema``), so a value that does not fit (a negative token count, a cost
beyond ``Decimal(20, 9)``) fails here, before anything is written, as ``StoreDataError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from operator import attrgetter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from services.common.events import Alert
from services.sink.errors import StoreDataError

_STR = pa.string()
_TS = pa.timestamp("us", tz="UTC")
_USD = pa.decimal128(20, 9)
_NANO = Decimal("1e-9")


@dataclass(frozen=True, slots=True)
class ArrowColumn:
    name: str
    type: pa.DataType
    get: Callable[[Any], Any]
    # What a None becomes, for ClickHouse columns that are not Nullable (None: keep nulls).
    fill: Any = None


def _col(name: str, type_: pa.DataType, field: str | None = None, fill: Any = None) -> ArrowColumn:
    return ArrowColumn(name, type_, attrgetter(field or name), fill)


def _evidence(alert: Alert) -> str:
    return json.dumps(alert.evidence, default=str)


# Names and order are those of ``columns`` (a unit test holds them equal).
CALLS: tuple[ArrowColumn, ...] = (
    _col("call_id", _STR),
    _col("ts", _TS),
    _col("event_id", _STR),
    _col("tenant", _STR),
    _col("project", _STR, fill=""),
    _col("team", _STR, fill=""),
    _col("session_id", _STR, fill=""),
    _col("iteration", pa.int32()),
    _col("provider", _STR),
    _col("model", _STR, fill=""),
    _col("endpoint", _STR),
    _col("streamed", pa.bool_()),
    _col("status_code", pa.uint16()),
    _col("outcome", _STR),
    _col("prompt_tokens", pa.uint64(), "input_tokens"),
    _col("completion_tokens", pa.uint64(), "output_tokens"),
    _col("cached_tokens", pa.uint64()),
    _col("reasoning_tokens", pa.uint64()),
    _col("cost_usd", _USD),
    _col("price_known", pa.bool_()),
    _col("reserved_usd", _USD),
    _col("started_at", _TS),
    _col("latency_ms", pa.float64()),
    _col("ttft_ms", pa.float64()),
    _col("source", _STR),
    _col("gateway_id", _STR, fill=""),
)
ALERTS: tuple[ArrowColumn, ...] = (
    _col("alert_id", _STR),
    _col("event_id", _STR),
    _col("ts", _TS),
    _col("tenant", _STR),
    _col("session_id", _STR, fill=""),
    _col("project", _STR, fill=""),
    _col("team", _STR, fill=""),
    _col("detector", _STR),
    _col("severity", _STR),
    _col("message", _STR),
    ArrowColumn("evidence", _STR, _evidence),
    _col("spent_usd", _USD),
    _col("budget_usd", _USD),
)
FINDINGS: tuple[ArrowColumn, ...] = (
    _col("finding_id", _STR),
    _col("event_id", _STR),
    _col("ts", _TS),
    _col("tenant", _STR),
    _col("session_id", _STR, fill=""),
    _col("call_id", _STR),
    _col("location", _STR),
    _col("message_index", pa.int32()),
    _col("finding_type", _STR),
    _col("count", pa.uint32()),
    _col("severity", _STR),
    _col("preview", _STR),
)


def _round_usd(values: list[Any]) -> list[Any]:
    # PostgreSQL's numeric(20, 9) rounds half away from zero; the same here, so both stores
    # hold the same cent fractions (ClickHouse would truncate, Arrow refuses to rescale).
    try:
        return [None if v is None else v.quantize(_NANO, rounding=ROUND_HALF_UP) for v in values]
    except InvalidOperation as exc:
        raise StoreDataError(f"a USD amount does not fit Decimal(20, 9): {exc}") from exc


def _array(column: ArrowColumn, events: Sequence[Any]) -> pa.Array:
    values = list(map(column.get, events))
    try:
        try:
            array = pa.array(values, column.type)
        except pa.ArrowInvalid:
            if column.type != _USD:
                raise
            array = pa.array(_round_usd(values), column.type)
        if column.fill is not None and array.null_count:
            array = pc.fill_null(array, column.fill)
        return array
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as exc:
        raise StoreDataError(f"column {column.name} ({column.type}): {exc}") from exc


def arrow_stream(columns: Sequence[ArrowColumn], events: Sequence[Any]) -> pa.Buffer:
    """``events`` as one Arrow IPC stream with ``columns``, ready for ``FORMAT ArrowStream``."""
    arrays = [_array(c, events) for c in columns]
    table = pa.Table.from_arrays(arrays, names=[c.name for c in columns])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def warm_up() -> None:
    """pyarrow initialises itself on first use (~0.25 s): pay that at start, not in the first batch."""
    arrow_stream(CALLS, [])
