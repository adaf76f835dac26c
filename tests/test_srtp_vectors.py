"""Ground truth for the media plane's SRTP: published vectors and an
independent implementation.

Sources (numbers only are copied; all code here is ours):
- RFC 3711 Appendix B.2 (AES-CM keystream) and B.3 (key derivation),
  https://www.rfc-editor.org/rfc/rfc3711#appendix-B
- RFC 7714 section 16.1.1 (SRTP AEAD_AES_128_GCM) and 17.1 (SRTCP),
  https://www.rfc-editor.org/rfc/rfc7714#section-16
- libsrtp's self-test (cisco/libsrtp ``test/srtp_driver.c``: ``srtp_validate``
  and ``srtp_validate_gcm`` with ``test_key`` / ``test_key_gcm``): the only
  published *full-packet* vectors that start from a master key, which is
  what ``SrtpContext`` takes.

Why a second implementation: ``SrtpContext`` and pylibsrtp are the same C
library, so agreeing with each other proves little. ``Ref`` below derives
session keys (RFC 3711 4.3.1) and protects packets (AES-CM + HMAC-SHA1,
RFC 3711 4.1.1/4.2; AES-GCM, RFC 7714 8-9) with ``cryptography``; it is
checked against the RFC vectors first and then compared byte for byte with
``SrtpContext.protect`` on generated packets, including CSRCs, header
extensions, padding and rollover-counter (ROC) changes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

import pylibsrtp
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st
from switchboard._native.core import SrtpContext, SrtpError

CM80 = "AES_CM_128_HMAC_SHA1_80"
GCM = "AEAD_AES_128_GCM"
KEY_SALT_LEN = {CM80: (16, 14), GCM: (16, 12)}
PYLIBSRTP_PROFILE = {
    CM80: pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    GCM: pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
}

# libsrtp status codes (srtp_err_status_t) the context reports in its messages
STATUS_AUTH_FAIL = 7
STATUS_REPLAY_FAIL = 9
STATUS_REPLAY_OLD = 10


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# --------------------------------------------------------------------------
# An independent SRTP implementation (RFC 3711, RFC 7714) over `cryptography`


def aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES in counter mode from a 128-bit initial counter block (RFC 3711 4.1.1:
    the block counter lives in the low 16 bits, which start at zero)."""
    enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def kdf(master_key: bytes, master_salt: bytes, label: int, length: int) -> bytes:
    """RFC 3711 4.3.1/4.3.3 with key_derivation_rate 0: x = (label << 48) XOR
    master_salt (112 bits; a 96-bit GCM salt is padded on the right), and the
    output is the AES-CM keystream from IV = x * 2^16."""
    salt = int.from_bytes(master_salt.ljust(14, b"\x00"), "big")
    x = salt ^ (label << 48)
    return aes_ctr(master_key, (x << 16).to_bytes(16, "big"), bytes(length))


def rtp_header_len(packet: bytes) -> int:
    n = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        n += 4 + 4 * struct.unpack_from("!H", packet, n + 2)[0]
    return n


@dataclass(frozen=True)
class SessionKeys:
    key: bytes
    salt: bytes
    auth: bytes


