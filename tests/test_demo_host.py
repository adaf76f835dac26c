"""The demo chat host's rules (signaling/demo/host.py): who may call where, call links, archive,
guests, deactivated users, full calls, participants' state (no I/O); then the demo server over
its WebSocket with the embedded SFU (no browser; tests/test_demo_browser.py has those)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from switchboard.engine.mediaplane import MediaConfig
from switchboard.engine.transportserver import TransportConfig
from switchboard.signaling.demo.host import (
    DIRECT,
    PRIVATE,
    PUBLIC,
    ROLE_GUEST,
    CallFullError,
    ConflictError,
    DemoHost,
    ForbiddenError,
    NotFoundError,
    seed,
    stable_id,
)
from switchboard.signaling.demo.server import DemoConfig, DemoServer
from switchboard.signaling.rtc import RtcConfig


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


@pytest.fixture
def host() -> DemoHost:
    h = DemoHost(max_participants=3, clock=Clock())
    seed(h)
    return h


def uid(h: DemoHost, name: str) -> str:
    return str(h.user_by_name(name).id)


def cid(name: str) -> str:
    return str(stable_id("channel", name))


def dm(h: DemoHost) -> str:
    return str(h.direct_channel(uid(h, "alice"), "bob").id)


# ------------------------------------------------------------------------------ seed data


def test_seed_has_the_cast_of_the_demo(host: DemoHost) -> None:
    users = {u.username: u for u in host.users.values()}
    assert set(users) == {"alice", "bob", "carol", "dave", "erin", "gwen", "olaf"}
    assert users["gwen"].role == ROLE_GUEST
    assert not users["olaf"].active
    kinds = {c.name: (c.type, c.archived) for c in host.channels.values()}
    assert kinds["town-square"] == (PUBLIC, False)
    assert kinds["off-topic"] == (PUBLIC, False)
    assert kinds["design"] == (PRIVATE, False)
    assert kinds["old-project"] == (PUBLIC, True)
    assert kinds["alice__bob"] == (DIRECT, False)


def test_ids_are_mattermost_shaped_and_stable() -> None:
    a, b = DemoHost(), DemoHost()
    seed(a)
    seed(b)
    assert set(a.channels) == set(b.channels)               # call links survive restarts
    for channel_id in a.channels:
        assert len(channel_id) == 26 and channel_id.isalnum() and channel_id.islower()


# ------------------------------------------------------------------------------ sign in


def test_deactivated_user_cannot_sign_in(host: DemoHost) -> None:
    with pytest.raises(ForbiddenError, match="@olaf is deactivated and cannot sign in or join calls."):
        host.login("olaf")


def test_new_name_becomes_a_member_of_the_default_channels(host: DemoHost) -> None:
    user = host.login("  Zed ")
    assert user.username == "zed"
    assert user.id in host.channel(cid("town-square")).members
    assert user.id in host.channel(cid("off-topic")).members
    assert user.id not in host.channel(cid("design")).members
    assert host.login("zed").id == user.id


@pytest.mark.parametrize("name", ["", "a", "1abc", "has space", "x" * 23, "émile"])
def test_bad_names_are_refused(host: DemoHost, name: str) -> None:
    with pytest.raises(ForbiddenError, match="A name is 2-22 characters"):
        host.login(name)


# ------------------------------------------------------------------------------ membership


def test_members_of_public_private_and_direct_channels_can_call(host: DemoHost) -> None:
    for channel_id, user in ((cid("town-square"), "dave"), (cid("design"), "carol"), (dm(host), "bob")):
        call, started = host.join_call(uid(host, user), channel_id, f"s-{user}")
        assert started and call.channel_id == channel_id


def test_non_member_cannot_join_a_private_channel_call(host: DemoHost) -> None:
    with pytest.raises(ForbiddenError, match="Only members of ~design can join its call."):
        host.join_call(uid(host, "bob"), cid("design"), "s1")
    with pytest.raises(ForbiddenError, match="Only members of the direct message with alice, bob can join its call."):
        host.join_call(uid(host, "carol"), dm(host), "s2")


def test_guest_must_be_added_first(host: DemoHost) -> None:
    gwen = uid(host, "gwen")
    assert host.channels_for(gwen) == []                     # guests see no public channel
    with pytest.raises(ForbiddenError, match="Guests must be added to ~design before they can join its call."):
        host.join_call(gwen, cid("design"), "g1")
    with pytest.raises(ForbiddenError, match="You are not a member of ~town-square."):
        host.open_channel(gwen, cid("town-square"))          # and cannot walk into public ones
    host.invite(uid(host, "carol"), cid("design"), "@gwen")
    call, _ = host.join_call(gwen, cid("design"), "g1")
    assert [p.user_id for p in call.participants.values()] == [gwen]
    assert host.posts[cid("design")][-2].message == "@carol added @gwen to the channel."


def test_guest_cannot_invite_or_archive(host: DemoHost) -> None:
    host.invite(uid(host, "alice"), cid("design"), "gwen")
    with pytest.raises(ForbiddenError, match="Guests cannot add members to channels."):
        host.invite(uid(host, "gwen"), cid("design"), "bob")
    with pytest.raises(ForbiddenError, match="Guests cannot archive channels."):
        host.archive(uid(host, "gwen"), cid("design"))


def test_opening_a_public_channel_joins_it(host: DemoHost) -> None:
    zed = host.add_user("zed")
    host.channel(cid("off-topic")).members.discard(zed.id)
    with pytest.raises(ForbiddenError):
        host.join_call(zed.id, cid("off-topic"), "z1")
    host.open_channel(zed.id, cid("off-topic"))
    host.join_call(zed.id, cid("off-topic"), "z1")


def test_deactivated_member_cannot_join(host: DemoHost) -> None:
    olaf = uid(host, "olaf")
    assert olaf in host.channel(cid("town-square")).members
    with pytest.raises(ForbiddenError, match="@olaf is deactivated and cannot join calls."):
        host.join_call(olaf, cid("town-square"), "o1")


def test_deactivating_a_participant_removes_them_from_the_call(host: DemoHost) -> None:
    ts = cid("town-square")
    host.join_call(uid(host, "alice"), ts, "a1")
    host.join_call(uid(host, "bob"), ts, "b1")
    with pytest.raises(ForbiddenError, match="Only a system admin can activate or deactivate users."):
        host.set_active(uid(host, "bob"), "alice", False)
    user, removed = host.set_active(uid(host, "alice"), "bob", False)
    assert not user.active
    assert removed.sessions == ("b1",) and removed.reason == "@bob was deactivated"
    assert removed.channels == (ts,) and removed.ended_calls == ()
    assert list(host.calls[ts].participants) == ["a1"]
    with pytest.raises(ForbiddenError):
        host.join_call(uid(host, "bob"), ts, "b2")
    host.set_active(uid(host, "alice"), "bob", True)
    host.join_call(uid(host, "bob"), ts, "b2")


# ------------------------------------------------------------------------------ archive and links


def test_call_link_is_per_channel_stable_and_contains_the_channel_id(host: DemoHost) -> None:
    base = "http://127.0.0.1:8080/"
    ts, ot = cid("town-square"), cid("off-topic")
    link = host.link_for(uid(host, "alice"), ts, base)
    assert link == f"http://127.0.0.1:8080/channels/{ts}?join_call=true"
    assert host.link_for(uid(host, "bob"), ts, base) == link         # same for everyone
    host.join_call(uid(host, "alice"), ts, "a1")
    assert host.link_for(uid(host, "alice"), ts, base) == link       # during a call
    host.leave_call("a1")
    host.join_call(uid(host, "bob"), ts, "b1")
    assert host.link_for(uid(host, "alice"), ts, base) == link       # and in the next call
    assert host.link_for(uid(host, "alice"), ot, base) != link
    assert host.resolve_link(ts).id == ts


def test_archiving_ends_the_call_and_invalidates_the_link(host: DemoHost) -> None:
    ts = cid("off-topic")
    host.join_call(uid(host, "alice"), ts, "a1")
    host.join_call(uid(host, "bob"), ts, "b1")
    ch, removed = host.archive(uid(host, "carol"), ts)
    assert ch.archived
    assert set(removed.sessions) == {"a1", "b1"} and removed.reason == "~off-topic was archived"
    call_post = next(p for p in host.posts[ts] if p.type == "call")
    assert removed.ended_calls == ((ts, call_post.id),)
    assert call_post.props["end_at"] > 0 and call_post.message == "Call ended"
    assert ts not in host.calls and host.sessions == {}
    with pytest.raises(NotFoundError, match="This call link is no longer valid: ~off-topic was archived."):
        host.resolve_link(ts)
    with pytest.raises(ForbiddenError, match="~off-topic is archived: calls are not available."):
        host.join_call(uid(host, "alice"), ts, "a2")
    with pytest.raises(ForbiddenError, match="~off-topic is archived: it has no call link."):
        host.link_for(uid(host, "alice"), ts, "http://x")
    with pytest.raises(ForbiddenError, match="read-only"):
        host.post(uid(host, "alice"), ts, "hello?")
    # only an admin restores it, and then the same link works again
    with pytest.raises(ForbiddenError, match="Only a system admin can restore"):
        host.archive(uid(host, "bob"), ts, False)
    host.archive(uid(host, "alice"), ts, False)
    assert host.resolve_link(ts).id == ts


def test_seeded_archived_channel_and_unknown_links(host: DemoHost) -> None:
    with pytest.raises(NotFoundError, match="no longer valid: ~old-project was archived"):
        host.resolve_link(cid("old-project"))
    with pytest.raises(NotFoundError, match="This call link is not valid: the channel does not exist."):
        host.resolve_link("x" * 26)


def test_direct_messages_cannot_be_archived_or_extended(host: DemoHost) -> None:
    with pytest.raises(ForbiddenError, match="Direct messages cannot be archived."):
        host.archive(uid(host, "alice"), dm(host))
    with pytest.raises(ForbiddenError, match="You cannot add people to a direct message."):
        host.invite(uid(host, "alice"), dm(host), "carol")
    assert host.direct_channel(uid(host, "bob"), "alice").id == dm(host)    # one DM per pair


# ------------------------------------------------------------------------------ calls


def test_call_is_full_at_max_participants(host: DemoHost) -> None:
    ts = cid("town-square")
    for n in ("alice", "bob", "carol"):
        host.join_call(uid(host, n), ts, f"s-{n}")
    with pytest.raises(CallFullError, match="Sorry, this call is full: it already has the maximum of 3 participants."):
        host.join_call(uid(host, "dave"), ts, "s-dave")
    assert len(host.calls[ts].participants) == 3
    host.leave_call("s-bob")
    host.join_call(uid(host, "dave"), ts, "s-dave")                # room again


def test_unlimited_when_max_is_zero() -> None:
    h = DemoHost(max_participants=0)
    seed(h)
    for i in range(12):
        h.join_call(h.user_by_name("alice").id, cid("town-square"), f"s{i}")
    assert len(h.calls[cid("town-square")].participants) == 12
    with pytest.raises(ValueError):
        DemoHost(max_participants=-1)


def test_call_post_thread_and_end(host: DemoHost) -> None:
    ts = cid("town-square")
    call, started = host.join_call(uid(host, "alice"), ts, "a1")
    assert started
    again, started2 = host.join_call(uid(host, "bob"), ts, "b1")
    assert again is call and not started2
    post = host.call_post(call)
    assert post.type == "call" and post.props["participants"] == [uid(host, "alice"), uid(host, "bob")]
    reply = host.post(uid(host, "bob"), ts, "notes: ship it", root_id=call.post_id)
    assert reply.root_id == post.id
    with pytest.raises(NotFoundError, match="That thread does not exist in this channel."):
        host.post(uid(host, "bob"), ts, "x", root_id="nope")
    with pytest.raises(ForbiddenError, match="Only the person who started the call"):
        host.end_call(uid(host, "bob"), ts)
    removed = host.end_call(uid(host, "alice"), ts)
    assert set(removed.sessions) == {"a1", "b1"} and removed.ended_calls == ((ts, post.id),)
    assert post.props["end_at"] >= post.props["start_at"]
    assert host.leave_call("a1") is None


def test_last_leave_ends_the_call(host: DemoHost) -> None:
    ts = cid("town-square")
    host.join_call(uid(host, "alice"), ts, "a1")
    host.join_call(uid(host, "bob"), ts, "b1")
    result = host.leave_call("a1")
    assert result is not None and not result[1]
    result = host.leave_call("b1")
    assert result is not None and result[1]
    assert ts not in host.calls
    call, started = host.join_call(uid(host, "bob"), ts, "b2")
    assert started                                                   # a new call, a new post
    assert sum(p.type == "call" for p in host.posts[ts]) == 2


def test_session_in_one_call_at_a_time(host: DemoHost) -> None:
    host.join_call(uid(host, "alice"), cid("town-square"), "a1")
    with pytest.raises(ConflictError, match="This session is already in a call."):
        host.join_call(uid(host, "alice"), cid("off-topic"), "a1")


def test_participant_state(host: DemoHost) -> None:
    ts = cid("town-square")
    host.join_call(uid(host, "alice"), ts, "a1")
    call, p = host.participant("a1")
    assert p.muted and not p.speaking
    host.set_muted("a1", False)
    assert host.set_speaking("a1", True) is call
    assert host.set_speaking("a1", True) is None                    # no change, no event
    assert call.view()["participants"][0]["speaking"] is True
    host.set_muted("a1", True)
    assert call.view()["participants"][0]["speaking"] is False      # muting stops "speaking"
    host.raise_hand("a1", True)
    assert call.view()["participants"][0]["hand_raised_at"] > 0
    host.raise_hand("a1", False)
    assert call.view()["participants"][0]["hand_raised_at"] == 0
    _, who, emoji = host.react("a1", "tada")
    assert who is p and emoji == "\U0001F389"
    with pytest.raises(ForbiddenError, match="Unknown reaction 'poop'"):
        host.react("a1", "poop")
    assert host.set_speaking("gone", True) is None                   # VAD after leaving: ignored
    with pytest.raises(NotFoundError, match="You are not in a call."):
        host.raise_hand("gone", True)


def test_one_screen_sharer_per_call(host: DemoHost) -> None:
    ts = cid("town-square")
    host.join_call(uid(host, "alice"), ts, "a1")
    host.join_call(uid(host, "bob"), ts, "b1")
    host.screen_on("a1")
    host.screen_on("a1")                                             # idempotent for the sharer
    with pytest.raises(ConflictError, match="@alice is already sharing their screen; one person can share at a time."):
        host.screen_on("b1")
    host.screen_off("a1")
    call = host.screen_on("b1")
    assert call.screen_session == "b1"
    host.leave_call("b1")                                            # leaving frees the screen
    assert call.screen_session is None
    host.screen_on("a1")


def test_camera_only_in_direct_messages(host: DemoHost) -> None:
    host.join_call(uid(host, "alice"), cid("town-square"), "a1")
    with pytest.raises(ForbiddenError, match="Cameras are available in direct-message calls"):
        host.video_on("a1")
    host.leave_call("a1")
    d = dm(host)
    host.join_call(uid(host, "alice"), d, "a2")
    host.join_call(uid(host, "bob"), d, "b2")
    assert host.video_on("a2").participants["a2"].video
    assert host.video_on("b2").participants["b2"].video              # either person
    assert not host.video_on("b2", False).participants["b2"].video


def test_visibility(host: DemoHost) -> None:
    bob = {c.name for c in host.channels_for(uid(host, "bob"))}
    assert bob == {"town-square", "off-topic", "old-project", "alice__bob"}
    carol = {c.name for c in host.channels_for(uid(host, "carol"))}
    assert "design" in carol and "alice__bob" not in carol
    with pytest.raises(ForbiddenError):
        host.recent_posts(uid(host, "bob"), cid("design"))


# ------------------------------------------------------------------------------ the server, over its WebSocket
# (no browser: the host <-> page protocol, and the host <-> SFU relay for joins, limits and closes)

class Page:
    """A page's WebSocket: requests with ids, and the events it was sent."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.replies: dict[int, dict[str, Any]] = {}
        self.next_id = 1
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for m in self.ws:
            if m.type == aiohttp.WSMsgType.TEXT:
                msg = json.loads(m.data)
                if msg["type"] == "reply":
                    self.replies[msg["id"]] = msg
                else:
                    self.events.append(msg)

    async def request(self, type_: str, **payload: Any) -> dict[str, Any]:
        rid = self.next_id
        self.next_id += 1
        await self.ws.send_json({"type": type_, "id": rid, **payload})
        for _ in range(200):
            if rid in self.replies:
                return self.replies.pop(rid)
            await asyncio.sleep(0.01)
        raise AssertionError(f"no reply to {type_}")

    async def event(self, type_: str, timeout: float = 5.0) -> dict[str, Any]:
        for _ in range(int(timeout / 0.01)):
            for i, e in enumerate(self.events):
                if e["type"] == type_:
                    return self.events.pop(i)
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {type_} event; got {[e['type'] for e in self.events]}")


