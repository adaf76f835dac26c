"""ICE-lite server: checks, errors, nomination, consent, restart, TCP framing, trickle, aioice."""

from __future__ import annotations

import asyncio
import itertools
import struct
from collections.abc import Callable
from typing import Any, cast

import aioice
import aioice.ice
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from switchboard.engine import stun
from switchboard.engine.ice import (
    DropReason,
    EndOfCandidates,
    IceAction,
    IceConfig,
    IceError,
    IceLiteServer,
    IceSession,
    IceState,
    Nominated,
    RemoteCandidate,
    SendStun,
    TcpFramer,
    TcpFramingError,
    format_trickle,
    frame_tcp,
    generate_credentials,
    parse_candidate,
    parse_trickle,
)
from switchboard.engine.stun import Attr, Method, StunClass, StunMessage

SERVER_UFRAG = "srvA"
SERVER_PWD = "serverpassword0123456789"
CLIENT_UFRAG = "cli1"
ADDR = ("192.0.2.10", 50000)
ADDR2 = ("198.51.100.7", 40000)


def check(
    ufrag: str = SERVER_UFRAG,
    pwd: str | None = SERVER_PWD,
    *,
    remote: str = CLIENT_UFRAG,
    use_candidate: bool = False,
    role: str | None = "controlling",
    extra: list[tuple[int, bytes]] | None = None,
    username: bytes | None = None,
    fingerprint: bool = True,
) -> bytes:
    """A connectivity check as a browser (controlling, full agent) sends it."""
    message = StunMessage(Method.BINDING, StunClass.REQUEST)
    message.add(Attr.USERNAME, username if username is not None else f"{ufrag}:{remote}".encode())
    message.add(Attr.PRIORITY, struct.pack("!I", 1853824767))
    if role == "controlling":
        message.add(Attr.ICE_CONTROLLING, struct.pack("!Q", 0x1122334455667788))
    elif role == "controlled":
        message.add(Attr.ICE_CONTROLLED, struct.pack("!Q", 0x1122334455667788))
    elif role == "both":
        message.add(Attr.ICE_CONTROLLING, struct.pack("!Q", 1))
        message.add(Attr.ICE_CONTROLLED, struct.pack("!Q", 2))
    if use_candidate:
        message.add(Attr.USE_CANDIDATE)
    message.add(Attr.GOOG_NETWORK_INFO, b"\x00\x01\x03\xe7")
    for attr_type, value in extra or ():
        message.add(attr_type, value)
    key = pwd.encode() if pwd is not None else None
    return message.encode(integrity_key=key, fingerprint=fingerprint)


def make_server(now: float = 0.0, **config: float) -> tuple[IceLiteServer, IceSession]:
    server = IceLiteServer(IceConfig(**config))
    session = IceSession(SERVER_UFRAG, SERVER_PWD, tag="s1")
    session.set_remote(CLIENT_UFRAG, "clientpassword0123456789")
    server.add_session(session, now)
    return server, session


def only_send(actions: list[IceAction]) -> stun.StunMessage:
    assert len(actions) == 1 and isinstance(actions[0], SendStun)
    return stun.parse_message(actions[0].data)


# ------------------------------------------------------------------------------- valid checks


def test_valid_check_gets_authenticated_success_response() -> None:
    server, session = make_server()
    request = check()
    actions = server.handle_stun(request, ADDR, 3, now=1.0)
    assert len(actions) == 1
    send = actions[0]
    assert isinstance(send, SendStun) and send.addr == ADDR and send.sock_index == 3
    response = stun.parse_message(send.data)
    assert response.msg_class is StunClass.SUCCESS
    assert response.transaction_id == stun.parse_message(request).transaction_id
    assert response.xor_mapped_address == ADDR
    assert response.check_integrity(SERVER_PWD.encode())
    assert response.fingerprint is not None
    assert [t for t, _ in response.attributes] == [
        Attr.XOR_MAPPED_ADDRESS,
        Attr.MESSAGE_INTEGRITY,
        Attr.FINGERPRINT,
    ]
    assert session.state is IceState.CHECKING
    assert session.selected is None
    assert session.last_addr == (ADDR, 3)
    assert session.last_check == 1.0
    assert server.checks_ok == 1
    assert sum(server.drops.values()) == 0


