"""The sink's errors: a store that cannot take a batch now, versus one that refuses it."""

from __future__ import annotations


class SinkError(Exception):
    """Base of every error the sink raises on purpose."""


class StoreUnavailable(SinkError):
    """The store cannot be reached or is not accepting writes; retrying later will help."""


class StoreRejected(SinkError):
    """The store refused the batch itself (schema, data); retried too, but logged loudly."""


class QueryError(SinkError):
    """A read-only analytics query failed (bad SQL, write attempted, store down)."""
