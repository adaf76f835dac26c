"""The ``switchboard`` command.

``switchboard serve`` runs the SFU as a service: for now the media plane on
UDP :8443 with its defaults (the rtcd-compatible host API on :8045 joins it in
the service issue).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from switchboard.engine.mediaplane import MediaConfig, MediaPlane

log = logging.getLogger("sfu.cli")


async def _serve(args: argparse.Namespace) -> int:
    plane = MediaPlane(MediaConfig(addresses=tuple(args.address), port=args.port))
    await plane.start()
    for info in plane.socket_info:
        log.info("media: UDP %s:%d (receive buffer %d, send buffer %d bytes)",
                 info.address[0], info.address[1], info.rcvbuf, info.sndbuf)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"switchboard: media plane listening on UDP port {plane.socket_info[0].address[1]}; "
          "Ctrl-C to stop", flush=True)
    await stop.wait()
    await plane.stop()
    return 0


def _run(coro_fn: object, args: argparse.Namespace) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but keep asyncio working
        return asyncio.run(coro_fn(args))  # type: ignore[operator,no-any-return]
    return uvloop.run(coro_fn(args))  # type: ignore[operator,no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard", description="WebRTC SFU for voice calls and screen sharing")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the SFU service")
    serve.add_argument("--address", action="append", default=None, help="media listen address (repeatable)")
    serve.add_argument("--port", type=int, default=8443, help="media UDP port (default 8443)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        args.address = args.address or ["0.0.0.0"]
        return _run(_serve, args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
