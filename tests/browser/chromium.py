"""How Debian Chromium is launched for the tests (reference/browsers.md 2.1, 2.2, 4).

``/usr/lib/chromium/chromium`` is the real binary; ``/usr/bin/chromium`` is a wrapper script
that adds flags and breaks on this machine. Playwright adds its own temporary profile and
``--headless``; we never run ``playwright install`` (it downloads browsers).
"""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Playwright

EXECUTABLE = Path("/usr/lib/chromium/chromium")

FLAGS: tuple[str, ...] = (
    "--no-sandbox",                                   # running as root
    # closed-network hygiene
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # fake microphone (beep), camera and screen ("screen:-3:0", 1280x720) for gUM/getDisplayMedia
    "--use-fake-device-for-media-stream",
    # auto-accepts gUM/getDisplayMedia and grants the permission that exposes host candidates
    "--use-fake-ui-for-media-stream",
    # without it Chrome never gathers 127.0.0.1, the only address in our network namespace
    "--allow-loopback-in-peer-connection",
    # <audio>.play() without a user gesture (remote audio needs a sink to be decoded)
    "--autoplay-policy=no-user-gesture-required",
    # several pages share one browser: keep background pages' timers and media running
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
)


async def launch(pw: Playwright) -> Browser:
    if not EXECUTABLE.exists():
        raise FileNotFoundError(f"{EXECUTABLE} is missing: install Debian's chromium (scripts/bootstrap test)")
    return await pw.chromium.launch(executable_path=str(EXECUTABLE), headless=True, args=list(FLAGS))
