"""Loop detection end to end: an agent on the official openai SDK talks to the gateway process
(fake upstream behind it); the detection worker process and the notifier turn its events into
Slack messages at the local receiver. The gateway does no detection work: it only emits."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest

from services.anomaly.delivery import Target
from services.anomaly.settings import NotifierSettings
from tests.e2e.procs import ServiceProcess
from tests.fakes.slack import Received, SlackReceiver
from tests.fixtures import GatewayFactory
from tests.integration.anomaly_support import Worker, anomaly_worker, ensure, running_notifier

TENANT = "alpha"  # tok-alpha in the gateway fixture's token map


@pytest.fixture
def worker(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[Worker]:
    asyncio.run(ensure(kafka_bootstrap, topic_prefix))
    with anomaly_worker(kafka_bootstrap, topic_prefix, tmp_path, {}) as w:
        yield w


@pytest.fixture
async def slack(worker: Worker, kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[SlackReceiver]:
    settings = NotifierSettings(
        kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, notifier_group=f"{topic_prefix}n"
    )
    async with SlackReceiver() as receiver, running_notifier(settings, [Target("slack", receiver.url, "slack")]):
        yield receiver


def client(gw: ServiceProcess, session: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{gw.url}/v1/proxy/openai",
        api_key="tok-alpha",
        default_headers={"X-AgentWatch-Session-Id": session, "X-AgentWatch-Project": "checkout-service"},
        max_retries=0,
    )


async def appending_loop(c: openai.AsyncOpenAI, growth: float, calls: int) -> list[float]:
    """An agent stuck retrying: each call re-sends the whole context plus its previous exchange
    (the last reply and a quote of it padded like a growing error log), so the prompt grows by
    about ``growth`` per call. Returns when each call came back."""
    messages: list[dict[str, str]] = [
        {"role": "system", "content": "You fix failing builds."},
        {"role": "user", "content": "The build fails: " + "error: undefined symbol. " * 40},
    ]
    done: list[float] = []
    for _ in range(calls):
        reply = await c.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
        done.append(time.monotonic())
        answer = reply.choices[0].message.content or ""
        size = len(json.dumps(messages))
        previous = f"Previous attempt said: {answer} It failed again: " + messages[-1]["content"]
        want = int(size * (growth - 1)) - len(answer) - 40
        messages.append({"role": "assistant", "content": answer})
        messages.append({"role": "user", "content": (previous * (want // max(1, len(previous)) + 1))[:want]})
    return done


def of_session(received: list[Received], session: str) -> list[str]:
    return [m.body["blocks"][0]["text"]["text"] for m in received if f"session {TENANT}/{session}" in m.body["text"]]


async def test_sdk_loop_growing_1_5x_gives_one_slack_message(
    gateway_factory: GatewayFactory, slack: SlackReceiver
) -> None:
    gw = gateway_factory()
    session = f"grow-{uuid.uuid4().hex[:6]}"
    async with client(gw, session) as c:
        done = await appending_loop(c, 1.5, 4)
        got = await slack.wait_for(1, within=30, match=lambda m: f"session {TENANT}/{session}" in m.body["text"])
        assert len(got) == 1
        # Growth goes on: the cooldown keeps it at one message.
        await appending_loop(c, 1.5, 3)
    await asyncio.sleep(2)
    assert of_session(slack.delivered, session) == [":rotating_light: AgentWatch: context growth (high)"]
    ratios = got[0].body["blocks"][3]["text"]["text"]
    print(f"third growth (4th call back) -> Slack: {got[0].at - done[3]:.3f}s; evidence {ratios}")


async def test_sdk_loop_growing_1_2x_gives_no_growth_alert(
    gateway_factory: GatewayFactory, slack: SlackReceiver
) -> None:
    gw = gateway_factory()
    session = f"slow-{uuid.uuid4().hex[:6]}"
    async with client(gw, session) as c:
        await appending_loop(c, 1.2, 8)
        # Sentinel on the same partition: three identical requests fire the repetition detector;
        # once its message is in, every earlier call of the session has been judged.
        for _ in range(3):
            await c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "again"}])
    got = await slack.wait_for(1, within=30, match=lambda m: f"session {TENANT}/{session}" in m.body["text"])
    assert len(got) == 1
    await asyncio.sleep(1)
    assert of_session(slack.delivered, session) == [":rotating_light: AgentWatch: repetition (high)"]