@pytest.fixture
async def server() -> AsyncIterator[DemoServer]:
    rtc = RtcConfig(media=MediaConfig(addresses=("127.0.0.1",), port=0),
                    transport=TransportConfig(tcp_addresses=("127.0.0.1",), tcp_port=0),
                    local_ips=("127.0.0.1",), signaling_timeout=1.0)
    s = DemoServer(DemoConfig(http_port=0, rtc=rtc, max_participants=3))
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture
async def pages(server: DemoServer) -> AsyncIterator[Any]:
    session = aiohttp.ClientSession()
    opened: list[Page] = []

    async def open_page(name: str) -> tuple[Page, dict[str, Any]]:
        ws = await session.ws_connect(f"http://127.0.0.1:{server.port}/ws")
        page = Page(ws)
        opened.append(page)
        return page, await page.request("login", name=name)

    try:
        yield open_page
    finally:
        for p in opened:
            await p.ws.close()
            p.reader.cancel()
        await session.close()


async def test_server_login_and_hello(server: DemoServer, pages: Any) -> None:
    page, hello = await pages("alice")
    assert hello["ok"]
    data = hello["data"]
    assert data["me"]["username"] == "alice"
    assert {c["name"] for c in data["channels"]} >= {"town-square", "design", "alice__bob", "old-project"}
    assert data["rtc"]["udp_port"] == server.rtc_ports()[0] and data["rtc"]["media_timeout_ms"] == 10000
    _, refused = await pages("olaf")
    assert not refused["ok"] and refused["code"] == "forbidden"
    assert refused["error"] == "@olaf is deactivated and cannot sign in or join calls."
    reply = await page.request("nonsense")
    assert reply == {"type": "reply", "id": reply["id"], "ok": False, "code": "not_found",
                     "error": "Unknown request 'nonsense'."}