def test_ipv6_four_tuple_address() -> None:
    server, _ = make_server()
    addr6 = ("2001:db8::5", 6000, 0, 0)
    response = only_send(server.handle_stun(check(), addr6, 0, 0.0))
    assert response.xor_mapped_address == ("2001:db8::5", 6000)


def test_use_candidate_nominates_once_then_rebinds_on_address_change() -> None:
    server, session = make_server()
    actions = server.handle_stun(check(use_candidate=True), ADDR, 0, 1.0)
    assert len(actions) == 2 and isinstance(actions[1], Nominated)
    assert actions[1] == Nominated(session, ADDR, 0, None)
    assert session.state is IceState.CONNECTED and session.selected == (ADDR, 0)

    # Consent checks and repeated nominations on the same path: no new binding.
    assert len(server.handle_stun(check(), ADDR, 0, 5.0)) == 1
    assert len(server.handle_stun(check(use_candidate=True), ADDR, 0, 6.0)) == 1

    # Valid checks from a new address without USE-CANDIDATE are remembered, not bound.
    assert len(server.handle_stun(check(), ADDR2, 0, 7.0)) == 1
    assert session.selected == (ADDR, 0) and session.last_addr == (ADDR2, 0)

    # The controlling peer nominates the new path (network change): re-bind.
    actions = server.handle_stun(check(use_candidate=True), ADDR2, 0, 8.0)
    assert actions[1] == Nominated(session, ADDR2, 0, (ADDR, 0))
    # Same address on another local socket (e.g. a TCP connection) is a different binding.
    actions = server.handle_stun(check(use_candidate=True), ADDR2, 7, 9.0)
    assert actions[1] == Nominated(session, ADDR2, 7, (ADDR2, 0))
    assert session.nominations == 3


# ------------------------------------------------------------------------------- error paths


def test_unknown_ufrag_is_silent() -> None:
    server, session = make_server()
    assert server.handle_stun(check(ufrag="nope"), ADDR, 0, 0.0) == []
    assert server.drops[DropReason.UNKNOWN_UFRAG] == 1
    assert session.last_check is None


@pytest.mark.parametrize(
    ("request_bytes", "code", "reason"),
    [
        (StunMessage(Method.BINDING, StunClass.REQUEST).encode(), 400, DropReason.NO_USERNAME),
        (check(username=b"\xff\xfe"), 400, DropReason.BAD_USERNAME),
        (check(username=b"srvA"), 400, DropReason.BAD_USERNAME),
        (check(pwd=None), 400, DropReason.NO_INTEGRITY),
        (check(pwd="wrongpassword0123456789x"), 401, DropReason.BAD_INTEGRITY),
    ],
)
def test_unauthenticated_errors_have_no_integrity(
    request_bytes: bytes, code: int, reason: DropReason
) -> None:
    server, session = make_server()
    response = only_send(server.handle_stun(request_bytes, ADDR, 0, 0.0))
    assert response.msg_class is StunClass.ERROR
    assert response.error_code is not None and response.error_code[0] == code
    assert response.message_integrity is None
    assert response.transaction_id == stun.parse_message(request_bytes).transaction_id
    assert server.drops[reason] == 1
    assert session.last_check is None and session.state is IceState.NEW


def test_role_conflict_answers_487_with_integrity() -> None:
    server, session = make_server()
    response = only_send(server.handle_stun(check(role="controlled"), ADDR, 0, 0.0))
    assert response.error_code == (487, "Role Conflict")
    assert response.check_integrity(SERVER_PWD.encode())
    assert server.drops[DropReason.ROLE_CONFLICT] == 1
    assert session.last_check is None  # not a valid check: no consent refresh
    # Even with USE-CANDIDATE nothing is nominated.
    actions = server.handle_stun(check(role="controlled", use_candidate=True), ADDR, 0, 0.0)
    assert len(actions) == 1 and session.selected is None


