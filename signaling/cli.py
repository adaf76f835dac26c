"""The ``switchboard`` command.

- ``switchboard serve``: the SFU as a service, a drop-in for rtcd: the host
  API on :8045 and media on UDP/TCP :8443, configured by rtcd's
  ``config.toml`` and ``RTCD_*`` variables. SIGTERM drains (no new calls,
  running calls continue for the grace period); a second signal stops.
- ``switchboard demo``: the SFU with a built-in chat host and web page.
- ``switchboard doctor``: checks a host before running the SFU.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("sfu.cli")


async def _serve(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_config
    from .logsetup import configure_logging
    from .service import Service, ServiceOptions

    try:
        cfg = load_config(args.config)
        options = ServiceOptions.from_config(cfg)
    except (ConfigError, ValueError) as exc:
        print(f"switchboard: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(cfg.logger)
    service = Service(options)
    await service.start()
    for info in service.rtc.plane.socket_info:
        log.info("media: UDP %s:%d (receive buffer %d, send buffer %d bytes)",
                 info.address[0], info.address[1], info.rcvbuf, info.sndbuf)
    loop = asyncio.get_running_loop()
    signals = 0
    drained = asyncio.Event()

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info("signal received: draining (send it again to stop at once)")
            task = loop.create_task(service.drain())
            task.add_done_callback(lambda _: drained.set())
        else:
            log.info("second signal: stopping now")
            drained.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    print(f"switchboard: serving the rtcd API on {options.listen_address}, media on UDP/TCP "
          f"{options.rtc.media.port}", flush=True)
    await drained.wait()
    await service.stop()
    return 0


#: Seconds after the demo's loop starts at which its garbage collection is tuned (the demo
#: has no hook for "started"; it is up well within this).
DEMO_GC_DELAY = 3.0


async def _demo(args: argparse.Namespace) -> int:
    from .demo import command as demo_command
    from .service import tune_gc

    asyncio.get_running_loop().call_later(DEMO_GC_DELAY, tune_gc)
    return await demo_command.main(args)


def run(coro_fn: Callable[[argparse.Namespace], Coroutine[Any, Any, int]], args: argparse.Namespace) -> int:
    """Run on uvloop when available (the media plane works on either loop)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro_fn(args))
    return uvloop.run(coro_fn(args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard", description="WebRTC SFU for voice calls and screen sharing")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the SFU service (rtcd-compatible API on :8045, media on :8443)")
    serve.add_argument("-config", "--config", default="config/config.toml",
                       help="TOML configuration (rtcd's format; a missing file means defaults)")
    from . import doctor
    from .demo import command as demo_command

    demo = sub.add_parser("demo", help="the SFU plus a built-in chat host and web page: try a call in your browser")
    demo_command.add_arguments(demo)
    check = sub.add_parser("doctor", help="check this host for running the SFU (sysctls, ports, address, TLS)")
    doctor.add_arguments(check)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return run(_serve, args)
    if args.command == "demo":
        return run(_demo, args)
    if args.command == "doctor":
        return doctor.main(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
