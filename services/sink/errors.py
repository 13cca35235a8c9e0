"""The sink's errors: a store that cannot take a batch now, versus one that refuses it."""

from __future__ import annotations


class SinkError(Exception):
    """Base of every error the sink raises on purpose."""


class StoreUnavailable(SinkError):
    """The store cannot be reached or is not accepting writes; retrying later will help."""


class StoreRejected(SinkError):
    """The store refused the batch itself (schema, state); retried too, but logged loudly."""


class StoreDataError(StoreRejected):
    """A value in the batch cannot be stored (out of range, constraint); retrying the same
    rows fails again, so the consumer isolates the offending events into dead letters."""


class QueryError(SinkError):
    """A read-only analytics query failed (bad SQL, write attempted, store down)."""