def test_both_roles_is_bad_request_and_no_role_is_accepted() -> None:
    server, _ = make_server()
    response = only_send(server.handle_stun(check(role="both"), ADDR, 0, 0.0))
    assert response.error_code == (400, "Bad Request")
    assert response.check_integrity(SERVER_PWD.encode())
    assert server.drops[DropReason.BAD_ATTRIBUTE] == 1
    response = only_send(server.handle_stun(check(role=None), ADDR, 0, 0.0))
    assert response.msg_class is StunClass.SUCCESS


def test_unknown_comprehension_required_attribute_gets_420() -> None:
    server, _ = make_server()
    data = check(extra=[(0x0003, b"\0\0\0\0"), (0xC058, b"optional")])
    response = only_send(server.handle_stun(data, ADDR, 0, 0.0))
    assert response.error_code == (420, "Unknown Attribute")
    assert response.unknown_attributes == [0x0003]
    assert response.check_integrity(SERVER_PWD.encode())
    assert server.drops[DropReason.UNKNOWN_ATTRIBUTE] == 1


def test_malformed_priority_gets_400() -> None:
    server, _ = make_server()
    message = StunMessage(Method.BINDING, StunClass.REQUEST)
    message.add(Attr.USERNAME, f"{SERVER_UFRAG}:{CLIENT_UFRAG}".encode())
    message.add(Attr.PRIORITY, b"\x01")
    data = message.encode(integrity_key=SERVER_PWD.encode(), fingerprint=True)
    response = only_send(server.handle_stun(data, ADDR, 0, 0.0))
    assert response.error_code == (400, "Bad Request")
    assert server.drops[DropReason.BAD_ATTRIBUTE] == 1


def test_non_requests_and_garbage_are_counted() -> None:
    server, _ = make_server()
    indication = StunMessage(Method.BINDING, StunClass.INDICATION).encode(fingerprint=True)
    response = stun.encode_binding_success(b"x" * 12, "1.2.3.4", 5, b"k")
    allocate = StunMessage(0x003, StunClass.REQUEST).encode(fingerprint=True)
    bad_fp = bytearray(check())
    bad_fp[-1] ^= 0xFF
    for data in (indication, response, allocate, bytes(bad_fp), b"\x00\x01garbage", b""):
        assert server.handle_stun(data, ADDR, 0, 0.0) == []
    assert server.drops[DropReason.INDICATION] == 1
    assert server.drops[DropReason.RESPONSE] == 1
    assert server.drops[DropReason.NOT_BINDING] == 1
    assert server.drops[DropReason.BAD_FINGERPRINT] == 1
    assert server.drops[DropReason.BAD_MESSAGE] == 2


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_handle_stun_never_raises_on_garbage(data: bytes) -> None:
    server, _ = make_server()
    for action in server.handle_stun(data, ADDR, 0, 0.0):
        assert isinstance(action, SendStun)


# ---------------------------------------------------------------------------------- consent


def test_consent_checks_keep_session_and_silence_expires_it() -> None:
    server, session = make_server(now=100.0, consent_timeout=30.0, connect_timeout=10.0)
    server.handle_stun(check(use_candidate=True), ADDR, 0, 105.0)
    t = 105.0
    while t < 300.0:  # a browser's consent checks, 5 s apart
        t += 5.0
        server.handle_stun(check(), ADDR, 0, t)
        assert server.expired(t) == []
    last = t
    assert session.deadline(consent_timeout=30.0) == last + 30.0
    assert server.next_deadline() == last + 30.0
    assert server.expired(last + 29.9) == []
    assert server.expired(last + 30.0) == [session]
    assert session.state is IceState.CLOSED
    assert len(server) == 0
    # Gone: further checks are unknown, and it is reported only once.
    assert server.handle_stun(check(), ADDR, 0, last + 31) == []
    assert server.expired(last + 100) == []


