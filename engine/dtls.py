"""DTLS 1.2 for WebRTC: the handshake that keys SRTP and carries SCTP, sans-I/O.

- RFC 6347 (DTLS 1.2): https://www.rfc-editor.org/rfc/rfc6347
- RFC 5763 (DTLS-SRTP framework, fingerprints in SDP): https://www.rfc-editor.org/rfc/rfc5763
- RFC 5764 (``use_srtp`` extension, key derivation in section 4.2):
  https://www.rfc-editor.org/rfc/rfc5764
- RFC 7714 section 14.2 (the AEAD_AES_128_GCM DTLS-SRTP profile):
  https://www.rfc-editor.org/rfc/rfc7714#section-14.2
- RFC 8842 (``a=setup`` roles for DTLS in SDP): https://www.rfc-editor.org/rfc/rfc8842
- RFC 8261 (SCTP over DTLS, the data channel transport): https://www.rfc-editor.org/rfc/rfc8261
- RFC 8827 section 6.5 (WebRTC: DTLS 1.2 or later, verify the signalled fingerprint)
- RFC 7983 (first-byte demux: DTLS is 20-63): https://www.rfc-editor.org/rfc/rfc7983

Why this shape:

* **OpenSSL does the protocol.** pyOpenSSL drives OpenSSL over two memory BIOs: datagrams we
  receive are written into one, OpenSSL's output is read from the other. We never parse
  handshake messages; we only split OpenSSL's output at record boundaries so that each datagram
  holds whole records and stays under the MTU (the memory BIO is a byte stream and forgets
  datagram boundaries). OpenSSL already sizes handshake fragments to the MTU we give it.
* **Sans-I/O.** `DtlsEndpoint` takes datagrams and ``now`` and hands back datagrams and
  events, like the rest of ``engine``; the owner moves bytes to and from the ICE transport and
  calls `DtlsEndpoint.handle_timer` at `DtlsEndpoint.next_timer`.
  OpenSSL runs its retransmission timer on its own clock, so ``now`` must be a real monotonic
  clock (``time.monotonic()``) for retransmission to work; our own handshake deadline uses ``now``.
* **Trust by fingerprint, not PKI.** Both sides use self-signed certificates. We request the
  peer's certificate, accept any chain in OpenSSL's verify callback *except* one whose leaf does
  not hash to a fingerprint from the peer's SDP (the handshake then fails with an alert), and
  check again once the handshake is done.
* **SRTP keys from the handshake.** ``use_srtp`` negotiates the profile (as the DTLS server
  OpenSSL applies *our* preference: AEAD_AES_128_GCM, 2-3x cheaper per packet than
  AES_CM_128_HMAC_SHA1_80, which Chrome and GStreamer pick when they are the server) and
  ``EXTRACTOR-dtls_srtp`` exports the master keys and salts.
* **Roles.** We normally answer ``a=setup:passive`` and are the DTLS server: the browser (the
  offerer, ``actpass``) starts the handshake as soon as ICE connects. The client role exists for
  server-made offers answered ``passive``, and for tests.
* **Cheap per record once connected.** A data channel ping costs two records each way, so the
  connected path calls OpenSSL's ``SSL_read``/``SSL_write``/``BIO_read``/``BIO_write`` through
  pyOpenSSL's cffi binding directly, into one reusable buffer per thread: pyOpenSSL's wrappers
  allocate a buffer per call and signal an empty BIO with an exception, which cost more than
  the cryptography. Errors still go through pyOpenSSL's own error mapping. Should a pyOpenSSL
  release drop those internals, the endpoint falls back to the public API (same behaviour).
* **Garbage never raises.** Datagrams whose record framing is wrong are counted and dropped
  before OpenSSL sees them (RFC 6347 section 4.1.2.7: invalid records are silently discarded).
  Well-framed records that OpenSSL rejects during the handshake fail the endpoint (`Failed`);
  after the handshake OpenSSL itself discards records that do not authenticate.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from OpenSSL import SSL, crypto

from .certificate import (
    FINGERPRINT_ALGORITHMS,
    Fingerprint,
    FingerprintError,
    PrivateKey,
    fingerprint,
    parse_fingerprint,
)

__all__ = [
    "ApplicationData",
    "Closed",
    "DtlsConfig",
    "DtlsCounters",
    "DtlsEndpoint",
    "DtlsError",
    "DtlsEvent",
    "DtlsFingerprintError",
    "DtlsProtocolError",
    "DtlsState",
    "DtlsTimeoutError",
    "Failed",
    "HandshakeComplete",
    "SetupRole",
    "SrtpKeys",
    "SrtpProfile",
    "answer_setup",
    "is_dtls_server",
]

logger = logging.getLogger(__name__)

_DTLS1_2_VERSION = 0xFEFD  # pyOpenSSL has no constant for it
_RECORD_HEADER = 13  # type(1) version(2) epoch(2) sequence_number(6) length(2)
_MAX_RECORD_BODY = 16384 + 2048  # RFC 6347 4.1: ciphertext length limit
# change_cipher_spec, alert, handshake, application_data
_RECORD_TYPES = frozenset((20, 21, 22, 23))
_DTLS_MINOR_VERSIONS = frozenset((0xFF, 0xFD))  # DTLS 1.0 (ClientHello record layer), 1.2

# ECDHE with ECDSA (browsers) or RSA (GStreamer 1.22's certificate) keys; AEADs first.
_CIPHER_LIST = b":".join(
    (
        b"ECDHE-ECDSA-AES128-GCM-SHA256",
        b"ECDHE-RSA-AES128-GCM-SHA256",
        b"ECDHE-ECDSA-AES256-GCM-SHA384",
        b"ECDHE-RSA-AES256-GCM-SHA384",
        b"ECDHE-ECDSA-CHACHA20-POLY1305",
        b"ECDHE-RSA-CHACHA20-POLY1305",
        b"ECDHE-ECDSA-AES128-SHA",
        b"ECDHE-RSA-AES128-SHA",
        b"ECDHE-ECDSA-AES256-SHA",
        b"ECDHE-RSA-AES256-SHA",
    )
)
_SRTP_EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"

# The direct OpenSSL calls of the connected path (see the module docstring). pyOpenSSL keeps
# its cffi binding and the SSL/BIO pointers of a Connection in private attributes; if a release
# renames them we use the public API instead.
try:
    from OpenSSL._util import ffi as _ffi
    from OpenSSL._util import lib as _lib

    _RAW_OK = all(
        hasattr(_lib, name)
        for name in ("SSL_read", "SSL_write", "BIO_read", "BIO_write", "SSL_get_error")
    )
    _WANT_READ = int(_lib.SSL_ERROR_WANT_READ) if _RAW_OK else -1
except ImportError:  # pragma: no cover - depends on the installed pyOpenSSL
    _ffi = _lib = None
    _RAW_OK = False
    _WANT_READ = -1
_RAW_BUFFER_SIZE = 65536  # above the largest record (16 KiB plaintext) and any flight
_raw_buffers = threading.local()  # one buffer per thread: cffi calls release the GIL


def _raw_buffer() -> Any:
    buf = getattr(_raw_buffers, "buf", None)
    if buf is None:
        buf = _raw_buffers.buf = _ffi.new("char[]", _RAW_BUFFER_SIZE)
    return buf


class DtlsError(Exception):
    """Why a DTLS endpoint failed, or a misuse of the endpoint."""


class DtlsFingerprintError(DtlsError):
    """The peer's certificate does not match the fingerprints from its SDP."""


