"""signaling/config: rtcd's keys, defaults, env names, validation messages, TURN credentials."""

from __future__ import annotations

import datetime
import logging
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from switchboard.signaling import config as cfgmod
from switchboard.signaling.config import (
    KEYS,
    Config,
    ConfigError,
    IceServer,
    key_for,
    load_config,
    parse_config,
    python_log_level,
    to_env,
    to_toml,
    turn_credentials,
)

SAMPLE = Path(cfgmod.__file__).with_name("config.sample.toml")

# rtcd docs/env_config.md, by TOML key (copied by hand; the code derives them from Go names).
RTCD_ENV = {
    "api.http.listen_address": "RTCD_API_HTTP_LISTENADDRESS",
    "api.http.tls.enable": "RTCD_API_HTTP_TLS_ENABLE",
    "api.http.tls.cert_file": "RTCD_API_HTTP_TLS_CERTFILE",
    "api.http.tls.cert_key": "RTCD_API_HTTP_TLS_CERTKEY",
    "api.security.enable_admin": "RTCD_API_SECURITY_ENABLEADMIN",
    "api.security.admin_secret_key": "RTCD_API_SECURITY_ADMINSECRETKEY",
    "api.security.allow_self_registration": "RTCD_API_SECURITY_ALLOWSELFREGISTRATION",
    "api.security.session_cache.expiration_minutes":
        "RTCD_API_SECURITY_SESSIONCACHE_EXPIRATIONMINUTES",
    "rtc.ice_address_udp": "RTCD_RTC_ICEADDRESSUDP",
    "rtc.ice_port_udp": "RTCD_RTC_ICEPORTUDP",
    "rtc.ice_address_tcp": "RTCD_RTC_ICEADDRESSTCP",
    "rtc.ice_port_tcp": "RTCD_RTC_ICEPORTTCP",
    "rtc.ice_host_override": "RTCD_RTC_ICEHOSTOVERRIDE",
    "rtc.ice_host_port_override": "RTCD_RTC_ICEHOSTPORTOVERRIDE",
    "rtc.ice_servers": "RTCD_RTC_ICESERVERS",
    "rtc.turn.static_auth_secret": "RTCD_RTC_TURNCONFIG_STATICAUTHSECRET",
    "rtc.turn.credentials_expiration_minutes": "RTCD_RTC_TURNCONFIG_CREDENTIALSEXPIRATIONMINUTES",
    "rtc.enable_ipv6": "RTCD_RTC_ENABLEIPV6",
    "rtc.udp_sockets_count": "RTCD_RTC_UDPSOCKETSCOUNT",
    "rtc.nack_buffer_size": "RTCD_RTC_NACKBUFFERSIZE",
    "rtc.nack_disable_copy": "RTCD_RTC_NACKDISABLECOPY",
    "store.data_source": "RTCD_STORE_DATASOURCE",
    "logger.enable_console": "RTCD_LOGGER_ENABLECONSOLE",
    "logger.console_json": "RTCD_LOGGER_CONSOLEJSON",
    "logger.console_level": "RTCD_LOGGER_CONSOLELEVEL",
    "logger.enable_file": "RTCD_LOGGER_ENABLEFILE",
    "logger.file_json": "RTCD_LOGGER_FILEJSON",
    "logger.file_level": "RTCD_LOGGER_FILELEVEL",
    "logger.file_location": "RTCD_LOGGER_FILELOCATION",
    "logger.enable_color": "RTCD_LOGGER_ENABLECOLOR",
}
OUR_ENV = {
    "switchboard.drain_grace_period": "RTCD_SWITCHBOARD_DRAINGRACEPERIOD",
    "switchboard.max_call_participants": "RTCD_SWITCHBOARD_MAXCALLPARTICIPANTS",
    "switchboard.socket_buffer_size": "RTCD_SWITCHBOARD_SOCKETBUFFERSIZE",
    "switchboard.enable_ice_tcp": "RTCD_SWITCHBOARD_ENABLEICETCP",
    "switchboard.coalesce_us": "RTCD_SWITCHBOARD_COALESCEUS",
    "switchboard.gc_tuning": "RTCD_SWITCHBOARD_GCTUNING",
}


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


# rtcd service/config.go SetDefaults (plus the zero values of everything it leaves unset).
RTCD_DEFAULTS: dict[str, Any] = {
    "api.http.listen_address": ":8045",
    "api.http.tls.enable": False,
    "api.http.tls.cert_file": "",
    "api.http.tls.cert_key": "",
    "api.security.enable_admin": False,
    "api.security.admin_secret_key": "",
    "api.security.allow_self_registration": False,
    "api.security.session_cache.expiration_minutes": 1440,
    "rtc.ice_address_udp": "",
    "rtc.ice_port_udp": 8443,
    "rtc.ice_address_tcp": "",
    "rtc.ice_port_tcp": 8443,
    "rtc.ice_host_override": "",
    "rtc.ice_host_port_override": "",
    "rtc.ice_servers": (),
    "rtc.turn.static_auth_secret": "",
    "rtc.turn.credentials_expiration_minutes": 1440,
    "rtc.enable_ipv6": False,
    "rtc.udp_sockets_count": _cpus() * 100,
    "rtc.nack_buffer_size": 256,
    "rtc.nack_disable_copy": True,
    "store.data_source": "/tmp/rtcd_db",
    "logger.enable_console": True,
    "logger.console_json": False,
    "logger.console_level": "INFO",
    "logger.enable_file": True,
    "logger.file_json": True,
    "logger.file_level": "DEBUG",
    "logger.file_location": "rtcd.log",
    "logger.enable_color": False,
    "switchboard.drain_grace_period": 18000.0,
    "switchboard.max_call_participants": 0,
    "switchboard.socket_buffer_size": 16 * 1024 * 1024,
    "switchboard.enable_ice_tcp": True,
    "switchboard.coalesce_us": 0,
    "switchboard.gc_tuning": True,
}