def test_connect_timeout_for_sessions_never_nominated() -> None:
    server, session = make_server(now=0.0, connect_timeout=10.0)
    other = server.create_session(now=5.0, tag="s2")
    server.handle_stun(check(), ADDR, 0, 9.0)  # valid but never nominated
    assert server.expired(9.99) == []
    assert server.expired(10.0) == [session]
    assert other.is_expired(14.9, connect_timeout=10.0) is False
    assert server.expired(15.0) == [other]


def test_remove_session_is_idempotent() -> None:
    server, session = make_server()
    server.remove_session(session)
    server.remove_session(session)
    assert session.state is IceState.CLOSED
    assert server.get_session(SERVER_UFRAG) is None
    with pytest.raises(IceError, match="is closed"):
        server.add_session(session, 0.0)


# ------------------------------------------------------------------------------- ICE restart

NEW_UFRAG = "srvB"
NEW_PWD = "newserverpassword0123456"


def test_ice_restart_keeps_session_and_accepts_old_credentials_until_new_ones_used() -> None:
    server, session = make_server()
    server.handle_stun(check(use_candidate=True), ADDR, 0, 1.0)
    session.restart(NEW_UFRAG, NEW_PWD)
    session.set_remote("cli2", "clientpassword9876543210")
    assert session.restarting and session.remote_restarting
    assert session.local_ufrags == (NEW_UFRAG, SERVER_UFRAG)

    # The old path keeps answering consent with the old credentials.
    response = only_send(server.handle_stun(check(), ADDR, 0, 2.0))
    assert response.check_integrity(SERVER_PWD.encode())
    assert session.last_check == 2.0

    # First check with the new credentials (new path): the restart completes.
    actions = server.handle_stun(
        check(NEW_UFRAG, NEW_PWD, remote="cli2", use_candidate=True), ADDR2, 0, 3.0
    )
    assert isinstance(actions[0], SendStun)
    assert stun.parse_message(actions[0].data).check_integrity(NEW_PWD.encode())
    assert actions[1] == Nominated(session, ADDR2, 0, (ADDR, 0))
    assert not session.restarting and not session.remote_restarting
    assert server.get_session(NEW_UFRAG) is session

    # The old credentials are now dead.
    assert server.handle_stun(check(), ADDR, 0, 4.0) == []
    assert server.drops[DropReason.UNKNOWN_UFRAG] == 1
    # The new ufrag with the old password is refused.
    response = only_send(server.handle_stun(check(NEW_UFRAG, SERVER_PWD), ADDR2, 0, 5.0))
    assert response.error_code == (401, "Unauthorized")
    assert session.state is IceState.CONNECTED


def test_restart_of_a_restart_keeps_the_credentials_in_use() -> None:
    server, session = make_server()
    server.handle_stun(check(use_candidate=True), ADDR, 0, 1.0)
    session.restart(NEW_UFRAG, NEW_PWD)
    session.restart("srvC", "thirdserverpassword01234")
    assert session.local_ufrags == ("srvC", SERVER_UFRAG)
    assert server.get_session(NEW_UFRAG) is None
    assert len(server.handle_stun(check(), ADDR, 0, 2.0)) == 1


def test_restart_validation() -> None:
    server, session = make_server()
    with pytest.raises(IceError, match="ICE restart must change both the ufrag and the password"):
        session.restart(SERVER_UFRAG, NEW_PWD)
    with pytest.raises(IceError, match="ICE restart must change both the ufrag and the password"):
        session.restart(NEW_UFRAG, SERVER_PWD)
    other = IceSession("srvZ", "otherserverpassword01234")
    server.add_session(other, 0.0)
    with pytest.raises(IceError, match="ICE ufrag 'srvZ' is already in use"):
        session.restart("srvZ", NEW_PWD)
    assert session.local_ufrags == (SERVER_UFRAG,)
    with pytest.raises(IceError, match="invalid ICE ufrag 'a:b'"):
        session.restart("a:b", NEW_PWD)
    with pytest.raises(IceError, match="invalid ICE password"):
        session.restart(NEW_UFRAG, "short")


