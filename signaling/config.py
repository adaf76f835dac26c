"""Service configuration: rtcd's sections, keys, defaults, ``RTCD_*`` overrides and checks.

Sources (names, defaults and ranges only):
- rtcd ``config/config.sample.toml``, ``service/config.go`` (``SetDefaults``, ``IsValid``),
  ``service/api/config.go``, ``service/rtc/config.go``, ``service/rtc/turn.go``,
  ``service/auth/session_cache.go``, ``logger/config.go``, ``docs/env_config.md``,
  ``cmd/rtcd/config.go``: https://github.com/mattermost/rtcd
- kelseyhightower/envconfig (how rtcd names its environment variables):
  https://github.com/kelseyhightower/envconfig
- TURN REST API credentials (what coturn's ``use-auth-secret`` checks):
  https://datatracker.ietf.org/doc/html/draft-uberti-behave-turn-rest-00

Why: operators move between rtcd and this service with the same ``config.toml``, the same Helm
values and the same ``RTCD_*`` variables, so all three must mean exactly what they mean to rtcd.
rtcd loads its config in three steps (``cmd/rtcd/config.go``): defaults, then the TOML file (a
missing file means defaults), then envconfig. envconfig names a variable ``RTCD_`` plus the *Go*
struct field path, upper-cased and joined by ``_`` (TOML tags are ignored), which is why
``[rtc] turn.static_auth_secret`` is ``RTCD_RTC_TURNCONFIG_STATICAUTHSECRET``. Each field here
records its TOML key and its Go field name (``metadata={"toml": ..., "go": ...}``); the variable
name is derived from the Go path, never written by hand. Values are then checked with rtcd's
``IsValid`` rules, and every message names the TOML key and the variable.

Our own knobs live in a ``[switchboard]`` section (rtcd ignores unknown sections, so one file
serves both) and follow the same naming rule (``RTCD_SWITCHBOARD_*``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import re
import ssl
import time
import tomllib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

__all__ = [
    "ENV_PREFIX",
    "KEYS",
    "LOG_LEVELS",
    "MAX_TURN_CREDENTIALS_EXPIRATION_MINUTES",
    "ApiConfig",
    "Config",
    "ConfigError",
    "ConfigKey",
    "HttpConfig",
    "IceServer",
    "LoggerConfig",
    "RtcConfigSection",
    "SecurityConfig",
    "SessionCacheConfig",
    "StoreConfig",
    "SwitchboardConfig",
    "TlsConfig",
    "TurnConfig",
    "key_for",
    "load_config",
    "parse_config",
    "python_log_level",
    "to_env",
    "to_toml",
    "turn_credentials",
    "validate",
]

log = logging.getLogger("sfu.config")

#: envconfig prefix rtcd passes (``envconfig.Process("rtcd", &cfg)``).
ENV_PREFIX = "RTCD"
#: rtcd ``MaxTURNCredentialsExpiration``: one week, in minutes (exclusive upper bound).
MAX_TURN_CREDENTIALS_EXPIRATION_MINUTES = 7 * 24 * 60
#: mlog's standard level names (``mlog.StdAll``); rtcd compares them case-insensitively.
LOG_LEVELS = ("panic", "fatal", "error", "warn", "info", "debug", "trace", "stdlog")
#: Other ``RTCD_*`` variables rtcd reads outside envconfig; not warned about as unknown.
_OTHER_RTCD_ENV = frozenset({"RTCD_RTC_DTLS_INSECURE_SKIP_HELLOVERIFY"})

_PORT_MIN, _PORT_MAX = 80, 49151  # rtcd's range for ice_port_* and ice_host_port_override
_NACK_MIN, _NACK_MAX = 32, 8192
_SOCKET_BUFFER_MIN, _SOCKET_BUFFER_MAX = 64 << 10, 512 << 20
_COALESCE_MAX_US = 5000  # MediaConfig.coalesce_us's range
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _md(toml: str, go: str, kind: str = "") -> dict[str, str]:
    """Field metadata: the TOML key, the Go field name and, if not implied by the type, a kind."""
    return {"toml": toml, "go": go, "kind": kind} if kind else {"toml": toml, "go": go}


def _default_udp_sockets_count() -> int:
    """rtcd ``GetDefaultUDPListeningSocketsCount``: ``runtime.NumCPU() * 100``.

    Go's NumCPU counts the CPUs this process may run on (its affinity mask), so we do too.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(cpus, 1) * 100


# -------------------------------------------------------------------------------------- [api]


@dataclass(frozen=True)
class TlsConfig:
    """``[api] http.tls.*`` (rtcd ``api.TLSConfig``)."""

    enable: bool = field(default=False, metadata=_md("enable", "Enable"))
    """Serve the HTTP/WebSocket API over TLS."""
    cert_file: str = field(default="", metadata=_md("cert_file", "CertFile"))
    """PEM certificate (chain) file; required and loaded at startup when TLS is enabled."""
    cert_key: str = field(default="", metadata=_md("cert_key", "CertKey"))
    """PEM private key file matching ``cert_file`` (unencrypted, like Go's LoadX509KeyPair)."""


@dataclass(frozen=True)
class HttpConfig:
    """``[api] http.*`` (rtcd ``api.Config``)."""

    listen_address: str = field(default=":8045", metadata=_md("listen_address", "ListenAddress"))
    """``host:port`` the API listens on; an empty host means every interface."""
    tls: TlsConfig = field(default_factory=TlsConfig, metadata=_md("tls", "TLS"))
    """TLS for the API."""


