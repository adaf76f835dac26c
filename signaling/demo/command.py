"""Command-line options of ``switchboard demo`` (wired into ``signaling/cli.py``).

Zero configuration: the page on http://127.0.0.1:8080/ (a secure context, so the browser
allows the microphone), media on UDP 8443 and ICE-TCP 8443 on every interface. ``--tls``
serves HTTPS on 0.0.0.0 with a generated self-signed certificate for use across a LAN.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from .server import DemoConfig, DemoServer


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None,
                   help="address for the web page (default 127.0.0.1; 0.0.0.0 with --tls)")
    p.add_argument("--port", type=int, default=8080, help="web page port (default 8080)")
    p.add_argument("--tls", action="store_true",
                   help="serve HTTPS with a self-signed certificate, on all interfaces (for use across a LAN)")
    p.add_argument("--cert", type=Path, help="with --tls: your own certificate (PEM) instead of a generated one")
    p.add_argument("--key", type=Path, help="with --cert: its private key (PEM)")
    p.add_argument("--rtc-port", type=int, default=8443, help="media port, UDP and ICE-TCP (default 8443)")
    p.add_argument("--max-participants", type=int, default=0, help="most participants per call (0 = unlimited)")
    p.add_argument("--ice-host-override", default="",
                   help="address announced in ICE candidates (the public IP behind NAT)")
    p.add_argument("--stun-url", default="", help="stun:host:port to discover the public address at startup")
    p.add_argument("--ice-server", action="append", default=[], metavar="URL",
                   help="STUN/TURN server for the browsers, e.g. turn:turn.example.com:3478 (repeatable)")
    p.add_argument("--ice-username", default="", help="TURN username for the --ice-server URLs")
    p.add_argument("--ice-credential", default="", help="TURN credential for the --ice-server URLs")
    p.add_argument("--media-timeout", type=float, default=10.0,
                   help="seconds the page waits for media before it explains what to open (default 10)")


def build_config(args: argparse.Namespace) -> tuple[DemoConfig, tuple[str, ...]]:
    """DemoConfig from the options, and lines to print (the certificate fingerprint)."""
    from switchboard.engine.candidates import CandidateConfig, local_interface_addresses
    from switchboard.engine.mediaplane import MediaConfig
    from switchboard.engine.transportserver import TransportConfig
    from switchboard.signaling.rtc import RtcConfig

    from . import tls
    from .server import DemoConfig

    if args.key and not args.cert or args.cert and not args.key:
        raise SystemExit("switchboard demo: --cert and --key go together")
    if (args.cert or args.key) and not args.tls:
        raise SystemExit("switchboard demo: --cert/--key need --tls")
    if args.max_participants < 0:
        raise SystemExit("switchboard demo: --max-participants must be 0 (unlimited) or more")
    host = args.host or ("0.0.0.0" if args.tls else "127.0.0.1")
    lines: list[str] = []
    ssl_context = None
    if args.tls:
        if args.cert:
            files = tls.CertFiles(args.cert, args.key, "", False)
            lines.append(f"HTTPS certificate: {args.cert}")
        else:
            files = tls.ensure_self_signed(tls.default_dir(), tls.machine_names(),
                                           ["127.0.0.1", *local_interface_addresses(False)])
            lines.append(f"HTTPS with a self-signed certificate ({files.cert}); browsers warn once. "
                         f"SHA-256 fingerprint {files.fingerprint}")
        ssl_context = tls.server_context(files)
    ice_servers: list[dict[str, Any]] = []
    for url in args.ice_server:
        entry: dict[str, Any] = {"urls": url}
        if url.startswith(("turn:", "turns:")) and args.ice_username:
            entry.update(username=args.ice_username, credential=args.ice_credential)
        ice_servers.append(entry)
    rtc = RtcConfig(
        media=MediaConfig(port=args.rtc_port),
        transport=TransportConfig(tcp_addresses=("0.0.0.0",), tcp_port=args.rtc_port),
        candidates=CandidateConfig(ice_port_udp=args.rtc_port, ice_port_tcp=args.rtc_port,
                                   ice_host_override=args.ice_host_override, stun_url=args.stun_url),
        max_participants=args.max_participants,
    )
    config = DemoConfig(http_host=host, http_port=args.port, ssl_context=ssl_context, rtc=rtc,
                        max_participants=args.max_participants, ice_servers=tuple(ice_servers),
                        media_timeout=args.media_timeout)
    return config, tuple(lines)


async def main(args: argparse.Namespace) -> int:
    config, lines = build_config(args)
    return await run(config, extra_lines=lines)


def urls(server: DemoServer) -> list[str]:
    """Addresses to open: the bound one, or every IPv4 interface when bound to all."""
    from switchboard.engine.candidates import local_interface_addresses

    host = server.config.http_host
    if host in ("0.0.0.0", "::", ""):
        hosts = ["localhost"] + [ip for ip in local_interface_addresses(False) if not ip.startswith("127.")]
    else:
        hosts = [f"[{host}]" if ":" in host else host]
    return [f"{server.scheme}://{h}:{server.port}/" for h in hosts]


def _describe_users(server: DemoServer) -> str:
    parts = []
    for u in server.host.users.values():
        tags = [t for t in (u.role if u.role != "member" else "", "" if u.active else "deactivated") if t]
        parts.append(f"{u.username} ({', '.join(tags)})" if tags else u.username)
    return ", ".join(parts)


async def run(config: DemoConfig, *, out: TextIO = sys.stdout, extra_lines: tuple[str, ...] = ()) -> int:
    """Run the demo until SIGINT/SIGTERM; returns the process exit status."""
    from .server import DemoServer

    server = DemoServer(config)
    try:
        await server.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"switchboard demo: a port is already in use ({exc.strerror}): HTTP {config.http_port}, "
                  f"media UDP/TCP {config.rtc.media.port}. Stop the other program (another demo, "
                  "`switchboard serve` or rtcd?) or pick other ports with --port / --rtc-port.", file=sys.stderr)
        else:
            print(f"switchboard demo: cannot start: {exc}", file=sys.stderr)
        return 1
    udp, tcp = server.rtc_ports()
    links = urls(server)
    print("switchboard demo is running.", file=out)
    print(f"  Open {links[0]} in your browser and pick a name.", file=out)
    for link in links[1:]:
        print(f"  From other machines: {link}", file=out)
    print("  Sign in as someone else in another tab to call yourself (each tab keeps its own user).", file=out)
    print(f"  Media: UDP {udp}" + (f" and ICE-TCP {tcp}" if tcp else "") +
          f"; ICE candidates: {', '.join(server.candidates()) or 'none'}", file=out)
    print(f"  Users: {_describe_users(server)}", file=out)
    for line in extra_lines:
        print(f"  {line}", file=out)
    print("  Ctrl-C to stop.", file=out, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
    return 0
