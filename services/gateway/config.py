"""The gateway's settings: the contract's variable names plus the gateway's own knobs."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.common.config import CommonSettings


class GatewaySettings(CommonSettings):
    # compose passes unset variables as "" (e.g. `${OPENAI_API_KEY:-}`): treat them as unset.
    model_config = SettingsConfigDict(**{**CommonSettings.model_config, "env_ignore_empty": True})

    openai_api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key"))
    anthropic_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ANTHROPIC_API_KEY", "anthropic_api_key")
    )
    # Client token -> tenant id. Tokens are secrets too: they are hashed at start.
    tenant_token_map: dict[str, str] = Field(
        default_factory=dict, validation_alias=AliasChoices("TENANT_TOKEN_MAP", "tenant_token_map")
    )
    openai_base_url: str = "https://api.openai.com/v1"
    anthropic_base_url: str = "https://api.anthropic.com/v1"
    anthropic_version: str = Field(
        "2023-06-01", validation_alias=AliasChoices("ANTHROPIC_VERSION", "anthropic_version")
    )
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    gateway_id: str | None = None
    # Operator token of the admin API (/v1/admin/...); unset disables it.
    admin_token: SecretStr | None = None
    # Strict budget mode: how long to wait for the budget worker's decision.
    budget_strict_timeout_s: float = Field(5.0, gt=0)
    # A local call the session table has not reflected after this long: state unknown.
    budget_stale_after_s: float = Field(10.0, gt=0)
    # Gateways sharing sessions in fast mode: each may admit, ahead of the table, at most
    # 1/N of what the table leaves of a budget (or one call); 1 = no share (one gateway).
    budget_fast_gateways: int = Field(1, ge=1)
    # How long a fast-mode call over its gateway's share waits for the table before it is
    # decided on this gateway's view alone.
    budget_fast_wait_s: float = Field(1.0, ge=0)

    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1)
    capture_payloads: bool = False
    capture_max_bytes: int = Field(64 * 1024, ge=0)

    spool_dir: Path = Path(".cache/gateway-spool")
    spool_max_bytes: int = Field(256 * 1024 * 1024, ge=0)
    # Events waiting in memory for the sender; beyond this they go straight to the spool.
    emit_queue_size: int = Field(50_000, ge=1)
    # How long one Kafka send may take before the broker is considered down (events spooled).
    kafka_send_timeout_s: float = Field(5.0, gt=0)

    upstream_connect_timeout_s: float = Field(10.0, gt=0)
    # Time allowed between two reads from upstream (a stream may run long, but never stall this long).
    upstream_read_timeout_s: float = Field(300.0, gt=0)
    upstream_pool_size: int = Field(256, ge=1)
