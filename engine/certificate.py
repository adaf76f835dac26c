"""The DTLS certificate of this process and certificate fingerprints.

- RFC 8122 (SDP ``a=fingerprint``): https://www.rfc-editor.org/rfc/rfc8122
- RFC 8827 section 6.5 (WebRTC security architecture, self-signed certificates):
  https://www.rfc-editor.org/rfc/rfc8827#section-6.5
- RFC 5763 section 5 (fingerprints authenticate DTLS-SRTP): https://www.rfc-editor.org/rfc/rfc5763

Why: WebRTC does not use a PKI. Each side makes a throw-away self-signed certificate and
signals a hash of it (``a=fingerprint:sha-256 AB:CD:...``) in its SDP; the DTLS handshake then
proves possession of the key whose certificate hashes to that value. So the certificate itself
carries no meaning (random CN, short validity) and one certificate can serve every session of a
process: ECDSA P-256 because every browser supports it, it makes small handshake flights, and
signing is cheap. Generation costs some milliseconds, which is why it is shared;
`generate_certificate` still makes a fresh one on demand (tests, rotation).

The fingerprint helpers here work on the *value* of an ``a=fingerprint`` attribute; the SDP
layer extracts it. Algorithm names are compared case-insensitively and the hex case-insensitively
(RFC 8122 asks for upper case, but lower case is seen in the wild).
"""

from __future__ import annotations

import datetime
import secrets
import threading
from dataclasses import dataclass
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = [
    "FINGERPRINT_ALGORITHMS",
    "Fingerprint",
    "FingerprintError",
    "LocalCertificate",
    "PrivateKey",
    "UnsupportedFingerprintAlgorithm",
    "fingerprint",
    "fingerprint_matches",
    "generate_certificate",
    "parse_fingerprint",
    "process_certificate",
]

# Hash functions accepted in a remote a=fingerprint, keyed by their RFC 8122 token.
# sha-1 is weak but RFC 8122 still lists it and it is harmless for pinning a self-signed
# certificate whose private key is fresh; md5/md2/sha-224 are refused.
FINGERPRINT_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha-1": hashes.SHA1,
    "sha-256": hashes.SHA256,
    "sha-384": hashes.SHA384,
    "sha-512": hashes.SHA512,
}

# Key types a DTLS certificate may use: ours is ECDSA; RSA is accepted for peers and tests
# (GStreamer 1.22 uses an RSA certificate).
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

DEFAULT_VALIDITY = datetime.timedelta(days=30)
# A certificate is replaced this long before it expires, so that no session starts with a
# certificate that a peer may consider expired during the call.
_RENEW_MARGIN = datetime.timedelta(days=2)
# Peers' clocks may be behind ours: backdate notBefore a little.
_BACKDATE = datetime.timedelta(days=1)


class FingerprintError(ValueError):
    """An ``a=fingerprint`` value that cannot be parsed."""


class UnsupportedFingerprintAlgorithm(FingerprintError):
    """A well-formed ``a=fingerprint`` whose hash function we do not accept (e.g. md5)."""


class Fingerprint(NamedTuple):
    """A parsed ``a=fingerprint`` value; a plain ``(algorithm, value)`` tuple."""

    algorithm: str
    """Lower-case RFC 8122 hash token, e.g. ``"sha-256"``."""
    value: str
    """Upper-case colon-separated hex, e.g. ``"AB:CD:..."``."""

    def matches(self, certificate: x509.Certificate) -> bool:
        """Whether ``certificate`` hashes to this fingerprint."""
        return fingerprint_matches(certificate, self.algorithm, self.value)

    def __str__(self) -> str:
        return f"{self.algorithm} {self.value}"


