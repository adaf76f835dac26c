"""``switchboard doctor``: each check against controlled inputs (a fake /proc/sys, sockets we
hold, a fake STUN server on loopback, generated certificates), and the command's report and
exit status."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from switchboard.engine import stun
from switchboard.signaling import doctor
from switchboard.signaling.demo import tls
from switchboard.signaling.doctor import FAIL, OK, WARN, DoctorConfig

MIB16 = 16 * 1024 * 1024


def fake_proc(root: Path, **values: int | str) -> Path:
    for key, value in values.items():
        path = root / "net" / "core" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    return root


# ------------------------------------------------------------------------------ sysctls


def test_low_sysctls_fail_with_the_exact_fix(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, rmem_max=212992, wmem_max=MIB16, optmem_max=20480)
    checks = {c.name: c for c in doctor.check_sysctls(DoctorConfig(proc_sys=proc))}
    assert checks["net.core.rmem_max"].status == FAIL
    assert checks["net.core.rmem_max"].detail == (
        "212992 (208 KiB); the Calls documentation asks for 16777216 (16 MiB)")
    assert checks["net.core.rmem_max"].fix == ("sysctl -w net.core.rmem_max=16777216",)
    assert checks["net.core.wmem_max"].status == OK
    assert checks["net.core.optmem_max"].status == FAIL


def test_unreadable_sysctls_warn(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, rmem_max="not a number", wmem_max="1 2")
    checks = {c.name: c for c in doctor.check_sysctls(DoctorConfig(proc_sys=proc))}
    assert [checks[n].status for n in doctor.SYSCTLS] == [WARN, WARN, WARN]
    assert "cannot read it" in checks["net.core.optmem_max"].detail


def test_real_proc_sys_is_readable() -> None:
    value = doctor.read_sysctl(Path("/proc/sys"), "net.core.rmem_max")
    assert value > 0


# ------------------------------------------------------------------------------ socket buffers


def test_buffers_capped_by_the_sysctls_fail() -> None:
    capped = {"plain_rcv": 212992, "plain_snd": 212992, "forced_rcv": -1, "forced_snd": -1}
    c = doctor.check_buffers(DoctorConfig(), capped)
    assert c.status == FAIL
    assert c.detail == "a media socket gets receive 208 KiB, send 208 KiB (capped by the sysctls); want 16 MiB"


def test_forced_buffers_pass_and_report_the_plain_size() -> None:
    forced = {"plain_rcv": 4 << 20, "plain_snd": 4 << 20, "forced_rcv": MIB16, "forced_snd": MIB16}
    c = doctor.check_buffers(DoctorConfig(), forced)
    assert c.status == OK
    assert "receive 16 MiB, send 16 MiB" in c.detail and "others get receive 4 MiB" in c.detail


def test_measured_buffers_are_what_the_kernel_grants() -> None:
    m = doctor.measure_buffers(MIB16)
    cap = doctor.read_sysctl(Path("/proc/sys"), "net.core.rmem_max")
    assert m["plain_rcv"] == min(cap, MIB16)
    assert m["forced_rcv"] in (-1, MIB16)


# ------------------------------------------------------------------------------ ports


@pytest.fixture
def held_ports() -> Iterator[tuple[int, int]]:
    """A UDP port held the way the media plane holds it (SO_REUSEADDR) and a TCP listener."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.socket()
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    try:
        yield udp.getsockname()[1], tcp.getsockname()[1]
    finally:
        udp.close()
        tcp.close()


def test_ports_in_use_fail(held_ports: tuple[int, int]) -> None:
    udp, tcp = held_ports
    cfg = DoctorConfig(rtc_udp_port=udp, rtc_tcp_port=tcp, api_port=tcp, bind_address="127.0.0.1")
    checks = doctor.check_ports(cfg)
    assert [(c.name, c.status) for c in checks] == [
        (f"UDP {udp}", FAIL), (f"TCP {tcp}", FAIL), (f"TCP {tcp}", FAIL)]
    assert checks[0].detail == f"cannot bind 127.0.0.1:{udp} for the media (rtc.ice_port_udp): in use by another program"
    assert "ss -lnpu" in checks[0].fix[0]


