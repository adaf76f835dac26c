"""The server's own ICE candidates, from configuration, the way rtcd builds them.

Specs:
- RFC 8445 section 5.1 (host candidates, foundation 5.1.1.3, priority 5.1.2):
  https://www.rfc-editor.org/rfc/rfc8445#section-5.1
- RFC 6544 section 4 (TCP candidates, ``tcptype passive``, TCP local preference):
  https://www.rfc-editor.org/rfc/rfc6544#section-4
- RFC 8839 section 5.1 (the ``candidate`` attribute): https://www.rfc-editor.org/rfc/rfc8839
- RFC 8489 (the startup Binding request to a public STUN server): https://www.rfc-editor.org/rfc/rfc8489

Why: an ICE-lite SFU only has host candidates, one per listen address and transport. In the
cloud the listen address is private, so what goes in the candidate is the *external* address:
rtcd takes it from ``ice_host_override`` (an IP, a hostname resolved once with a 1 s timeout, or
explicit ``EXT/INT`` pairs) or, when no override and a ``stun:`` server is configured, from a
STUN Binding request sent at startup from each local address (5 s timeout). There are no srflx
candidates. ``ice_host_port_override`` rewrites the port of candidates that carry an external
address (load balancers and NodePorts). This module reproduces those rules (``reference/rtcd.md``
1.2, rtcd ``service/rtc/utils.go`` ``generateAddrsPairs``), with two deliberate differences:
the ``localIP/port`` map applies per local address (rtcd applies only the first match), and
STUN discovery runs concurrently for all addresses and never fails startup.

Priorities (RFC 8445 5.1.2.1): ``2^24 * type_pref + 2^8 * local_pref + (256 - component)`` with
type preference 126 (host). UDP local preference is ``65535 - i`` for the i-th address; TCP uses
RFC 6544 4.2, ``2^13 * direction_pref + other_pref`` with direction 4 (passive host) and
``8191 - i``, so every UDP candidate outranks every TCP one. Example: the first UDP candidate
gets ``126 << 24 | 65535 << 8 | 255 = 2130706431``.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import logging
import os
import socket
import subprocess
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from . import stun

__all__ = [
    "Candidate",
    "CandidateConfig",
    "CandidateConfigError",
    "HostOverride",
    "PortOverride",
    "build_candidates",
    "candidate_priority",
    "discover_public_address",
    "external_mapping",
    "gather_host_candidates",
    "local_interface_addresses",
    "parse_address_list",
    "parse_host_override",
    "parse_port_override",
    "parse_stun_url",
    "resolve_host_override",
]

logger = logging.getLogger("sfu.candidates")

HOST_TYPE_PREFERENCE = 126
_PASSIVE_HOST_DIRECTION_PREF = 4  # RFC 6544 section 4.2
_PORT_MIN, _PORT_MAX = 80, 49151  # rtcd's allowed range for ports and port overrides
DEFAULT_STUN_PORT = 3478

Resolver = Callable[[str, int], Awaitable[list[str]]]


class CandidateConfigError(ValueError):
    """A candidate-related configuration value is invalid; ``key`` names the setting."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"invalid {key} value: {message}")
        self.key = key


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def parse_address_list(value: str, key: str) -> list[str]:
    """Comma-separated IPs (``ice_address_udp``/``ice_address_tcp``); "" means all interfaces."""
    if not value.strip():
        return []
    result: list[str] = []
    for part in value.split(","):
        text = part.strip()
        ip = _ip(text)
        if ip is None:
            raise CandidateConfigError(key, f"{text} is not a valid IP address")
        if ip.is_unspecified or ip.is_multicast:
            raise CandidateConfigError(key, f"{text} is not a usable host address")
        if str(ip) not in result:
            result.append(str(ip))
    return result


# ------------------------------------------------------------------------------------ overrides


@dataclass(frozen=True, slots=True)
class HostOverride:
    """Parsed ``ice_host_override``: nothing, one address/hostname, or explicit pairs."""

    #: A single external IP, or a hostname until :func:`resolve_host_override` ran.
    host: str | None = None
    #: Explicit ``(external, internal)`` pairs from the ``"EXT/INT,EXT/INT"`` form.
    pairs: tuple[tuple[str, str], ...] = ()

    @property
    def is_hostname(self) -> bool:
        """True if ``host`` still needs DNS resolution."""
        return self.host is not None and _ip(self.host) is None

    @property
    def is_set(self) -> bool:
        return self.host is not None or bool(self.pairs)


_HOSTNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")


def parse_host_override(value: str) -> HostOverride:
    """Parse ``ice_host_override``: ``""``, an IP, a hostname, or ``"EXT/INT,EXT/INT"``."""
    key = "ice_host_override"
    text = value.strip()
    if not text:
        return HostOverride()
    if "/" in text:
        pairs: list[tuple[str, str]] = []
        internals: set[str] = set()
        for item in text.split(","):
            parts = item.strip().split("/")
            if len(parts) != 2:
                raise CandidateConfigError(key, f"{item.strip()!r} is not an EXT/INT pair")
            ext, internal = (_ip(p.strip()) for p in parts)
            if ext is None or internal is None:
                raise CandidateConfigError(
                    key, f"{item.strip()!r}: both sides must be IP addresses"
                )
            if ext.version != internal.version:
                raise CandidateConfigError(key, f"{item.strip()!r} mixes IPv4 and IPv6")
            if str(internal) in internals:
                raise CandidateConfigError(key, f"duplicate mapping found for {internal}")
            internals.add(str(internal))
            pairs.append((str(ext), str(internal)))
        return HostOverride(pairs=tuple(pairs))
    if "," in text:
        raise CandidateConfigError(key, "several addresses need the EXT/INT,EXT/INT form")
    ip = _ip(text)
    if ip is not None:
        if ip.is_unspecified or ip.is_multicast:
            raise CandidateConfigError(key, f"{text} is not a usable host address")
        return HostOverride(host=str(ip))
    labels = text.rstrip(".").split(".")
    if (
        len(text) > 253
        or not _HOSTNAME_CHARS.issuperset(text)
        or any(not 1 <= len(label) <= 63 for label in labels)
        or any(label.startswith("-") or label.endswith("-") for label in labels)
    ):
        raise CandidateConfigError(key, f"{text!r} is neither an IP address nor a hostname")
    return HostOverride(host=text)


async def _default_resolver(host: str, family: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None, family=family, type=socket.SOCK_DGRAM)
    return [str(info[4][0]) for info in infos]


async def resolve_host_override(
    override: HostOverride,
    *,
    enable_ipv6: bool = False,
    timeout: float = 1.0,
    resolver: Resolver | None = None,
) -> HostOverride:
    """Resolve a hostname override once (IPv4 only unless ``enable_ipv6``), like rtcd.

    Raises :class:`CandidateConfigError` if it does not resolve within ``timeout``: a typo here
    would silently advertise unreachable candidates.
    """
    if not override.is_hostname:
        return override
    assert override.host is not None
    lookup = resolver or _default_resolver
    family = socket.AF_UNSPEC if enable_ipv6 else socket.AF_INET
    try:
        addresses = await asyncio.wait_for(lookup(override.host, family), timeout)
    except (TimeoutError, OSError) as exc:
        reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else str(exc)
        raise CandidateConfigError(
            "ice_host_override", f"failed to resolve host {override.host!r}: {reason}"
        ) from exc
    for address in addresses:
        ip = _ip(address.split("%", 1)[0])
        if ip is not None and (enable_ipv6 or ip.version == 4):
            return HostOverride(host=str(ip))
    raise CandidateConfigError(
        "ice_host_override", f"failed to resolve host {override.host!r}: no usable address"
    )


@dataclass(frozen=True, slots=True)
class PortOverride:
    """Parsed ``ice_host_port_override``: one port for all, or per local IP."""

    port: int | None = None
    #: ``(local IP, port)`` pairs from the ``"localIP/port,..."`` form.
    by_local_ip: tuple[tuple[str, int], ...] = ()

    def port_for(self, local_ip: str) -> int | None:
        for ip, port in self.by_local_ip:
            if ip == local_ip:
                return port
        return self.port


def _check_override_port(port: int) -> int:
    if not _PORT_MIN <= port <= _PORT_MAX:
        raise CandidateConfigError(
            "ice_host_port_override",
            f"{port} is not in allowed range [{_PORT_MIN}, {_PORT_MAX}]",
        )
    return port


