"""The browser scenarios. Each takes a ``Harness`` and returns a JSON-able report; a failed
expectation raises ``ScenarioFailure`` with a message that says what did not happen.

- ``call``: three RTCPeer participants join one after the other, as in a real call (each
  later one receives the others' audio before unmuting, so Chrome's addTrack() reuses a
  transceiver the server created); the third publishes its microphone muted first (the
  server must forward nothing of it) and unmutes later; everyone must hear everyone else
  (inbound-rtp audio packets and energy).
- ``glare``: an answer with the client's offer right behind it, then real glare on a
  server-created transceiver; every microphone must still be forwarded.
- ``screen`` / ``screen_simulcast``: one participant shares its (fake) screen after
  ScreenOn; the other decodes frames and renders them in a <video> element (checked in a
  canvas and in a screenshot); stopping the share removes the track with a server offer.
- ``renegotiate``: 20 server-initiated renegotiations in a row (a second participant's screen
  share toggled on and off 10 times) while audio flows; the first participant's ICE and
  connection must never leave connected/completed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from switchboard.signaling.rtc import RtcServer
from switchboard.signaling.session import PublishedTrack, Subscription

from .driver import Harness, Participant, ScenarioFailure, wait_until

Scenario = Callable[[Harness], Awaitable[dict[str, Any]]]


class ForwardWatch:
    """Notes when each published track's server-side ``forwarded`` counter first exceeds 0."""

    def __init__(self, server: RtcServer) -> None:
        self.server = server
        self.first: dict[tuple[str, str], float] = {}
        self._task = asyncio.ensure_future(self._poll())

    async def _poll(self) -> None:
        plane = self.server.plane
        while True:
            for s in list(self.server.sessions.values()):
                for t in list(s.published.values()):
                    key = (s.session_id, t.type)
                    if key not in self.first and any(
                        plane.track_stats(tid)["forwarded"] > 0 for tid in t.layers.values()
                    ):
                        self.first[key] = time.monotonic()
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        self._task.cancel()


def _audible(a: dict[str, Any] | None) -> bool:
    return a is not None and a["packetsReceived"] > 0 and a["totalAudioEnergy"] > 0


def _published(p: Participant, ttype: str) -> PublishedTrack | None:
    s = p.session
    if s is None:
        return None
    return next((t for t in s.published.values() if t.type == ttype), None)


def _subscription(p: Participant, track: PublishedTrack) -> Subscription | None:
    s = p.session
    if s is None:
        return None
    return next((sub for sub in s.subscriptions.values() if sub.track is track), None)


def _check_states(summary: dict[str, Any]) -> list[str]:
    """Problems in a page's ICE/connection state history after it first connected."""
    problems = []
    ice = [s for _, s in summary["iceStates"]]
    conn = [s for _, s in summary["connStates"]]
    if "connected" not in ice and "completed" not in ice:
        problems.append(f"ICE never connected: {ice}")
    else:
        first = min(i for i, s in enumerate(ice) if s in ("connected", "completed"))
        if any(s not in ("connected", "completed") for s in ice[first:]):
            problems.append(f"ICE left connected/completed: {ice}")
    if "connected" not in conn:
        problems.append(f"never connected: {conn}")
    elif any(s in ("disconnected", "failed", "closed") for s in conn):
        problems.append(f"connection went {conn}")
    return problems


async def _hear_each_other(listeners: list[Participant], senders: list[str], what: str) -> dict[str, Any]:
    async def everyone() -> dict[str, Any] | None:
        heard = {p.name: await p.heard() for p in listeners}
        ok = all(_audible(heard[p.name].get(s)) for p in listeners for s in senders if s != p.name)
        return heard if ok else None

    result: dict[str, Any] = await wait_until(everyone, what, timeout=30)
    return result


# ------------------------------------------------------------------------------------- call


async def _voice_published(p: Participant) -> PublishedTrack:
    async def published() -> PublishedTrack | None:
        return _published(p, "voice")

    return await wait_until(published, f"the server to publish {p.name}'s voice", 30)