def test_free_ports_pass(held_ports: tuple[int, int]) -> None:
    udp, tcp = held_ports
    # the other protocol on the same numbers is free: UDP and TCP ports are separate
    checks = doctor.check_ports(DoctorConfig(rtc_udp_port=tcp, rtc_tcp_port=udp, api_port=0, bind_address="127.0.0.1"))
    assert [c.status for c in checks] == [OK, OK]
    assert checks[0].detail == "free for the media (rtc.ice_port_udp)"


def test_port_of_a_foreign_address() -> None:
    free, why = doctor.port_free("udp", "192.0.2.77", 8443)
    assert not free and why == "192.0.2.77 is not an address of this host"


# ------------------------------------------------------------------------------ announced address


class FakeStun(asyncio.DatagramProtocol):
    def __init__(self, mapped: str | None) -> None:
        self.mapped = mapped
        self.transport: asyncio.BaseTransport | None = None
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.requests += 1
        if self.mapped is None or self.transport is None:
            return                                              # a blackhole
        req = stun.parse_message(data)
        tid = req.transaction_id
        attrs = [(stun.Attr.XOR_MAPPED_ADDRESS, stun.encode_xor_address(self.mapped, addr[1], tid))]
        reply = stun.StunMessage(stun.Method.BINDING, stun.StunClass.SUCCESS, tid, attrs).encode(fingerprint=True)
        self.transport.sendto(reply, addr)  # type: ignore[attr-defined]


@pytest.fixture
async def stun_server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, FakeStun]]:
    proto = FakeStun(getattr(request, "param", "198.51.100.7"))
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: proto, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        yield f"stun:127.0.0.1:{port}", proto
    finally:
        transport.close()


async def test_stun_discovery(stun_server: tuple[str, FakeStun]) -> None:
    url, proto = stun_server
    c = await doctor.check_address(DoctorConfig(stun_url=url, stun_timeout=3.0))
    assert c.status == OK and proto.requests >= 1
    assert c.detail == f"STUN ({url}) says this host is 198.51.100.7; clients are told 198.51.100.7 port 8443"


@pytest.mark.parametrize("stun_server", [None], indirect=True)
async def test_stun_without_answer_fails(stun_server: tuple[str, FakeStun]) -> None:
    url, _ = stun_server
    c = await doctor.check_address(DoctorConfig(stun_url=url, stun_timeout=1.0, local_ips=("10.1.2.3",)))
    assert c.status == FAIL
    assert c.detail.startswith(f"no answer from the STUN server {url} within 1 s")
    assert "falls back to 10.1.2.3" in c.detail.replace("fall back", "falls back")


@pytest.mark.parametrize(("override", "status", "text"), [
    ("93.184.216.34", OK, "clients are told 93.184.216.34 port 8443 (public)"),
    ("10.0.0.5", WARN, "clients are told 10.0.0.5 port 8443 (not public)"),
    ("93.184.216.34/10.0.0.5", OK, "maps local addresses: 93.184.216.34 for 10.0.0.5"),
    ("localhost", WARN, "(not public)"),
    ("300.1.1.1,1.1.1.1", FAIL, "rtc.ice_host_override is invalid"),
])
async def test_host_override(override: str, status: str, text: str) -> None:
    c = await doctor.check_address(DoctorConfig(ice_host_override=override))
    assert c.status == status and text in c.detail, c


async def test_unresolvable_override_fails() -> None:
    c = await doctor.check_address(DoctorConfig(ice_host_override="nowhere.invalid", stun_timeout=2.0))
    assert c.status == FAIL and c.detail.startswith("rtc.ice_host_override 'nowhere.invalid' does not resolve")


@pytest.mark.parametrize(("ips", "status"), [
    (("127.0.0.1",), FAIL), (("127.0.0.1", "192.168.1.20"), WARN), (("192.168.1.20", "93.184.216.34"), OK)])
