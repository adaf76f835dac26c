"""The demo chat host's rules: users, channels, membership, posts and calls.

This is the part a chat server plays for an SFU (the Mattermost Calls plugin for rtcd,
reference/rtcd.md 2.7; product behaviour in seeds/calls-start-a-call-v7.txt): who may see a
channel, who may start or join its call, what the call link is, and the participants' state
(mute, speaking, raised hands, screen share, camera) that every member's page shows.

It does no I/O: ``DemoHost`` takes requests and returns results or raises a ``DemoError``
(``NotFoundError``, ``ForbiddenError``, ``ConflictError``, ``CallFullError``) whose message is
shown to the user as is. ``signaling.demo.server`` wires it to WebSockets and the SFU.

Rules (from the seed):

- any *active* member of a channel may start or join its call, in public and private
  channels and direct messages; a guest must first be added to the channel; a deactivated
  user cannot sign in or join; nobody can call in an archived channel;
- the call link is unique per channel, contains the channel id, does not change between
  calls, and is invalid once the channel is archived;
- a call holds at most ``max_participants`` sessions (0 = unlimited); one participant at a
  time shares a screen; cameras (1-1 video) are for direct messages only.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

PUBLIC = "O"
PRIVATE = "P"
DIRECT = "D"

ROLE_MEMBER = "member"
ROLE_ADMIN = "admin"
ROLE_GUEST = "guest"

#: Reactions a participant may send (name -> emoji), like the Calls widget's quick set.
REACTIONS: dict[str, str] = {
    "+1": "\U0001F44D", "tada": "\U0001F389", "heart": "\u2764\ufe0f", "joy": "\U0001F602",
    "clap": "\U0001F44F", "raised_hands": "\U0001F64C", "eyes": "\U0001F440", "fire": "\U0001F525",
}

_USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,21}$")
MAX_MESSAGE = 4000


class DemoError(Exception):
    """A request the host refuses; ``code`` is a stable machine name, the message is for people."""

    code = "error"


class NotFoundError(DemoError):
    code = "not_found"


class ForbiddenError(DemoError):
    code = "forbidden"


class ConflictError(DemoError):
    code = "conflict"


class CallFullError(DemoError):
    code = "call_full"


def new_id() -> str:
    """A Mattermost-style id: 26 lowercase base32 characters."""
    return base64.b32encode(os.urandom(16)).decode().lower().rstrip("=")[:26]


def stable_id(*parts: str) -> str:
    """A deterministic id (seed data keeps its ids, and so its call links, across restarts)."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()[:16]
    return base64.b32encode(digest).decode().lower().rstrip("=")[:26]


@dataclass
class User:
    id: str
    username: str
    role: str = ROLE_MEMBER
    active: bool = True

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "role": self.role, "active": self.active}


@dataclass
class Channel:
    id: str
    name: str
    display_name: str
    type: str                                  # PUBLIC, PRIVATE or DIRECT
    members: set[str] = field(default_factory=set)
    archived: bool = False
    purpose: str = ""


@dataclass
class Post:
    id: str
    channel_id: str
    user_id: str
    message: str
    create_at: float
    root_id: str = ""
    type: str = ""                             # "" (a message), "system", "call"
    props: dict[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "channel_id": self.channel_id, "user_id": self.user_id,
                "message": self.message, "create_at": int(self.create_at * 1000),
                "root_id": self.root_id, "type": self.type, "props": dict(self.props)}


@dataclass
class Participant:
    """One session in a call (a user may join from two tabs: two participants)."""

    session_id: str
    user_id: str
    joined_at: float
    muted: bool = True
    speaking: bool = False
    hand_raised_at: float = 0.0
    screen: bool = False
    video: bool = False

    def view(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "user_id": self.user_id, "muted": self.muted,
                "speaking": self.speaking and not self.muted,
                "hand_raised_at": int(self.hand_raised_at * 1000), "screen": self.screen,
                "video": self.video}


@dataclass
class Call:
    id: str
    channel_id: str
    owner_id: str
    post_id: str
    start_at: float
    participants: dict[str, Participant] = field(default_factory=dict)
    screen_session: str | None = None
    ever: list[str] = field(default_factory=list)   # user ids that joined, in order

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "channel_id": self.channel_id, "owner_id": self.owner_id,
                "thread_id": self.post_id, "start_at": int(self.start_at * 1000),
                "screen_session": self.screen_session,
                "participants": [p.view() for p in self.participants.values()]}


