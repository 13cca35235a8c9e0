"""The anomaly service's errors: one small hierarchy, so callers catch what they can handle."""

from __future__ import annotations


class AnomalyError(Exception):
    """Base of every error the anomaly service raises on purpose."""


class StateDecodeError(AnomalyError):
    """A table value that is not a valid encoded session window."""


class DeliveryError(AnomalyError):
    """One delivery attempt failed; ``retry_after`` is the receiver's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.retryable = retryable


class DeliveryExhausted(AnomalyError):
    """Every attempt for one target failed; the alert goes to the dead-letter topic."""

    def __init__(self, target: str, attempts: int, last_error: str) -> None:
        super().__init__(f"{target}: gave up after {attempts} attempts: {last_error}")
        self.target = target
        self.attempts = attempts
        self.last_error = last_error