@dataclass(frozen=True)
class SessionCacheConfig:
    """``[api] security.session_cache.*`` (rtcd ``auth.SessionCacheConfig``)."""

    expiration_minutes: int = field(
        default=1440, metadata=_md("expiration_minutes", "ExpirationMinutes"))
    """Lifetime of a bearer token from ``/login``, in minutes (must be positive)."""


@dataclass(frozen=True)
class SecurityConfig:
    """``[api] security.*`` (rtcd ``service.SecurityConfig``)."""

    enable_admin: bool = field(default=False, metadata=_md("enable_admin", "EnableAdmin"))
    """Accept Basic auth with any user name and ``admin_secret_key`` as an admin login."""
    admin_secret_key: str = field(default="", metadata=_md("admin_secret_key", "AdminSecretKey"))
    """The admin password; required when ``enable_admin`` is true."""
    allow_self_registration: bool = field(
        default=False, metadata=_md("allow_self_registration", "AllowSelfRegistration"))
    """Let any caller ``POST /register`` without credentials (private networks only)."""
    session_cache: SessionCacheConfig = field(
        default_factory=SessionCacheConfig, metadata=_md("session_cache", "SessionCache"))
    """Bearer token cache."""


@dataclass(frozen=True)
class ApiConfig:
    """``[api]``: the host-facing HTTP/WebSocket API (rtcd ``service.APIConfig``)."""

    http: HttpConfig = field(default_factory=HttpConfig, metadata=_md("http", "HTTP"))
    """Listener and TLS."""
    security: SecurityConfig = field(
        default_factory=SecurityConfig, metadata=_md("security", "Security"))
    """Client registration, admin access and bearer tokens."""


# -------------------------------------------------------------------------------------- [rtc]


@dataclass(frozen=True)
class IceServer:
    """One ``ice_servers`` entry (rtcd ``rtc.ICEServerConfig``)."""

    urls: tuple[str, ...] = ()
    """``stun:``/``stuns:`` or ``turn:``/``turns:`` URLs; one entry may not mix the two kinds."""
    username: str = ""
    """Static TURN user name; empty means "generate from turn.static_auth_secret"."""
    credential: str = ""
    """Static TURN password."""

    @property
    def is_stun(self) -> bool:
        """Every URL is a STUN URL (rtcd ``IsSTUN``)."""
        return bool(self.urls) and all(u.startswith(("stun:", "stuns:")) for u in self.urls)

    @property
    def is_turn(self) -> bool:
        """Every URL is a TURN URL (rtcd ``IsTURN``)."""
        return bool(self.urls) and all(u.startswith(("turn:", "turns:")) for u in self.urls)


@dataclass(frozen=True)
class TurnConfig:
    """``[rtc] turn.*`` (rtcd ``rtc.TURNConfig``; the Go field is ``TURNConfig``)."""

    static_auth_secret: str = field(
        default="", metadata=_md("static_auth_secret", "StaticAuthSecret"))
    """Shared secret for TURN REST credentials (coturn ``static-auth-secret``); empty = off."""
    credentials_expiration_minutes: int = field(
        default=1440,
        metadata=_md("credentials_expiration_minutes", "CredentialsExpirationMinutes"))
    """Lifetime of generated TURN credentials, in minutes (1 to 10079 when a secret is set)."""


@dataclass(frozen=True)
class RtcConfigSection:
    """``[rtc]``: media transport (rtcd ``rtc.ServerConfig``).

    Named so it does not clash with :class:`switchboard.signaling.rtc.RtcConfig`.
    """

    ice_address_udp: str = field(default="", metadata=_md("ice_address_udp", "ICEAddressUDP"))
    """Comma-separated local IPs for UDP media; empty means every interface."""
    ice_port_udp: int = field(default=8443, metadata=_md("ice_port_udp", "ICEPortUDP"))
    """The one UDP port all sessions share (80-49151)."""
    ice_address_tcp: str = field(default="", metadata=_md("ice_address_tcp", "ICEAddressTCP"))
    """Comma-separated local IPs for ICE-TCP; empty means every interface."""
    ice_port_tcp: int = field(default=8443, metadata=_md("ice_port_tcp", "ICEPortTCP"))
    """The ICE-TCP port (80-49151)."""
    ice_host_override: str = field(default="", metadata=_md("ice_host_override", "ICEHostOverride"))
    """Address advertised in candidates: an IP, a hostname, or ``"EXT/INT,EXT/INT"`` pairs."""
    ice_host_port_override: str = field(
        default="", metadata=_md("ice_host_port_override", "ICEHostPortOverride", "port_override"))
    """Port advertised instead of the listen port: ``"30443"`` or ``"localIP/port,..."``;
    empty = unset. TOML accepts an integer or a string (rtcd's type is a string)."""
    ice_servers: tuple[IceServer, ...] = field(
        default=(), metadata=_md("ice_servers", "ICEServers", "ice_servers"))
    """STUN/TURN servers. The first STUN URL is used at startup to learn the public address."""
    turn: TurnConfig = field(default_factory=TurnConfig, metadata=_md("turn", "TURNConfig"))
    """Generated TURN credentials."""
    enable_ipv6: bool = field(default=False, metadata=_md("enable_ipv6", "EnableIPv6"))
    """Dual stack: also listen on and advertise global-unicast IPv6 addresses."""
    udp_sockets_count: int = field(
        default_factory=_default_udp_sockets_count,
        metadata=_md("udp_sockets_count", "UDPSocketsCount"))
    """SO_REUSEPORT sockets per local address (rtcd default: 100 per usable CPU; > 0)."""
    nack_buffer_size: int = field(
        default=256, metadata=_md("nack_buffer_size", "NACKBufferSize", "uint16"))
    """Packets kept per SSRC for retransmission: 0 (default) or a power of 2 in 32-8192."""
    nack_disable_copy: bool = field(
        default=True, metadata=_md("nack_disable_copy", "NACKDisableCopy"))
    """rtcd: keep pointers instead of copies in the NACK ring (a pion detail; we always copy
    into our own ring, so this is accepted for compatibility and otherwise ignored)."""

    @property
    def stun_url(self) -> str:
        """The first URL of the first all-STUN entry, or "" (rtcd ``getSTUN``)."""
        for server in self.ice_servers:
            if server.is_stun:
                return server.urls[0]
        return ""

    @property
    def port_override(self) -> int | str | None:
        """``ice_host_port_override`` as the engine takes it: None, one port, or the map text."""
        if not self.ice_host_port_override:
            return None
        single = _go_atoi(self.ice_host_port_override)
        return single if single else self.ice_host_port_override

    def candidate_config(self) -> Any:
        """The engine's :class:`~switchboard.engine.candidates.CandidateConfig` for this section.

        Raises ``CandidateConfigError`` (a ValueError) on values the engine rejects.
        """
        from switchboard.engine.candidates import CandidateConfig

        return CandidateConfig(
            ice_address_udp=self.ice_address_udp,
            ice_port_udp=self.ice_port_udp,
            ice_address_tcp=self.ice_address_tcp,
            ice_port_tcp=self.ice_port_tcp,
            ice_host_override=self.ice_host_override,
            ice_host_port_override=self.port_override,
            enable_ipv6=self.enable_ipv6,
            stun_url=self.stun_url,
        )


