"""DTLS 1.2 endpoint and certificates: real OpenSSL on both sides, no mocks.

Peers: aiortc's RTCDtlsTransport (an independent DTLS-SRTP implementation) over an in-memory
ICE stand-in, and our own endpoint in the other role. Loss tests use real time, because
OpenSSL's retransmission timer runs on its own clock.
"""

from __future__ import annotations

import asyncio
import datetime
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pylibsrtp
import pytest
from aiortc.rtcdtlstransport import (
    SRTP_AES128_CM_SHA1_80,
    RTCCertificate,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCDtlsTransport,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from switchboard.engine.certificate import (
    Fingerprint,
    FingerprintError,
    LocalCertificate,
    UnsupportedFingerprintAlgorithm,
    fingerprint,
    fingerprint_matches,
    generate_certificate,
    parse_fingerprint,
    process_certificate,
)
from switchboard.engine.dtls import (
    ApplicationData,
    Closed,
    DtlsConfig,
    DtlsEndpoint,
    DtlsError,
    DtlsEvent,
    DtlsFingerprintError,
    DtlsProtocolError,
    DtlsState,
    DtlsTimeoutError,
    Failed,
    HandshakeComplete,
    SetupRole,
    SrtpKeys,
    SrtpProfile,
    answer_setup,
    is_dtls_server,
)

GCM = SrtpProfile.AEAD_AES_128_GCM
CM80 = SrtpProfile.AES_CM_128_HMAC_SHA1_80
LIBSRTP_PROFILE = {
    GCM: pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    CM80: pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
}

# An RTP packet: V=2, PT 111, seq 1, ts 1000, SSRC 0x11223344, 40 bytes of payload.
RTP = bytes.fromhex("806f0001000003e811223344") + bytes(range(40))
# An RTCP receiver report with no report blocks, SSRC 0x11223344.
RTCP = bytes.fromhex("80c9000111223344")


@pytest.fixture(scope="module")
def server_cert() -> LocalCertificate:
    return generate_certificate()


@pytest.fixture(scope="module")
def client_cert() -> LocalCertificate:
    return generate_certificate()


def rsa_certificate() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed RSA certificate like GStreamer 1.22's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "webrtcbin")])
    now = datetime.datetime.now(tz=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert, key


def endpoint(
    own: LocalCertificate,
    peer: LocalCertificate,
    *,
    is_server: bool,
    config: DtlsConfig | None = None,
) -> DtlsEndpoint:
    return DtlsEndpoint(
        own.certificate,
        own.private_key,
        is_server=is_server,
        remote_fingerprints=[("sha-256", peer.fingerprint())],
        config=config,
    )


@dataclass
class Side:
    """An endpoint plus what it has emitted, for the loop below."""

    ep: DtlsEndpoint
    events: list[DtlsEvent] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)
    dropped: int = 0

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def settled(self) -> bool:
        return self.ep.state is not DtlsState.DTLS_CONNECTING


def pump(
    a: Side,
    b: Side,
    *,
    now: float | None = None,
    drop_a: Callable[[int, bytes], bool] | None = None,
    drop_b: Callable[[int, bytes], bool] | None = None,
) -> None:
    """Move datagrams between two sides until neither has anything to send (no timers)."""
    t = time.monotonic() if now is None else now
    for _ in range(100):
        moved = False
        for src, dst, drop in ((a, b, drop_a), (b, a, drop_b)):
            for datagram in src.ep.datagrams_to_send():
                moved = True
                index = len(src.sent)
                src.sent.append(datagram)
                if drop is not None and drop(index, datagram):
                    src.dropped += 1
                    continue
                dst.ep.receive(datagram, t)
            src.events.extend(src.ep.events())
        if not moved:
            return
    raise AssertionError("datagram ping-pong did not settle")


def run_real_time(
    pairs: list[tuple[Side, Side]],
    *,
    budget: float,
    drops: dict[int, Callable[[int, bytes], bool]] | None = None,
) -> float:
    """Drive client/server pairs with real timers until every endpoint settled or ``budget``
    seconds passed; ``drops`` maps id(Side) to its loss function. Returns the elapsed time."""
    drops = drops or {}
    start = time.monotonic()
    for client, _ in pairs:
        client.ep.start(start)
    sides = [s for pair in pairs for s in pair]
    while time.monotonic() - start < budget:
        now = time.monotonic()
        for side in sides:
            due = side.ep.next_timer()
            if due is not None and now >= due:
                side.ep.handle_timer(now)
        for client, server in pairs:
            pump(
                client, server, now=now, drop_a=drops.get(id(client)), drop_b=drops.get(id(server))
            )
        if all(s.settled for s in sides):
            return time.monotonic() - start
        timers = [t for s in sides if (t := s.ep.next_timer()) is not None]
        time.sleep(min(0.02, max(0.0, min(timers, default=now + 0.02) - time.monotonic())))
    return time.monotonic() - start


def handshake(client: DtlsEndpoint, server: DtlsEndpoint, now: float = 100.0) -> tuple[Side, Side]:
    c, s = Side(client), Side(server)
    client.start(now)
    pump(c, s, now=now)
    return c, s


def srtp_session(key_salt: bytes, profile: SrtpProfile, outbound: bool) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(
        key=key_salt,
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND
        if outbound
        else pylibsrtp.Policy.SSRC_ANY_INBOUND,
        srtp_profile=LIBSRTP_PROFILE[profile],
    )
    return pylibsrtp.Session(policy)


# -- certificate ---------------------------------------------------------------------------


def test_certificate_is_self_signed_p256_with_random_cn() -> None:
    start = datetime.datetime(2026, 1, 10, tzinfo=datetime.UTC)
    a = generate_certificate(now=start)
    b = generate_certificate(now=start)
    cert = a.certificate
    assert cert.issuer == cert.subject
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    assert cert.not_valid_after_utc - start == datetime.timedelta(days=30)
    assert cert.not_valid_before_utc < start
    assert cert.subject != b.certificate.subject  # random CN
    cert.verify_directly_issued_by(cert)  # really self-signed by its own key
    assert "sha-256" in repr(a) and "private" not in repr(a).lower()


def test_fingerprint_format_and_match(server_cert: LocalCertificate) -> None:
    value = fingerprint(server_cert.certificate, "sha-256")
    octets = value.split(":")
    assert len(octets) == 32 and all(len(o) == 2 and o == o.upper() for o in octets)
    assert bytes.fromhex(value.replace(":", "")) == server_cert.certificate.fingerprint(
        hashes.SHA256()
    )
    assert len(fingerprint(server_cert.certificate, "SHA-1").split(":")) == 20
    assert len(fingerprint(server_cert.certificate, "sha-512").split(":")) == 64
    assert fingerprint_matches(server_cert.certificate, "SHA-256", value.lower())
    assert not fingerprint_matches(generate_certificate().certificate, "sha-256", value)
    with pytest.raises(
        UnsupportedFingerprintAlgorithm, match="unsupported fingerprint algorithm 'md5'"
    ):
        fingerprint(server_cert.certificate, "md5")


def test_process_certificate_is_shared() -> None:
    assert process_certificate() is process_certificate()
    assert process_certificate().expires > datetime.datetime.now(tz=datetime.UTC)


def test_parse_fingerprint(server_cert: LocalCertificate) -> None:
    value = server_cert.fingerprint("sha-384")
    parsed = parse_fingerprint(f"SHA-384 {value.lower()}")
    assert parsed == Fingerprint("sha-384", value) == ("sha-384", value)
    assert parsed.matches(server_cert.certificate)
    assert str(parsed) == f"sha-384 {value}"
    with pytest.raises(UnsupportedFingerprintAlgorithm):
        parse_fingerprint("md5 " + ":".join(["AB"] * 16))
    with pytest.raises(FingerprintError, match="sha-256 fingerprint must have 32 octets, got 31"):
        parse_fingerprint("sha-256 " + ":".join(["AB"] * 31))
    with pytest.raises(FingerprintError, match="is not two hex digits"):
        parse_fingerprint("sha-1 " + ":".join(["AB"] * 19 + ["G1"]))
    with pytest.raises(FingerprintError, match="must be '<hash-function> <hex:hex:...>'"):
        parse_fingerprint("sha-256")


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=200), st.from_regex(r"sha-(1|256|384|512) [0-9a-fA-F:]{0,200}")))
def test_parse_fingerprint_never_crashes(text: str) -> None:
    try:
        parsed = parse_fingerprint(text)
    except ValueError:
        return
    assert parsed.algorithm in ("sha-1", "sha-256", "sha-384", "sha-512")
    assert parsed.value == parsed.value.upper()