async def test_server_full_call_and_sfu_sessions(server: DemoServer, pages: Any) -> None:
    ts = cid("town-square")
    joined = []
    for name in ("alice", "bob", "carol"):
        page, _ = await pages(name)
        reply = await page.request("call_join", channel_id=ts)
        assert reply["ok"], reply
        joined.append((page, reply["data"]["session_id"]))
    call_id = server.host.calls[ts].id
    assert {c.session_id for c in server.sfu.sessions(call_id)} == {sid for _, sid in joined}
    dave, _ = await pages("dave")
    full = await dave.request("call_join", channel_id=ts)
    assert full["code"] == "call_full"
    assert full["error"] == "Sorry, this call is full: it already has the maximum of 3 participants."
    assert len(server.sfu.sessions(call_id)) == 3
    # members who are not in the call still see it (the channel header's "Join call")
    state = [e for e in dave.events if e["type"] == "call"]
    assert not state or len(state[-1]["call"]["participants"]) == 3
    # a page that goes away leaves the call, at the host and at the SFU
    await joined[0][0].ws.close()
    for _ in range(100):
        if len(server.sfu.sessions(call_id)) == 2:
            break
        await asyncio.sleep(0.02)
    assert len(server.sfu.sessions(call_id)) == 2 and len(server.host.calls[ts].participants) == 2
    assert (await dave.request("call_join", channel_id=ts))["ok"]


