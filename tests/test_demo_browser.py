"""``switchboard demo`` in real browsers: Debian Chromium (headless, fake media) drives the demo's
own page and WebRTC client (signaling/demo/static) against the real ``switchboard demo`` command.

Everything runs inside a private network namespace with only loopback (``unshare --net``; see
reference/browsers.md 4), so the demo can use its real defaults (HTTP 8080, media UDP/TCP 8443)
and no packet leaves the machine. This file is both the tests (pytest side, which starts the
namespace) and the runner inside it (``python tests/test_demo_browser.py <scenario>``, which
prints one ``RESULT {json}`` line). A scenario records named checks and keeps going where it
can, so one failure does not hide the others; each test asserts one check.

Scenarios (one Chromium, one browser context per person):

- ``call`` (``--max-participants 3``): alice, bob and carol join a call in ~town-square; each
  receives the others' audio (getStats ``totalAudioEnergy`` > 0); the SFU's voice activity
  lights a speaking indicator; carol mutes and her audio stops at the others while theirs keeps
  flowing; bob raises a hand and reacts, and everyone sees both; alice shares her (fake) screen
  and the others decode and render it, while bob cannot start a second share; a message in the
  call thread reaches the others; dave gets "call is full"; carol leaves and the others' lists
  update; then dave can join. Screenshots of the three-person call are checked not to be blank.
- ``link``: alice copies ~off-topic's call link with ``/call link`` and starts the call with
  ``/call start``; bob opens the link in a fresh browser and lands in that channel's call; the
  archived channel's link is refused; a guest is refused until ``/invite`` adds her; alice and
  bob move to their direct message and alice's camera renders at bob (1-1 video); a browser
  that denies the microphone gets a clear message; and with the SFU announcing an unreachable
  address (media blocked) the page says what to open after ~10 s.

Screenshots go to ``test-artifacts/demo-browser/`` (``SWITCHBOARD_TEST_ARTIFACTS`` overrides the
parent directory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("SWITCHBOARD_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "demo-browser"
RESULT_PREFIX = "RESULT "
T = TypeVar("T")


# =============================================================================== pytest side

if __name__ != "__main__":
    import pytest

    pytestmark = pytest.mark.interop

    def _run_scenario(name: str, timeout: float = 150.0) -> dict[str, Any]:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        cmd = ["unshare", "--net", "--", sys.executable, str(Path(__file__).resolve()), name,
               "--artifacts", str(ARTIFACTS)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
        except subprocess.TimeoutExpired as exc:
            tail = (exc.stderr or b"")[-3000:] if isinstance(exc.stderr, bytes) else str(exc.stderr)[-3000:]
            return {"ok": False, "error": f"scenario {name} did not finish within {timeout:.0f} s", "checks": {},
                    "stderr": tail}
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
        if not lines:
            return {"ok": False, "error": f"scenario {name} printed no result (exit {proc.returncode})",
                    "checks": {}, "stderr": proc.stderr[-4000:], "stdout": proc.stdout[-2000:]}
        result: dict[str, Any] = dict(json.loads(lines[-1][len(RESULT_PREFIX):]))
        result["stderr"] = proc.stderr[-4000:]
        (ARTIFACTS / f"{name}-result.json").write_text(json.dumps(result, indent=2))
        return result

    @pytest.fixture(scope="module")
    def call_report() -> dict[str, Any]:
        return _run_scenario("call")

    @pytest.fixture(scope="module")
    def link_report() -> dict[str, Any]:
        return _run_scenario("link")

    def _check(report: dict[str, Any], name: str) -> dict[str, Any]:
        check: dict[str, Any] | None = report["checks"].get(name)
        if check is None:
            raise AssertionError(f"check {name!r} was not reached: {report.get('error')}\n"
                                 f"diagnostics: {json.dumps(report.get('diagnostics'), indent=1)[:6000]}\n"
                                 f"stderr: {report.get('stderr', '')[-2000:]}")
        assert check["ok"], f"{name}: {check['detail']}"
        return check

    # ---- the page's msgpack (calls-dc framing) against Python's msgpack, in node: no browser needed

    _NODE_MSGPACK = r"""
    globalThis.window = globalThis;
    require(process.argv[1]);
    const {msgpack} = window.SwitchboardRTC;
    const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
    const hex = (b) => Buffer.from(b).toString('hex');
    const out = {encoded: cases.encode.map((vals) => hex(msgpack.encode(...vals))), decoded: [], errors: []};
    for (const h of cases.decode) {
        const vals = msgpack.decodeAll(Buffer.from(h, 'hex'));
        out.decoded.push(vals.map((v) => (v instanceof Uint8Array ? {bin: hex(v)} : v)));
    }
    for (const h of cases.garbage) {
        try { msgpack.decodeAll(Buffer.from(h, 'hex')); out.errors.push(null); }
        catch (e) { out.errors.push(e.constructor.name); }
    }
    console.log(JSON.stringify(out));
    """

    def test_page_msgpack_matches_python() -> None:
        import msgpack
        from switchboard.signaling import dcmsg
        from switchboard.signaling.dcmsg import DCMessageType

        encode_cases: list[list[Any]] = [
            [1], [7], [8], [4, 0.25], [5, 1.5], [127], [128], [255], [256], [65535], [65536], [2**32 - 1],
            [-1], [-32], [-33], [-128], [-129], [-40000], [-(2**31)],
            ["x" * 31], ["y" * 32], ["z" * 300], ["\u00e9t\u00e9 \U0001F389"], [None, True, False],
            [9, {"0": {"type": "voice", "sender_id": "abc"}}], [[1, [2, [3]], {}]], [list(range(20))],
            [{f"k{i}": i for i in range(17)}],
        ]
        decode_cases = [
            dcmsg.encode(DCMessageType.PONG),
            dcmsg.encode(DCMessageType.LOCK, True),
            dcmsg.encode(DCMessageType.LOCK, False),
            dcmsg.encode_media_map({"1": {"type": "voice", "sender_id": "s1"},
                                    "4": {"type": "screen", "sender_id": "s2"}}),
            dcmsg.encode_sdp("offer", "v=0\r\n" * 50),
            msgpack.packb(2**40) + msgpack.packb(-(2**40)) + msgpack.packb(1.5, use_single_float=True),
            msgpack.packb(b"\x00" * 70000, use_bin_type=True),
        ]
        garbage = ["", "c1", "d9", "92", "a5616263", "ce0000", "dc0001"]
        payload = {"encode": encode_cases, "decode": [c.hex() for c in decode_cases], "garbage": garbage}
        rtc_js = ROOT / "signaling" / "demo" / "static" / "rtc.js"
        proc = subprocess.run(["node", "-e", _NODE_MSGPACK, str(rtc_js)], input=json.dumps(payload),
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        got = json.loads(proc.stdout)
        for values, hexed in zip(encode_cases, got["encoded"], strict=True):
            expected = b"".join(msgpack.packb(v, use_bin_type=True) for v in values)
            assert bytes.fromhex(hexed) == expected, values
        assert got["decoded"][0] == [2]
        assert got["decoded"][1] == [7, True] and got["decoded"][2] == [7, False]
        assert got["decoded"][3] == [9, {"1": {"type": "voice", "sender_id": "s1"},
                                         "4": {"type": "screen", "sender_id": "s2"}}]
        sdp_type, blob = got["decoded"][4]
        assert sdp_type == 3 and dcmsg.decode_sdp(bytes.fromhex(blob["bin"]))["sdp"] == "v=0\r\n" * 50
        assert got["decoded"][5] == [2**40, -(2**40), 1.5]
        assert got["decoded"][6] == [{"bin": "00" * 70000}]
        # "" decodes to nothing; truncated or unknown bytes raise (the client logs and drops them)
        assert got["errors"] == [None, "TypeError", "RangeError", "RangeError", "RangeError", "RangeError",
                                 "RangeError"]

    def test_rtc_connected_is_logged(call_report: dict[str, Any]) -> None:
        _check(call_report, "rtc_connected")

    def test_three_users_hear_each_other(call_report: dict[str, Any]) -> None:
        _check(call_report, "audio")

    def test_speaking_indicator_from_voice_activity(call_report: dict[str, Any]) -> None:
        _check(call_report, "speaking")

    def test_mute_stops_audio_at_the_others(call_report: dict[str, Any]) -> None:
        _check(call_report, "mute")

    def test_raised_hand_and_reaction_appear_for_everyone(call_report: dict[str, Any]) -> None:
        _check(call_report, "hand_reaction")

    def test_screen_share_renders_at_the_others(call_report: dict[str, Any]) -> None:
        _check(call_report, "screen")

    def test_one_screen_sharer_at_a_time(call_report: dict[str, Any]) -> None:
        _check(call_report, "one_sharer")

    def test_call_thread(call_report: dict[str, Any]) -> None:
        _check(call_report, "thread")

    def test_fourth_user_gets_call_is_full(call_report: dict[str, Any]) -> None:
        _check(call_report, "full")

    def test_leaving_updates_the_list(call_report: dict[str, Any]) -> None:
        _check(call_report, "leave")

    def test_screenshots_are_not_blank(call_report: dict[str, Any]) -> None:
        _check(call_report, "screenshots")

    def test_call_link_opens_the_right_channels_call(link_report: dict[str, Any]) -> None:
        _check(link_report, "link")

    def test_archived_channel_link_is_invalid(link_report: dict[str, Any]) -> None:
        _check(link_report, "archived_link")

    def test_guest_must_be_added_to_the_channel(link_report: dict[str, Any]) -> None:
        _check(link_report, "guest")

    def test_camera_in_direct_message_calls(link_report: dict[str, Any]) -> None:
        _check(link_report, "dm_video")

    def test_microphone_denied_message(link_report: dict[str, Any]) -> None:
        _check(link_report, "mic_denied")

    def test_media_timeout_says_what_to_open(link_report: dict[str, Any]) -> None:
        _check(link_report, "media_timeout")


# =============================================================================== netns side


class Failed(AssertionError):
    pass


async def wait_until(check: Callable[[], Awaitable[T | None]], what: str, timeout: float = 30.0,
                     interval: float = 0.25) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


class Demo:
    """``switchboard demo`` as a child process (the real command, real defaults)."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.output: list[str] = []

    async def start(self) -> str:
        log = open(self.log_path, "wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchboard.signaling.cli", "demo", *self.args,
            stdout=asyncio.subprocess.PIPE, stderr=log, cwd=ROOT)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = (await asyncio.wait_for(self.proc.stdout.readline(), 30)).decode()
            if not line:
                break
            self.output.append(line.rstrip())
            m = re.search(r"Open (\S+) in your browser", line)
            if m:
                self.url = m.group(1)
                asyncio.ensure_future(self._drain())
                return self.url
        raise Failed(f"switchboard demo did not print its URL: {self.output} (log {self.log_path})")

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.output.append(line.decode().rstrip())

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(2)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


