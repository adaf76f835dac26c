# cython: language_level=3
"""switchboard._native.core: the media plane in one extension module.

Built from per-concern files (included below, in dependency order):
includes/*.pxd (C declarations), consts.pxi (limits, counter indexes,
event kinds), srtp.pyx (libsrtp through raw function pointers), rtp.pyx
(header views and extension rewrites), rtcp.pyx (compound walker and
builders), idmap.pyx (C-integer hash tables) and router.pyx (tables,
demux, fan-out, RTCP handling, send queue, events).
"""

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int16_t, int32_t, int64_t, uintptr_t
from includes.system cimport *
from includes.srtp cimport *

include "consts.pxi"
include "srtp.pyx"
include "rtp.pyx"
include "gcm.pyx"
include "rtcp.pyx"
include "idmap.pyx"
include "twcc.pyx"
include "router.pyx"
include "crc32c.pyx"
include "client.pyx"

KIND_AUDIO_ = KIND_AUDIO
KIND_VIDEO_ = KIND_VIDEO
EVENT_STUN = EV_STUN
EVENT_DTLS = EV_DTLS
EVENT_BYE = EV_BYE
EVENT_SSRC_LEARNED = EV_SSRC_LEARNED
EVENT_UNKNOWN_SSRC = EV_UNKNOWN_SSRC
EVENT_STREAM_SEND = EV_STREAM_SEND
AUDIO_LEVEL_RING = LEVEL_RING
MAX_DATAGRAM_SIZE = MAX_DATAGRAM
LATENCY_BUCKET_COUNT = N_LATENCY
