"""WebRTC data channels on top of an SCTP association: DCEP and channel bookkeeping.

Specifications:

- RFC 8831, WebRTC Data Channels: https://www.rfc-editor.org/rfc/rfc8831
  (section 6.4: one channel = one SCTP stream id in both directions; section 6.6: PPIDs;
  section 6.7: a channel closes by resetting its outgoing stream, RFC 6525)
- RFC 8832, WebRTC Data Channel Establishment Protocol (DCEP):
  https://www.rfc-editor.org/rfc/rfc8832

Why: the browser's ``RTCPeer`` opens the ``calls-dc`` channel itself with a DCEP
DATA_CHANNEL_OPEN (PPID 50) and waits for DATA_CHANNEL_ACK; everything the SFU says to the
client afterwards (pongs, SDP offers, lock replies) travels on that channel. This module is the
thin layer between :class:`~switchboard.engine.sctp.SctpAssociation` and that protocol: it turns
stream data into channel messages (PPID 51/53 for text/binary, 56/57 for the empty string and
empty binary message, which SCTP cannot carry as zero bytes, so one zero byte is sent), and
channel closes into stream resets. It knows nothing about what the messages mean.

Stream ids: the DTLS client uses even ids and the DTLS server odd ids for channels it opens
(RFC 8832 section 6), so both sides can open channels without colliding. A channel is closed
only when both directions of its stream are reset; only then may its id be reused.

Sans-I/O like the association: call :meth:`DataChannelManager.events` after feeding the
association; it drains the association's events and returns channel events (plus the
association's :class:`Connected` / :class:`Closed`, passed through). Malformed DCEP messages
are counted in :attr:`DataChannelManager.stats`, never raised out of :meth:`events`.
"""

from __future__ import annotations

import enum
import logging
import struct
from dataclasses import dataclass, field
from typing import TypeAlias

from .sctp import (
    Closed,
    Connected,
    SctpAssociation,
    SctpError,
    SctpEvent,
    StreamData,
    StreamReset,
    StreamResetCompleted,
)

__all__ = [
    "ChannelClosed",
    "ChannelMessage",
    "ChannelOpened",
    "ChannelState",
    "DataChannel",
    "DataChannelError",
    "DataChannelEvent",
    "DataChannelManager",
    "DataChannelStats",
    "DcepAck",
    "DcepOpen",
    "encode_dcep",
    "parse_dcep",
]

logger = logging.getLogger(__name__)

# Payload protocol identifiers (RFC 8831 section 8, IANA "SCTP Payload Protocol Identifiers").
PPID_DCEP = 50
PPID_STRING = 51
PPID_BINARY_PARTIAL = 52  # deprecated
PPID_BINARY = 53
PPID_STRING_PARTIAL = 54  # deprecated
PPID_STRING_EMPTY = 56
PPID_BINARY_EMPTY = 57

# DCEP message types (RFC 8832 section 8.2.1).
DCEP_ACK = 0x02
DCEP_OPEN = 0x03

# DCEP channel types (RFC 8832 section 5.1): high bit = unordered, low bits = reliability.
CHANNEL_RELIABLE = 0x00
CHANNEL_PARTIAL_RELIABLE_REXMIT = 0x01
CHANNEL_PARTIAL_RELIABLE_TIMED = 0x02
CHANNEL_UNORDERED = 0x80
_KNOWN_CHANNEL_TYPES = frozenset({0x00, 0x01, 0x02, 0x80, 0x81, 0x82})

_OPEN_HEADER = struct.Struct("!BBHIHH")

# RFC 8832 section 5.1 priorities; 256 is "normal", the W3C default.
PRIORITY_NORMAL = 256


# ---------------------------------------------------------------------------------------------
# DCEP codec
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DcepOpen:
    """DATA_CHANNEL_OPEN (RFC 8832 section 5.1)."""

    channel_type: int
    priority: int
    reliability: int
    """Max retransmissions (type 0x01/0x81) or max lifetime in ms (0x02/0x82); else 0."""
    label: str
    protocol: str