async def test_server_relays_sfu_close_and_survives_garbage(server: DemoServer, pages: Any) -> None:
    page, _ = await pages("alice")
    reply = await page.request("call_join", channel_id=cid("off-topic"))
    sid = reply["data"]["session_id"]
    await page.ws.send_json({"type": "sdp", "data": {"type": "offer", "sdp": "v=0 garbage"}})
    await page.ws.send_str("not json")
    closed = await page.event("call_closed", timeout=5)          # the SFU refused the offer
    assert "The server ended your call session (bad offer" in closed["reason"]
    assert sid not in server.host.sessions and cid("off-topic") not in server.host.calls
    # the WebSocket survived both
    assert (await page.request("call_join", channel_id=cid("off-topic")))["ok"]
    closed = await page.event("call_closed", timeout=5)          # no offer within 1 s
    assert closed["reason"].startswith("The call could not be set up: the browser sent no offer in time")


async def test_server_archive_ends_the_call_for_everyone(server: DemoServer, pages: Any) -> None:
    ot = cid("off-topic")
    alice, _ = await pages("alice")
    bob, _ = await pages("bob")
    assert (await alice.request("call_join", channel_id=ot))["ok"]
    assert (await bob.request("call_join", channel_id=ot))["ok"]
    call_id = server.host.calls[ot].id
    reply = await bob.request("command", channel_id=ot, text="/archive")
    assert reply["data"]["text"] == "~off-topic is archived."
    for page in (alice, bob):
        closed = await page.event("call_closed")
        assert closed["reason"] == "~off-topic was archived"
    assert server.sfu.sessions(call_id) == []
    link = await alice.request("call_link", channel_id=ot)
    assert link["error"] == "~off-topic is archived: it has no call link."
    ended = [e for e in alice.events if e["type"] == "post_edited" and e["post"]["type"] == "call"]
    assert ended and ended[-1]["post"]["props"]["end_at"] > 0


