"""Server host candidates: override parsing tables, rtcd mapping rules, interfaces, STUN discovery."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from switchboard.engine import candidates as cand
from switchboard.engine import stun
from switchboard.engine.candidates import (
    Candidate,
    CandidateConfig,
    CandidateConfigError,
    HostOverride,
    PortOverride,
    build_candidates,
    candidate_priority,
    discover_public_address,
    external_mapping,
    gather_host_candidates,
    local_interface_addresses,
    parse_host_override,
    parse_port_override,
    parse_stun_url,
    resolve_host_override,
)
from switchboard.engine.ice import parse_candidate

# ------------------------------------------------------------------------------ override tables


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", HostOverride()),
        ("  ", HostOverride()),
        ("203.0.113.5", HostOverride(host="203.0.113.5")),
        (" 203.0.113.5 ", HostOverride(host="203.0.113.5")),
        ("2001:db8::5", HostOverride(host="2001:db8::5")),
        ("calls.example.com", HostOverride(host="calls.example.com")),
        ("calls.example.com.", HostOverride(host="calls.example.com.")),
        (
            "203.0.113.5/10.0.0.1, 203.0.113.6/10.0.0.2",
            HostOverride(pairs=(("203.0.113.5", "10.0.0.1"), ("203.0.113.6", "10.0.0.2"))),
        ),
        ("2001:db8::5/fd00::2", HostOverride(pairs=(("2001:db8::5", "fd00::2"),))),
    ],
)
def test_parse_host_override(value: str, expected: HostOverride) -> None:
    assert parse_host_override(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.2.3.4/x", "'1.2.3.4/x': both sides must be IP addresses"),
        ("1.2.3.4/10.0.0.1/3", "'1.2.3.4/10.0.0.1/3' is not an EXT/INT pair"),
        ("1.2.3.4,5.6.7.8", "several addresses need the EXT/INT,EXT/INT form"),
        ("1.2.3.4/::1", "'1.2.3.4/::1' mixes IPv4 and IPv6"),
        ("1.2.3.4/10.0.0.1,5.6.7.8/10.0.0.1", "duplicate mapping found for 10.0.0.1"),
        ("bad_host!", "'bad_host!' is neither an IP address nor a hostname"),
        ("-bad.example.com", "'-bad.example.com' is neither an IP address nor a hostname"),
        ("0.0.0.0", "0.0.0.0 is not a usable host address"),
    ],
)
def test_parse_host_override_errors(value: str, message: str) -> None:
    with pytest.raises(CandidateConfigError) as excinfo:
        parse_host_override(value)
    assert str(excinfo.value) == f"invalid ice_host_override value: {message}"
    assert excinfo.value.key == "ice_host_override"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, PortOverride()),
        ("", PortOverride()),
        (8443, PortOverride(port=8443)),
        ("30443", PortOverride(port=30443)),
        (
            "127.0.0.1/8444, 127.0.0.2/8445",
            PortOverride(by_local_ip=(("127.0.0.1", 8444), ("127.0.0.2", 8445))),
        ),
    ],
)
def test_parse_port_override(value: int | str | None, expected: PortOverride) -> None:
    assert parse_port_override(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (45, "45 is not in allowed range [80, 49151]"),
        ("65000", "65000 is not in allowed range [80, 49151]"),
        ("127.0.0.1,8443", "failed to parse mapping: invalid map pairing syntax"),
        (
            "127.0.0.1/8444,127.0.0.1/8445",
            "failed to parse mapping: duplicate mapping found for 127.0.0.1",
        ),
        ("127.0.0.1/8444,127.0.0.2/8444", "failed to parse mapping: duplicate port found for 8444"),
        ("127.0.0.1/abc", "failed to parse mapping: failed to parse port number 'abc'"),
        ("host/8444", "failed to parse mapping: 'host' is not an IP"),
        (True, "must be a port number or an IP/port map"),
    ],
)
def test_parse_port_override_errors(value: Any, message: str) -> None:
    with pytest.raises(CandidateConfigError) as excinfo:
        parse_port_override(value)
    assert str(excinfo.value) == f"invalid ice_host_port_override value: {message}"


def test_port_override_lookup() -> None:
    by_ip = parse_port_override("10.0.0.1/30001,10.0.0.2/30002")
    assert by_ip.port_for("10.0.0.2") == 30002 and by_ip.port_for("10.0.0.9") is None
    assert parse_port_override(30000).port_for("anything") == 30000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"ice_address_udp": "not_an_address"},
            "invalid ice_address_udp value: not_an_address is not a valid IP address",
        ),
        (
            {"ice_address_udp": "127.0.0.0.1"},
            "invalid ice_address_udp value: 127.0.0.0.1 is not a valid IP address",
        ),
        (
            {"ice_address_tcp": "10.0.0.1, nope"},
            "invalid ice_address_tcp value: nope is not a valid IP address",
        ),
        (
            {"ice_address_udp": "0.0.0.0"},
            "invalid ice_address_udp value: 0.0.0.0 is not a usable host address",
        ),
        (
            {"ice_address_udp": "2001:db8::1"},
            "invalid ice_address_udp value: 2001:db8::1 is IPv6 but enable_ipv6 is false",
        ),
        (
            {"ice_port_udp": 22},
            "invalid ice_port_udp value: 22 is not in allowed range [80, 49151]",
        ),
        (
            {"ice_port_tcp": 65000},
            "invalid ice_port_tcp value: 65000 is not in allowed range [80, 49151]",
        ),
        (
            {"ice_host_port_override": "127.0.0.1,8443"},
            "invalid ice_host_port_override value: failed to parse mapping: invalid map pairing syntax",
        ),
        (
            {"ice_host_override": "a,b"},
            "invalid ice_host_override value: several addresses need the EXT/INT,EXT/INT form",
        ),
        (
            {"stun_url": "turn:example.com"},
            "invalid stun_url value: 'turn:example.com' is not a stun: URL (stuns: is not supported)",
        ),
    ],
)
def test_config_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(CandidateConfigError) as excinfo:
        CandidateConfig(**kwargs)
    assert str(excinfo.value) == message


def test_config_parsed_fields() -> None:
    config = CandidateConfig(
        ice_address_udp="10.0.0.1, 10.0.0.2,10.0.0.1",
        ice_host_override="203.0.113.5",
        ice_host_port_override="30443",
        ice_port_tcp=0,
    )
    assert config.udp_addresses == ("10.0.0.1", "10.0.0.2")
    assert config.tcp_addresses == ()
    assert config.host_override == HostOverride(host="203.0.113.5")
    assert config.port_override == PortOverride(port=30443)


# ------------------------------------------------------------------------- rtcd mapping rules


@pytest.mark.parametrize(
    ("local_ips", "override", "public", "expected"),
    [
        # No override, no STUN: identity.
        (["127.0.0.1", "10.0.0.1"], "", {}, {"127.0.0.1": "127.0.0.1", "10.0.0.1": "10.0.0.1"}),
        # A single local address maps to the override, even loopback (rtcd).
        (["127.0.0.1"], "203.0.113.5", {}, {"127.0.0.1": "203.0.113.5"}),
        # Several: loopback stays, the others map.
        (
            ["127.0.0.1", "10.0.0.1", "10.0.0.2"],
            "203.0.113.5",
            {},
            {"127.0.0.1": "127.0.0.1", "10.0.0.1": "203.0.113.5", "10.0.0.2": "203.0.113.5"},
        ),
        # An IPv6 override leaves IPv4 addresses alone.
        (
            ["10.0.0.1", "2001:db8::9"],
            "2001:db8::5",
            {},
            {"10.0.0.1": "10.0.0.1", "2001:db8::9": "2001:db8::5"},
        ),
        # Explicit pairs: listed internals map, others keep their address.
        (
            ["127.0.0.1", "10.0.0.1", "10.0.0.2"],
            "203.0.113.5/10.0.0.1,192.0.2.1/10.9.9.9",
            {},
            {"127.0.0.1": "127.0.0.1", "10.0.0.1": "203.0.113.5", "10.0.0.2": "10.0.0.2"},
        ),
        # STUN results where found.
        (
            ["127.0.0.1", "10.0.0.1", "10.0.0.2"],
            "",
            {"10.0.0.1": "198.51.100.1"},
            {"127.0.0.1": "127.0.0.1", "10.0.0.1": "198.51.100.1", "10.0.0.2": "10.0.0.2"},
        ),
        # An override wins over STUN results.
        (
            ["10.0.0.1", "10.0.0.2"],
            "203.0.113.5",
            {"10.0.0.1": "198.51.100.1"},
            {"10.0.0.1": "203.0.113.5", "10.0.0.2": "203.0.113.5"},
        ),
    ],
)
def test_external_mapping(
    local_ips: list[str], override: str, public: dict[str, str], expected: dict[str, str]
) -> None:
    assert external_mapping(local_ips, parse_host_override(override), public) == expected


def test_external_mapping_needs_resolved_hostname() -> None:
    with pytest.raises(ValueError, match="resolve the ice_host_override hostname first"):
        external_mapping(["10.0.0.1"], HostOverride(host="example.com"))


# -------------------------------------------------------------------------------- candidates


def test_priority_formula() -> None:
    # RFC 8445 5.1.2.1: 2^24 * 126 + 2^8 * 65535 + (256 - 1)
    assert candidate_priority(126, 65535, 1) == 2130706431
    assert candidate_priority(0, 0, 256) == 0
    with pytest.raises(ValueError, match="type preference must be 0-126"):
        candidate_priority(127, 0)


def test_build_candidates_default_config() -> None:
    result = build_candidates(CandidateConfig(), ["127.0.0.1", "10.0.0.1"])
    assert [c.to_sdp().split(" ", 1)[1] for c in result] == [
        "1 udp 2130706431 127.0.0.1 8443 typ host generation 0",
        "1 udp 2130706175 10.0.0.1 8443 typ host generation 0",
        "1 tcp 2124414975 127.0.0.1 8443 typ host tcptype passive generation 0",
        "1 tcp 2124414719 10.0.0.1 8443 typ host tcptype passive generation 0",
    ]
    # Foundations: stable, distinct per (address, transport), ice-chars.
    foundations = [c.foundation for c in result]
    assert len(set(foundations)) == 4
    assert foundations == [
        c.foundation for c in build_candidates(CandidateConfig(), ["127.0.0.1", "10.0.0.1"])
    ]
    # Every UDP candidate outranks every TCP one; each line is valid candidate grammar.
    assert min(c.priority for c in result if c.transport == "udp") > max(
        c.priority for c in result if c.transport == "tcp"
    )
    for candidate in result:
        parsed = parse_candidate(candidate.to_sdp())
        assert (parsed.priority, parsed.address, parsed.port) == (
            candidate.priority,
            candidate.address,
            candidate.port,
        )
        assert parsed.tcptype == candidate.tcptype


def test_build_candidates_with_overrides() -> None:
    config = CandidateConfig(
        ice_host_override="203.0.113.5",
        ice_host_port_override=30443,
        ice_port_udp=8443,
        ice_port_tcp=8444,
    )
    result = build_candidates(config, ["127.0.0.1", "10.0.0.1", "10.0.0.2"])
    summary = [(c.transport, c.address, c.port, c.local_address, c.local_port) for c in result]
    # Loopback stays (with its real port); 10.0.0.1 and 10.0.0.2 both become 203.0.113.5:30443
    # and are advertised once per transport.
    assert summary == [
        ("udp", "127.0.0.1", 8443, "127.0.0.1", 8443),
        ("udp", "203.0.113.5", 30443, "10.0.0.1", 8443),
        ("tcp", "127.0.0.1", 8444, "127.0.0.1", 8444),
        ("tcp", "203.0.113.5", 30443, "10.0.0.1", 8444),
    ]


def test_build_candidates_port_map_and_separate_tcp_addresses() -> None:
    config = CandidateConfig(
        ice_address_udp="10.0.0.1,10.0.0.2",
        ice_address_tcp="10.0.0.2",
        ice_host_override="198.51.100.1/10.0.0.1,198.51.100.2/10.0.0.2",
        ice_host_port_override="10.0.0.1/30001,10.0.0.2/30002",
    )
    result = build_candidates(config, config.udp_addresses, config.tcp_addresses)
    assert [(c.transport, c.address, c.port) for c in result] == [
        ("udp", "198.51.100.1", 30001),
        ("udp", "198.51.100.2", 30002),
        ("tcp", "198.51.100.2", 30002),
    ]
    no_tcp = build_candidates(CandidateConfig(ice_port_tcp=0), ["10.0.0.1"])
    assert [c.transport for c in no_tcp] == ["udp"]


def test_port_override_needs_an_external_address() -> None:
    """rtcd rewrites the port only of candidates that carry an external address."""
    result = build_candidates(CandidateConfig(ice_host_port_override=30443), ["10.0.0.1"])
    assert {c.port for c in result} == {8443}
    with_stun = build_candidates(
        CandidateConfig(ice_host_port_override=30443),
        ["10.0.0.1"],
        public_addresses={"10.0.0.1": "198.51.100.1"},
    )
    assert {(c.address, c.port) for c in with_stun} == {("198.51.100.1", 30443)}


# ------------------------------------------------------------------------- hostname override


async def test_resolve_host_override() -> None:
    async def fake(host: str, family: int) -> list[str]:
        assert family == socket.AF_INET
        return ["2001:db8::1", "203.0.113.9"] if host == "calls.example.com" else []

    resolved = await resolve_host_override(parse_host_override("calls.example.com"), resolver=fake)
    assert resolved == HostOverride(host="203.0.113.9")
    unchanged = parse_host_override("1.2.3.4/10.0.0.1")
    assert await resolve_host_override(unchanged, resolver=fake) is unchanged
    real = await resolve_host_override(parse_host_override("localhost"))
    assert real.host is not None and real.host.startswith("127.")


async def test_resolve_host_override_failures() -> None:
    async def slow(host: str, family: int) -> list[str]:
        await asyncio.sleep(10)
        return []

    async def broken(host: str, family: int) -> list[str]:
        raise socket.gaierror(-2, "Name or service not known")

    async def only_v6(host: str, family: int) -> list[str]:
        return ["2001:db8::1"]

    override = parse_host_override("calls.example.com")
    cases = [
        (slow, "timed out"),
        (broken, "[Errno -2] Name or service not known"),
        (only_v6, "no usable address"),
    ]
    for resolver, reason in cases:
        with pytest.raises(CandidateConfigError) as excinfo:
            await resolve_host_override(override, resolver=resolver, timeout=0.05)
        assert str(excinfo.value) == (
            f"invalid ice_host_override value: failed to resolve host 'calls.example.com': {reason}"
        )


# -------------------------------------------------------------------------- local interfaces

IP_JSON = [
    {
        "ifname": "lo",
        "flags": ["LOOPBACK", "UP", "LOWER_UP"],
        "addr_info": [
            {"family": "inet", "local": "127.0.0.1"},
            {"family": "inet6", "local": "::1"},
        ],
    },
    {
        "ifname": "eth0",
        "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
        "addr_info": [
            {"family": "inet", "local": "10.1.2.3"},
            {"family": "inet6", "local": "fe80::1"},
            {"family": "inet6", "local": "2001:db8::7"},
            {"family": "inet6", "local": "2001:db8::8", "tentative": True},
        ],
    },
    {
        "ifname": "eth1",
        "flags": ["BROADCAST"],
        "addr_info": [{"family": "inet", "local": "10.9.9.9"}],
    },
]


def test_addresses_from_ip_json() -> None:
    text = json.dumps(IP_JSON)
    assert cand._addresses_from_ip_json(text, enable_ipv6=False) == ["127.0.0.1", "10.1.2.3"]
    assert cand._addresses_from_ip_json(text, enable_ipv6=True) == [
        "127.0.0.1",
        "10.1.2.3",
        "2001:db8::7",
    ]


def test_local_interface_addresses_real_and_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    addresses = local_interface_addresses()
    assert "127.0.0.1" in addresses
    assert all(":" not in a for a in addresses)
    assert not any(a.startswith("fe80") for a in local_interface_addresses(enable_ipv6=True))

    def no_ip(*args: Any, **kwargs: Any) -> Any:
        raise FileNotFoundError("ip")

    monkeypatch.setattr(subprocess, "run", no_ip)
    assert "127.0.0.1" in local_interface_addresses()  # SIOCGIFCONF
    assert "127.0.0.1" in cand._addresses_from_hostname(False)


# ---------------------------------------------------------------------------- STUN discovery


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("stun:stun.example.com", ("stun.example.com", 3478)),
        ("stun:stun.example.com:19302", ("stun.example.com", 19302)),
        ("STUN:1.2.3.4:5000?transport=udp", ("1.2.3.4", 5000)),
        ("stun:[2001:db8::1]:3479", ("2001:db8::1", 3479)),
        ("stun:[2001:db8::1]", ("2001:db8::1", 3478)),
    ],
)
def test_parse_stun_url(url: str, expected: tuple[str, int]) -> None:
    assert parse_stun_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("stuns:stun.example.com", "is not a stun: URL"),
        ("turn:x", "is not a stun: URL"),
        ("stun:", "has an invalid host"),
        ("stun:host:0", "has an invalid port"),
        ("stun:host:x", "has an invalid port"),
        ("stun:[::1", "malformed IPv6 literal"),
        ("stun:bad host", "has an invalid host"),
    ],
)
def test_parse_stun_url_errors(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_stun_url(url)


class FakeStunServer(asyncio.DatagramProtocol):
    """Answers Binding requests, optionally lying about the mapped address (a NAT)."""

    def __init__(self, mapped: str | None = None, drop_first: int = 0, error: bool = False) -> None:
        self.mapped = mapped
        self.drop = drop_first
        self.error = error
        self.requests: list[tuple[str, int]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        request = stun.parse_message(data)
        self.requests.append((addr[0], addr[1]))
        if self.drop:
            self.drop -= 1
            return
        assert self.transport is not None
        if self.error:
            self.transport.sendto(stun.encode_error_response(request, 500), addr)
            return
        self.transport.sendto(b"\x17\xfe\xfd not stun", addr)  # ignored by the client
        response = stun.StunMessage(stun.Method.BINDING, stun.StunClass.SUCCESS, bytes(12))
        self.transport.sendto(response.encode(), addr)  # wrong transaction: ignored
        response = stun.StunMessage(
            stun.Method.BINDING, stun.StunClass.SUCCESS, request.transaction_id
        )
        host = self.mapped or addr[0]
        response.add(
            stun.Attr.XOR_MAPPED_ADDRESS,
            stun.encode_xor_address(host, addr[1], request.transaction_id),
        )
        self.transport.sendto(response.encode(fingerprint=True), addr)


@pytest.fixture
async def stun_server() -> AsyncIterator[tuple[FakeStunServer, int]]:
    loop = asyncio.get_running_loop()
    protocol = FakeStunServer()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: protocol, local_addr=("127.0.0.1", 0)
    )
    try:
        yield protocol, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


async def test_discover_public_address(stun_server: tuple[FakeStunServer, int]) -> None:
    protocol, port = stun_server
    url = f"stun:127.0.0.1:{port}"
    assert await discover_public_address(url, "127.0.0.1", timeout=2.0) == "127.0.0.1"
    protocol.mapped = "203.0.113.77"
    protocol.drop = 1  # the first request is lost: the retransmission after 500 ms gets through
    assert await discover_public_address(url, "127.0.0.1", timeout=3.0) == "203.0.113.77"
    assert len(protocol.requests) == 3
    assert protocol.requests[1][1] == protocol.requests[2][1]  # same socket for the retry


async def test_discover_uses_given_socket_and_shared_port(
    stun_server: tuple[FakeStunServer, int],
) -> None:
    protocol, port = stun_server
    url = f"stun:localhost:{port}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        assert await discover_public_address(url, sock=sock, timeout=2.0) == "127.0.0.1"
        assert protocol.requests[-1] == sock.getsockname()
        assert sock.fileno() != -1  # not closed
    # An explicit free port is used as the source port.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    assert await discover_public_address(url, "127.0.0.1", free_port, timeout=2.0) == "127.0.0.1"
    assert protocol.requests[-1] == ("127.0.0.1", free_port)
    # A port held without SO_REUSEPORT: fall back to an ephemeral port.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as exclusive:
        exclusive.bind(("127.0.0.1", 0))
        held = exclusive.getsockname()[1]
        assert await discover_public_address(url, "127.0.0.1", held, timeout=2.0) == "127.0.0.1"
        assert protocol.requests[-1][1] != held


async def test_discover_never_raises(
    stun_server: tuple[FakeStunServer, int], caplog: pytest.LogCaptureFixture
) -> None:
    protocol, port = stun_server
    loop = asyncio.get_running_loop()
    start = loop.time()
    protocol.drop = 100  # silent server
    assert await discover_public_address(f"stun:127.0.0.1:{port}", timeout=0.3) is None
    assert loop.time() - start < 1.5
    protocol.drop = 0
    protocol.error = True
    assert await discover_public_address(f"stun:127.0.0.1:{port}", timeout=1.0) is None
    assert await discover_public_address("stun:nonexistent.invalid", timeout=1.0) is None
    assert await discover_public_address("https://example.com", timeout=1.0) is None
    assert (
        await discover_public_address(f"stun:127.0.0.1:{port}", "203.0.113.1", timeout=1.0) is None
    )
    assert "STUN discovery via" in caplog.text


# -------------------------------------------------------------------------------- gathering


async def test_gather_host_candidates_with_stun() -> None:
    calls: list[tuple[str, str, int, float]] = []

    async def discover(url: str, local_ip: str, local_port: int, *, timeout: float) -> str | None:
        calls.append((url, local_ip, local_port, timeout))
        return {"10.0.0.1": "198.51.100.1"}.get(local_ip)

    config = CandidateConfig(stun_url="stun:stun.example.com:3478", ice_port_udp=9000)
    result = await gather_host_candidates(
        config,
        local_ips=["127.0.0.1", "10.0.0.1", "10.0.0.2", "2001:db8::1"],
        discover=discover,
        stun_timeout=1.5,
    )
    # Loopback is not sent to STUN; IPv6 is filtered out (enable_ipv6 is false).
    assert sorted(calls) == [
        ("stun:stun.example.com:3478", "10.0.0.1", 0, 1.5),
        ("stun:stun.example.com:3478", "10.0.0.2", 0, 1.5),
    ]
    assert [(c.transport, c.address, c.local_address) for c in result] == [
        ("udp", "127.0.0.1", "127.0.0.1"),
        ("udp", "198.51.100.1", "10.0.0.1"),
        ("udp", "10.0.0.2", "10.0.0.2"),
        ("tcp", "127.0.0.1", "127.0.0.1"),
        ("tcp", "198.51.100.1", "10.0.0.1"),
        ("tcp", "10.0.0.2", "10.0.0.2"),
    ]


async def test_gather_host_candidates_override_skips_stun() -> None:
    async def discover(*args: Any, **kwargs: Any) -> str | None:
        raise AssertionError("no STUN with an override")

    async def resolver(host: str, family: int) -> list[str]:
        return ["203.0.113.50"]

    config = CandidateConfig(
        ice_host_override="calls.example.com", stun_url="stun:stun.example.com", ice_port_tcp=0
    )
    result = await gather_host_candidates(
        config, local_ips=["10.0.0.1"], resolver=resolver, discover=discover
    )
    assert result == [
        Candidate(
            foundation=result[0].foundation,
            component=1,
            transport="udp",
            priority=2130706431,
            address="203.0.113.50",
            port=8443,
            local_address="10.0.0.1",
            local_port=8443,
        )
    ]


async def test_gather_host_candidates_real_interfaces() -> None:
    result = await gather_host_candidates(CandidateConfig())
    assert any(c.address == "127.0.0.1" and c.transport == "udp" for c in result)
