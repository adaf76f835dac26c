"""TURN interop: a client forced to relay-only through a real coturn reaches
the RTC server and exchanges audio with a directly connected client.

Why: behind symmetric NATs and strict firewalls, browsers reach the SFU only
through a TURN relay (RFC 8656); ``iceTransportPolicy: "relay"`` forces that
path. Our ICE-lite server then sees coturn's relay address as the client's
address: checks, DTLS, SRTP and SCTP all arrive from, and must go back to,
that address. aiortc's ``RTCIceTransportPolicy.RELAY`` gathers no host or
server-reflexive candidates (RFC 9429 section 3.5.3), so the only way in is
coturn. Each test checks the server's view of the path, not just that audio
flowed. coturn runs from Debian's package (``scripts/bootstrap test``); a
missing binary fails the tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import aiortc_client
import pytest
from aioice import stun
from aioice.turn import create_turn_endpoint
from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection
from aiortc_client import AiortcClient, Hub, ToneTrack, wait_for
from coturn import Coturn, CoturnConfig, CoturnError, rest_credentials, turnserver_binary
from switchboard.signaling.rtc import MessageType, RtcServer

pytestmark = pytest.mark.interop

SECRET = "north-wind-secret"


@pytest.fixture
def coturn_rest() -> Iterator[Coturn]:
    with Coturn(CoturnConfig(static_auth_secret=SECRET)) as server:
        yield server


@pytest.fixture
def coturn_static() -> Iterator[Coturn]:
    with Coturn(CoturnConfig(users=(("alice", "wonderland"),))) as server:
        yield server


class RelayOnlyClient(AiortcClient):
    """An :class:`AiortcClient` whose peer connection uses one TURN server, relay only.

    ``AiortcClient`` builds its ``RTCPeerConnection`` (and, through the
    ``calls-dc`` channel, its ICE gatherer) in ``__init__`` with no ICE
    servers, so the configuration is swapped in while the parent builds it.
    """

    def __init__(self, server: RtcServer, session_id: str, ice_server: RTCIceServer) -> None:
        config = RTCConfiguration(
            iceServers=[ice_server], iceTransportPolicy=RTCIceTransportPolicy.RELAY
        )

        def relay_pc(_ignored: RTCConfiguration) -> RTCPeerConnection:
            return RTCPeerConnection(config)

        with mock.patch.object(aiortc_client, "RTCPeerConnection", relay_pc):
            super().__init__(server, session_id)


def local_candidates(client: AiortcClient) -> list[Any]:
    """The client's gathered ICE candidates (one bundled transport: the SCTP one's)."""
    sctp = client.pc.sctp
    assert sctp is not None, "the client has no calls-dc transport"
    return list(sctp.transport.transport.iceGatherer.getLocalCandidates())


def server_path(server: RtcServer, session_id: str) -> tuple[str, int]:
    """The client address the server nominated; checks transport and ICE agree on it."""
    transport = server.sessions[session_id].transport
    assert transport.addr is not None, f"{session_id}: nothing nominated"
    assert transport.ice.selected is not None, f"{session_id}: ICE session has no selected pair"
    assert tuple(transport.ice.selected[0]) == tuple(transport.addr), (
        transport.ice.selected,
        transport.addr,
    )
    assert transport.tcp is None, f"{session_id}: expected UDP to the server, got ICE-TCP"
    return (str(transport.addr[0]), int(transport.addr[1]))


def assert_relayed(server: RtcServer, client: AiortcClient, turn: Coturn) -> tuple[str, int]:
    """The client gathered only coturn relay candidates and the server talks to one of them."""
    cands = local_candidates(client)
    assert cands, "the relay-only client gathered no candidate (TURN allocation failed?)"
    assert {c.type for c in cands} == {"relay"}, [(c.type, c.ip, c.port) for c in cands]
    relays = {(c.ip, c.port) for c in cands}
    addr = server_path(server, client.cfg.session_id)
    assert addr in relays, (
        f"server nominated {addr}, not one of the client's relay addresses {relays}"
    )
    assert turn.relay_min <= addr[1] <= turn.relay_max, (addr, turn.relay_min, turn.relay_max)
    return addr


def hears(client: AiortcClient, freq: float) -> bool:
    return any(abs(f - freq) <= 10 for f in client.frequencies().values())


async def talk(server: RtcServer, hub: Hub, relayed: AiortcClient, direct: AiortcClient) -> None:
    """Both join with distinct tones, unmute, and each must decode the other's tone.

    The caller closes both clients while coturn still runs: aioice's TURN
    client deallocates on close and, with coturn gone, retransmits its Refresh
    for ~40 s.
    """
    hub.clients.update({relayed.cfg.session_id: relayed, direct.cfg.session_id: direct})
    await relayed.join(ToneTrack(440.0))
    await direct.join(ToneTrack(660.0))
    relayed.send(MessageType.UNMUTE)
    direct.send(MessageType.UNMUTE)
    await wait_for(
        lambda: relayed.connected.is_set() and direct.connected.is_set(), what="both connected"
    )
    await wait_for(
        lambda: relayed.dc_open.is_set() and direct.dc_open.is_set(), what="calls-dc open"
    )
    await wait_for(
        lambda: hears(relayed, 660.0) and hears(direct, 440.0),
        timeout=20,
        what=lambda: (
            f"tones both ways: relayed hears {relayed.frequencies()}, "
            f"direct hears {direct.frequencies()}"
        ),
    )


def coturn_saw_peer(turn: Coturn, server: RtcServer) -> bool:
    """coturn's verbose log names our media socket as a permitted peer / channel peer."""
    host, port = server.plane.socket_info[0].address
    return f"{host}:{port}" in turn.log_text()


