"""The calls-dc ping round trip on the wire: engine/transport.py + signaling/session.py.

RTCPeer sends a msgpack Ping on ``calls-dc`` every second and each of them costs the SFU a
DTLS record in, SCTP, the session's answer and a record out. The answer must be a single
datagram: one DTLS record holding one SCTP packet with the SACK for the Ping bundled with
the Pong's DATA chunk (not a SACK packet and a Pong packet), and the client's own delayed
SACK for the Pong must not make the SFU send anything. Over real loopback sockets: a
`RtcServer` and the calls benchmark's simulated RTCPeer (bench/simclient.py).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from conftest import loopback_rtc_config  # noqa: E402
from simclient import MediaProfile, SimClient, open_user_socket  # noqa: E402
from switchboard.engine.certificate import generate_certificate  # noqa: E402
from switchboard.engine.sctp import DataChunk, SackChunk, SctpPacket  # noqa: E402
from switchboard.signaling import dcmsg  # noqa: E402
from switchboard.signaling.rtc import Message, RtcServer, SessionConfig  # noqa: E402


class _NoMedia:
    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *a, **k: None


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        await asyncio.sleep(0.005)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[RtcServer, SimClient, list[bytes], list[bytes]]]:
    """A connected server and client; the lists get the client's received DTLS datagrams and
    the SCTP packets they carried."""
    loop = asyncio.get_running_loop()
    clients: dict[str, SimClient] = {}

    def on_message(msg: Message) -> None:
        if msg.session_id in clients:
            clients[msg.session_id].on_rtc(msg.type, msg.data)

    server = RtcServer(loopback_rtc_config(trickle_candidates=False), on_message=on_message)
    await server.start()
    sock = open_user_socket()
    server.init_session(SessionConfig("g", "c", "u", "s"))

    def send_rtc(mtype: int, data: bytes) -> None:
        server.handle_message(Message("g", "u", "s", "c", mtype, data))

    plane: Any = _NoMedia()
    client = SimClient(plane=plane, sock=sock, uid=0, session_id="s", user_id="u", call_id="c",
                       certificate=generate_certificate(), profile=MediaProfile(ping_interval=3600),
                       send_rtc=send_rtc, unmuted=False, sharer=False)
    clients["s"] = client
    datagrams: list[bytes] = []
    packets: list[bytes] = []

    def readable() -> None:
        while True:
            try:
                data = sock.recv(2048)
            except (BlockingIOError, OSError):
                return
            if 20 <= data[0] <= 63:  # DTLS (RFC 7983); the router's RTCP is not ours to count
                datagrams.append(data)
            client.on_datagram(1 if data[0] < 4 else 2, data)

    loop.add_reader(sock.fileno(), readable)
    client.start()
    try:
        await wait_for(lambda: client.ready)
        assert client.sctp is not None
        real_receive = client.sctp.receive

        def receive(data: bytes, now: float) -> None:
            packets.append(data)
            real_receive(data, now)

        client.sctp.receive = receive  # type: ignore[method-assign]
        yield server, client, datagrams, packets
    finally:
        client.close()
        loop.remove_reader(sock.fileno())
        sock.close()
        await server.stop()


async def test_each_ping_is_answered_by_one_datagram_with_sack_and_pong(
    pair: tuple[RtcServer, SimClient, list[bytes], list[bytes]],
) -> None:
    server, client, datagrams, packets = pair
    await asyncio.sleep(0.5)  # what the join left unacknowledged is acknowledged by now
    for n in range(3):
        datagrams.clear()
        packets.clear()
        pongs = client.pongs
        client._send_dc(dcmsg.PING)
        await wait_for(lambda p=pongs: client.pongs == p + 1)  # type: ignore[misc]
        await asyncio.sleep(0.02)
        assert len(datagrams) == 1, f"ping {n}: {len(datagrams)} datagrams"
        (packet,) = packets
        chunks = SctpPacket.parse(packet).chunks
        assert [type(c) for c in chunks] == [SackChunk, DataChunk]
        data = chunks[1]
        assert isinstance(data, DataChunk) and data.user_data == dcmsg.PONG
        # the client's delayed SACK for the Pong (200 ms) gets no answer
        datagrams.clear()
        await asyncio.sleep(0.3)
        assert datagrams == []
    transport = server.sessions["s"].transport
    assert transport.sctp is not None and transport.sctp.stats.sacks_received >= 3


async def test_text_ping_and_other_messages_still_work(
    pair: tuple[RtcServer, SimClient, list[bytes], list[bytes]],
) -> None:
    server, client, datagrams, packets = pair
    got: list[bytes | str] = []
    real = client._on_channel_message
    client._on_channel_message = lambda data: (got.append(data), real(data))  # type: ignore[method-assign,func-returns-value]
    client._send_dc("ping")
    client._send_dc(dcmsg.encode(dcmsg.DCMessageType.LOCK))
    client._send_dc(dcmsg.encode(dcmsg.DCMessageType.RTT, 0.25))
    await wait_for(lambda: len(got) >= 2)
    assert got[0] == "pong"
    assert dcmsg.decode(got[1] if isinstance(got[1], bytes) else b"") == dcmsg.DCMessage(
        dcmsg.DCMessageType.LOCK, True
    )
    session = server.sessions["s"]
    assert session.lock.holder == "client"



def test_one_byte_messages_decode_as_the_general_decoder_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """dcmsg.decode answers payload-less messages from a table; every one-byte input must give
    what msgpack decoding gives (or the same error)."""

    def both(data: bytes) -> tuple[object, object]:
        results = []
        for table in (dcmsg._BARE, {}):
            monkeypatch.setattr(dcmsg, "_BARE", table)
            try:
                results.append(dcmsg.decode(data))
            except dcmsg.DCMessageError as exc:
                results.append(str(exc))
        return results[0], results[1]

    for b in range(256):
        fast, general = both(bytes([b]))
        assert fast == general, b
    assert dcmsg.decode(dcmsg.PING) == dcmsg.DCMessage(dcmsg.DCMessageType.PING)
    assert dcmsg.encode(dcmsg.DCMessageType.PONG) == dcmsg.PONG == b"\x02"
    with pytest.raises(dcmsg.DCMessageError, match="LOSS_RATE payload is not a number"):
        dcmsg.decode(b"\x04")  # not in the table: it needs a value
