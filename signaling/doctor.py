"""``switchboard doctor``: is this host ready to run the SFU?

The Calls documentation (seeds/calls-start-a-call-v7.txt) and the most common support threads
(reference/rtcd.md 9: blocked UDP 8443, wrong or private ICE candidates, failed STUN, missing
HTTPS) come down to a few facts an operator can check before the first call:

- kernel limits: ``net.core.rmem_max``, ``wmem_max`` and ``optmem_max`` at 16 MiB, the values
  the documentation asks for (many calls on one UDP socket need large buffers);
- the socket buffers the SFU would actually get (Linux caps SO_RCVBUF/SO_SNDBUF at those limits
  unless the process may use SO_RCVBUFFORCE, as root can; the media plane tries that first);
- free ports: UDP and TCP 8443 (media and ICE-TCP) and TCP 8045 (the host API);
- the address announced in ICE candidates: ``rtc.ice_host_override``, or STUN discovery, or
  else the interface addresses (private ones only work for clients on the same network);
- TLS for the API: certificate and key readable and matching, not expired.

The settings come from the service's configuration (rtcd's ``config.toml`` and ``RTCD_*``
variables, as ``switchboard serve`` reads them); options override them. The report prints the
exact ``sysctl`` commands and a file for ``/etc/sysctl.d/``. The exit status is 1 when
something needs fixing, 0 otherwise (warnings do not fail).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import errno
import ipaddress
import json
import socket
import ssl
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from switchboard.engine.candidates import (
    discover_public_address,
    local_interface_addresses,
    parse_host_override,
    parse_stun_url,
)

RECOMMENDED = 16 * 1024 * 1024
SYSCTLS = ("net.core.rmem_max", "net.core.wmem_max", "net.core.optmem_max")
SYSCTL_FILE = "/etc/sysctl.d/99-switchboard.conf"
_SO_RCVBUFFORCE, _SO_SNDBUFFORCE = 33, 32
OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    status: str                                      # OK, WARN or FAIL
    detail: str
    fix: tuple[str, ...] = ()                        # what to do, one line each


@dataclass(frozen=True)
class DoctorConfig:
    """What to check, from the service configuration and the command line."""

    rtc_udp_port: int = 8443
    """Media port (``rtc.ice_port_udp``)."""
    rtc_tcp_port: int = 8443
    """ICE-TCP port (``rtc.ice_port_tcp``); 0 = ICE-TCP off."""
    api_port: int = 8045
    """Host API port (from ``api.http.listen_address``); 0 = do not check."""
    bind_address: str = "0.0.0.0"
    """Where to try binding the ports."""
    ice_host_override: str = ""
    """``rtc.ice_host_override``."""
    stun_url: str = ""
    """The STUN server used to discover the public address ("" = none)."""
    tls_cert: str = ""
    """API certificate (PEM); "" = the API has no TLS."""
    tls_key: str = ""
    """Its private key (PEM)."""
    proc_sys: Path = Path("/proc/sys")
    """Where the sysctls are read (tests point this elsewhere)."""
    recommended: int = RECOMMENDED
    """The buffer size the limits and sockets should reach."""
    stun_timeout: float = 3.0
    """Seconds for STUN discovery and hostname resolution."""
    local_ips: tuple[str, ...] | None = None
    """Interface addresses instead of listing them (tests)."""


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KiB"


# --------------------------------------------------------------------------------- kernel


def read_sysctl(proc_sys: Path, name: str) -> int:
    """A numeric sysctl; raises OSError or ValueError."""
    text = (proc_sys / name.replace(".", "/")).read_text().split()
    if len(text) != 1:
        raise ValueError(f"{name} is not a single number: {' '.join(text)!r}")
    return int(text[0])


def check_sysctls(cfg: DoctorConfig) -> list[Check]:
    out = []
    for name in SYSCTLS:
        try:
            value = read_sysctl(cfg.proc_sys, name)
        except (OSError, ValueError) as exc:
            out.append(Check(name, WARN, f"cannot read it ({exc}); in a container, check the host's value"))
            continue
        if value >= cfg.recommended:
            out.append(Check(name, OK, f"{value} ({_mib(value)})"))
        else:
            out.append(Check(name, FAIL, f"{value} ({_mib(value)}); the Calls documentation asks for "
                                         f"{cfg.recommended} ({_mib(cfg.recommended)})",
                             (f"sysctl -w {name}={cfg.recommended}",)))
    return out


def measure_buffers(size: int) -> dict[str, int]:
    """Buffer sizes a UDP socket gets when it asks for ``size``: plain (capped by the sysctls)
    and forced (SO_*BUFFORCE, needs CAP_NET_ADMIN; -1 when not permitted)."""
    result: dict[str, int] = {}
    for label, rcv_opt, snd_opt in (("plain", socket.SO_RCVBUF, socket.SO_SNDBUF),
                                    ("forced", _SO_RCVBUFFORCE, _SO_SNDBUFFORCE)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.setsockopt(socket.SOL_SOCKET, rcv_opt, size)
                s.setsockopt(socket.SOL_SOCKET, snd_opt, size)
            except OSError:
                result[f"{label}_rcv"] = result[f"{label}_snd"] = -1
                continue
            # Linux reports twice what it grants (bookkeeping overhead)
            result[f"{label}_rcv"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
            result[f"{label}_snd"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2
    return result


def check_buffers(cfg: DoctorConfig, measured: dict[str, int] | None = None) -> Check:
    m = measured if measured is not None else measure_buffers(cfg.recommended)
    forced = m["forced_rcv"] >= 0
    rcv, snd = (m["forced_rcv"], m["forced_snd"]) if forced else (m["plain_rcv"], m["plain_snd"])
    how = (f"forced past the sysctls, which this user may do; others get receive "
           f"{_mib(m['plain_rcv'])}, send {_mib(m['plain_snd'])}" if forced else "capped by the sysctls")
    detail = f"a media socket gets receive {_mib(rcv)}, send {_mib(snd)} ({how})"
    if rcv >= cfg.recommended and snd >= cfg.recommended:
        return Check("socket buffers", OK, detail)
    return Check("socket buffers", FAIL, detail + f"; want {_mib(cfg.recommended)}",
                 ("raise net.core.rmem_max and net.core.wmem_max (below)",))


# --------------------------------------------------------------------------------- ports


def port_free(proto: str, address: str, port: int) -> tuple[bool, str]:
    """Try to bind; (True, "") if it worked, else (False, why)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(family, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # TIME_WAIT is not "in use"
        try:
            s.bind((address, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False, "in use by another program"
            if exc.errno == errno.EACCES:
                return False, "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
            if exc.errno == errno.EADDRNOTAVAIL:
                return False, f"{address} is not an address of this host"
            return False, str(exc)
    return True, ""


def check_ports(cfg: DoctorConfig) -> list[Check]:
    wanted = [("udp", cfg.rtc_udp_port, "media (rtc.ice_port_udp)")]
    if cfg.rtc_tcp_port:
        wanted.append(("tcp", cfg.rtc_tcp_port, "ICE-TCP fallback (rtc.ice_port_tcp)"))
    if cfg.api_port:
        wanted.append(("tcp", cfg.api_port, "host API (api.http.listen_address)"))
    out = []
    for proto, port, what in wanted:
        name = f"{proto.upper()} {port}"
        free, why = port_free(proto, cfg.bind_address, port)
        if free:
            out.append(Check(name, OK, f"free for the {what}"))
        else:
            out.append(Check(name, FAIL, f"cannot bind {cfg.bind_address}:{port} for the {what}: {why}",
                             (f"stop what holds {proto.upper()} {port} (`ss -lnp{proto[0]} sport = :{port}`), "
                              "or choose another port in the configuration",)))
    return out


# --------------------------------------------------------------------------------- address


def _is_public(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    return addr.is_global


async def check_address(cfg: DoctorConfig) -> Check:
    name = "announced address"
    udp = cfg.rtc_udp_port
    if cfg.ice_host_override:
        try:
            override = parse_host_override(cfg.ice_host_override)
        except ValueError as exc:
            return Check(name, FAIL, f"rtc.ice_host_override is invalid: {exc}")
        if override.host is None:
            pairs = ", ".join(f"{ext} for {internal}" for ext, internal in override.pairs)
            return Check(name, OK, f"rtc.ice_host_override maps local addresses: {pairs}")
        host = override.host
        try:
            ipaddress.ip_address(host)
            ips = [host]
        except ValueError:
            loop = asyncio.get_running_loop()
            try:
                infos = await asyncio.wait_for(loop.getaddrinfo(host, None, family=socket.AF_INET), cfg.stun_timeout)
            except (OSError, TimeoutError) as exc:
                return Check(name, FAIL, f"rtc.ice_host_override {host!r} does not resolve ({exc})",
                             ("use an IP address, or a name that resolves on this host",))
            ips = sorted({str(i[4][0]) for i in infos})
        kind = "public" if all(_is_public(ip) for ip in ips) else "not public"
        status = OK if kind == "public" else WARN
        return Check(name, status, f"rtc.ice_host_override: clients are told {', '.join(ips)} port {udp} ({kind})",
                     () if status == OK else ("clients outside this network need a public address here",))
    locals_ = list(cfg.local_ips) if cfg.local_ips is not None else local_interface_addresses(False)
    usable = [ip for ip in locals_ if not ipaddress.ip_address(ip).is_loopback]
    if cfg.stun_url:
        try:
            parse_stun_url(cfg.stun_url)
        except ValueError as exc:
            return Check(name, FAIL, f"the STUN URL is invalid: {exc}")
        found = await discover_public_address(cfg.stun_url, timeout=cfg.stun_timeout)
        if found:
            return Check(name, OK, f"STUN ({cfg.stun_url}) says this host is {found}; clients are told "
                                   f"{found} port {udp}")
        return Check(name, FAIL, f"no answer from the STUN server {cfg.stun_url} within {cfg.stun_timeout:.0f} s "
                                 f"(outgoing UDP to it blocked?); candidates fall back to {', '.join(usable) or 'nothing'}",
                     ("allow outgoing UDP to the STUN server, or set rtc.ice_host_override to the public IP",))
    if not usable:
        return Check(name, FAIL, "no interface address except loopback: remote clients cannot reach the SFU",
                     ("set rtc.ice_host_override to the address clients use",))
    public = [ip for ip in usable if _is_public(ip)]
    if public:
        return Check(name, OK, f"interface addresses {', '.join(usable)}; public: {', '.join(public)}")
    return Check(name, WARN, f"no override and no STUN server: clients are told the private address(es) "
                             f"{', '.join(usable)}; that works only for clients on the same network or VPN",
                 ("for clients on the internet set rtc.ice_host_override to the public IP (or add a STUN "
                  "server to rtc.ice_servers) and forward UDP " + str(udp) + " to this host",))


# --------------------------------------------------------------------------------- TLS


def check_tls(cfg: DoctorConfig, now: datetime.datetime | None = None) -> Check:
    name = "TLS"
    if not cfg.tls_cert and not cfg.tls_key:
        return Check(name, WARN, "the host API is plain HTTP (api.http.tls.enable = false): fine on a private "
                                 "network; browsers themselves need the chat server's page on HTTPS to use the "
                                 "microphone and screen sharing",
                     ("to encrypt the API: api.http.tls.enable = true with cert_file and cert_key",))
    if not cfg.tls_cert or not cfg.tls_key:
        return Check(name, FAIL, "TLS needs both a certificate (cert_file) and a key (cert_key)")
    from cryptography import x509

    try:
        pem = Path(cfg.tls_cert).read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
    except OSError as exc:
        return Check(name, FAIL, f"cannot read the certificate {cfg.tls_cert}: {exc.strerror or exc}")
    except ValueError as exc:
        return Check(name, FAIL, f"{cfg.tls_cert} is not a PEM certificate ({exc})")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    except FileNotFoundError:
        return Check(name, FAIL, f"cannot read the key {cfg.tls_key}")
    except ssl.SSLError as exc:
        reason = "the key does not match the certificate" if "KEY_VALUES_MISMATCH" in str(exc) or \
            "key values mismatch" in str(exc) else f"the key cannot be used ({exc.reason or exc})"
        return Check(name, FAIL, f"{reason} ({cfg.tls_key})")
    now = now or datetime.datetime.now(datetime.UTC)
    expires = cert.not_valid_after_utc
    subject = cert.subject.rfc4514_string()
    if expires <= now:
        return Check(name, FAIL, f"the certificate ({subject}) expired on {expires:%Y-%m-%d}",
                     ("renew the certificate",))
    if cert.not_valid_before_utc > now:
        return Check(name, FAIL, f"the certificate ({subject}) is not valid before {cert.not_valid_before_utc:%Y-%m-%d}")
    days = (expires - now).days
    if days < 14:
        return Check(name, WARN, f"the certificate ({subject}) expires in {days} days ({expires:%Y-%m-%d})",
                     ("renew the certificate soon",))
    return Check(name, OK, f"certificate {subject}, key matches, valid until {expires:%Y-%m-%d}")


# --------------------------------------------------------------------------------- report


async def run_checks(cfg: DoctorConfig) -> list[Check]:
    checks = check_sysctls(cfg)
    checks.append(check_buffers(cfg))
    checks += check_ports(cfg)
    checks.append(await check_address(cfg))
    checks.append(check_tls(cfg))
    return checks


def sysctl_file(value: int = RECOMMENDED) -> str:
    return (
        "# Switchboard SFU: UDP buffer limits recommended by the Mattermost Calls documentation\n"
        "# Setting the maximum buffer size of the receiving UDP buffer to 16MB\n"
        f"net.core.rmem_max = {value}\n"
        "# Setting the maximum buffer size of the sending UDP buffer to 16MB\n"
        f"net.core.wmem_max = {value}\n"
        "# Allow to allocate more memory as needed for more control messages that need to be sent for each socket connected\n"
        f"net.core.optmem_max = {value}\n"
    )


def render(checks: list[Check], cfg: DoctorConfig, source: str) -> str:
    tag = {OK: "[ OK ]", WARN: "[WARN]", FAIL: "[FAIL]"}
    lines = [f"switchboard doctor: is this host ready for the SFU? (settings: {source})", ""]
    for c in checks:
        lines.append(f"  {tag[c.status]} {c.name}: {c.detail}")
        for f in c.fix:
            if not f.startswith("sysctl -w"):
                lines.append(f"         -> {f}")
    low = [c for c in checks if c.name in SYSCTLS and c.status == FAIL]
    if low:
        lines += ["", "Raise the kernel limits now (as root):"]
        lines += [f"  sysctl -w {name}={cfg.recommended}" for name in SYSCTLS]
        lines += ["", f"and keep them after a reboot: save these lines as {SYSCTL_FILE}, then run `sysctl --system`",
                  "(or use `switchboard doctor --write-sysctl-file`):", ""]
        lines += ["  " + line for line in sysctl_file(cfg.recommended).splitlines()]
    failed = sum(c.status == FAIL for c in checks)
    warned = sum(c.status == WARN for c in checks)
    lines.append("")
    if failed:
        lines.append(f"{failed} problem{'s' if failed > 1 else ''} need{'' if failed > 1 else 's'} fixing"
                     f"{f', {warned} warning' + ('s' if warned > 1 else '') if warned else ''}.")
    else:
        lines.append("Ready" + (f" ({warned} warning{'s' if warned > 1 else ''})." if warned else "."))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------- command


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-config", "--config", default="config/config.toml",
                   help="the service's TOML configuration (a missing file means defaults; RTCD_* variables apply)")
    p.add_argument("--ice-host-override", default=None, help="check this announced address instead")
    p.add_argument("--stun-url", default=None, help="discover the public address with this STUN server")
    p.add_argument("--tls-cert", default=None, help="check this certificate (PEM)")
    p.add_argument("--tls-key", default=None, help="and its key (PEM)")
    p.add_argument("--bind-address", default="0.0.0.0", help="where to test the ports (default all interfaces)")
    p.add_argument("--proc-sys", type=Path, default=Path("/proc/sys"),
                   help="read the sysctls here (e.g. the host's /proc/sys mounted into a container)")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.add_argument("--write-sysctl-file", nargs="?", const=SYSCTL_FILE, default=None, metavar="PATH",
                   help=f"write the sysctl settings to PATH (default {SYSCTL_FILE}); then run `sysctl --system`")


def config_from_args(args: argparse.Namespace) -> tuple[DoctorConfig, str]:
    """DoctorConfig from the service configuration plus the options; raises ValueError."""
    from .config import load_config

    path = Path(args.config)
    cfg = load_config(path)
    source = str(path) if path.exists() else f"defaults ({path} not found)"
    listen = cfg.api.http.listen_address
    port_text = listen.rsplit(":", 1)[-1]
    tls = cfg.api.http.tls
    rtc = cfg.rtc
    tcp_port = rtc.ice_port_tcp if cfg.switchboard.enable_ice_tcp else 0
    return DoctorConfig(
        rtc_udp_port=rtc.ice_port_udp,
        rtc_tcp_port=tcp_port,
        api_port=int(port_text) if port_text.isdigit() else 0,
        bind_address=args.bind_address,
        ice_host_override=rtc.ice_host_override if args.ice_host_override is None else args.ice_host_override,
        stun_url=rtc.stun_url if args.stun_url is None else args.stun_url,
        tls_cert=(tls.cert_file if tls.enable else "") if args.tls_cert is None else args.tls_cert,
        tls_key=(tls.cert_key if tls.enable else "") if args.tls_key is None else args.tls_key,
        recommended=max(RECOMMENDED, cfg.switchboard.socket_buffer_size),
        proc_sys=args.proc_sys,
    ), source


def main(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        cfg, source = config_from_args(args)
    except ValueError as exc:
        print(f"switchboard doctor: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.write_sysctl_file:
        try:
            Path(args.write_sysctl_file).write_text(sysctl_file(cfg.recommended))
        except OSError as exc:
            print(f"switchboard doctor: cannot write {args.write_sysctl_file}: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {args.write_sysctl_file}; apply it with `sysctl --system`", file=out)
    checks = asyncio.run(run_checks(cfg))
    failed = any(c.status == FAIL for c in checks)
    if args.json:
        json.dump({"ok": not failed, "source": source, "checks": [asdict(c) for c in checks],
                   "sysctl_file": sysctl_file(cfg.recommended)}, out, indent=2)
        out.write("\n")
    else:
        out.write(render(checks, cfg, source))
    return 1 if failed else 0