# ------------------------------------------------------------------ the helper and coturn itself


def test_rest_credentials_format() -> None:
    username, password = rest_credentials("secret", "u1", 100.0, now=1_700_000_000.0)
    assert username == "1700000100:u1"
    # base64(HMAC-SHA1("secret", "1700000100:u1")), computed independently with openssl
    assert password == "4n2N8GKgzJNOp3mx5L8Fi8+6gms="
    with pytest.raises(ValueError, match="must not contain ':'"):
        rest_credentials("secret", "a:b", 100.0)


def test_coturn_is_installed() -> None:
    # the project's bootstrap installs coturn: its absence is a failure, not a skip
    try:
        turnserver_binary()
    except CoturnError as e:
        pytest.fail(str(e))


def test_coturn_config_is_validated() -> None:
    with pytest.raises(ValueError, match="static_auth_secret or at least one static user"):
        CoturnConfig()
    with pytest.raises(ValueError, match="not both"):
        CoturnConfig(static_auth_secret="s", users=(("u", "p"),))


class _Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.put_nowait((data, addr))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_coturn_relays_to_a_loopback_peer(coturn_rest: Coturn, transport: str) -> None:
    """REST credentials allocate a relay on 127.0.0.1 and datagrams cross it both ways.

    This pins coturn's loopback setup (``allow-loopback-peers``, relay-ip) on
    its own, so a failure here is not mistaken for a bug in our server.
    """
    loop = asyncio.get_running_loop()
    peer_transport, peer = await loop.create_datagram_endpoint(
        _Collect, local_addr=("127.0.0.1", 0)
    )
    peer_addr = peer_transport.get_extra_info("sockname")
    username, password = coturn_rest.credentials("probe")
    turn, client = await asyncio.wait_for(
        create_turn_endpoint(
            _Collect, ("127.0.0.1", coturn_rest.port), username, password, transport=transport
        ),
        5.0,
    )
    try:
        relayed = turn.get_extra_info("sockname")
        assert relayed[0] == "127.0.0.1"
        assert coturn_rest.relay_min <= relayed[1] <= coturn_rest.relay_max
        turn.sendto(b"hello peer", peer_addr)
        data, src = await asyncio.wait_for(peer.got.get(), 5.0)
        assert (data, src) == (b"hello peer", tuple(relayed))
        peer_transport.sendto(b"hello client", src)
        data, src = await asyncio.wait_for(client.got.get(), 5.0)
        assert (data, tuple(src)) == (b"hello client", tuple(peer_addr))
    finally:
        turn.close()
        peer_transport.close()


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param(lambda: rest_credentials("wrong-secret", "probe", 600.0), id="wrong-secret"),
        pytest.param(lambda: rest_credentials(SECRET, "probe", -60.0), id="expired"),
    ],
)
async def test_coturn_rejects_bad_rest_credentials(
    coturn_rest: Coturn, credentials: Callable[[], tuple[str, str]]
) -> None:
    username, password = credentials()
    with pytest.raises(stun.TransactionFailed) as info:
        await asyncio.wait_for(
            create_turn_endpoint(_Collect, ("127.0.0.1", coturn_rest.port), username, password), 5.0
        )
    assert info.value.response.attributes["ERROR-CODE"][0] == 401


# ------------------------------------------------------------------ through the RTC server


async def test_relay_only_client_over_udp_turn(
    rtc: tuple[RtcServer, Hub], coturn_rest: Coturn
) -> None:
    server, hub = rtc
    username, password = coturn_rest.credentials("relayed-user")
    relayed = RelayOnlyClient(
        server,
        "relayed",
        RTCIceServer(urls=coturn_rest.url("udp"), username=username, credential=password),
    )
    direct = AiortcClient(server, "direct")
    try:
        await talk(server, hub, relayed, direct)
        relay_addr = assert_relayed(server, relayed, coturn_rest)
        # the direct client stays on its own host address: the check above discriminates
        direct_addr = server_path(server, "direct")
        assert direct_addr in {(c.ip, c.port) for c in local_candidates(direct) if c.type == "host"}
        assert direct_addr != relay_addr
        assert not coturn_rest.relay_min <= direct_addr[1] <= coturn_rest.relay_max
        assert coturn_saw_peer(coturn_rest, server), coturn_rest.log_text()[-2000:]
        # the data channel works across the relay too
        relayed.dc.send("ping")
        await wait_for(lambda: relayed.pongs >= 1, timeout=5, what="pong over the relayed calls-dc")
    finally:
        await relayed.close()
        await direct.close()


async def test_relay_only_client_over_tcp_turn(
    rtc: tuple[RtcServer, Hub], coturn_static: Coturn
) -> None:
    """TURN over TCP to coturn (static long-term user), UDP relay from coturn to us."""
    server, hub = rtc
    username, password = coturn_static.credentials()
    relayed = RelayOnlyClient(
        server,
        "relayed-tcp",
        RTCIceServer(urls=coturn_static.url("tcp"), username=username, credential=password),
    )
    direct = AiortcClient(server, "direct-tcp")
    try:
        await talk(server, hub, relayed, direct)
        assert_relayed(server, relayed, coturn_static)
        assert coturn_saw_peer(coturn_static, server), coturn_static.log_text()[-2000:]
    finally:
        await relayed.close()
        await direct.close()