@dataclass(frozen=True, repr=False)
class LocalCertificate:
    """Our own certificate and its private key."""

    certificate: x509.Certificate
    """The self-signed X.509 certificate sent in the DTLS handshake."""
    private_key: PrivateKey
    """The private key matching ``certificate``'s public key."""

    def fingerprint(self, algorithm: str = "sha-256") -> str:
        """The certificate's fingerprint, ``"AB:CD:..."``."""
        return fingerprint(self.certificate, algorithm)

    @property
    def expires(self) -> datetime.datetime:
        """The certificate's notAfter (UTC)."""
        return self.certificate.not_valid_after_utc

    def __repr__(self) -> str:
        return f"LocalCertificate(sha-256 {self.fingerprint()}, expires {self.expires:%Y-%m-%d})"


def generate_certificate(
    *,
    validity: datetime.timedelta = DEFAULT_VALIDITY,
    now: datetime.datetime | None = None,
) -> LocalCertificate:
    """Make a fresh self-signed ECDSA P-256 certificate with a random CN.

    ``now`` (UTC, default: the current time) exists for tests of expiry.
    """
    if validity <= datetime.timedelta(0):
        raise ValueError("validity must be positive")
    start = now if now is not None else datetime.datetime.now(tz=datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, secrets.token_hex(16))])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - _BACKDATE)
        .not_valid_after(start + validity)
        .sign(key, hashes.SHA256())
    )
    return LocalCertificate(certificate=certificate, private_key=key)


_shared_lock = threading.Lock()
_shared: LocalCertificate | None = None


def process_certificate() -> LocalCertificate:
    """The certificate shared by all sessions of this process.

    Made on first use and replaced when it comes within two days of expiry (sessions
    that already started keep the old one; their fingerprint is in their SDP).
    """
    global _shared
    with _shared_lock:
        now = datetime.datetime.now(tz=datetime.UTC)
        if _shared is None or _shared.expires - now < _RENEW_MARGIN:
            _shared = generate_certificate(now=now)
        return _shared


def _hash_for(algorithm: str) -> hashes.HashAlgorithm:
    try:
        return FINGERPRINT_ALGORITHMS[algorithm.lower()]()
    except KeyError:
        raise UnsupportedFingerprintAlgorithm(
            f"unsupported fingerprint algorithm {algorithm!r}"
            f" (accepted: {', '.join(FINGERPRINT_ALGORITHMS)})"
        ) from None


def fingerprint(certificate: x509.Certificate, algorithm: str = "sha-256") -> str:
    """``certificate``'s DER hash as upper-case colon-separated hex (RFC 8122)."""
    return certificate.fingerprint(_hash_for(algorithm)).hex(":").upper()


def fingerprint_matches(certificate: x509.Certificate, algorithm: str, value: str) -> bool:
    """Whether ``certificate`` hashes to ``value`` under ``algorithm`` (both case-insensitive).

    Raises `UnsupportedFingerprintAlgorithm` for an algorithm we do not accept.
    """
    return fingerprint(certificate, algorithm) == value.strip().upper()


def parse_fingerprint(text: str) -> Fingerprint:
    """Parse an ``a=fingerprint`` value such as ``"sha-256 AB:CD:..."``.

    Raises `FingerprintError` (a `ValueError`) for anything malformed, and its subclass
    `UnsupportedFingerprintAlgorithm` for a hash function outside `FINGERPRINT_ALGORITHMS`
    so that the SDP layer can skip such a line and use another one.
    """
    if not isinstance(text, str):
        raise FingerprintError("fingerprint must be a string")
    parts = text.split()
    if len(parts) != 2:
        raise FingerprintError(
            f"fingerprint must be '<hash-function> <hex:hex:...>', got {text[:120]!r}"
        )
    algorithm, value = parts[0].lower(), parts[1].upper()
    digest = _hash_for(algorithm)
    octets = value.split(":")
    if len(octets) != digest.digest_size:
        raise FingerprintError(
            f"{algorithm} fingerprint must have {digest.digest_size} octets, got {len(octets)}"
        )
    for octet in octets:
        if len(octet) != 2 or any(c not in "0123456789ABCDEF" for c in octet):
            raise FingerprintError(f"fingerprint octet {octet[:8]!r} is not two hex digits")
    return Fingerprint(algorithm, value)