@dataclass(frozen=True, slots=True)
class DcepAck:
    """DATA_CHANNEL_ACK (RFC 8832 section 5.2)."""


def parse_dcep(data: bytes) -> DcepOpen | DcepAck:
    """Decode one DCEP message; raise ValueError naming the problem if it is malformed."""
    if not data:
        raise ValueError("DCEP message is empty")
    message_type = data[0]
    if message_type == DCEP_ACK:
        if len(data) != 1:
            raise ValueError(f"DATA_CHANNEL_ACK has an invalid length of {len(data)} bytes")
        return DcepAck()
    if message_type != DCEP_OPEN:
        raise ValueError(f"unknown DCEP message type {message_type}")
    if len(data) < _OPEN_HEADER.size:
        raise ValueError(f"DATA_CHANNEL_OPEN is too short ({len(data)} bytes, need 12)")
    _, channel_type, priority, reliability, label_length, protocol_length = (
        _OPEN_HEADER.unpack_from(data)
    )
    if channel_type not in _KNOWN_CHANNEL_TYPES:
        raise ValueError(f"DATA_CHANNEL_OPEN has an unknown channel type 0x{channel_type:02x}")
    if len(data) != _OPEN_HEADER.size + label_length + protocol_length:
        raise ValueError(
            f"DATA_CHANNEL_OPEN length {len(data)} does not match label length "
            f"{label_length} and protocol length {protocol_length}"
        )
    pos = _OPEN_HEADER.size
    try:
        label = data[pos : pos + label_length].decode("utf-8")
        protocol = data[pos + label_length :].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"DATA_CHANNEL_OPEN label or protocol is not UTF-8: {exc}") from None
    return DcepOpen(channel_type, priority, reliability, label, protocol)


def encode_dcep(message: DcepOpen | DcepAck) -> bytes:
    """Encode one DCEP message."""
    if isinstance(message, DcepAck):
        return bytes([DCEP_ACK])
    label = message.label.encode("utf-8")
    protocol = message.protocol.encode("utf-8")
    if len(label) > 0xFFFF or len(protocol) > 0xFFFF:
        raise ValueError("DATA_CHANNEL_OPEN label and protocol must be at most 65535 bytes")
    return (
        _OPEN_HEADER.pack(
            DCEP_OPEN,
            message.channel_type,
            message.priority,
            message.reliability,
            len(label),
            len(protocol),
        )
        + label
        + protocol
    )


# ---------------------------------------------------------------------------------------------
# Channels, events, errors
# ---------------------------------------------------------------------------------------------


class DataChannelError(Exception):
    """A data channel operation is not possible (state, id, or parameters)."""


