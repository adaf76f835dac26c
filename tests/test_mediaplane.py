"""End to end over real loopback sockets: synthetic SRTP peers (pylibsrtp)
against the native router through the engine's MediaPlane."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import sys

import pytest

from rtpkit import SrtpPeer, build_fir, build_nack, build_pli, build_rr, build_rtp, rtp_fields
from switchboard._native.core import parse_rtcp, parse_rtp
from switchboard.engine.mediaplane import (
    EVENT_BYE,
    EVENT_DTLS,
    EVENT_SSRC_LEARNED,
    EVENT_STUN,
    KIND_AUDIO,
    KIND_VIDEO,
    DuplicateError,
    MediaConfig,
    MediaEvent,
    MediaPlane,
    RouterError,
    UnknownIdError,
)


async def settle(rounds: int = 3) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0.02)


def opus(ssrc: int, seq: int, payload: bytes | None = None, **kw: object) -> dict[str, object]:
    return dict(ssrc=ssrc, seq=seq, ts=seq * 960, pt=111, payload=payload or struct.pack("!IH", ssrc, seq) * 20, **kw)


async def test_calls_fan_out_exactly_once_and_decryptable(plane: MediaPlane) -> None:
    """Two concurrent calls, each with 2 publishers and 4 participants; every
    participant receives every other publisher's packets exactly once, with
    its own SSRC, decryptable with its own keys, payload intact."""
    calls = []
    for call in range(2):
        peers = [SrtpPeer(plane, profile=("AEAD_AES_128_GCM" if i % 2 else "AES_CM_128_HMAC_SHA1_80"))
                 for i in range(4)]
        pubs = {}
        for i in range(2):
            ssrc = 1000 * (call + 1) + i
            tid = plane.publish(peers[i].sid, kind=KIND_AUDIO, clock_rate=48000, ssrc=ssrc)
            pubs[ssrc] = (i, tid)
        out_ssrc = {}
        for ssrc, (pi, tid) in pubs.items():
            for j, peer in enumerate(peers):
                if j != pi:
                    out = 50000 + ssrc * 10 + j
                    plane.subscribe(tid, peer.sid, out)
                    out_ssrc[(ssrc, j)] = out
        calls.append((peers, pubs, out_ssrc))
    sent: dict[int, list[bytes]] = {}
    for seq in range(40):
        for peers, pubs, _ in calls:
            for ssrc, (pi, _) in pubs.items():
                sent.setdefault(ssrc, []).append(peers[pi].send_rtp(**opus(ssrc, 100 + seq)))
        if seq % 10 == 9:
            await settle(1)
    await settle()
    for peers, pubs, out_ssrc in calls:
        for j, peer in enumerate(peers):
            rtp, _ = peer.recv()
            by_ssrc: dict[int, list[bytes]] = {}
            for pkt in rtp:
                by_ssrc.setdefault(rtp_fields(pkt)[3], []).append(pkt)
            expected = {out for (src, k), out in out_ssrc.items() if k == j}
            assert set(by_ssrc) == expected
            for (src, k), out in out_ssrc.items():
                if k != j:
                    continue
                got = by_ssrc[out]
                assert len(got) == 40, f"subscriber {j} got {len(got)} of 40 from {src}"
                seqs = [rtp_fields(p)[1] for p in got]
                assert seqs == list(range(100, 140))
                assert [p[12:] for p in got] == [p[12:] for p in sent[src]]
    stats = plane.global_stats()
    assert stats["drop_unknown_source"] == 0
    # every forwarded source packet is in the audio latency histogram once
    assert int(plane.router.latency_counts[0].sum()) == 2 * 2 * 40
    assert int(plane.router.latency_counts[1].sum()) == 0
    assert 0 < plane.router.latency_sums[0] / 160 < 0.05
    for peers, _, _ in calls:
        for peer in peers:
            s = plane.session_stats(peer.sid)
            assert s["drop_srtp_auth"] == s["drop_malformed"] == s["drop_replay"] == 0
            peer.close()


async def test_pause_resume_keeps_numbering_continuous(plane: MediaPlane) -> None:
    pub, sub = SrtpPeer(plane), SrtpPeer(plane)
    tid = plane.publish(pub.sid, kind=KIND_AUDIO, clock_rate=48000, ssrc=7)
    cid = plane.subscribe(tid, sub.sid, 77)
    for seq in range(10):
        pub.send_rtp(**opus(7, seq))
    await settle()
    plane.set_paused(cid, True)
    for seq in range(10, 30):
        pub.send_rtp(**opus(7, seq))
    await settle()
    await asyncio.sleep(0.2)
    plane.set_paused(cid, False)
    for seq in range(30, 40):
        pub.send_rtp(**opus(7, seq))
    await settle()
    rtp, _ = sub.recv()
    fields = [rtp_fields(p) for p in rtp]
    assert [f[1] for f in fields] == list(range(0, 20)), "sequence continues after resume without a gap"
    ts = [f[2] for f in fields]
    assert ts[:10] == [s * 960 for s in range(10)]
    gap = (ts[10] - ts[9]) & 0xFFFFFFFF
    # paused for >= 0.2 s (>= 9600 ticks at 48 kHz) but well under the 20
    # packets' worth of source timestamps (19200) plus slack
    assert 9600 <= gap <= 48000, gap
    assert [((b - a) & 0xFFFFFFFF) for a, b in zip(ts[10:], ts[11:])] == [960] * 9
    assert plane.consumer_stats(cid)["paused_drops"] == 20


async def test_switch_source_and_stale_packets(plane: MediaPlane) -> None:
    a, b, sub = SrtpPeer(plane), SrtpPeer(plane), SrtpPeer(plane)
    ta = plane.publish(a.sid, kind=KIND_VIDEO, clock_rate=90000, ssrc=11)
    tb = plane.publish(b.sid, kind=KIND_VIDEO, clock_rate=90000, ssrc=22)
    cid = plane.subscribe(ta, sub.sid, 99)
    for seq in range(500, 505):
        a.send_rtp(ssrc=11, seq=seq, ts=seq * 3000, pt=96, payload=b"A" * 100)
    await settle()
    plane.switch_source(cid, tb)
    for seq in range(9000, 9005):
        b.send_rtp(ssrc=22, seq=seq, ts=seq * 3000, pt=96, payload=b"B" * 100)
        a.send_rtp(ssrc=11, seq=seq, ts=seq, pt=96, payload=b"A" * 100)
    await settle()
    b.send_rtp(ssrc=22, seq=8999, ts=1, pt=96, payload=b"B" * 100)  # older than the switch point
    await settle()
    rtp, _ = sub.recv()
    assert [rtp_fields(p)[1] for p in rtp] == list(range(500, 510))
    assert {rtp_fields(p)[3] for p in rtp} == {99}
    assert [p[-1:] for p in rtp] == [b"A"] * 5 + [b"B"] * 5
    assert plane.consumer_stats(cid)["stale_drops"] == 1


async def test_mute_stops_forwarding_without_renegotiation(plane: MediaPlane) -> None:
    pub, sub = SrtpPeer(plane), SrtpPeer(plane)
    tid = plane.publish(pub.sid, kind=KIND_AUDIO, clock_rate=48000, ssrc=5)
    plane.subscribe(tid, sub.sid, 55)
    plane.set_track_muted(tid, True)
    for seq in range(5):
        pub.send_rtp(**opus(5, seq))
    await settle()
    assert sub.recv() == ([], [])
    plane.set_track_muted(tid, False)
    for seq in range(5, 8):
        pub.send_rtp(**opus(5, seq))
    await settle()
    rtp, _ = sub.recv()
    assert len(rtp) == 3
    assert plane.track_stats(tid)["muted_drops"] == 5


async def test_nack_is_answered_from_the_ring(plane: MediaPlane) -> None:
    pub, sub = SrtpPeer(plane), SrtpPeer(plane)
    tid = plane.publish(pub.sid, kind=KIND_VIDEO, clock_rate=90000, ssrc=31, nack_slots=256)
    cid = plane.subscribe(tid, sub.sid, 3131, pt_map={96: 98})
    sent = {}
    for seq in range(1000, 1040):
        sent[seq] = pub.send_rtp(ssrc=31, seq=seq, ts=seq * 3000, pt=96, payload=os.urandom(300))
    await settle()
    raw = sub.recv_raw()
    assert len(raw) == 40
    # the subscriber "loses" four packets: it never decrypts them, and NACKs them
    out_base = struct.unpack_from("!H", raw[0], 2)[0]
    wanted = [out_base + 3, out_base + 4, out_base + 20, out_base + 39]
    lost = {struct.unpack_from("!H", p, 2)[0]: p for p in raw if struct.unpack_from("!H", p, 2)[0] in wanted}
    for p in raw:
        if struct.unpack_from("!H", p, 2)[0] not in lost:
            sub.rx.unprotect(p)
    sub.send_rtcp(build_nack(0xABC, 3131, wanted + [out_base + 500]))   # the last one is not in the ring
    await settle()
    rtx_raw = sub.recv_raw()
    assert sorted(struct.unpack_from("!H", p, 2)[0] for p in rtx_raw) == sorted(wanted)
    for p in rtx_raw:
        assert p == lost[struct.unpack_from("!H", p, 2)[0]], "retransmission is byte-identical to the original"
        plain = sub.rx.unprotect(p)
        assert rtp_fields(plain)[0] == 98
        assert plain[12:] == sent[(rtp_fields(plain)[1] - out_base) + 1000][12:]
    cs = plane.consumer_stats(cid)
    assert cs["rtx"] == 4 and cs["rtx_miss"] == 1 and cs["nack_rx"] == 1


async def test_pli_and_fir_forwarded_at_most_once_per_second(plane: MediaPlane) -> None:
    pub, s1, s2 = SrtpPeer(plane), SrtpPeer(plane), SrtpPeer(plane)
    tid = plane.publish(pub.sid, kind=KIND_VIDEO, clock_rate=90000, ssrc=41)
    plane.subscribe(tid, s1.sid, 401)
    plane.subscribe(tid, s2.sid, 402)
    for _ in range(3):
        s1.send_rtcp(build_pli(1, 401))
        s2.send_rtcp(build_fir(2, 402))
    await settle()
    _, rtcp = pub.recv()
    plis = [item for c in rtcp for item in parse_rtcp(c) if item["type"] == "pli"]
    assert [p["media_ssrc"] for p in plis] == [41]
    await asyncio.sleep(1.05)
    s2.send_rtcp(build_pli(2, 402))
    await settle()
    _, rtcp = pub.recv()
    assert [item["type"] for c in rtcp for item in parse_rtcp(c)] == ["pli"]
    ts = plane.track_stats(tid)
    assert ts["pli_forwarded"] == 2 and ts["pli_limited"] == 5


async def test_upstream_nack_for_video_gaps(plane: MediaPlane) -> None:
    pub = SrtpPeer(plane)
    plane.publish(pub.sid, kind=KIND_VIDEO, clock_rate=90000, ssrc=51, nack_upstream=True)
    for seq in (10, 11, 14, 15, 40):
        pub.send_rtp(ssrc=51, seq=seq, ts=seq, pt=96, payload=b"x")
    await settle()
    _, rtcp = pub.recv()
    nacks = [item for c in rtcp for item in parse_rtcp(c) if item["type"] == "nack"]
    assert [n["lost"] for n in nacks] == [[12, 13], list(range(16, 40))]
    assert all(n["media_ssrc"] == 51 for n in nacks)


async def test_garbage_from_one_peer_leaves_other_streams_intact(plane: MediaPlane) -> None:
    pub, sub, bad = SrtpPeer(plane), SrtpPeer(plane), SrtpPeer(plane)
    tid = plane.publish(pub.sid, kind=KIND_AUDIO, clock_rate=48000, ssrc=61)
    plane.subscribe(tid, sub.sid, 611)
    plane.subscribe(tid, bad.sid, 612)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    rng = __import__("random").Random(7)
    for seq in range(30):
        pub.send_rtp(**opus(61, seq))
        # a registered peer: random bytes with an RTP first byte (SRTP auth
        # fails), short packets, replays, RTCP garbage, a forged SSRC
        bad.send_raw(bytes([0x80]) + rng.randbytes(rng.randrange(0, 300)))
        bad.send_raw(b"\x80")
        bad.send_raw(b"\x90\xc8" + rng.randbytes(6))
        bad.send_raw(bytes([rng.randrange(64, 128)]) + rng.randbytes(20))
        stranger.sendto(bad.tx.protect(build_rtp(**opus(61, 1000 + seq))), pub.server)
    replay = bad.tx.protect(build_rtp(**opus(9999, 1)))
    bad.send_raw(replay)
    bad.send_raw(replay)
    await settle(5)
    rtp, _ = sub.recv()
    assert [rtp_fields(p)[1] for p in rtp] == list(range(30))
    s = plane.session_stats(bad.sid)
    # 30 x (random RTP-looking bytes, a 1-byte packet, 8 bytes of RTCP): each
    # is counted once, as an SRTP authentication failure, an SRTP parse
    # failure or a malformed packet (the 1-byte ones)
    assert s["drop_srtp_auth"] + s["drop_srtp_other"] + s["drop_malformed"] == 90
    assert s["drop_malformed"] >= 30 and s["drop_srtp_auth"] >= 20
    assert s["drop_replay"] == 1
    assert s["drop_unknown_ssrc"] == 1
    g = plane.global_stats()
    assert g["drop_unknown_source"] == 30
    assert g["drop_unknown_type"] == 30
    assert plane.session_stats(pub.sid)["drop_srtp_auth"] == 0
    stranger.close()


async def test_stun_and_dtls_reach_python_with_their_source(plane: MediaPlane) -> None:
    events: list[MediaEvent] = []
    plane.add_event_handler(events.append)
    peer = SrtpPeer(plane)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    stun = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + b"\x01" * 12
    other.sendto(stun, peer.server)
    peer.send_raw(b"\x16\xfe\xfd" + b"\x00" * 20)
    peer.send_rtcp(struct.pack("!BBHI", 0x81, 203, 1, 4242))
    await settle()
    kinds = [(e.kind, e.session, e.addr) for e in events]
    assert (EVENT_STUN, -1, other.getsockname()) in kinds
    assert (EVENT_DTLS, peer.sid, peer.address) in kinds
    assert any(e.kind == EVENT_BYE and e.a == 4242 and e.session == peer.sid for e in events)
    assert [e.data for e in events if e.kind == EVENT_STUN] == [stun]
    other.close()


async def test_track_routed_by_mid_learns_its_ssrc(plane: MediaPlane) -> None:
    events: list[MediaEvent] = []
    plane.add_event_handler(events.append)
    pub, sub = SrtpPeer(plane), SrtpPeer(plane)
    plane.set_session_extensions(pub.sid, mid=4, rid=10, audio_level=1)
    tid_l = plane.publish(pub.sid, kind=KIND_VIDEO, clock_rate=90000, mid="2", rid="l")
    tid_h = plane.publish(pub.sid, kind=KIND_VIDEO, clock_rate=90000, mid="2", rid="h")
    cid = plane.subscribe(tid_h, sub.sid, 700, ext_map={})
    pub.send_rtp(ssrc=0x1111, seq=1, ts=1, pt=96, payload=b"l", extensions={4: b"2", 10: b"l"})
    pub.send_rtp(ssrc=0x2222, seq=1, ts=1, pt=96, payload=b"h", extensions={4: b"2", 10: b"h"})
    pub.send_rtp(ssrc=0x2222, seq=2, ts=2, pt=96, payload=b"h")  # no extensions needed once learned
    await settle()
    assert plane.track_info(tid_l)["ssrc"] == 0x1111
    assert plane.track_info(tid_h)["ssrc"] == 0x2222
    learned = [(e.a, e.b) for e in events if e.kind == EVENT_SSRC_LEARNED]
    assert learned == [(tid_l, 0x1111), (tid_h, 0x2222)]
    rtp, _ = sub.recv()
    assert len(rtp) == 2
    first = parse_rtp(rtp[0])
    assert first["extensions"] == {}, "every extension removed: ext_map={} maps nothing"
    assert plane.consumer_stats(cid)["packets"] == 2


async def test_extension_ids_rewritten_and_audio_levels_recorded(plane: MediaPlane) -> None:
    pub, sub = SrtpPeer(plane), SrtpPeer(plane)
    plane.set_session_extensions(pub.sid, mid=3, audio_level=1)
    tid = plane.publish(pub.sid, kind=KIND_AUDIO, clock_rate=48000, ssrc=81)
    plane.subscribe(tid, sub.sid, 810, ext_map={1: 5, 3: 0})  # audio level 1 -> 5, mid removed
    levels = [30, 31, 127, 5]
    for seq, lv in enumerate(levels):
        pub.send_rtp(**opus(81, seq, extensions={1: bytes([0x80 | lv]), 3: b"0"}))
    await settle()
    rtp, _ = sub.recv()
    assert [parse_rtp(p)["extensions"] for p in rtp] == [{5: bytes([0x80 | lv])} for lv in levels]
    ring, count = plane.audio_levels()
    assert int(count[tid]) == 4
    assert list(ring[tid][:4]) == levels


async def test_reports_carry_sr_and_rr(plane: MediaPlane) -> None:
    pub, sub = SrtpPeer(plane), SrtpPeer(plane)
    tid = plane.publish(pub.sid, kind=KIND_AUDIO, clock_rate=48000, ssrc=91)
    cid = plane.subscribe(tid, sub.sid, 911)
    for seq in (0, 1, 2, 4, 5):
        pub.send_rtp(**opus(91, seq))
    await settle()
    sub.recv()
    sub.send_rtcp(build_rr(0x55, [(911, 64, 3, 5, 17)]))
    await settle()
    assert plane.send_reports() >= 2
    await settle()
    _, pub_rtcp = pub.recv()
    _, sub_rtcp = sub.recv()
    rr = [i for c in pub_rtcp for i in parse_rtcp(c) if i["type"] == "rr"]
    assert rr and rr[0]["reports"][0]["ssrc"] == 91
    assert rr[0]["reports"][0]["cumulative_lost"] == 1
    assert rr[0]["reports"][0]["highest_seq"] == 5
    sr = [i for c in sub_rtcp for i in parse_rtcp(c) if i["type"] == "sr"]
    assert sr and sr[0]["ssrc"] == 911 and sr[0]["packets"] == 5
    cs = plane.consumer_stats(cid)
    assert (cs["rr_fraction_lost"], cs["rr_cum_lost"], cs["rr_jitter"], cs["rr_count"]) == (64, 3, 17, 1)


async def test_report_rounds_can_be_spread_over_slices(plane: MediaPlane) -> None:
    """send_reports(parts) visits the next 1/parts of the session table per
    call: a full cycle of calls reports every session exactly once."""
    peers = [SrtpPeer(plane) for _ in range(3)]
    sids = sorted(p.sid for p in peers)
    parts = plane.router.max_sessions // 2          # two table slots per call
    per_call = [plane.router.send_reports(parts) for _ in range(parts)]
    await settle()
    assert sum(per_call) == 3
    # the cursor started at slot 0: the call covering slot s is s // 2
    assert [i for i, n in enumerate(per_call) for _ in range(n)] == [sid // 2 for sid in sids]
    for p in peers:
        _, rtcp = p.recv()
        assert len(rtcp) == 1, "one report compound per session per round"
        p.close()
    with pytest.raises(RouterError, match="parts must be >= 1"):
        plane.router.send_reports(0)


async def test_control_api_errors_are_typed(plane: MediaPlane) -> None:
    peer = SrtpPeer(plane)
    tid = plane.publish(peer.sid, kind=KIND_AUDIO, clock_rate=48000, ssrc=1)
    with pytest.raises(DuplicateError, match="SSRC 1 is already published by session"):
        plane.publish(peer.sid, kind=KIND_AUDIO, clock_rate=48000, ssrc=1)
    with pytest.raises(UnknownIdError, match="unknown session 4000"):
        plane.publish(4000, kind=KIND_AUDIO, clock_rate=48000, ssrc=1)
    with pytest.raises(UnknownIdError, match="unknown track 999"):
        plane.subscribe(999, peer.sid, 5)
    plane.subscribe(tid, peer.sid, 5)
    with pytest.raises(DuplicateError, match="SSRC 5 is already sent to session"):
        plane.subscribe(tid, peer.sid, 5)
    other = SrtpPeer(plane)
    with pytest.raises(DuplicateError, match="is bound to session"):
        plane.bind_session(other.sid, 0, peer.address)
    plane.remove_session(peer.sid)
    with pytest.raises(UnknownIdError):
        plane.track_info(tid)


async def test_ipv6_socket() -> None:
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    plane = MediaPlane(MediaConfig(addresses=("127.0.0.1", "::1"), port=0, report_interval=3600))
    await plane.start()
    try:
        a, b = SrtpPeer(plane, host="::1"), SrtpPeer(plane, host="::1")
        tid = plane.publish(a.sid, kind=KIND_AUDIO, clock_rate=48000, ssrc=3)
        plane.subscribe(tid, b.sid, 33)
        for seq in range(5):
            a.send_rtp(**opus(3, seq))
        await settle()
        rtp, _ = b.recv()
        assert len(rtp) == 5
        assert plane.session_address(a.sid) == (1, a.address)
    finally:
        await plane.stop()


async def test_media_sockets_send_with_dont_fragment() -> None:
    """IPv4 media sockets set IP_PMTUDISC_PROBE (DF on every datagram) unless
    MediaConfig.dont_fragment is off (then Linux's default, IP_PMTUDISC_WANT)."""
    ip_mtu_discover, pmtudisc_want, pmtudisc_probe = 10, 1, 3
    for dont_fragment, expected in ((True, pmtudisc_probe), (False, pmtudisc_want)):
        p = MediaPlane(MediaConfig(addresses=("127.0.0.1",), port=0, dont_fragment=dont_fragment))
        await p.start()
        try:
            assert p.sockets[0].getsockopt(socket.IPPROTO_IP, ip_mtu_discover) == expected
        finally:
            await p.stop()


async def test_socket_buffers_reported(plane: MediaPlane) -> None:
    info = plane.socket_info[0]
    assert info.rcvbuf > 0 and info.sndbuf > 0
    assert info.rcvbuf_capped == (info.rcvbuf < plane.config.socket_buffer_bytes)


async def test_zero_python_allocations_per_forwarded_packet() -> None:
    """10k packets routed through on_readable (called directly, off the loop)
    must not leave Python allocations behind: nothing per packet is a Python
    object."""
    plane = MediaPlane(MediaConfig(addresses=("127.0.0.1",), port=0, report_interval=3600))
    await plane.start()
    loop = asyncio.get_running_loop()
    loop.remove_reader(plane.sockets[0].fileno())
    try:
        pubs = [SrtpPeer(plane) for _ in range(2)]
        subs = [SrtpPeer(plane) for _ in range(3)]
        for i, p in enumerate(pubs):
            tid = plane.publish(p.sid, kind=KIND_AUDIO, clock_rate=48000, ssrc=100 + i)
            for j, s in enumerate(subs):
                plane.subscribe(tid, s.sid, 1000 + 10 * i + j)
        packets = [[p.tx.protect(build_rtp(**opus(100 + i, seq))) for seq in range(5000)]
                   for i, p in enumerate(pubs)]
        on_readable = plane.router.on_readable
        on_readable(0)  # warm up
        delta = after = before = 0
        deltas: list[int] = []
        for start in range(0, 5000, 50):
            for i, p in enumerate(pubs):
                for pkt in packets[i][start:start + 50]:
                    p.send_raw(pkt)
            before = sys.getallocatedblocks()
            on_readable(0)
            after = sys.getallocatedblocks()
            delta += after - before
            for s in subs:
                s.recv_raw()
            deltas.append(delta)
        forwarded = sum(plane.track_stats(t)["forwarded"] for t in range(2))
        assert forwarded == 10000 * 3
        # one block may appear once (interpreter caches warming up); nothing
        # may grow with the number of packets
        assert deltas[-1] <= 1 and deltas[-1] == deltas[len(deltas) // 2], deltas
    finally:
        await plane.stop()


async def test_transport_cc_feedback_to_publishers(plane: MediaPlane) -> None:
    """A client that negotiated transport-cc gets feedback with the arrival
    of every transport-wide sequence number (lost ones marked not received)."""
    pub, sub = SrtpPeer(plane), SrtpPeer(plane)
    plane.set_session_extensions(pub.sid, twcc=3)
    tid = plane.publish(pub.sid, kind=KIND_VIDEO, clock_rate=90000, ssrc=0x77)
    plane.subscribe(tid, sub.sid, 0x777)
    sent = [1000, 1001, 1002, 1004, 1005]           # 1003 lost
    for i, tseq in enumerate(sent):
        pub.send_rtp(ssrc=0x77, seq=i, ts=i, pt=96, payload=b"v" * 50, extensions={3: struct.pack("!H", tseq)})
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.15)
    pub.send_rtp(ssrc=0x77, seq=9, ts=9, pt=96, payload=b"v", extensions={3: struct.pack("!H", 1006)})
    await settle()
    _, rtcp = pub.recv()
    fbs = [i for c in rtcp for i in parse_rtcp(c) if i["type"] == "twcc"]
    assert fbs, "no transport-cc feedback"
    fb = fbs[0]
    assert fb["base_seq"] == 1000 and fb["media_ssrc"] == 0x77
    # consecutive packets pick up where the previous one stopped
    assert [f["base_seq"] for f in fbs] == [1000 + sum(len(g["statuses"]) for g in fbs[:k]) for k in range(len(fbs))]
    statuses = [s for f in fbs for s in f["statuses"]]
    # 1006 came ~150 ms after 1005: beyond a one-byte delta (63.75 ms), so "large"
    assert statuses[:7] == [1, 1, 1, 0, 1, 1, 2]
    deltas = [d for f in fbs for d in f["deltas"]]
    assert len(deltas) == 6, "one receive delta per received packet"
    assert deltas[-1] >= 150 * 4 * 0.9, "the last packet came >= 150 ms later (250 us units)"
    assert plane.session_stats(pub.sid)["twcc_sent"] == len(fbs)


async def test_event_queue_overflow_is_counted_and_media_goes_on() -> None:
    """STUN/DTLS go to Python through a bounded queue; a flood beyond it is
    dropped and counted, and media keeps flowing."""
    plane = MediaPlane(MediaConfig(addresses=("127.0.0.1",), port=0, report_interval=3600, event_slots=16))
    await plane.start()
    loop = asyncio.get_running_loop()
    loop.remove_reader(plane.sockets[0].fileno())   # drive the router by hand: one big batch
    try:
        pub, sub = SrtpPeer(plane), SrtpPeer(plane)
        tid = plane.publish(pub.sid, kind=KIND_AUDIO, clock_rate=48000, ssrc=3)
        plane.subscribe(tid, sub.sid, 33)
        for i in range(40):
            pub.send_raw(b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes([i]) * 12)
        for seq in range(5):
            pub.send_rtp(**opus(3, seq))
        seen: list[MediaEvent] = []
        plane.add_event_handler(seen.append)
        plane.router.on_readable(0)
        assert len(seen) == 16
        g = plane.global_stats()
        assert g["drop_event_overflow"] == 24 and g["events"] == 16
        assert plane.session_stats(pub.sid)["drop_queue_overflow"] == 24
        rtp, _ = sub.recv()
        assert len(rtp) == 5
    finally:
        await plane.stop()


def test_forwarding_under_uvloop() -> None:
    """The media plane is driven by add_reader on either loop."""
    import uvloop

    async def main() -> int:
        plane = MediaPlane(MediaConfig(addresses=("127.0.0.1",), port=0, report_interval=3600))
        await plane.start()
        try:
            pub, sub = SrtpPeer(plane), SrtpPeer(plane)
            tid = plane.publish(pub.sid, kind=KIND_AUDIO, clock_rate=48000, ssrc=9)
            plane.subscribe(tid, sub.sid, 99)
            for seq in range(20):
                pub.send_rtp(**opus(9, seq))
            await settle()
            return len(sub.recv()[0])
        finally:
            await plane.stop()

    assert uvloop.run(main()) == 20
