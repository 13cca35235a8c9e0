"""AgentWatch SDK: the official OpenAI and Anthropic clients, routed through the AgentWatch gateway.

```python
from agentwatch import WatchedOpenAI, AgentBudgetExceeded
client = WatchedOpenAI(agentwatch_api_key=..., agentwatch_url="http://127.0.0.1:8080",
    agentwatch_session_id="ci-run-123", agentwatch_session_budget_usd=2.00,
    agentwatch_enforcement_mode=True)
client.chat.completions.create(model="gpt-4o", messages=[...])
```
"""

from ._config import AgentWatchConfig
from ._errors import (
    AgentBudgetExceeded,
    AgentSessionPaused,
    AgentWatchConfigError,
    AgentWatchError,
    GatewayUnavailable,
)
from ._openai import AsyncWatchedOpenAI, WatchedOpenAI
from ._session import AgentSession, agentwatch_session, current_session

try:
    from ._anthropic import AsyncWatchedAnthropic, WatchedAnthropic
except ImportError as _missing:  # anthropic is an optional extra: pip install "aw-sdk[anthropic]"
    _anthropic_error = _missing

    def __getattr__(name: str) -> object:
        if name in ("WatchedAnthropic", "AsyncWatchedAnthropic"):
            raise ImportError(f'{name} needs the anthropic package: pip install "aw-sdk[anthropic]"') from (
                _anthropic_error
            )
        raise AttributeError(name)


__version__ = "0.1.0"

__all__ = [
    "AgentBudgetExceeded",
    "AgentSession",
    "AgentSessionPaused",
    "AgentWatchConfig",
    "AgentWatchConfigError",
    "AgentWatchError",
    "AsyncWatchedAnthropic",
    "AsyncWatchedOpenAI",
    "GatewayUnavailable",
    "WatchedAnthropic",
    "WatchedOpenAI",
    "__version__",
    "agentwatch_session",
    "current_session",
]
