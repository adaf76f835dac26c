"""Client credentials for the host API: registration, authentication, bearer tokens.

Sources (behaviour and messages only):
- rtcd ``service/auth/service.go``, ``crypto.go``, ``session_cache.go``, ``service/auth.go``,
  ``service/store/bitcask.go``: https://github.com/mattermost/rtcd
- bcrypt: https://www.usenix.org/legacy/events/usenix99/provos/provos.pdf
- token bucket semantics of golang.org/x/time/rate (``Limiter.Wait``):
  https://pkg.go.dev/golang.org/x/time/rate
- HTTP Basic and Bearer: https://www.rfc-editor.org/rfc/rfc7617,
  https://www.rfc-editor.org/rfc/rfc6750#section-2.1

Why: the Calls plugin authenticates to rtcd with a client id and a 32+ character key, and
registers itself (``POST /register``) when its first WebSocket connect fails. Keys are stored as
bcrypt hashes (Go's DefaultCost, 10), so a leaked store does not leak keys, and every bcrypt
operation goes through one token bucket (12 per second per CPU, burst 1, at most 10 s of
waiting) so a flood of logins cannot take every core. Errors carry rtcd's messages because the
HTTP layer returns them verbatim in ``{"error": ...}`` bodies.

rtcd keeps credentials in a bitcask directory at ``store.data_source``; we keep them in
``<data_source>/switchboard.db`` (SQLite, directory 0700 and file 0600 like rtcd's store).
Credentials registered with rtcd are not imported: the plugin re-registers on its own when
``allow_self_registration`` is on, otherwise they must be provisioned again.

Calls are synchronous and short (one indexed SQLite statement, one bcrypt operation, and a rate
limiter wait bounded by ``max_wait``); the service runs them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import secrets
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import bcrypt

__all__ = [
    "AUTH_RATE_PER_CPU",
    "DB_FILENAME",
    "MIN_KEY_LEN",
    "AlreadyRegisteredError",
    "AuthError",
    "AuthStore",
    "RateLimitedError",
    "RateLimiter",
    "SessionCache",
    "StoreError",
    "UnknownClientError",
    "admin_secret_matches",
    "parse_basic_auth",
    "parse_bearer_auth",
]

log = logging.getLogger("sfu.auth")

#: rtcd ``MinKeyLen``: shortest accepted auth key, and the length of bearer tokens (bytes).
MIN_KEY_LEN = 32
#: Longest key bcrypt can hash (Go's bcrypt rejects more with ErrPasswordTooLong).
MAX_KEY_LEN = 72
#: bitcask's default maximum key size, which bounds rtcd client ids (bytes).
MAX_CLIENT_ID_LEN = 64
#: rtcd ``authRequestsPerSecondPerCPU`` (MM-53483).
AUTH_RATE_PER_CPU = 12.0
#: rtcd ``authTimeout``: the longest a caller waits for the rate limiter (seconds).
AUTH_MAX_WAIT = 10.0
#: Go ``bcrypt.DefaultCost``.
BCRYPT_DEFAULT_ROUNDS = 10
#: The SQLite file created inside ``store.data_source``.
DB_FILENAME = "switchboard.db"
_SCHEMA_VERSION = 1


# ----------------------------------------------------------------------------------- errors


class AuthError(Exception):
    """A credentials operation failed; the message is rtcd's, fit for an HTTP error body."""


class AlreadyRegisteredError(AuthError):
    """``register`` for a client id that already has credentials."""


class UnknownClientError(AuthError, LookupError):
    """The client id has no credentials."""


class RateLimitedError(AuthError):
    """The rate limiter would make the caller wait longer than allowed; nothing was done."""


class StoreError(AuthError):
    """The credentials database cannot be opened, read or written."""


# ------------------------------------------------------------------------------ rate limiter


