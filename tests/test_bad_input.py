"""Bad input at every layer of a WebRTC session: what each gets, and that no
other session notices.

- malformed calls-dc messages: counted as signaling errors, dropped;
- garbage STUN to the media port: counted by the ICE-lite server, unanswered;
- garbage DTLS records from a connected client: dropped, session goes on;
- garbage SCTP packets inside valid DTLS: counted by the association;
- an unparsable SDP offer: rejected with an error naming the line; a first
  offer that is bad closes the session (nothing else could be negotiated);
- RTP/RTCP garbage is covered by tests/test_mediaplane.py and the router fuzz.
"""

from __future__ import annotations

import asyncio
import json
import socket

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiortc_client import AiortcClient, Hub, ToneTrack, wait_for
from switchboard.signaling import dcmsg
from switchboard.signaling.rtc import CountingMetrics, MessageType, RtcServer


@given(st.binary(max_size=300))
@settings(max_examples=400, deadline=None)
def test_dc_decoder_rejects_garbage_with_valueerror(data: bytes) -> None:
    try:
        msg = dcmsg.decode(data)
    except dcmsg.DCMessageError:
        return
    assert isinstance(msg.type, dcmsg.DCMessageType)


@given(st.sampled_from(list(dcmsg.DCMessageType)), st.one_of(st.none(), st.floats(allow_nan=False), st.booleans(),
                                                             st.binary(max_size=50), st.text(max_size=20)))
@settings(max_examples=200, deadline=None)
def test_dc_decoder_typed_payloads(mtype: dcmsg.DCMessageType, payload: object) -> None:
    data = msgpack.packb(int(mtype)) + (b"" if payload is None else msgpack.packb(payload))
    try:
        dcmsg.decode(data)
    except dcmsg.DCMessageError:
        pass


def test_dc_codec_round_trips() -> None:
    assert dcmsg.decode(dcmsg.encode(dcmsg.DCMessageType.PING)).type is dcmsg.DCMessageType.PING
    sdp = dcmsg.decode(dcmsg.encode_sdp("offer", "v=0\r\n"))
    assert sdp.payload == {"type": "offer", "sdp": "v=0\r\n"}
    assert dcmsg.decode(dcmsg.encode(dcmsg.DCMessageType.LOSS_RATE, 0.25)).payload == 0.25
    with pytest.raises(dcmsg.DCMessageError, match="unknown data-channel message type 42"):
        dcmsg.decode(msgpack.packb(42))
    bomb = dcmsg.encode(dcmsg.DCMessageType.SDP, __import__("zlib").compress(b"{" * (200 * 1024)))
    with pytest.raises(dcmsg.DCMessageError, match="larger than 65536 bytes"):
        dcmsg.decode(bomb)


@pytest.mark.interop
async def test_garbage_at_every_layer_leaves_other_calls_alone(rtc: tuple[RtcServer, Hub]) -> None:
    server, hub = rtc
    metrics = server.metrics
    assert isinstance(metrics, CountingMetrics)
    # a healthy call elsewhere: speaker -> listener
    speaker, listener = AiortcClient(server, "speaker", call_id="good"), AiortcClient(server, "listener", call_id="good")
    bad, peer = AiortcClient(server, "bad", call_id="noisy"), AiortcClient(server, "peer", call_id="noisy")
    hub.clients.update(speaker=speaker, listener=listener, bad=bad, peer=peer)
    await speaker.join(ToneTrack(600))
    await listener.join()
    await bad.join(ToneTrack(400))
    await peer.join()
    speaker.send(MessageType.UNMUTE)
    bad.send(MessageType.UNMUTE)
    await wait_for(lambda: len(listener.frequencies()) == 1 and len(peer.frequencies()) == 1, timeout=30)
    heard_before = len(listener.audio[next(iter(listener.audio))])

    # 1. calls-dc garbage
    errors_before = metrics.errors.get(("default", "signaling"), 0)
    for junk in (b"\xc1", b"\x2a", msgpack.packb(3) + msgpack.packb("not binary"), b"\x07\x07\x07"):
        bad.dc.send(junk)
    bad.dc.send("not a ping")
    await wait_for(lambda: metrics.errors.get(("default", "signaling"), 0) >= errors_before + 4, timeout=10)

    # 2. STUN garbage at the media port, from a stranger
    server_addr = server.plane.socket_info[0].address
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    ice_drops_before = sum(server.transports.ice.drops.values())
    for i in range(20):
        stranger.sendto(b"\x00\x01\x00\x08\x21\x12\xa4\x42" + bytes(12) + bytes([i]) * 8, server_addr)
    stranger.sendto(b"\x01", server_addr)
    await asyncio.sleep(0.3)
    assert sum(server.transports.ice.drops.values()) >= ice_drops_before + 20
    stranger.setblocking(False)
    replies = []
    while True:
        try:
            replies.append(stranger.recv(2048))
        except BlockingIOError:
            break
    # requests without USERNAME get 400 (RFC 8489); nothing gets a success response
    assert replies and all(r[:2] == b"\x01\x11" for r in replies)

    # 3. DTLS garbage from the bad client's own 5-tuple (spoofed via its ICE socket)
    bad_session = server.sessions["bad"]
    dtls = bad_session.transport.dtls
    assert dtls is not None
    ice_conn = bad.pc.getTransceivers()[0].sender.transport.transport._connection
    for i in range(10):
        await ice_conn.send(bytes([23, 0xFE, 0xFD]) + bytes(10) + b"\x00\x05" + bytes([i]) * 5)
        await ice_conn.send(bytes([22]) + bytes(40))

    # 4. SCTP garbage inside valid DTLS records
    sctp_bad_before = bad_session.transport.sctp.stats.bad_packets  # type: ignore[union-attr]
    dtls_transport = bad.pc.sctp.transport
    for i in range(10):
        await dtls_transport._send_data(bytes([i]) * 40)
    await wait_for(lambda: bad_session.transport.sctp.stats.bad_packets >= sctp_bad_before + 10, timeout=10)  # type: ignore[union-attr]

    # 5. an unparsable SDP re-offer: rejected, the session stays
    bad.send(MessageType.SDP, json.dumps({"type": "offer", "sdp": "v=0\r\nm=audio x RTP\r\n"}).encode())
    bad.send(MessageType.SDP, b"{not json")
    await asyncio.sleep(0.5)

    # the bad client's call still works, and so does everyone else's
    assert "bad" in server.sessions and bad_session.transport.state.value == "connected"
    peer_frames = sum(len(v) for v in peer.audio.values())
    await asyncio.sleep(1.0)
    assert sum(len(v) for v in peer.audio.values()) > peer_frames + 20
    await wait_for(lambda: len(listener.audio[next(iter(listener.audio))]) > heard_before + 50, timeout=10)
    assert abs(next(iter(listener.frequencies().values())) - 600) < 10
    assert not hub.closed
    stranger.close()


@pytest.mark.interop
async def test_bad_first_offer_closes_the_session(rtc: tuple[RtcServer, Hub]) -> None:
    server, hub = rtc
    c = AiortcClient(server, "x")
    hub.clients["x"] = c
    server.init_session(c.cfg)
    c.send(MessageType.SDP, json.dumps({"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=audio\r\n"}).encode())
    await wait_for(lambda: any(s == "x" for s, _ in hub.closed), timeout=5)
    reason = dict(hub.closed)["x"]
    assert reason.startswith("bad offer: SDP line 3"), reason
