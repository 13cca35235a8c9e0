"""The local Slack receiver as its own process: scripted answers, recorded messages."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

from localstack import free_port, stop_pid, wait_for_port


def _post(url: str, body: Any) -> int:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_receiver_process_answers_as_scripted() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.slack", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, 30, "slack receiver", pid=proc.pid)
        base = f"http://127.0.0.1:{port}"
        assert _post(f"{base}/_script", [{"status": 500}, {"status": 429, "retry_after": "1"}]) == 200
        hook = f"{base}/services/T/B/X"
        assert [_post(hook, {"text": "hi"}) for _ in range(3)] == [500, 429, 200]
        with urllib.request.urlopen(f"{base}/_messages", timeout=5) as r:
            assert json.loads(r.read()) == [{"text": "hi"}]
        with urllib.request.urlopen(f"{base}/_attempts", timeout=5) as r:
            assert [a["status"] for a in json.loads(r.read())] == [500, 429, 200]
    finally:
        stop_pid(proc.pid, timeout=10)