@dataclass
class Ref:
    """One direction of an SRTP session, protecting like a sender would."""

    profile: str
    rtp: SessionKeys
    rtcp: SessionKeys
    rtcp_index: int = 0

    @classmethod
    def from_master(cls, profile: str, key_salt: bytes) -> Ref:
        klen, slen = KEY_SALT_LEN[profile]
        mk, ms = key_salt[:klen], key_salt[klen:]
        assert len(ms) == slen
        alen = 20 if profile == CM80 else 0
        return cls(
            profile,
            SessionKeys(kdf(mk, ms, 0, 16), kdf(mk, ms, 2, slen), kdf(mk, ms, 1, alen)),
            SessionKeys(kdf(mk, ms, 3, 16), kdf(mk, ms, 5, slen), kdf(mk, ms, 4, alen)),
        )

    def protect_rtp(self, packet: bytes, roc: int) -> bytes:
        hl = rtp_header_len(packet)
        header, payload = packet[:hl], packet[hl:]
        seq = struct.unpack_from("!H", packet, 2)[0]
        ssrc = struct.unpack_from("!I", packet, 8)[0]
        k = self.rtp
        if self.profile == CM80:
            index = (roc << 16) | seq
            iv = (int.from_bytes(k.salt, "big") << 16) ^ (ssrc << 64) ^ (index << 16)
            body = header + aes_ctr(k.key, iv.to_bytes(16, "big"), payload)
            tag = hmac.new(k.auth, body + struct.pack("!I", roc), hashlib.sha1).digest()[:10]
            return body + tag
        iv12 = struct.pack("!HIIH", 0, ssrc, roc, seq)
        iv = bytes(a ^ b for a, b in zip(iv12, k.salt))
        return header + AESGCM(k.key).encrypt(iv, payload, header)

    def protect_rtcp(self, packet: bytes) -> bytes:
        """SRTCP with the E flag set; the index counts up from 1 per stream
        (libsrtp's first SRTCP index; the reference vectors start there)."""
        self.rtcp_index += 1
        index = self.rtcp_index
        ssrc = struct.unpack_from("!I", packet, 4)[0]
        e_index = struct.pack("!I", 0x80000000 | index)
        k = self.rtcp
        if self.profile == CM80:
            iv = (int.from_bytes(k.salt, "big") << 16) ^ (ssrc << 64) ^ (index << 16)
            body = packet[:8] + aes_ctr(k.key, iv.to_bytes(16, "big"), packet[8:]) + e_index
            return body + hmac.new(k.auth, body, hashlib.sha1).digest()[:10]
        iv12 = struct.pack("!HIHI", 0, ssrc, 0, index)
        iv = bytes(a ^ b for a, b in zip(iv12, k.salt))
        return packet[:8] + AESGCM(k.key).encrypt(iv, packet[8:], packet[:8] + e_index) + e_index


# --------------------------------------------------------------------------
# The reference implementation against the RFCs


def test_rfc3711_b2_aes_cm_keystream() -> None:
    """B.2: session key and salt given, SSRC and index zero: the keystream."""
    key = h("2B7E151628AED2A6ABF7158809CF4F3C")
    salt = h("F0F1F2F3F4F5F6F7F8F9FAFBFCFD")
    iv = (int.from_bytes(salt, "big") << 16).to_bytes(16, "big")
    assert iv == h("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")
    stream = aes_ctr(key, iv, bytes(48))
    assert stream == h(
        "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB"
        "41E95B3BB0A2E8DD477901E4FCA894C0"
    )


def test_rfc3711_b3_key_derivation() -> None:
    mk = h("E1F97A0D3E018BE0D64FA32C06DE4139")
    ms = h("0EC675AD498AFEEBB6960B3AABE6")
    assert kdf(mk, ms, 0, 16) == h("C61E7A93744F39EE10734AFE3FF7A087")
    assert kdf(mk, ms, 2, 14) == h("30CBBC08863D8C85D49DB34A9AE1")
    assert kdf(mk, ms, 1, 94) == h(
        "CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE"
        "E049646C43D9327AD175578EF7227098 6371C10C9A369AC2F94A8C5FBCDDDC25"
        "6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2"
    )


RFC7714_KEY = h("000102030405060708090a0b0c0d0e0f")
RFC7714_SALT = h("517569642070726f2071756f")  # "Quid pro quo"
RFC7714_RTP = h(
    "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 20646976"
    "69736120 696e2070 61727465 73207472 6573"
)
RFC7714_RTCP = h(
    "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61"
    "deadbeef deadbeef deadbeef deadbeef deadbeef"
)


