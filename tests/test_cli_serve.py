"""`switchboard serve` as an operator runs it: rtcd's defaults, RTCD_*
overrides, the API answering, SIGTERM draining and exiting."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port(kind: int) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def test_serve_starts_answers_and_drains_on_sigterm(tmp_path: Path) -> None:
    api, media = free_port(socket.SOCK_STREAM), 20000 + os.getpid() % 20000
    env = dict(os.environ,
               RTCD_API_HTTP_LISTENADDRESS=f"127.0.0.1:{api}",
               RTCD_RTC_ICEPORTUDP=str(media), RTCD_RTC_ICEPORTTCP=str(media),
               RTCD_RTC_ICEADDRESSUDP="127.0.0.1", RTCD_RTC_ICEADDRESSTCP="127.0.0.1",
               RTCD_LOGGER_ENABLEFILE="false", RTCD_STORE_DATASOURCE=str(tmp_path / "db"))
    proc = subprocess.Popen([sys.executable, "-m", "switchboard.signaling.cli", "serve", "-config",
                             str(tmp_path / "missing.toml")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api}/version", timeout=1) as r:
                    version = json.load(r)
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.2)
        assert version["buildVersion"] >= "1.1.0"
        with urllib.request.urlopen(f"http://127.0.0.1:{api}/readyz", timeout=2) as r:
            assert json.load(r)["status"] == "ready"
        proc.send_signal(signal.SIGTERM)       # no sessions: the drain ends at once
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    out = proc.stdout.read() if proc.stdout else ""
    assert f"serving the rtcd API on 127.0.0.1:{api}" in out
    assert "draining" in out
    assert "garbage collector tuned" in out  # switchboard.gc_tuning defaults to on


def test_serve_rejects_a_bad_config_naming_the_key(tmp_path: Path) -> None:
    env = dict(os.environ, RTCD_RTC_ICEPORTUDP="79", RTCD_LOGGER_ENABLEFILE="false")
    result = subprocess.run([sys.executable, "-m", "switchboard.signaling.cli", "serve", "-config",
                             str(tmp_path / "missing.toml")], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "rtc.ice_port_udp" in result.stderr and "RTCD_RTC_ICEPORTUDP" in result.stderr
