"""engine/dtls.py: the connected path's direct OpenSSL calls against pyOpenSSL's public API.

`DtlsEndpoint` reads and writes application data through pyOpenSSL's cffi binding directly
(the wrappers allocate a buffer per call and raise on an empty BIO). The endpoint must
behave the same with and without those calls (a pyOpenSSL release without the internals
falls back to the public API), so the behaviour tests of test_dtls.py run here on both
paths, and on mixed pairs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from OpenSSL import SSL
from switchboard.engine import dtls as dtls_mod
from switchboard.engine.certificate import LocalCertificate
from switchboard.engine.dtls import ApplicationData, DtlsState
from test_dtls import client_cert, endpoint, handshake, pump, server_cert  # noqa: F401
from test_dtls import test_application_data_round_trip as _round_trip
from test_dtls import test_close_notify as _close_notify
from test_dtls import test_send_before_handshake_and_empty_data_raise as _send_errors


@pytest.fixture(params=["direct", "public"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "public":
        monkeypatch.setattr(dtls_mod, "_RAW_OK", False)
    yield str(request.param)


def test_the_direct_path_is_used_when_available(
    path: str, server_cert: LocalCertificate, client_cert: LocalCertificate  # noqa: F811
) -> None:
    ep = endpoint(server_cert, client_cert, is_server=True)
    assert (ep._raw is not None) is (path == "direct")


def test_round_trip(path: str, server_cert: LocalCertificate, client_cert: LocalCertificate) -> None:  # noqa: F811
    _round_trip(server_cert, client_cert)


@pytest.mark.parametrize("closer", ["client", "server"])
def test_close_notify(
    path: str, server_cert: LocalCertificate, client_cert: LocalCertificate, closer: str  # noqa: F811
) -> None:
    _close_notify(server_cert, client_cert, closer)


def test_send_errors(path: str, server_cert: LocalCertificate, client_cert: LocalCertificate) -> None:  # noqa: F811
    _send_errors(server_cert, client_cert)


def test_mixed_pair_and_bundled_records(
    server_cert: LocalCertificate, client_cert: LocalCertificate  # noqa: F811
) -> None:
    """A direct server with a public-API client; two records in one datagram are both read."""
    client = endpoint(client_cert, server_cert, is_server=False)
    client._raw = None
    server = endpoint(server_cert, client_cert, is_server=True)
    assert server._raw is not None
    c, s = handshake(client, server)
    client.send_application_data(b"one")
    client.send_application_data(b"two")
    first, second = client.datagrams_to_send()
    server.receive(first + second, 200.0)
    assert server.events() == [ApplicationData(b"one"), ApplicationData(b"two")]
    server.send_application_data(b"back")
    pump(c, s)
    assert [e.data for e in c.events if isinstance(e, ApplicationData)] == [b"back"]


def test_a_fatal_alert_after_the_handshake_fails_the_endpoint(
    path: str, server_cert: LocalCertificate, client_cert: LocalCertificate  # noqa: F811
) -> None:
    """OpenSSL's error (not just 'no data') must come out of the direct read as Failed."""
    c, s = handshake(
        endpoint(client_cert, server_cert, is_server=False),
        endpoint(server_cert, client_cert, is_server=True),
    )
    s.events.clear()

    def boom(self: SSL.Connection, ssl: object, result: int) -> None:
        raise SSL.Error([("SSL routines", "", "tlsv1 alert internal error")])

    c.ep.send_application_data(b"x")
    (datagram,) = c.ep.datagrams_to_send()
    original = SSL.Connection._raise_ssl_error
    try:
        SSL.Connection._raise_ssl_error = boom  # type: ignore[method-assign]
        if path == "direct":
            real_lib = dtls_mod._lib
            dtls_mod._lib = _ErrorLib(real_lib)  # every SSL_read fails
            try:
                s.ep.receive(datagram, 200.0)
            finally:
                dtls_mod._lib = real_lib
        else:
            s.ep._ssl.recv = lambda n: boom(s.ep._ssl, None, -1)  # type: ignore[method-assign]
            s.ep.receive(datagram, 200.0)
    finally:
        SSL.Connection._raise_ssl_error = original  # type: ignore[method-assign]
    (failed,) = s.ep.events()
    assert isinstance(failed, dtls_mod.Failed)
    assert str(failed.error) == "DTLS connection failed: tlsv1 alert internal error"
    assert s.ep.state is DtlsState.DTLS_FAILED


class _ErrorLib:
    """The cffi lib with SSL_read failing and SSL_get_error saying 'SSL error'."""

    def __init__(self, real: object) -> None:
        self._real = real

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)

    def SSL_read(self, ssl: object, buf: object, n: int) -> int:  # noqa: N802
        return -1

    def SSL_get_error(self, ssl: object, n: int) -> int:  # noqa: N802
        return 1  # SSL_ERROR_SSL


@pytest.mark.parametrize("order", ["forged first", "forged last", "forged between"])
def test_records_that_do_not_authenticate_are_skipped_not_counted(
    path: str, server_cert: LocalCertificate, client_cert: LocalCertificate, order: str  # noqa: F811
) -> None:
    """The direct path reads at most as many records as the datagram holds; a forged one
    (OpenSSL drops it silently) must not make it miss a real one after it."""
    c, s = handshake(
        endpoint(client_cert, server_cert, is_server=False),
        endpoint(server_cert, client_cert, is_server=True),
    )
    s.ep.events()
    c.ep.send_application_data(b"real one")
    c.ep.send_application_data(b"real two")
    one, two = c.ep.datagrams_to_send()
    forged = bytearray(one)
    forged[-1] ^= 0x55  # the AEAD tag no longer matches
    forged[10] ^= 0x40  # and a sequence number not seen yet
    parts = {
        "forged first": [bytes(forged), one, two],
        "forged last": [one, two, bytes(forged)],
        "forged between": [one, bytes(forged), two],
    }[order]
    s.ep.receive(b"".join(parts), 300.0)
    assert s.ep.events() == [ApplicationData(b"real one"), ApplicationData(b"real two")]
    assert s.ep.state is DtlsState.DTLS_CONNECTED