@dataclass(frozen=True)
class Removed:
    """Sessions a host action removed from calls, and why (the server tells their pages)."""

    sessions: tuple[str, ...] = ()
    reason: str = ""
    ended_calls: tuple[tuple[str, str], ...] = ()   # (channel id, call post id) of calls that ended
    channels: tuple[str, ...] = ()                  # channels whose call changed


class DemoHost:
    """See the module docstring."""

    def __init__(self, *, max_participants: int = 0, clock: Any = time.time) -> None:
        if max_participants < 0:
            raise ValueError("max_participants: must be 0 (unlimited) or more")
        self.max_participants = max_participants
        self.clock = clock
        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.posts: dict[str, list[Post]] = {}          # channel id -> posts, oldest first
        self.calls: dict[str, Call] = {}                # channel id -> active call
        self.sessions: dict[str, str] = {}              # session id -> channel id

    # ------------------------------------------------------------------------------ users

    def user_by_name(self, username: str) -> User:
        name = username.strip().lstrip("@").lower()
        for u in self.users.values():
            if u.username == name:
                return u
        raise NotFoundError(f"There is no user @{name}.")

    def user(self, user_id: str) -> User:
        try:
            return self.users[user_id]
        except KeyError:
            raise NotFoundError("Unknown user.") from None

    def add_user(self, username: str, *, role: str = ROLE_MEMBER, active: bool = True) -> User:
        name = username.strip().lstrip("@").lower()
        if not _USERNAME.match(name):
            raise ForbiddenError("A name is 2-22 characters: a letter, then letters, digits, '.', '_' or '-'.")
        if any(u.username == name for u in self.users.values()):
            raise ConflictError(f"@{name} already exists.")
        user = User(stable_id("user", name), name, role, active)
        self.users[user.id] = user
        if role != ROLE_GUEST:
            for ch in self.channels.values():
                if ch.type == PUBLIC and ch.name in ("town-square", "off-topic") and not ch.archived:
                    ch.members.add(user.id)
        return user

    def login(self, username: str) -> User:
        """Pick a name (no passwords: it is a demo). Unknown names become new members."""
        try:
            user = self.user_by_name(username)
        except NotFoundError:
            return self.add_user(username)
        if not user.active:
            raise ForbiddenError(f"@{user.username} is deactivated and cannot sign in or join calls.")
        return user

    def set_active(self, actor_id: str, username: str, active: bool) -> tuple[User, Removed]:
        """An admin (de)activates a user; a deactivated user is removed from every call."""
        actor = self._active_user(actor_id)
        if actor.role != ROLE_ADMIN:
            raise ForbiddenError("Only a system admin can activate or deactivate users.")
        user = self.user_by_name(username)
        if user.id == actor.id and not active:
            raise ForbiddenError("You cannot deactivate yourself.")
        user.active = active
        removed: Removed = Removed()
        if not active:
            sessions = [sid for sid, ch in self.sessions.items()
                        if self.calls[ch].participants[sid].user_id == user.id]
            removed = self._remove_sessions(sessions, f"@{user.username} was deactivated")
        return user, removed

    def _active_user(self, user_id: str) -> User:
        user = self.user(user_id)
        if not user.active:
            raise ForbiddenError(f"@{user.username} is deactivated.")
        return user

    # ------------------------------------------------------------------------------ channels

    def add_channel(self, name: str, display_name: str, ctype: str, members: Iterable[str] = (),
                    *, purpose: str = "", archived: bool = False) -> Channel:
        if ctype not in (PUBLIC, PRIVATE, DIRECT):
            raise ValueError(f"channel type {ctype!r}")
        ch = Channel(stable_id("channel", name), name, display_name, ctype, set(members), archived, purpose)
        if ch.id in self.channels:
            raise ConflictError(f"~{name} already exists.")
        self.channels[ch.id] = ch
        self.posts[ch.id] = []
        return ch

    def channel(self, channel_id: str) -> Channel:
        try:
            return self.channels[channel_id]
        except KeyError:
            raise NotFoundError("This channel does not exist.") from None

    def can_see(self, user: User, ch: Channel) -> bool:
        if user.id in ch.members:
            return True
        return ch.type == PUBLIC and user.role != ROLE_GUEST

    def channels_for(self, user_id: str) -> list[Channel]:
        user = self.user(user_id)
        return sorted((c for c in self.channels.values() if self.can_see(user, c)),
                      key=lambda c: (c.type == DIRECT, c.archived, c.display_name.lower()))

    def direct_channel(self, user_id: str, other_name: str) -> Channel:
        """The direct-message channel of two users (created on first use)."""
        user = self._active_user(user_id)
        other = self.user_by_name(other_name)
        if other.id == user.id:
            raise ForbiddenError("Pick someone else for a direct message.")
        if not other.active:
            raise ForbiddenError(f"@{other.username} is deactivated.")
        a, b = sorted((user.username, other.username))
        name = f"{a}__{b}"
        for ch in self.channels.values():
            if ch.type == DIRECT and ch.name == name:
                return ch
        return self.add_channel(name, f"{a}, {b}", DIRECT, (user.id, other.id))

    def open_channel(self, user_id: str, channel_id: str) -> Channel:
        """A user opens a channel; opening a public channel joins it (not for guests)."""
        user = self._active_user(user_id)
        ch = self.channel(channel_id)
        if user.id not in ch.members:
            if ch.type != PUBLIC or user.role == ROLE_GUEST:
                raise ForbiddenError(f"You are not a member of {self.label(ch)}.")
            if ch.archived:
                return ch                                    # read-only: look, do not join
            ch.members.add(user.id)
        return ch

    def invite(self, actor_id: str, channel_id: str, username: str) -> tuple[Channel, User]:
        """A member adds someone (guests join channels only this way)."""
        actor = self._active_user(actor_id)
        ch = self.channel(channel_id)
        self._require_member(actor, ch)
        if actor.role == ROLE_GUEST:
            raise ForbiddenError("Guests cannot add members to channels.")
        if ch.type == DIRECT:
            raise ForbiddenError("You cannot add people to a direct message.")
        if ch.archived:
            raise ForbiddenError(f"{self.label(ch)} is archived.")
        user = self.user_by_name(username)
        if not user.active:
            raise ForbiddenError(f"@{user.username} is deactivated.")
        if user.id in ch.members:
            raise ConflictError(f"@{user.username} is already a member of {self.label(ch)}.")
        ch.members.add(user.id)
        self._system_post(ch, f"@{actor.username} added @{user.username} to the channel.")
        return ch, user

    def archive(self, actor_id: str, channel_id: str, archived: bool = True) -> tuple[Channel, Removed]:
        """Archive (or, for admins, restore) a channel; archiving ends its call."""
        actor = self._active_user(actor_id)
        ch = self.channel(channel_id)
        if ch.type == DIRECT:
            raise ForbiddenError("Direct messages cannot be archived.")
        if archived:
            self._require_member(actor, ch)
            if actor.role == ROLE_GUEST:
                raise ForbiddenError("Guests cannot archive channels.")
        elif actor.role != ROLE_ADMIN:
            raise ForbiddenError("Only a system admin can restore an archived channel.")
        if ch.archived == archived:
            raise ConflictError(f"{self.label(ch)} is already {'archived' if archived else 'active'}.")
        removed = Removed()
        if archived and ch.id in self.calls:
            # removing every participant ends the call
            removed = self._remove_sessions(list(self.calls[ch.id].participants), f"{self.label(ch)} was archived")
        what = "archived" if archived else "restored"
        self._system_post(ch, f"@{actor.username} {what} the channel.")
        ch.archived = archived
        return ch, removed

    def label(self, ch: Channel) -> str:
        return ("the direct message with " + ch.display_name) if ch.type == DIRECT else f"~{ch.name}"

    def _require_member(self, user: User, ch: Channel) -> None:
        if user.id not in ch.members:
            raise ForbiddenError(f"You are not a member of {self.label(ch)}.")

    # ------------------------------------------------------------------------------ posts

    def post(self, user_id: str, channel_id: str, message: str, root_id: str = "") -> Post:
        user = self._active_user(user_id)
        ch = self.channel(channel_id)
        self._require_member(user, ch)
        if ch.archived:
            raise ForbiddenError(f"{self.label(ch)} is archived: it is read-only.")
        text = message.strip()
        if not text:
            raise ForbiddenError("Type a message first.")
        if len(text) > MAX_MESSAGE:
            raise ForbiddenError(f"Messages are at most {MAX_MESSAGE} characters.")
        if root_id:
            self.find_post(ch.id, root_id)
        p = Post(new_id(), ch.id, user.id, text, self.clock(), root_id)
        self.posts[ch.id].append(p)
        return p

    def find_post(self, channel_id: str, post_id: str) -> Post:
        for p in self.posts.get(channel_id, ()):
            if p.id == post_id:
                return p
        raise NotFoundError("That thread does not exist in this channel.")

    def recent_posts(self, user_id: str, channel_id: str, limit: int = 200) -> list[Post]:
        user = self._active_user(user_id)
        ch = self.channel(channel_id)
        if not self.can_see(user, ch):
            raise ForbiddenError(f"You are not a member of {self.label(ch)}.")
        return self.posts[ch.id][-limit:]

    def _system_post(self, ch: Channel, message: str, *, root_id: str = "") -> Post:
        p = Post(new_id(), ch.id, "", message, self.clock(), root_id, "system")
        self.posts[ch.id].append(p)
        return p

    # ------------------------------------------------------------------------------ calls

    def check_can_call(self, user_id: str, channel_id: str) -> tuple[User, Channel]:
        """Raise unless the user may start or join a call in the channel."""
        user = self.user(user_id)
        if not user.active:
            raise ForbiddenError(f"@{user.username} is deactivated and cannot join calls.")
        ch = self.channel(channel_id)
        if ch.archived:
            raise ForbiddenError(f"{self.label(ch)} is archived: calls are not available.")
        if user.id not in ch.members:
            if user.role == ROLE_GUEST:
                raise ForbiddenError(f"Guests must be added to {self.label(ch)} before they can join its call.")
            raise ForbiddenError(f"Only members of {self.label(ch)} can join its call.")
        return user, ch

    def join_call(self, user_id: str, channel_id: str, session_id: str) -> tuple[Call, bool]:
        """Start the channel's call or join it. Returns (call, started)."""
        user, ch = self.check_can_call(user_id, channel_id)
        if session_id in self.sessions:
            raise ConflictError("This session is already in a call.")
        call = self.calls.get(ch.id)
        started = call is None
        if call is None:
            post = Post(new_id(), ch.id, user.id, f"@{user.username} started a call", self.clock(), "",
                        "call", {"start_at": int(self.clock() * 1000), "end_at": 0, "participants": []})
            self.posts[ch.id].append(post)
            call = Call(new_id(), ch.id, user.id, post.id, self.clock())
            self.calls[ch.id] = call
        elif self.max_participants and len(call.participants) >= self.max_participants:
            raise CallFullError(f"Sorry, this call is full: it already has the maximum of "
                                f"{self.max_participants} participants.")
        call.participants[session_id] = Participant(session_id, user.id, self.clock())
        if user.id not in call.ever:
            call.ever.append(user.id)
            self.call_post(call).props["participants"] = list(call.ever)
        self.sessions[session_id] = ch.id
        return call, started

    def leave_call(self, session_id: str) -> tuple[Call, bool] | None:
        """Remove a session from its call. Returns (call, ended) or None if it was in none."""
        channel_id = self.sessions.pop(session_id, None)
        if channel_id is None:
            return None
        call = self.calls[channel_id]
        call.participants.pop(session_id, None)
        if call.screen_session == session_id:
            call.screen_session = None
        if not call.participants:
            self._end_call(channel_id)
            return call, True
        return call, False

    def end_call(self, user_id: str, channel_id: str) -> Removed:
        """The call's starter or an admin ends it for everyone."""
        user = self._active_user(user_id)
        ch = self.channel(channel_id)
        call = self.calls.get(ch.id)
        if call is None:
            raise NotFoundError(f"There is no call in {self.label(ch)}.")
        if user.id != call.owner_id and user.role != ROLE_ADMIN:
            raise ForbiddenError("Only the person who started the call (or an admin) can end it.")
        return self._remove_sessions(list(call.participants), f"@{user.username} ended the call")

    def _remove_sessions(self, sessions: list[str], reason: str) -> Removed:
        ended: list[tuple[str, str]] = []
        channels = sorted({self.sessions[sid] for sid in sessions if sid in self.sessions})
        for sid in sessions:
            result = self.leave_call(sid)
            if result is not None and result[1]:
                ended.append((result[0].channel_id, result[0].post_id))
        return Removed(tuple(sessions), reason, tuple(ended), tuple(channels))

    def _end_call(self, channel_id: str) -> None:
        call = self.calls.pop(channel_id)
        for sid in list(call.participants):
            self.sessions.pop(sid, None)
        call.participants.clear()
        call.screen_session = None
        post = self.call_post(call)
        post.props["end_at"] = int(self.clock() * 1000)
        post.message = "Call ended"

    def call_post(self, call: Call) -> Post:
        return self.find_post(call.channel_id, call.post_id)

    def participant(self, session_id: str) -> tuple[Call, Participant]:
        channel_id = self.sessions.get(session_id)
        if channel_id is None:
            raise NotFoundError("You are not in a call.")
        call = self.calls[channel_id]
        return call, call.participants[session_id]

    def set_muted(self, session_id: str, muted: bool) -> Call:
        call, p = self.participant(session_id)
        p.muted = muted
        if muted:
            p.speaking = False
        return call

    def set_speaking(self, session_id: str, speaking: bool) -> Call | None:
        """From the SFU's voice activity events; ignored for sessions no longer in a call."""
        if session_id not in self.sessions:
            return None
        call, p = self.participant(session_id)
        if p.speaking == speaking:
            return None
        p.speaking = speaking
        return call

    def raise_hand(self, session_id: str, raised: bool) -> Call:
        call, p = self.participant(session_id)
        p.hand_raised_at = self.clock() if raised else 0.0
        return call

    def react(self, session_id: str, name: str) -> tuple[Call, Participant, str]:
        call, p = self.participant(session_id)
        emoji = REACTIONS.get(name)
        if emoji is None:
            raise ForbiddenError(f"Unknown reaction {name!r}; use one of {', '.join(REACTIONS)}.")
        return call, p, emoji

    def screen_on(self, session_id: str) -> Call:
        call, p = self.participant(session_id)
        other = call.screen_session
        if other is not None and other != session_id:
            sharer = self.users[call.participants[other].user_id].username
            raise ConflictError(f"@{sharer} is already sharing their screen; one person can share at a time.")
        call.screen_session = session_id
        p.screen = True
        return call

    def screen_off(self, session_id: str) -> Call:
        call, p = self.participant(session_id)
        if call.screen_session == session_id:
            call.screen_session = None
        p.screen = False
        return call

    def video_on(self, session_id: str, on: bool = True) -> Call:
        call, p = self.participant(session_id)
        if on and self.channels[call.channel_id].type != DIRECT:
            raise ForbiddenError("Cameras are available in direct-message calls (1-1 video) only.")
        p.video = on
        return call

    # ------------------------------------------------------------------------------ call links

    @staticmethod
    def call_link(base_url: str, channel_id: str) -> str:
        return f"{base_url.rstrip('/')}/channels/{channel_id}?join_call=true"

    def link_for(self, user_id: str, channel_id: str, base_url: str) -> str:
        """``/call link``: for members of an active channel."""
        user = self._active_user(user_id)
        ch = self.channel(channel_id)
        self._require_member(user, ch)
        if ch.archived:
            raise ForbiddenError(f"{self.label(ch)} is archived: it has no call link.")
        return self.call_link(base_url, ch.id)

    def resolve_link(self, channel_id: str) -> Channel:
        """The channel a call link points to, if the link is still valid."""
        ch = self.channels.get(channel_id)
        if ch is None:
            raise NotFoundError("This call link is not valid: the channel does not exist.")
        if ch.archived:
            raise NotFoundError(f"This call link is no longer valid: {self.label(ch)} was archived.")
        return ch

    # ------------------------------------------------------------------------------ views

    def channel_view(self, user_id: str, ch: Channel) -> dict[str, Any]:
        call = self.calls.get(ch.id)
        return {"id": ch.id, "name": ch.name, "display_name": ch.display_name, "type": ch.type,
                "archived": ch.archived, "purpose": ch.purpose, "member": user_id in ch.members,
                "members": sorted(ch.members, key=lambda u: self.users[u].username),
                "call": call.view() if call is not None else None}


def seed(host: DemoHost) -> None:
    """Demo data: users (an admin, members, a guest, a deactivated user) and channels (two
    public, a private one, a direct message, an archived one)."""
    alice = host.add_user("alice", role=ROLE_ADMIN)
    bob, carol, dave, erin = (host.add_user(n) for n in ("bob", "carol", "dave", "erin"))
    host.add_user("gwen", role=ROLE_GUEST)
    host.add_user("olaf", active=False)
    everyone = [u.id for u in (alice, bob, carol, dave, erin)]
    host.add_channel("town-square", "Town Square", PUBLIC, everyone, purpose="Everyone is here.")
    host.add_channel("off-topic", "Off-Topic", PUBLIC, everyone, purpose="Anything goes.")
    host.add_channel("design", "Design team", PRIVATE, (alice.id, carol.id),
                     purpose="Private: alice and carol. Try /invite @gwen (a guest).")
    host.add_channel("old-project", "Old project", PUBLIC, (alice.id, bob.id), archived=True,
                     purpose="Archived: read-only, no calls, its call link is invalid.")
    host.direct_channel(alice.id, "bob")
    olaf = host.user_by_name("olaf")
    host.channel(stable_id("channel", "town-square")).members.add(olaf.id)