def rfc7714_ref() -> Ref:
    """RFC 7714's examples give the session key and salt directly."""
    keys = SessionKeys(RFC7714_KEY, RFC7714_SALT, b"")
    return Ref(GCM, keys, keys)


def test_rfc7714_16_1_1_srtp_gcm_packet() -> None:
    iv12 = struct.pack("!HIIH", 0, 0x5501A0B2, 0, 0xF17B)
    assert bytes(a ^ b for a, b in zip(iv12, RFC7714_SALT)) == h("51753c6580c2726f20718414")
    assert rfc7714_ref().protect_rtp(RFC7714_RTP, roc=0) == h(
        "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5"
        "0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1 6a9152cf 765ee439 0cce"
    )


def test_rfc7714_17_1_srtcp_gcm_packet() -> None:
    ref = rfc7714_ref()
    ref.rtcp_index = 0x5D4 - 1
    assert ref.protect_rtcp(RFC7714_RTCP) == h(
        "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 6c06f32d"
        "c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458 96cf4d2f c5abf872"
        "45d9eade 800005d4"
    )


# --------------------------------------------------------------------------
# SrtpContext against libsrtp's reference packets (master key in)

# libsrtp test_key (first 30 octets: the RFC 3711 B.3 master key and salt)
LIBSRTP_KEY_CM = h("e1f97a0d3e018be0d64fa32c06de4139 0ec675ad498afeebb6960b3aabe6")
LIBSRTP_KEY_GCM = h("000102030405060708090a0b0c0d0e0f a0a1a2a3a4a5a6a7a8a9aaab")
LIBSRTP_RTP = h("800f1234 decafbad cafebabe") + b"\xab" * 16
LIBSRTP_RTCP = h("81c8000b cafebabe") + b"\xab" * 16
LIBSRTP_VECTORS = {
    CM80: (
        LIBSRTP_KEY_CM,
        h("800f1234 decafbad cafebabe 4e55dc4c e79978d8 8ca4d215 949d2402 b78d6acc 99ea179b 8dbb"),
        h("81c8000b cafebabe 7128035b e487b9bd bef89041 f977a5a8 80000001 993e08cd 54d6c123 0798"),
    ),
    GCM: (
        LIBSRTP_KEY_GCM,
        h(
            "800f1234 decafbad cafebabe c5002ede 04cfdd2e b91159e0 880aa06e d2976826"
            "f796b201 df3131a1 27e8a392"
        ),
        h(
            "81c8000b cafebabe c98b8b5d f0392a55 852b6c21 ac8e7025 c52c6fbe a2b3b446"
            "ea31123b a88ce61e 80000001"
        ),
    ),
}


@pytest.mark.parametrize("profile", [CM80, GCM])
def test_libsrtp_reference_packets(profile: str) -> None:
    key, srtp, srtcp = LIBSRTP_VECTORS[profile]
    tx = SrtpContext(profile, key, True)
    assert tx.protect(LIBSRTP_RTP) == srtp
    assert tx.protect(LIBSRTP_RTCP, rtcp=True) == srtcp
    rx = SrtpContext(profile, key, False)
    assert rx.unprotect(srtp) == LIBSRTP_RTP
    assert rx.unprotect(srtcp, rtcp=True) == LIBSRTP_RTCP
    # the independent implementation, from the master key, agrees
    ref = Ref.from_master(profile, key)
    assert ref.protect_rtp(LIBSRTP_RTP, roc=0) == srtp
    assert ref.protect_rtcp(LIBSRTP_RTCP) == srtcp


def test_libsrtp_cm_key_is_rfc3711_b3_master() -> None:
    """The CM reference packet is built on the B.3 master key, so B.3's
    session keys are the ones in use (checked through Ref's derivation)."""
    ref = Ref.from_master(CM80, LIBSRTP_KEY_CM)
    assert ref.rtp.key == h("C61E7A93744F39EE10734AFE3FF7A087")
    assert ref.rtp.salt == h("30CBBC08863D8C85D49DB34A9AE1")
    assert ref.rtp.auth == h("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")