def test_session_registration_errors_and_credentials() -> None:
    server, session = make_server()
    with pytest.raises(IceError, match="ICE ufrag 'srvA' is already in use"):
        server.add_session(IceSession(SERVER_UFRAG, NEW_PWD), 0.0)
    with pytest.raises(IceError, match="is already registered"):
        server.add_session(session, 0.0)
    with pytest.raises(IceError, match="invalid remote ICE ufrag 'a:b'"):
        session.set_remote("a:b", "x")
    ufrag, pwd = generate_credentials()
    assert len(ufrag) == 8 and len(pwd) == 24
    created = server.create_session(0.0, tag=42)
    assert server.get_session(created.local_ufrag) is created and created.tag == 42


# ------------------------------------------------------------------------------- TCP framing


def test_tcp_framer_reassembles_split_frames() -> None:
    stun_frame = check()
    dtls = b"\x16\xfe\xfd" + bytes(100)
    rtp = b"\x80\x6f" + bytes(200)
    stream = frame_tcp(stun_frame) + frame_tcp(dtls) + frame_tcp(rtp)
    framer = TcpFramer()
    out: list[bytes] = []
    for i in range(len(stream)):  # worst case: one byte at a time
        out += framer.feed(stream[i : i + 1])
        assert framer.buffered <= framer.max_frame + 2
    assert out == [stun_frame, dtls, rtp]
    assert TcpFramer().feed(stream) == [stun_frame, dtls, rtp]
    assert TcpFramer.frame(rtp) == struct.pack("!H", len(rtp)) + rtp


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GET / HTTP/1.1\r\n", "ICE-TCP frame length 18245 outside [1, 1600]"),
        (b"\x00\x00", "ICE-TCP frame length 0 outside [1, 1600]"),
        (b"\x06\x41" + bytes(10), "ICE-TCP frame length 1601 outside [1, 1600]"),
        (b"\x00\x05\x16abcd", "first ICE-TCP frame is not STUN"),
    ],
)
def test_tcp_framer_rejects_garbage(data: bytes, message: str) -> None:
    framer = TcpFramer()
    with pytest.raises(TcpFramingError) as excinfo:
        framer.feed(data)
    assert str(excinfo.value) == message
    with pytest.raises(TcpFramingError, match="framer already failed"):
        framer.feed(frame_tcp(check()))


def test_tcp_framer_rejects_non_rtc7983_frame_after_stun() -> None:
    framer = TcpFramer()
    assert framer.feed(frame_tcp(check())) != []
    with pytest.raises(TcpFramingError, match="ICE-TCP frame starts with unexpected byte 71"):
        framer.feed(frame_tcp(b"GET /"))
    with pytest.raises(TcpFramingError, match="does not fit a 16-bit length"):
        frame_tcp(bytes(70000))


@settings(max_examples=100, deadline=None)
@given(
    frames=st.lists(
        st.builds(
            lambda first, body: bytes([first]) + body,
            st.sampled_from([0, 1, 20, 23, 128, 144, 191]),
            st.binary(max_size=300),
        ),
        max_size=8,
    ),
    cuts=st.lists(st.integers(0, 4000), max_size=10),
)
def test_tcp_framer_any_chunking(frames: list[bytes], cuts: list[int]) -> None:
    frames = [check()] + frames
    stream = b"".join(frame_tcp(f) for f in frames)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    framer = TcpFramer()
    out: list[bytes] = []
    for start, end in itertools.pairwise(bounds):
        out += framer.feed(stream[start:end])
    assert out == frames and framer.buffered == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_tcp_framer_garbage_raises_only_framing_error(data: bytes) -> None:
    try:
        for frame in TcpFramer(stun_first=False).feed(data):
            assert 1 <= len(frame) <= 1600
    except TcpFramingError:
        pass


