"""The inline secret guard: off by default, provider-shaped 400 when on, never echoes the secret."""

from __future__ import annotations

import json

import pytest

from services.anomaly.risk.guard import SecretGuard
from services.common.config import TenantPolicy

KEY = "ghp_" + "Zq8Lw3Rt5Yv1Nb7Mk2Hj6Gf4Ds0AePxCuBiO"
BODY = {"model": "m", "messages": [{"role": "user", "content": f"use token {KEY} to push"}]}


def test_off_by_default() -> None:
    assert SecretGuard().check(BODY, TenantPolicy(), "openai") is None


def test_openai_shaped_refusal() -> None:
    refusal = SecretGuard().check(BODY, TenantPolicy(secret_guard=True), "openai")
    assert refusal is not None and refusal.status == 400 and refusal.types == ("github_token",)
    assert refusal.body["error"]["code"] == "secret_detected"
    assert refusal.body["error"]["type"] == "invalid_request_error"
    assert KEY not in json.dumps(refusal.body)


def test_anthropic_shaped_refusal() -> None:
    refusal = SecretGuard().check(BODY, TenantPolicy(secret_guard=True), "anthropic")
    assert refusal is not None
    assert refusal.body["type"] == "error" and refusal.body["error"]["type"] == "invalid_request_error"


def test_pii_alone_passes() -> None:
    body = {"messages": [{"role": "user", "content": "mail jane@example.org, card 4539 1488 0343 6467"}]}
    assert SecretGuard().check(body, TenantPolicy(secret_guard=True), "openai") is None


def test_unknown_redaction_type_is_a_clear_config_error() -> None:
    import pydantic

    from services.anomaly.risk.settings import RiskSettings

    with pytest.raises(pydantic.ValidationError, match="unknown PII types"):
        RiskSettings(risk_redact_pii=frozenset({"emali"}))
