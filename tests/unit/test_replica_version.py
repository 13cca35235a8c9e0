"""The replica's version token, which the ledger keeps its sums against (no broker needed:
records are applied directly, as the changelog consumer would)."""

from __future__ import annotations

from decimal import Decimal

from services.common.events import CallStarted
from services.common.session_state import encode_state, fold
from services.gateway.replica import SessionReplica


def test_version_changes_with_every_applied_record_and_only_then() -> None:
    replica = SessionReplica("127.0.0.1:1", "unused", admission_fields_only=True)
    key = b"acme/s1"
    assert replica.version(key) is None
    state, _ = fold(
        None,
        CallStarted(
            tenant="acme", session_id="s1", call_id="a", provider="openai", endpoint="x", reserved_usd=Decimal(1)
        ),
    )
    value = encode_state(state)
    replica._apply(key, value)
    first = replica.version(key)
    assert first is not None and replica.version(key) is first, "unchanged state, same token"
    replica.get(key)
    assert replica.version(key) is first, "a lookup (decoding, caching) is no change"
    replica._apply(key, value)
    assert replica.version(key) is not first, "a record with the same content is still a new token"
    replica._apply(key, None)
    assert replica.version(key) is None