class RateLimiter:
    """A token bucket with ``Limiter.Wait`` semantics (golang.org/x/time/rate).

    ``rate`` tokens per second accumulate up to ``burst``. ``acquire`` reserves one token and
    sleeps until it is due; reservations queue up, so the n-th concurrent caller waits about
    n/rate seconds. When the wait would exceed ``max_wait`` it raises RateLimitedError at once
    and reserves nothing. ``clock`` (seconds, monotonic) and ``sleep`` are injectable for tests.
    Thread-safe.
    """

    def __init__(self, rate: float, burst: int = 1, max_wait: float = AUTH_MAX_WAIT, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        if not max_wait >= 0:
            raise ValueError(f"max_wait must be >= 0, got {max_wait}")
        self.rate = float(rate)
        self.burst = burst
        self.max_wait = float(max_wait)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._last = clock()

    @classmethod
    def per_cpu(cls, per_cpu: float = AUTH_RATE_PER_CPU, *, max_wait: float = AUTH_MAX_WAIT,
                clock: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep) -> RateLimiter:
        """rtcd's limiter: ``per_cpu`` operations per second per usable CPU, burst 1."""
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # pragma: no cover - not Linux
            cpus = os.cpu_count() or 1
        return cls(per_cpu * max(cpus, 1), 1, max_wait, clock=clock, sleep=sleep)

    def reserve(self, now: float) -> float:
        """Reserve one token at ``now``; return the seconds until it may be used.

        Raises RateLimitedError (and reserves nothing) if that exceeds ``max_wait``.
        """
        with self._lock:
            elapsed = max(0.0, now - self._last)
            tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
            tokens -= 1.0
            delay = -tokens / self.rate if tokens < 0 else 0.0
            if delay > self.max_wait:
                raise RateLimitedError("rate: Wait(n=1) would exceed context deadline")
            self._tokens = tokens
            self._last = max(now, self._last)
            return delay

    def acquire(self) -> None:
        """Reserve a token and sleep until it is due (``Limiter.Wait``)."""
        delay = self.reserve(self._clock())
        if delay > 0:
            self._sleep(delay)


# ----------------------------------------------------------------------------- session cache


@dataclass(frozen=True)
class _Session:
    client_id: str
    expires: float


class SessionCache:
    """Bearer tokens in memory, one per client (rtcd ``auth.SessionCache``).

    ``clock`` is monotonic seconds; a token is valid until ``expiration_minutes`` after it was
    issued. Logging in again replaces the client's previous token. Thread-safe.
    """

    def __init__(self, expiration_minutes: int, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if expiration_minutes <= 0:
            raise ValueError("invalid ExpirationMinutes value: should be a positive number")
        self.ttl = expiration_minutes * 60.0
        self._clock = clock
        self._lock = threading.Lock()
        self._by_token: dict[str, _Session] = {}
        self._by_client: dict[str, str] = {}

    def put(self, client_id: str, token: str) -> None:
        """Make ``token`` the client's only valid token."""
        if not client_id:
            raise AuthError("can not cache: invalid client id")
        if not token:
            raise AuthError("can not cache: invalid token")
        now = self._clock()
        with self._lock:
            if token in self._by_token:
                raise AuthError("can not cache: token in use")
            self._drop_client(client_id)
            self._by_token[token] = _Session(client_id, now + self.ttl)
            self._by_client[client_id] = token
            # Forget expired tokens of clients that never came back.
            for _token, session in list(self._by_token.items()):
                if now > session.expires:
                    self._drop_client(session.client_id)

    def get(self, token: str) -> str:
        """The client id of ``token``; AuthError("token is invalid"/"session is expired")."""
        now = self._clock()
        with self._lock:
            session = self._by_token.get(token)
            if session is None:
                raise AuthError("token is invalid")
            if now > session.expires:
                self._drop_client(session.client_id)
                raise AuthError("session is expired")
            return session.client_id

    def delete(self, client_id: str) -> None:
        """Invalidate the client's token, if any."""
        with self._lock:
            self._drop_client(client_id)

    def __len__(self) -> int:
        return len(self._by_token)

    def _drop_client(self, client_id: str) -> None:
        token = self._by_client.pop(client_id, None)
        if token is not None:
            self._by_token.pop(token, None)


def new_token(length: int = MIN_KEY_LEN) -> str:
    """A random URL-safe token of ``length`` characters (6 bits of entropy each)."""
    return secrets.token_urlsafe(length)[:length]


# ---------------------------------------------------------------------------------- helpers


def admin_secret_matches(presented: str, *, enable_admin: bool, admin_secret_key: str) -> bool:
    """True if ``presented`` (a Basic auth password) is the admin key and admin is enabled.

    Compared in constant time; an empty configured key never matches.
    """
    if not enable_admin or not admin_secret_key:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"),
                               admin_secret_key.encode("utf-8", "surrogatepass"))


def parse_basic_auth(header: str) -> tuple[str, str] | None:
    """``(user, password)`` from an ``Authorization: Basic`` value, or None (Go
    ``Request.BasicAuth``: the scheme is case-insensitive, the split is at the first colon)."""
    if len(header) < 6 or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password


def parse_bearer_auth(header: str) -> str | None:
    """The token of an ``Authorization: Bearer`` value, or None (scheme case-insensitive)."""
    if len(header) < 7 or header[:7].lower() != "bearer ":
        return None
    return header[7:]


# ------------------------------------------------------------------------------------ store


class AuthStore:
    """Registered clients in ``<data_source>/switchboard.db`` plus the bearer token cache.

    ``data_source`` is rtcd's ``store.data_source`` directory; it is created with mode 0700 if
    missing, and the database file with 0600. ``bcrypt_rounds`` defaults to Go's DefaultCost
    (tests lower it). ``limiter`` defaults to rtcd's (12 per second per CPU, burst 1, 10 s
    wait); ``clock`` drives token expiry. Safe to call from several threads.
    """

    def __init__(self, data_source: str | os.PathLike[str], *,
                 session_cache_minutes: int = 1440,
                 bcrypt_rounds: int = BCRYPT_DEFAULT_ROUNDS,
                 limiter: RateLimiter | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not os.fspath(data_source):
            raise StoreError("invalid DataSource value: should not be empty")
        self.directory = Path(data_source)
        self.path = self.directory / DB_FILENAME
        self.bcrypt_rounds = bcrypt_rounds
        self.limiter = limiter if limiter is not None else RateLimiter.per_cpu()
        self.sessions = SessionCache(session_cache_minutes, clock=clock)
        self._lock = threading.Lock()
        self._db = self._open()

    # -- lifecycle

    def _open(self) -> sqlite3.Connection:
        try:
            if not self.directory.exists():
                # Like bitcask's MkdirAll with WithDirFileModeBeforeUmask(0700): every directory
                # created gets 0700 (the umask still applies).
                missing = [self.directory, *self.directory.parents]
                for directory in reversed(missing):
                    if not directory.exists():
                        os.makedirs(directory, mode=0o700, exist_ok=True)
            elif not self.directory.is_dir():
                raise StoreError(f"failed to open store: {self.directory} is not a directory")
            if not self.path.exists():
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
                os.close(fd)
            else:
                mode = stat.S_IMODE(self.path.stat().st_mode)
                if mode & 0o077:
                    log.warning("auth: %s had mode %o; restricting it to 0600", self.path, mode)
                    os.chmod(self.path, 0o600)
            db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None,
                                 check_same_thread=False)
        except StoreError:
            raise
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"failed to open store {self.path}: {exc}") from None
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise StoreError(f"failed to open store {self.path}: schema version {version} "
                                 f"is newer than this program's ({_SCHEMA_VERSION})")
            db.execute("CREATE TABLE IF NOT EXISTS clients ("
                       " client_id TEXT PRIMARY KEY NOT NULL,"
                       " key_hash TEXT NOT NULL,"
                       " created_at INTEGER NOT NULL)")
            db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        except StoreError:
            db.close()
            raise
        except sqlite3.Error as exc:
            db.close()
            raise StoreError(f"failed to open store {self.path}: {exc}") from None
        return db

    def close(self) -> None:
        """Close the database (the token cache is dropped with the object)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- database

    def _get_hash(self, client_id: str) -> str | None:
        try:
            with self._lock:
                row = self._db.execute("SELECT key_hash FROM clients WHERE client_id = ?",
                                       (client_id,)).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"failed to read store: {exc}") from None
        return None if row is None else str(row[0])

    def is_registered(self, client_id: str) -> bool:
        """Whether ``client_id`` has credentials."""
        return bool(client_id) and self._get_hash(client_id) is not None

    def client_ids(self) -> list[str]:
        """Every registered client id, sorted."""
        try:
            with self._lock:
                rows = self._db.execute("SELECT client_id FROM clients ORDER BY client_id")
                return [str(r[0]) for r in rows.fetchall()]
        except sqlite3.Error as exc:
            raise StoreError(f"failed to read store: {exc}") from None

    # -- operations

    def register(self, client_id: str, auth_key: str) -> None:
        """Store a bcrypt hash of ``auth_key`` for a new ``client_id`` (rtcd ``Register``)."""
        key = auth_key.encode("utf-8", "surrogatepass")
        if len(key) < MIN_KEY_LEN:
            raise AuthError("registration failed: key not long enough")
        if not client_id:
            raise AuthError("registration failed: error: empty key")
        if len(key) > MAX_KEY_LEN:
            raise AuthError("registration failed: bcrypt: password length exceeds 72 bytes")
        if len(client_id.encode("utf-8", "surrogatepass")) > MAX_CLIENT_ID_LEN:
            raise AuthError("registration failed: failed to set key: error: key too large")
        if self._get_hash(client_id) is not None:
            raise AlreadyRegisteredError("registration failed: already registered")
        try:
            self.limiter.acquire()
        except RateLimitedError as exc:
            raise RateLimitedError(f"registration failed: {exc}") from None
        hashed = bcrypt.hashpw(key, bcrypt.gensalt(self.bcrypt_rounds)).decode("ascii")
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO clients (client_id, key_hash, created_at) VALUES (?, ?, ?)",
                    (client_id, hashed, int(time.time())))
        except sqlite3.IntegrityError:
            raise AlreadyRegisteredError("registration failed: already registered") from None
        except sqlite3.Error as exc:
            raise StoreError(f"registration failed: failed to set key: {exc}") from None
        log.info("auth: registered client %s", client_id)

    def verify(self, client_id: str, auth_key: str) -> None:
        """rtcd ``Authenticate``: return if the key is right, else raise AuthError.

        Unknown clients fail at once (UnknownClientError); known ones pass the rate limiter
        (RateLimitedError) before the bcrypt comparison.
        """
        if not client_id:
            raise AuthError("authentication failed: error: empty key")
        hashed = self._get_hash(client_id)
        if hashed is None:
            raise UnknownClientError("authentication failed: error: not found")
        try:
            self.limiter.acquire()
        except RateLimitedError as exc:
            raise RateLimitedError(f"authentication failed: {exc}") from None
        key = auth_key.encode("utf-8", "surrogatepass")
        try:
            ok = bool(key) and bcrypt.checkpw(key, hashed.encode("ascii"))
        except ValueError:  # over 72 bytes, or a damaged hash
            ok = False
        if not ok:
            raise AuthError("authentication failed")

    def authenticate(self, client_id: str, auth_key: str) -> bool:
        """True if ``auth_key`` is the client's key (bcrypt, constant time per hash).

        False for a wrong key or an unknown client; RateLimitedError if the limiter refuses;
        StoreError if the database fails.
        """
        try:
            self.verify(client_id, auth_key)
        except (RateLimitedError, StoreError):
            raise
        except AuthError:
            return False
        return True

    def unregister(self, client_id: str) -> None:
        """Delete the client's credentials and its bearer token (rtcd ``Unregister``)."""
        if not client_id:
            raise AuthError("unregister failed: error: empty key")
        try:
            with self._lock:
                cursor = self._db.execute("DELETE FROM clients WHERE client_id = ?", (client_id,))
        except sqlite3.Error as exc:
            raise StoreError(f"unregister failed: {exc}") from None
        if cursor.rowcount == 0:
            raise UnknownClientError("unregister failed: error: not found")
        self.sessions.delete(client_id)
        log.info("auth: unregistered client %s", client_id)

    def login(self, client_id: str, auth_key: str) -> str:
        """Check the credentials and return a new 32-character bearer token (rtcd ``Login``).

        The token replaces the client's previous one and expires after the session cache's
        lifetime. AuthError subclasses with ``"login failed: ..."`` messages otherwise.
        """
        try:
            self.verify(client_id, auth_key)
        except AuthError as exc:
            raise type(exc)(f"login failed: {exc}") from None
        token = new_token()
        try:
            self.sessions.put(client_id, token)
        except AuthError as exc:
            raise AuthError(f"login failed: {exc}") from None
        return token

    def authenticate_token(self, token: str) -> str | None:
        """The client id a bearer token belongs to, or None if unknown or expired."""
        try:
            return self.sessions.get(token)
        except AuthError:
            return None