class DtlsTimeoutError(DtlsError):
    """The handshake did not complete within `DtlsConfig.handshake_timeout`."""


class DtlsProtocolError(DtlsError):
    """OpenSSL rejected the handshake or the connection (alert, no shared cipher, ...)."""


class SrtpProfile(enum.StrEnum):
    """The DTLS-SRTP protection profiles we negotiate (names as in RFC 5764/7714)."""

    AEAD_AES_128_GCM = "AEAD_AES_128_GCM"
    AES_CM_128_HMAC_SHA1_80 = "AES_CM_128_HMAC_SHA1_80"

    @property
    def key_length(self) -> int:
        """Master key length in bytes."""
        return 16

    @property
    def salt_length(self) -> int:
        """Master salt length in bytes (RFC 7714 uses 12, RFC 3711 uses 14)."""
        return 12 if self is SrtpProfile.AEAD_AES_128_GCM else 14

    @property
    def openssl_name(self) -> bytes:
        """The name OpenSSL uses in ``set_tlsext_use_srtp``."""
        return _OPENSSL_SRTP_NAMES[self]


_OPENSSL_SRTP_NAMES = {
    SrtpProfile.AEAD_AES_128_GCM: b"SRTP_AEAD_AES_128_GCM",
    SrtpProfile.AES_CM_128_HMAC_SHA1_80: b"SRTP_AES128_CM_SHA1_80",
}
_SRTP_BY_OPENSSL_NAME = {v: k for k, v in _OPENSSL_SRTP_NAMES.items()}


