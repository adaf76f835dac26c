"""Our AES-128-GCM (_native/includes/sb_aesgcm.h), which seals outbound
AEAD_AES_128_GCM RTP in the router.

What each check pins down:
- the GCM specification's own test cases and RFC 7714 16.1.1 (known answers);
- `cryptography`'s AES-GCM on random keys, IVs, AAD and lengths 0-300
  (every partial-block and 4-block-batch path);
- open() refuses every single-bit change of ciphertext, tag or AAD, and
  leaves the buffer untouched;
- SRTP: our key derivation + IV + AAD produce libsrtp's bytes exactly
  (pylibsrtp through SrtpContext), with CSRCs, header extensions and ROC > 0;
- the router, on both settings (ours, libsrtp) with the same expectations:
  a stream across a sequence-number wrap, reordered packets and NACKs from
  before and after the wrap decrypt with an independent receiver
  (pylibsrtp); new keys restart the indexes like new libsrtp contexts; the
  index estimate at libsrtp's edges; inbound replays, old and forged
  packets; more SSRCs than our per-session stream table holds.

GCM spec: McGrew & Viega, "The Galois/Counter Mode of Operation", test cases
2-4 (also NIST SP 800-38D's examples). RFC 7714 section 16.1.1.
"""

from __future__ import annotations

import asyncio
import os
import struct

import pylibsrtp
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st
from rtpkit import SrtpPeer, build_nack, build_rtp, rtp_fields
from switchboard._native import core
from switchboard.engine.mediaplane import KIND_VIDEO, MediaConfig, MediaPlane

pytestmark = pytest.mark.skipif(not core.GCM_NATIVE, reason="no AES-NI/PCLMULQDQ on this CPU")


def h(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))


GCM_TC3_KEY = h("feffe9928665731c6d6a8f9467308308")
GCM_TC3_IV = h("cafebabefacedbaddecaf888")
GCM_TC3_PT = h(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
)
GCM_TC3_CT = h(
    "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
    "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985"
)


def test_gcm_spec_test_cases() -> None:
    # test case 1: empty plaintext, zero key and IV -> only the tag
    assert core.aes_gcm_seal(bytes(16), bytes(12), b"", b"") == h("58e2fccefa7e3061367f1d57a4e7455a")
    # test case 2: one zero block
    assert core.aes_gcm_seal(bytes(16), bytes(12), b"", bytes(16)) == h(
        "0388dace60b6a392f328c2b971b2fe78" "ab6e47d42cec13bdf53a67b21257bddf"
    )
    # test case 3: four blocks (one aggregated GHASH batch)
    assert core.aes_gcm_seal(GCM_TC3_KEY, GCM_TC3_IV, b"", GCM_TC3_PT) == GCM_TC3_CT + h(
        "4d5c2af327cd64a62cf35abd2ba6fab4"
    )
    # test case 4: AAD of 20 bytes, a 12-byte final block
    aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2")
    assert core.aes_gcm_seal(GCM_TC3_KEY, GCM_TC3_IV, aad, GCM_TC3_PT[:60]) == GCM_TC3_CT[:60] + h(
        "5bc94fbc3221a5db94fae95ae7121a47"
    )
    assert core.aes_gcm_open(GCM_TC3_KEY, GCM_TC3_IV, aad, GCM_TC3_CT[:60] + h(
        "5bc94fbc3221a5db94fae95ae7121a47")) == GCM_TC3_PT[:60]


def test_rfc7714_16_1_1_with_the_given_session_keys() -> None:
    key = h("000102030405060708090a0b0c0d0e0f")
    iv = h("51753c6580c2726f20718414")  # salt XOR (0, SSRC, ROC 0, SEQ) as the RFC computes it
    rtp = h(
        "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 20646976"
        "69736120 696e2070 61727465 73207472 6573"
    )
    expected = h(
        "f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5"
        "0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1 6a9152cf 765ee439 0cce"
    )
    assert core.aes_gcm_seal(key, iv, rtp[:12], rtp[12:]) == expected


@settings(max_examples=400, deadline=None)
@given(
    key=st.binary(min_size=16, max_size=16),
    iv=st.binary(min_size=12, max_size=12),
    aad=st.binary(max_size=80),
    plaintext=st.binary(max_size=300),
)
def test_matches_cryptography_and_round_trips(key: bytes, iv: bytes, aad: bytes, plaintext: bytes) -> None:
    sealed = core.aes_gcm_seal(key, iv, aad, plaintext)
    assert sealed == AESGCM(key).encrypt(iv, plaintext, aad or None)
    assert core.aes_gcm_open(key, iv, aad, sealed) == plaintext


