"""The pure-Python baseline for ``bench/forwarding.py``, and the route file
all three forwarders read.

Forwarding in plain Python is what an SFU written on asyncio + pylibsrtp does
per packet: one ``datagram_received`` (uvloop), a dict lookup by source
address, ``Session.unprotect`` once, then for every subscriber a ``struct``
rewrite of sequence number and SSRC, ``Session.protect`` with that
subscriber's keys and one ``transport.sendto``. The benchmark measures how
much CPU that costs per forwarded packet next to the native plane and the C
floor (``reference/hotpath.md``: ~9-11 us at saturation, ~11-14 us at the
seeds' rate), so the native plane's advantage is measured, not assumed.

Route file (text; ``write_routes``/``load_routes``; ``bench/floor.c`` parses
the same format)::

    sbroutes 1
    users U
    <ip> <port> <client tx key+salt hex> <client rx key+salt hex>     (U lines)
    tracks T
    <publisher user> <ssrc> <n> (<subscriber user> <out ssrc>) x n   (T lines)

Run as ``python bench/pyforward.py <routes> <socket buffer bytes> <max seconds>``:
prints ``READY <port> <rcvbuf> <sndbuf>``, forwards until ``stop`` (or EOF)
on stdin, then prints one JSON line of counters.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PROFILE = "AEAD_AES_128_GCM"
"""SRTP profile of every simulated client (what the SFU prefers; 28-byte key+salt)."""


@dataclass(frozen=True)
class User:
    """One simulated client: its source address and DTLS-SRTP-like keys."""

    ip: str
    """Source IPv4 address (a 127.0.0.0/8 loopback address)."""
    port: int
    """Source UDP port."""
    tx_key: bytes
    """Key+salt the client protects with (the SFU unprotects with it)."""
    rx_key: bytes
    """Key+salt the client unprotects with (the SFU protects with it)."""


@dataclass(frozen=True)
class Track:
    """One published audio stream and its subscribers."""

    publisher: int
    """Index of the publishing user."""
    ssrc: int
    """SSRC the publisher sends with."""
    consumers: tuple[tuple[int, int], ...]
    """(subscriber user index, SSRC it receives the stream with)."""


def write_routes(path: str, users: Sequence[User], tracks: Sequence[Track]) -> None:
    lines = ["sbroutes 1", f"users {len(users)}"]
    lines += [f"{u.ip} {u.port} {u.tx_key.hex()} {u.rx_key.hex()}" for u in users]
    lines.append(f"tracks {len(tracks)}")
    for t in tracks:
        cons = " ".join(f"{u} {ssrc}" for u, ssrc in t.consumers)
        lines.append(f"{t.publisher} {t.ssrc} {len(t.consumers)} {cons}".rstrip())
    with open(path, "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")


def load_routes(path: str) -> tuple[list[User], list[Track]]:
    """Parse a route file; raises ValueError on anything malformed."""
    with open(path, encoding="ascii") as f:
        words = f.read().split()
    pos = 0

    def take(n: int) -> list[str]:
        nonlocal pos
        if pos + n > len(words):
            raise ValueError(f"route file {path}: truncated")
        out = words[pos:pos + n]
        pos += n
        return out

    if take(2) != ["sbroutes", "1"]:
        raise ValueError(f"route file {path}: bad header")
    key, count = take(2)
    if key != "users":
        raise ValueError(f"route file {path}: expected 'users'")
    users = []
    for _ in range(int(count)):
        ip, port, tx, rx = take(4)
        users.append(User(ip, int(port), bytes.fromhex(tx), bytes.fromhex(rx)))
    key, count = take(2)
    if key != "tracks":
        raise ValueError(f"route file {path}: expected 'tracks'")
    tracks = []
    for _ in range(int(count)):
        pub, ssrc, n = (int(x) for x in take(3))
        flat = [int(x) for x in take(2 * n)]
        if not 0 <= pub < len(users) or any(not 0 <= u < len(users) for u in flat[::2]):
            raise ValueError(f"route file {path}: user index out of range")
        tracks.append(Track(pub, ssrc, tuple(zip(flat[::2], flat[1::2]))))
    return users, tracks


def open_udp(bufsize: int) -> tuple[socket.socket, int, int]:
    """A non-blocking UDP socket on 127.0.0.1 with buffers of ``bufsize``
    (SO_*BUFFORCE when permitted, else capped by net.core.[rw]mem_max);
    returns it with the effective receive and send buffer sizes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for force, plain in ((33, socket.SO_RCVBUF), (32, socket.SO_SNDBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, bufsize)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, bufsize)
    # DF like the native plane's sockets (MediaConfig.dont_fragment): the same kernel path
    sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_MTU_DISCOVER", 10), getattr(socket, "IP_PMTUDISC_PROBE", 3))
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    rcv = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
    snd = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2
    return sock, rcv, snd