def value_at(config: Config, toml_key: str) -> Any:
    obj: Any = config
    for attr in key_for(toml_key).attr_path:
        obj = getattr(obj, attr)
    return obj


def flat(config: Config) -> dict[str, Any]:
    return {k.toml_key: value_at(config, k.toml_key) for k in KEYS}


def message(excinfo: pytest.ExceptionInfo[ConfigError]) -> str:
    return str(excinfo.value)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "switchboard-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    d = tmp_path_factory.mktemp("tls")
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return str(d / "cert.pem"), str(d / "key.pem")


# ------------------------------------------------------------------------------ env names


def test_every_key_has_a_known_env_name() -> None:
    assert {k.toml_key for k in KEYS} == set(RTCD_ENV) | set(OUR_ENV)


@pytest.mark.parametrize(("toml_key", "env"), sorted({**RTCD_ENV, **OUR_ENV}.items()))
def test_env_name_is_derived_from_the_go_field_path(toml_key: str, env: str) -> None:
    key = key_for(toml_key)
    assert key.env == env
    # the rule itself: RTCD_ + Go field names upper-cased, joined by "_" (TOML names ignored)
    assert key.env == "RTCD_" + "_".join(part.upper() for part in key.go_path)


def test_turn_section_env_uses_the_go_field_name_not_the_toml_key() -> None:
    key = key_for("rtc.turn.static_auth_secret")
    assert key.toml_path == ("rtc", "turn", "static_auth_secret")
    assert key.go_path == ("RTC", "TURNConfig", "StaticAuthSecret")
    assert key.env == "RTCD_RTC_TURNCONFIG_STATICAUTHSECRET"


def test_field_metadata_records_toml_and_go_names() -> None:
    from dataclasses import fields

    f = {x.name: x for x in fields(cfgmod.RtcConfigSection)}["ice_port_udp"]
    assert f.metadata["toml"] == "ice_port_udp"
    assert f.metadata["go"] == "ICEPortUDP"


# ------------------------------------------------------------------------------- defaults


@pytest.mark.parametrize(("toml_key", "expected"), sorted(RTCD_DEFAULTS.items()))
def test_defaults_equal_rtcds(toml_key: str, expected: Any) -> None:
    assert value_at(Config(), toml_key) == expected


def test_defaults_cover_every_key() -> None:
    assert set(RTCD_DEFAULTS) == {k.toml_key for k in KEYS}


def test_defaults_are_valid() -> None:
    cfgmod.validate(Config())


def test_missing_file_means_defaults(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "sfu.config")
    assert load_config(tmp_path / "nope.toml", {}) == Config()
    assert "config file not found" in caplog.text
    assert load_config(None, {}) == Config()


# ---------------------------------------------------------------------- env, field by field

# TOML key -> (env text, expected value, other env needed for the change to be valid)
ENV_CASES: dict[str, tuple[str, Any, dict[str, str]]] = {
    "api.http.listen_address": ("127.0.0.1:9045", "127.0.0.1:9045", {}),
    "api.http.tls.enable": ("true", True, {"TLS": ""}),  # cert files filled in by the test
    "api.http.tls.cert_file": ("/etc/rtcd/cert.pem", "/etc/rtcd/cert.pem", {}),
    "api.http.tls.cert_key": ("/etc/rtcd/key.pem", "/etc/rtcd/key.pem", {}),
    "api.security.enable_admin": ("true", True, {"RTCD_API_SECURITY_ADMINSECRETKEY": "k"}),
    "api.security.admin_secret_key": ("s3cret", "s3cret", {}),
    "api.security.allow_self_registration": ("True", True, {}),
    "api.security.session_cache.expiration_minutes": ("60", 60, {}),
    "rtc.ice_address_udp": ("127.0.0.1", "127.0.0.1", {}),
    "rtc.ice_port_udp": ("9443", 9443, {}),
    "rtc.ice_address_tcp": ("127.0.0.1", "127.0.0.1", {}),
    "rtc.ice_port_tcp": ("9444", 9444, {}),
    "rtc.ice_host_override": ("203.0.113.7", "203.0.113.7", {}),
    "rtc.ice_host_port_override": ("30443", "30443", {}),
    "rtc.ice_servers": ('["stun:stun.example.com:3478"]',
                        (IceServer(urls=("stun:stun.example.com:3478",)),), {}),
    "rtc.turn.static_auth_secret": ("abc", "abc", {}),
    "rtc.turn.credentials_expiration_minutes": ("60", 60, {}),
    "rtc.enable_ipv6": ("1", True, {}),
    "rtc.udp_sockets_count": ("8", 8, {}),
    "rtc.nack_buffer_size": ("1024", 1024, {}),
    "rtc.nack_disable_copy": ("false", False, {}),
    "store.data_source": ("/var/lib/rtcd", "/var/lib/rtcd", {}),
    "logger.enable_console": ("f", False, {}),
    "logger.console_json": ("t", True, {}),
    "logger.console_level": ("debug", "debug", {}),
    "logger.enable_file": ("FALSE", False, {}),
    "logger.file_json": ("F", False, {}),
    "logger.file_level": ("warn", "warn", {}),
    "logger.file_location": ("/var/log/rtcd.log", "/var/log/rtcd.log", {}),
    "logger.enable_color": ("TRUE", True, {}),
    "switchboard.drain_grace_period": ("60.5", 60.5, {}),
    "switchboard.max_call_participants": ("200", 200, {}),
    "switchboard.socket_buffer_size": ("1048576", 1048576, {}),
    "switchboard.enable_ice_tcp": ("0", False, {}),
    "switchboard.coalesce_us": ("200", 200, {}),
    "switchboard.gc_tuning": ("false", False, {}),
}