# --------------------------------------------------------------------------
# SrtpContext against the independent implementation on generated packets


def build_rtp(
    *,
    seq: int,
    ssrc: int,
    ts: int = 0x01020304,
    pt: int = 96,
    marker: bool = False,
    csrcs: tuple[int, ...] = (),
    ext: bytes | None = None,
    payload: bytes = b"",
    padding: int = 0,
) -> bytes:
    """ext: the extension block's words after the 0xBEDE/length word."""
    b0 = 0x80 | len(csrcs) | (0x10 if ext is not None else 0) | (0x20 if padding else 0)
    out = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    out += b"".join(struct.pack("!I", c) for c in csrcs)
    if ext is not None:
        assert len(ext) % 4 == 0
        out += struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext
    pad = bytes(padding - 1) + bytes([padding]) if padding else b""
    return out + payload + pad


rtp_shapes = st.fixed_dictionaries(
    {
        "ssrc": st.integers(1, 0xFFFFFFFF),
        "ts": st.integers(0, 0xFFFFFFFF),
        "pt": st.integers(0, 127).filter(lambda pt: not 64 <= pt <= 95),
        "marker": st.booleans(),
        "csrcs": st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
        "ext": st.none()
        | st.integers(0, 8).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
        "payload": st.binary(max_size=300),
        "padding": st.integers(0, 40),
    }
)


@settings(max_examples=60, deadline=None)
@given(
    profile=st.sampled_from([CM80, GCM]),
    shape=rtp_shapes,
    first_seq=st.integers(0, 0xFFFF),
    steps=st.lists(st.integers(1, 0x7FFF), min_size=1, max_size=12),
)
def test_protect_matches_independent_implementation(
    profile: str, shape: dict[str, object], first_seq: int, steps: list[int]
) -> None:
    """Byte-exact agreement over sequence numbers that cross 65535 -> 0
    (forward jumps under 2^15 keep the index estimate exact, RFC 3711 3.3.1)."""
    key = os.urandom(sum(KEY_SALT_LEN[profile]))
    tx, rx = SrtpContext(profile, key, True), SrtpContext(profile, key, False)
    ref = Ref.from_master(profile, key)
    index = first_seq
    for step in [0, *steps]:
        index += step
        plain = build_rtp(seq=index & 0xFFFF, **shape)  # type: ignore[arg-type]
        wire = tx.protect(plain)
        assert wire == ref.protect_rtp(plain, roc=index >> 16)
        assert rx.unprotect(wire) == plain
    for n in range(3):
        rtcp = struct.pack("!BBHI", 0x80, 201, 1 + n, shape["ssrc"]) + bytes(range(4 * n))
        rtcp = rtcp[:2] + struct.pack("!H", len(rtcp) // 4 - 1) + rtcp[4:]
        wire = tx.protect(rtcp, rtcp=True)
        assert wire == ref.protect_rtcp(rtcp)
        assert rx.unprotect(wire, rtcp=True) == rtcp


@pytest.mark.parametrize("profile", [CM80, GCM])
def test_roc_rollover_sequential_and_many_wraps(profile: str) -> None:
    """Every packet from 65500 through the wrap to 100 (ROC 0 -> 1), then
    jumps of 30000 through ten more wraps: sender and receiver track the ROC
    exactly as the independent implementation computes it."""
    key = os.urandom(sum(KEY_SALT_LEN[profile]))
    tx, rx = SrtpContext(profile, key, True), SrtpContext(profile, key, False)
    peer_rx = pylibsrtp.Session(
        pylibsrtp.Policy(
            key=key,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
            srtp_profile=PYLIBSRTP_PROFILE[profile],
        )
    )
    ref = Ref.from_master(profile, key)
    indexes = list(range(65500, 65536 + 101)) + [65636 + 30000 * k for k in range(1, 24)]
    assert indexes[-1] >> 16 == 11
    for index in indexes:
        plain = build_rtp(seq=index & 0xFFFF, ssrc=0x5EED, payload=struct.pack("!Q", index) * 4)
        wire = tx.protect(plain)
        assert wire == ref.protect_rtp(plain, roc=index >> 16), f"index {index}"
        assert rx.unprotect(wire) == plain
        assert peer_rx.unprotect(wire) == plain


# --------------------------------------------------------------------------
# Cross-checks with pylibsrtp's public API, both directions


def pylibsrtp_pair(profile: str, key: bytes) -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    number = PYLIBSRTP_PROFILE[profile]
    out = pylibsrtp.Session(
        pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=number)
    )
    inb = pylibsrtp.Session(
        pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=number)
    )
    return out, inb