# -- roles and config ----------------------------------------------------------------------


def test_setup_roles() -> None:
    assert answer_setup(SetupRole.ACTPASS) is SetupRole.PASSIVE
    assert answer_setup(SetupRole.ACTIVE) is SetupRole.PASSIVE
    assert answer_setup(SetupRole.PASSIVE) is SetupRole.ACTIVE
    assert is_dtls_server(SetupRole.PASSIVE) and not is_dtls_server(SetupRole.ACTIVE)
    with pytest.raises(DtlsError, match="not decided while our a=setup is actpass"):
        is_dtls_server(SetupRole.ACTPASS)
    with pytest.raises(ValueError):
        SetupRole("holdconn")


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="mtu must be between 256 and 65507, got 100"):
        DtlsConfig(mtu=100)
    with pytest.raises(ValueError, match="handshake_timeout must be positive"):
        DtlsConfig(handshake_timeout=0)
    with pytest.raises(ValueError, match="srtp_profiles must not be empty"):
        DtlsConfig(srtp_profiles=())
    with pytest.raises(ValueError, match="must not repeat"):
        DtlsConfig(srtp_profiles=(GCM, GCM))


def test_remote_fingerprints_must_be_usable(server_cert: LocalCertificate) -> None:
    with pytest.raises(DtlsError, match="no usable remote fingerprint"):
        DtlsEndpoint(
            server_cert.certificate,
            server_cert.private_key,
            is_server=True,
            remote_fingerprints=[("md5", "AB:CD"), ("sha-256", "nonsense")],
        )