async def call(h: Harness) -> dict[str, Any]:
    """Staggered joins, as in a real call: each later participant first receives the others'
    audio (server offers), then unmutes; Chrome's addTrack() then reuses the transceiver the
    server's offer created, so the client sends on a server-created mid."""
    watch = ForwardWatch(h.server)
    try:
        alice = await h.join("alice")
        await h.connected("alice")
        await alice.sb("unmute")
        await _voice_published(alice)

        bob = await h.join("bob")
        await h.connected("bob")
        await h.settled("bob")
        await bob.sb("unmute")
        await _hear_each_other([alice, bob], ["alice", "bob"], "alice and bob to hear each other")

        carol = await h.join("carol")
        await h.connected("carol")
        await h.settled("carol")
        await carol.sb("addMic")  # publishes her microphone, but never says Unmute (yet)

        # carol's voice reaches the server and is subscribed by the others, but is not forwarded
        async def carol_subscribed() -> PublishedTrack | None:
            t = _published(carol, "voice")
            if t is None:
                return None
            subs = [_subscription(p, t) for p in (alice, bob)]
            return t if all(s is not None and s.consumer is not None for s in subs) else None

        carol_voice = await wait_until(carol_subscribed, "alice and bob to subscribe carol's (muted) voice", 30)
        carol_tid = carol_voice.default_layer()
        drops0 = h.server.plane.track_stats(carol_tid)["muted_drops"]

        async def dropping() -> bool:
            return h.server.plane.track_stats(carol_tid)["muted_drops"] > drops0 + 25

        await wait_until(dropping, "the server to receive (and drop) carol's muted voice", 20)
        muted_stats = h.server.plane.track_stats(carol_tid)
        if muted_stats["forwarded"] != 0:
            raise ScenarioFailure(f"the server forwarded carol's voice before Unmute: {muted_stats}")
        for p in (alice, bob):
            got = (await p.heard()).get("carol")
            if got is not None and got["packetsReceived"] > 0:
                raise ScenarioFailure(f"{p.name} received carol's audio before she unmuted: {got}")

        await carol.sb("unmute")
        everyone = [alice, bob, carol]
        heard = await _hear_each_other(everyone, [p.name for p in everyone], "all three to hear each other")

        async def pongs() -> bool:
            return all([(await p.summary())["rtt"] > 0 for p in everyone])

        await wait_until(pongs, "RTCPeer's calls-dc ping to be answered with pong (rtt > 0)", 15)

        report: dict[str, Any] = {"participants": {}}
        for p in everyone:
            summary = await p.summary()
            problems = _check_states(summary)
            if problems:
                raise ScenarioFailure(f"{p.name}: {'; '.join(problems)}")
            stats = await p.stats()
            traffic = h.relay.traffic_of(p.name)
            first = watch.first.get((p.name, "voice"))
            if first is None or traffic.t_first_offer is None or traffic.t_unmute is None:
                raise ScenarioFailure(f"no forwarded audio recorded for {p.name}")
            voice = _published(p, "voice")
            report["participants"][p.name] = {
                "heard": {s: {k: v[k] for k in ("packetsReceived", "totalAudioEnergy", "codec")}
                          for s, v in heard[p.name].items()},
                "first_offer_to_first_forwarded_s": round(first - traffic.t_first_offer, 3),
                "unmute_to_first_forwarded_s": round(first - traffic.t_unmute, 3),
                "voice_mid": None if voice is None else voice.mid,
                # whose forwarded track shares that mid (Chrome's addTrack reused its transceiver)
                "voice_mid_also_carries": sorted(
                    sender for mid, (sender, _) in p.senders_by_mid().items()
                    if voice is not None and mid == voice.mid
                ),
                "rtt_s": summary["rtt"],
                "ice_states": [s for _, s in summary["iceStates"]],
                "selected_pair": stats["pair"],
                "transport": stats["transport"],
                "server_offers": traffic.server_offers,
                "client_offers": traffic.client_offers,
            }
        report["carol_muted_track"] = muted_stats
        return report
    finally:
        watch.stop()


# ------------------------------------------------------------------------------------- glare


