"""The proxy path does no detection work: the gateway process never loads the detectors,
Faust or the notifier; detection only consumes the events the gateway emits."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import services.gateway.app, services.gateway.proxy, services.gateway.runner
loaded = sorted(m for m in sys.modules if m.startswith(("services.anomaly", "faust", "mode")))
print(",".join(loaded))
"""


def test_gateway_imports_nothing_of_the_anomaly_service() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
