"""Switchboard: a WebRTC SFU for voice calls and screen sharing in chat channels.

Layers, with dependencies pointing one way only:

- ``switchboard.signaling``: SDP, the rtcd-compatible host API, config, CLI.
- ``switchboard.engine``: calls, sessions, tracks; ICE, DTLS, SCTP; the Python
  face of the media plane.
- ``switchboard._native``: the Cython media plane (sockets, demux, SRTP,
  RTP/RTCP, routing tables, fan-out, counters).
"""

__version__ = "0.1.0"