def _context(extra: dict[str, str], tls_files: tuple[str, str]) -> dict[str, str]:
    if "TLS" in extra:
        return {"RTCD_API_HTTP_TLS_CERTFILE": tls_files[0],
                "RTCD_API_HTTP_TLS_CERTKEY": tls_files[1]}
    return dict(extra)


def test_env_cases_cover_every_key() -> None:
    assert set(ENV_CASES) == {k.toml_key for k in KEYS}


@pytest.mark.parametrize("toml_key", sorted(ENV_CASES))
def test_each_env_var_sets_exactly_its_field(toml_key: str, tls_files: tuple[str, str]) -> None:
    text, expected, extra = ENV_CASES[toml_key]
    context = _context(extra, tls_files)
    env = {key_for(toml_key).env: text, **context}
    loaded = flat(load_config(None, env))
    assert loaded[toml_key] == expected
    assert expected != RTCD_DEFAULTS[toml_key]  # the case really changes something
    touched = {toml_key} | {k.toml_key for k in KEYS if k.env in context}
    for other, value in loaded.items():
        if other not in touched:
            assert value == RTCD_DEFAULTS[other], other


def test_env_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[rtc]\nice_port_udp = 9000\nice_port_tcp = 9001\n")
    config = load_config(path, {"RTCD_RTC_ICEPORTUDP": "9100"})
    assert config.rtc.ice_port_udp == 9100
    assert config.rtc.ice_port_tcp == 9001


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_env_bool_true_forms(text: str) -> None:
    assert load_config(None, {"RTCD_RTC_ENABLEIPV6": text}).rtc.enable_ipv6 is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_env_bool_false_forms(text: str) -> None:
    assert load_config(None, {"RTCD_RTC_NACKDISABLECOPY": text}).rtc.nack_disable_copy is False


