"""Client authentication: an AgentWatch token maps to a tenant.

Tokens are kept only as SHA-256 digests; a lookup hashes the presented token and finds its
digest in a dict, so the time taken does not depend on how much of a valid token an
attacker guessed (they never control the digest's bytes).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from multidict import CIMultiDictProxy

from services.gateway.errors import AuthenticationFailed


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenAuthenticator:
    def __init__(self, token_map: Mapping[str, str]) -> None:
        self._tenants: dict[bytes, tuple[bytes, str]] = {
            _digest(t): (_digest(t), tenant) for t, tenant in token_map.items()
        }

    def tenant_for(self, token: str) -> str:
        digest = _digest(token)
        found = self._tenants.get(digest)
        if found is None or not hmac.compare_digest(found[0], digest):
            raise AuthenticationFailed("invalid AgentWatch token")
        return found[1]

    def authenticate(self, headers: CIMultiDictProxy[str], allow_x_api_key: bool) -> str:
        auth = headers.get("Authorization")
        token: str | None = None
        if auth is not None:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                token = value.strip()
        if token is None and allow_x_api_key:
            token = headers.get("x-api-key")
        if not token:
            raise AuthenticationFailed("missing AgentWatch token: send 'Authorization: Bearer <token>'")
        return self.tenant_for(token)