# -- handshake against ourselves -----------------------------------------------------------


def test_handshake_keys_mirror_and_gcm_preferred(
    server_cert: LocalCertificate, client_cert: LocalCertificate
) -> None:
    c, s = handshake(
        endpoint(client_cert, server_cert, is_server=False),
        endpoint(server_cert, client_cert, is_server=True),
    )
    assert c.ep.state is s.ep.state is DtlsState.DTLS_CONNECTED
    (cdone,) = c.of(HandshakeComplete)
    (sdone,) = s.of(HandshakeComplete)
    assert cdone.srtp_keys.profile_name is sdone.srtp_keys.profile_name is GCM
    assert len(sdone.srtp_keys.local_key_salt) == 28
    assert sdone.srtp_keys.local_key_salt == cdone.srtp_keys.remote_key_salt
    assert sdone.srtp_keys.remote_key_salt == cdone.srtp_keys.local_key_salt
    assert sdone.srtp_keys.local_key_salt != sdone.srtp_keys.remote_key_salt
    assert s.ep.cipher_name == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert s.ep.remote_certificate == client_cert.certificate
    assert c.ep.remote_certificate == server_cert.certificate
    assert "keys hidden" in repr(sdone.srtp_keys)
    assert all(len(d) <= 1200 for d in c.sent + s.sent)
    # No timer left once both are connected (DTLS 1.2: the server's flight is the last).
    assert c.ep.next_timer() is None and s.ep.next_timer() is None


def test_handshake_datagrams_respect_small_mtu(
    server_cert: LocalCertificate, client_cert: LocalCertificate
) -> None:
    cert, key = rsa_certificate()  # an RSA certificate makes big flights
    config = DtlsConfig(mtu=300)
    server = DtlsEndpoint(
        cert,
        key,
        is_server=True,
        remote_fingerprints=[("sha-256", client_cert.fingerprint())],
        config=config,
    )
    client = DtlsEndpoint(
        client_cert.certificate,
        client_cert.private_key,
        is_server=False,
        remote_fingerprints=[("sha-256", fingerprint(cert))],
        config=config,
    )
    c, s = handshake(client, server)
    assert c.of(HandshakeComplete) and s.of(HandshakeComplete)
    assert all(len(d) <= 300 for d in c.sent + s.sent)
    assert len(s.sent) >= 4  # the server's certificate flight was split


@pytest.mark.parametrize(
    ("client_profiles", "server_profiles", "expected"),
    [
        ((CM80, GCM), (GCM, CM80), GCM),  # the server's preference wins
        ((GCM, CM80), (CM80, GCM), CM80),
        ((CM80,), (GCM, CM80), CM80),
        ((GCM,), (GCM, CM80), GCM),
    ],
)
def test_srtp_profile_selection(
    server_cert: LocalCertificate,
    client_cert: LocalCertificate,
    client_profiles: tuple[SrtpProfile, ...],
    server_profiles: tuple[SrtpProfile, ...],
    expected: SrtpProfile,
) -> None:
    c, s = handshake(
        endpoint(
            client_cert,
            server_cert,
            is_server=False,
            config=DtlsConfig(srtp_profiles=client_profiles),
        ),
        endpoint(
            server_cert,
            client_cert,
            is_server=True,
            config=DtlsConfig(srtp_profiles=server_profiles),
        ),
    )
    assert c.ep.srtp_keys is not None and s.ep.srtp_keys is not None
    assert c.ep.srtp_keys.profile_name is s.ep.srtp_keys.profile_name is expected
    length = 28 if expected is GCM else 30
    assert len(c.ep.srtp_keys.local_key_salt) == len(c.ep.srtp_keys.remote_key_salt) == length


def test_no_common_srtp_profile_fails(
    server_cert: LocalCertificate, client_cert: LocalCertificate
) -> None:
    c, s = handshake(
        endpoint(
            client_cert, server_cert, is_server=False, config=DtlsConfig(srtp_profiles=(CM80,))
        ),
        endpoint(server_cert, client_cert, is_server=True, config=DtlsConfig(srtp_profiles=(GCM,))),
    )
    (failed,) = s.of(Failed)
    assert isinstance(failed.error, DtlsProtocolError)
    assert str(failed.error) == ("no SRTP profile negotiated (we support AEAD_AES_128_GCM)")
    assert not s.of(HandshakeComplete)
    assert c.ep.state is DtlsState.DTLS_FAILED  # same check on its side


