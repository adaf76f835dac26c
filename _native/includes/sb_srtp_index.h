/*
 * SRTP packet index estimation and a 128-packet replay window, for the
 * outgoing streams the router seals with its own AES-GCM (sb_aesgcm.h).
 *
 *   RFC 3711 3.3.1  the 48-bit index = 2^16 * ROC + SEQ, estimated from the
 *                   highest index seen (Appendix A)   https://www.rfc-editor.org/rfc/rfc3711#section-3.3.1
 *   RFC 3711 3.3.2  replay protection with a sliding window
 *
 * The estimate follows libsrtp 2.x exactly, so a receiver running libsrtp
 * (every browser) derives the same ROC for every packet we seal: while the
 * highest index is at most 2^15 the ROC is 0 whatever the jump; after that
 * the index closest to the highest one is chosen, with a tie (SEQ exactly
 * 2^15 ahead of a low SEQ) counted as ahead. A fresh window starts empty at
 * index 0, as libsrtp's does.
 */
#ifndef SB_SRTP_INDEX_H
#define SB_SRTP_INDEX_H

#include <stdint.h>

typedef struct sb_srtp_index {
    uint64_t hi;            /* highest index accepted */
    uint64_t seen[2];       /* bit b of seen[w]: index hi - (64 * w + b) was accepted */
    uint32_t init;          /* 0 until the first index is added */
} sb_srtp_index;

enum { SB_INDEX_NEW = 0, SB_INDEX_REPLAY = 1, SB_INDEX_OLD = 2 };

/* The index of a packet with sequence number `seq` (libsrtp's srtp_rdbx_estimate_index). */
static inline int64_t sb_index_guess(const sb_srtp_index *r, uint16_t seq)
{
    if (!r->init || r->hi <= 32768)
        return seq;
    uint64_t roc = r->hi >> 16;
    uint32_t local = (uint16_t)r->hi;
    if (local < 32768) {
        if ((uint32_t)seq > local + 32768)
            roc -= 1;
    } else if (local - 32768 > (uint32_t)seq) {
        roc += 1;
    }
    return (int64_t)((roc << 16) | seq);
}

/* SB_INDEX_NEW, SB_INDEX_REPLAY (accepted before) or SB_INDEX_OLD (behind the window). */
static inline int sb_index_check(const sb_srtp_index *r, int64_t idx)
{
    if (!r->init || (uint64_t)idx > r->hi)
        return SB_INDEX_NEW;
    uint64_t back = r->hi - (uint64_t)idx;
    if (back >= 128)
        return SB_INDEX_OLD;
    return ((r->seen[back >> 6] >> (back & 63)) & 1) ? SB_INDEX_REPLAY : SB_INDEX_NEW;
}

/* Record `idx` as accepted (after the packet authenticated). */
static inline void sb_index_add(sb_srtp_index *r, int64_t idx)
{
    uint64_t u = (uint64_t)idx;
    if (!r->init) {
        r->init = 1;
        r->hi = u;
        r->seen[0] = 1;
        r->seen[1] = 0;
        return;
    }
    if (u > r->hi) {
        uint64_t s = u - r->hi;
        if (s >= 128) {
            r->seen[1] = 0;
            r->seen[0] = 1;
        } else if (s >= 64) {
            r->seen[1] = r->seen[0] << (s - 64);
            r->seen[0] = 1;
        } else {
            r->seen[1] = (r->seen[1] << s) | (r->seen[0] >> (64 - s));
            r->seen[0] = (r->seen[0] << s) | 1;
        }
        r->hi = u;
    } else {
        uint64_t back = r->hi - u;
        if (back < 128)
            r->seen[back >> 6] |= (uint64_t)1 << (back & 63);
    }
}

#endif /* SB_SRTP_INDEX_H */
