"""Server-side ICE-lite: answer connectivity checks for every session on one shared port.

Specs:
- RFC 8445 (ICE), sections 2.5 (lite), 6.1.1 (roles), 7.3 (STUN server procedures), 8.2 (lite
  nomination), 9 (restart): https://www.rfc-editor.org/rfc/rfc8445
- RFC 7675 (consent freshness): https://www.rfc-editor.org/rfc/rfc7675
- RFC 8489 (STUN) section 9.1 (short-term credentials): https://www.rfc-editor.org/rfc/rfc8489
- RFC 6544 (ICE-TCP) and RFC 4571 (RTP/RTCP framing over TCP):
  https://www.rfc-editor.org/rfc/rfc6544 https://www.rfc-editor.org/rfc/rfc4571
- RFC 8838 / RFC 8839 section 5.1 (trickle and the candidate attribute grammar):
  https://www.rfc-editor.org/rfc/rfc8839#section-5.1

Why ICE-lite: an SFU has public (or explicitly mapped) host addresses, so it never needs to
gather or check anything; it only answers the browser's checks. A lite agent is *always*
controlled (RFC 8445 section 6.1.1), so the server can send renegotiation offers without the ICE
role flipping; rtcd, a full agent, lost calls to exactly that role-conflict dance
(``reference/rtcd.md`` 1.3).

How it fits the media plane: the SFU listens on one UDP port for all sessions. The native plane
hands every STUN datagram to :meth:`IceLiteServer.handle_stun` with its source address and the
index of the local socket it came in on; the server finds the session by the local half of
USERNAME (``<server ufrag>:<client ufrag>``), checks MESSAGE-INTEGRITY with that session's
password and returns actions: :class:`SendStun` (the response, to be sent back on the same socket)
and :class:`Nominated` (bind the session's media 5-tuple to this address). Nothing here touches a
socket or a clock; time comes in as ``now`` (seconds, monotonic).

Decisions, with the RFC text that drives them:

- *Unknown ufrag*: no answer at all (only counted), so the port is no reflector for spoofed
  sources. Missing USERNAME or MESSAGE-INTEGRITY: 400. Bad MESSAGE-INTEGRITY: 401 without
  MESSAGE-INTEGRITY (RFC 8489 section 9.1.3). Errors after authentication (420, 487) carry
  MESSAGE-INTEGRITY (section 9.1.4).
- *Only the local half of USERNAME is checked* (RFC 8445 section 7.3: the username is valid if
  its first value is our ufrag; the peer's password is not needed to answer). The right half is
  recorded; it ends a remote ICE restart transition.
- *Role conflict* (RFC 8445 section 7.3.1.1): a request carrying ICE-CONTROLLED means the peer
  also thinks it is controlled. The RFC lets the controlled agent with the larger tie-breaker
  switch to controlling, but a lite agent cannot be controlling against a full agent (6.1.1: the
  full agent MUST take the controlling role), so the lite agent always takes the "retain its
  role" branch: it answers 487 Role Conflict. The peer then switches to controlling (7.2.5.1:
  it sent ICE-CONTROLLED, so it MUST switch) and retries. ICE-CONTROLLING is the normal case. A
  request with both attributes is malformed (400); one with neither is accepted.
- *Nomination* (RFC 8445 section 7.3.1.5 and 8.2): a valid check with USE-CANDIDATE selects its
  (address, socket). A later USE-CANDIDATE from another address re-selects (the controlling peer
  decides; this is how a network change re-binds the session), and emits :class:`Nominated`
  again. Valid checks without USE-CANDIDATE only refresh consent and are remembered as
  ``IceSession.last_addr``.
- *Consent* (RFC 7675): browsers send a check every 4-6 s. A session that has been nominated
  expires when no valid check arrived for ``consent_timeout`` (30 s, RFC 7675 section 5.1); a
  session never nominated expires ``connect_timeout`` after it was added. Any valid check
  refreshes consent: the peer proved it still wants the session, even while it is moving the
  session to a new path.
- *ICE restart* (RFC 8445 section 9): the session object stays; ``restart()`` installs new local
  credentials and ``set_remote()`` new remote ones. Until the first valid check that uses the new
  local ufrag, checks using the old local credentials are still accepted (the old path keeps
  carrying media meanwhile); then the old credentials are forgotten.
"""

from __future__ import annotations

import json
import logging
import secrets
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

from . import stun