def test_server_fingerprint_mismatch(
    server_cert: LocalCertificate, client_cert: LocalCertificate
) -> None:
    stranger = generate_certificate()
    c, s = handshake(
        endpoint(client_cert, server_cert, is_server=False),
        endpoint(server_cert, stranger, is_server=True),  # expects the stranger's certificate
    )
    (failed,) = s.of(Failed)
    assert isinstance(failed.error, DtlsFingerprintError)
    assert str(failed.error) == (
        "remote certificate fingerprint does not match the fingerprint from the SDP:"
        f" expected sha-256 {stranger.fingerprint()}, got sha-256 {client_cert.fingerprint()}"
    )
    assert s.ep.error is failed.error and s.ep.srtp_keys is None
    assert not s.of(HandshakeComplete) and not c.of(HandshakeComplete)
    # The server's alert fails the client too, with OpenSSL's reason.
    (client_failed,) = c.of(Failed)
    assert isinstance(client_failed.error, DtlsProtocolError)
    assert str(client_failed.error).startswith("DTLS handshake failed: ")
    assert "alert" in str(client_failed.error)


def test_client_fingerprint_mismatch_uses_strongest_algorithm(
    server_cert: LocalCertificate, client_cert: LocalCertificate
) -> None:
    stranger = generate_certificate()
    client = DtlsEndpoint(
        client_cert.certificate,
        client_cert.private_key,
        is_server=False,
        # sha-1 matches the real server, but sha-512 (stronger) names a stranger: RFC 8122
        # says check the strongest offered, so this must fail.
        remote_fingerprints=[
            ("sha-1", server_cert.fingerprint("sha-1")),
            ("SHA-512", stranger.fingerprint("sha-512").lower()),
        ],
    )
    c, s = handshake(client, endpoint(server_cert, client_cert, is_server=True))
    (failed,) = c.of(Failed)
    assert isinstance(failed.error, DtlsFingerprintError)
    assert str(failed.error).startswith(
        "remote certificate fingerprint does not match the fingerprint from the SDP:"
        f" expected sha-512 {stranger.fingerprint('sha-512')}, got sha-512 "
    )
    assert s.ep.state is DtlsState.DTLS_FAILED


def test_any_fingerprint_of_the_strongest_algorithm_may_match(
    server_cert: LocalCertificate, client_cert: LocalCertificate
) -> None:
    client = DtlsEndpoint(
        client_cert.certificate,
        client_cert.private_key,
        is_server=False,
        remote_fingerprints=[
            ("sha-256", generate_certificate().fingerprint()),
            ("sha-256", server_cert.fingerprint()),
            ("md5", "00:11"),
        ],
    )
    c, s = handshake(client, endpoint(server_cert, client_cert, is_server=True))
    assert c.of(HandshakeComplete) and s.of(HandshakeComplete)


def test_rsa_certificate_client_against_our_server(server_cert: LocalCertificate) -> None:
    cert, key = rsa_certificate()
    client = DtlsEndpoint(
        cert,
        key,
        is_server=False,
        remote_fingerprints=[("sha-256", server_cert.fingerprint())],
    )
    server = DtlsEndpoint(
        server_cert.certificate,
        server_cert.private_key,
        is_server=True,
        remote_fingerprints=[("sha-256", fingerprint(cert))],
    )
    c, s = handshake(client, server)
    assert c.of(HandshakeComplete) and s.of(HandshakeComplete)
    assert s.ep.remote_certificate == cert
    assert s.ep.cipher_name == "ECDHE-ECDSA-AES128-GCM-SHA256"


def test_our_client_against_rsa_server(client_cert: LocalCertificate) -> None:
    """GStreamer-as-server shape: the server's RSA key needs an ECDHE-RSA suite."""
    cert, key = rsa_certificate()
    server = DtlsEndpoint(
        cert,
        key,
        is_server=True,
        remote_fingerprints=[("sha-256", client_cert.fingerprint())],
    )
    client = DtlsEndpoint(
        client_cert.certificate,
        client_cert.private_key,
        is_server=False,
        remote_fingerprints=[("sha-256", fingerprint(cert))],
    )
    c, s = handshake(client, server)
    assert c.of(HandshakeComplete) and s.of(HandshakeComplete)
    assert c.ep.cipher_name == "ECDHE-RSA-AES128-GCM-SHA256"


# -- application data, close ---------------------------------------------------------------