@settings(max_examples=60, deadline=None)
@given(aad=st.binary(min_size=1, max_size=40), plaintext=st.binary(max_size=90), data=st.data())
def test_every_single_bit_change_is_refused(aad: bytes, plaintext: bytes, data: st.DataObject) -> None:
    key, iv = os.urandom(16), os.urandom(12)
    sealed = core.aes_gcm_seal(key, iv, aad, plaintext)
    bit = data.draw(st.integers(0, 8 * len(sealed) - 1))
    bad = bytearray(sealed)
    bad[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(core.SrtpError, match="authentication failed"):
        core.aes_gcm_open(key, iv, aad, bytes(bad))
    abit = data.draw(st.integers(0, 8 * len(aad) - 1))
    bad_aad = bytearray(aad)
    bad_aad[abit // 8] ^= 1 << (abit % 8)
    with pytest.raises(core.SrtpError, match="authentication failed"):
        core.aes_gcm_open(key, iv, bytes(bad_aad), sealed)


def test_errors_name_the_problem() -> None:
    with pytest.raises(core.SrtpError, match="16-byte key"):
        core.aes_gcm_seal(bytes(15), bytes(12), b"", b"x")
    with pytest.raises(core.SrtpError, match="IV must be 12 bytes"):
        core.aes_gcm_seal(bytes(16), bytes(16), b"", b"x")
    with pytest.raises(core.SrtpError, match="shorter than the tag"):
        core.aes_gcm_open(bytes(16), bytes(12), b"", bytes(15))
    with pytest.raises(core.SrtpError, match="28 bytes of key and salt"):
        core.srtp_gcm_protect(bytes(30), build_rtp(ssrc=1, seq=1, ts=1, pt=111, payload=b"x"))
    with pytest.raises(core.SrtpError, match="not an RTP packet"):
        core.srtp_gcm_protect(bytes(28), b"\x80" * 8)


def _packet(seq: int, variant: int) -> bytes:
    kw: dict[str, object] = dict(ssrc=0x5501A0B2, seq=seq, ts=seq * 960, pt=111, payload=os.urandom(variant * 37 % 260))
    if variant % 3 == 1:
        kw["csrcs"] = (1, 2, 3)
    if variant % 3 == 2:
        kw["extensions"] = {1: b"\x55", 3: b"\x01\x02\x03"}
    return build_rtp(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("start", [0, 65000, 40000])
def test_srtp_protect_is_libsrtps_byte_for_byte(start: int) -> None:
    """Key derivation (RFC 3711 4.3 with RFC 7714's 96-bit salt), IV and AAD
    as libsrtp computes them, across rollovers (ROC 0 -> 3)."""
    for trial in range(6):
        key_salt = os.urandom(28)
        libsrtp = core.SrtpContext("AEAD_AES_128_GCM", key_salt, True)
        receiver = core.SrtpContext("AEAD_AES_128_GCM", key_salt, False)
        index = start
        for step in range(12):
            seq = index & 0xFFFF
            plain = _packet(seq, trial * 12 + step)
            ours = core.srtp_gcm_protect(key_salt, plain, index >> 16)
            assert ours == libsrtp.protect(plain), f"index {index}"
            assert receiver.unprotect(ours) == plain
            assert core.srtp_gcm_protect(key_salt, ours, index >> 16, unprotect=True) == plain
            index += 17000
    tampered = bytearray(ours)
    tampered[-1] ^= 1
    with pytest.raises(core.SrtpError, match="authentication failed"):
        core.srtp_gcm_protect(key_salt, bytes(tampered), index >> 16, unprotect=True)


# ---------------------------------------------------------------------- router


@pytest.fixture(params=[True, False], ids=["ours", "libsrtp"])
async def gcm_plane(request: pytest.FixtureRequest) -> MediaPlane:
    p = MediaPlane(MediaConfig(addresses=("127.0.0.1",), port=0, report_interval=3600, native_gcm=request.param))
    await p.start()
    assert p.router.native_gcm is request.param
    try:
        yield p  # type: ignore[misc]
    finally:
        await p.stop()


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0.02)


def _seq(p: bytes) -> int:
    return int(struct.unpack_from("!H", p, 2)[0])


async def test_wrap_reorder_and_nack_across_the_wrap(gcm_plane: MediaPlane) -> None:
    plane = gcm_plane
    pub, sub = SrtpPeer(plane), SrtpPeer(plane)
    tid = plane.publish(pub.sid, kind=KIND_VIDEO, clock_rate=90000, ssrc=51, nack_slots=512)
    cid = plane.subscribe(tid, sub.sid, 5151)
    order = list(range(65500, 65536)) + list(range(0, 31)) + [32, 31, 33]   # wraps, then a reordered pair
    payload = {}
    for seq in order:
        payload[seq] = os.urandom(200)
        pub.send_rtp(ssrc=51, seq=seq, ts=seq * 3000, pt=96, payload=payload[seq])
        if seq % 16 == 0:
            await settle()
    await settle()
    raw = sub.recv_raw()
    assert [_seq(p) for p in raw] == order
    lost = {_seq(p): p for p in raw if _seq(p) in (65530, 65535, 5)}
    for p in raw:
        if _seq(p) not in lost:
            plain = sub.rx.unprotect(p)
            assert plain[12:] == payload[_seq(p)]
    # NACKs for two packets before the wrap (ROC 0) and one after (ROC 1)
    sub.send_rtcp(build_nack(0xABC, 5151, [65530, 65535, 5]))
    await settle()
    rtx = sub.recv_raw()
    assert sorted(_seq(p) for p in rtx) == [5, 65530, 65535]
    for p in rtx:
        assert p == lost[_seq(p)], "the retransmission is sealed exactly as the original"
        assert sub.rx.unprotect(p)[12:] == payload[_seq(p)]
    assert plane.consumer_stats(cid)["rtx"] == 3
    assert plane.session_stats(sub.sid)["drop_srtp_other"] == 0

    # new keys for the subscriber: its outgoing index restarts, as with a new libsrtp context
    new_rx = os.urandom(28)
    plane.set_session_keys(sub.sid, "AEAD_AES_128_GCM", new_rx, sub.tx_key)
    fresh = pylibsrtp.Session(pylibsrtp.Policy(
        key=new_rx, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM))
    for seq in range(34, 40):
        pub.send_rtp(ssrc=51, seq=seq, ts=seq * 3000, pt=96, payload=payload.setdefault(seq, os.urandom(50)))
    await settle()
    after = sub.recv_raw()
    assert [_seq(p) for p in after] == list(range(34, 40))
    for p in after:
        plain = fresh.unprotect(p)
        assert rtp_fields(plain)[3] == 5151 and plain[12:] == payload[_seq(p)]


async def test_inbound_replay_window_and_tampering(gcm_plane: MediaPlane) -> None:
    """What each bad inbound packet gets is the same whether our GCM or
    libsrtp opens it: a replay or a packet behind the 128-packet window ->
    drop_replay, a changed byte -> drop_srtp_auth (and the genuine packet
    still passes after it); reordered packets inside the window are
    forwarded, and the seal guard lets them through."""
    plane = gcm_plane
    pub, sub = SrtpPeer(plane), SrtpPeer(plane)
    tid = plane.publish(pub.sid, kind=KIND_VIDEO, clock_rate=90000, ssrc=61)
    plane.subscribe(tid, sub.sid, 6161)
    wire: dict[int, bytes] = {}

    def send(seq: int) -> None:
        wire[seq] = pub.tx.protect(build_rtp(ssrc=61, seq=seq, ts=seq, pt=96, payload=bytes([seq & 0xFF]) * 40))

    for seq in [*range(1000, 1010), 1070, 1110, 1200, 1201]:    # sealed in order, sent out of order
        send(seq)
    for seq in [*range(1000, 1010), 1200]:     # a jump of 191 after 1009
        pub.send_raw(wire[seq])
    await settle()
    pub.send_raw(wire[1110])            # 90 behind the highest, never seen: forwarded
    pub.send_raw(wire[1070])            # 130 behind: outside the window
    pub.send_raw(wire[1005])            # replay
    pub.send_raw(wire[1110])            # replay (inside the upper half of the window)
    bad = bytearray(wire[1201])
    bad[-1] ^= 1
    pub.send_raw(bytes(bad))            # new index, wrong tag
    pub.send_raw(wire[1201])            # the genuine one still gets through afterwards
    await settle()
    got = [_seq(p) for p in sub.recv_raw()]
    assert got == [*range(1000, 1010), 1200, 1110, 1201]
    stats = plane.session_stats(pub.sid)
    assert stats["drop_replay"] == 3
    assert stats["drop_srtp_auth"] == 1


async def test_index_estimate_matches_libsrtp_at_the_edges(gcm_plane: MediaPlane) -> None:
    """A receiver running libsrtp must derive the same ROC for every copy we
    seal: while the highest index is <= 2^15 every jump is ROC 0, later the
    nearest index wins and a SEQ exactly 2^15 ahead of a low one is ahead.
    (The first 1,030 packets take the consumer past the router's stale-packet
    guard, which treats big jumps right after a sync as old packets.)"""
    plane = gcm_plane
    pub, sub = SrtpPeer(plane), SrtpPeer(plane)
    tid = plane.publish(pub.sid, kind=KIND_VIDEO, clock_rate=90000, ssrc=81)
    plane.subscribe(tid, sub.sid, 8181)
    order = [*range(1030), 1029 + 32768, 1029 + 32769, 65000, 10, 11, 11 + 32768, 11 + 32769]
    for i, seq in enumerate(order):   # sealed by the publisher's libsrtp in this order too
        pub.send_rtp(ssrc=81, seq=seq, ts=seq, pt=96, payload=seq.to_bytes(4, "big") * 10)
        if i % 200 == 0 or i >= 1030:
            await settle()
    await settle()
    raw = sub.recv_raw()
    assert [_seq(p) for p in raw] == order
    for p in raw:
        plain = sub.rx.unprotect(p)
        assert plain[12:16] == _seq(p).to_bytes(4, "big")


async def test_more_inbound_streams_than_our_table_holds(gcm_plane: MediaPlane) -> None:
    """A session's first 16 SSRCs are opened by our GCM, later ones by
    libsrtp; each SSRC stays with one of them, so every stream keeps one
    replay window: all packets are forwarded once and every replay dropped."""
    plane = gcm_plane
    pub, sub = SrtpPeer(plane), SrtpPeer(plane)
    ssrcs = [9000 + i for i in range(20)]
    for i, ssrc in enumerate(ssrcs):
        plane.subscribe(plane.publish(pub.sid, kind=KIND_VIDEO, clock_rate=90000, ssrc=ssrc), sub.sid, 90000 + i)
    wire = []
    for seq in range(3):
        for ssrc in ssrcs:
            wire.append(pub.tx.protect(build_rtp(ssrc=ssrc, seq=seq, ts=seq, pt=96, payload=b"p" * 20)))
    for d in wire:
        pub.send_raw(d)
    await settle()
    for d in wire[::3]:
        pub.send_raw(d)
    await settle()
    got = sub.recv_raw()
    assert sorted((struct.unpack_from("!I", p, 8)[0], _seq(p)) for p in got) == sorted(
        (90000 + i, seq) for seq in range(3) for i in range(20))
    for p in got:
        sub.rx.unprotect(p)
    assert plane.session_stats(pub.sid)["drop_replay"] == len(wire[::3])


async def test_new_publisher_keys_start_its_streams_afresh(gcm_plane: MediaPlane) -> None:
    plane = gcm_plane
    pub, sub = SrtpPeer(plane), SrtpPeer(plane)
    plane.subscribe(plane.publish(pub.sid, kind=KIND_VIDEO, clock_rate=90000, ssrc=71), sub.sid, 7171)
    for seq in range(40000, 40010):
        pub.send_rtp(ssrc=71, seq=seq, ts=seq, pt=96, payload=b"a" * 20)
    await settle()
    new_tx = os.urandom(28)
    plane.set_session_keys(pub.sid, "AEAD_AES_128_GCM", pub.rx_key, new_tx)
    fresh = pylibsrtp.Session(pylibsrtp.Policy(
        key=new_tx, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM))
    for seq in (5, 6, 7):   # far "behind" the old stream: a new context starts at ROC 0 here
        pub.send_raw(fresh.protect(build_rtp(ssrc=71, seq=seq, ts=seq, pt=96, payload=b"b" * 20)))
    await settle()
    got = sub.recv_raw()
    assert [_seq(p) for p in got] == [*range(40000, 40010), 5, 6, 7]
    assert [sub.rx.unprotect(p)[12:13] for p in got] == [b"a"] * 10 + [b"b"] * 3
    assert plane.session_stats(pub.sid)["drop_srtp_auth"] == 0