__all__ = [
    "Address",
    "DropReason",
    "EndOfCandidates",
    "IceAction",
    "IceConfig",
    "IceError",
    "IceLiteServer",
    "IceSession",
    "IceState",
    "Nominated",
    "RemoteCandidate",
    "SendStun",
    "TcpFramer",
    "TcpFramingError",
    "format_trickle",
    "frame_tcp",
    "generate_credentials",
    "parse_candidate",
    "parse_trickle",
    "validate_pwd",
    "validate_ufrag",
]

logger = logging.getLogger("sfu.ice")

#: A transport address as the socket layer gives it: ``(host, port)``, or the IPv6 4-tuple.
Address = tuple[Any, ...]

CONSENT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 30.0

_ICE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/")
_ICE_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"


class IceError(ValueError):
    """Misuse of the ICE control API: bad credentials, duplicate ufrag, unknown session."""


@dataclass(frozen=True, slots=True)
class IceConfig:
    """Timers of the ICE-lite server."""

    #: Seconds without a valid check, after nomination, before consent is lost (RFC 7675 5.1).
    consent_timeout: float = CONSENT_TIMEOUT
    #: Seconds from ``add_session`` until a session must have been nominated.
    connect_timeout: float = CONNECT_TIMEOUT

    def __post_init__(self) -> None:
        if not self.consent_timeout > 0:
            raise IceError(f"consent_timeout must be positive, got {self.consent_timeout}")
        if not self.connect_timeout > 0:
            raise IceError(f"connect_timeout must be positive, got {self.connect_timeout}")


class IceState(Enum):
    """Lifecycle of one session's ICE (lite agents have no checklist state, RFC 8445 8.2)."""

    NEW = "new"  #: no valid check yet
    CHECKING = "checking"  #: valid checks, nothing nominated yet
    CONNECTED = "connected"  #: a pair is nominated
    CLOSED = "closed"  #: expired or removed


class DropReason(StrEnum):
    """Why a STUN datagram produced no success response. Counted in ``IceLiteServer.drops``."""

    BAD_MESSAGE = "bad_message"  #: not parseable as STUN (silent)
    BAD_FINGERPRINT = "bad_fingerprint"  #: FINGERPRINT mismatch (silent)
    RESPONSE = "response"  #: a success/error response: we never send requests (silent)
    INDICATION = "indication"  #: e.g. a Binding indication keepalive (silent)
    NOT_BINDING = "not_binding"  #: a request for another method, e.g. a TURN Allocate (silent)
    NO_USERNAME = "no_username"  #: answered 400
    BAD_USERNAME = "bad_username"  #: not UTF-8, too long, or no colon: answered 400
    UNKNOWN_UFRAG = "unknown_ufrag"  #: no session has this ufrag (silent)
    NO_INTEGRITY = "no_integrity"  #: answered 400
    BAD_INTEGRITY = "bad_integrity"  #: answered 401
    UNKNOWN_ATTRIBUTE = "unknown_attribute"  #: comprehension-required attribute: answered 420
    BAD_ATTRIBUTE = "bad_attribute"  #: malformed PRIORITY/role attributes: answered 400
    ROLE_CONFLICT = "role_conflict"  #: peer also claims controlled: answered 487


@dataclass(frozen=True, slots=True)
class SendStun:
    """Send ``data`` to ``addr`` on local socket ``sock_index``."""

    data: bytes
    addr: Address
    sock_index: int


@dataclass(frozen=True, slots=True)
class Nominated:
    """Bind ``session``'s media to ``addr`` on socket ``sock_index``.

    Emitted on the first nomination and again whenever a nomination arrives from a different
    (address, socket); ``previous`` is then the old binding.
    """

    session: IceSession
    addr: Address
    sock_index: int
    previous: tuple[Address, int] | None = None


IceAction = SendStun | Nominated


def validate_ufrag(value: str) -> None:
    """RFC 8839 section 5.4: ice-ufrag is 4-256 ice-chars (ALPHA / DIGIT / "+" / "/")."""
    if not 4 <= len(value) <= 256 or not _ICE_CHARS.issuperset(value):
        raise IceError(f"invalid ICE ufrag {value!r}: need 4-256 characters of [A-Za-z0-9+/]")


def validate_pwd(value: str) -> None:
    """RFC 8839 section 5.4: ice-pwd is 22-256 ice-chars."""
    if not 22 <= len(value) <= 256 or not _ICE_CHARS.issuperset(value):
        raise IceError("invalid ICE password: need 22-256 characters of [A-Za-z0-9+/]")