# ---------------------------------------------------------------------- [store], [logger]


@dataclass(frozen=True)
class StoreConfig:
    """``[store]`` (rtcd ``service.StoreConfig``)."""

    data_source: str = field(default="/tmp/rtcd_db", metadata=_md("data_source", "DataSource"))
    """Directory for persistent data; we keep client credentials in ``switchboard.db`` there."""


@dataclass(frozen=True)
class LoggerConfig:
    """``[logger]`` (rtcd ``logger.Config``)."""

    enable_console: bool = field(default=True, metadata=_md("enable_console", "EnableConsole"))
    """Log to the console (stderr)."""
    console_json: bool = field(default=False, metadata=_md("console_json", "ConsoleJSON"))
    """One JSON object per console line."""
    console_level: str = field(default="INFO", metadata=_md("console_level", "ConsoleLevel"))
    """Console threshold: panic, fatal, error, warn, info, debug, trace (any case)."""
    enable_file: bool = field(default=True, metadata=_md("enable_file", "EnableFile"))
    """Also log to ``file_location`` (containers usually turn this off)."""
    file_json: bool = field(default=True, metadata=_md("file_json", "FileJSON"))
    """One JSON object per file line."""
    file_level: str = field(default="DEBUG", metadata=_md("file_level", "FileLevel"))
    """File threshold, same names as ``console_level``."""
    file_location: str = field(default="rtcd.log", metadata=_md("file_location", "FileLocation"))
    """Log file path (relative to the working directory)."""
    enable_color: bool = field(default=False, metadata=_md("enable_color", "EnableColor"))
    """Colour console output (rtcd's code default is false; its sample file says true)."""


# ------------------------------------------------------------------------------ [switchboard]


@dataclass(frozen=True)
class SwitchboardConfig:
    """``[switchboard]``: our own settings; rtcd has no such section and ignores it."""

    drain_grace_period: float = field(
        default=18000.0, metadata=_md("drain_grace_period", "DrainGracePeriod"))
    """Seconds running calls may continue after SIGTERM before we close them (the Helm
    chart's ``terminationGracePeriod``, 5 h); 0 closes them at once."""
    max_call_participants: int = field(
        default=0, metadata=_md("max_call_participants", "MaxCallParticipants"))
    """Most sessions in one call; 0 means unlimited (the plugin's "Max call participants")."""
    socket_buffer_size: int = field(
        default=16 << 20, metadata=_md("socket_buffer_size", "SocketBufferSize"))
    """SO_RCVBUF/SO_SNDBUF requested for media sockets, in bytes (64 KiB-512 MiB); the kernel
    caps it at net.core.rmem_max/wmem_max, which the Calls docs raise to 16 MiB."""
    enable_ice_tcp: bool = field(default=True, metadata=_md("enable_ice_tcp", "EnableICETCP"))
    """Offer passive ICE-TCP candidates on ``rtc.ice_port_tcp`` (rtcd always does)."""
    coalesce_us: int = field(default=0, metadata=_md("coalesce_us", "CoalesceUs"))
    """Receive coalescing (interrupt moderation) of the media sockets, in microseconds
    (0-5000): when a read finds only a few packets, wait this long once for more, so fewer
    wake-ups and bigger send batches cost less CPU, at up to this much added delay. 0 = off."""
    gc_tuning: bool = field(default=True, metadata=_md("gc_tuning", "GCTuning"))
    """After startup, move everything allocated so far out of the garbage collector's reach
    (``gc.freeze``) and collect less often (thresholds `GC_THRESHOLDS`), so collections do not
    stall media forwarding for tens of milliseconds with many sessions. Costs a few MB more
    memory between collections; false keeps Python's defaults."""


