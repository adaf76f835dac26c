"""A throwaway coturn (``turnserver``) on 127.0.0.1 for interop tests.

- TURN: RFC 8656 (https://www.rfc-editor.org/rfc/rfc8656), over UDP and TCP;
- the TURN REST credential scheme coturn implements with ``use-auth-secret``:
  https://datatracker.ietf.org/doc/html/draft-uberti-behave-turn-rest-00 ;
- coturn's options: https://github.com/coturn/coturn/blob/master/examples/etc/turnserver.conf

Why a real coturn: clients behind restrictive NATs reach an SFU only through a
TURN relay, so our ICE-lite server then sees the *relay's* address, not the
client's. coturn is what Mattermost deployments run, and it is independent of
both our code and aiortc's TURN client.

coturn refuses loopback peers by default, opens a CLI, TLS/DTLS listeners and
a system-wide log and pid file. The config written here turns all of that off
so the process lives entirely in a temp dir on 127.0.0.1 with free ports.

The binary comes from Debian's ``coturn`` package, installed by
``scripts/bootstrap test``. Its absence is an error (:class:`CoturnError`), not
a reason to skip.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "Coturn",
    "CoturnConfig",
    "CoturnError",
    "rest_credentials",
    "turnserver_binary",
]

HOST = "127.0.0.1"
MAGIC_COOKIE = 0x2112A442


class CoturnError(RuntimeError):
    """coturn is missing, failed to start or did not become ready."""


def rest_credentials(
    secret: str, user_id: str, ttl: float, *, now: float | None = None
) -> tuple[str, str]:
    """TURN REST API credentials: ``("<expiry>:<user_id>", base64(HMAC-SHA1(secret, username)))``.

    ``expiry`` is a Unix time in whole seconds, ``ttl`` seconds from ``now``
    (wall clock, default ``time.time()``): coturn compares it with its own
    clock, so this is the one place a non-monotonic time is right. A negative
    ``ttl`` produces already-expired credentials.
    """
    if ":" in user_id:
        raise ValueError(f"user id {user_id!r} must not contain ':' (the REST username separator)")
    expiry = int((time.time() if now is None else now) + ttl)
    username = f"{expiry}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def turnserver_binary() -> str:
    """Path of coturn's ``turnserver``; :class:`CoturnError` if it is not installed."""
    path = shutil.which("turnserver") or next(
        (p for p in ("/usr/bin/turnserver", "/usr/sbin/turnserver") if os.access(p, os.X_OK)), None
    )
    if path is None:
        raise CoturnError(
            "coturn's turnserver binary was not found on PATH: install the Debian package "
            "'coturn' (scripts/bootstrap test does it; or apt-get install -y coturn)"
        )
    return path