def _validate_remote_ufrag(value: str) -> None:
    # Lenient: only what would break USERNAME parsing. The peer's ufrag is informational here.
    if not value or ":" in value or len(value) > 256 or not value.isprintable() or " " in value:
        raise IceError(f"invalid remote ICE ufrag {value!r}")


def generate_credentials(ufrag_length: int = 8, pwd_length: int = 24) -> tuple[str, str]:
    """Random local ``(ufrag, pwd)`` from the ice-char alphabet (>= 128 bits in the password)."""
    if ufrag_length < 4 or pwd_length < 22:
        raise IceError("ufrag needs >= 4 and pwd >= 22 characters")
    ufrag = "".join(secrets.choice(_ICE_ALPHABET) for _ in range(ufrag_length))
    pwd = "".join(secrets.choice(_ICE_ALPHABET) for _ in range(pwd_length))
    return ufrag, pwd


class IceSession:
    """One peer's ICE state: credentials, selected address, consent clock.

    Create it with the local credentials put in the SDP answer/offer, register it with
    :meth:`IceLiteServer.add_session`, and give it the peer's credentials with
    :meth:`set_remote`. ``tag`` is free for the caller (e.g. its session id).
    """

    __slots__ = (
        "_confirmed_ufrag",
        "_local_creds",
        "_prev_remote_ufrag",
        "_server",
        "checks",
        "created",
        "last_addr",
        "last_check",
        "local_pwd",
        "local_ufrag",
        "nominations",
        "remote_candidates",
        "remote_end_of_candidates",
        "remote_pwd",
        "remote_ufrag",
        "selected",
        "state",
        "tag",
    )

    #: Remote candidates kept (informational only for a lite agent).
    MAX_REMOTE_CANDIDATES = 64

    def __init__(self, local_ufrag: str, local_pwd: str, *, tag: object = None) -> None:
        validate_ufrag(local_ufrag)
        validate_pwd(local_pwd)
        self.tag = tag
        self.local_ufrag = local_ufrag
        self.local_pwd = local_pwd
        self.remote_ufrag: str | None = None
        self.remote_pwd: str | None = None
        self.state = IceState.NEW
        #: ``now`` when added to a server.
        self.created: float | None = None
        #: ``now`` of the last valid check (consent).
        self.last_check: float | None = None
        #: The nominated ``(addr, sock_index)``.
        self.selected: tuple[Address, int] | None = None
        #: ``(addr, sock_index)`` of the most recent valid check, nominated or not.
        self.last_addr: tuple[Address, int] | None = None
        self.checks = 0
        self.nominations = 0
        self.remote_candidates: list[RemoteCandidate] = []
        self.remote_end_of_candidates = False
        # Accepted local credentials, newest first; two entries during an ICE restart.
        self._local_creds: list[tuple[str, bytes]] = [(local_ufrag, local_pwd.encode())]
        self._prev_remote_ufrag: str | None = None
        # The local ufrag of the last valid check.
        self._confirmed_ufrag: str | None = None
        self._server: IceLiteServer | None = None

    def __repr__(self) -> str:
        return f"IceSession({self.local_ufrag}, tag={self.tag!r}, {self.state.value})"

    @property
    def restarting(self) -> bool:
        """True while old local credentials are still accepted after :meth:`restart`."""
        return len(self._local_creds) > 1

    @property
    def local_ufrags(self) -> tuple[str, ...]:
        """Every local ufrag currently accepted (newest first)."""
        return tuple(u for u, _ in self._local_creds)

    def set_remote(self, ufrag: str, pwd: str) -> None:
        """Record the peer's credentials; a change is the peer's side of an ICE restart."""
        _validate_remote_ufrag(ufrag)
        if not pwd:
            raise IceError("empty remote ICE password")
        if self.remote_ufrag is not None and ufrag != self.remote_ufrag:
            self._prev_remote_ufrag = self.remote_ufrag
            self.remote_candidates.clear()
            self.remote_end_of_candidates = False
        self.remote_ufrag = ufrag
        self.remote_pwd = pwd

    def restart(self, new_local_ufrag: str, new_local_pwd: str) -> None:
        """ICE restart: new local credentials; the old ones stay valid until a check uses the new.

        RFC 8445 section 9 requires both the ufrag and the password to change.
        """
        validate_ufrag(new_local_ufrag)
        validate_pwd(new_local_pwd)
        if new_local_ufrag in self.local_ufrags or new_local_pwd == self.local_pwd:
            raise IceError("ICE restart must change both the ufrag and the password")
        if self.state is IceState.CLOSED:
            raise IceError("cannot restart a closed ICE session")
        if self._server is not None:
            self._server._register(self, new_local_ufrag)
        # The fallback is what the peer used last (a restart of a restart must not strand the
        # path still carrying media), else the credentials current until now.
        fallback = self._local_creds[0]
        for creds in self._local_creds:
            if creds[0] == self._confirmed_ufrag:
                fallback = creds
        dropped = [c for c in self._local_creds if c is not fallback]
        self._local_creds = [(new_local_ufrag, new_local_pwd.encode()), fallback]
        if self._server is not None:
            for ufrag, _ in dropped:
                self._server._unregister(self, ufrag)
        self.local_ufrag = new_local_ufrag
        self.local_pwd = new_local_pwd

    @property
    def remote_restarting(self) -> bool:
        """True after the peer's ufrag changed until a check uses the new one."""
        return self._prev_remote_ufrag is not None

    def add_remote_candidate(self, candidate: RemoteCandidate | EndOfCandidates) -> None:
        """Record a trickled remote candidate (bounded; lite agents do not check them)."""
        if isinstance(candidate, EndOfCandidates):
            self.remote_end_of_candidates = True
        elif len(self.remote_candidates) < self.MAX_REMOTE_CANDIDATES:
            self.remote_candidates.append(candidate)

    def is_expired(
        self,
        now: float,
        *,
        consent_timeout: float = CONSENT_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> bool:
        """Consent lost after nomination, or never nominated within ``connect_timeout``."""
        if self.state is IceState.CLOSED:
            return True
        if self.selected is not None:
            assert self.last_check is not None
            return now - self.last_check >= consent_timeout
        created = self.created if self.created is not None else now
        return now - created >= connect_timeout

    def deadline(
        self, *, consent_timeout: float = CONSENT_TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT
    ) -> float | None:
        """The ``now`` at which :meth:`is_expired` becomes true (None if not yet added)."""
        if self.selected is not None and self.last_check is not None:
            return self.last_check + consent_timeout
        if self.created is not None:
            return self.created + connect_timeout
        return None

    # ------------------------------------------------------------------ internal

    def _key_for(self, ufrag: str) -> tuple[int, bytes] | None:
        for index, (candidate, key) in enumerate(self._local_creds):
            if candidate == ufrag:
                return index, key
        return None

    def _on_valid_check(
        self, cred_index: int, remote_ufrag: str, addr: Address, sock_index: int, now: float
    ) -> None:
        self.checks += 1
        self.last_check = now
        self.last_addr = (addr, sock_index)
        if self.state is IceState.NEW:
            self.state = IceState.CHECKING
        self._confirmed_ufrag = self._local_creds[cred_index][0]
        if cred_index == 0 and len(self._local_creds) > 1:
            # First valid check with the new local credentials: the restart is done.
            old = self._local_creds[1:]
            del self._local_creds[1:]
            if self._server is not None:
                for ufrag, _ in old:
                    self._server._unregister(self, ufrag)
        if remote_ufrag == self.remote_ufrag:
            self._prev_remote_ufrag = None


class IceLiteServer:
    """The ICE-lite responder for every session on the shared port(s).

    ``drops`` counts datagrams that got no success response, by :class:`DropReason`;
    ``checks_ok`` counts valid checks answered with success.
    """

    def __init__(self, config: IceConfig | None = None) -> None:
        self.config = config if config is not None else IceConfig()
        self._by_ufrag: dict[str, IceSession] = {}
        self._sessions: dict[int, IceSession] = {}
        self.drops: dict[DropReason, int] = {reason: 0 for reason in DropReason}
        self.checks_ok = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[IceSession]:
        return iter(list(self._sessions.values()))

    # ------------------------------------------------------------------ sessions

    def create_session(self, now: float, *, tag: object = None) -> IceSession:
        """A session with fresh random local credentials, already added."""
        while True:
            ufrag, pwd = generate_credentials()
            if ufrag not in self._by_ufrag:
                break
        session = IceSession(ufrag, pwd, tag=tag)
        self.add_session(session, now)
        return session

    def add_session(self, session: IceSession, now: float) -> None:
        """Start answering checks for ``session``; its connect timer starts at ``now``."""
        if session._server is not None:
            raise IceError(f"{session!r} is already registered")
        if session.state is IceState.CLOSED:
            raise IceError(f"{session!r} is closed")
        for ufrag in session.local_ufrags:
            if ufrag in self._by_ufrag:
                raise IceError(f"ICE ufrag {ufrag!r} is already in use")
        session._server = self
        for ufrag in session.local_ufrags:
            self._by_ufrag[ufrag] = session
        self._sessions[id(session)] = session
        session.created = now

    def remove_session(self, session: IceSession) -> None:
        """Stop answering checks for ``session`` and mark it closed (idempotent)."""
        if session._server is self:
            for ufrag in session.local_ufrags:
                self._unregister(session, ufrag)
            del self._sessions[id(session)]
            session._server = None
        session.state = IceState.CLOSED

    def get_session(self, ufrag: str) -> IceSession | None:
        """The session accepting local ufrag ``ufrag``."""
        return self._by_ufrag.get(ufrag)

    def _register(self, session: IceSession, ufrag: str) -> None:
        owner = self._by_ufrag.get(ufrag)
        if owner is not None and owner is not session:
            raise IceError(f"ICE ufrag {ufrag!r} is already in use")
        self._by_ufrag[ufrag] = session

    def _unregister(self, session: IceSession, ufrag: str) -> None:
        if self._by_ufrag.get(ufrag) is session:
            del self._by_ufrag[ufrag]

    def expired(self, now: float) -> list[IceSession]:
        """Remove and return sessions whose consent expired or that never connected in time."""
        consent, connect = self.config.consent_timeout, self.config.connect_timeout
        dead = [
            s
            for s in self._sessions.values()
            if s.is_expired(now, consent_timeout=consent, connect_timeout=connect)
        ]
        for session in dead:
            logger.info(
                "ICE session %r expired (%s)",
                session,
                "consent lost" if session.selected is not None else "never connected",
            )
            self.remove_session(session)
        return dead

    def next_deadline(self) -> float | None:
        """Earliest ``now`` at which :meth:`expired` would return something (O(sessions))."""
        consent, connect = self.config.consent_timeout, self.config.connect_timeout
        deadlines = [
            d
            for s in self._sessions.values()
            if (d := s.deadline(consent_timeout=consent, connect_timeout=connect)) is not None
        ]
        return min(deadlines, default=None)

    # ------------------------------------------------------------------ the datagram path

    def _drop(self, reason: DropReason) -> list[IceAction]:
        self.drops[reason] += 1
        return []

    def _error(
        self,
        reason: DropReason,
        request: stun.StunMessage,
        code: int,
        addr: Address,
        sock_index: int,
        key: bytes | None = None,
        unknown: list[int] | None = None,
    ) -> list[IceAction]:
        self.drops[reason] += 1
        data = stun.encode_error_response(request, code, integrity_key=key, unknown=unknown or ())
        return [SendStun(data, addr, sock_index)]

    def handle_stun(
        self, data: bytes, addr: Address, sock_index: int, now: float
    ) -> list[IceAction]:
        """Process one STUN datagram from ``addr`` received on socket ``sock_index``."""
        try:
            request = stun.parse_message(data)
        except stun.StunFingerprintError:
            return self._drop(DropReason.BAD_FINGERPRINT)
        except stun.StunError:
            return self._drop(DropReason.BAD_MESSAGE)

        msg_class = request.msg_class
        if msg_class is not stun.StunClass.REQUEST:
            if msg_class is stun.StunClass.INDICATION:
                return self._drop(DropReason.INDICATION)
            return self._drop(DropReason.RESPONSE)
        if request.method != stun.Method.BINDING:
            return self._drop(DropReason.NOT_BINDING)

        # Authentication (RFC 8489 section 9.1.3, RFC 8445 section 7.3).
        raw_username = request.get(stun.Attr.USERNAME)
        if raw_username is None:
            return self._error(DropReason.NO_USERNAME, request, 400, addr, sock_index)
        try:
            username = request.username or ""
        except stun.StunError:
            return self._error(DropReason.BAD_USERNAME, request, 400, addr, sock_index)
        local_ufrag, colon, remote_ufrag = username.partition(":")
        if not colon:
            return self._error(DropReason.BAD_USERNAME, request, 400, addr, sock_index)
        session = self._by_ufrag.get(local_ufrag)
        if session is None:
            return self._drop(DropReason.UNKNOWN_UFRAG)
        found = session._key_for(local_ufrag)
        if found is None:  # index and session disagree: treat as unknown
            return self._drop(DropReason.UNKNOWN_UFRAG)
        cred_index, key = found
        if request.message_integrity is None:
            return self._error(DropReason.NO_INTEGRITY, request, 400, addr, sock_index)
        if not request.check_integrity(key):
            return self._error(DropReason.BAD_INTEGRITY, request, 401, addr, sock_index)

        # From here on the request is authenticated: errors carry MESSAGE-INTEGRITY.
        unknown = request.unknown_comprehension_required()
        if unknown:
            return self._error(
                DropReason.UNKNOWN_ATTRIBUTE, request, 420, addr, sock_index, key, unknown
            )
        try:
            _ = request.priority  # validated, not used: lite agents learn no prflx pairs
            use_candidate = request.use_candidate
            controlled = request.ice_controlled
            controlling = request.ice_controlling
        except stun.StunError:
            return self._error(DropReason.BAD_ATTRIBUTE, request, 400, addr, sock_index, key)
        if controlled is not None:
            if controlling is not None:
                return self._error(DropReason.BAD_ATTRIBUTE, request, 400, addr, sock_index, key)
            # Both sides claim controlled; a lite agent cannot switch (see module docstring).
            return self._error(DropReason.ROLE_CONFLICT, request, 487, addr, sock_index, key)

        try:
            response = stun.encode_binding_success(request.transaction_id, addr[0], addr[1], key)
        except stun.StunError:
            # An address the socket layer gave us but we cannot encode: a caller bug.
            logger.warning("cannot encode XOR-MAPPED-ADDRESS for %r", addr)
            return self._error(DropReason.BAD_MESSAGE, request, 500, addr, sock_index, key)
        self.checks_ok += 1
        session._on_valid_check(cred_index, remote_ufrag, addr, sock_index, now)
        actions: list[IceAction] = [SendStun(response, addr, sock_index)]
        if use_candidate:
            binding = (addr, sock_index)
            if session.selected != binding:
                previous = session.selected
                session.selected = binding
                session.state = IceState.CONNECTED
                session.nominations += 1
                if previous is None:
                    logger.debug("%r nominated %r on socket %d", session, addr, sock_index)
                else:
                    logger.info(
                        "%r re-nominated %r on socket %d (was %r)",
                        session,
                        addr,
                        sock_index,
                        previous,
                    )
                actions.append(Nominated(session, addr, sock_index, previous))
        return actions


# ------------------------------------------------------------------------------- ICE-TCP framing


class TcpFramingError(ValueError):
    """The TCP stream is not RFC 4571-framed ICE traffic; close the connection."""


_FRAME_LEN = struct.Struct("!H")


def _frame_kind_ok(first: int) -> bool:
    # RFC 7983 demultiplexing: STUN 0-3, DTLS 20-63, RTP/RTCP 128-191.
    return first < 4 or 20 <= first < 64 or 128 <= first < 192


def frame_tcp(packet: bytes) -> bytes:
    """Prefix ``packet`` with its 2-byte big-endian length (RFC 4571 section 2)."""
    if len(packet) > 0xFFFF:
        raise TcpFramingError(f"packet of {len(packet)} bytes does not fit a 16-bit length")
    return _FRAME_LEN.pack(len(packet)) + packet


class TcpFramer:
    """Split one ICE-TCP stream into packets (RFC 6544 section 3, RFC 4571 framing).

    ``feed()`` returns every complete frame and keeps at most one partial frame, so the buffer is
    bounded by ``max_frame + 2`` bytes. A frame that is empty, longer than ``max_frame``, or does
    not start like STUN/DTLS/RTP (RFC 7983), raises :class:`TcpFramingError`; so does a first
    frame that is not STUN when ``stun_first`` (a passive candidate's first packet is the
    peer's connectivity check, which is what tells us the session). After an error the framer
    stays failed.
    """

    #: Browsers keep packets under ~1200 bytes (DTLS/SCTP/RTP MTU); 1500 + headroom.
    DEFAULT_MAX_FRAME = 1600

    __slots__ = ("_buffer", "_expect_stun", "_failed", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, *, stun_first: bool = True) -> None:
        if not 20 <= max_frame <= 0xFFFF:
            raise ValueError(f"max_frame must be in [20, 65535], got {max_frame}")
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._expect_stun = stun_first
        self._failed = False

    #: Frame one outgoing packet (same as :func:`frame_tcp`).
    frame = staticmethod(frame_tcp)

    @property
    def buffered(self) -> int:
        """Bytes held for a partial frame."""
        return len(self._buffer)

    def _fail(self, message: str) -> TcpFramingError:
        self._failed = True
        self._buffer.clear()
        return TcpFramingError(message)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add stream bytes; return the complete frames they finish, in order."""
        if self._failed:
            raise TcpFramingError("framer already failed")
        buf = self._buffer
        buf += data
        frames: list[bytes] = []
        pos = 0
        end = len(buf)
        max_frame = self.max_frame
        while end - pos >= 2:
            (length,) = _FRAME_LEN.unpack_from(buf, pos)
            if length == 0 or length > max_frame:
                raise self._fail(f"ICE-TCP frame length {length} outside [1, {max_frame}]")
            first = buf[pos + 2] if end - pos > 2 else -1
            if first >= 0:
                if self._expect_stun:
                    if first >= 4:
                        raise self._fail("first ICE-TCP frame is not STUN")
                    self._expect_stun = False
                elif not _frame_kind_ok(first):
                    raise self._fail(f"ICE-TCP frame starts with unexpected byte {first}")
            if end - pos - 2 < length:
                break
            frames.append(bytes(buf[pos + 2 : pos + 2 + length]))
            pos += 2 + length
        if pos:
            del buf[:pos]
        return frames


# ------------------------------------------------------------------------------ trickle candidates


@dataclass(frozen=True, slots=True)
class RemoteCandidate:
    """A peer's candidate (RFC 8839 section 5.1 grammar), plus its trickle JSON context."""

    foundation: str
    component: int
    #: Lower-cased: "udp" or "tcp" (others are kept as given, lower-cased).
    transport: str
    priority: int
    #: An IP address or, for browsers hiding local IPs, an mDNS name (``<uuid>.local``).
    address: str
    port: int
    #: "host", "srflx", "prflx", "relay" or an extension type.
    type: str
    related_address: str | None = None
    related_port: int | None = None
    #: "active", "passive" or "so" for TCP candidates.
    tcptype: str | None = None
    generation: int | None = None
    #: The ``ufrag`` extension attribute of the candidate line.
    ufrag: str | None = None
    #: Other extension attributes in order, e.g. ``(("network-id", "1"), ("network-cost", "10"))``.
    extensions: tuple[tuple[str, str], ...] = ()
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    #: ``usernameFragment`` of the trickle JSON.
    username_fragment: str | None = None

    def to_sdp(self) -> str:
        """The ``candidate:...`` attribute value (without ``a=``)."""
        parts = [
            f"candidate:{self.foundation}",
            str(self.component),
            self.transport,
            str(self.priority),
            self.address,
            str(self.port),
            "typ",
            self.type,
        ]
        if self.related_address is not None:
            parts += ["raddr", self.related_address]
        if self.related_port is not None:
            parts += ["rport", str(self.related_port)]
        if self.tcptype is not None:
            parts += ["tcptype", self.tcptype]
        if self.generation is not None:
            parts += ["generation", str(self.generation)]
        if self.ufrag is not None:
            parts += ["ufrag", self.ufrag]
        for name, value in self.extensions:
            parts += [name, value]
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class EndOfCandidates:
    """A trickle message with an empty ``candidate``: the peer finished gathering (RFC 8838)."""

    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    username_fragment: str | None = None


def _parse_int(text: str, what: str, maximum: int) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        raise ValueError(f"candidate {what} is not a number: {text!r}")
    value = int(text)
    if value > maximum:
        raise ValueError(f"candidate {what} out of range: {value}")
    return value


def parse_candidate(line: str, **context: Any) -> RemoteCandidate:
    """Parse ``[a=]candidate:<foundation> <component> <transport> <priority> <addr> <port> typ
    <type> [raddr <a>] [rport <p>] *(<name> <value>)``; raise ``ValueError`` if malformed.

    ``context`` may carry ``sdp_mid``, ``sdp_mline_index`` and ``username_fragment``.
    """
    text = line.strip()
    text = text.removeprefix("a=")
    if not text.startswith("candidate:"):
        raise ValueError("candidate attribute must start with 'candidate:'")
    fields = text[len("candidate:") :].split()
    if len(fields) < 8 or fields[6] != "typ":
        raise ValueError("candidate attribute needs 8 fields ending with 'typ <type>'")
    foundation = fields[0]
    if not 1 <= len(foundation) <= 32 or not _ICE_CHARS.issuperset(foundation):
        raise ValueError(f"candidate foundation is invalid: {foundation!r}")
    component = _parse_int(fields[1], "component", 256)
    if component < 1:
        raise ValueError("candidate component must be >= 1")
    transport = fields[2].lower()
    priority = _parse_int(fields[3], "priority", 0xFFFFFFFF)
    address = fields[4]
    if not address.isprintable():
        raise ValueError("candidate address is not printable")
    port = _parse_int(fields[5], "port", 0xFFFF)
    cand_type = fields[7]
    rest = fields[8:]
    if len(rest) % 2:
        raise ValueError("candidate extension attributes must come in name/value pairs")
    related_address: str | None = None
    related_port: int | None = None
    tcptype: str | None = None
    generation: int | None = None
    ufrag: str | None = None
    extensions: list[tuple[str, str]] = []
    for name, value in zip(rest[::2], rest[1::2], strict=True):
        if name == "raddr":
            related_address = value
        elif name == "rport":
            related_port = _parse_int(value, "rport", 0xFFFF)
        elif name == "tcptype":
            tcptype = value
        elif name == "generation":
            generation = _parse_int(value, "generation", 0xFFFFFFFF)
        elif name == "ufrag":
            ufrag = value
        else:
            extensions.append((name, value))
    if transport == "tcp" and tcptype is None:
        raise ValueError("TCP candidate without tcptype")
    return RemoteCandidate(
        foundation=foundation,
        component=component,
        transport=transport,
        priority=priority,
        address=address,
        port=port,
        type=cand_type,
        related_address=related_address,
        related_port=related_port,
        tcptype=tcptype,
        generation=generation,
        ufrag=ufrag,
        extensions=tuple(extensions),
        sdp_mid=context.get("sdp_mid"),
        sdp_mline_index=context.get("sdp_mline_index"),
        username_fragment=context.get("username_fragment"),
    )


def parse_trickle(message: str | bytes | Mapping[str, Any]) -> RemoteCandidate | EndOfCandidates:
    """Parse a browser's ``RTCIceCandidate.toJSON()`` (JSON text or an already-decoded dict).

    ``{"candidate": "candidate:...", "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment":
    "..."}``; an empty ``candidate`` means end-of-candidates. Raises ``ValueError``.
    """
    obj: Any = message
    if isinstance(message, (str, bytes)):
        try:
            obj = json.loads(message)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"trickle candidate is not JSON: {exc}") from exc
    if not isinstance(obj, Mapping):
        raise ValueError("trickle candidate must be a JSON object")  # noqa: TRY004 - parser contract
    candidate = obj.get("candidate")
    sdp_mid = obj.get("sdpMid")
    index = obj.get("sdpMLineIndex")
    ufrag = obj.get("usernameFragment")
    if not isinstance(candidate, str):
        raise ValueError("trickle 'candidate' must be a string")  # noqa: TRY004
    if sdp_mid is not None and not isinstance(sdp_mid, str):
        raise ValueError("trickle 'sdpMid' must be a string or null")
    if index is not None and (
        isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 0xFFFF
    ):
        raise ValueError("trickle 'sdpMLineIndex' must be a small integer or null")
    if ufrag is not None and not isinstance(ufrag, str):
        raise ValueError("trickle 'usernameFragment' must be a string or null")
    if not candidate.strip():
        return EndOfCandidates(sdp_mid, index, ufrag)
    return parse_candidate(
        candidate, sdp_mid=sdp_mid, sdp_mline_index=index, username_fragment=ufrag
    )


def format_trickle(
    candidate: str,
    *,
    sdp_mid: str | None = "0",
    sdp_mline_index: int | None = 0,
    username_fragment: str | None = None,
) -> dict[str, Any]:
    """The ``RTCIceCandidateInit`` dict for ``candidate`` (a ``candidate:...`` string, or ""
    for end-of-candidates), as browsers accept it in ``addIceCandidate``."""
    candidate = candidate.removeprefix("a=")
    return {
        "candidate": candidate,
        "sdpMid": sdp_mid,
        "sdpMLineIndex": sdp_mline_index,
        "usernameFragment": username_fragment,
    }