@dataclass(frozen=True)
class Config:
    """The whole configuration: rtcd's four sections plus ours."""

    api: ApiConfig = field(default_factory=ApiConfig, metadata=_md("api", "API"))
    """``[api]``."""
    rtc: RtcConfigSection = field(default_factory=RtcConfigSection, metadata=_md("rtc", "RTC"))
    """``[rtc]``."""
    store: StoreConfig = field(default_factory=StoreConfig, metadata=_md("store", "Store"))
    """``[store]``."""
    logger: LoggerConfig = field(default_factory=LoggerConfig, metadata=_md("logger", "Logger"))
    """``[logger]``."""
    switchboard: SwitchboardConfig = field(
        default_factory=SwitchboardConfig, metadata=_md("switchboard", "Switchboard"))
    """``[switchboard]`` (ours)."""


# ------------------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class ConfigKey:
    """One leaf setting: where it lives in TOML, in Go (hence its env name) and in Python."""

    toml_path: tuple[str, ...]
    go_path: tuple[str, ...]
    attr_path: tuple[str, ...]
    kind: str
    """bool, int, uint16, float, str, port_override or ice_servers."""

    @property
    def toml_key(self) -> str:
        """Dotted TOML key, e.g. ``rtc.turn.static_auth_secret``."""
        return ".".join(self.toml_path)

    @property
    def env(self) -> str:
        """envconfig's name: ``RTCD_`` + the Go field path upper-cased and joined by ``_``."""
        return "_".join((ENV_PREFIX, *(part.upper() for part in self.go_path)))


_KIND_BY_TYPE: dict[Any, str] = {bool: "bool", int: "int", float: "float", str: "str"}


def _walk(cls: type, toml: tuple[str, ...] = (), go: tuple[str, ...] = (),
          attrs: tuple[str, ...] = ()) -> Iterator[ConfigKey]:
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        kind = f.metadata.get("kind", "")
        hint = hints[f.name]
        path = (toml + (f.metadata["toml"],), go + (f.metadata["go"],), attrs + (f.name,))
        if isinstance(hint, type) and is_dataclass(hint):
            yield from _walk(hint, *path)
        else:
            yield ConfigKey(*path, kind=kind or _KIND_BY_TYPE[hint])


#: Every leaf setting, in declaration order.
KEYS: tuple[ConfigKey, ...] = tuple(_walk(Config))
_BY_TOML = {k.toml_key: k for k in KEYS}
_BY_ATTRS = {k.attr_path: k for k in KEYS}


def key_for(toml_key: str) -> ConfigKey:
    """The :class:`ConfigKey` of a dotted TOML key (``KeyError`` if there is none)."""
    return _BY_TOML[toml_key]


# ----------------------------------------------------------------------------------- errors


class ConfigError(ValueError):
    """The configuration cannot be used. ``key``/``env`` name the setting when there is one;
    ``problems`` holds every individual error when several were found at once."""

    def __init__(self, message: str, *, key: str | None = None, env: str | None = None,
                 problems: tuple[ConfigError, ...] = ()) -> None:
        super().__init__(message)
        self.key = key
        self.env = env
        self.problems = problems or (self,)


def _problem(toml_key: str, detail: str) -> ConfigError:
    env = _BY_TOML[toml_key].env
    return ConfigError(f"invalid {toml_key} ({env}): {detail}", key=toml_key, env=env)


def _raise_all(problems: list[ConfigError]) -> None:
    if len(problems) == 1:
        raise problems[0]
    if problems:
        lines = "\n  ".join(str(p) for p in problems)
        raise ConfigError(f"{len(problems)} configuration problems:\n  {lines}",
                          problems=tuple(problems))


# ----------------------------------------------------------------------------- Go semantics

_GO_BOOLS = {
    "1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
    "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False,
}
_GO_OCTAL = re.compile(r"0(?:_?[0-7])+")
_GO_INT_CHARS = re.compile(r"[0-9A-Za-z_]+")
_GO_ATOI = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _go_parse_int(text: str, *, signed: bool) -> int:
    """strconv.ParseInt/ParseUint with base 0: optional sign (signed only), ``0x``/``0o``/``0b``
    or a leading ``0`` for octal, ``_`` between digits. ValueError otherwise."""
    body, negative = text, False
    if signed and body[:1] in ("+", "-"):
        negative, body = body[0] == "-", body[1:]
    if not body.isascii() or not _GO_INT_CHARS.fullmatch(body):
        raise ValueError(text)
    if _GO_OCTAL.fullmatch(body):
        value = int(body[1:].lstrip("_"), 8)
    else:
        value = int(body, 0)  # same prefixes and underscore rules as Go, minus the octal case
    return -value if negative else value


def _go_atoi(text: str) -> int:
    """strconv.Atoi, 0 on failure (rtcd ``ICEHostPortOverride.SinglePort``)."""
    if not _GO_ATOI.fullmatch(text):
        return 0
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else 0


def _quote_hint(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return " (the value is wrapped in quotes; remove them)"
    return ""


# ---------------------------------------------------------------------------- value parsing


class _BadValue(ValueError):
    """A value of the wrong shape; turned into a ConfigError naming the key."""


def _type_name(value: object, *, as_json: bool = False) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "object" if as_json else "table", type(None): "null"}.get(
                type(value), type(value).__name__)


