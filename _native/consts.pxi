# Sizes, states, counter indexes and event kinds shared by the media plane.
# Each counter enum has a Python tuple of names right below it, in the same
# order; the engine reads counters as numpy arrays and labels columns with
# these names (tests check the lengths agree).

cdef enum:
    SLOT_SIZE = 2048            # bytes per receive/send slot
    MAX_DATAGRAM = SLOT_SIZE - SRTP_MAX_TRAILER - 64
    LEVEL_RING = 64             # audio levels kept per track (power of 2)
    MAX_MID = 16                # bytes of a MID / RID value we route on
    NO_ID = -1

cdef enum SlotState:
    SLOT_FREE = 0
    SLOT_USED = 1

cdef enum SessionState:
    SESSION_FREE = 0
    SESSION_NEW = 1             # allocated, no address yet (ICE not nominated)
    SESSION_BOUND = 2           # 5-tuple bound: media accepted from it

cdef enum TrackKind:
    KIND_AUDIO = 0
    KIND_VIDEO = 1

cdef enum EventKind:
    EV_STUN = 1                 # STUN datagram (first byte 0-3)
    EV_DTLS = 2                 # DTLS record (first byte 20-63)
    EV_BYE = 3                  # RTCP BYE from a session (a = ssrc)
    EV_SSRC_LEARNED = 4         # a track's SSRC learned from MID/RID (a = track, b = ssrc)
    EV_UNKNOWN_SSRC = 5         # media with an SSRC no track claims (a = ssrc), once per SSRC change
    EV_STREAM_SEND = 6          # a protected packet for an ICE-TCP session (data), to frame and write

cdef enum:  # GlobalCounter
    G_RECV_CALLS
    G_RX_DATAGRAMS
    G_RX_BYTES
    G_SEND_CALLS
    G_TX_DATAGRAMS
    G_DROP_UNKNOWN_SOURCE
    G_DROP_UNKNOWN_TYPE
    G_DROP_TRUNCATED
    G_DROP_EVENT_OVERFLOW
    G_DROP_SEND_ERROR
    G_EVENTS
    G_COUNT

GLOBAL_COUNTERS = (
    "recv_calls", "rx_datagrams", "rx_bytes", "send_calls", "tx_datagrams",
    "drop_unknown_source", "drop_unknown_type", "drop_truncated", "drop_event_overflow",
    "drop_send_error", "events",
)

# Forwarding latency: time from the recvmmsg that read a media packet to the
# sendmmsg that sent its copies (user-space time in the SFU), counted per
# source packet, by track kind, in these buckets (seconds, upper bounds).
LATENCY_BUCKETS = (10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3)
cdef enum:
    N_LATENCY = 12              # len(LATENCY_BUCKETS) + the +Inf bucket

cdef enum:  # SessionCounter
    SC_RX_PACKETS
    SC_RX_BYTES
    SC_TX_PACKETS
    SC_TX_BYTES
    SC_RX_RTCP
    SC_TX_RTCP
    SC_DROP_NOT_READY
    SC_DROP_MALFORMED
    SC_DROP_SRTP_AUTH
    SC_DROP_REPLAY
    SC_DROP_SRTP_OTHER
    SC_DROP_UNKNOWN_SSRC
    SC_DROP_SEND_ERROR
    SC_DROP_QUEUE_OVERFLOW
    SC_NACK_RX
    SC_RTX_SENT
    SC_PLI_RX
    SC_PLI_SENT
    SC_NACK_SENT
    SC_TWCC_RX
    SC_REMB_RX
    SC_TWCC_SENT
    SC_COUNT

SESSION_COUNTERS = (
    "rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "rx_rtcp", "tx_rtcp",
    "drop_not_ready", "drop_malformed", "drop_srtp_auth", "drop_replay", "drop_srtp_other",
    "drop_unknown_ssrc", "drop_send_error", "drop_queue_overflow",
    "nack_rx", "rtx_sent", "pli_rx", "pli_sent", "nack_sent", "twcc_rx", "remb_rx", "twcc_sent",
)

cdef enum:  # TrackCounter
    TC_PACKETS
    TC_BYTES
    TC_FORWARDED
    TC_FORWARDED_BYTES
    TC_MUTED_DROPS
    TC_SEQ_GAPS
    TC_OUT_OF_ORDER
    TC_PLI_FORWARDED
    TC_PLI_LIMITED
    TC_NACK_SENT
    TC_COUNT

TRACK_COUNTERS = (
    "packets", "bytes", "forwarded", "forwarded_bytes", "muted_drops", "seq_gaps",
    "out_of_order", "pli_forwarded", "pli_limited", "nack_sent",
)

cdef enum:  # ConsumerCounter
    CC_PACKETS
    CC_BYTES
    CC_PAUSED_DROPS
    CC_STALE_DROPS
    CC_PT_DROPS
    CC_NACK_RX
    CC_RTX
    CC_RTX_MISS
    CC_PLI_RX
    CC_RR_FRACTION_LOST     # last receiver report: fraction lost (0-255)
    CC_RR_CUM_LOST          # last receiver report: cumulative lost
    CC_RR_JITTER            # last receiver report: interarrival jitter (RTP units)
    CC_RR_COUNT
    CC_COUNT

CONSUMER_COUNTERS = (
    "packets", "bytes", "paused_drops", "stale_drops", "pt_drops", "nack_rx", "rtx",
    "rtx_miss", "pli_rx", "rr_fraction_lost", "rr_cum_lost", "rr_jitter", "rr_count",
)
