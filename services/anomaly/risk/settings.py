"""The risk worker's settings (``AGENTWATCH_RISK_*``), built once at start and passed down."""

from __future__ import annotations

import secrets

from pydantic import Field, SecretStr, field_validator

from services.anomaly.risk.types import PII_TYPES
from services.common.config import CommonSettings


class RiskSettings(CommonSettings):
    # Secrets are always redacted; these PII types are redacted too (AGENTWATCH_RISK_REDACT_PII='["email"]').
    risk_redact_pii: frozenset[str] = frozenset({"credit_card", "iban", "us_ssn"})
    # Keys the salted hash in previews; set it so hashes correlate across restarts and replicas.
    risk_hash_salt: SecretStr = Field(default_factory=lambda: SecretStr(secrets.token_hex(16)))
    risk_group_id: str = "agentwatch-risk"
    risk_batch_max: int = Field(500, ge=1)
    risk_poll_ms: int = Field(500, ge=1)
    risk_produce_timeout_s: float = Field(30.0, gt=0)

    @field_validator("risk_redact_pii")
    @classmethod
    def _known_pii(cls, value: frozenset[str]) -> frozenset[str]:
        unknown = value - PII_TYPES
        if unknown:
            raise ValueError(f"unknown PII types {sorted(unknown)}; known: {sorted(PII_TYPES)}")
        return value
