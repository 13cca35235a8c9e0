"""The risk scanner's error hierarchy."""

from __future__ import annotations


class RiskError(Exception):
    """Base of every error the risk package raises on purpose."""


class ScannerConfigError(RiskError):
    """The scanner was asked for a finding type it does not know."""


class NextHopUnavailable(RiskError):
    """Kafka refused or timed out a produce: the batch is not committed and will be scanned again."""