def test_application_data_round_trip(
    server_cert: LocalCertificate, client_cert: LocalCertificate
) -> None:
    c, s = handshake(
        endpoint(client_cert, server_cert, is_server=False),
        endpoint(server_cert, client_cert, is_server=True),
    )
    c.events.clear()
    s.events.clear()
    messages = [b"\x13\x88\x13\x88" + bytes([i]) * (i * 37 % 1100 + 1) for i in range(20)]
    for m in messages:
        c.ep.send_application_data(m)
        s.ep.send_application_data(m[::-1])
    pump(c, s)
    assert [e.data for e in s.of(ApplicationData)] == messages
    assert [e.data for e in c.of(ApplicationData)] == [m[::-1] for m in messages]
    assert s.ep.counters.application_data_received == 20
    assert c.ep.counters.application_data_sent == 20
    # One record per datagram for application data, within the MTU for SCTP-sized packets.
    assert 1100 <= s.ep.application_data_mtu < 1200
    s.ep.send_application_data(bytes(s.ep.application_data_mtu))
    (datagram,) = s.ep.datagrams_to_send()
    assert len(datagram) <= 1200


def test_send_before_handshake_and_empty_data_raise(
    server_cert: LocalCertificate, client_cert: LocalCertificate
) -> None:
    server = endpoint(server_cert, client_cert, is_server=True)
    with pytest.raises(DtlsError, match="cannot send application data: DTLS is new, not connected"):
        server.send_application_data(b"x")
    _, s = handshake(endpoint(client_cert, server_cert, is_server=False), server)
    with pytest.raises(DtlsError, match="cannot send empty application data"):
        s.ep.send_application_data(b"")
    with pytest.raises(DtlsError, match="cannot send application data: "):
        s.ep.send_application_data(bytes(20000))  # larger than a record can hold
    assert s.ep.state is DtlsState.DTLS_CONNECTED


@pytest.mark.parametrize("closer", ["client", "server"])
def test_close_notify(
    server_cert: LocalCertificate, client_cert: LocalCertificate, closer: str
) -> None:
    c, s = handshake(
        endpoint(client_cert, server_cert, is_server=False),
        endpoint(server_cert, client_cert, is_server=True),
    )
    active, passive = (c, s) if closer == "client" else (s, c)
    active.ep.send_application_data(b"last words")
    active.ep.close()
    assert active.ep.state is DtlsState.DTLS_CLOSED
    pump(c, s)
    assert [e.data for e in passive.of(ApplicationData)] == [b"last words"]
    assert passive.of(Closed) == [Closed("close_notify received")]
    assert passive.ep.state is DtlsState.DTLS_CLOSED
    assert not active.of(Closed) and not active.of(Failed)  # a local close emits nothing
    assert active.ep.counters.late_dropped == 1  # the passive side's answering close_notify
    with pytest.raises(DtlsError, match="DTLS is closed, not connected"):
        passive.ep.send_application_data(b"x")
    assert passive.ep.next_timer() is None


def test_close_before_handshake(
    server_cert: LocalCertificate, client_cert: LocalCertificate
) -> None:
    client = endpoint(client_cert, server_cert, is_server=False)
    client.start(0.0)
    client.datagrams_to_send()
    client.close()
    assert client.state is DtlsState.DTLS_CLOSED and client.next_timer() is None
    assert client.datagrams_to_send() == [] and client.events() == []


# -- garbage -------------------------------------------------------------------------------


def record(content_type: int, epoch: int, body: bytes, minor: int = 0xFD) -> bytes:
    return (
        bytes([content_type, 0xFE, minor])
        + epoch.to_bytes(2, "big")
        + (7).to_bytes(6, "big")
        + len(body).to_bytes(2, "big")
        + body
    )


well_framed = st.builds(
    record,
    st.sampled_from([20, 21, 22, 23]),
    st.integers(0, 2),
    st.binary(max_size=300),
    st.sampled_from([0xFD, 0xFF]),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.lists(st.one_of(st.binary(max_size=300), well_framed), min_size=1, max_size=5))
def test_garbage_before_handshake_never_raises(
    server_cert: LocalCertificate, client_cert: LocalCertificate, garbage: list[bytes]
) -> None:
    server = endpoint(server_cert, client_cert, is_server=True)
    for datagram in garbage:
        server.receive(datagram, 5.0)
        server.handle_timer(5.0)
    events = server.events()
    assert all(isinstance(e, Failed) for e in events)
    assert len(events) <= 1
    assert server.state in (DtlsState.DTLS_NEW, DtlsState.DTLS_CONNECTING, DtlsState.DTLS_FAILED)
    if server.state is DtlsState.DTLS_FAILED:
        (failed,) = events
        assert isinstance(failed, Failed) and isinstance(failed.error, DtlsProtocolError)
        assert str(failed.error).startswith("DTLS handshake failed: ")
    assert server.counters.datagrams_received == len(garbage)