@dataclass(frozen=True, repr=False)
class SrtpKeys:
    """SRTP master keys from the handshake, from our point of view.

    Each value is ``master_key || master_salt`` (libsrtp's layout): 28 bytes for
    AEAD_AES_128_GCM, 30 bytes for AES_CM_128_HMAC_SHA1_80.
    """

    profile_name: SrtpProfile
    """The negotiated protection profile."""
    local_key_salt: bytes
    """What we protect outgoing SRTP/SRTCP with."""
    remote_key_salt: bytes
    """What we unprotect incoming SRTP/SRTCP with."""

    def __repr__(self) -> str:  # never log key material
        return f"SrtpKeys({self.profile_name.value}, <keys hidden>)"


class SetupRole(enum.StrEnum):
    """``a=setup`` values (RFC 8842 section 5; ``holdconn`` is not used by WebRTC)."""

    ACTIVE = "active"
    PASSIVE = "passive"
    ACTPASS = "actpass"


def answer_setup(offered: SetupRole) -> SetupRole:
    """Our ``a=setup`` in an answer to an offer carrying ``offered``.

    To ``actpass`` (what browsers offer) we answer ``passive`` and become the DTLS server:
    the browser, which is ICE-controlling, starts the handshake when ICE connects, and as the
    server OpenSSL applies our SRTP profile preference. Otherwise we take the other role.
    """
    return SetupRole.ACTIVE if offered is SetupRole.PASSIVE else SetupRole.PASSIVE


def is_dtls_server(local: SetupRole) -> bool:
    """Whether we are the DTLS server given our *negotiated* ``a=setup`` (RFC 8842 5.2)."""
    if local is SetupRole.ACTPASS:
        raise DtlsError("the DTLS role is not decided while our a=setup is actpass")
    return local is SetupRole.PASSIVE


@dataclass(frozen=True)
class DtlsConfig:
    """Knobs of a `DtlsEndpoint`; the defaults suit browsers."""

    mtu: int = 1200
    """Largest datagram (UDP payload) OpenSSL may produce for the handshake. 1200 is safe on
    every path WebRTC runs over (TURN, IPv6, VPNs)."""
    handshake_timeout: float = 30.0
    """Seconds from `DtlsEndpoint.start` (or the server's first datagram) until an incomplete
    handshake fails. OpenSSL retransmits after 1, 2, 4, 8, 16 s: 30 s allows five tries."""
    srtp_profiles: tuple[SrtpProfile, ...] = (
        SrtpProfile.AEAD_AES_128_GCM,
        SrtpProfile.AES_CM_128_HMAC_SHA1_80,
    )
    """SRTP profiles offered (client) or accepted (server), most preferred first."""

    def __post_init__(self) -> None:
        if not 256 <= self.mtu <= 65507:
            raise ValueError(f"mtu must be between 256 and 65507, got {self.mtu}")
        if not self.handshake_timeout > 0:
            raise ValueError(f"handshake_timeout must be positive, got {self.handshake_timeout}")
        if not self.srtp_profiles:
            raise ValueError("srtp_profiles must not be empty")
        if any(not isinstance(p, SrtpProfile) for p in self.srtp_profiles):
            raise ValueError("srtp_profiles must hold SrtpProfile values")
        if len(set(self.srtp_profiles)) != len(self.srtp_profiles):
            raise ValueError("srtp_profiles must not repeat a profile")


class DtlsState(enum.Enum):
    """Lifecycle of a `DtlsEndpoint`."""

    DTLS_NEW = "new"
    DTLS_CONNECTING = "connecting"
    DTLS_CONNECTED = "connected"
    DTLS_CLOSED = "closed"
    DTLS_FAILED = "failed"


@dataclass(frozen=True)
class HandshakeComplete:
    """The handshake completed and the peer's certificate matched its fingerprint."""

    srtp_keys: SrtpKeys


@dataclass(frozen=True)
class ApplicationData:
    """One decrypted DTLS application-data record (an SCTP packet, RFC 8261)."""

    data: bytes


@dataclass(frozen=True)
class Closed:
    """The peer closed the connection cleanly (close_notify)."""

    reason: str


@dataclass(frozen=True)
class Failed:
    """The endpoint failed; it sends and accepts nothing more."""

    error: DtlsError


DtlsEvent = HandshakeComplete | ApplicationData | Closed | Failed


