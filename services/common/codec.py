"""The JSON codec of every msgspec value the services send or store (events, table values).

Decimals are encoded as strings, so money stays exact; bytes that are not a valid value
raise the caller's own error type; and, given ``newest``, a value written by a newer build
(a higher ``v``) is refused rather than half-understood.
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

import msgspec


class _Versioned(Protocol):
    @property
    def v(self) -> int: ...


_T = TypeVar("_T", bound=_Versioned)


class JsonCodec(Generic[_T]):
    def __init__(self, type_: Any, error: type[Exception], *, what: str, newest: int | None = None) -> None:
        """``type_`` is the struct (or union of structs) decoded; ``what`` names it in errors."""
        self._encoder = msgspec.json.Encoder(decimal_format="string")
        self._decoder: msgspec.json.Decoder[_T] = msgspec.json.Decoder(type_)
        self._error = error
        self._what = what
        self._newest = newest

    def encode(self, value: _T) -> bytes:
        return self._encoder.encode(value)

    def decode(self, data: bytes) -> _T:
        try:
            value = self._decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise self._error(str(exc)) from exc
        if self._newest is not None and value.v > self._newest:
            raise self._error(f"{self._what} v{value.v} is newer than this build (v{self._newest})")
        return value