async def test_interface_addresses(ips: tuple[str, ...], status: str) -> None:
    c = await doctor.check_address(DoctorConfig(local_ips=ips))
    assert c.status == status, c


# ------------------------------------------------------------------------------ TLS


def _cert(tmp: Path, name: str, *, now: datetime.datetime | None = None) -> tls.CertFiles:
    return tls.ensure_self_signed(tmp / name, ["localhost"], ["127.0.0.1"], now=now)


def test_tls_ok_and_missing(tmp_path: Path) -> None:
    files = _cert(tmp_path, "a")
    c = doctor.check_tls(DoctorConfig(tls_cert=str(files.cert), tls_key=str(files.key)))
    assert c.status == OK and c.detail.startswith("certificate O=switchboard (self-signed),CN=switchboard demo") and "key matches" in c.detail
    assert doctor.check_tls(DoctorConfig()).status == WARN
    half = doctor.check_tls(DoctorConfig(tls_cert=str(files.cert)))
    assert half.status == FAIL and half.detail == "TLS needs both a certificate (cert_file) and a key (cert_key)"


def test_tls_mismatched_key(tmp_path: Path) -> None:
    a, b = _cert(tmp_path, "a"), _cert(tmp_path, "b")
    c = doctor.check_tls(DoctorConfig(tls_cert=str(a.cert), tls_key=str(b.key)))
    assert c.status == FAIL and c.detail.startswith("the key does not match the certificate")


def test_tls_expired(tmp_path: Path) -> None:
    files = _cert(tmp_path, "old", now=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=400))
    c = doctor.check_tls(DoctorConfig(tls_cert=str(files.cert), tls_key=str(files.key)))
    assert c.status == FAIL and "expired on" in c.detail and c.fix == ("renew the certificate",)


def test_tls_expiring_soon_warns(tmp_path: Path) -> None:
    files = _cert(tmp_path, "a")
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=360)
    c = doctor.check_tls(DoctorConfig(tls_cert=str(files.cert), tls_key=str(files.key)), now=later)
    assert c.status == WARN and "expires in" in c.detail


def test_tls_unreadable_files(tmp_path: Path) -> None:
    files = _cert(tmp_path, "a")
    c = doctor.check_tls(DoctorConfig(tls_cert=str(tmp_path / "nope.pem"), tls_key=str(files.key)))
    assert c.status == FAIL and c.detail.startswith("cannot read the certificate")
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n")
    c = doctor.check_tls(DoctorConfig(tls_cert=str(junk), tls_key=str(files.key)))
    assert c.status == FAIL and "is not a PEM certificate" in c.detail
    c = doctor.check_tls(DoctorConfig(tls_cert=str(files.cert), tls_key=str(tmp_path / "nokey.pem")))
    assert c.status == FAIL and c.detail.startswith("cannot read the key")


# ------------------------------------------------------------------------------ the command


def _free_port(kind: int) -> int:
    for port in range(21000, 31000, 7):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise AssertionError("no free port")


def _args(tmp_path: Path, *extra: str) -> argparse.Namespace:
    udp, tcp = _free_port(socket.SOCK_DGRAM), _free_port(socket.SOCK_STREAM)
    config = tmp_path / "config.toml"
    config.write_text(f'[api.http]\nlisten_address = "127.0.0.1:{tcp}"\n'
                      f"[rtc]\nice_port_udp = {udp}\nice_port_tcp = {udp}\n")
    p = argparse.ArgumentParser()
    doctor.add_arguments(p)
    return p.parse_args(["--config", str(config), "--bind-address", "127.0.0.1",
                         "--ice-host-override", "203.0.113.9", *extra])