def parse_port_override(value: int | str | None) -> PortOverride:
    """Parse ``ice_host_port_override``: unset/"" , a port (int or digits), or ``"IP/port,..."``."""
    key = "ice_host_port_override"
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            raise CandidateConfigError(key, "must be a port number or an IP/port map")
        return PortOverride()
    if isinstance(value, int):
        return PortOverride(port=_check_override_port(value))
    text = value.strip()
    if not text:
        return PortOverride()
    if text.isascii() and text.isdigit():
        return PortOverride(port=_check_override_port(int(text)))
    pairs: list[tuple[str, int]] = []
    ports: set[int] = set()
    for item in text.split(","):
        parts = item.strip().split("/")
        if len(parts) != 2:
            raise CandidateConfigError(key, "failed to parse mapping: invalid map pairing syntax")
        ip = _ip(parts[0].strip())
        if ip is None:
            raise CandidateConfigError(key, f"failed to parse mapping: {parts[0]!r} is not an IP")
        port_text = parts[1].strip()
        if not (port_text.isascii() and port_text.isdigit()):
            raise CandidateConfigError(
                key, f"failed to parse mapping: failed to parse port number {port_text!r}"
            )
        port = _check_override_port(int(port_text))
        if any(existing == str(ip) for existing, _ in pairs):
            raise CandidateConfigError(
                key, f"failed to parse mapping: duplicate mapping found for {ip}"
            )
        if port in ports:
            raise CandidateConfigError(
                key, f"failed to parse mapping: duplicate port found for {port}"
            )
        ports.add(port)
        pairs.append((str(ip), port))
    return PortOverride(by_local_ip=tuple(pairs))


# -------------------------------------------------------------------------------------- config


def _check_listen_port(key: str, port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int):
        raise CandidateConfigError(key, f"{port!r} is not a port number")
    if not _PORT_MIN <= port <= _PORT_MAX:
        raise CandidateConfigError(
            key, f"{port} is not in allowed range [{_PORT_MIN}, {_PORT_MAX}]"
        )


@dataclass(frozen=True, slots=True)
class CandidateConfig:
    """The ``[rtc]`` settings that decide the server's candidates (rtcd names and defaults).

    Validated at construction; errors are :class:`CandidateConfigError` naming the TOML key.
    """

    #: Comma-separated UDP listen IPs; "" means every local interface address.
    ice_address_udp: str = ""
    #: UDP port shared by all sessions.
    ice_port_udp: int = 8443
    #: Comma-separated TCP listen IPs; "" means every local interface address.
    ice_address_tcp: str = ""
    #: TCP port for ICE-TCP passive candidates; 0 disables TCP candidates (not in rtcd).
    ice_port_tcp: int = 8443
    #: External address: an IP, a hostname (resolved once, 1 s) or "EXT/INT,EXT/INT".
    ice_host_override: str = ""
    #: Port advertised instead of the listen port on external candidates: int or "IP/port,...".
    ice_host_port_override: int | str | None = None
    #: Also use IPv6 (global unicast addresses only).
    enable_ipv6: bool = False
    #: ``stun:host[:port]`` used at startup to learn the public address when no override is set.
    stun_url: str = ""
    #: Parsed forms, filled in by ``__post_init__``.
    udp_addresses: tuple[str, ...] = field(init=False, default=())
    tcp_addresses: tuple[str, ...] = field(init=False, default=())
    host_override: HostOverride = field(init=False, default=HostOverride())
    port_override: PortOverride = field(init=False, default=PortOverride())

    def __post_init__(self) -> None:
        udp = parse_address_list(self.ice_address_udp, "ice_address_udp")
        tcp = parse_address_list(self.ice_address_tcp, "ice_address_tcp")
        for key, addresses in (("ice_address_udp", udp), ("ice_address_tcp", tcp)):
            if not self.enable_ipv6:
                for address in addresses:
                    if ":" in address:
                        raise CandidateConfigError(
                            key, f"{address} is IPv6 but enable_ipv6 is false"
                        )
        _check_listen_port("ice_port_udp", self.ice_port_udp)
        if self.ice_port_tcp != 0:
            _check_listen_port("ice_port_tcp", self.ice_port_tcp)
        if self.stun_url:
            try:
                parse_stun_url(self.stun_url)
            except ValueError as exc:
                raise CandidateConfigError("stun_url", str(exc)) from exc
        object.__setattr__(self, "udp_addresses", tuple(udp))
        object.__setattr__(self, "tcp_addresses", tuple(tcp))
        object.__setattr__(self, "host_override", parse_host_override(self.ice_host_override))
        object.__setattr__(self, "port_override", parse_port_override(self.ice_host_port_override))