@pytest.mark.parametrize("text", ["yes", "", "TrUe", "on", " true", "2"])
def test_env_bool_rejects_other_forms(text: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(None, {"RTCD_RTC_ENABLEIPV6": text})
    assert message(exc) == (
        f"invalid RTCD_RTC_ENABLEIPV6 (rtc.enable_ipv6): environment value {text!r} is not a "
        "boolean (1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False)")
    assert exc.value.key == "rtc.enable_ipv6"
    assert exc.value.env == "RTCD_RTC_ENABLEIPV6"


@pytest.mark.parametrize(("text", "expected"), [
    ("8443", 8443), ("+8443", 8443), ("0x20FB", 8443), ("0o20373", 8443),
    ("0b10000011111011", 8443),
    ("020373", 8443),  # Go base 0: a leading 0 means octal
    ("8_443", 8443),
])
def test_env_int_follows_go_parseint_base_0(text: str, expected: int) -> None:
    assert load_config(None, {"RTCD_RTC_ICEPORTUDP": text}).rtc.ice_port_udp == expected


@pytest.mark.parametrize("text", ["", " 8443", "8443.0", "8443 ", "0x", "８４４３", "1e3",
                                  "_8443",
                                  "8__443", "09"])
def test_env_int_rejects_garbage(text: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(None, {"RTCD_RTC_ICEPORTUDP": text})
    assert message(exc) == (f"invalid RTCD_RTC_ICEPORTUDP (rtc.ice_port_udp): environment value "
                            f"{text!r} is not an integer")


def test_env_uint16_range() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(None, {"RTCD_RTC_NACKBUFFERSIZE": "-256"})
    assert message(exc) == ("invalid RTCD_RTC_NACKBUFFERSIZE (rtc.nack_buffer_size): environment "
                            "value '-256' is not an unsigned integer")
    with pytest.raises(ConfigError) as exc:
        load_config(None, {"RTCD_RTC_NACKBUFFERSIZE": "70000"})
    assert message(exc) == ("invalid RTCD_RTC_NACKBUFFERSIZE (rtc.nack_buffer_size): environment "
                            "value '70000' is out of range [0, 65535]")


def test_env_quoted_value_gets_a_hint() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(None, {"RTCD_LOGGER_ENABLEFILE": '"false"'})
    assert message(exc) == (
        "invalid RTCD_LOGGER_ENABLEFILE (logger.enable_file): environment value '\"false\"' is "
        "not a boolean (1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False) (the value is "
        "wrapped in quotes; remove them)")


def test_empty_env_string_is_applied_like_envconfig() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(None, {"RTCD_STORE_DATASOURCE": ""})
    assert message(exc) == "invalid store.data_source (RTCD_STORE_DATASOURCE): should not be empty"


def test_unknown_env_var_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "sfu.config")
    load_config(None, {"RTCD_RTC_ICEPORT": "1", "RTCD_RTC_DTLS_INSECURE_SKIP_HELLOVERIFY": "true",
                       "OTHER": "x"})
    assert "unknown environment variable RTCD_RTC_ICEPORT" in caplog.text
    assert "HELLOVERIFY" not in caplog.text
    assert "OTHER" not in caplog.text


# ------------------------------------------------------------------------------ ICE servers


def test_ice_servers_json_url_strings_make_one_server() -> None:
    env = {"RTCD_RTC_ICESERVERS": '["stun:a.example.com:3478", "stun:b.example.com:3478"]'}
    config = load_config(None, env)
    assert config.rtc.ice_servers == (
        IceServer(urls=("stun:a.example.com:3478", "stun:b.example.com:3478")),)
    assert config.rtc.stun_url == "stun:a.example.com:3478"


def test_ice_servers_json_objects() -> None:
    env = {"RTCD_RTC_ICESERVERS":
           '[{"urls":["stun:s.example.com:3478"]},'
           ' {"urls":["turn:t.example.com:3478","turns:t.example.com:5349"],'
           '  "username":"u","credential":"p"}]'}
    config = load_config(None, env)
    assert config.rtc.ice_servers == (
        IceServer(urls=("stun:s.example.com:3478",)),
        IceServer(urls=("turn:t.example.com:3478", "turns:t.example.com:5349"),
                  username="u", credential="p"))
    assert config.rtc.ice_servers[1].is_turn and not config.rtc.ice_servers[1].is_stun


def test_ice_servers_json_field_names_are_case_insensitive_like_go() -> None:
    env = {"RTCD_RTC_ICESERVERS": '[{"URLs":["turn:t:3478"],"Username":"u","Credential":"p"}]'}
    assert load_config(None, env).rtc.ice_servers == (
        IceServer(urls=("turn:t:3478",), username="u", credential="p"),)


def test_ice_servers_json_empty_array_means_none() -> None:
    assert load_config(None, {"RTCD_RTC_ICESERVERS": "[]"}).rtc.ice_servers == ()


@pytest.mark.parametrize(("text", "detail"), [
    ("stun:a:3478", "not valid JSON (Expecting value: line 1 column 1 (char 0))"),
    ('{"urls":["stun:a"]}', "expected a JSON array, got object"),
    ('["stun:a", {"urls":["turn:b"]}]',
     ('expected an array of URL strings or of {"urls": [...], "username": ..., "credential": ...} '
     "objects")),
    ('[{"urls":"stun:a","username":5}]', "entry 1: username must be a string, got integer"),
    ('[{"urls":[1]}]', "entry 1: urls must be an array of strings"),
    ("[" * 100000, "not valid JSON (nested too deeply)"),
])
def test_ice_servers_json_errors(text: str, detail: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(None, {"RTCD_RTC_ICESERVERS": text})
    assert message(exc) == (f"invalid RTCD_RTC_ICESERVERS (rtc.ice_servers): environment value "
                            f"{text!r}: {detail}")


def test_ice_servers_toml_strings_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[rtc]\nice_servers = ["stun:s:3478", {urls = ["turn:t:3478"], '
                    'username = "u", credential = "p"}, {urls = "turns:t:5349"}]\n')
    assert load_config(path, {}).rtc.ice_servers == (
        IceServer(urls=("stun:s:3478",)),
        IceServer(urls=("turn:t:3478",), username="u", credential="p"),
        IceServer(urls=("turns:t:5349",)))


@pytest.mark.parametrize(("servers", "detail"), [
    ("[{urls = []}]", "entry 1 []: invalid empty URLs"),
    ('[{username = "u"}]', "entry 1 []: invalid empty URLs"),
    ('[""]', "entry 1 ['']: invalid empty URL"),
    ('["http://x"]', ("entry 1 ['http://x']: URL is not a valid STUN/TURN server (every URL of an "
     "entry must start with stun:/stuns: or every one with turn:/turns:)")),
    ('["stun:ok:3478", {urls = ["stun:a", "turn:b"]}]',
     ("entry 2 ['stun:a', 'turn:b']: URL is not a valid STUN/TURN server (every URL of an entry "
     "must start with stun:/stuns: or every one with turn:/turns:)")),
])
def test_ice_servers_validation(servers: str, detail: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(tomllib.loads(f"[rtc]\nice_servers = {servers}\n"))
    assert message(exc) == f"invalid rtc.ice_servers (RTCD_RTC_ICESERVERS): {detail}"


# ------------------------------------------------------------------------- TOML round trip


def test_sample_loads_to_the_defaults() -> None:
    assert load_config(SAMPLE, {}) == Config()


def test_sample_documents_every_key() -> None:
    text = SAMPLE.read_text()
    data = tomllib.loads(text)
    assert parse_config(data) == Config()
    for key in KEYS:
        section, rest = key.toml_path[0], ".".join(key.toml_path[1:])
        node: Any = data.get(section, {})
        for part in key.toml_path[1:]:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        present = node != {} or f"\n{rest} = " in text
        commented = f"\n# {rest} = " in text
        assert present or commented, key.toml_key
    # rtcd leaves these two out because their default is dynamic or "unset"
    assert "\n# udp_sockets_count = " in text
    assert "\n# ice_host_port_override = " in text


def test_sample_has_a_comment_before_every_key() -> None:
    lines = SAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", "[")):
            assert lines[i - 1].startswith("#"), line


def _everything_changed(tls_files: tuple[str, str]) -> Config:
    env: dict[str, str] = {}
    for toml_key, (text, _, extra) in ENV_CASES.items():
        env[key_for(toml_key).env] = text
    env.update(_context({"TLS": ""}, tls_files))
    env["RTCD_API_SECURITY_ADMINSECRETKEY"] = 'a "quoted"\\ key\t\x7f é'
    env["RTCD_LOGGER_ENABLEFILE"] = "true"
    env["RTCD_RTC_ICESERVERS"] = ('[{"urls":["stun:s:3478"]},{"urls":["turn:t:3478"],'
                                  '"username":"u","credential":"p\\"w"}]')
    return load_config(None, env)


def test_to_toml_round_trip(tls_files: tuple[str, str], tmp_path: Path) -> None:
    for config in (Config(), _everything_changed(tls_files)):
        path = tmp_path / "out.toml"
        path.write_text(to_toml(config))
        assert load_config(path, {}) == config
    changed = flat(_everything_changed(tls_files))
    assert all(changed[k] != v for k, v in RTCD_DEFAULTS.items()
               if k not in ("logger.enable_file",))


def test_to_env_round_trip(tls_files: tuple[str, str]) -> None:
    for config in (Config(), _everything_changed(tls_files)):
        env = to_env(config)
        assert set(env) == {k.env for k in KEYS}
        assert load_config(None, env) == config


def test_toml_keys_match_case_insensitively_like_burntsushi() -> None:
    config = parse_config(tomllib.loads(
        '[API]\nHTTP.Listen_Address = ":9"\n[Rtc]\nICE_PORT_UDP = 9000\n'))
    assert config.api.http.listen_address == ":9"
    assert config.rtc.ice_port_udp == 9000


def test_unknown_toml_keys_warn_but_load(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "sfu.config")
    config = parse_config(tomllib.loads(
        '[rtc]\nice_port_udpp = 1\nturn.secret = "x"\n[metrics]\nenable = true\n'))
    assert config == Config()
    for key in ("rtc.ice_port_udpp", "rtc.turn.secret", "metrics"):
        assert f"unknown key {key} (ignored)" in caplog.text


def test_ice_host_port_override_accepts_int_or_string() -> None:
    config = parse_config(tomllib.loads("[rtc]\nice_host_port_override = 30443\n"))
    assert config.rtc.ice_host_port_override == "30443"
    assert config.rtc.port_override == 30443
    config = parse_config(tomllib.loads(
        '[rtc]\nice_host_port_override = "10.0.0.1/30443,10.0.0.2/30444"\n'))
    assert config.rtc.port_override == "10.0.0.1/30443,10.0.0.2/30444"
    assert Config().rtc.port_override is None


# ----------------------------------------------------------------------------- validation

VALIDATION_CASES = [
    ("[rtc]\nice_port_udp = 79",
     "invalid rtc.ice_port_udp (RTCD_RTC_ICEPORTUDP): 79 is not in allowed range [80, 49151]"),
    ("[rtc]\nice_port_tcp = 49152",
     "invalid rtc.ice_port_tcp (RTCD_RTC_ICEPORTTCP): 49152 is not in allowed range [80, 49151]"),
    ("[rtc]\nnack_buffer_size = 16",
     ("invalid rtc.nack_buffer_size (RTCD_RTC_NACKBUFFERSIZE): 16 should be at least 32 (or 0 for "
     "256)")),
    ("[rtc]\nnack_buffer_size = 16384",
     "invalid rtc.nack_buffer_size (RTCD_RTC_NACKBUFFERSIZE): 16384 should not exceed 8192"),
    ("[rtc]\nnack_buffer_size = 100",
     ("invalid rtc.nack_buffer_size (RTCD_RTC_NACKBUFFERSIZE): 100 must be a power of 2 (32, 64, "
     "128, 256, 512, 1024, 2048, 4096, 8192)")),
    ("[rtc]\nnack_buffer_size = 70000",
     "invalid rtc.nack_buffer_size (RTCD_RTC_NACKBUFFERSIZE): 70000 is out of range [0, 65535]"),
    ('[rtc]\nturn.static_auth_secret = "s"\nturn.credentials_expiration_minutes = 10080',
     ("invalid rtc.turn.credentials_expiration_minutes "
     "(RTCD_RTC_TURNCONFIG_CREDENTIALSEXPIRATIONMINUTES): 10080 should be less than 10080 "
     "(1 week)")),
    ('[rtc]\nturn.static_auth_secret = "s"\nturn.credentials_expiration_minutes = 0',
     ("invalid rtc.turn.credentials_expiration_minutes "
     "(RTCD_RTC_TURNCONFIG_CREDENTIALSEXPIRATIONMINUTES): 0 is not a positive number of minutes")),
    ("[rtc]\nudp_sockets_count = 0",
     "invalid rtc.udp_sockets_count (RTCD_RTC_UDPSOCKETSCOUNT): 0 should be greater than 0"),
    ('[rtc]\nice_address_udp = "10.0.0.1, 1.2.3"',
     "invalid rtc.ice_address_udp (RTCD_RTC_ICEADDRESSUDP): '1.2.3' is not a valid IP address"),
    ('[rtc]\nice_address_tcp = "fe80::1%eth0"',
     ("invalid rtc.ice_address_tcp (RTCD_RTC_ICEADDRESSTCP): 'fe80::1%eth0' is not a valid IP "
     "address")),
    ("[rtc]\nice_host_port_override = 70",
     ("invalid rtc.ice_host_port_override (RTCD_RTC_ICEHOSTPORTOVERRIDE): 70 is not in allowed "
     "range [80, 49151]")),
    ('[rtc]\nice_host_port_override = "10.0.0.1:8443"',
     ("invalid rtc.ice_host_port_override (RTCD_RTC_ICEHOSTPORTOVERRIDE): failed to parse mapping "
     "'10.0.0.1:8443': invalid map pairing syntax (expected a port or "
     "\"localIP/port,localIP/port\")")),
    ('[rtc]\nice_host_port_override = "10.0.0.1/8443,10.0.0.2/8443"',
     ("invalid rtc.ice_host_port_override (RTCD_RTC_ICEHOSTPORTOVERRIDE): failed to parse mapping "
     "'10.0.0.1/8443,10.0.0.2/8443': duplicate port found for 8443")),
    ('[rtc]\nice_host_port_override = "10.0.0.1/8443,10.0.0.1/8444"',
     ("invalid rtc.ice_host_port_override (RTCD_RTC_ICEHOSTPORTOVERRIDE): failed to parse mapping "
     "'10.0.0.1/8443,10.0.0.1/8444': duplicate mapping found for 10.0.0.1")),
    ('[rtc]\nice_host_port_override = "10.0.0.1/x"',
     ("invalid rtc.ice_host_port_override (RTCD_RTC_ICEHOSTPORTOVERRIDE): failed to parse mapping "
     "'10.0.0.1/x': failed to parse port number 'x'")),
    ('[rtc]\nice_host_override = "not a host!"',
     ("invalid rtc.ice_host_override (RTCD_RTC_ICEHOSTOVERRIDE): 'not a host!' is neither an IP "
     "address nor a hostname")),
    ('[rtc]\nice_port_udp = "8443"',
     ("invalid rtc.ice_port_udp (RTCD_RTC_ICEPORTUDP): config file value '8443' (string) is not "
     "an integer")),
    ("[rtc]\nenable_ipv6 = 1",
     ("invalid rtc.enable_ipv6 (RTCD_RTC_ENABLEIPV6): config file value 1 (integer) is not a "
     "boolean")),
    ("[rtc]\nice_servers = \"stun:a\"",
     ("invalid rtc.ice_servers (RTCD_RTC_ICESERVERS): config file value: expected an array, got "
     "string")),
    ("[api]\nhttp = 5",
     "invalid api.http: config file value 5 (integer) is not a table"),
    ("[api]\nsecurity.enable_admin = true",
     ("invalid api.security.admin_secret_key (RTCD_API_SECURITY_ADMINSECRETKEY): should not be "
     "empty when api.security.enable_admin is true")),
    ("[api]\nsecurity.session_cache.expiration_minutes = 0",
     ("invalid api.security.session_cache.expiration_minutes "
     "(RTCD_API_SECURITY_SESSIONCACHE_EXPIRATIONMINUTES): 0 is not a positive number of minutes")),
    ('[api]\nhttp.listen_address = ""',
     "invalid api.http.listen_address (RTCD_API_HTTP_LISTENADDRESS): should not be empty"),
    ('[api]\nhttp.listen_address = "8045"',
     ("invalid api.http.listen_address (RTCD_API_HTTP_LISTENADDRESS): '8045' is not a valid listen "
     "address: expected host:port, e.g. \":8045\" or \"127.0.0.1:8045\"")),
    ('[api]\nhttp.listen_address = ":http"',
     ("invalid api.http.listen_address (RTCD_API_HTTP_LISTENADDRESS): ':http' is not a valid "
     "listen address: port must be a number in [0, 65535]")),
    ('[api]\nhttp.listen_address = "::1:8045"',
     ("invalid api.http.listen_address (RTCD_API_HTTP_LISTENADDRESS): '::1:8045' is not a valid "
     "listen address: expected host:port, e.g. \":8045\" or \"127.0.0.1:8045\"")),
    ('[api]\nhttp.listen_address = "bad_host:8045"',
     ("invalid api.http.listen_address (RTCD_API_HTTP_LISTENADDRESS): 'bad_host:8045' is not a "
     "valid listen address: 'bad_host' is not a host name or IP")),
    ('[store]\ndata_source = ""',
     "invalid store.data_source (RTCD_STORE_DATASOURCE): should not be empty"),
    ("[logger]\nenable_console = false\nenable_file = false",
     ("invalid logger.enable_console (RTCD_LOGGER_ENABLECONSOLE): should enable at least one "
     "logging target (logger.enable_console or logger.enable_file)")),
    ('[logger]\nconsole_level = "verbose"',
     ("invalid logger.console_level (RTCD_LOGGER_CONSOLELEVEL): 'verbose' is not a log level "
     "(panic, fatal, error, warn, info, debug, trace; any case)")),
    ('[logger]\nfile_level = "warning"',
     ("invalid logger.file_level (RTCD_LOGGER_FILELEVEL): 'warning' is not a log level (panic, "
     "fatal, error, warn, info, debug, trace; any case)")),
    ('[logger]\nfile_location = ""',
     ("invalid logger.file_location (RTCD_LOGGER_FILELOCATION): should not be empty when "
     "logger.enable_file is true")),
    ("[switchboard]\ndrain_grace_period = -1",
     ("invalid switchboard.drain_grace_period (RTCD_SWITCHBOARD_DRAINGRACEPERIOD): -1.0 should be "
     "a number of seconds >= 0")),
    ("[switchboard]\ndrain_grace_period = nan",
     ("invalid switchboard.drain_grace_period (RTCD_SWITCHBOARD_DRAINGRACEPERIOD): nan should be "
     "a number of seconds >= 0")),
    ("[switchboard]\nmax_call_participants = -1",
     ("invalid switchboard.max_call_participants (RTCD_SWITCHBOARD_MAXCALLPARTICIPANTS): -1 "
     "should be 0 (unlimited) or a positive number")),
    ("[switchboard]\nsocket_buffer_size = 1000",
     ("invalid switchboard.socket_buffer_size (RTCD_SWITCHBOARD_SOCKETBUFFERSIZE): 1000 is not in "
     "allowed range [65536, 536870912] (bytes)")),
    ("[switchboard]\ncoalesce_us = 5001",
     ("invalid switchboard.coalesce_us (RTCD_SWITCHBOARD_COALESCEUS): 5001 is not in allowed "
     "range [0, 5000] (microseconds)")),
    ("[switchboard]\ncoalesce_us = -1",
     ("invalid switchboard.coalesce_us (RTCD_SWITCHBOARD_COALESCEUS): -1 is not in allowed "
     "range [0, 5000] (microseconds)")),
]


@pytest.mark.parametrize(("toml", "expected"), VALIDATION_CASES)
def test_validation_messages(toml: str, expected: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(tomllib.loads(toml))
    assert message(exc) == expected


@pytest.mark.parametrize("toml", [
    "[rtc]\nnack_buffer_size = 0",
    "[rtc]\nnack_buffer_size = 32\n",
    "[rtc]\nnack_buffer_size = 8192\n",
    "[rtc]\nice_port_udp = 80\nice_port_tcp = 49151",
    '[rtc]\nturn.credentials_expiration_minutes = 0',  # only checked when a secret is set
    '[rtc]\nturn.static_auth_secret = "s"\nturn.credentials_expiration_minutes = 10079',
    '[rtc]\nice_host_port_override = "+8443"',  # Go's Atoi takes a sign
    '[rtc]\nice_host_port_override = "10.0.0.1/8443,10.0.0.2/8444"',
    '[rtc]\nice_address_udp = "127.0.0.1, 10.0.0.1"',
    '[rtc]\nice_host_override = "rtcd.example.com"',
    '[rtc]\nice_host_override = "203.0.113.1/10.0.0.1,203.0.113.2/10.0.0.2"',
    '[api]\nhttp.listen_address = "[::1]:8045"',
    '[api]\nhttp.listen_address = "localhost:8045"',
    '[api]\nsecurity.enable_admin = true\nsecurity.admin_secret_key = "k"',
    '[logger]\nenable_console = false\nconsole_level = "nonsense"',
    '[logger]\nconsole_level = "Debug"\nfile_level = "TRACE"',
    "[switchboard]\ndrain_grace_period = 0\nmax_call_participants = 200",
    "[switchboard]\ncoalesce_us = 5000\ngc_tuning = false",
])
def test_valid_edge_values(toml: str) -> None:
    parse_config(tomllib.loads(toml))


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(tomllib.loads("[rtc]\nice_port_udp = 1\nudp_sockets_count = -5\n"
                                   '[store]\ndata_source = ""\n'))
    assert message(exc) == (
        "3 configuration problems:\n"
        "  invalid rtc.ice_port_udp (RTCD_RTC_ICEPORTUDP): 1 is not in allowed range [80, 49151]\n"
        "  invalid rtc.udp_sockets_count (RTCD_RTC_UDPSOCKETSCOUNT): -5 should be greater than 0\n"
        "  invalid store.data_source (RTCD_STORE_DATASOURCE): should not be empty")
    assert [p.key for p in exc.value.problems] == [
        "rtc.ice_port_udp", "rtc.udp_sockets_count", "store.data_source"]


def test_tls_needs_both_files() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(None, {"RTCD_API_HTTP_TLS_ENABLE": "true"})
    assert message(exc) == (
        "2 configuration problems:\n"
        "  invalid api.http.tls.cert_file (RTCD_API_HTTP_TLS_CERTFILE): should not be empty when "
        "api.http.tls.enable is true\n"
        "  invalid api.http.tls.cert_key (RTCD_API_HTTP_TLS_CERTKEY): should not be empty when "
        "api.http.tls.enable is true")


def test_tls_files_are_loaded(tls_files: tuple[str, str], tmp_path: Path) -> None:
    cert, key = tls_files
    ok = load_config(None, {"RTCD_API_HTTP_TLS_ENABLE": "1", "RTCD_API_HTTP_TLS_CERTFILE": cert,
                            "RTCD_API_HTTP_TLS_CERTKEY": key})
    assert ok.api.http.tls.enable
    with pytest.raises(ConfigError) as exc:
        load_config(None, {"RTCD_API_HTTP_TLS_ENABLE": "1", "RTCD_API_HTTP_TLS_CERTFILE": cert,
                           "RTCD_API_HTTP_TLS_CERTKEY": str(tmp_path / "missing.pem")})
    assert message(exc).startswith(
        f"invalid api.http.tls.cert_file (RTCD_API_HTTP_TLS_CERTFILE): failed to load cert files "
        f"{cert!r} and {str(tmp_path / 'missing.pem')!r}: ")
    with pytest.raises(ConfigError) as exc:  # key and certificate swapped
        load_config(None, {"RTCD_API_HTTP_TLS_ENABLE": "1", "RTCD_API_HTTP_TLS_CERTFILE": key,
                           "RTCD_API_HTTP_TLS_CERTKEY": cert})
    assert "failed to load cert files" in message(exc)


def test_ipv6_listen_address_needs_enable_ipv6() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(None, {"RTCD_RTC_ICEADDRESSUDP": "2001:db8::1"})
    assert message(exc) == ("invalid rtc.ice_address_udp (RTCD_RTC_ICEADDRESSUDP): 2001:db8::1 is "
                            "IPv6 but enable_ipv6 is false")
    assert load_config(None, {"RTCD_RTC_ICEADDRESSUDP": "2001:db8::1",
                              "RTCD_RTC_ENABLEIPV6": "true"}).rtc.enable_ipv6


def test_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[rtc\nice_port_udp = 1\n")
    with pytest.raises(ConfigError) as exc:
        load_config(bad, {})
    assert message(exc).startswith(f"failed to decode config file {bad}: ")
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, {})
    assert message(exc).startswith(f"failed to read config file {tmp_path}: ")
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100000)
    with pytest.raises(ConfigError) as exc:
        load_config(deep, {})
    assert message(exc) == f"failed to decode config file {deep}: nested too deeply"


def test_candidate_config_from_section() -> None:
    config = load_config(None, {"RTCD_RTC_ICEHOSTOVERRIDE": "203.0.113.9",
                                "RTCD_RTC_ICEHOSTPORTOVERRIDE": "30443",
                                "RTCD_RTC_ICESERVERS": '["stun:stun.example.com:3478"]'})
    cc = config.rtc.candidate_config()
    assert cc.host_override.host == "203.0.113.9"
    assert cc.port_override.port == 30443
    assert cc.stun_url == "stun:stun.example.com:3478"
    assert cc.ice_port_udp == 8443


@pytest.mark.parametrize(("name", "level"), [
    ("INFO", logging.INFO), ("debug", logging.DEBUG), ("Warn", logging.WARNING),
    ("error", logging.ERROR), ("fatal", logging.CRITICAL), ("trace", 5)])
def test_python_log_level(name: str, level: int) -> None:
    assert python_log_level(name) == level


def test_python_log_level_unknown() -> None:
    with pytest.raises(ValueError, match="'verbose' is not a log level"):
        python_log_level("verbose")


# ----------------------------------------------------------------------------------- Helm

# mattermost-helm charts/mattermost-rtcd values.yaml (and the Calls deployment docs), as YAML.
HELM_VALUES = r'''
configuration:
  environmentVariables:
    RTCD_API_SECURITY_ALLOWSELFREGISTRATION: "\"true\""
    RTCD_RTC_ICESERVERS: "'[{\"urls\":[\"stun:stun.global.calls.mattermost.com:3478\"]}]'"
    RTCD_LOGGER_CONSOLELEVEL: "\"DEBUG\""
    RTCD_LOGGER_ENABLEFILE: "\"false\""
    RTCD_RTC_ICEPORTUDP: "\"8443\""
    RTCD_RTC_ICEPORTTCP: "\"8443\""
  terminationGracePeriod: 18000 # 5 hours, used to gracefully draining the instance.
'''


def _helm_env() -> tuple[dict[str, str], dict[str, Any]]:
    """The env a container gets: the chart renders ``- name: K\\n  value: {{ $val }}``."""
    yaml = pytest.importorskip("yaml")
    values = yaml.safe_load(HELM_VALUES)["configuration"]
    env = {}
    for name, raw in values["environmentVariables"].items():
        rendered = yaml.safe_load(f"- name: {name}\n  value: {raw}\n")
        env[name] = rendered[0]["value"]
    return env, values


def test_helm_values_from_the_deployment_docs() -> None:
    env, values = _helm_env()
    assert env["RTCD_API_SECURITY_ALLOWSELFREGISTRATION"] == "true"
    config = load_config(None, env)
    assert config.api.security.allow_self_registration is True
    assert config.rtc.ice_servers == (
        IceServer(urls=("stun:stun.global.calls.mattermost.com:3478",)),)
    assert config.rtc.stun_url == "stun:stun.global.calls.mattermost.com:3478"
    assert config.logger.console_level == "DEBUG"
    assert config.logger.enable_file is False
    assert config.rtc.ice_port_udp == config.rtc.ice_port_tcp == 8443
    assert config.switchboard.drain_grace_period == values["terminationGracePeriod"]


def test_helm_values_without_the_template_rendering_are_refused_with_a_hint() -> None:
    yaml = pytest.importorskip("yaml")
    raw = yaml.safe_load(HELM_VALUES)["configuration"]["environmentVariables"]
    with pytest.raises(ConfigError) as exc:
        load_config(None, raw)
    assert "(the value is wrapped in quotes; remove them)" in message(exc)
    assert "RTCD_LOGGER_ENABLEFILE" in message(exc)


# ----------------------------------------------------------------------------------- TURN


def test_turn_credentials_vectors() -> None:
    # computed with: printf '%s' "$user" | openssl dgst -sha1 -hmac "$secret" -binary | base64
    assert turn_credentials("turn-secret", "sess-1", 60, now=1700000000.9) == (
        "1700003600:sess-1", "B4Oj8+yd4x+cKe2sUnk4gMBNCvo=")
    assert turn_credentials("Ey4-H_BJA00_TVByPi8DozE12ekN3S7A", "4y6kw5jd8pn5mjtqy1aw7cbswy", 1440,
                            now=1700000000) == (
        "1700086400:4y6kw5jd8pn5mjtqy1aw7cbswy", "ok8PsOBf+2wTr1YYRHEP7Uf5X4E=")


def test_turn_credentials_default_now() -> None:
    import time

    user, _ = turn_credentials("s", "id", 1)
    expiry = int(user.split(":")[0])
    assert time.time() + 50 < expiry <= time.time() + 60


@pytest.mark.parametrize(("args", "error"), [
    (("s", "", 60), "username should not be empty"),
    (("", "id", 60), "secret should not be empty"),
    (("s", "id", 0), "expirationTS should be a positive number"),
    (("s", "id", 10081), "expirationTS cannot be more than a week into the future"),
])
def test_turn_credentials_errors(args: tuple[str, str, int], error: str) -> None:
    with pytest.raises(ValueError) as exc:
        turn_credentials(*args, now=1700000000)
    assert str(exc.value) == error


# ------------------------------------------------------------------------------- fuzzing


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(KEYS), st.text(max_size=40))
def test_any_env_text_gives_a_config_or_a_config_error(key: cfgmod.ConfigKey, text: str) -> None:
    try:
        config = load_config(None, {key.env: text})
    except ConfigError as exc:
        assert key.env in str(exc)
    else:
        assert isinstance(config, Config)


_toml_scalars = st.one_of(st.booleans(), st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
                          st.floats(allow_nan=True), st.text(max_size=12))
_toml_values = st.recursive(
    _toml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["urls", "username", "credential", "x"]), inner, max_size=3),
    max_leaves=8)
_leaf_keys = st.sampled_from([k.toml_path for k in KEYS] + [("rtc", "nope"), ("api",), ("zzz",)])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_leaf_keys, _toml_values), max_size=6))
def test_any_toml_document_gives_a_config_or_a_config_error(
        items: list[tuple[tuple[str, ...], Any]]) -> None:
    data: dict[str, Any] = {}
    for path, value in items:
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[path[-1]] = value
    logging.getLogger("sfu.config").disabled = True
    try:
        parse_config(data)
    except ConfigError:
        pass
    finally:
        logging.getLogger("sfu.config").disabled = False


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_file_bytes_give_a_config_or_a_config_error(tmp_path_factory: Any, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "c.toml"
    path.write_bytes(data)
    try:
        load_config(path, {})
    except ConfigError:
        pass