def _ice_server_from_table(table: Mapping[str, Any], where: str) -> IceServer:
    known = {"urls": "urls", "username": "username", "credential": "credential"}
    values: dict[str, Any] = {}
    for name, value in table.items():
        attr = known.get(name.casefold()) if isinstance(name, str) else None
        if attr is None:
            log.warning("config: %s: unknown ICE server field %r (ignored)", where, name)
            continue
        values[attr] = value
    urls = values.get("urls", [])
    if urls is None:
        urls = []
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise _BadValue(f"{where}: urls must be an array of strings")
    extra: dict[str, str] = {}
    for attr in ("username", "credential"):
        value = values.get(attr)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _BadValue(f"{where}: {attr} must be a string, got {_type_name(value)}")
        extra[attr] = value
    return IceServer(urls=tuple(urls), **extra)


def _ice_servers_from_toml(value: object) -> tuple[IceServer, ...]:
    """rtcd ``ICEServers.UnmarshalTOML``: an array of URL strings and/or tables; one server per
    element."""
    if not isinstance(value, list):
        raise _BadValue(f"expected an array, got {_type_name(value)}")
    servers = []
    for i, item in enumerate(value, 1):
        if isinstance(item, str):
            servers.append(IceServer(urls=(item,)))
        elif isinstance(item, dict):
            servers.append(_ice_server_from_table(item, f"entry {i}"))
        else:
            raise _BadValue(f"entry {i}: expected a URL string or a table, got {_type_name(item)}")
    return tuple(servers)


def _ice_servers_from_json(text: str) -> tuple[IceServer, ...]:
    """rtcd ``ICEServers.Decode``: a JSON array of URL strings (one server with all of them)
    or of ``{"urls", "username", "credential"}`` objects. ``[]`` means none (rtcd rejects it)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise _BadValue(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise _BadValue("not valid JSON (nested too deeply)") from None
    if not isinstance(value, list):
        raise _BadValue(f"expected a JSON array, got {_type_name(value, as_json=True)}")
    if not value:
        return ()
    if all(isinstance(item, str) for item in value):
        return (IceServer(urls=tuple(value)),)
    if all(isinstance(item, dict) for item in value):
        return tuple(_ice_server_from_table(item, f"entry {i}") for i, item in enumerate(value, 1))
    raise _BadValue('expected an array of URL strings or of {"urls": [...], "username": ..., '
                     '"credential": ...} objects')


def _from_toml(key: ConfigKey, value: object) -> object:
    """A TOML value for ``key`` in its Python form; ConfigError if the type is wrong."""
    kind = key.kind
    bad = f"config file value {value!r} ({_type_name(value)}) is not "
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise _problem(key.toml_key, bad + "a boolean")
    if kind in ("int", "uint16"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _problem(key.toml_key, bad + "an integer")
        low, high = (0, 65535) if kind == "uint16" else (_INT64_MIN, _INT64_MAX)
        if not low <= value <= high:
            raise _problem(key.toml_key, f"{value} is out of range [{low}, {high}]")
        return value
    if kind == "float":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _problem(key.toml_key, bad + "a number")
        return float(value)
    if kind == "str":
        if isinstance(value, str):
            return value
        raise _problem(key.toml_key, bad + "a string")
    if kind == "port_override":
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise _problem(key.toml_key, bad + "a port number or a string")
    try:
        return _ice_servers_from_toml(value)
    except ValueError as exc:
        raise _problem(key.toml_key, f"config file value: {exc}") from None


def _from_env(key: ConfigKey, text: str) -> object:
    """An environment value for ``key`` parsed the way envconfig would; ConfigError if not."""
    kind = key.kind
    try:
        if kind == "bool":
            if text in _GO_BOOLS:
                return _GO_BOOLS[text]
            raise ValueError("is not a boolean (1, t, T, TRUE, true, True, 0, f, F, FALSE, "
                             "false, False)")
        if kind in ("int", "uint16"):
            signed = kind == "int"
            try:
                value = _go_parse_int(text, signed=signed)
            except ValueError:
                raise ValueError("is not an integer" if signed
                                 else "is not an unsigned integer") from None
            low, high = (_INT64_MIN, _INT64_MAX) if signed else (0, 65535)
            if not low <= value <= high:
                raise ValueError(f"is out of range [{low}, {high}]")
            return value
        if kind == "float":
            if not _FLOAT.fullmatch(text):
                raise ValueError("is not a number")
            number = float(text)
            if not math.isfinite(number):
                raise ValueError("is not a finite number")
            return number
        if kind in ("str", "port_override"):
            return text
        return _ice_servers_from_json(text)
    except ValueError as exc:
        if kind == "ice_servers":
            detail = f"environment value {text!r}: {exc}"
        else:
            detail = f"environment value {text!r} {exc}"
        raise ConfigError(f"invalid {key.env} ({key.toml_key}): {detail}{_quote_hint(text)}",
                          key=key.toml_key, env=key.env) from None


# --------------------------------------------------------------------------------- loading


def _flatten(obj: object, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    flat: dict[tuple[str, ...], object] = {}
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        path = prefix + (f.name,)
        if is_dataclass(value):
            flat.update(_flatten(value, path))
        else:
            flat[path] = value
    return flat


def _build(cls: Any, flat: Mapping[tuple[str, ...], object], prefix: tuple[str, ...] = ()) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, object] = {}
    for f in fields(cls):
        path = prefix + (f.name,)
        hint = hints[f.name]
        if isinstance(hint, type) and is_dataclass(hint):
            kwargs[f.name] = _build(hint, flat, path)
        else:
            kwargs[f.name] = flat[path]
    return cls(**kwargs)


def _apply_toml(cls: Any, table: Mapping[str, Any], toml_prefix: tuple[str, ...],
                attr_prefix: tuple[str, ...], flat: dict[tuple[str, ...], object],
                problems: list[ConfigError], unknown: list[str]) -> None:
    """Decode ``table`` into ``flat`` the way BurntSushi/toml fills a Go struct: an exact key
    match first, then a case-insensitive one; keys with no field are collected in ``unknown``."""
    hints = typing.get_type_hints(cls)
    by_name = {f.metadata["toml"]: f for f in fields(cls)}
    by_fold = {name.casefold(): f for name, f in by_name.items()}
    for name, value in table.items():
        f = by_name.get(name) or by_fold.get(name.casefold())
        toml_path = toml_prefix + (name,)
        if f is None:
            unknown.append(".".join(toml_path))
            continue
        attr_path = attr_prefix + (f.name,)
        hint = hints[f.name]
        if isinstance(hint, type) and is_dataclass(hint):
            if isinstance(value, dict):
                _apply_toml(hint, value, toml_prefix + (f.metadata["toml"],), attr_path, flat,
                            problems, unknown)
            else:
                dotted = ".".join(toml_prefix + (f.metadata["toml"],))
                problems.append(ConfigError(
                    f"invalid {dotted}: config file value {value!r} ({_type_name(value)}) is not "
                    "a table", key=dotted))
            continue
        key = _BY_ATTRS[attr_path]
        try:
            flat[attr_path] = _from_toml(key, value)
        except ConfigError as exc:
            problems.append(exc)


def _apply_env(env: Mapping[str, str], flat: dict[tuple[str, ...], object],
               problems: list[ConfigError]) -> None:
    for key in KEYS:
        text = env.get(key.env)
        if text is None:
            continue
        try:
            flat[key.attr_path] = _from_env(key, text)
        except ConfigError as exc:
            problems.append(exc)
    known = {k.env for k in KEYS} | _OTHER_RTCD_ENV
    for name in env:
        if name.startswith(ENV_PREFIX + "_") and name not in known:
            log.warning("config: unknown environment variable %s (ignored)", name)


def parse_config(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Defaults, then ``data`` (a parsed TOML document), then ``env``; then :func:`validate`.

    Unknown TOML keys are logged and ignored (rtcd ignores them silently). Raises ConfigError.
    """
    flat = _flatten(Config())
    problems: list[ConfigError] = []
    unknown: list[str] = []
    _apply_toml(Config, data, (), (), flat, problems, unknown)
    for name in unknown:
        log.warning("config: unknown key %s (ignored)", name)
    _apply_env(env if env is not None else {}, flat, problems)
    _raise_all(problems)
    config: Config = _build(Config, flat)
    validate(config)
    return config


