"""Run one browser scenario inside a private network namespace and print one JSON result line.

Usage (what tests/test_browser_rtcpeer.py does)::

    unshare --net -- python -m browser.run <scenario> --bundle calls-common.js --artifacts DIR

with ``tests/`` on PYTHONPATH. The process refuses to run unless its network namespace has
only the loopback interface (so no packet can leave the machine, and Chrome's background
traffic fails at once), brings ``lo`` up, starts ``RtcServer`` and the relay on 127.0.0.1,
launches Debian Chromium through Playwright and runs the scenario. The last stdout line is
``RESULT {"ok": true|false, "scenario": ..., "report"|"error"+"diagnostics": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright
from switchboard.engine.mediaplane import MediaConfig
from switchboard.engine.transportserver import TransportConfig
from switchboard.signaling.rtc import RtcConfig

from . import RESULT_PREFIX, chromium
from .driver import Harness, ScenarioFailure
from .relay import Relay
from .scenarios import SCENARIOS


def loopback_only() -> bool:
    """True if this process's network namespace has no interface but ``lo``."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def server_config() -> RtcConfig:
    return RtcConfig(
        media=MediaConfig(addresses=("127.0.0.1",), port=0),
        transport=TransportConfig(tcp_addresses=("127.0.0.1",), tcp_port=0),
        local_ips=("127.0.0.1",),
    )


async def run(scenario: str, bundle: Path, artifacts: Path, timeout: float) -> dict[str, Any]:
    t0 = time.monotonic()
    relay = Relay(server_config(), bundle)
    await relay.start()
    try:
        async with async_playwright() as pw:
            browser = await chromium.launch(pw)
            harness = Harness(relay, browser, artifacts)
            try:
                report = await asyncio.wait_for(SCENARIOS[scenario](harness), timeout)
                return {"ok": True, "scenario": scenario, "seconds": round(time.monotonic() - t0, 2),
                        "chromium": browser.version, "report": report}
            except Exception as exc:  # noqa: BLE001 - every failure becomes a reported result
                if isinstance(exc, ScenarioFailure):
                    error = str(exc)
                elif isinstance(exc, TimeoutError):
                    error = f"scenario {scenario} did not finish within {timeout:.0f} s"
                else:
                    error = "".join(traceback.format_exception(exc)).strip()
                try:
                    diagnostics = await asyncio.wait_for(harness.diagnostics(), 20)
                except Exception as dexc:  # noqa: BLE001 - best effort
                    diagnostics = {"error": f"collecting diagnostics failed: {dexc!r}"}
                return {"ok": False, "scenario": scenario, "error": error, "diagnostics": diagnostics}
            finally:
                try:
                    await asyncio.wait_for(harness.close(), 15)
                finally:
                    await browser.close()
    finally:
        await relay.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--bundle", type=Path, required=True, help="the esbuild calls-common bundle")
    ap.add_argument("--artifacts", type=Path, required=True, help="directory for screenshots")
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds for the whole scenario")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(relativeCreated)7.0f %(name)s %(levelname)s %(message)s")
    if not loopback_only():
        result: dict[str, Any] = {
            "ok": False, "scenario": args.scenario,
            "error": "refusing to run outside a private network namespace with only lo "
                     "(run under `unshare --net --`)",
        }
    else:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        args.artifacts.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(run(args.scenario, args.bundle, args.artifacts, args.timeout))
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