async def glare(h: Harness) -> dict[str, Any]:
    """The two races a real RTCPeer runs into, made deterministic by holding messages in the
    relay:

    1. bob answers a server offer and, right behind the answer, offers his microphone (first
       unmute); both reach the server in one read. That offer is not glare: the server has
       its answer.
    2. carol offers her microphone (on a transceiver the server created) while a server offer
       is on its way to her: real glare. The server ignores her offer (it is the impolite
       peer), carol rolls back and answers; her microphone must still end up forwarded.
    """
    report: dict[str, Any] = {}
    alice = await h.join("alice")
    await h.connected("alice")
    await alice.sb("unmute")
    await _voice_published(alice)

    # 1. answer + offer back to back
    h.relay.hold_offers("bob")
    bob = await h.join("bob")
    await h.connected("bob")

    async def offer_held() -> bool:
        return bool(h.relay.held_offers.get("bob"))

    await wait_until(offer_held, "the server's offer of alice's voice to bob", 20)
    h.relay.hold_from_page("bob")
    h.relay.release_offers("bob")

    async def answered() -> bool:
        return any(m.get("type") == "sdp" for m in h.relay.held_from_page.get("bob", []))

    await wait_until(answered, "bob to answer the server's offer", 20)
    await bob.sb("unmute")

    async def offered() -> bool:
        sdps = [m["data"]["type"] for m in h.relay.held_from_page.get("bob", []) if m.get("type") == "sdp"]
        return sdps == ["answer", "offer"]

    await wait_until(offered, "bob to offer his microphone", 20)
    report["bob_released"] = h.relay.release_from_page("bob")
    await _hear_each_other([alice, bob], ["alice", "bob"],
                           "alice and bob to hear each other (bob's offer came right behind his answer)")

    # 2. real glare on a server-created transceiver
    carol = await h.join("carol")
    await h.connected("carol")
    await h.settled("carol")
    h.relay.hold_offers("carol")
    await bob.sb("shareScreen")  # the server offers bob's screen to carol (held) and alice

    async def screen_offer_held() -> bool:
        return bool(h.relay.held_offers.get("carol"))

    await wait_until(screen_offer_held, "the server's offer of bob's screen to carol", 30)
    carol_traffic = h.relay.traffic_of("carol")
    offers_before = carol_traffic.client_offers
    await carol.sb("unmute")

    async def carol_offered() -> bool:
        return carol_traffic.client_offers > offers_before

    await wait_until(carol_offered, "carol to offer her microphone", 20)
    h.relay.release_offers("carol")
    everyone = [alice, bob, carol]
    await _hear_each_other(everyone, [p.name for p in everyone],
                           "all three to hear each other (carol's offer collided with a server offer)")
    await bob.sb("stopScreen")
    for p in everyone:
        summary = await p.summary()
        problems = _check_states(summary)
        if problems:
            raise ScenarioFailure(f"{p.name}: {'; '.join(problems)}")
        voice = _published(p, "voice")
        report[p.name] = {
            "voice_mid": None if voice is None else voice.mid,
            "client_offers": h.relay.traffic_of(p.name).client_offers,
            "server_offers": h.relay.traffic_of(p.name).server_offers,
            "transceivers": summary["transceivers"],
        }
    report["server_errors"] = {f"{g}/{k}": n for (g, k), n in getattr(h.server.metrics, "errors", {}).items()}
    return report


# ------------------------------------------------------------------------------------- screen


async def _screen_frames(viewer: Participant, track: PublishedTrack, min_frames: int = 1) -> dict[str, Any]:
    """Wait until ``viewer`` decodes and renders ``track``; return its stats and element info."""
    async def rendering() -> dict[str, Any] | None:
        sub = _subscription(viewer, track)
        if sub is None or sub.mid is None or sub.consumer is None:
            return None
        video = next((v for v in (await viewer.stats())["videoIn"] if v["mid"] == sub.mid), None)
        element = next((e for e in await viewer.sb("videoFrames") if e["mid"] == sub.mid), None)
        if video is None or element is None or video["framesDecoded"] < min_frames:
            return None
        if element["videoWidth"] <= 0 or element["variance"] <= 1.0:
            return None
        return {"mid": sub.mid, "stats": video, "element": element}

    result: dict[str, Any] = await wait_until(rendering, f"{viewer.name} to render the screen share", 40)
    return result


async def _screen(h: Harness, simulcast: bool) -> dict[str, Any]:
    alice = await h.join("alice")
    bob = await h.join("bob", simulcast=simulcast)
    await h.connected("alice", "bob")
    shared = await bob.sb("shareScreen")

    async def published() -> PublishedTrack | None:
        return _published(bob, "screen")

    track = await wait_until(published, "the server to publish bob's screen (ScreenOn, then the offer)", 30)
    if track.codec.lower() != "vp8":
        raise ScenarioFailure(f"screen published as {track.codec}, expected VP8")
    if simulcast and sorted(track.layers) != ["h", "l"]:
        raise ScenarioFailure(f"simulcast screen published with layers {sorted(track.layers)}")
    seen = await _screen_frames(alice, track, min_frames=5)
    shot = await alice.screenshot("screen-simulcast" if simulcast else "screen", seen["mid"])
    if shot["variance"] < 10 or shot["distinct"] < 16:
        raise ScenarioFailure(f"alice's screenshot looks blank: {shot}")
    bob_out = [o for o in (await bob.stats())["out"] if o["kind"] == "video"]
    track_stats = {rid: h.server.plane.track_stats(tid) for rid, tid in track.layers.items()}

    await bob.sb("stopScreen")

    async def removed() -> bool:
        s = alice.session
        return s is not None and _published(bob, "screen") is None and _subscription(alice, track) is None \
            and seen["mid"] not in s.neg.out_tracks

    await wait_until(removed, "the screen track to be removed from alice", 20)
    await h.settled("alice")
    await h.settled("bob")
    transceivers = (await alice.summary())["transceivers"]
    stopped = next((t for t in transceivers if t["mid"] == seen["mid"]), None)
    if stopped is not None and stopped["currentDirection"] not in ("stopped", "inactive", None):
        raise ScenarioFailure(f"alice's screen transceiver is still {stopped} after the share stopped")
    for p in (alice, bob):
        problems = _check_states(await p.summary())
        if problems:
            raise ScenarioFailure(f"{p.name}: {'; '.join(problems)}")
    return {
        "shared": shared,
        "server_track": {"codec": track.codec, "layers": sorted(track.layers), "stats": track_stats},
        "alice_inbound": seen["stats"],
        "alice_element": seen["element"],
        "bob_outbound": bob_out,
        "screenshot": shot,
        "alice_transceiver_after_stop": stopped,
    }


