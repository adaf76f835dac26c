"""signaling/auth: registration, bcrypt checks, bearer tokens, the rate limiter, the store file."""

from __future__ import annotations

import base64
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from switchboard.signaling.auth import (
    DB_FILENAME,
    AlreadyRegisteredError,
    AuthError,
    AuthStore,
    RateLimitedError,
    RateLimiter,
    SessionCache,
    StoreError,
    UnknownClientError,
    admin_secret_matches,
    parse_basic_auth,
    parse_bearer_auth,
)

KEY = "Ey4-H_BJA00_TVByPi8DozE12ekN3S7A"  # 32 characters, like the plugin's generated keys
OTHER_KEY = "x" * 40


class FakeClock:
    """Monotonic seconds that only move when told to (or when someone sleeps)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def open_store(path: Path, clock: FakeClock, *, rate: float = 1000.0, max_wait: float = 10.0,
               minutes: int = 1440) -> AuthStore:
    limiter = RateLimiter(rate, 1, max_wait, clock=clock, sleep=clock.sleep)
    return AuthStore(path, session_cache_minutes=minutes, bcrypt_rounds=4, limiter=limiter,
                     clock=clock)


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[AuthStore]:
    s = open_store(tmp_path / "db", clock)
    try:
        yield s
    finally:
        s.close()


# -------------------------------------------------------------------- register / authenticate


def test_register_then_authenticate(store: AuthStore) -> None:
    store.register("mm-a", KEY)
    assert store.is_registered("mm-a")
    assert store.authenticate("mm-a", KEY) is True
    assert store.authenticate("mm-a", KEY[:-1] + "B") is False
    assert store.authenticate("mm-a", "") is False
    assert store.authenticate("mm-b", KEY) is False
    assert store.authenticate("", KEY) is False
    assert store.client_ids() == ["mm-a"]


@pytest.mark.parametrize(("client_id", "key", "exc_type", "text"), [
    ("mm-a", KEY[:-1] + "B", AuthError, "authentication failed"),
    ("mm-b", KEY, UnknownClientError, "authentication failed: error: not found"),
    ("", KEY, AuthError, "authentication failed: error: empty key"),
    ("mm-a", "y" * 100, AuthError, "authentication failed"),
])
def test_verify_messages_are_rtcds(store: AuthStore, client_id: str, key: str,
                                   exc_type: type[AuthError], text: str) -> None:
    store.register("mm-a", KEY)
    with pytest.raises(exc_type) as exc:
        store.verify(client_id, key)
    assert str(exc.value) == text
    assert type(exc.value) is exc_type


def test_duplicate_registration(store: AuthStore) -> None:
    store.register("mm-a", KEY)
    with pytest.raises(AlreadyRegisteredError) as exc:
        store.register("mm-a", OTHER_KEY)
    assert str(exc.value) == "registration failed: already registered"
    assert store.authenticate("mm-a", KEY)  # the first key still works
    assert not store.authenticate("mm-a", OTHER_KEY)


@pytest.mark.parametrize(("client_id", "key", "text"), [
    ("mm-a", KEY[:31], "registration failed: key not long enough"),
    ("mm-a", "", "registration failed: key not long enough"),
    ("", KEY, "registration failed: error: empty key"),
    ("mm-a", "k" * 73, "registration failed: bcrypt: password length exceeds 72 bytes"),
    ("i" * 65, KEY, "registration failed: failed to set key: error: key too large"),
])
def test_registration_errors(store: AuthStore, client_id: str, key: str, text: str) -> None:
    with pytest.raises(AuthError) as exc:
        store.register(client_id, key)
    assert str(exc.value) == text
    assert type(exc.value) is AuthError
    assert store.client_ids() == []


def test_key_length_is_counted_in_bytes_like_go(store: AuthStore) -> None:
    store.register("mm-a", "é" * 16)  # 16 characters, 32 bytes
    assert store.authenticate("mm-a", "é" * 16)
    with pytest.raises(AuthError, match="key not long enough"):
        store.register("mm-b", "é" * 15 + "e")
    store.register("i" * 64, "k" * 72)  # both limits are inclusive
    assert store.authenticate("i" * 64, "k" * 72)


def test_unregister(store: AuthStore) -> None:
    store.register("mm-a", KEY)
    token = store.login("mm-a", KEY)
    store.unregister("mm-a")
    assert not store.is_registered("mm-a")
    assert store.authenticate("mm-a", KEY) is False
    assert store.authenticate_token(token) is None  # the token dies with the registration
    with pytest.raises(UnknownClientError) as exc:
        store.unregister("mm-a")
    assert str(exc.value) == "unregister failed: error: not found"
    with pytest.raises(AuthError) as exc2:
        store.unregister("")
    assert str(exc2.value) == "unregister failed: error: empty key"
    store.register("mm-a", OTHER_KEY)  # a fresh registration is possible again
    assert store.authenticate("mm-a", OTHER_KEY)


def test_persistence_across_reopen(tmp_path: Path, clock: FakeClock) -> None:
    with open_store(tmp_path / "db", clock) as s:
        s.register("mm-a", KEY)
        s.register("mm-b", OTHER_KEY)
        token = s.login("mm-a", KEY)
    with open_store(tmp_path / "db", clock) as s:
        assert s.client_ids() == ["mm-a", "mm-b"]
        assert s.authenticate("mm-a", KEY)
        assert s.authenticate("mm-b", OTHER_KEY)
        assert not s.authenticate("mm-a", OTHER_KEY)
        assert s.authenticate_token(token) is None  # tokens are in memory only, like rtcd's


def test_only_a_bcrypt_hash_is_stored(tmp_path: Path, clock: FakeClock) -> None:
    with open_store(tmp_path / "db", clock) as s:
        s.register("mm-a", KEY)
    raw = (tmp_path / "db" / DB_FILENAME).read_bytes()
    assert KEY.encode() not in raw
    db = sqlite3.connect(tmp_path / "db" / DB_FILENAME)
    (hashed,) = db.execute("SELECT key_hash FROM clients WHERE client_id = 'mm-a'").fetchone()
    db.close()
    assert hashed.startswith("$2b$04$") and len(hashed) == 60


def test_default_cost_is_gos_default(tmp_path: Path) -> None:
    with AuthStore(tmp_path / "db") as s:
        assert s.bcrypt_rounds == 10
        s.register("mm-a", KEY)
        assert s.authenticate("mm-a", KEY)
    db = sqlite3.connect(tmp_path / "db" / DB_FILENAME)
    (hashed,) = db.execute("SELECT key_hash FROM clients").fetchone()
    db.close()
    assert hashed.startswith("$2b$10$")


def test_concurrent_use_from_threads(store: AuthStore) -> None:
    ids = [f"mm-{i}" for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda c: store.register(c, KEY + c), ids))
        results = list(pool.map(lambda c: store.authenticate(c, KEY + c), ids))
        tokens = list(pool.map(lambda c: store.login(c, KEY + c), ids))
    assert results == [True] * 8
    assert [store.authenticate_token(t) for t in tokens] == ids
    assert store.client_ids() == sorted(ids)


# ---------------------------------------------------------------------------- bearer tokens


def test_login_returns_a_32_char_token(store: AuthStore) -> None:
    store.register("mm-a", KEY)
    token = store.login("mm-a", KEY)
    assert len(token) == 32
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert store.authenticate_token(token) == "mm-a"
    assert store.authenticate_token("x" * 32) is None
    assert store.authenticate_token("") is None


def test_a_new_login_replaces_the_previous_token(store: AuthStore) -> None:
    store.register("mm-a", KEY)
    store.register("mm-b", OTHER_KEY)
    first = store.login("mm-a", KEY)
    b = store.login("mm-b", OTHER_KEY)
    second = store.login("mm-a", KEY)
    assert first != second
    assert store.authenticate_token(first) is None
    assert store.authenticate_token(second) == "mm-a"
    assert store.authenticate_token(b) == "mm-b"


def test_token_expiry_with_a_fake_clock(tmp_path: Path, clock: FakeClock) -> None:
    with open_store(tmp_path / "db", clock, minutes=10) as s:
        s.register("mm-a", KEY)
        token = s.login("mm-a", KEY)
        clock.now += 600  # exactly at the expiry: still valid (Go: Now().After(expiry))
        assert s.authenticate_token(token) == "mm-a"
        clock.now += 0.001
        assert s.authenticate_token(token) is None
        assert len(s.sessions) == 0  # the expired entry was dropped
        fresh = s.login("mm-a", KEY)
        assert s.authenticate_token(fresh) == "mm-a"


@pytest.mark.parametrize(("client_id", "key", "exc_type", "text"), [
    ("mm-a", OTHER_KEY, AuthError, "login failed: authentication failed"),
    ("mm-z", KEY, UnknownClientError, "login failed: authentication failed: error: not found"),
])
def test_login_errors(store: AuthStore, client_id: str, key: str, exc_type: type[AuthError],
                      text: str) -> None:
    store.register("mm-a", KEY)
    with pytest.raises(exc_type) as exc:
        store.login(client_id, key)
    assert str(exc.value) == text
    assert len(store.sessions) == 0


def test_session_cache_messages(clock: FakeClock) -> None:
    cache = SessionCache(1, clock=clock)
    with pytest.raises(AuthError, match="^can not cache: invalid client id$"):
        cache.put("", "t" * 32)
    with pytest.raises(AuthError, match="^can not cache: invalid token$"):
        cache.put("a", "")
    cache.put("a", "t" * 32)
    with pytest.raises(AuthError, match="^can not cache: token in use$"):
        cache.put("b", "t" * 32)
    with pytest.raises(AuthError, match="^token is invalid$"):
        cache.get("u" * 32)
    clock.now += 61
    with pytest.raises(AuthError, match="^session is expired$"):
        cache.get("t" * 32)
    with pytest.raises(ValueError, match="should be a positive number"):
        SessionCache(0)


def test_session_cache_forgets_expired_tokens_of_absent_clients(clock: FakeClock) -> None:
    cache = SessionCache(1, clock=clock)
    for i in range(5):
        cache.put(f"c{i}", f"token-{i}")
    assert len(cache) == 5
    clock.now += 61
    cache.put("late", "token-late")
    assert len(cache) == 1


# ----------------------------------------------------------------------------- rate limiter


def test_limiter_queues_reservations_like_go(clock: FakeClock) -> None:
    limiter = RateLimiter(2.0, 1, 1.0, clock=clock, sleep=clock.sleep)
    assert limiter.reserve(clock.now) == 0.0
    assert limiter.reserve(clock.now) == pytest.approx(0.5)
    assert limiter.reserve(clock.now) == pytest.approx(1.0)
    for _ in range(2):  # refused reservations take nothing
        with pytest.raises(RateLimitedError) as exc:
            limiter.reserve(clock.now)
        assert str(exc.value) == "rate: Wait(n=1) would exceed context deadline"
    assert limiter.reserve(clock.now + 0.5) == pytest.approx(1.0)


def test_limiter_acquire_sleeps(clock: FakeClock) -> None:
    limiter = RateLimiter(2.0, 1, 10.0, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(10):
        limiter.acquire()
    assert clock.sleeps == pytest.approx([0.5] * 9)
    assert clock.now - start == pytest.approx(4.5)


def test_limiter_burst_and_refill_cap(clock: FakeClock) -> None:
    limiter = RateLimiter(10.0, 3, 0.0, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        assert limiter.reserve(clock.now) == 0.0
    with pytest.raises(RateLimitedError):
        limiter.reserve(clock.now)
    clock.now += 3600  # a long idle period refills only up to the burst
    for _ in range(3):
        assert limiter.reserve(clock.now) == 0.0
    with pytest.raises(RateLimitedError):
        limiter.reserve(clock.now)
    clock.now += 0.1
    assert limiter.reserve(clock.now) == 0.0


def test_limiter_is_thread_safe() -> None:
    limiter = RateLimiter(100.0, 1, 10.0, clock=lambda: 0.0)
    delays: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        d = limiter.reserve(0.0)
        with lock:
            delays.append(d)

    threads = [threading.Thread(target=take) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(delays) == pytest.approx([i / 100 for i in range(50)])


def test_limiter_default_is_12_per_cpu() -> None:
    limiter = RateLimiter.per_cpu()
    assert limiter.rate == 12.0 * len(os.sched_getaffinity(0))
    assert limiter.burst == 1
    assert limiter.max_wait == 10.0
    assert AuthStore.__init__.__kwdefaults__["bcrypt_rounds"] == 10


@pytest.mark.parametrize(("args", "text"), [
    ((0.0,), "rate must be positive, got 0.0"),
    ((1.0, 0), "burst must be at least 1, got 0"),
    ((1.0, 1, -1.0), "max_wait must be >= 0, got -1.0"),
])
def test_limiter_arguments(args: tuple[float, ...], text: str) -> None:
    with pytest.raises(ValueError) as exc:
        RateLimiter(*args)
    assert str(exc.value) == text


def test_store_operations_are_rate_limited(tmp_path: Path, clock: FakeClock) -> None:
    with open_store(tmp_path / "db", clock, rate=1.0, max_wait=0.0) as s:
        s.register("mm-a", KEY)  # takes the one token
        with pytest.raises(RateLimitedError) as exc:
            s.authenticate("mm-a", KEY)
        assert str(exc.value) == ("authentication failed: rate: Wait(n=1) would exceed context "
                                  "deadline")
        with pytest.raises(RateLimitedError) as exc:
            s.register("mm-b", KEY)
        assert str(exc.value) == ("registration failed: rate: Wait(n=1) would exceed context "
                                  "deadline")
        with pytest.raises(RateLimitedError) as exc:
            s.login("mm-a", KEY)
        assert str(exc.value) == ("login failed: authentication failed: rate: Wait(n=1) would "
                                  "exceed context deadline")
        # rtcd checks the store before the limiter: unknown clients and bad input cost nothing
        assert s.authenticate("mm-unknown", KEY) is False
        with pytest.raises(AuthError, match="key not long enough"):
            s.register("mm-b", "short")
        with pytest.raises(AlreadyRegisteredError):
            s.register("mm-a", KEY)
        clock.now += 1.0
        assert s.authenticate("mm-a", KEY)
        assert not s.is_registered("mm-b")


def test_store_waits_for_the_limiter(tmp_path: Path, clock: FakeClock) -> None:
    with open_store(tmp_path / "db", clock, rate=4.0, max_wait=10.0) as s:
        s.register("mm-a", KEY)
        for _ in range(4):
            assert s.authenticate("mm-a", KEY)
        assert clock.sleeps == pytest.approx([0.25] * 4)


# ------------------------------------------------------------------------ files and errors


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_file_permissions(tmp_path: Path, clock: FakeClock, umask_022: None) -> None:
    data_source = tmp_path / "state" / "rtcd_db"
    with open_store(data_source, clock) as s:
        s.register("mm-a", KEY)
    assert stat.S_IMODE(data_source.stat().st_mode) == 0o700
    assert stat.S_IMODE(data_source.parent.stat().st_mode) == 0o700  # like Go's MkdirAll(0700)
    assert stat.S_IMODE((data_source / DB_FILENAME).stat().st_mode) == 0o600
    assert sorted(p.name for p in data_source.iterdir()) == [DB_FILENAME]


def test_loose_file_permissions_are_tightened(tmp_path: Path, clock: FakeClock,
                                              caplog: pytest.LogCaptureFixture) -> None:
    with open_store(tmp_path / "db", clock) as s:
        s.register("mm-a", KEY)
    path = tmp_path / "db" / DB_FILENAME
    path.chmod(0o644)
    caplog.set_level(logging.WARNING, "sfu.auth")
    with open_store(tmp_path / "db", clock) as s:
        assert s.authenticate("mm-a", KEY)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "had mode 644; restricting it to 0600" in caplog.text


def test_store_open_errors(tmp_path: Path, clock: FakeClock) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(StoreError) as exc:
        open_store(not_a_dir, clock)
    assert str(exc.value) == f"failed to open store: {not_a_dir} is not a directory"

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / DB_FILENAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError) as exc:
        open_store(corrupt, clock)
    assert str(exc.value) == (f"failed to open store {corrupt / DB_FILENAME}: "
                              "file is not a database")

    with pytest.raises(StoreError) as exc:
        AuthStore("")
    assert str(exc.value) == "invalid DataSource value: should not be empty"


def test_newer_schema_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    open_store(tmp_path / "db", clock).close()
    db = sqlite3.connect(tmp_path / "db" / DB_FILENAME)
    db.execute("PRAGMA user_version = 7")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema version 7 is newer than this program's"):
        open_store(tmp_path / "db", clock)


def test_errors_form_a_hierarchy() -> None:
    for cls in (AlreadyRegisteredError, UnknownClientError, RateLimitedError, StoreError):
        assert issubclass(cls, AuthError)
    assert issubclass(UnknownClientError, LookupError)


# ---------------------------------------------------------------------------------- helpers


def test_admin_secret_matches() -> None:
    assert admin_secret_matches("s3cret", enable_admin=True, admin_secret_key="s3cret")
    assert not admin_secret_matches("s3cret", enable_admin=False, admin_secret_key="s3cret")
    assert not admin_secret_matches("s3cre", enable_admin=True, admin_secret_key="s3cret")
    assert not admin_secret_matches("", enable_admin=True, admin_secret_key="")
    assert admin_secret_matches("ключ", enable_admin=True, admin_secret_key="ключ")


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(("header", "expected"), [
    (_basic("mm-a:" + KEY), ("mm-a", KEY)),
    (_basic(":admin-key"), ("", "admin-key")),
    (_basic("a:b:c"), ("a", "b:c")),
    ("basic " + base64.b64encode(b"a:b").decode(), ("a", "b")),
    (_basic("no-colon"), None),
    ("Basic !!!", None),
    ("Basic " + base64.b64encode(b"\xff:x").decode(), None),
    ("Bearer abc", None),
    ("", None),
])
def test_parse_basic_auth(header: str, expected: tuple[str, str] | None) -> None:
    assert parse_basic_auth(header) == expected


@pytest.mark.parametrize(("header", "expected"), [
    ("Bearer abc", "abc"), ("bearer abc", "abc"), ("BEARER abc", "abc"), ("Bearer ", ""),
    ("Basic abc", None), ("Bearer", None), ("", None),
])
def test_parse_bearer_auth(header: str, expected: str | None) -> None:
    assert parse_bearer_auth(header) == expected


@given(st.text(max_size=80))
def test_auth_header_parsers_never_raise(header: str) -> None:
    result = parse_basic_auth(header)
    assert result is None or (isinstance(result, tuple) and len(result) == 2)
    token = parse_bearer_auth(header)
    assert token is None or isinstance(token, str)