@dataclass(frozen=True)
class CoturnConfig:
    """How to run the throwaway coturn."""

    realm: str = "switchboard.test"
    """The long-term credential realm (RFC 8489 section 9.2) coturn announces."""
    static_auth_secret: str | None = None
    """Enables ``use-auth-secret`` (TURN REST credentials) with this shared secret."""
    users: tuple[tuple[str, str], ...] = ()
    """Static long-term ``(username, password)`` pairs; used when no secret is set."""
    relay_ports: int = 64
    """Size of the relay port range (``min-port``..``max-port``), placed at random."""
    start_timeout: float = 5.0
    """Seconds to wait for coturn to answer a STUN Binding on UDP and accept on TCP."""
    verbose: bool = True
    """coturn ``verbose``: one log line per allocation, permission and channel."""

    def __post_init__(self) -> None:
        if self.static_auth_secret is None and not self.users:
            raise ValueError("coturn needs a static_auth_secret or at least one static user")
        if self.static_auth_secret is not None and self.users:
            raise ValueError("use either static_auth_secret or static users, not both")
        for name, _ in self.users:
            if ":" in name:
                raise ValueError(f"static TURN username {name!r} must not contain ':'")
        if not 2 <= self.relay_ports <= 10000:
            raise ValueError(f"relay_ports must be in 2..10000, got {self.relay_ports}")


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (racy, like every such probe)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((HOST, 0))
            port = int(u.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((HOST, port))
                except OSError:
                    continue
                return port
    raise CoturnError("no port free for both UDP and TCP on 127.0.0.1")


def _relay_range(size: int) -> tuple[int, int]:
    """A random relay port range below Linux's default ephemeral range."""
    base = 20000 + int.from_bytes(os.urandom(2), "big") % (32000 - 20000 - size)
    return base, base + size - 1


def _stun_binding_ok(port: int, timeout: float) -> bool:
    """One RFC 8489 Binding request over UDP; True if a matching success response came back."""
    txid = os.urandom(12)
    request = (
        (0x0001).to_bytes(2, "big")
        + (0).to_bytes(2, "big")
        + MAGIC_COOKIE.to_bytes(4, "big")
        + txid
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(request, (HOST, port))
            data = s.recv(2048)
        except OSError:  # timeout, or ICMP port unreachable before coturn binds
            return False
    return len(data) >= 20 and data[0:2] == b"\x01\x01" and data[8:20] == txid


def _tcp_accepts(port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


class Coturn:
    """One coturn process on 127.0.0.1. Use :meth:`start`/:meth:`stop` or ``with``.

    After :meth:`start`: ``port`` is the TURN listener (UDP and TCP), relays are
    allocated on 127.0.0.1 in ``relay_min..relay_max``, ``log_path`` is coturn's
    log and ``workdir`` holds it, the config and the pid file.
    """

    def __init__(self, config: CoturnConfig) -> None:
        self.config = config
        self.port = 0
        self.relay_min = 0
        self.relay_max = 0
        self.workdir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        #: Exit status of the last process, once :meth:`stop` has reaped it.
        self.returncode: int | None = None
        #: :meth:`log_text` as it was when :meth:`stop` removed the temp dir.
        self.final_log = ""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def log_path(self) -> Path:
        if self.workdir is None:
            raise CoturnError("coturn has not been started")
        return self.workdir / "turn.log"

    def url(self, transport: str = "udp") -> str:
        """The ``turn:`` URI (RFC 7065) for ``RTCIceServer.urls``."""
        if transport not in ("udp", "tcp"):
            raise ValueError(f"transport must be 'udp' or 'tcp', got {transport!r}")
        return f"turn:{HOST}:{self.port}?transport={transport}"

    def credentials(self, user_id: str = "client", ttl: float = 600.0) -> tuple[str, str]:
        """REST credentials with a secret, else the first static user."""
        if self.config.static_auth_secret is not None:
            return rest_credentials(self.config.static_auth_secret, user_id, ttl)
        return self.config.users[0]

    def log_text(self) -> str:
        """coturn's log file plus whatever it wrote to stdout/stderr."""
        if self.workdir is None:
            return ""
        parts = []
        for name in ("turn.log", "stdout.txt"):
            p = self.workdir / name
            if p.exists():
                parts.append(p.read_text(errors="replace"))
        return "\n".join(parts)

    def _config_text(self) -> str:
        assert self.workdir is not None
        c = self.config
        lines = [
            f"listening-ip={HOST}",
            f"listening-port={self.port}",
            f"relay-ip={HOST}",
            f"min-port={self.relay_min}",
            f"max-port={self.relay_max}",
            # coturn refuses peers on 127.0.0.0/8 unless told otherwise;
            # our RTC server is such a peer. no-multicast-peers covers only
            # 224.0.0.0/4 and up (and ff00::/8), so it must not get in the way.
            "allow-loopback-peers",
            "no-multicast-peers",
            "no-tls",
            "no-dtls",
            "no-cli",
            "no-rfc5780",  # else an alternate listener on port+1
            "no-stun-backward-compatibility",
            "no-software-attribute",
            "no-tcp-relay",  # relays are UDP towards the peer (us); TCP is client-side only
            "fingerprint",
            f"realm={c.realm}",
            "relay-threads=1",
            f"userdb={self.workdir / 'turndb'}",
            f"pidfile={self.workdir / 'turnserver.pid'}",
            f"log-file={self.workdir / 'turn.log'}",
            "simple-log",
        ]
        if c.verbose:
            lines.append("verbose")
        if c.static_auth_secret is not None:
            lines += ["use-auth-secret", f"static-auth-secret={c.static_auth_secret}"]
        else:
            lines.append("lt-cred-mech")
        for name, password in c.users:
            lines.append(f"user={name}:{password}")
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Write the config, run ``turnserver -c`` and wait until it answers on UDP and TCP."""
        if self.proc is not None:
            raise CoturnError("coturn already started")
        binary = turnserver_binary()
        self._tmp = tempfile.TemporaryDirectory(prefix="coturn-")
        self.workdir = Path(self._tmp.name)
        self.port = _free_port()
        self.relay_min, self.relay_max = _relay_range(self.config.relay_ports)
        conf = self.workdir / "turnserver.conf"
        conf.write_text(self._config_text())
        with open(self.workdir / "stdout.txt", "wb") as out:
            self.proc = subprocess.Popen(
                [binary, "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.config.start_timeout
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise CoturnError(
                    f"turnserver exited with code {self.returncode} while starting:\n"
                    f"{self.final_log[-3000:]}"
                )
            if _stun_binding_ok(self.port, 0.1) and _tcp_accepts(self.port, 0.2):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise CoturnError(
                    f"turnserver did not answer on {HOST}:{self.port} within "
                    f"{self.config.start_timeout:.1f} s:\n{self.final_log[-3000:]}"
                )

    def stop(self) -> None:
        """Terminate coturn (SIGTERM, then SIGKILL after 3 s) and remove the temp dir."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(3.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(3.0)
            self.returncode = proc.returncode
        if self._tmp is not None:
            self.final_log = self.log_text()
            self._tmp.cleanup()
            self._tmp = None
            self.workdir = None