def test_malformed_datagrams_are_counted_not_fed(
    server_cert: LocalCertificate, client_cert: LocalCertificate
) -> None:
    server = endpoint(server_cert, client_cert, is_server=True)
    for datagram in [
        b"",
        b"\x16",
        b"\x16\xfe\xfd" + bytes(9),
        record(22, 0, b"abc")[:-1],
        record(24, 0, b"x"),
        record(22, 0, b"x", minor=0x03),
        bytes(50),
    ]:
        server.receive(datagram, 1.0)
    assert server.counters.malformed_dropped == 7
    assert server.state is DtlsState.DTLS_NEW and server.events() == []
    # ... and the endpoint still completes a handshake afterwards.
    _, s = handshake(endpoint(client_cert, server_cert, is_server=False), server)
    assert s.of(HandshakeComplete)


@pytest.fixture(scope="module")
def connected_pair(
    server_cert: LocalCertificate, client_cert: LocalCertificate
) -> tuple[Side, Side]:
    return handshake(
        endpoint(client_cert, server_cert, is_server=False),
        endpoint(server_cert, client_cert, is_server=True),
    )


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.lists(st.one_of(st.binary(max_size=300), well_framed), min_size=1, max_size=8))
def test_garbage_after_handshake_is_ignored(
    connected_pair: tuple[Side, Side], garbage: list[bytes]
) -> None:
    c, s = connected_pair
    for datagram in garbage:
        s.ep.receive(datagram, 200.0)
        c.ep.receive(datagram, 200.0)
    s.ep.datagrams_to_send(), c.ep.datagrams_to_send()  # e.g. a retransmitted final flight
    assert s.ep.events() == [] and c.ep.events() == []
    assert s.ep.state is c.ep.state is DtlsState.DTLS_CONNECTED
    c.ep.send_application_data(b"still alive")
    s.ep.send_application_data(b"me too")
    for d in c.ep.datagrams_to_send():
        s.ep.receive(d, 200.0)
    for d in s.ep.datagrams_to_send():
        c.ep.receive(d, 200.0)
    assert s.ep.events() == [ApplicationData(b"still alive")]
    assert c.ep.events() == [ApplicationData(b"me too")]


# -- timers, loss --------------------------------------------------------------------------


def pattern_loss(pattern: list[bool]) -> Callable[[int, bytes], bool]:
    return lambda index, _datagram: pattern[index]


def test_handshake_completes_with_20_percent_loss(
    server_cert: LocalCertificate, client_cert: LocalCertificate
) -> None:
    """Eight pairs at once, each direction losing ~20% of its datagrams on top of the first
    ClientHello, which is always lost so that every pair needs OpenSSL's retransmission timer.
    Losses follow a fixed pattern per sender (seeded), so the run does not depend on timing;
    these seeds finish in ~3 s (OpenSSL's backoff of 1, 2, 4, 8 s makes unlucky patterns
    take longer than a unit test should)."""
    pairs: list[tuple[Side, Side]] = []
    drops: dict[int, Callable[[int, bytes], bool]] = {}
    for seed in range(8):
        client = Side(endpoint(client_cert, server_cert, is_server=False))
        server = Side(endpoint(server_cert, client_cert, is_server=True))
        rng = random.Random(seed)
        client_pattern = [True] + [rng.random() < 0.2 for _ in range(200)]
        server_pattern = [rng.random() < 0.2 for _ in range(200)]
        drops[id(client)] = pattern_loss(client_pattern)
        drops[id(server)] = pattern_loss(server_pattern)
        pairs.append((client, server))
    elapsed = run_real_time(pairs, budget=9.5, drops=drops)
    assert elapsed < 9.5
    for client, server in pairs:
        assert client.of(HandshakeComplete) and server.of(HandshakeComplete)
        assert client.ep.srtp_keys is not None and server.ep.srtp_keys is not None
        assert client.ep.srtp_keys.local_key_salt == server.ep.srtp_keys.remote_key_salt
        assert client.ep.counters.retransmissions >= 1
    dropped = sum(c.dropped + s.dropped for c, s in pairs)
    assert dropped >= 0.2 * sum(len(c.sent) + len(s.sent) for c, s in pairs)
    assert sum(s.dropped for _, s in pairs) >= 2  # server flights were lost too


def test_lost_final_flight_is_retransmitted_by_the_connected_server(
    server_cert: LocalCertificate, client_cert: LocalCertificate
) -> None:
    client = Side(endpoint(client_cert, server_cert, is_server=False))
    server = Side(endpoint(server_cert, client_cert, is_server=True))
    # The server's second flight (ChangeCipherSpec + Finished, first byte 20) is lost once.
    lost: list[int] = []

    def drop_final(index: int, datagram: bytes) -> bool:
        if datagram[0] == 20 and not lost:
            lost.append(index)
            return True
        return False

    elapsed = run_real_time([(client, server)], budget=5.0, drops={id(server): drop_final})
    assert lost and elapsed < 5.0
    assert server.of(HandshakeComplete) and client.of(HandshakeComplete)
    assert client.ep.counters.retransmissions == 1
    assert server.ep.counters.retransmissions == 0  # it resent on the client's repeat


