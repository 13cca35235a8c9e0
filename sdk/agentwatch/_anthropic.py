"""``WatchedAnthropic`` and ``AsyncWatchedAnthropic``: the official clients, routed through AgentWatch.

They subclass ``anthropic.Anthropic`` / ``anthropic.AsyncAnthropic`` as the OpenAI ones do.
anthropic marks ``_make_status_error`` final, so the 402 mapping (in ``_client``) overrides
``_make_status_error_from_response``, which both SDKs call.
"""

from __future__ import annotations

import anthropic

from ._client import AsyncWatched, ProviderRefusal, SyncWatched
from ._errors import AgentBudgetExceeded, AgentSessionPaused


class AnthropicBudgetExceeded(ProviderRefusal, AgentBudgetExceeded, anthropic.APIStatusError):
    """A 402 ``budget_exceeded`` from the gateway: both an ``AgentBudgetExceeded`` and the
    ``anthropic.APIStatusError`` code written for the plain SDK expects."""

    status_error = anthropic.APIStatusError


class AnthropicSessionPaused(ProviderRefusal, AgentSessionPaused, anthropic.APIStatusError):
    """A 402 ``session_paused`` from the gateway: an ``AgentSessionPaused`` and an ``anthropic.APIStatusError``."""

    status_error = anthropic.APIStatusError


class WatchedAnthropic(SyncWatched[anthropic.APIStatusError], anthropic.Anthropic):
    """``anthropic.Anthropic`` whose calls go through the AgentWatch gateway with session headers.

    Every ``agentwatch_*`` argument falls back to its ``AGENTWATCH_*`` environment variable.
    """

    _agentwatch_provider = "anthropic"
    _agentwatch_budget_exceeded = AnthropicBudgetExceeded
    _agentwatch_session_paused = AnthropicSessionPaused


class AsyncWatchedAnthropic(AsyncWatched[anthropic.APIStatusError], anthropic.AsyncAnthropic):
    """``anthropic.AsyncAnthropic`` whose calls go through the AgentWatch gateway with session headers."""

    _agentwatch_provider = "anthropic"
    _agentwatch_budget_exceeded = AnthropicBudgetExceeded
    _agentwatch_session_paused = AnthropicSessionPaused
