"""The host WebSocket envelope of rtcd (reference rtcd.md 2.3-2.6).

Every binary frame holds two concatenated msgpack values: the type string,
then its data. There is no outer array or map.

- ``join``: a map with ``callID``, ``userID``, ``sessionID``, ``channelID``
  (strings) and ``av1Support``, ``dcSignaling`` (bools); ``groupID`` is
  ignored (the group is the authenticated client).
- ``leave``, ``reconnect``, ``hello``, ``close``: string-to-string maps.
- ``rtc``, ``vad``: rtcd's ``rtc.Message`` struct as a map with the keys
  ``group_id``, ``user_id``, ``session_id``, ``call_id`` (strings), ``type``
  (int) and ``data`` (bin, omitted when empty).

Example: ``leave`` for session "abc" is ``a5 'leave'`` followed by
``81 a9 'sessionID' a3 'abc'``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from .rtc import Message

TYPES_IN = ("join", "leave", "reconnect", "rtc")
TYPES_OUT = ("hello", "rtc", "vad", "close")


class WsMessageError(ValueError):
    """A frame that does not decode to a known message."""


@dataclass(frozen=True)
class WsMessage:
    type: str
    data: Any


def encode(mtype: str, data: Any) -> bytes:
    return bytes(msgpack.packb(mtype) + msgpack.packb(data, use_bin_type=True))


def encode_rtc(mtype: str, msg: Message) -> bytes:
    body: dict[str, Any] = {
        "group_id": msg.group_id,
        "user_id": msg.user_id,
        "session_id": msg.session_id,
        "call_id": msg.call_id,
        "type": int(msg.type),
    }
    if msg.data:
        body["data"] = bytes(msg.data)
    return encode(mtype, body)


def _str_map(value: Any, mtype: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise WsMessageError(f"{mtype} data must be a map of strings")
    return value


def decode(frame: bytes, max_size: int = 1 << 20) -> WsMessage:
    """Decode one frame; raises WsMessageError saying what is wrong."""
    if len(frame) > max_size:
        raise WsMessageError(f"frame of {len(frame)} bytes exceeds the {max_size}-byte limit")
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=max(len(frame), 1))
    unpacker.feed(frame)
    try:
        values = list(unpacker)
    except Exception as exc:
        raise WsMessageError(f"malformed msgpack: {exc}") from None
    if len(values) != 2:
        raise WsMessageError(f"expected 2 msgpack values (type, data), got {len(values)}")
    mtype, data = values
    if not isinstance(mtype, str):
        raise WsMessageError("message type is not a string")
    if mtype == "join":
        if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
            raise WsMessageError("join data must be a map")
        for key in ("callID", "sessionID"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise WsMessageError(f"join is missing {key}")
        for key in ("userID", "channelID"):
            if key in data and not isinstance(data[key], str):
                raise WsMessageError(f"join {key} must be a string")
        return WsMessage(mtype, data)
    if mtype in ("leave", "reconnect", "hello", "close"):
        m = _str_map(data, mtype)
        if mtype in ("leave", "reconnect", "close") and not m.get("sessionID"):
            raise WsMessageError(f"{mtype} is missing sessionID")
        return WsMessage(mtype, m)
    if mtype in ("rtc", "vad"):
        if not isinstance(data, dict):
            raise WsMessageError(f"{mtype} data must be a map")
        try:
            msg = Message(
                group_id=str(data.get("group_id", "")),
                user_id=str(data.get("user_id", "")),
                session_id=data["session_id"],
                call_id=str(data.get("call_id", "")),
                type=data["type"],
                data=data.get("data") or b"",
            )
        except KeyError as exc:
            raise WsMessageError(f"{mtype} message is missing {exc.args[0]}") from None
        if not isinstance(msg.session_id, str) or not isinstance(msg.type, int) or isinstance(msg.type, bool):
            raise WsMessageError(f"{mtype} message has a bad session_id or type")
        if not isinstance(msg.data, (bytes, str)):
            raise WsMessageError(f"{mtype} message data must be binary")
        if isinstance(msg.data, str):
            msg = Message(msg.group_id, msg.user_id, msg.session_id, msg.call_id, msg.type, msg.data.encode())
        return WsMessage(mtype, msg)
    raise WsMessageError(f"unexpected client message type {mtype!r}")
