"""A minimal Python chat host that embeds Switchboard in its own process.

It serves nothing but a WebSocket at /signal: each browser connection is one
call participant. The host decides who may join (here: anyone, into the call
named in the URL) and relays signaling between the browser and the embedded
SFU, the way a chat server relays for rtcd. Run it with

    python examples/embedded_host.py  # then open ws://127.0.0.1:8081/signal?call=demo

Messages from the browser are JSON: {"type": "sdp"|"ice"|"mute"|"unmute"|
"screen_on"|"screen_off", "data": ...}; messages to it are JSON
{"type": "signal"|"voice_on"|"voice_off"|"closed", "data": ...}.
"""

from __future__ import annotations

import asyncio
import json
import secrets

from aiohttp import WSMsgType, web

from switchboard.signaling.embed import EmbeddedSFU, SfuEvent
from switchboard.signaling.rtc import MessageType

TYPES = {"sdp": MessageType.SDP, "ice": MessageType.ICE, "mute": MessageType.MUTE,
         "unmute": MessageType.UNMUTE, "screen_on": MessageType.SCREEN_ON, "screen_off": MessageType.SCREEN_OFF}


class Host:
    def __init__(self) -> None:
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.sfu = EmbeddedSFU(on_event=self.on_event)

    def on_event(self, event: SfuEvent) -> None:
        ws = self.sockets.get(event.session_id)
        if ws is None:
            return
        if event.kind == "rtc":
            out = {"type": "signal", "data": event.data.decode()}
        elif event.kind == "vad":
            out = {"type": "voice_on" if event.type == MessageType.VOICE_ON else "voice_off"}
        else:
            out = {"type": "closed", "data": event.reason}
        asyncio.ensure_future(ws.send_str(json.dumps(out)))

    async def signal(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session_id = secrets.token_hex(13)
        self.sockets[session_id] = ws
        self.sfu.join(call_id=request.query.get("call", "demo"), user_id=request.query.get("user", session_id),
                      session_id=session_id)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                obj = json.loads(msg.data)
                mtype = TYPES.get(obj.get("type"))
                if mtype is not None:
                    data = obj.get("data", "")
                    self.sfu.signal(session_id, mtype, data if isinstance(data, str) else json.dumps(data))
        finally:
            self.sockets.pop(session_id, None)
            self.sfu.leave(session_id)
        return ws


async def main() -> None:
    host = Host()
    await host.sfu.start()
    app = web.Application()
    app.router.add_get("/signal", host.signal)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 8081).start()
    print("embedded host on ws://127.0.0.1:8081/signal (media on UDP 8443)")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
