"""Settings loaded from the environment.

The contract's variable names (``OPENAI_API_KEY``, ``KAFKA_BOOTSTRAP_SERVERS`` …) are read
as they are; AgentWatch's own knobs carry the ``AGENTWATCH_`` prefix. Each service extends
``CommonSettings`` with what only it needs; settings are built once at start and passed
down, never read back from ``os.environ`` later.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class DetectorThresholds(BaseModel):
    """Runaway-loop detector thresholds; overridable per tenant."""

    window: int = Field(5, ge=2, le=100)
    growth_factor: float = Field(1.4, gt=1.0)
    growth_iterations: int = Field(3, ge=1)
    max_calls_per_minute: int = Field(60, ge=1)
    repetition_count: int = Field(3, ge=2)
    max_usd_per_minute: Decimal = Field(Decimal("5"), gt=0)
    error_loop_count: int = Field(5, ge=1)
    early_warning_iterations: int = Field(3, ge=1)
    cooldown_s: float = Field(300.0, ge=0)


class TenantPolicy(BaseModel):
    """What a tenant's configuration may change; the defaults are the safe, fast ones."""

    default_budget_usd: Decimal | None = None
    budget_mode: Literal["fast", "strict"] = "fast"
    # What to do when session state is unknown (replica loading, budget service down).
    on_unknown_state: Literal["open", "closed"] = "open"
    loop_policy: Literal["alert", "pause"] = "alert"
    detectors: DetectorThresholds = Field(default_factory=DetectorThresholds)
    secret_guard: bool = False


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTWATCH_", extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS"))
    topic_prefix: str = "agentwatch."
    topic_partitions: int = Field(12, ge=1)
    topic_replication: int = Field(1, ge=1)
    tenant_policies: dict[str, TenantPolicy] = Field(default_factory=dict)
    log_level: str = "INFO"

    def policy(self, tenant: str) -> TenantPolicy:
        return self.tenant_policies.get(tenant) or self.tenant_policies.get("*") or _DEFAULT_POLICY


_DEFAULT_POLICY = TenantPolicy()


class ProviderSettings(BaseModel):
    """Provider keys: they never leave the gateway, never reach logs, events or storage."""

    openai_api_key: SecretStr | None = None
    anthropic_api_key: SecretStr | None = None


class StoreSettings(CommonSettings):
    database_url: str = Field("postgresql://postgres@127.0.0.1:5432/agentwatch", validation_alias=_env("DATABASE_URL"))
    clickhouse_url: str = Field("chdb:///tmp/agentwatch-chdb", validation_alias=_env("CLICKHOUSE_URL"))
    retention_days: int = Field(30, ge=1)