def load_config(path: str | os.PathLike[str] | None,
                env: Mapping[str, str] = os.environ) -> Config:
    """Load like rtcd's ``loadConfig``: defaults, the TOML file at ``path`` (missing file or
    None = defaults only), ``RTCD_*`` variables from ``env``, then validation.

    Raises ConfigError naming the TOML key, the variable and the allowed values.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            log.info("config file not found at %s, using defaults", os.fspath(path))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"failed to decode config file {os.fspath(path)}: {exc}") from None
        except RecursionError:
            raise ConfigError(f"failed to decode config file {os.fspath(path)}: "
                              "nested too deeply") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"failed to read config file {os.fspath(path)}: {exc}") from None
    return parse_config(data, env)


# ------------------------------------------------------------------------------ validation


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _listen_address_problem(address: str) -> str | None:
    """Go ``net.SplitHostPort`` plus a numeric port: ``host:port``, ``[v6]:port``, ``:port``."""
    example = "expected host:port, e.g. \":8045\" or \"127.0.0.1:8045\""
    if address.startswith("["):
        end = address.find("]")
        if end < 0 or address[end + 1:end + 2] != ":":
            return f"{address!r} is not a valid listen address: {example}"
        host, port = address[1:end], address[end + 2:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"{address!r} is not a valid listen address: {host!r} is not an IPv6 address"
    else:
        host, sep, port = address.rpartition(":")
        if not sep or ":" in host:
            return f"{address!r} is not a valid listen address: {example}"
        if host and not _is_ip(host) and not all(
                _HOST_LABEL.fullmatch(label) for label in host.rstrip(".").split(".")):
            return f"{address!r} is not a valid listen address: {host!r} is not a host name or IP"
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        return f"{address!r} is not a valid listen address: port must be a number in [0, 65535]"
    return None


def _is_ip(text: str) -> bool:
    """Go ``net.ParseIP``: IPv4 or IPv6 literal, no zone."""
    if "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _port_override_problem(value: str) -> str | None:
    """rtcd ``ICEHostPortOverride.IsValid``."""
    if not value:
        return None
    single = _go_atoi(value)
    if single:
        if not _PORT_MIN <= single <= _PORT_MAX:
            return f"{single} is not in allowed range [{_PORT_MIN}, {_PORT_MAX}]"
        return None
    hosts: set[str] = set()
    ports: set[int] = set()
    for pair in value.split(","):
        parts = pair.split("/")
        if len(parts) != 2:
            return (f"failed to parse mapping {value!r}: invalid map pairing syntax "
                    "(expected a port or \"localIP/port,localIP/port\")")
        if not _GO_ATOI.fullmatch(parts[1]):
            return f"failed to parse mapping {value!r}: failed to parse port number {parts[1]!r}"
        port = int(parts[1])
        if parts[0] in hosts:
            return f"failed to parse mapping {value!r}: duplicate mapping found for {parts[0]}"
        if port in ports:
            return f"failed to parse mapping {value!r}: duplicate port found for {port}"
        hosts.add(parts[0])
        ports.add(port)
    return None


def _ice_server_problem(server: IceServer) -> str | None:
    """rtcd ``ICEServerConfig.IsValid``."""
    if not server.urls:
        return "invalid empty URLs"
    for url in server.urls:
        if not url:
            return "invalid empty URL"
    if not server.is_stun and not server.is_turn:
        return ("URL is not a valid STUN/TURN server (every URL of an entry must start with "
                "stun:/stuns: or every one with turn:/turns:)")
    return None


def _level_ok(name: str) -> bool:
    return name.lower() in LOG_LEVELS


def validate(config: Config) -> None:
    """rtcd's ``Config.IsValid`` (plus the session cache, TLS files and our section).

    Raises ConfigError listing every problem found; each names the TOML key and the variable.
    """
    problems: list[ConfigError] = []

    def bad(toml_key: str, detail: str) -> None:
        problems.append(_problem(toml_key, detail))

    # [api]
    sec, http = config.api.security, config.api.http
    if sec.enable_admin and not sec.admin_secret_key:
        bad("api.security.admin_secret_key",
            "should not be empty when api.security.enable_admin is true")
    if sec.session_cache.expiration_minutes <= 0:
        bad("api.security.session_cache.expiration_minutes",
            f"{sec.session_cache.expiration_minutes} is not a positive number of minutes")
    if not http.listen_address:
        bad("api.http.listen_address", "should not be empty")
    else:
        detail = _listen_address_problem(http.listen_address)
        if detail:
            bad("api.http.listen_address", detail)
    tls = http.tls
    if tls.enable:
        if not tls.cert_file:
            bad("api.http.tls.cert_file", "should not be empty when api.http.tls.enable is true")
        if not tls.cert_key:
            bad("api.http.tls.cert_key", "should not be empty when api.http.tls.enable is true")
        if tls.cert_file and tls.cert_key:
            try:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                # A callable password: an encrypted key fails instead of prompting on a tty.
                context.load_cert_chain(tls.cert_file, tls.cert_key, password=lambda: b"")
            except (OSError, ssl.SSLError) as exc:
                bad("api.http.tls.cert_file",
                    f"failed to load cert files {tls.cert_file!r} and {tls.cert_key!r}: {exc}")

    # [rtc]
    rtc = config.rtc
    before = len(problems)
    for name in ("ice_address_udp", "ice_address_tcp"):
        value = getattr(rtc, name)
        if value:
            for address in (part.strip() for part in value.split(",")):
                if not _is_ip(address):
                    bad(f"rtc.{name}", f"{address!r} is not a valid IP address")
                    break
    for name in ("ice_port_udp", "ice_port_tcp"):
        port = getattr(rtc, name)
        if not _PORT_MIN <= port <= _PORT_MAX:
            bad(f"rtc.{name}", f"{port} is not in allowed range [{_PORT_MIN}, {_PORT_MAX}]")
    for i, server in enumerate(rtc.ice_servers, 1):
        detail = _ice_server_problem(server)
        if detail:
            bad("rtc.ice_servers", f"entry {i} {list(server.urls)}: {detail}")
    turn = rtc.turn
    if turn.static_auth_secret:
        minutes = turn.credentials_expiration_minutes
        if minutes <= 0:
            bad("rtc.turn.credentials_expiration_minutes",
                f"{minutes} is not a positive number of minutes")
        elif minutes >= MAX_TURN_CREDENTIALS_EXPIRATION_MINUTES:
            bad("rtc.turn.credentials_expiration_minutes",
                f"{minutes} should be less than {MAX_TURN_CREDENTIALS_EXPIRATION_MINUTES} "
                "(1 week)")
    detail = _port_override_problem(rtc.ice_host_port_override)
    if detail:
        bad("rtc.ice_host_port_override", detail)
    if rtc.udp_sockets_count <= 0:
        bad("rtc.udp_sockets_count", f"{rtc.udp_sockets_count} should be greater than 0")
    nack = rtc.nack_buffer_size
    if nack != 0:
        if nack < _NACK_MIN:
            bad("rtc.nack_buffer_size", f"{nack} should be at least {_NACK_MIN} (or 0 for 256)")
        elif nack > _NACK_MAX:
            bad("rtc.nack_buffer_size", f"{nack} should not exceed {_NACK_MAX}")
        elif nack & (nack - 1):
            bad("rtc.nack_buffer_size", f"{nack} must be a power of 2 "
                "(32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)")
    if len(problems) == before:
        # The engine builds candidates from this section; let it reject what it cannot use
        # (hostname syntax, EXT/INT pairs, IPv6 addresses without enable_ipv6, ...) now.
        try:
            rtc.candidate_config()
        except ValueError as exc:
            name = getattr(exc, "key", "")
            toml_key = f"rtc.{name}"
            if toml_key not in _BY_TOML:
                toml_key = "rtc.ice_servers" if name == "stun_url" else "rtc.ice_host_override"
            bad(toml_key, str(exc).removeprefix(f"invalid {name} value: "))

    # [store]
    if not config.store.data_source:
        bad("store.data_source", "should not be empty")

    # [logger]
    lg = config.logger
    if not lg.enable_console and not lg.enable_file:
        bad("logger.enable_console",
            "should enable at least one logging target (logger.enable_console or "
            "logger.enable_file)")
    levels = ", ".join(LOG_LEVELS[:-1])
    if lg.enable_console and not _level_ok(lg.console_level):
        bad("logger.console_level", f"{lg.console_level!r} is not a log level ({levels}; any case)")
    if lg.enable_file and not _level_ok(lg.file_level):
        bad("logger.file_level", f"{lg.file_level!r} is not a log level ({levels}; any case)")
    if lg.enable_file and not lg.file_location:
        bad("logger.file_location", "should not be empty when logger.enable_file is true")

    # [switchboard]
    sb = config.switchboard
    if not (math.isfinite(sb.drain_grace_period) and sb.drain_grace_period >= 0):
        bad("switchboard.drain_grace_period",
            f"{sb.drain_grace_period} should be a number of seconds >= 0")
    if sb.max_call_participants < 0:
        bad("switchboard.max_call_participants",
            f"{sb.max_call_participants} should be 0 (unlimited) or a positive number")
    if not _SOCKET_BUFFER_MIN <= sb.socket_buffer_size <= _SOCKET_BUFFER_MAX:
        bad("switchboard.socket_buffer_size",
            f"{sb.socket_buffer_size} is not in allowed range "
            f"[{_SOCKET_BUFFER_MIN}, {_SOCKET_BUFFER_MAX}] (bytes)")
    if not 0 <= sb.coalesce_us <= _COALESCE_MAX_US:
        bad("switchboard.coalesce_us",
            f"{sb.coalesce_us} is not in allowed range [0, {_COALESCE_MAX_US}] (microseconds)")

    _raise_all(problems)


# ---------------------------------------------------------------------------------- output


def _toml_string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch < " " or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_value(key: ConfigKey, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    assert key.kind == "ice_servers"
    servers = typing.cast(tuple[IceServer, ...], value)
    items = []
    for server in servers:
        parts = ["urls = [" + ", ".join(_toml_string(u) for u in server.urls) + "]"]
        if server.username:
            parts.append(f"username = {_toml_string(server.username)}")
        if server.credential:
            parts.append(f"credential = {_toml_string(server.credential)}")
        items.append("{" + ", ".join(parts) + "}")
    return "[" + ", ".join(items) + "]"


def to_toml(config: Config) -> str:
    """Every setting of ``config`` as a TOML document :func:`load_config` reads back equal."""
    flat = _flatten(config)
    lines: list[str] = []
    section = ""
    for key in KEYS:
        if key.toml_path[0] != section:
            section = key.toml_path[0]
            lines.extend(["", f"[{section}]"] if lines else [f"[{section}]"])
        value = _toml_value(key, flat[key.attr_path])
        lines.append(f"{'.'.join(key.toml_path[1:])} = {value}")
    return "\n".join(lines) + "\n"


def to_env(config: Config) -> dict[str, str]:
    """Every setting of ``config`` as the ``RTCD_*`` variables that reproduce it."""
    flat = _flatten(config)
    env: dict[str, str] = {}
    for key in KEYS:
        value = flat[key.attr_path]
        if isinstance(value, bool):
            env[key.env] = "true" if value else "false"
        elif isinstance(value, (int, float, str)):
            env[key.env] = value if isinstance(value, str) else repr(value)
        else:
            servers = typing.cast(tuple[IceServer, ...], value)
            env[key.env] = json.dumps([
                {"urls": list(s.urls),
                 **({"username": s.username} if s.username else {}),
                 **({"credential": s.credential} if s.credential else {})}
                for s in servers])
    return env


_PYTHON_LEVELS = {"panic": logging.CRITICAL, "fatal": logging.CRITICAL, "error": logging.ERROR,
                  "warn": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG,
                  "trace": 5, "stdlog": logging.INFO}


def python_log_level(name: str) -> int:
    """The :mod:`logging` level for an rtcd level name (``trace`` is 5); ValueError if unknown."""
    try:
        return _PYTHON_LEVELS[name.lower()]
    except KeyError:
        raise ValueError(f"{name!r} is not a log level") from None


# ------------------------------------------------------------------------------------- TURN


def turn_credentials(secret: str, session_id: str, expiry_minutes: int,
                     now: float | None = None) -> tuple[str, str]:
    """Short-lived TURN credentials (TURN REST API; rtcd ``genTURNCredentials``).

    The user name is ``"<unix expiry>:<session_id>"`` and the password is
    ``base64(HMAC-SHA1(secret, username))``; coturn with ``use-auth-secret`` and the same
    ``static-auth-secret`` accepts them until the expiry. ``now`` is Unix time (seconds,
    default ``time.time()``). ValueError with rtcd's messages on bad input.
    """
    if not session_id:
        raise ValueError("username should not be empty")
    if not secret:
        raise ValueError("secret should not be empty")
    if expiry_minutes <= 0:
        raise ValueError("expirationTS should be a positive number")
    if expiry_minutes > MAX_TURN_CREDENTIALS_EXPIRATION_MINUTES:
        raise ValueError("expirationTS cannot be more than a week into the future")
    expires = int(time.time() if now is None else now) + expiry_minutes * 60
    username = f"{expires}:{session_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")