async def test_server_screen_share_and_camera_rules(server: DemoServer, pages: Any) -> None:
    ts = cid("town-square")
    alice, _ = await pages("alice")
    bob, _ = await pages("bob")
    await alice.request("call_join", channel_id=ts)
    await bob.request("call_join", channel_id=ts)
    assert (await alice.request("screen_on", data={"screenStreamID": "s1"}))["ok"]
    busy = await bob.request("screen_on", data={"screenStreamID": "s2"})
    assert busy["code"] == "conflict" and busy["error"].startswith("@alice is already sharing")
    cam = await bob.request("video_on", data={"videoStreamID": "v1"})
    assert cam["code"] == "forbidden"
    link = await alice.request("call_link", channel_id=ts)
    assert link["data"]["link"] == f"http://127.0.0.1:{server.port}/channels/{ts}?join_call=true"


async def test_server_deactivation_signs_out_and_removes_from_the_call(server: DemoServer, pages: Any) -> None:
    ts = cid("town-square")
    alice, _ = await pages("alice")
    bob, _ = await pages("bob")
    assert (await alice.request("call_join", channel_id=ts))["ok"]
    assert (await bob.request("call_join", channel_id=ts))["ok"]
    call_id = server.host.calls[ts].id
    denied = await bob.request("command", channel_id=ts, text="/deactivate @alice")
    assert denied["error"] == "Only a system admin can activate or deactivate users."
    reply = await alice.request("command", channel_id=ts, text="/deactivate @bob")
    assert reply["data"]["text"] == "@bob is deactivated."
    assert (await bob.event("call_closed"))["reason"] == "@bob was deactivated"
    assert (await bob.event("signed_out"))["reason"] == "@bob was deactivated."
    await asyncio.wait_for(bob.reader, 5)                         # the server closed bob's WebSocket
    assert [s.user_id for s in server.sfu.sessions(call_id)] == [uid(server.host, "alice")]
    _, again = await pages("bob")
    assert again["error"] == "@bob is deactivated and cannot sign in or join calls."
    assert (await alice.request("command", channel_id=ts, text="/activate @bob"))["ok"]
    _, back = await pages("bob")
    assert back["ok"]