# ----------------------------------------------------------------------------------- candidates


@dataclass(frozen=True, slots=True)
class Candidate:
    """One server host candidate."""

    foundation: str
    component: int
    #: "udp" or "tcp".
    transport: str
    priority: int
    #: Advertised address (external when overridden).
    address: str
    #: Advertised port (``ice_host_port_override`` applied).
    port: int
    #: The interface address the server listens on for it.
    local_address: str
    #: The port the server listens on.
    local_port: int
    type: str = "host"
    #: "passive" for TCP candidates.
    tcptype: str | None = None

    def to_sdp(self) -> str:
        """``candidate:<foundation> 1 udp <prio> <ip> <port> typ host generation 0`` (TCP adds
        ``tcptype passive``); prefix with ``a=`` for an SDP line."""
        tcp = f" tcptype {self.tcptype}" if self.tcptype else ""
        return (
            f"candidate:{self.foundation} {self.component} {self.transport} {self.priority} "
            f"{self.address} {self.port} typ {self.type}{tcp} generation 0"
        )


def candidate_priority(type_preference: int, local_preference: int, component: int = 1) -> int:
    """RFC 8445 section 5.1.2.1."""
    if not 0 <= type_preference <= 126 or not 0 <= local_preference <= 65535:
        raise ValueError("type preference must be 0-126 and local preference 0-65535")
    if not 1 <= component <= 256:
        raise ValueError("component must be 1-256")
    return (type_preference << 24) | (local_preference << 8) | (256 - component)


def _foundation(transport: str, local_ip: str) -> str:
    # RFC 8445 5.1.1.3: same type, base address, server and transport -> same foundation.
    return str(zlib.crc32(f"host/{transport}/{local_ip}".encode()))


