"""Pure-Python RTP/RTCP builders and synthetic SRTP peers for tests.

This is deliberately independent of ``switchboard._native``: packets are
built with ``struct`` and protected with pylibsrtp's public ``Session`` API,
so the native router is checked against a second implementation.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass, field

import pylibsrtp

PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
    "AEAD_AES_128_GCM": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28),
}


def build_rtp(
    *,
    ssrc: int,
    seq: int,
    ts: int,
    pt: int = 111,
    payload: bytes = b"",
    marker: bool = False,
    extensions: dict[int, bytes] | None = None,
    two_byte: bool = False,
    csrcs: tuple[int, ...] = (),
    padding: int = 0,
) -> bytes:
    first = 0x80 | len(csrcs)
    ext_block = b""
    if extensions:
        first |= 0x10
        body = b""
        for eid, data in extensions.items():
            if two_byte:
                body += bytes([eid, len(data)]) + data
            else:
                body += bytes([(eid << 4) | (len(data) - 1)]) + data
        body += b"\x00" * (-len(body) % 4)
        ext_block = struct.pack("!HH", 0x1000 if two_byte else 0xBEDE, len(body) // 4) + body
    if padding:
        first |= 0x20
    header = struct.pack("!BBHII", first, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    header += b"".join(struct.pack("!I", c) for c in csrcs)
    pad = (b"\x00" * (padding - 1) + bytes([padding])) if padding else b""
    return header + ext_block + payload + pad


def rtp_fields(packet: bytes) -> tuple[int, int, int, int]:
    """(pt, seq, ts, ssrc) of a plaintext RTP packet."""
    b1, seq, ts, ssrc = struct.unpack_from("!xBHII", packet)
    return b1 & 0x7F, seq, ts, ssrc


def build_pli(sender: int, media: int) -> bytes:
    return struct.pack("!BBHII", 0x81, 206, 2, sender, media)


def build_fir(sender: int, media: int, seqnr: int = 1) -> bytes:
    return struct.pack("!BBHIIIB3x", 0x84, 206, 4, sender, 0, media, seqnr)


def build_nack(sender: int, media: int, seqs: list[int]) -> bytes:
    items = []
    seqs = sorted(set(seqs))
    while seqs:
        pid = seqs.pop(0)
        blp = 0
        for s in list(seqs):
            d = (s - pid) & 0xFFFF
            if 1 <= d <= 16:
                blp |= 1 << (d - 1)
                seqs.remove(s)
        items.append(struct.pack("!HH", pid, blp))
    body = struct.pack("!II", sender, media) + b"".join(items)
    return struct.pack("!BBH", 0x81, 205, (len(body) + 4) // 4 - 1) + body


def build_rr(sender: int, blocks: list[tuple[int, int, int, int, int]] = ()) -> bytes:  # type: ignore[assignment]
    """blocks: (ssrc, fraction, cumulative lost, highest seq, jitter)."""
    body = struct.pack("!I", sender)
    for ssrc, fraction, cum, high, jitter in blocks:
        body += struct.pack("!IB", ssrc, fraction) + cum.to_bytes(3, "big") + struct.pack("!IIII", high, jitter, 0, 0)
    return struct.pack("!BBH", 0x80 | len(blocks), 201, (len(body) + 4) // 4 - 1) + body


@dataclass
class SrtpPeer:
    """A synthetic WebRTC client: one UDP socket and DTLS-SRTP-like keys,
    registered with a MediaPlane as a bound session."""

    plane: object
    profile: str = "AEAD_AES_128_GCM"
    host: str = "127.0.0.1"
    sid: int = -1
    sock: socket.socket = field(init=False)
    tx_key: bytes = field(init=False)
    rx_key: bytes = field(init=False)

    def __post_init__(self) -> None:
        number, n = PROFILES[self.profile]
        self.tx_key = os.urandom(n)
        self.rx_key = os.urandom(n)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((self.host, 0))
        self.sock.setblocking(False)
        self.tx = pylibsrtp.Session(
            pylibsrtp.Policy(key=self.tx_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=number)
        )
        self.rx = pylibsrtp.Session(
            pylibsrtp.Policy(key=self.rx_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=number)
        )
        plane = self.plane
        self.sid = plane.add_session()  # type: ignore[attr-defined]
        plane.bind_session(self.sid, self.sock_index, self.address)  # type: ignore[attr-defined]
        plane.set_session_keys(self.sid, self.profile, self.rx_key, self.tx_key)  # type: ignore[attr-defined]

    @property
    def sock_index(self) -> int:
        return 1 if ":" in self.host and len(self.plane.sockets) > 1 else 0  # type: ignore[attr-defined]

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]  # type: ignore[no-any-return]

    @property
    def server(self) -> tuple[str, int]:
        return self.plane.socket_info[self.sock_index].address  # type: ignore[attr-defined,no-any-return]

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def send_rtp(self, **kw: object) -> bytes:
        plain = build_rtp(**kw)  # type: ignore[arg-type]
        self.send_raw(self.tx.protect(plain))
        return plain

    def send_rtcp(self, plain: bytes) -> None:
        self.send_raw(self.tx.protect_rtcp(plain))

    def recv_raw(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096))
            except BlockingIOError:
                return out

    def recv(self) -> tuple[list[bytes], list[bytes]]:
        """Decrypt everything waiting: (rtp packets, rtcp compounds)."""
        rtp, rtcp = [], []
        for data in self.recv_raw():
            if 192 <= data[1] <= 223:
                rtcp.append(self.rx.unprotect_rtcp(data))
            else:
                rtp.append(self.rx.unprotect(data))
        return rtp, rtcp

    def close(self) -> None:
        self.sock.close()
