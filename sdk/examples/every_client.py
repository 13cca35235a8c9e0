"""Uses every public class of the SDK; type-checked with ``mypy --strict`` in ``make test``.

Run it against a local stack (``make up``) with ``AGENTWATCH_API_KEY`` set.
"""

from __future__ import annotations

import asyncio

from agentwatch import (
    AgentBudgetExceeded,
    AgentSession,
    AgentSessionPaused,
    AgentWatchConfig,
    AgentWatchConfigError,
    AgentWatchError,
    AsyncWatchedAnthropic,
    AsyncWatchedOpenAI,
    GatewayUnavailable,
    WatchedAnthropic,
    WatchedOpenAI,
    agentwatch_session,
)


def sync_openai() -> str | None:
    client = WatchedOpenAI(
        agentwatch_url="http://127.0.0.1:8080",
        agentwatch_project="checkout-service",
        agentwatch_team="payments-eng",
        agentwatch_session_id="ci-run-123",
        agentwatch_session_budget_usd=2.00,
        agentwatch_enforcement_mode=True,
    )
    config: AgentWatchConfig = client.agentwatch
    print(config.session_id)
    try:
        reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    except AgentBudgetExceeded as exc:
        print(f"session {exc.session_id} spent {exc.spent_usd} of {exc.budget_usd}")
        return None
    except AgentSessionPaused as exc:
        print(f"session {exc.session_id} is paused")
        return None
    for chunk in client.with_options(timeout=30).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "stream"}], stream=True
    ):
        print(chunk.choices[0].delta.content if chunk.choices else "", end="")
    return reply.choices[0].message.content


def sync_anthropic() -> None:
    client = WatchedAnthropic(agentwatch_session_id="ci-run-123")
    message = client.messages.create(
        model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )
    print(message.usage.output_tokens)
    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        for text in stream.text_stream:
            print(text, end="")


async def async_clients() -> None:
    session: AgentSession
    async with agentwatch_session("ci-run-456", budget_usd="1.50") as session:
        oai = AsyncWatchedOpenAI()
        ant = AsyncWatchedAnthropic()
        await oai.embeddings.create(model="text-embedding-3-small", input="hello")
        await ant.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}])
        print(session.counter.peek())


def main() -> None:
    try:
        sync_openai()
        sync_anthropic()
        asyncio.run(async_clients())
    except (AgentWatchConfigError, GatewayUnavailable) as exc:
        print(f"not configured or gateway down: {exc}")
    except AgentWatchError as exc:
        print(f"AgentWatch refused: {exc}")


if __name__ == "__main__":
    main()