# ------------------------------------------------------------------------------------- trickle

CHROME_HOST = {
    "candidate": "candidate:3414134418 1 udp 2122260223 192.168.1.20 54400 typ host generation 0 "
    "ufrag 0Xv8 network-id 1 network-cost 10",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
    "usernameFragment": "0Xv8",
}


def test_parse_chrome_host_candidate_json() -> None:
    candidate = parse_trickle(CHROME_HOST)
    assert isinstance(candidate, RemoteCandidate)
    assert (candidate.foundation, candidate.component, candidate.transport) == (
        "3414134418",
        1,
        "udp",
    )
    assert (candidate.priority, candidate.address, candidate.port, candidate.type) == (
        2122260223,
        "192.168.1.20",
        54400,
        "host",
    )
    assert candidate.generation == 0 and candidate.ufrag == "0Xv8"
    assert candidate.extensions == (("network-id", "1"), ("network-cost", "10"))
    assert (candidate.sdp_mid, candidate.sdp_mline_index, candidate.username_fragment) == (
        "0",
        0,
        "0Xv8",
    )
    assert candidate.to_sdp() == CHROME_HOST["candidate"]
    assert format_trickle(candidate.to_sdp(), username_fragment="0Xv8") == CHROME_HOST


@pytest.mark.parametrize(
    "line",
    [
        (
            "candidate:842163049 1 udp 1677729535 203.0.113.9 46154 typ srflx raddr 0.0.0.0 rport 0 "
            "generation 0 ufrag sXP5 network-cost 999"
        ),
        "candidate:1 1 UDP 2122252543 3a1f6b0e-1b2c-4d5e-8f90-123456789abc.local 54321 typ host",
        "candidate:2 1 tcp 1518280447 192.168.1.20 9 typ host tcptype active generation 0",
        "a=candidate:0 1 UDP 2122187007 10.0.0.4 61234 typ host",
        "candidate:5 1 udp 41885439 198.51.100.1 3478 typ relay raddr 203.0.113.9 rport 5000",
    ],
)
def test_parse_browser_candidate_lines(line: str) -> None:
    candidate = parse_candidate(line)
    assert candidate.to_sdp() == line.removeprefix("a=").replace("UDP", "udp")
    assert parse_candidate(candidate.to_sdp()) == candidate