def test_command_reports_the_fix_and_fails(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path / "proc", rmem_max=212992, wmem_max=212992, optmem_max=20480)
    out = io.StringIO()
    rc = doctor.main(_args(tmp_path, "--proc-sys", str(proc)), out)
    text = out.getvalue()
    assert rc == 1
    assert "[FAIL] net.core.rmem_max: 212992 (208 KiB)" in text
    for name in doctor.SYSCTLS:
        assert f"  sysctl -w {name}=16777216" in text
        assert f"  {name} = 16777216" in text
    assert "/etc/sysctl.d/99-switchboard.conf" in text
    assert "[WARN] announced address: rtc.ice_host_override: clients are told 203.0.113.9" in text
    assert text.rstrip().endswith("fixing, 2 warnings.")


def test_command_json_and_exit_status_agree(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path / "proc", rmem_max=MIB16, wmem_max=MIB16, optmem_max=MIB16)
    out = io.StringIO()
    rc = doctor.main(_args(tmp_path, "--proc-sys", str(proc), "--json"), out)
    report = json.loads(out.getvalue())
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["net.core.rmem_max"] == statuses["net.core.optmem_max"] == OK
    assert [n for n in statuses if n.startswith(("UDP", "TCP"))] and all(
        statuses[n] == OK for n in statuses if n.startswith(("UDP", "TCP")))
    assert rc == (1 if FAIL in statuses.values() else 0)
    assert report["ok"] is (rc == 0)


def test_command_fails_when_a_port_is_taken(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path / "proc", rmem_max=MIB16, wmem_max=MIB16, optmem_max=MIB16)
    args = _args(tmp_path, "--proc-sys", str(proc), "--json")
    port = int(Path(args.config).read_text().split("127.0.0.1:")[1].split('"')[0])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        out = io.StringIO()
        assert doctor.main(args, out) == 1
    report = json.loads(out.getvalue())
    assert {c["name"]: c["status"] for c in report["checks"]}[f"TCP {port}"] == FAIL


def test_write_sysctl_file(tmp_path: Path) -> None:
    target = tmp_path / "99-switchboard.conf"
    out = io.StringIO()
    doctor.main(_args(tmp_path, "--write-sysctl-file", str(target), "--proc-sys", str(tmp_path)), out)
    lines = [ln for ln in target.read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines == ["net.core.rmem_max = 16777216", "net.core.wmem_max = 16777216",
                     "net.core.optmem_max = 16777216"]
    assert out.getvalue().startswith(f"wrote {target}; apply it with `sysctl --system`")


def test_bad_configuration_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[rtc]\nice_port_udp = 5\n")
    p = argparse.ArgumentParser()
    doctor.add_arguments(p)
    assert doctor.main(p.parse_args(["--config", str(bad)]), io.StringIO()) == 2
    assert "configuration error" in capsys.readouterr().err


def test_cli_has_doctor_and_demo() -> None:
    from switchboard.signaling import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["doctor", "--help"])
    assert exc.value.code == 0
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--help"])
    assert exc.value.code == 0


# ------------------------------------------------------------------------------ the demo's --tls certificate


def test_demo_certificate_is_reused_while_it_fits(tmp_path: Path) -> None:
    from cryptography import x509

    first = tls.ensure_self_signed(tmp_path, ["localhost", "box"], ["127.0.0.1", "10.0.0.5"])
    assert first.created and (first.key.stat().st_mode & 0o777) == 0o600
    cert = x509.load_pem_x509_certificate(first.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "box"}
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "10.0.0.5"}
    again = tls.ensure_self_signed(tmp_path, ["localhost"], ["10.0.0.5"])
    assert not again.created and again.fingerprint == first.fingerprint       # browsers keep their exception
    moved = tls.ensure_self_signed(tmp_path, ["localhost"], ["10.0.0.6"])     # a new LAN address
    assert moved.created and moved.fingerprint != first.fingerprint
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=362)
    renewed = tls.ensure_self_signed(tmp_path, ["localhost"], ["10.0.0.6"], now=later)
    assert renewed.created                                                    # within a week of expiry
    first.cert.write_text("garbage")
    assert tls.ensure_self_signed(tmp_path, ["localhost"], []).created
