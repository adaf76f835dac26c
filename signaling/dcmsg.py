"""The ``calls-dc`` data-channel protocol of ``@mattermost/calls-common``'s RTCPeer.

Each binary message is flat msgpack: a ``uint8`` type, optionally followed by
a second msgpack value (no array wrapper). Older clients also send the text
``"ping"`` and expect the text ``"pong"``.

| type | name          | payload                                        |
|------|---------------|------------------------------------------------|
| 1    | Ping          | none                                           |
| 2    | Pong          | none                                           |
| 3    | SDP           | bin: zlib(JSON ``{"type", "sdp"}``)            |
| 4    | LossRate      | float64                                        |
| 5    | RoundTripTime | float64 seconds                                |
| 6    | Jitter        | float64                                        |
| 7    | Lock          | request: none; response: bool                  |
| 8    | Unlock        | none                                           |
| 9    | MediaMap      | map mid -> {"type", "sender_id"}               |

Reference: rtcd ``service/rtc/dc/msg.go`` and calls-common ``src/dc_msg.ts``
(facts in ``shared/reference/rtcd.md`` section 1.10).
"""

from __future__ import annotations

import enum
import json
import zlib
from dataclasses import dataclass
from typing import Any

import msgpack

#: The label RTCPeer gives its data channel.
LABEL = "calls-dc"
#: Largest decompressed SDP we accept (the plugin's limit is 64 KiB).
MAX_SDP_BYTES = 64 * 1024


class DCMessageType(enum.IntEnum):
    PING = 1
    PONG = 2
    SDP = 3
    LOSS_RATE = 4
    RTT = 5
    JITTER = 6
    LOCK = 7
    UNLOCK = 8
    MEDIA_MAP = 9


class DCMessageError(ValueError):
    """A data-channel message we cannot decode."""


@dataclass(frozen=True)
class DCMessage:
    type: DCMessageType
    payload: Any = None


def decode(data: bytes) -> DCMessage:
    """Decode one binary message; raises DCMessageError with the reason."""
    if not data:
        raise DCMessageError("empty data-channel message")
    bare = _BARE.get(data) if len(data) == 1 else None
    if bare is not None:
        return bare  # Ping, Pong, Lock request, Unlock: one fixint and nothing else
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(data) + 1)
    unpacker.feed(data)
    try:
        values = list(unpacker)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise DCMessageError(f"malformed msgpack: {exc}") from None
    if not values or not isinstance(values[0], int) or isinstance(values[0], bool):
        raise DCMessageError("data-channel message does not start with an integer type")
    if len(values) > 2:
        raise DCMessageError(f"data-channel message has {len(values)} values, expected 1 or 2")
    try:
        mtype = DCMessageType(values[0])
    except ValueError:
        raise DCMessageError(f"unknown data-channel message type {values[0]}") from None
    payload = values[1] if len(values) == 2 else None
    if mtype is DCMessageType.SDP:
        if not isinstance(payload, bytes):
            raise DCMessageError("SDP message payload is not binary")
        payload = decode_sdp(payload)
    elif mtype in (DCMessageType.LOSS_RATE, DCMessageType.RTT, DCMessageType.JITTER):
        if not isinstance(payload, (int, float)) or isinstance(payload, bool):
            raise DCMessageError(f"{mtype.name} payload is not a number")
        payload = float(payload)
    return DCMessage(mtype, payload)


def decode_sdp(blob: bytes) -> dict[str, str]:
    """zlib(JSON) -> {"type", "sdp"}, bounded to MAX_SDP_BYTES."""
    try:
        d = zlib.decompressobj()
        raw = d.decompress(blob, MAX_SDP_BYTES + 1)
    except zlib.error as exc:
        raise DCMessageError(f"SDP payload is not zlib data: {exc}") from None
    if len(raw) > MAX_SDP_BYTES or d.unconsumed_tail:
        raise DCMessageError(f"SDP payload is larger than {MAX_SDP_BYTES} bytes")
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DCMessageError(f"SDP payload is not JSON: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str) or not isinstance(obj.get("sdp"), str):
        raise DCMessageError('SDP payload must be {"type": str, "sdp": str}')
    return {"type": obj["type"], "sdp": obj["sdp"]}


def encode(mtype: DCMessageType, payload: Any = None) -> bytes:
    if payload is None:
        return _ENCODED[mtype]
    out = msgpack.packb(int(mtype))
    out += msgpack.packb(payload, use_bin_type=True)
    return bytes(out)


#: Messages without payload, encoded (a msgpack positive fixint is the byte itself).
_ENCODED: dict[DCMessageType, bytes] = {t: bytes(msgpack.packb(int(t))) for t in DCMessageType}
#: Their decoded form, shared (DCMessage is frozen), for the types valid without a payload.
_BARE: dict[bytes, DCMessage] = {
    data: DCMessage(t)
    for t, data in _ENCODED.items()
    if t not in (DCMessageType.SDP, DCMessageType.LOSS_RATE, DCMessageType.RTT, DCMessageType.JITTER)
}
#: What RTCPeer sends every second, and our answer.
PING: bytes = _ENCODED[DCMessageType.PING]
PONG: bytes = _ENCODED[DCMessageType.PONG]


def encode_sdp(sdp_type: str, sdp: str) -> bytes:
    blob = zlib.compress(json.dumps({"type": sdp_type, "sdp": sdp}).encode())
    return encode(DCMessageType.SDP, blob)


def encode_media_map(media: dict[str, dict[str, str]]) -> bytes:
    return encode(DCMessageType.MEDIA_MAP, media)