@pytest.mark.parametrize("profile", [CM80, GCM])
def test_pylibsrtp_both_directions(profile: str) -> None:
    key = os.urandom(sum(KEY_SALT_LEN[profile]))
    """Same key, same packets: identical bytes on the wire, and each side
    unprotects what the other protected (RTP across a wrap, and SRTCP)."""
    key = os.urandom(sum(KEY_SALT_LEN[profile]))
    ours_tx, ours_rx = SrtpContext(profile, key, True), SrtpContext(profile, key, False)
    their_tx, their_rx = pylibsrtp_pair(profile, key)
    back_tx, _ = pylibsrtp_pair(profile, key)
    for seq in range(65530, 65546):
        plain = build_rtp(
            seq=seq & 0xFFFF,
            ssrc=77,
            csrcs=(1, 2),
            ext=b"\x10\xaa\x00\x00",
            payload=os.urandom(seq % 50),
        )
        wire = ours_tx.protect(plain)
        assert wire == their_tx.protect(plain)
        assert their_rx.unprotect(wire) == plain
        assert ours_rx.unprotect(back_tx.protect(plain)) == plain
    for n in range(5):
        rtcp = struct.pack("!BBHI", 0x81, 203, 1, 77 + n % 2)
        wire = ours_tx.protect(rtcp, rtcp=True)
        assert wire == their_tx.protect_rtcp(rtcp)
        assert their_rx.unprotect_rtcp(wire) == rtcp
    for n in range(5):
        rtcp = struct.pack("!BBHII", 0x80, 201, 2, 90 + n % 2, n)
        assert ours_rx.unprotect(back_tx.protect_rtcp(rtcp), rtcp=True) == rtcp


# --------------------------------------------------------------------------
# Rejections


def status(exc: pytest.ExceptionInfo[SrtpError]) -> int:
    return int(str(exc.value).rsplit(" ", 1)[1])


@pytest.mark.parametrize("profile", [CM80, GCM])
def test_replayed_and_too_old_packets_are_rejected(profile: str) -> None:
    key = os.urandom(sum(KEY_SALT_LEN[profile]))
    tx, rx = SrtpContext(profile, key, True), SrtpContext(profile, key, False)
    late = tx.protect(build_rtp(seq=800, ssrc=5, payload=b"b"))
    first = tx.protect(build_rtp(seq=1000, ssrc=5, payload=b"a"))
    assert rx.unprotect(first)
    with pytest.raises(SrtpError, match="unprotect failed") as exc:
        rx.unprotect(first)
    assert status(exc) == STATUS_REPLAY_FAIL
    # 201 behind the newest when it arrives; the replay window is 128
    rx.unprotect(tx.protect(build_rtp(seq=1001, ssrc=5)))
    with pytest.raises(SrtpError) as exc:
        rx.unprotect(late)
    assert status(exc) == STATUS_REPLAY_OLD
    # the outbound side allows repeats (the router retransmits from its ring)
    assert tx.protect(build_rtp(seq=1000, ssrc=5, payload=b"a")) == first
    rtcp = tx.protect(struct.pack("!BBHI", 0x80, 201, 1, 5), rtcp=True)
    rx.unprotect(rtcp, rtcp=True)
    with pytest.raises(SrtpError) as exc:
        rx.unprotect(rtcp, rtcp=True)
    assert status(exc) == STATUS_REPLAY_FAIL