def test_parse_trickle_end_of_candidates_and_json_text() -> None:
    assert parse_trickle('{"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}') == (
        EndOfCandidates("0", 0, None)
    )
    session = IceSession(SERVER_UFRAG, SERVER_PWD)
    session.add_remote_candidate(parse_trickle(CHROME_HOST))
    session.add_remote_candidate(parse_trickle({"candidate": ""}))
    assert len(session.remote_candidates) == 1 and session.remote_end_of_candidates


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("not json", "trickle candidate is not JSON"),
        ("[1, 2]", "trickle candidate must be a JSON object"),
        ({"candidate": 5}, "trickle 'candidate' must be a string"),
        ({"candidate": "", "sdpMLineIndex": True}, "'sdpMLineIndex' must be a small integer"),
        ({"candidate": "host 1 2"}, "candidate attribute must start with 'candidate:'"),
        ({"candidate": "candidate:1 1 udp 5 1.2.3.4 70000 typ host"}, "port out of range: 70000"),
        ({"candidate": "candidate:1 1 udp x 1.2.3.4 5 typ host"}, "priority is not a number"),
        ({"candidate": "candidate:1 1 udp 5 1.2.3.4 5 type host"}, "needs 8 fields"),
        ({"candidate": "candidate:1 1 udp 5 1.2.3.4 5 typ host raddr"}, "name/value pairs"),
        ({"candidate": "candidate:1 1 tcp 5 1.2.3.4 5 typ host"}, "TCP candidate without tcptype"),
        ({"candidate": "candidate:1 0 udp 5 1.2.3.4 5 typ host"}, "component must be >= 1"),
    ],
)
def test_parse_trickle_errors(message: Any, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_trickle(message)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_parse_candidate_garbage(text: str) -> None:
    for line in (text, "candidate:" + text):
        try:
            parse_candidate(line)
        except ValueError:
            pass


# ------------------------------------------------------------------- aioice as a real browser


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class LiteUdpServer(asyncio.DatagramProtocol):
    """The smallest possible media plane: hand STUN to the ICE-lite server, send its answers."""

    def __init__(self, server: IceLiteServer, clock: Callable[[], float]) -> None:
        self.server = server
        self.clock = clock
        self.nominated: list[Nominated] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if not data or data[0] >= 4:
            return
        assert self.transport is not None
        for action in self.server.handle_stun(data, addr, 0, self.clock()):
            if isinstance(action, SendStun):
                self.transport.sendto(action.data, action.addr)
            else:
                self.nominated.append(action)


async def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def _aioice_against_lite(
    monkeypatch: pytest.MonkeyPatch, *, controlling: bool
) -> tuple[aioice.Connection, IceLiteServer, IceSession, LiteUdpServer, FakeClock, Any]:
    # Loopback only, and consent checks every ~50 ms instead of ~5 s.
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.05)
    clock = FakeClock(1000.0)
    server = IceLiteServer(IceConfig(consent_timeout=30.0, connect_timeout=30.0))
    session = server.create_session(clock(), tag="aioice")
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: LiteUdpServer(server, clock), local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]

    connection = aioice.Connection(ice_controlling=controlling, use_ipv6=False)
    connection.remote_is_lite = True
    await connection.gather_candidates()
    connection.remote_username = session.local_ufrag
    connection.remote_password = session.local_pwd
    session.set_remote(connection.local_username, connection.local_password)
    for ours in (f"candidate:1 1 udp 2130706431 127.0.0.1 {port} typ host generation 0",):
        parsed = parse_candidate(ours)
        await connection.add_remote_candidate(
            aioice.Candidate(
                foundation=parsed.foundation,
                component=parsed.component,
                transport=parsed.transport,
                priority=parsed.priority,
                host=parsed.address,
                port=parsed.port,
                type=parsed.type,
            )
        )
    await connection.add_remote_candidate(None)
    return connection, server, session, protocol, clock, transport


async def test_aioice_full_agent_connects_and_consent_keeps_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connection, server, session, protocol, clock, transport = await _aioice_against_lite(
        monkeypatch, controlling=True
    )
    try:
        await asyncio.wait_for(connection.connect(), 5.0)  # completed: aioice verified our MI
        local = connection._nominated[1].local_addr
        assert [(n.session, n.addr[:2], n.sock_index) for n in protocol.nominated] == [
            (session, local, 0)
        ]
        assert session.state is IceState.CONNECTED

        # Consent checks arrive on their own and keep the session alive as the clock runs.
        for _ in range(3):
            clock.now += 20.0
            seen = session.checks
            await _wait_for(lambda seen=seen: session.checks > seen)  # type: ignore[misc]
            assert session.last_check == clock.now
            assert server.expired(clock.now) == []
    finally:
        await connection.close()  # stops consent checks
    stopped = session.last_check
    assert stopped is not None
    clock.now = stopped + 29.0
    assert server.expired(clock.now) == []
    clock.now = stopped + 30.0
    assert server.expired(clock.now) == [session]
    assert len(protocol.nominated) == 1
    transport.close()


async def test_aioice_controlled_agent_is_told_to_control_by_487(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connection, server, session, protocol, _clock, transport = await _aioice_against_lite(
        monkeypatch, controlling=False
    )
    try:
        await asyncio.wait_for(connection.connect(), 5.0)
        assert connection.ice_controlling  # switched after our 487
        assert server.drops[DropReason.ROLE_CONFLICT] >= 1
        assert len(protocol.nominated) == 1 and session.state is IceState.CONNECTED
    finally:
        await connection.close()
        transport.close()