@dataclass
class DtlsCounters:
    """Running totals of one endpoint (read by metrics)."""

    datagrams_received: int = 0
    bytes_received: int = 0
    datagrams_sent: int = 0
    bytes_sent: int = 0
    malformed_dropped: int = 0
    """Datagrams whose DTLS record framing is wrong; OpenSSL never saw them."""
    late_dropped: int = 0
    """Datagrams received after the endpoint closed or failed."""
    retransmissions: int = 0
    """Timer expiries on which OpenSSL retransmitted its last flight."""
    application_data_received: int = 0
    application_data_sent: int = 0


class _PeerCheck:
    """Pins the peer's leaf certificate inside OpenSSL's verify callback.

    Kept apart from `DtlsEndpoint` so that the callback OpenSSL holds does not reference the
    endpoint (no reference cycle through the SSL object).
    """

    def __init__(self, expected: list[Fingerprint]) -> None:
        self.expected = expected
        self.mismatch: str | None = None

    def matches(self, certificate: x509.Certificate) -> bool:
        return any(f.matches(certificate) for f in self.expected)

    def describe_mismatch(self, certificate: x509.Certificate) -> str:
        algorithm = self.expected[0].algorithm
        wanted = " or ".join(str(f) for f in self.expected)
        return (
            "remote certificate fingerprint does not match the fingerprint from the SDP:"
            f" expected {wanted}, got {algorithm} {fingerprint(certificate, algorithm)}"
        )

    def verify(
        self, conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int
    ) -> bool:
        # OpenSSL reports "self-signed certificate" here (ok == 0): expected in WebRTC, the
        # fingerprint is the trust anchor. Only the leaf (depth 0) is pinned.
        if depth != 0:
            return True
        try:
            leaf = cert.to_cryptography()
            if self.matches(leaf):
                return True
            self.mismatch = self.describe_mismatch(leaf)
        except Exception as exc:  # noqa: BLE001
            # A broken certificate must fail the handshake; an exception here would surface
            # from do_handshake() as an unrelated error.
            self.mismatch = f"remote certificate cannot be checked: {exc}"
        return False


def _select_fingerprints(remote: Sequence[tuple[str, str]]) -> list[Fingerprint]:
    """RFC 8122 section 5: keep the fingerprints of the strongest hash function offered.

    The leaf must then match one of them. Entries with other hash functions are ignored.
    """
    usable: list[Fingerprint] = []
    for algorithm, value in remote:
        try:
            usable.append(parse_fingerprint(f"{algorithm} {value}"))
        except FingerprintError:
            continue
    if not usable:
        raise DtlsError(
            "no usable remote fingerprint (need one of "
            f"{', '.join(FINGERPRINT_ALGORITHMS)}), got {list(remote)[:4]!r}"
        )
    strength = list(FINGERPRINT_ALGORITHMS)
    best = max(strength.index(f.algorithm) for f in usable)
    return [f for f in usable if strength.index(f.algorithm) == best]


def _describe(exc: SSL.Error) -> str:
    """A readable reason from pyOpenSSL's error (a list of (lib, func, reason) tuples)."""
    if exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        reasons = [
            str(item[2]) if isinstance(item, tuple) and len(item) == 3 else str(item)
            for item in exc.args[0]
        ]
        return "; ".join(reasons)
    return str(exc) or type(exc).__name__


_FRAMING_BAD = -1
_FRAMING_OK = 0  # well framed, not only application data; > 0: that many application data records


def _framing(datagram: bytes) -> int:
    """Whether ``datagram`` is a sequence of complete DTLS records (RFC 6347 4.1): `_FRAMING_BAD`
    if not, else the number of records if they are all application data (type 23; the
    connected fast path), else `_FRAMING_OK`."""
    n = len(datagram)
    if n == 0:
        return _FRAMING_BAD
    offset = 0
    records = 0
    only_data = True
    while offset < n:
        if n - offset < _RECORD_HEADER:
            return _FRAMING_BAD
        content_type = datagram[offset]
        if content_type not in _RECORD_TYPES or datagram[offset + 1] != 0xFE:
            return _FRAMING_BAD
        if datagram[offset + 2] not in _DTLS_MINOR_VERSIONS:
            return _FRAMING_BAD
        length = (datagram[offset + 11] << 8) | datagram[offset + 12]
        if length > _MAX_RECORD_BODY:
            return _FRAMING_BAD
        if content_type != 23:
            only_data = False
        records += 1
        offset += _RECORD_HEADER + length
    if offset != n:
        return _FRAMING_BAD
    return records if only_data else _FRAMING_OK


