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


# Our AES-128-GCM for the outbound RTP path (see sb_aesgcm.h for why).
cdef extern from "sb_aesgcm.h" nogil:
    ctypedef struct sb_gcm_key:
        unsigned int ready
    int SB_GCM_TAG_LEN
    sb_gcm_key *sb_gcm_keys_new(size_t n)
    void sb_gcm_keys_free(sb_gcm_key *p)
    int sb_gcm_available()
    void sb_gcm_set_key(sb_gcm_key *k, const unsigned char *key)
    void sb_gcm_srtp_init(sb_gcm_key *k, const unsigned char *master_key, const unsigned char *master_salt,
                          int rtcp)
    void sb_gcm_seal(const sb_gcm_key *k, const unsigned char *iv, const unsigned char *aad, int aad_len,
                     unsigned char *p, int len, unsigned char *tag)
    int sb_gcm_open(const sb_gcm_key *k, const unsigned char *iv, const unsigned char *aad, int aad_len,
                    unsigned char *p, int len, const unsigned char *tag)
    int sb_gcm_srtp_protect(const sb_gcm_key *k, unsigned char *pkt, int hdr_len, int len,
                            unsigned int roc)
    int sb_gcm_srtp_unprotect(const sb_gcm_key *k, unsigned char *pkt, int hdr_len, int len,
                              unsigned int roc)


# SRTP index estimation and replay window for the streams on our AES-GCM.
cdef extern from "sb_srtp_index.h" nogil:
    ctypedef struct sb_srtp_index:
        unsigned int init
    enum:
        SB_INDEX_NEW
        SB_INDEX_REPLAY
        SB_INDEX_OLD
    long long sb_index_guess(const sb_srtp_index *r, unsigned short seq)
    int sb_index_check(const sb_srtp_index *r, long long idx)
    void sb_index_add(sb_srtp_index *r, long long idx)