async def serve_until_stopped(ready: str, stats: Callable[[], dict[str, object]], max_seconds: float) -> None:
    """The forwarder processes' control protocol: announce ``READY ...`` on
    stdout, run until ``stop``/EOF on stdin (or ``max_seconds``), then print
    ``stats()`` as one JSON line."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def on_stdin() -> None:
        data = os.read(sys.stdin.fileno(), 64)
        if (not data or data.startswith(b"stop")) and not done.done():
            done.set_result(None)

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    print(ready, flush=True)
    try:
        await asyncio.wait_for(done, max_seconds)
    except TimeoutError:
        pass
    loop.remove_reader(sys.stdin.fileno())
    print(json.dumps(stats()), flush=True)


class PyForwarder(asyncio.DatagramProtocol):
    """The per-packet Python path (see the module docstring)."""

    def __init__(self, users: Sequence[User], tracks: Sequence[Track]) -> None:
        import pylibsrtp

        self._error = pylibsrtp.Error
        profile = pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM
        inbound = pylibsrtp.Policy.SSRC_ANY_INBOUND
        outbound = pylibsrtp.Policy.SSRC_ANY_OUTBOUND
        # one inbound context per publishing client, one outbound per subscriber
        # (several SSRCs share a session's context, as in the SFU)
        rx: dict[int, pylibsrtp.Session] = {}
        tx: dict[int, pylibsrtp.Session] = {}
        self.routes: dict[tuple[str, int], tuple[pylibsrtp.Session, dict[bytes, list[tuple[bytes, int, pylibsrtp.Session, tuple[str, int]]]]]] = {}
        for t in tracks:
            pub = users[t.publisher]
            if t.publisher not in rx:
                rx[t.publisher] = pylibsrtp.Session(pylibsrtp.Policy(key=pub.tx_key, ssrc_type=inbound, srtp_profile=profile))
            consumers = []
            for u, out_ssrc in t.consumers:
                if u not in tx:
                    tx[u] = pylibsrtp.Session(pylibsrtp.Policy(key=users[u].rx_key, ssrc_type=outbound, srtp_profile=profile))
                consumers.append((struct.pack("!I", out_ssrc), 0, tx[u], (users[u].ip, users[u].port)))
            entry = self.routes.setdefault((pub.ip, pub.port), (rx[t.publisher], {}))
            entry[1][struct.pack("!I", t.ssrc)] = consumers
        self.transport: asyncio.DatagramTransport | None = None
        self.rx = self.tx = self.unknown_source = self.unknown_ssrc = self.drop_srtp = self.drop_other = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDPTransport implements DatagramTransport without subclassing it
        self.transport = transport  # type: ignore[assignment,unused-ignore]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        route = self.routes.get(addr)
        if route is None:
            self.unknown_source += 1
            return
        if len(data) < 12 or 192 <= data[1] <= 223:
            self.drop_other += 1  # the benchmark's clients send no RTCP
            return
        rx, by_ssrc = route
        try:
            plain = rx.unprotect(data)
        except self._error:
            self.drop_srtp += 1
            return
        consumers = by_ssrc.get(plain[8:12])
        if consumers is None:
            self.unknown_ssrc += 1
            return
        self.rx += 1
        seq = (plain[2] << 8) | plain[3]
        head, mid, tail = plain[:2], plain[4:8], plain[12:]
        sendto = self.transport.sendto  # type: ignore[union-attr]
        pack_h = _PACK_H
        for out_ssrc, delta, tx, dest in consumers:
            sendto(tx.protect(head + pack_h((seq + delta) & 0xFFFF) + mid + out_ssrc + tail), dest)
        self.tx += len(consumers)

    def error_received(self, exc: Exception) -> None:
        self.drop_other += 1

    def stats(self) -> dict[str, object]:
        return {
            "rx": self.rx, "tx": self.tx, "unknown_source": self.unknown_source,
            "unknown_ssrc": self.unknown_ssrc, "drop_srtp": self.drop_srtp, "drop_other": self.drop_other,
        }


_PACK_H = struct.Struct("!H").pack


async def _main(routes: str, bufsize: int, max_seconds: float) -> None:
    users, tracks = load_routes(routes)
    forwarder = PyForwarder(users, tracks)
    sock, rcv, snd = open_udp(bufsize)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: forwarder, sock=sock)
    port = sock.getsockname()[1]
    try:
        await serve_until_stopped(f"READY {port} {rcv} {snd}", forwarder.stats, max_seconds)
    finally:
        transport.close()


def main(argv: Sequence[str]) -> None:
    if len(argv) != 3:
        raise SystemExit("usage: pyforward.py <routes> <socket buffer bytes> <max seconds>")
    import uvloop

    uvloop.run(_main(argv[0], int(argv[1]), float(argv[2])))


if __name__ == "__main__":
    main(sys.argv[1:])