class ChannelState(enum.Enum):
    """W3C RTCDataChannel readyState values."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(eq=False, slots=True)
class DataChannel:
    """One data channel. Compared by identity; the manager mutates ``state``."""

    stream_id: int
    label: str
    protocol: str = ""
    ordered: bool = True
    max_retransmits: int | None = None
    """Partial reliability by retransmission count (DCEP reliability parameter)."""
    max_packet_lifetime: int | None = None
    """Partial reliability by lifetime, in milliseconds."""
    priority: int = PRIORITY_NORMAL
    negotiated: bool = False
    """Opened out of band with an agreed id (no DCEP)."""
    state: ChannelState = ChannelState.CONNECTING
    _acked: bool = field(default=True, repr=False)
    """False while our DATA_CHANNEL_OPEN waits for its ACK (we must send ordered meanwhile)."""
    _outgoing_reset: bool = field(default=False, repr=False)
    _incoming_reset: bool = field(default=False, repr=False)

    @property
    def channel_type(self) -> int:
        """DCEP channel type byte for these parameters."""
        value = 0 if self.ordered else CHANNEL_UNORDERED
        if self.max_retransmits is not None:
            value |= CHANNEL_PARTIAL_RELIABLE_REXMIT
        elif self.max_packet_lifetime is not None:
            value |= CHANNEL_PARTIAL_RELIABLE_TIMED
        return value


@dataclass(frozen=True, slots=True)
class ChannelOpened:
    """A channel is open: the peer opened it, or acknowledged ours."""

    channel: DataChannel


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """A message: ``str`` for text (PPID 51/56), ``bytes`` for binary (PPID 53/57)."""

    channel: DataChannel
    data: bytes | str


@dataclass(frozen=True, slots=True)
class ChannelClosed:
    """A channel is closed in both directions (or the association went away)."""

    channel: DataChannel


DataChannelEvent: TypeAlias = ChannelOpened | ChannelMessage | ChannelClosed


@dataclass(slots=True)
class DataChannelStats:
    """Counters for input the manager dropped."""

    bad_dcep: int = 0
    """DCEP messages that failed to parse."""
    unexpected_dcep: int = 0
    """Well-formed DCEP messages that make no sense (OPEN on a busy stream, stray ACK)."""
    unknown_stream: int = 0
    """User messages on a stream with no channel."""
    bad_messages: int = 0
    """Text that is not UTF-8, unknown or deprecated PPIDs."""


# ---------------------------------------------------------------------------------------------
# The manager
# ---------------------------------------------------------------------------------------------


class DataChannelManager:
    """Data channels over one association; ``dtls_is_server`` picks odd ids for our channels."""

    def __init__(self, association: SctpAssociation, *, dtls_is_server: bool) -> None:
        self.association = association
        self.dtls_is_server = dtls_is_server
        self.stats = DataChannelStats()
        self._channels: dict[int, DataChannel] = {}
        self._events: list[DataChannelEvent | Connected | Closed] = []
        self._next_id = 1 if dtls_is_server else 0

    @property
    def channels(self) -> list[DataChannel]:
        """Channels not yet fully closed."""
        return list(self._channels.values())

    def channel(self, stream_id: int) -> DataChannel | None:
        return self._channels.get(stream_id)

    # -- API -------------------------------------------------------------------------------------

    def open_channel(
        self,
        label: str,
        *,
        protocol: str = "",
        ordered: bool = True,
        max_retransmits: int | None = None,
        max_packet_lifetime: int | None = None,
        priority: int = PRIORITY_NORMAL,
        now: float,
    ) -> DataChannel:
        """Open a channel with DCEP; :class:`ChannelOpened` follows when the peer ACKs."""
        self._check_reliability(max_retransmits, max_packet_lifetime, priority)
        stream_id = self._allocate_id()
        channel = DataChannel(
            stream_id,
            label,
            protocol,
            ordered,
            max_retransmits,
            max_packet_lifetime,
            priority,
            _acked=False,
        )
        message = DcepOpen(
            channel.channel_type,
            priority,
            max_retransmits if max_retransmits is not None else max_packet_lifetime or 0,
            label,
            protocol,
        )
        try:
            payload = encode_dcep(message)
        except ValueError as exc:
            raise DataChannelError(str(exc)) from None
        self._send_raw(stream_id, PPID_DCEP, payload, now)
        self._channels[stream_id] = channel
        return channel

    def add_negotiated_channel(
        self,
        stream_id: int,
        label: str,
        *,
        protocol: str = "",
        ordered: bool = True,
        max_retransmits: int | None = None,
        max_packet_lifetime: int | None = None,
    ) -> DataChannel:
        """Register a channel agreed out of band (``negotiated: true``); it is open at once."""
        self._check_reliability(max_retransmits, max_packet_lifetime, PRIORITY_NORMAL)
        if not 0 <= stream_id <= 65534:
            raise DataChannelError(f"stream id must be in 0..65534, got {stream_id}")
        if stream_id in self._channels:
            raise DataChannelError(f"stream id {stream_id} is already in use")
        channel = DataChannel(
            stream_id,
            label,
            protocol,
            ordered,
            max_retransmits,
            max_packet_lifetime,
            negotiated=True,
            state=ChannelState.OPEN,
        )
        self._channels[stream_id] = channel
        return channel

    def send(self, channel: DataChannel, data: bytes | str, now: float) -> None:
        """Send text (``str``) or binary (``bytes``) on an open (or opening) channel."""
        if self._channels.get(channel.stream_id) is not channel or channel.state not in (
            ChannelState.OPEN,
            ChannelState.CONNECTING,
        ):
            raise DataChannelError(
                f"channel {channel.label!r} (stream {channel.stream_id}) is {channel.state.value}"
            )
        if isinstance(data, str):
            ppid, payload = (
                (PPID_STRING, data.encode("utf-8")) if data else (PPID_STRING_EMPTY, b"\x00")
            )
        else:
            ppid, payload = (PPID_BINARY, bytes(data)) if data else (PPID_BINARY_EMPTY, b"\x00")
        # Until the peer ACKs our OPEN, messages go ordered so none overtakes it (RFC 8832 6).
        ordered = channel.ordered or not channel._acked
        lifetime = (
            None if channel.max_packet_lifetime is None else channel.max_packet_lifetime / 1000
        )
        try:
            self.association.send(
                channel.stream_id,
                ppid,
                payload,
                ordered=ordered,
                max_retransmits=channel.max_retransmits,
                lifetime=lifetime,
                now=now,
            )
        except SctpError as exc:
            raise DataChannelError(str(exc)) from None

    def close_channel(self, channel: DataChannel, now: float) -> None:
        """Close by resetting our outgoing stream; :class:`ChannelClosed` follows."""
        if channel.state in (ChannelState.CLOSING, ChannelState.CLOSED):
            return
        channel.state = ChannelState.CLOSING
        self._reset_outgoing(channel, now)

    def events(self, now: float) -> list[DataChannelEvent | Connected | Closed]:
        """Drain the association's events; return channel events, Connected and Closed."""
        for event in self.association.events():
            self._handle(event, now)
        events, self._events = self._events, []
        return events

    # -- internals -------------------------------------------------------------------------------

    @staticmethod
    def _check_reliability(
        max_retransmits: int | None, max_packet_lifetime: int | None, priority: int
    ) -> None:
        if max_retransmits is not None and max_packet_lifetime is not None:
            raise DataChannelError("set max_retransmits or max_packet_lifetime, not both")
        for name, value in (
            ("max_retransmits", max_retransmits),
            ("max_packet_lifetime", max_packet_lifetime),
        ):
            if value is not None and not 0 <= value <= 0xFFFFFFFF:
                raise DataChannelError(f"{name} must be in 0..2**32-1, got {value}")
        if not 0 <= priority <= 0xFFFF:
            raise DataChannelError(f"priority must be in 0..65535, got {priority}")

    def _allocate_id(self) -> int:
        limit = self.association.outbound_streams
        if limit == 0:
            raise DataChannelError("the SCTP association is not established")
        stream_id = self._next_id
        while stream_id in self._channels:
            stream_id += 2
        if stream_id >= limit:
            # Wrap around once to reuse ids of closed channels.
            stream_id = 1 if self.dtls_is_server else 0
            while stream_id in self._channels and stream_id < limit:
                stream_id += 2
            if stream_id >= limit:
                raise DataChannelError(f"no free stream id below {limit}")
        self._next_id = stream_id + 2
        return stream_id

    def _send_raw(self, stream_id: int, ppid: int, payload: bytes, now: float) -> None:
        try:
            self.association.send(stream_id, ppid, payload, now=now)
        except SctpError as exc:
            raise DataChannelError(str(exc)) from None

    def _reset_outgoing(self, channel: DataChannel, now: float) -> None:
        try:
            self.association.reset_streams([channel.stream_id], now)
        except SctpError as exc:
            # No association or no RE-CONFIG support: nothing to tell the peer, close locally.
            logger.debug("closing data channel %r locally: %s", channel.label, exc)
            self._finish_close(channel)

    def _finish_close(self, channel: DataChannel) -> None:
        if channel.state is ChannelState.CLOSED:
            return
        channel.state = ChannelState.CLOSED
        if self._channels.get(channel.stream_id) is channel:
            del self._channels[channel.stream_id]
        self._events.append(ChannelClosed(channel))

    def _handle(self, event: SctpEvent, now: float) -> None:
        if isinstance(event, StreamData):
            self._on_stream_data(event, now)
        elif isinstance(event, StreamReset):
            ids = event.stream_ids or tuple(self._channels)
            for sid in ids:
                channel = self._channels.get(sid)
                if channel is None:
                    continue
                channel._incoming_reset = True
                if channel.state in (ChannelState.OPEN, ChannelState.CONNECTING):
                    # The peer closed: reset our side too (RFC 8831 section 6.7).
                    channel.state = ChannelState.CLOSING
                    self._reset_outgoing(channel, now)
                elif channel._outgoing_reset:
                    self._finish_close(channel)
        elif isinstance(event, StreamResetCompleted):
            for sid in event.stream_ids:
                channel = self._channels.get(sid)
                if channel is None or channel.state is not ChannelState.CLOSING:
                    continue
                channel._outgoing_reset = True
                if channel._incoming_reset or not event.success:
                    self._finish_close(channel)
        elif isinstance(event, Connected):
            self._events.append(event)
        elif isinstance(event, Closed):
            for channel in list(self._channels.values()):
                self._finish_close(channel)
            self._events.append(event)

    def _on_stream_data(self, event: StreamData, now: float) -> None:
        sid = event.stream_id
        if event.ppid == PPID_DCEP:
            try:
                message = parse_dcep(event.data)
            except ValueError as exc:
                self.stats.bad_dcep += 1
                logger.debug("dropping malformed DCEP message on stream %d: %s", sid, exc)
                return
            if isinstance(message, DcepOpen):
                self._on_open(sid, message, now)
            else:
                channel = self._channels.get(sid)
                if channel is None or channel._acked:
                    self.stats.unexpected_dcep += 1
                    return
                self._mark_acked(channel)
            return
        channel = self._channels.get(sid)
        if channel is None or channel.state is ChannelState.CLOSED:
            self.stats.unknown_stream += 1
            return
        if not channel._acked:
            # Data before the ACK implies the ACK was sent (RFC 8832 section 6).
            self._mark_acked(channel)
        data: bytes | str
        if event.ppid == PPID_STRING:
            try:
                data = event.data.decode("utf-8")
            except UnicodeDecodeError:
                self.stats.bad_messages += 1
                return
        elif event.ppid == PPID_BINARY:
            data = event.data
        elif event.ppid == PPID_STRING_EMPTY:
            data = ""
        elif event.ppid == PPID_BINARY_EMPTY:
            data = b""
        else:
            self.stats.bad_messages += 1
            return
        if channel.state is ChannelState.OPEN or channel.state is ChannelState.CLOSING:
            self._events.append(ChannelMessage(channel, data))

    def _mark_acked(self, channel: DataChannel) -> None:
        channel._acked = True
        if channel.state is ChannelState.CONNECTING:
            channel.state = ChannelState.OPEN
            self._events.append(ChannelOpened(channel))

    def _on_open(self, sid: int, message: DcepOpen, now: float) -> None:
        if sid in self._channels:
            self.stats.unexpected_dcep += 1
            return
        reliability_kind = message.channel_type & 0x7F
        channel = DataChannel(
            sid,
            message.label,
            message.protocol,
            ordered=not message.channel_type & CHANNEL_UNORDERED,
            max_retransmits=(
                message.reliability if reliability_kind == CHANNEL_PARTIAL_RELIABLE_REXMIT else None
            ),
            max_packet_lifetime=(
                message.reliability if reliability_kind == CHANNEL_PARTIAL_RELIABLE_TIMED else None
            ),
            priority=message.priority,
            state=ChannelState.OPEN,
        )
        try:
            self._send_raw(sid, PPID_DCEP, encode_dcep(DcepAck()), now)
        except DataChannelError as exc:
            self.stats.unexpected_dcep += 1
            logger.debug("cannot acknowledge DATA_CHANNEL_OPEN on stream %d: %s", sid, exc)
            return
        self._channels[sid] = channel
        self._events.append(ChannelOpened(channel))