def external_mapping(
    local_ips: Sequence[str],
    override: HostOverride,
    public_addresses: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Local IP -> advertised IP, following rtcd's ``generateAddrsPairs``.

    - explicit pairs: listed internals map to their external, others stay as they are;
    - one external IP (already resolved): with a single local IP of the same family, that one
      maps; otherwise loopback addresses stay and every same-family address maps to it;
    - no override: STUN-discovered public addresses where known;
    - local IPs that nothing maps keep their own address.
    """
    if override.is_hostname:
        raise ValueError("resolve the ice_host_override hostname first")
    mapping = {ip: ip for ip in local_ips}
    if override.pairs:
        for ext, internal in override.pairs:
            if internal in mapping:
                mapping[internal] = ext
        return mapping
    if override.host is not None:
        ext_ip = ipaddress.ip_address(override.host)
        for ip in local_ips:
            local = ipaddress.ip_address(ip)
            if local.version != ext_ip.version:
                continue
            if len(local_ips) == 1 or not local.is_loopback:
                mapping[ip] = override.host
        return mapping
    for ip, public in (public_addresses or {}).items():
        if ip in mapping and public:
            mapping[ip] = public
    return mapping


def build_candidates(
    config: CandidateConfig,
    udp_ips: Sequence[str],
    tcp_ips: Sequence[str] | None = None,
    *,
    host_override: HostOverride | None = None,
    public_addresses: Mapping[str, str] | None = None,
) -> list[Candidate]:
    """Host candidates for the given listen IPs (pure; no I/O).

    ``host_override`` defaults to ``config.host_override`` and must be resolved (no hostname).
    ``tcp_ips`` defaults to ``udp_ips``. Candidates advertising the same transport address
    are de-duplicated (several local IPs can map to one external IP).
    """
    override = host_override if host_override is not None else config.host_override
    tcp_list = list(udp_ips if tcp_ips is None else tcp_ips)
    mapping = external_mapping(
        list(dict.fromkeys([*udp_ips, *tcp_list])), override, public_addresses
    )
    candidates: list[Candidate] = []
    seen: set[tuple[str, str, int]] = set()

    def advertised(local_ip: str, listen_port: int) -> tuple[str, int]:
        ext = mapping.get(local_ip, local_ip)
        port = listen_port
        if ext != local_ip:
            override_port = config.port_override.port_for(local_ip)
            if override_port is not None:
                port = override_port
        return ext, port

    for index, ip in enumerate(udp_ips):
        address, port = advertised(ip, config.ice_port_udp)
        if ("udp", address, port) in seen:
            continue
        seen.add(("udp", address, port))
        candidates.append(
            Candidate(
                foundation=_foundation("udp", ip),
                component=1,
                transport="udp",
                priority=candidate_priority(HOST_TYPE_PREFERENCE, 65535 - min(index, 65535)),
                address=address,
                port=port,
                local_address=ip,
                local_port=config.ice_port_udp,
            )
        )
    if config.ice_port_tcp:
        for index, ip in enumerate(tcp_list):
            address, port = advertised(ip, config.ice_port_tcp)
            if ("tcp", address, port) in seen:
                continue
            seen.add(("tcp", address, port))
            local_pref = (_PASSIVE_HOST_DIRECTION_PREF << 13) + 8191 - min(index, 8191)
            candidates.append(
                Candidate(
                    foundation=_foundation("tcp", ip),
                    component=1,
                    transport="tcp",
                    priority=candidate_priority(HOST_TYPE_PREFERENCE, local_pref),
                    address=address,
                    port=port,
                    local_address=ip,
                    local_port=config.ice_port_tcp,
                    tcptype="passive",
                )
            )
    return candidates


# -------------------------------------------------------------------------- local interfaces


def _usable(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, enable_ipv6: bool) -> bool:
    if ip.version == 4:
        return not (ip.is_unspecified or ip.is_multicast)
    # rtcd: IPv6 only when enabled, and only global unicast (no ::1, no fe80::/10).
    return enable_ipv6 and not (
        ip.is_link_local or ip.is_loopback or ip.is_multicast or ip.is_unspecified
    )


def _addresses_from_ip_json(text: str, enable_ipv6: bool) -> list[str]:
    """Addresses from ``ip -j addr show`` output: interfaces that are UP, usable addresses."""
    result: list[str] = []
    for iface in json.loads(text):
        if "UP" not in iface.get("flags", ()):
            continue
        for info in iface.get("addr_info", ()):
            if info.get("tentative") or info.get("dadfailed"):
                continue
            ip = _ip(str(info.get("local", "")))
            if ip is not None and _usable(ip, enable_ipv6) and str(ip) not in result:
                result.append(str(ip))
    return result


def _addresses_from_proc(enable_ipv6: bool) -> list[str]:
    """Fallback without ``ip``: IPv4 via the SIOCGIFCONF ioctl, IPv6 from /proc/net/if_inet6."""
    import array
    import fcntl
    import struct

    result: list[str] = []
    siocgifconf = 0x8912
    ifreq_size = 40  # struct ifreq on 64-bit Linux
    buf = array.array("B", bytes(ifreq_size * 64))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        address, _ = buf.buffer_info()
        packed = fcntl.ioctl(sock.fileno(), siocgifconf, struct.pack("iL", len(buf), address))
        length = struct.unpack("iL", packed)[0]
    data = buf.tobytes()[:length]
    for offset in range(0, length, ifreq_size):
        ip = _ip(socket.inet_ntoa(data[offset + 20 : offset + 24]))
        if ip is not None and _usable(ip, enable_ipv6) and str(ip) not in result:
            result.append(str(ip))
    if enable_ipv6 and os.path.exists("/proc/net/if_inet6"):
        with open("/proc/net/if_inet6", encoding="ascii") as lines:
            for line in lines:
                fields = line.split()
                if len(fields) < 6 or len(fields[0]) != 32:
                    continue
                ip6 = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
                flags = int(fields[4], 16)
                if flags & 0x40 or flags & 0x08:  # IFA_F_TENTATIVE, IFA_F_DADFAILED
                    continue
                if _usable(ip6, enable_ipv6) and str(ip6) not in result:
                    result.append(str(ip6))
    return result


def _addresses_from_hostname(enable_ipv6: bool) -> list[str]:
    result = ["127.0.0.1"]
    family = socket.AF_UNSPEC if enable_ipv6 else socket.AF_INET
    for info in socket.getaddrinfo(socket.gethostname(), None, family=family):
        ip = _ip(str(info[4][0]).split("%", 1)[0])
        if ip is not None and _usable(ip, enable_ipv6) and str(ip) not in result:
            result.append(str(ip))
    return result


def local_interface_addresses(enable_ipv6: bool = False) -> list[str]:
    """IPs of the interfaces that are up: IPv4 including loopback, IPv6 global unicast only.

    Uses ``ip -j addr show`` when available, else the SIOCGIFCONF ioctl and
    ``/proc/net/if_inet6``, else the addresses of ``socket.gethostname()``. No extra packages.
    """
    try:
        proc = subprocess.run(
            ["ip", "-j", "addr", "show"], capture_output=True, text=True, timeout=2.0, check=True
        )
        addresses = _addresses_from_ip_json(proc.stdout, enable_ipv6)
        if addresses:
            return addresses
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        logger.debug("`ip -j addr show` unavailable (%s), falling back", exc)
    try:
        addresses = _addresses_from_proc(enable_ipv6)
        if addresses:
            return addresses
    except (OSError, ValueError, ImportError) as exc:
        logger.debug("SIOCGIFCONF/proc lookup failed (%s), falling back", exc)
    return _addresses_from_hostname(enable_ipv6)


# -------------------------------------------------------------------------- STUN discovery


def parse_stun_url(url: str) -> tuple[str, int]:
    """``stun:host[:port]`` (RFC 7064; IPv6 in brackets) -> ``(host, port)``; ValueError else."""
    text = url.strip()
    scheme, sep, rest = text.partition(":")
    if not sep or scheme.lower() != "stun":
        raise ValueError(f"{url!r} is not a stun: URL (stuns: is not supported)")
    rest = rest.split("?", 1)[0]
    rest = rest.removeprefix("//")
    port = DEFAULT_STUN_PORT
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or _ip(host) is None:
            raise ValueError(f"{url!r} has a malformed IPv6 literal")
        if tail:
            if not tail.startswith(":"):
                raise ValueError(f"{url!r} has garbage after the host")
            port_text = tail[1:]
        else:
            port_text = ""
    else:
        host, _, port_text = rest.partition(":")
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"{url!r} has an invalid port")
        port = int(port_text)
    if not host or not (_ip(host) is not None or _HOSTNAME_CHARS.issuperset(host)):
        raise ValueError(f"{url!r} has an invalid host")
    return host, port


async def _stun_exchange(
    sock: socket.socket, server: tuple[str, int], deadline: float
) -> str | None:
    loop = asyncio.get_running_loop()
    request = stun.StunMessage(stun.Method.BINDING, stun.StunClass.REQUEST)
    data = request.encode(fingerprint=True)
    rto = 0.5
    while True:
        now = loop.time()
        if now >= deadline:
            return None
        await loop.sock_sendto(sock, data, server)
        wait_until = min(deadline, now + rto)
        rto *= 2
        while True:
            remaining = wait_until - loop.time()
            if remaining <= 0:
                break
            try:
                reply, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), remaining)
            except TimeoutError:
                break
            try:
                response = stun.parse_message(reply)
            except ValueError:
                continue
            if response.transaction_id != request.transaction_id:
                continue
            if response.msg_class is stun.StunClass.ERROR:
                logger.warning(
                    "STUN server %s answered with an error %s", server, response.error_code
                )
                return None
            if response.msg_class is not stun.StunClass.SUCCESS:
                continue
            try:
                mapped = response.xor_mapped_address or response.mapped_address
            except ValueError:
                return None
            return mapped[0] if mapped else None


async def discover_public_address(
    stun_url: str,
    local_ip: str | None = None,
    local_port: int = 0,
    *,
    sock: socket.socket | None = None,
    timeout: float = 5.0,
) -> str | None:
    """Ask a STUN server which public IP our packets come from; None on any failure.

    Sends from ``sock`` if given (non-blocking, bound, not read by anyone else meanwhile; it is
    not closed), else from a new socket bound to ``(local_ip, local_port)``. Only the IP of the
    answer is used, so the default ephemeral port is right for the 1:1 NATs of cloud hosts and
    never competes with the media sockets. A non-zero ``local_port`` is bound with SO_REUSEPORT
    so it cannot block the media plane from binding it; while a media socket shares the port the
    kernel may deliver the answer to that socket instead, so only use it before the media plane
    binds. If the port is taken, an ephemeral port is used. Retransmits with RFC 8489 backoff
    (500 ms, doubling) until ``timeout``. Never raises (cancellation excepted): failures are
    logged, so callers can run it as a background task at startup.
    """
    own: socket.socket | None = None
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        host, port = parse_stun_url(stun_url)
        if sock is not None:
            family = sock.family
        elif local_ip is not None and ":" in local_ip:
            family = socket.AF_INET6
        else:
            family = socket.AF_INET
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM), timeout
        )
        if not infos:
            raise OSError(f"no {family.name} address for {host}")
        server = (str(infos[0][4][0]), int(infos[0][4][1]))
        if sock is None:
            own = socket.socket(family, socket.SOCK_DGRAM)
            own.setblocking(False)
            bind_ip = local_ip or ("::" if family == socket.AF_INET6 else "0.0.0.0")
            if local_port:
                own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if hasattr(socket, "SO_REUSEPORT"):
                    own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                own.bind((bind_ip, local_port))
            except OSError as exc:
                if not local_port or exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                    raise
                own.bind((bind_ip, 0))
            sock = own
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError()
        address = await asyncio.wait_for(_stun_exchange(sock, server, deadline), remaining + 0.1)
        if address is None:
            logger.warning("STUN discovery via %s from %s got no answer", stun_url, local_ip)
        else:
            logger.info("STUN discovery via %s: %s is %s", stun_url, local_ip, address)
        return address
    except TimeoutError:
        logger.warning("STUN discovery via %s from %s timed out", stun_url, local_ip)
        return None
    except Exception as exc:  # noqa: BLE001 - never fatal: a dead STUN server must not stop startup
        logger.warning("STUN discovery via %s from %s failed: %s", stun_url, local_ip, exc)
        return None
    finally:
        if own is not None:
            own.close()


async def gather_host_candidates(
    config: CandidateConfig,
    *,
    local_ips: Iterable[str] | None = None,
    resolver: Resolver | None = None,
    resolve_timeout: float = 1.0,
    stun_timeout: float = 5.0,
    discover: Callable[..., Awaitable[str | None]] | None = None,
) -> list[Candidate]:
    """Everything at startup: listen IPs, override resolution, STUN discovery, candidates.

    ``local_ips`` replaces :func:`local_interface_addresses` and ``discover`` replaces
    :func:`discover_public_address` (tests). Loopback addresses are not sent to STUN. Raises
    :class:`CandidateConfigError` only for an unresolvable ``ice_host_override`` hostname;
    STUN failures just leave the local address in the candidate.
    """
    interfaces = (
        list(local_ips)
        if local_ips is not None
        else await asyncio.to_thread(local_interface_addresses, config.enable_ipv6)
    )
    interfaces = [ip for ip in interfaces if config.enable_ipv6 or ":" not in ip]
    udp_ips = list(config.udp_addresses) or interfaces
    tcp_ips = list(config.tcp_addresses) or interfaces
    override = await resolve_host_override(
        config.host_override,
        enable_ipv6=config.enable_ipv6,
        timeout=resolve_timeout,
        resolver=resolver,
    )
    public: dict[str, str] = {}
    if not override.is_set and config.stun_url:
        targets = [ip for ip in udp_ips if not ipaddress.ip_address(ip).is_loopback]
        lookup = discover or discover_public_address
        results = await asyncio.gather(
            *(lookup(config.stun_url, ip, 0, timeout=stun_timeout) for ip in targets)
        )
        public = {ip: found for ip, found in zip(targets, results, strict=True) if found}
    return build_candidates(
        config, udp_ips, tcp_ips, host_override=override, public_addresses=public
    )
