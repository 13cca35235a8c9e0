"""``WatchedOpenAI`` and ``AsyncWatchedOpenAI``: the official clients, routed through AgentWatch.

They subclass ``openai.OpenAI`` / ``openai.AsyncOpenAI`` the way ``openai.lib.azure`` does:
the constructor picks the base URL and credentials, and only the SDK's documented hooks are
overridden (in ``_client``); ``copy()`` / ``with_options()`` return the subclass with its
AgentWatch settings.
"""

from __future__ import annotations

import openai

from ._client import AsyncWatched, ProviderRefusal, SyncWatched
from ._errors import AgentBudgetExceeded, AgentSessionPaused


class OpenAIBudgetExceeded(ProviderRefusal, AgentBudgetExceeded, openai.APIStatusError):
    """A 402 ``budget_exceeded`` from the gateway: both an ``AgentBudgetExceeded`` and the
    ``openai.APIStatusError`` code written for the plain SDK expects."""

    status_error = openai.APIStatusError


class OpenAISessionPaused(ProviderRefusal, AgentSessionPaused, openai.APIStatusError):
    """A 402 ``session_paused`` from the gateway: an ``AgentSessionPaused`` and an ``openai.APIStatusError``."""

    status_error = openai.APIStatusError


class WatchedOpenAI(SyncWatched[openai.APIStatusError], openai.OpenAI):
    """``openai.OpenAI`` whose calls go through the AgentWatch gateway with session headers.

    Every ``agentwatch_*`` argument falls back to its ``AGENTWATCH_*`` environment variable.
    """

    _agentwatch_provider = "openai"
    _agentwatch_budget_exceeded = OpenAIBudgetExceeded
    _agentwatch_session_paused = OpenAISessionPaused


class AsyncWatchedOpenAI(AsyncWatched[openai.APIStatusError], openai.AsyncOpenAI):
    """``openai.AsyncOpenAI`` whose calls go through the AgentWatch gateway with session headers."""

    _agentwatch_provider = "openai"
    _agentwatch_budget_exceeded = OpenAIBudgetExceeded
    _agentwatch_session_paused = OpenAISessionPaused
