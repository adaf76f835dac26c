"""Switchboard inside a Python host's own asyncio process.

The Calls plugin runs rtcd's RTC package in-process when it has no rtcd
service (group ``"default"``). ``EmbeddedSFU`` is the same for a Python chat
server: the calls/sessions API of the host WebSocket, with no HTTP hop and no
serialisation. The host relays its clients' signaling in and ours out::

    sfu = EmbeddedSFU(on_event=relay_to_client)
    await sfu.start()
    sfu.join(call_id="channel-1", user_id="alice", session_id=conn_id)
    sfu.signal(conn_id, MessageType.SDP, offer_json)      # from the browser
    ...                                                   # relay_to_client gets answers, offers, VAD
    sfu.leave(conn_id)
    await sfu.stop()

Events: ``SfuEvent(kind="rtc"|"vad"|"close", session_id, type, data, reason)``;
``close`` follows every session end (leave, failed connection, signaling
timeout, ICE consent lost), like rtcd's ``close`` message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType

from .rtc import Message, MessageType, RtcConfig, RtcServer, SessionConfig

DEFAULT_GROUP = "default"


@dataclass(frozen=True)
class SfuEvent:
    kind: str                 # "rtc" (SDP/ICE for the client), "vad" (voice on/off), "close"
    session_id: str
    type: int = 0             # MessageType for rtc/vad
    data: bytes = b""
    reason: str = ""
    call_id: str = ""
    user_id: str = ""


class EmbeddedSFU:
    """See the module docstring."""

    def __init__(self, config: RtcConfig | None = None, *,
                 on_event: Callable[[SfuEvent], None] | None = None, group_id: str = DEFAULT_GROUP) -> None:
        self.group_id = group_id
        self._on_event = on_event
        self._queue: asyncio.Queue[SfuEvent] | None = None if on_event else asyncio.Queue()
        self.server = RtcServer(config, on_message=self._on_message, on_close=self._on_close)

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    async def __aenter__(self) -> EmbeddedSFU:
        await self.start()
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    # ---------------------------------------------------------------- in

    def join(self, *, call_id: str, user_id: str, session_id: str, channel_id: str = "",
             av1_support: bool = False, dc_signaling: bool = False) -> None:
        """A participant joins (creates the call on first join). Raises
        SessionExistsError, CallFullError or DrainingError."""
        self.server.init_session(SessionConfig(self.group_id, call_id, user_id, session_id, channel_id,
                                               av1_support, dc_signaling))

    def leave(self, session_id: str) -> None:
        self.server.close_session(session_id, "leave")

    def signal(self, session_id: str, mtype: int, data: bytes | str = b"") -> None:
        """What the client sent: SDP/ICE JSON, or Mute/Unmute/ScreenOn/... (MessageType)."""
        session = self.server.sessions.get(session_id)
        cfg = session.cfg if session is not None else SessionConfig(self.group_id, "", "", session_id)
        payload = data.encode() if isinstance(data, str) else data
        self.server.handle_message(Message(cfg.group_id, cfg.user_id, session_id, cfg.call_id, mtype, payload))

    def sessions(self, call_id: str) -> list[SessionConfig]:
        return self.server.get_sessions(self.group_id, call_id)

    # ---------------------------------------------------------------- out

    def _emit(self, event: SfuEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)
        else:
            assert self._queue is not None
            self._queue.put_nowait(event)

    def _on_message(self, msg: Message) -> None:
        kind = "vad" if msg.type in (MessageType.VOICE_ON, MessageType.VOICE_OFF) else "rtc"
        self._emit(SfuEvent(kind, msg.session_id, msg.type, msg.data, call_id=msg.call_id, user_id=msg.user_id))

    def _on_close(self, cfg: SessionConfig, reason: str) -> None:
        self._emit(SfuEvent("close", cfg.session_id, reason=reason, call_id=cfg.call_id, user_id=cfg.user_id))

    async def events(self) -> AsyncIterator[SfuEvent]:
        """Events when no ``on_event`` callback was given."""
        if self._queue is None:
            raise RuntimeError("events() is only available without an on_event callback")
        while True:
            yield await self._queue.get()
