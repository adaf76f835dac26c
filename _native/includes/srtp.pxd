# libsrtp 2.x entry points, reached through raw C function pointers taken once
# from pylibsrtp's cffi module (see srtp.pyx). The 2.x convention is in place:
# (srtp_t ctx, void *packet, int *len) -> srtp_err_status_t.

ctypedef int (*srtp_fn)(void *ctx, void *pkt, int *len) noexcept nogil

cdef enum:
    # srtp_err_status_t values used by the hot path (libsrtp 2.x srtp.h)
    SRTP_OK = 0
    SRTP_ERR_AUTH_FAIL = 7
    SRTP_ERR_REPLAY_FAIL = 9
    SRTP_ERR_REPLAY_OLD = 10
    # Room a protect may add after the payload: GCM tag 16 + SRTCP index 4
    # (CM-80: tag 10 + index 4). Buffers keep this much slack.
    SRTP_MAX_TRAILER = 32
