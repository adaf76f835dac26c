"""Whole calls through the RTC server with aiortc peers (real ICE, DTLS,
SRTP, SCTP; independent implementation) on loopback."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from aiortc_client import AiortcClient, ColorBarsTrack, Hub, ToneTrack, wait_for
from switchboard.engine.mediaplane import MediaConfig
from switchboard.engine.transportserver import TransportConfig
from switchboard.signaling.rtc import MessageType, RtcConfig, RtcServer

pytestmark = pytest.mark.interop


async def test_three_peers_hear_each_others_tones(rtc: tuple[RtcServer, Hub]) -> None:
    server, hub = rtc
    tones = {"alice": 440.0, "bob": 660.0, "carol": 880.0}
    clients = {}
    t0 = time.monotonic()
    for name, freq in tones.items():
        c = AiortcClient(server, name)
        hub.clients[name] = c
        clients[name] = c
        await c.join(ToneTrack(freq))
        c.send(MessageType.UNMUTE)
    await wait_for(lambda: all(c.dc_open.is_set() for c in clients.values()))

    def everyone_hears_two() -> bool:
        return all(len(c.frequencies()) == 2 for c in clients.values())

    await wait_for(everyone_hears_two, timeout=30)
    first_audio = time.monotonic() - t0
    for name, c in clients.items():
        heard = sorted(round(f) for f in c.frequencies().values())
        expected = sorted(round(f) for n, f in tones.items() if n != name)
        assert all(abs(h - e) <= 10 for h, e in zip(heard, expected)), (name, heard, expected)
    print(f"first forwarded audio decoded by all three peers {first_audio:.2f} s after the first join")
    # the data channel speaks the legacy text ping too
    clients["alice"].dc.send("ping")
    await wait_for(lambda: clients["alice"].pongs >= 1, timeout=5)


async def test_mute_stops_forwarding(rtc: tuple[RtcServer, Hub]) -> None:
    server, hub = rtc
    a, b = AiortcClient(server, "a"), AiortcClient(server, "b")
    hub.clients.update(a=a, b=b)
    await a.join(ToneTrack(500))
    await b.join(ToneTrack(700))
    a.send(MessageType.UNMUTE)
    await wait_for(lambda: len(b.frequencies()) == 1, timeout=30)
    tid = next(iter(server.sessions["a"].published.values())).layers[""]
    before = server.plane.track_stats(tid)["forwarded"]
    a.send(MessageType.MUTE)
    await asyncio.sleep(0.5)
    muted_fwd = server.plane.track_stats(tid)["forwarded"]
    await asyncio.sleep(1.0)
    assert server.plane.track_stats(tid)["forwarded"] == muted_fwd, "nothing forwarded while muted"
    assert server.plane.track_stats(tid)["muted_drops"] > 0
    assert muted_fwd >= before
    a.send(MessageType.UNMUTE)
    await wait_for(lambda: server.plane.track_stats(tid)["forwarded"] > muted_fwd + 20, timeout=10)


async def test_screen_share_frames_reach_others(rtc: tuple[RtcServer, Hub]) -> None:
    server, hub = rtc
    a, b, c = AiortcClient(server, "sa"), AiortcClient(server, "sb"), AiortcClient(server, "sc")
    hub.clients.update(sa=a, sb=b, sc=c)
    for cl in (a, b, c):
        await cl.join()
    await wait_for(lambda: all(cl.dc_open.is_set() for cl in (a, b, c)))
    screen = ColorBarsTrack()
    a.pc.addTrack(screen)
    # the client announces the screen's msid stream id before offering the track
    await a.pc.setLocalDescription(await a.pc.createOffer())
    stream_id = a.pc.localDescription.sdp.split("a=msid:")[1].split()[0]
    a.send(MessageType.SCREEN_ON, json.dumps({"screenStreamID": stream_id}).encode())
    a.send(MessageType.SDP, json.dumps({"type": "offer", "sdp": a.pc.localDescription.sdp}).encode())
    await wait_for(lambda: sum(b.video_frames.values()) > 10 and sum(c.video_frames.values()) > 10, timeout=40)
    track = next(t for t in server.sessions["sa"].published.values() if t.type == "screen")
    assert track.codec.lower() == "vp8"
    # screen off removes it from the others with a server offer
    a.send(MessageType.SCREEN_OFF)
    await wait_for(lambda: not any(s.track is track for s in server.sessions["sb"].subscriptions.values()))
    assert server.sessions["sa"].call.screen_session is None


async def test_leave_and_close_events(rtc: tuple[RtcServer, Hub]) -> None:
    server, hub = rtc
    a, b = AiortcClient(server, "la"), AiortcClient(server, "lb")
    hub.clients.update(la=a, lb=b)
    await a.join(ToneTrack(300))
    await b.join()
    a.send(MessageType.UNMUTE)
    await wait_for(lambda: len(b.frequencies()) == 1, timeout=30)
    server.close_session("la", "leave")
    assert ("la", "leave") in hub.closed
    await wait_for(lambda: not server.sessions["lb"].subscriptions, timeout=10)
    assert [c.session_id for c in server.get_sessions("default", "call1")] == ["lb"]
    # a client that closes its peer connection aborts SCTP and sends DTLS
    # close_notify: the session ends at once and the host hears about it
    await b.pc.close()
    await wait_for(lambda: any(s == "lb" for s, _ in hub.closed), timeout=10)
    reason = dict(hub.closed)["lb"]
    assert "DTLS closed" in reason or "SCTP association closed (aborted by peer)" in reason
    assert server.get_sessions("default", "call1") == []
    assert not server.groups


async def test_signaling_timeout_closes_session(rtc: tuple[RtcServer, Hub]) -> None:
    server, hub = rtc
    server.config = type(server.config)(**{**server.config.__dict__, "signaling_timeout": 0.3})
    c = AiortcClient(server, "silent")
    hub.clients["silent"] = c
    server.init_session(c.cfg)
    await wait_for(lambda: any(s == "silent" for s, _ in hub.closed), timeout=5)
    assert "signaling timeout" in dict(hub.closed)["silent"]


async def test_remaining_client_survives_anothers_leave(rtc: tuple[RtcServer, Hub]) -> None:
    """After a leave the server stops that section in an offer to the others;
    aiortc answers a stopped section with a port and a=inactive. The answer
    must be accepted (regression: the session was closed after 3 retries)."""
    server, hub = rtc
    server.config = type(server.config)(**{**server.config.__dict__, "answer_timeout": 1.0})
    a, b = AiortcClient(server, "ra"), AiortcClient(server, "rb")
    hub.clients.update(ra=a, rb=b)
    await a.join(ToneTrack(350))
    await b.join()
    a.send(MessageType.UNMUTE)
    await wait_for(lambda: len(b.frequencies()) == 1, timeout=30)
    server.close_session("ra", "leave")
    await asyncio.sleep(4.0)
    assert "rb" in server.sessions and not any(s == "rb" for s, _ in hub.closed)
    neg = server.sessions["rb"].neg
    assert neg.pending_offer is None and not neg.out_tracks


async def test_server_trickles_its_candidates(rtc: tuple[RtcServer, Hub]) -> None:
    server, hub = rtc
    got: list[dict[str, object]] = []
    orig = server.on_message

    def spy(msg):  # type: ignore[no-untyped-def]
        if msg.session_id == "tr" and msg.type == MessageType.ICE:
            got.append(json.loads(msg.data))
        orig(msg)

    server.on_message = spy
    c = AiortcClient(server, "tr")
    hub.clients["tr"] = c
    await c.join()
    await wait_for(lambda: len(got) >= 2)
    cands = [g["candidate"] for g in got]
    assert all(g["type"] == "candidate" for g in got)
    assert any(str(x["candidate"]).startswith("candidate:") and " udp " in str(x["candidate"]) for x in cands)  # type: ignore[index]
    assert any("tcptype passive" in str(x["candidate"]) for x in cands)  # type: ignore[index]
    assert all(x["usernameFragment"] == server.sessions["tr"].transport.local_ufrag for x in cands)  # type: ignore[index]


async def test_slow_stun_lookup_never_delays_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    """The public-address lookup runs in the background: the server starts at
    once with its local candidates and adopts the STUN answer when it comes."""
    import dataclasses as dc

    from switchboard.engine import candidates as cand_mod

    async def slow_discover(*args, **kwargs):  # type: ignore[no-untyped-def]
        await asyncio.sleep(1.0)
        return "203.0.113.9"

    monkeypatch.setattr(cand_mod, "discover_public_address", slow_discover)
    server = RtcServer(RtcConfig(media=MediaConfig(addresses=("127.0.0.1",), port=0),
                                 transport=TransportConfig(), local_ips=("10.20.30.40",),
                                 candidates=dc.replace(cand_mod.CandidateConfig(), stun_url="stun:stun.invalid:3478")))
    t0 = time.monotonic()
    await server.start()
    try:
        assert time.monotonic() - t0 < 0.9
        assert {c.address for c in server.candidates} == {"10.20.30.40"}
        await wait_for(lambda: {c.address for c in server.candidates} == {"203.0.113.9"}, timeout=5)
    finally:
        await server.stop()