class Person:
    """One browser context with the demo page, signed in as ``name``."""

    def __init__(self, lab: Lab, name: str, context: Any, page: Any) -> None:
        self.lab = lab
        self.name = name
        self.context = context
        self.page = page
        self.console: list[str] = []
        page.on("console", lambda m: self._note(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self._note(f"pageerror: {e}"))

    def _note(self, line: str) -> None:
        self.console.append(line)
        del self.console[:-200]

    async def js(self, expr: str, arg: Any = None) -> Any:
        return await self.page.evaluate(expr, arg)

    async def state(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.js("() => window.demo.state()")
        return result

    async def stats(self) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self.js("() => window.demo.stats()")
        return result

    async def click(self, selector: str) -> None:
        await self.page.click(selector, timeout=15000)

    async def notice(self, code: str, timeout: float = 20.0) -> str:
        el = await self.page.wait_for_selector(f'.notice[data-code="{code}"]', timeout=timeout * 1000)
        text: str = await el.inner_text()
        return text

    async def participants(self) -> dict[str, dict[str, str]]:
        result: dict[str, dict[str, str]] = await self.js(
            "() => Object.fromEntries([...document.querySelectorAll('#participants .participant')]"
            ".map(li => [li.dataset.user, {...li.dataset}]))")
        return result

    async def wait_connected(self, channel_id: str | None = None, timeout: float = 40.0) -> None:
        sel = '#call[data-state="connected"]' + (f'[data-channel-id="{channel_id}"]' if channel_id else "")
        try:
            await self.page.wait_for_selector(sel, timeout=timeout * 1000)
        except Exception as exc:
            raise Failed(f"{self.name} did not connect to the call: {type(exc).__name__}; "
                         f"page state {await self.state()}; notices {await self.notices()}") from None

    async def notices(self) -> list[str]:
        result: list[str] = await self.js(
            "() => [...document.querySelectorAll('.notice')].map(n => n.dataset.code + ': ' + n.innerText)")
        return result

    async def type_message(self, text: str, box: str = "#message") -> None:
        await self.page.fill(box, text)
        await self.page.press(box, "Enter")

    async def screenshot(self, label: str) -> dict[str, Any]:
        from browser import png

        data = await self.page.screenshot(type="png")
        path = self.lab.artifacts / f"{label}-{self.name}.png"
        path.write_bytes(data)
        return {"path": str(path), **png.luma_stats(data)}


class Lab:
    """The browser(s), the people and the checks of one scenario."""

    def __init__(self, pw: Any, artifacts: Path) -> None:
        self.pw = pw
        self.artifacts = artifacts
        self.browser: Any = None
        self.people: dict[str, Person] = {}
        self.checks: dict[str, dict[str, Any]] = {}
        self.demos: list[Demo] = []
        self.extra_browsers: list[Any] = []

    def check(self, name: str, ok: bool, detail: Any) -> bool:
        self.checks[name] = {"ok": bool(ok), "detail": detail}
        return bool(ok)

    async def demo(self, *args: str, label: str = "demo") -> str:
        d = Demo(list(args), self.artifacts / f"{label}.log")
        self.demos.append(d)
        return await d.start()

    async def person(self, name: str, url: str, *, browser: Any = None, login: bool = True,
                     expect_channel: str | None = "town-square") -> Person:
        context = await (browser or self.browser).new_context(viewport={"width": 1360, "height": 820})
        page = await context.new_page()
        p = Person(self, name, context, page)
        self.people[name] = p
        await page.goto(url)
        if login:
            await p.click(f'.user-pick[data-user="{name}"]')
            if expect_channel:
                await page.wait_for_selector(f'#channel[data-channel-name="{expect_channel}"]', timeout=15000)
        return p

    async def diagnostics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, p in self.people.items():
            entry: dict[str, Any] = {"console": p.console[-25:]}
            try:
                entry["state"] = await asyncio.wait_for(p.state(), 5)
                entry["notices"] = await asyncio.wait_for(p.notices(), 5)
                entry["stats"] = await asyncio.wait_for(p.stats(), 5)
            except Exception as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
            out[name] = entry
        for d in self.demos:
            try:
                out[f"log:{d.log_path.name}"] = d.log_path.read_text()[-3000:]
            except OSError:
                pass
        return out

    async def close(self) -> None:
        for p in self.people.values():
            try:
                await asyncio.wait_for(p.context.close(), 10)
            except Exception:
                pass
        for b in self.extra_browsers:
            await b.close()
        if self.browser is not None:
            await self.browser.close()
        for d in self.demos:
            await d.stop()


def _voice_from(stats: dict[str, Any] | None, user: str) -> dict[str, Any] | None:
    if not stats:
        return None
    return next((a for a in stats["audioIn"] if a["user"] == user and a["type"] == "voice"), None)


def _audible(a: dict[str, Any] | None) -> bool:
    """At least a second of the sender's audio decoded (50 packets of 20 ms), and not silence."""
    return a is not None and a["packetsReceived"] >= 50 and a["totalAudioEnergy"] > 0


# ------------------------------------------------------------------------------- call


async def scenario_call(lab: Lab) -> None:
    url = await lab.demo("--max-participants", "3")
    names = ("alice", "bob", "carol")
    people = [await lab.person(n, url) for n in names]
    alice, bob, carol = people
    channel_id = await alice.js("() => document.getElementById('channel').dataset.channelId")
    await alice.click("#btn-start-call")
    await alice.wait_connected(channel_id)
    for p in (bob, carol):
        await p.page.wait_for_selector('#btn-start-call:has-text("Join call")', timeout=15000)
        await p.click("#btn-start-call")
    for p in people:
        await p.wait_connected(channel_id)
    logged = {p.name: any("rtc connected" in line for line in p.console) for p in people}
    lab.check("rtc_connected", all(logged.values()), logged)

    # everyone unmutes; everyone sees everyone unmuted
    for p in people:
        await p.page.wait_for_selector("#btn-mute:not([disabled])", timeout=15000)
        await p.click("#btn-mute")

    async def all_unmuted() -> bool:
        for p in people:
            seen = await p.participants()
            if sorted(seen) != sorted(names) or any(seen[n]["muted"] != "false" for n in names):
                return False
        return True

    await wait_until(all_unmuted, "everyone to see three unmuted participants", 20)

    # each receives the others' audio
    async def everyone_hears() -> dict[str, Any] | None:
        heard: dict[str, Any] = {}
        for p in people:
            stats = await p.stats()
            heard[p.name] = {o: _voice_from(stats, o) for o in names if o != p.name}
        ok = all(_audible(a) for h in heard.values() for a in h.values())
        return heard if ok else None

    try:
        heard = await wait_until(everyone_hears, "each person to receive the other two's audio", 40)
        lab.check("audio", True, {listener: {s: {k: a[k] for k in ("packetsReceived", "totalAudioEnergy", "audioLevel")}
                                             for s, a in h.items()} for listener, h in heard.items()})
    except Failed as exc:
        lab.check("audio", False, f"{exc}: {[await p.stats() for p in people]}")

    # the SFU's voice activity events light the speaking indicator (fake microphone: a beep)
    async def someone_speaking() -> dict[str, Any] | None:
        for p in people:
            seen = await p.participants()
            talking = [n for n, d in seen.items() if d["speaking"] == "true"]
            if talking:
                return {"seen_by": p.name, "speaking": talking}
        return None

    try:
        lab.check("speaking", True, await wait_until(someone_speaking, "a speaking indicator", 20, 0.1))
    except Failed as exc:
        lab.check("speaking", False, str(exc))

    # carol mutes: her audio stops at alice and bob; theirs keeps flowing
    await carol.click("#btn-mute")

    async def carol_muted_everywhere() -> bool:
        for p in people:
            if (await p.participants())["carol"]["muted"] != "true":
                return False
        return True

    await wait_until(carol_muted_everywhere, "everyone to see carol muted", 15)
    await asyncio.sleep(1.0)                                   # packets already in flight
    before = {p.name: await p.stats() for p in (alice, bob)}
    await asyncio.sleep(2.5)
    after = {p.name: await p.stats() for p in (alice, bob)}
    detail: dict[str, Any] = {}
    ok = True
    for p, other in ((alice, "bob"), (bob, "alice")):
        c0, c1 = _voice_from(before[p.name], "carol"), _voice_from(after[p.name], "carol")
        o0, o1 = _voice_from(before[p.name], other), _voice_from(after[p.name], other)
        carol_new = (c1["packetsReceived"] - c0["packetsReceived"]) if c0 and c1 else None
        other_new = (o1["packetsReceived"] - o0["packetsReceived"]) if o0 and o1 else None
        detail[p.name] = {"carol_packets_in_2.5s": carol_new, f"{other}_packets_in_2.5s": other_new}
        ok = ok and carol_new == 0 and other_new is not None and other_new > 50
    lab.check("mute", ok, detail)

    # bob raises his hand and reacts; everyone sees both
    await bob.click("#btn-hand")
    await bob.click('.btn-react[data-name="tada"]')

    async def hand_and_reaction() -> dict[str, Any] | None:
        seen: dict[str, Any] = {}
        for p in people:
            hand = (await p.participants())["bob"]["hand"] == "true"
            reaction = await p.page.query_selector('#reactions .reaction[data-user="bob"][data-name="tada"]')
            seen[p.name] = {"hand": hand, "reaction": reaction is not None}
        return seen if all(v["hand"] and v["reaction"] for v in seen.values()) else None

    try:
        lab.check("hand_reaction", True, await wait_until(hand_and_reaction, "bob's hand and reaction everywhere", 15))
    except Failed as exc:
        lab.check("hand_reaction", False, str(exc))

    # alice shares her screen; bob and carol decode and render it
    await alice.click("#btn-screen")

    async def rendering() -> dict[str, Any] | None:
        seen: dict[str, Any] = {}
        for p in (bob, carol):
            stats = await p.stats()
            video = next((v for v in (stats or {}).get("videoIn", []) if v["type"] == "screen"), None)
            frames = [f for f in await p.js("() => window.demo.videoFrames()") if f["mid"] == (video or {}).get("mid")]
            caption = await p.js("() => document.getElementById('screen-caption').innerText")
            if video is None or video["user"] != "alice" or video["framesDecoded"] < 5 or not frames \
                    or frames[0]["videoWidth"] <= 0 or frames[0]["variance"] <= 1.0:
                return None
            seen[p.name] = {"framesDecoded": video["framesDecoded"],
                            "size": f"{video['frameWidth']}x{video['frameHeight']}",
                            "rendered": frames[0], "caption": caption}
        return seen

    try:
        seen = await wait_until(rendering, "bob and carol to render alice's screen", 40)
        captions_ok = all(v["caption"] == "alice is sharing their screen" for v in seen.values())
        lab.check("screen", captions_ok, seen)
    except Failed as exc:
        lab.check("screen", False, str(exc))

    async def bob_blocked() -> bool:
        return bool(await bob.js("() => document.getElementById('btn-screen').disabled"))

    try:
        await wait_until(bob_blocked, "bob's Share screen button to be disabled while alice shares", 10)
        lab.check("one_sharer", True, "bob cannot start a second share while alice shares")
    except Failed as exc:
        lab.check("one_sharer", False, str(exc))

    # a message in the call thread
    await alice.type_message("notes from the call: ship it", "#call-chat-input")

    async def thread_seen() -> bool:
        for p in (bob, carol):
            text = await p.js("() => document.getElementById('call-chat').innerText")
            if "notes from the call: ship it" not in text:
                return False
        return True

    try:
        await wait_until(thread_seen, "bob and carol to see alice's message in the call thread", 15)
        lab.check("thread", True, "the call thread reached bob and carol")
    except Failed as exc:
        lab.check("thread", False, str(exc))

    # the three-person call, as each person sees it
    await asyncio.sleep(1.0)
    shots = {p.name: await p.screenshot("three-person-call") for p in people}
    blank = {n: s for n, s in shots.items() if s["variance"] < 50 or s["distinct"] < 32}
    lab.check("screenshots", not blank, shots if not blank else {"blank": blank})

    # a fourth person: the call is full
    dave = await lab.person("dave", url)
    await dave.page.wait_for_selector('#btn-start-call:has-text("Join call")', timeout=15000)
    await dave.click("#btn-start-call")
    try:
        text = await dave.notice("call_full")
        in_call = await dave.js("() => !document.getElementById('call').hidden")
        lab.check("full", "full" in text and "3 participants" in text and not in_call, {"message": text})
    except Exception as exc:
        lab.check("full", False, f"no 'call is full' message: {exc}; notices {await dave.notices()}")
    await dave.screenshot("call-full")

    # carol leaves: the others' lists update; then there is room for dave
    await carol.click("#btn-leave")

    async def carol_gone() -> dict[str, Any] | None:
        lists = {p.name: sorted(await p.participants()) for p in (alice, bob)}
        hidden = await carol.js("() => document.getElementById('call').hidden")
        return lists if hidden and all(v == ["alice", "bob"] for v in lists.values()) else None

    try:
        lists = await wait_until(carol_gone, "alice's and bob's lists to drop carol", 15)
        await dave.click("#btn-start-call")
        await dave.wait_connected(channel_id)
        after_join = sorted(await alice.participants())
        lab.check("leave", after_join == ["alice", "bob", "dave"],
                  {"after_carol_left": lists, "after_dave_joined": after_join})
    except Failed as exc:
        lab.check("leave", False, str(exc))


# ------------------------------------------------------------------------------- link


async def scenario_link(lab: Lab) -> None:
    from browser import chromium
    from switchboard.signaling.demo.host import stable_id

    url = await lab.demo()
    alice = await lab.person("alice", url)
    await alice.click('#channel-list a[data-channel="off-topic"]')
    await alice.page.wait_for_selector('#channel[data-channel-name="off-topic"]', timeout=15000)
    off_topic = await alice.js("() => document.getElementById('channel').dataset.channelId")
    await alice.type_message("/call link")
    el = await alice.page.wait_for_selector(".post.ephemeral a.call-link", timeout=15000)
    link = await el.inner_text()
    await alice.type_message("/call start")
    await alice.wait_connected(off_topic)

    # bob opens the link in a fresh browser context: sign in, then straight into that call
    bob = await lab.person("bob", link, login=False)
    await bob.click('.user-pick[data-user="bob"]')
    try:
        await bob.wait_connected(off_topic)

        async def both_listed() -> list[str] | None:
            got = sorted(await alice.participants())
            return got if got == ["alice", "bob"] else None

        listed = await wait_until(both_listed, "alice to see bob in the call", 15)
        channel_name = await bob.js("() => document.getElementById('channel').dataset.channelName")
        lab.check("link", off_topic in link and channel_name == "off-topic",
                  {"link": link, "bob_channel": channel_name, "participants": listed})
    except Failed as exc:
        lab.check("link", False, f"{exc} (link {link})")

    # the archived channel's link is invalid
    old = stable_id("channel", "old-project")
    erin = await lab.person("erin", f"{url}channels/{old}?join_call=true", login=False)
    await erin.click('.user-pick[data-user="erin"]')
    try:
        text = await erin.notice("link_invalid")
        in_call = await erin.js("() => !document.getElementById('call').hidden")
        lab.check("archived_link", "no longer valid" in text and "archived" in text and not in_call, text)
    except Exception as exc:
        lab.check("archived_link", False, f"{exc}; notices {await erin.notices()}")

    # a guest is refused until a member adds her to the channel
    gwen = await lab.person("gwen", link, login=False)
    await gwen.click('.user-pick[data-user="gwen"]')
    try:
        refused = await gwen.notice("link_invalid")
        await alice.type_message("/invite @gwen")
        await alice.page.wait_for_selector('.post.ephemeral:has-text("Added @gwen")', timeout=15000)
        await gwen.page.goto(link)                               # same tab: still signed in as gwen
        await gwen.wait_connected(off_topic)
        lab.check("guest", "Guests must be added" in refused, {"before_invite": refused, "after_invite": "joined"})
    except Exception as exc:
        lab.check("guest", False, f"{exc}; notices {await gwen.notices()}")

    # 1-1 video: alice and bob move to their direct message's call and alice turns her camera on
    try:
        no_camera_here = await alice.js("() => document.getElementById('btn-camera').hidden")
        for p in (alice, bob):
            await p.click('#channel-list a[data-channel="alice__bob"]')
            await p.page.wait_for_selector('#channel[data-channel-name="alice__bob"]', timeout=15000)
        dm_id = await alice.js("() => document.getElementById('channel').dataset.channelId")
        await alice.click("#btn-start-call")
        await alice.wait_connected(dm_id)
        await bob.page.wait_for_selector('#btn-start-call:has-text("Join call")', timeout=15000)
        await bob.click("#btn-start-call")
        await bob.wait_connected(dm_id)
        await alice.click("#btn-camera")

        async def camera_seen() -> dict[str, Any] | None:
            stats = await bob.stats()
            video = next((v for v in (stats or {}).get("videoIn", []) if v["type"] == "video"), None)
            if video is None or video["user"] != "alice" or video["framesDecoded"] < 5:
                return None
            frames = [f for f in await bob.js("() => window.demo.videoFrames()") if f["mid"] == video["mid"]]
            if not frames or frames[0]["variance"] <= 1.0:
                return None
            flags = (await bob.participants())["alice"]
            return {"framesDecoded": video["framesDecoded"], "rendered": frames[0], "alice_video": flags["video"]}

        seen = await wait_until(camera_seen, "bob to render alice's camera", 40)
        lab.check("dm_video", no_camera_here and seen["alice_video"] == "true",
                  {"camera_button_hidden_in_channel_call": no_camera_here, **seen})
        await bob.screenshot("dm-video")
    except Exception as exc:
        lab.check("dm_video", False, f"{exc}; alice {await alice.notices()}; bob {await bob.notices()}")

    # a browser that denies the microphone (no fake-UI auto-accept; headless denies the prompt)
    flags = [f for f in chromium.FLAGS if f != "--use-fake-ui-for-media-stream"]
    strict = await lab.pw.chromium.launch(executable_path=str(chromium.EXECUTABLE), headless=True, args=flags)
    lab.extra_browsers.append(strict)
    dave = await lab.person("dave", url, browser=strict)
    await dave.click('#channel-list a[data-channel="off-topic"]')
    await dave.page.wait_for_selector('#channel[data-channel-name="off-topic"]', timeout=15000)
    await dave.click("#btn-start-call")
    try:
        text = await dave.notice("mic_denied")
        await dave.click("#btn-mute")                          # unmuting explains it again
        lab.check("mic_denied", "Microphone access was denied" in text and "allow the microphone" in text, text)
    except Exception as exc:
        lab.check("mic_denied", False, f"{exc}; notices {await dave.notices()}; state {await dave.state()}")

    # media that cannot connect: a second demo whose SFU announces an unreachable address
    blocked = await lab.demo("--port", "8081", "--rtc-port", "8444", "--ice-host-override", "192.0.2.1",
                             label="demo-blocked")
    carol = await lab.person("carol", blocked)
    t0 = time.monotonic()
    await carol.click("#btn-start-call")
    try:
        text = await carol.notice("media_timeout", timeout=25)
        waited = time.monotonic() - t0
        left = await carol.js("() => document.getElementById('call').hidden")
        ok = "UDP port 8444" in text and "TURN" in text and "within 10 s" in text and left and waited >= 9
        await carol.screenshot("media-timeout")
        lab.check("media_timeout", ok, {"message": text, "after_s": round(waited, 1), "left_the_call": left})
    except Exception as exc:
        lab.check("media_timeout", False, f"{exc}; notices {await carol.notices()}")
    await alice.screenshot("link-call")


SCENARIOS: dict[str, Callable[[Lab], Awaitable[None]]] = {"call": scenario_call, "link": scenario_link}


def loopback_only() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


async def run(name: str, artifacts: Path, timeout: float) -> dict[str, Any]:
    from browser import chromium
    from playwright.async_api import async_playwright

    t0 = time.monotonic()
    async with async_playwright() as pw:
        lab = Lab(pw, artifacts)
        error = None
        diagnostics = None
        try:
            lab.browser = await chromium.launch(pw)
            await asyncio.wait_for(SCENARIOS[name](lab), timeout)
        except Exception as exc:
            if isinstance(exc, Failed):
                error = str(exc)
            elif isinstance(exc, TimeoutError):
                error = f"scenario {name} did not finish within {timeout:.0f} s"
            else:
                error = "".join(traceback.format_exception(exc)).strip()[-3000:]
            try:
                diagnostics = await asyncio.wait_for(lab.diagnostics(), 30)
            except Exception as dexc:
                diagnostics = {"error": f"collecting diagnostics failed: {dexc!r}"}
        finally:
            await lab.close()
    ok = error is None and all(c["ok"] for c in lab.checks.values())
    return {"ok": ok, "scenario": name, "seconds": round(time.monotonic() - t0, 1), "checks": lab.checks,
            "error": error, "diagnostics": diagnostics}


def main() -> int:
    ap = argparse.ArgumentParser(description="run one demo browser scenario in this (private) network namespace")
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--artifacts", type=Path, default=ARTIFACTS)
    ap.add_argument("--timeout", type=float, default=85.0)
    args = ap.parse_args()
    if not loopback_only():
        result: dict[str, Any] = {"ok": False, "scenario": args.scenario, "checks": {},
                                  "error": "refusing to run outside a private network namespace with only lo "
                                           "(run under `unshare --net --`)"}
    else:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        args.artifacts.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(run(args.scenario, args.artifacts, args.timeout))
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