async def screen(h: Harness) -> dict[str, Any]:
    return await _screen(h, simulcast=False)


async def screen_simulcast(h: Harness) -> dict[str, Any]:
    return await _screen(h, simulcast=True)


# ------------------------------------------------------------------------------------- renegotiate


async def renegotiate(h: Harness, toggles: int = 10) -> dict[str, Any]:
    """bob talks and toggles his screen share; alice (who only listens, so that this scenario
    does not depend on how a client's first unmute is negotiated) answers every server offer."""
    bob = await h.join("bob")
    await h.connected("bob")
    await bob.sb("unmute")
    await _voice_published(bob)
    alice = await h.join("alice")
    await h.connected("alice")
    await _hear_each_other([alice], ["bob"], "alice to hear bob")
    await h.settled("alice")
    await h.settled("bob")
    traffic = h.relay.traffic_of("alice")
    offers0, answers0 = traffic.server_offers, traffic.client_answers
    audio0 = (await alice.heard())["bob"]["packetsReceived"]
    rendered: list[dict[str, Any]] = []
    for i in range(toggles):
        before = traffic.client_answers
        await bob.sb("shareScreen")

        async def forwarded() -> PublishedTrack | None:
            t = _published(bob, "screen")
            sub = None if t is None else _subscription(alice, t)
            return t if sub is not None and sub.consumer is not None else None

        track = await wait_until(forwarded, f"bob's screen #{i + 1} to be forwarded to alice", 30)
        await h.settled("alice")
        await h.settled("bob")
        if traffic.client_answers <= before:
            raise ScenarioFailure(f"share #{i + 1}: no server offer was answered by alice")
        if i in (0, toggles - 1):
            seen = await _screen_frames(alice, track)
            rendered.append({"toggle": i + 1, "mid": seen["mid"], "framesDecoded": seen["stats"]["framesDecoded"],
                             "size": [seen["element"]["videoWidth"], seen["element"]["videoHeight"]]})
            if i == toggles - 1:
                shot = await alice.screenshot("renegotiate", seen["mid"])
                if shot["variance"] < 10 or shot["distinct"] < 16:
                    raise ScenarioFailure(f"alice's screenshot looks blank: {shot}")

        before = traffic.client_answers
        await bob.sb("stopScreen")

        async def gone(track: PublishedTrack = track) -> bool:
            return _published(bob, "screen") is None and _subscription(alice, track) is None

        await wait_until(gone, f"bob's screen #{i + 1} to be removed from alice", 30)
        await h.settled("alice")
        await h.settled("bob")
        if traffic.client_answers <= before:
            raise ScenarioFailure(f"unshare #{i + 1}: no server offer was answered by alice")

    summary = await alice.summary()
    problems = _check_states(summary)
    if summary["signalErrors"] or summary["peerErrors"]:
        problems.append(h.describe_failure(summary))
    if problems:
        raise ScenarioFailure(f"alice: {'; '.join(problems)}")
    answered = traffic.client_answers - answers0
    if answered < 2 * toggles:
        raise ScenarioFailure(f"only {answered} server offers answered by alice, expected {2 * toggles}")

    async def audio_still_flows() -> bool:
        return bool((await alice.heard())["bob"]["packetsReceived"] > audio0 + 50)

    await wait_until(audio_still_flows, "bob's audio to keep flowing to alice", 20)
    stats = await alice.stats()
    s = alice.session
    assert s is not None
    return {
        "server_offers_to_alice": traffic.server_offers - offers0,
        "answers_from_alice": answered,
        "alice_own_offers": summary["offersSent"],
        "alice_ice_states": [st for _, st in summary["iceStates"]],
        "alice_conn_states": [st for _, st in summary["connStates"]],
        "alice_mids": list(s.neg.mids),
        "rendered": rendered,
        "selected_pair": stats["pair"],
        "selected_pair_changes": (stats["transport"] or {}).get("selectedCandidatePairChanges"),
        "bob_audio_at_alice": (await alice.heard())["bob"],
    }


SCENARIOS: dict[str, Scenario] = {
    "call": call,
    "glare": glare,
    "screen": screen,
    "screen_simulcast": screen_simulcast,
    "renegotiate": renegotiate,
}