def _pack_records(data: bytes, mtu: int) -> list[bytes]:
    """Split OpenSSL's output into records and pack whole records into datagrams <= ``mtu``.

    A record longer than ``mtu`` (only possible for application data the caller made too
    large) travels alone. If the output does not parse as records (never seen), it is sent as
    it is rather than cut at an arbitrary byte.
    """
    if (
        len(data) <= mtu
        and len(data) >= _RECORD_HEADER
        and _RECORD_HEADER + ((data[11] << 8) | data[12]) == len(data)
    ):
        return [data]  # one record that fits: the usual case once connected
    records: list[bytes] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < _RECORD_HEADER:
            return [data]
        end = offset + _RECORD_HEADER + ((data[offset + 11] << 8) | data[offset + 12])
        if end > len(data):
            return [data]
        records.append(data[offset:end])
        offset = end
    datagrams: list[bytes] = []
    current = b""
    for record in records:
        if current and len(current) + len(record) > mtu:
            datagrams.append(current)
            current = b""
        current += record
    if current:
        datagrams.append(current)
    return datagrams


def _make_context(
    certificate: x509.Certificate,
    private_key: PrivateKey,
    config: DtlsConfig,
) -> SSL.Context:
    # An SSL_CTX costs ~0.4 ms: one per endpoint keeps per-endpoint SRTP profiles simple.
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.set_min_proto_version(_DTLS1_2_VERSION)
    ctx.set_max_proto_version(_DTLS1_2_VERSION)
    # No tickets, no session cache (nothing to resume: every session has a new handshake),
    # no renegotiation, and never let OpenSSL replace our MTU with a BIO query.
    ctx.set_options(
        SSL.OP_NO_TICKET | SSL.OP_NO_RENEGOTIATION | SSL.OP_NO_QUERY_MTU | SSL.OP_NO_COMPRESSION
    )
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    ctx.use_certificate(certificate)
    ctx.use_privatekey(private_key)
    ctx.check_privatekey()
    ctx.set_cipher_list(_CIPHER_LIST)
    ctx.set_tlsext_use_srtp(b":".join(p.openssl_name for p in config.srtp_profiles))
    return ctx