def test_handshake_timeout(server_cert: LocalCertificate, client_cert: LocalCertificate) -> None:
    client = Side(
        endpoint(
            client_cert, server_cert, is_server=False, config=DtlsConfig(handshake_timeout=0.3)
        )
    )
    server = Side(endpoint(server_cert, client_cert, is_server=True))
    elapsed = run_real_time([(client, server)], budget=3.0, drops={id(client): lambda _i, _d: True})
    assert 0.3 <= elapsed < 2.0
    (failed,) = client.of(Failed)
    assert isinstance(failed.error, DtlsTimeoutError)
    assert str(failed.error) == "DTLS handshake did not complete within 0.3 s"
    assert client.ep.next_timer() is None
    client.ep.receive(record(22, 0, b"late"), time.monotonic())
    assert client.ep.counters.late_dropped == 1 and client.ep.events() == []


def test_timer_is_relative_to_now(
    server_cert: LocalCertificate, client_cert: LocalCertificate
) -> None:
    client = endpoint(client_cert, server_cert, is_server=False)
    assert client.next_timer() is None
    client.start(1000.0)
    due = client.next_timer()
    assert due is not None and 1000.5 <= due <= 1001.0  # OpenSSL's first timeout is 1 s
    client.handle_timer(1000.1)  # early: nothing to retransmit yet
    assert client.counters.retransmissions == 0


# -- aiortc --------------------------------------------------------------------------------


class PipeIce:
    """The part of aiortc's RTCIceTransport that RTCDtlsTransport uses: ``role``, ``_recv``
    and ``_send``; datagrams to and from our endpoint go through two queues."""

    role = "controlled"

    def __init__(self) -> None:
        self.to_aiortc: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.from_aiortc: asyncio.Queue[bytes] = asyncio.Queue()

    async def _recv(self) -> bytes:
        data = await self.to_aiortc.get()
        if data is None:
            raise ConnectionError("closed")
        return data

    async def _send(self, data: bytes) -> None:
        self.from_aiortc.put_nowait(data)


class DataSink:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def _handle_data(self, data: bytes) -> None:
        self.received.append(data)


async def drive(
    ep: DtlsEndpoint, ice: PipeIce, events: list[DtlsEvent], stop: asyncio.Event
) -> None:
    """The asyncio owner of our endpoint in the aiortc tests."""
    while not stop.is_set():
        due = ep.next_timer()
        timeout = 0.05 if due is None else max(0.0, min(0.05, due - time.monotonic()))
        try:
            data = await asyncio.wait_for(ice.from_aiortc.get(), timeout)
        except TimeoutError:
            due = ep.next_timer()
            if due is not None and time.monotonic() >= due:
                ep.handle_timer(time.monotonic())
        else:
            ep.receive(data, time.monotonic())
        for datagram in ep.datagrams_to_send():
            ice.to_aiortc.put_nowait(datagram)
        events.extend(ep.events())


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