@pytest.mark.parametrize("profile", [CM80, GCM])
@pytest.mark.parametrize("rtcp", [False, True])
def test_every_single_bit_flip_is_rejected(profile: str, rtcp: bool) -> None:
    key = os.urandom(sum(KEY_SALT_LEN[profile]))
    tx = SrtpContext(profile, key, True)
    if rtcp:
        plain = struct.pack("!BBHIII", 0x81, 201, 2, 9, 0xAABBCCDD, 0x01020304)
        first_payload_byte = 8
    else:
        plain = build_rtp(seq=7, ssrc=9, csrcs=(3,), payload=b"payload!")
        first_payload_byte = 16
    wire = tx.protect(plain, rtcp=rtcp)
    # the SRTCP E flag: cleared, libsrtp refuses before authenticating
    e_flag = (len(plain) if profile == CM80 else len(wire) - 4) if rtcp else -1
    for i in range(len(wire)):
        for bit in range(8):
            rx = SrtpContext(profile, key, False)
            bad = bytearray(wire)
            bad[i] ^= 1 << bit
            with pytest.raises(SrtpError) as exc:
                rx.unprotect(bytes(bad), rtcp=rtcp)
            if i >= first_payload_byte and (i, bit) != (e_flag, 7):
                assert status(exc) == STATUS_AUTH_FAIL, (i, bit)
    assert SrtpContext(profile, key, False).unprotect(wire, rtcp=rtcp) == plain


def test_context_errors_name_the_problem() -> None:
    with pytest.raises(
        SrtpError, match=r"unknown SRTP profile 'AES_CM_128_HMAC_SHA1_32'; expected one of"
    ):
        SrtpContext("AES_CM_128_HMAC_SHA1_32", bytes(30), True)
    with pytest.raises(
        SrtpError, match=r"^AEAD_AES_128_GCM needs 28 bytes of key and salt, got 30$"
    ):
        SrtpContext(GCM, bytes(30), True)
    with pytest.raises(
        SrtpError, match=r"^AES_CM_128_HMAC_SHA1_80 needs 30 bytes of key and salt, got 28$"
    ):
        SrtpContext(CM80, bytes(28), False)


@pytest.mark.parametrize("profile", [CM80, GCM])
def test_garbage_into_unprotect_raises_srtp_error_only(profile: str) -> None:
    rx = SrtpContext(profile, os.urandom(sum(KEY_SALT_LEN[profile])), False)
    rng = __import__("random").Random(3)
    for n in list(range(64)) + [rng.randrange(64, 1500) for _ in range(50)]:
        data = bytes([0x80 | rng.randrange(64)]) + rng.randbytes(max(0, n - 1)) if n else b""
        for as_rtcp in (False, True):
            with pytest.raises(SrtpError):
                rx.unprotect(data, rtcp=as_rtcp)


@pytest.mark.parametrize("profile", [CM80, GCM])
def test_outbound_window_bounds_how_far_back_a_retransmission_can_go(profile: str) -> None:
    """libsrtp's sender refuses an index older than its replay window even with
    allow_repeat_tx (status 10): a NACK ring deeper than the window needs a
    larger ``window_size`` on the outbound context."""
    key = os.urandom(sum(KEY_SALT_LEN[profile]))
    for window, reach in ((128, 127), (1024, 1023)):
        tx = SrtpContext(profile, key, True, window)
        tx.protect(build_rtp(seq=5000, ssrc=1))
        tx.protect(build_rtp(seq=5000 - reach, ssrc=1))
        with pytest.raises(SrtpError) as exc:
            tx.protect(build_rtp(seq=5000 - reach - 1, ssrc=1))
        assert status(exc) == STATUS_REPLAY_OLD