class DtlsEndpoint:
    """One DTLS 1.2 association over one ICE transport (sans-I/O).

    Drive it with `start` (needed for the client, optional for the server), `receive` for
    every DTLS datagram, `handle_timer` at `next_timer`; send `datagrams_to_send` after each
    call and handle `events`.
    """

    def __init__(
        self,
        certificate: x509.Certificate,
        private_key: PrivateKey,
        *,
        is_server: bool,
        remote_fingerprints: Sequence[tuple[str, str]],
        config: DtlsConfig | None = None,
    ) -> None:
        """``remote_fingerprints``: ``(algorithm, value)`` pairs from the peer's
        ``a=fingerprint`` lines. Raises `DtlsError` when none is usable and `OpenSSL.SSL.Error`
        when the key does not match the certificate."""
        self._config = config if config is not None else DtlsConfig()
        self._is_server = is_server
        self._peer_check = _PeerCheck(_select_fingerprints(remote_fingerprints))
        self._ssl = SSL.Connection(_make_context(certificate, private_key, self._config))
        self._ssl.set_verify(
            SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._peer_check.verify
        )
        self._ssl.set_ciphertext_mtu(self._config.mtu)
        if is_server:
            self._ssl.set_accept_state()
        else:
            self._ssl.set_connect_state()
        self._state = DtlsState.DTLS_NEW
        self._deadline: float | None = None
        self._retransmit_at: float | None = None
        self._outgoing: list[bytes] = []
        self._events: list[DtlsEvent] = []
        self._srtp_keys: SrtpKeys | None = None
        self._error: DtlsError | None = None
        self._remote_certificate: x509.Certificate | None = None
        self.counters = DtlsCounters()
        # (SSL*, read BIO, write BIO) for the direct calls, or None for the public API.
        self._raw: tuple[Any, Any, Any] | None = None
        if _RAW_OK:
            raw = tuple(getattr(self._ssl, name, None) for name in ("_ssl", "_into_ssl", "_from_ssl"))
            if all(p is not None for p in raw):
                self._raw = (raw[0], raw[1], raw[2])

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> DtlsState:
        return self._state

    @property
    def is_server(self) -> bool:
        return self._is_server

    @property
    def srtp_keys(self) -> SrtpKeys | None:
        """The SRTP keys once the handshake completed."""
        return self._srtp_keys

    @property
    def error(self) -> DtlsError | None:
        """Why the endpoint failed, if it did."""
        return self._error

    @property
    def remote_certificate(self) -> x509.Certificate | None:
        """The peer's verified certificate once the handshake completed."""
        return self._remote_certificate

    @property
    def cipher_name(self) -> str | None:
        """The negotiated cipher suite (OpenSSL name), once negotiated."""
        return self._ssl.get_cipher_name()

    @property
    def application_data_mtu(self) -> int:
        """Largest application-data payload whose record still fits in `DtlsConfig.mtu`
        (valid once connected; SCTP must size its packets to this)."""
        return int(self._ssl.get_cleartext_mtu())

    # -- driving -------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin the handshake: the client sends its ClientHello; the server starts its
        handshake deadline (it would otherwise start at the first datagram)."""
        if self._state is not DtlsState.DTLS_NEW:
            return
        self._state = DtlsState.DTLS_CONNECTING
        self._deadline = now + self._config.handshake_timeout
        if not self._is_server:
            self._guarded(now, self._advance_handshake)

    def receive(self, datagram: bytes, now: float) -> None:
        """Feed one DTLS datagram (first byte 20-63). Never raises."""
        counters = self.counters
        counters.datagrams_received += 1
        counters.bytes_received += len(datagram)
        state = self._state
        if state is DtlsState.DTLS_CLOSED or state is DtlsState.DTLS_FAILED:
            counters.late_dropped += 1
            return
        framing = _framing(datagram)
        if framing < 0:
            counters.malformed_dropped += 1
            return
        if framing > 0 and state is DtlsState.DTLS_CONNECTED and self._raw is not None:
            # Records of an established connection only: decrypt them without the handshake
            # machinery. A running retransmission timer may stop on them, so then look again.
            try:
                self._receive_raw(datagram, framing)
            except Exception as exc:  # same contract as _guarded
                logger.exception("DTLS(%s) unexpected error", self._role_name)
                self._fail(DtlsProtocolError(f"DTLS internal error: {exc!r}"))
            self._flush()
            if self._retransmit_at is not None or self._state is not DtlsState.DTLS_CONNECTED:
                self._update_timer(now)
            return
        if state is DtlsState.DTLS_NEW:
            self.start(now)

        def step() -> None:
            self._ssl.bio_write(datagram)
            if self._state is DtlsState.DTLS_CONNECTING:
                self._advance_handshake()
            if self._state is DtlsState.DTLS_CONNECTED:
                self._read_application_data()

        self._guarded(now, step)

    def next_timer(self) -> float | None:
        """When `handle_timer` must next be called (the ``now`` clock), or None."""
        if self._state is DtlsState.DTLS_CONNECTING:
            assert self._deadline is not None
            if self._retransmit_at is None:
                return self._deadline
            return min(self._deadline, self._retransmit_at)
        if self._state is DtlsState.DTLS_CONNECTED:
            return self._retransmit_at
        return None

    def handle_timer(self, now: float) -> None:
        """Retransmit the last flight if OpenSSL's timer expired; fail the handshake once its
        deadline passed. Never raises."""
        if self._state is DtlsState.DTLS_CONNECTING:
            assert self._deadline is not None
            if now >= self._deadline:
                self._fail(
                    DtlsTimeoutError(
                        "DTLS handshake did not complete within"
                        f" {self._config.handshake_timeout:g} s"
                    )
                )
                return
        elif self._state is not DtlsState.DTLS_CONNECTED:
            return

        def step() -> None:
            if self._ssl.DTLSv1_handle_timeout():
                self.counters.retransmissions += 1

        self._guarded(now, step)

    def datagrams_to_send(self) -> list[bytes]:
        """Datagrams produced since the last call, in order, each at most `DtlsConfig.mtu`
        bytes (except oversized application data)."""
        out, self._outgoing = self._outgoing, []
        return out

    def events(self) -> list[DtlsEvent]:
        """Events produced since the last call, in order."""
        out, self._events = self._events, []
        return out

    def send_application_data(self, data: bytes) -> None:
        """Encrypt ``data`` as one record in one datagram. Raises `DtlsError` when not
        connected or when OpenSSL refuses the data (e.g. larger than 16 KiB)."""
        if self._state is not DtlsState.DTLS_CONNECTED:
            raise DtlsError(
                f"cannot send application data: DTLS is {self._state.value}, not connected"
            )
        if not data:
            raise DtlsError("cannot send empty application data")
        try:
            raw = self._raw
            if raw is not None:
                result = _lib.SSL_write(raw[0], data, len(data))
                if result <= 0:
                    self._ssl._raise_ssl_error(raw[0], result)
            else:
                self._ssl.send(data)
        except SSL.Error as exc:
            self._flush()
            raise DtlsError(f"cannot send application data: {_describe(exc)}") from exc
        self.counters.application_data_sent += 1
        self._flush()

    def close(self) -> None:
        """Send close_notify (when connected) and stop. Emits no event."""
        if self._state is DtlsState.DTLS_CONNECTED:
            try:
                self._ssl.shutdown()
            except SSL.Error:
                pass
            self._flush()
        if self._state not in (DtlsState.DTLS_FAILED, DtlsState.DTLS_CLOSED):
            self._state = DtlsState.DTLS_CLOSED
        self._retransmit_at = None

    def release(self) -> None:
        """Stop for good and drop OpenSSL's verify callback, which pyOpenSSL keeps in a
        reference cycle (helper -> cffi callback -> wrapper -> helper): without this, each
        ended endpoint waits for a full garbage collection to be freed. Idempotent; the
        endpoint accepts nothing afterwards."""
        if self._state not in (DtlsState.DTLS_FAILED, DtlsState.DTLS_CLOSED):
            self._state = DtlsState.DTLS_CLOSED
        self._retransmit_at = None
        helper = getattr(self._ssl, "_verify_helper", None)
        try:
            self._ssl.set_verify(SSL.VERIFY_NONE)  # OpenSSL forgets the callback pointer
        except (SSL.Error, TypeError, ValueError):  # pragma: no cover - defensive
            return
        if helper is not None and hasattr(helper, "callback"):
            helper.callback = None  # now unregistered: break the cycle

    # -- internals -----------------------------------------------------------------------

    def _guarded(self, now: float, step: Callable[[], None]) -> None:
        """Run ``step``, flush OpenSSL's output and re-arm the timer; turn any unexpected
        exception into `Failed` so that nothing escapes into the event loop."""
        try:
            step()
        except Exception as exc:  # a bug or an OpenSSL surprise must not kill the caller
            logger.exception("DTLS(%s) unexpected error", self._role_name)
            self._fail(DtlsProtocolError(f"DTLS internal error: {exc!r}"))
        self._flush()
        self._update_timer(now)

    @property
    def _role_name(self) -> str:
        return "server" if self._is_server else "client"

    def _advance_handshake(self) -> None:
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.Error as exc:
            if self._peer_check.mismatch is not None:
                self._fail(DtlsFingerprintError(self._peer_check.mismatch))
            else:
                self._fail(DtlsProtocolError(f"DTLS handshake failed: {_describe(exc)}"))
            return
        self._complete_handshake()

    def _complete_handshake(self) -> None:
        peer = self._ssl.get_peer_certificate(as_cryptography=True)
        if peer is None:
            self._fail_and_notify(DtlsFingerprintError("remote sent no certificate"))
            return
        if not self._peer_check.matches(peer):  # the verify callback already checked; re-check
            self._fail_and_notify(DtlsFingerprintError(self._peer_check.describe_mismatch(peer)))
            return
        keys = self._export_srtp_keys()
        if keys is None:
            offered = ", ".join(p.value for p in self._config.srtp_profiles)
            self._fail_and_notify(
                DtlsProtocolError(f"no SRTP profile negotiated (we support {offered})")
            )
            return
        self._remote_certificate = peer
        self._srtp_keys = keys
        self._state = DtlsState.DTLS_CONNECTED
        logger.debug(
            "DTLS(%s) handshake complete: %s, %s",
            self._role_name,
            self._ssl.get_cipher_name(),
            keys.profile_name.value,
        )
        self._events.append(HandshakeComplete(keys))

    def _export_srtp_keys(self) -> SrtpKeys | None:
        profile = _SRTP_BY_OPENSSL_NAME.get(self._ssl.get_selected_srtp_profile())
        if profile is None or profile not in self._config.srtp_profiles:
            return None
        k, s = profile.key_length, profile.salt_length
        material = self._ssl.export_keying_material(_SRTP_EXPORTER_LABEL, 2 * (k + s))
        # RFC 5764 4.2: client_write_key | server_write_key | client_salt | server_salt
        client = material[0:k] + material[2 * k : 2 * k + s]
        server = material[k : 2 * k] + material[2 * k + s : 2 * k + 2 * s]
        local, remote = (server, client) if self._is_server else (client, server)
        return SrtpKeys(profile_name=profile, local_key_salt=local, remote_key_salt=remote)

    def _receive_raw(self, datagram: bytes, records: int) -> None:
        """`receive` for a connected endpoint: the datagram straight into the read BIO, then
        at most ``records`` reads (a record that does not authenticate is skipped by OpenSSL,
        and the read after the last one would only say "want read")."""
        raw = self._raw
        assert raw is not None
        if _lib.BIO_write(raw[1], datagram, len(datagram)) != len(datagram):
            self._ssl.bio_write(datagram)  # never seen with a memory BIO; let pyOpenSSL say why
        self._read_application_data(records)

    def _recv_record(self) -> bytes | None:
        """One decrypted record, or None when OpenSSL has no more; raises pyOpenSSL's errors
        (ZeroReturnError for close_notify, SSL.Error for the rest)."""
        raw = self._raw
        if raw is None:
            try:
                return self._ssl.recv(65536)
            except SSL.WantReadError:
                return None
        buf = _raw_buffer()
        n = _lib.SSL_read(raw[0], buf, _RAW_BUFFER_SIZE)
        if n > 0:
            data: bytes = _ffi.buffer(buf, n)[:]
            return data
        if _lib.SSL_get_error(raw[0], n) == _WANT_READ:
            return None
        try:
            self._ssl._raise_ssl_error(raw[0], n)
        except SSL.WantReadError:
            pass
        return None  # no error OpenSSL would name (pyOpenSSL raises for every real one)

    def _read_application_data(self, limit: int = -1) -> None:
        """Decrypt records until OpenSSL has none left, or ``limit`` records were returned."""
        events = self._events
        while limit and self._state is DtlsState.DTLS_CONNECTED:
            limit -= 1
            try:
                data = self._recv_record()
            except SSL.WantReadError:  # pragma: no cover - _recv_record returns None instead
                return
            except SSL.ZeroReturnError:
                try:
                    self._ssl.shutdown()  # answer with our own close_notify
                except SSL.Error:
                    pass
                self._state = DtlsState.DTLS_CLOSED
                self._retransmit_at = None
                self._events.append(Closed("close_notify received"))
                return
            except SSL.Error as exc:
                self._fail(DtlsProtocolError(f"DTLS connection failed: {_describe(exc)}"))
                return
            if data is None:
                return
            if data:
                self.counters.application_data_received += 1
                events.append(ApplicationData(data))

    def _fail(self, error: DtlsError) -> None:
        if self._state in (DtlsState.DTLS_FAILED, DtlsState.DTLS_CLOSED):
            return
        logger.debug("DTLS(%s) failed: %s", self._role_name, error)
        self._state = DtlsState.DTLS_FAILED
        self._error = error
        self._retransmit_at = None
        self._events.append(Failed(error))

    def _fail_and_notify(self, error: DtlsError) -> None:
        """Fail after a completed handshake: tell the peer with close_notify (pyOpenSSL
        cannot send an arbitrary alert)."""
        try:
            self._ssl.shutdown()
        except SSL.Error:
            pass
        self._fail(error)

    def _flush(self) -> None:
        chunks: list[bytes] = []
        raw = self._raw
        if raw is not None:
            buf = _raw_buffer()
            while True:
                n = _lib.BIO_read(raw[2], buf, _RAW_BUFFER_SIZE)
                if n <= 0:  # empty: a memory BIO asks to retry
                    break
                chunks.append(_ffi.buffer(buf, n)[:])
                if n < _RAW_BUFFER_SIZE:
                    break
        else:
            while True:
                try:
                    chunk = self._ssl.bio_read(65536)
                except SSL.Error:  # WantReadError: the BIO is empty
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        if not chunks:
            return
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        counters = self.counters
        for datagram in _pack_records(data, self._config.mtu):
            self._outgoing.append(datagram)
            counters.datagrams_sent += 1
            counters.bytes_sent += len(datagram)

    def _update_timer(self, now: float) -> None:
        if self._state not in (DtlsState.DTLS_CONNECTING, DtlsState.DTLS_CONNECTED):
            self._retransmit_at = None
            return
        try:
            remaining = self._ssl.DTLSv1_get_timeout()
        except SSL.Error:
            remaining = None
        self._retransmit_at = None if remaining is None else now + remaining