@pytest.mark.interop
@pytest.mark.parametrize(
    ("aiortc_role", "aiortc_cm80_only", "our_profiles", "expected"),
    [
        ("client", False, (GCM, CM80), GCM),
        ("client", True, (GCM, CM80), CM80),
        ("client", False, (CM80,), CM80),
        ("server", False, (GCM, CM80), GCM),
        ("server", False, (CM80,), CM80),
    ],
)
async def test_interop_with_aiortc(
    server_cert: LocalCertificate,
    aiortc_role: str,
    aiortc_cm80_only: bool,
    our_profiles: tuple[SrtpProfile, ...],
    expected: SrtpProfile,
) -> None:
    ice = PipeIce()
    theirs = RTCCertificate.generateCertificate()
    dtls = RTCDtlsTransport(ice, [theirs])  # type: ignore[arg-type]
    dtls._set_role(aiortc_role)
    if aiortc_cm80_only:
        dtls._srtp_profiles = [SRTP_AES128_CM_SHA1_80]
    sink = DataSink()
    dtls._register_data_receiver(sink)

    ours = DtlsEndpoint(
        server_cert.certificate,
        server_cert.private_key,
        is_server=aiortc_role == "client",
        remote_fingerprints=[(f.algorithm, f.value) for f in theirs.getFingerprints()],
        config=DtlsConfig(srtp_profiles=our_profiles),
    )
    events: list[DtlsEvent] = []
    stop = asyncio.Event()
    ours.start(time.monotonic())
    for datagram in ours.datagrams_to_send():
        ice.to_aiortc.put_nowait(datagram)
    driver = asyncio.create_task(drive(ours, ice, events, stop))
    try:
        params = RTCDtlsParameters(
            fingerprints=[RTCDtlsFingerprint("sha-256", server_cert.fingerprint())]
        )
        await asyncio.wait_for(dtls.start(params), 5.0)
        assert dtls.state == "connected"
        await wait_for(lambda: any(isinstance(e, HandshakeComplete) for e in events))
        keys = ours.srtp_keys
        assert isinstance(keys, SrtpKeys) and keys.profile_name is expected
        assert ours.cipher_name == "ECDHE-ECDSA-AES128-GCM-SHA256"

        # SRTP keys agree: each side unprotects what the other protected, RTP and RTCP.
        tx = srtp_session(keys.local_key_salt, expected, outbound=True)
        rx = srtp_session(keys.remote_key_salt, expected, outbound=False)
        protected = tx.protect(RTP)
        assert protected != RTP and dtls._rx_srtp.unprotect(protected) == RTP
        assert rx.unprotect(dtls._tx_srtp.protect(RTP)) == RTP
        assert dtls._rx_srtp.unprotect_rtcp(tx.protect_rtcp(RTCP)) == RTCP
        assert rx.unprotect_rtcp(dtls._tx_srtp.protect_rtcp(RTCP)) == RTCP
        tag = 16 if expected is GCM else 10
        assert len(protected) == len(RTP) + tag

        # Application data both ways (SCTP packets in real use).
        await dtls._send_data(b"from aiortc")
        await wait_for(lambda: any(isinstance(e, ApplicationData) for e in events))
        assert [e.data for e in events if isinstance(e, ApplicationData)] == [b"from aiortc"]
        ours.send_application_data(b"from switchboard")
        for datagram in ours.datagrams_to_send():
            ice.to_aiortc.put_nowait(datagram)
        await wait_for(lambda: sink.received == [b"from switchboard"])

        # aiortc closes: we see close_notify.
        await dtls.stop()
        await wait_for(lambda: any(isinstance(e, Closed) for e in events))
        assert ours.state is DtlsState.DTLS_CLOSED
        assert not any(isinstance(e, Failed) for e in events)
    finally:
        stop.set()
        await driver
        await dtls.stop()


@pytest.mark.interop
async def test_aiortc_sees_our_close_notify(server_cert: LocalCertificate) -> None:
    ice = PipeIce()
    theirs = RTCCertificate.generateCertificate()
    dtls = RTCDtlsTransport(ice, [theirs])  # type: ignore[arg-type]
    dtls._set_role("client")
    ours = DtlsEndpoint(
        server_cert.certificate,
        server_cert.private_key,
        is_server=True,
        remote_fingerprints=[("sha-256", theirs.getFingerprints()[0].value)],
    )
    assert theirs.getFingerprints()[0].algorithm == "sha-256"
    events: list[DtlsEvent] = []
    stop = asyncio.Event()
    driver = asyncio.create_task(drive(ours, ice, events, stop))
    try:
        params = RTCDtlsParameters(
            fingerprints=[RTCDtlsFingerprint("sha-256", server_cert.fingerprint())]
        )
        await asyncio.wait_for(dtls.start(params), 5.0)
        await wait_for(lambda: ours.state is DtlsState.DTLS_CONNECTED)
        ours.close()
        for datagram in ours.datagrams_to_send():
            ice.to_aiortc.put_nowait(datagram)
        await wait_for(lambda: dtls.state == "closed")
    finally:
        stop.set()
        await driver
        await dtls.stop()


@pytest.mark.interop
async def test_aiortc_rejects_wrong_fingerprint_and_we_fail_too(
    server_cert: LocalCertificate,
) -> None:
    ice = PipeIce()
    theirs = RTCCertificate.generateCertificate()
    dtls = RTCDtlsTransport(ice, [theirs])  # type: ignore[arg-type]
    dtls._set_role("client")
    ours = DtlsEndpoint(
        server_cert.certificate,
        server_cert.private_key,
        is_server=True,
        remote_fingerprints=[("sha-256", generate_certificate().fingerprint())],
    )
    events: list[DtlsEvent] = []
    stop = asyncio.Event()
    driver = asyncio.create_task(drive(ours, ice, events, stop))
    try:
        params = RTCDtlsParameters(
            fingerprints=[RTCDtlsFingerprint("sha-256", server_cert.fingerprint())]
        )
        await asyncio.wait_for(dtls.start(params), 5.0)
        assert dtls.state == "failed"  # our bad_certificate alert ended its handshake
        failures = [e for e in events if isinstance(e, Failed)]
        assert len(failures) == 1 and isinstance(failures[0].error, DtlsFingerprintError)
    finally:
        stop.set()
        await driver
        await dtls.stop()
