"""Settings of the detection worker and of the notifier (built once at start, passed down)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from services.common.config import CommonSettings


class AnomalySettings(CommonSettings):
    # The Faust app id is also its consumer group and the prefix of its changelog topic.
    anomaly_app_id: str = "agentwatch-anomaly"
    anomaly_web_host: str = "127.0.0.1"
    anomaly_web_port: int = Field(6067, ge=1, le=65535)


class NotifierSettings(CommonSettings):
    slack_webhook_url: SecretStr | None = Field(None, validation_alias=AliasChoices("SLACK_WEBHOOK_URL"))
    # JSON list of URLs that receive the alert event itself as JSON.
    alert_webhooks: list[str] = Field(default_factory=list)
    notifier_group: str = "agentwatch-notifier"
    notifier_max_attempts: int = Field(5, ge=1, le=50)
    notifier_backoff_base_s: float = Field(0.5, gt=0)
    notifier_backoff_max_s: float = Field(30.0, gt=0)
    notifier_retry_after_max_s: float = Field(120.0, gt=0)
    notifier_timeout_s: float = Field(10.0, gt=0)
