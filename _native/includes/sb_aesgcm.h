/*
 * AES-128-GCM for SRTP, with AES-NI and PCLMULQDQ.
 *
 *   NIST SP 800-38D  GCM (GHASH, GCTR, the tag)          https://doi.org/10.6028/NIST.SP.800-38D
 *   RFC 7714         AES-GCM for SRTP (IV, AAD, 16-byte tag, KDF salt)
 *                                                         https://www.rfc-editor.org/rfc/rfc7714
 *   RFC 3711 4.3     SRTP key derivation (AES-CM PRF)    https://www.rfc-editor.org/rfc/rfc3711#section-4.3
 *   FIPS 197         AES (key expansion)
 *
 * Why we carry our own AEAD for the outbound RTP path: an SFU protects every
 * forwarded copy with the *subscriber's* key, so with thousands of sessions
 * each protect starts with cold crypto state. Through libsrtp that state is a
 * chain of heap objects (srtp_ctx -> stream list -> stream -> cipher ->
 * EVP_CIPHER_CTX -> provider context), and on this machine the chain cost
 * ~1.1-1.6 us of cache misses per packet at saturation against 0.23 us hot.
 * Here a session's whole outbound state is one 256-byte, 64-byte-aligned
 * record (round keys, powers of H, salt) that the router prefetches while it
 * protects the previous copy. libsrtp stays in charge of everything else
 * (inbound, SRTCP, AES-CM-HMAC-SHA1-80), and the tests check this code byte
 * for byte against libsrtp and against `cryptography`'s AES-GCM.
 *
 * Everything is constant-time in the key and data (AES-NI, carry-less
 * multiply, no table lookups); the tag comparison on open is constant-time.
 * On CPUs without AES-NI/PCLMULQDQ (or non-x86 builds) sb_gcm_available()
 * is 0 and the router keeps using libsrtp.
 *
 * GHASH representation. GCM numbers the bits of a block from the left: bit 0
 * (the top bit of byte 0) is the coefficient of x^0. We byte-reverse every
 * block on load, so the coefficient of x^i sits at bit 127-i of the 128-bit
 * register ("reflected"). A carry-less product of two reflected values is
 * the reflected 255-bit product shifted right by one, so we shift the
 * 256-bit result left by one, then fold the upper-degree half (the low 128
 * register bits) back with x^128 = x^7 + x^2 + x + 1, where multiplying by x^j
 * is a right shift by j (see sb_ghash_reduce).
 */
#ifndef SB_AESGCM_H
#define SB_AESGCM_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One direction's keys for one SRTP session: 4 cache lines. */
typedef struct sb_gcm_key {
    uint8_t rk[11][16];     /* AES-128 round keys */
    uint8_t h[4][16];       /* H^1..H^4, reflected, for 4-block aggregated GHASH */
    uint8_t salt[12];       /* SRTP session salt (RFC 7714 8.1) */
    uint32_t ready;         /* 1 once derived */
} __attribute__((aligned(64))) sb_gcm_key;

#define SB_GCM_TAG_LEN 16

static inline sb_gcm_key *sb_gcm_keys_new(size_t n)
{
    size_t bytes = n * sizeof(sb_gcm_key);
    void *p = NULL;
    if (n == 0 || posix_memalign(&p, 64, bytes) != 0)
        return NULL;
    memset(p, 0, bytes);
    return (sb_gcm_key *)p;
}

static inline void sb_gcm_keys_free(sb_gcm_key *p) { free(p); }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#define SB_GCM_TARGET __attribute__((target("aes,pclmul,sse4.1,ssse3")))

static inline int sb_gcm_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul")
        && __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("ssse3");
}

/* ---------------------------------------------------------------- AES-128 */

/* One round of the key schedule: w[i..i+3] from w[i-4..i-1] and the
 * SubWord(RotWord(w[i-1])) ^ rcon word that AESKEYGENASSIST put in lane 3. */
SB_GCM_TARGET static inline __m128i sb_aes_next_rk(__m128i prev, __m128i assist)
{
    __m128i t = _mm_shuffle_epi32(assist, 0xff);
    prev = _mm_xor_si128(prev, _mm_slli_si128(prev, 4));
    prev = _mm_xor_si128(prev, _mm_slli_si128(prev, 8));
    return _mm_xor_si128(prev, t);
}

#define SB_AES_RK(i, rcon) \
    rk[i] = sb_aes_next_rk(rk[(i) - 1], _mm_aeskeygenassist_si128(rk[(i) - 1], rcon))

SB_GCM_TARGET static inline void sb_aes128_expand(const uint8_t key[16], uint8_t out[11][16])
{
    __m128i rk[11];
    rk[0] = _mm_loadu_si128((const __m128i *)key);
    SB_AES_RK(1, 0x01); SB_AES_RK(2, 0x02); SB_AES_RK(3, 0x04); SB_AES_RK(4, 0x08);
    SB_AES_RK(5, 0x10); SB_AES_RK(6, 0x20); SB_AES_RK(7, 0x40); SB_AES_RK(8, 0x80);
    SB_AES_RK(9, 0x1b); SB_AES_RK(10, 0x36);
    for (int i = 0; i < 11; i++)
        _mm_storeu_si128((__m128i *)out[i], rk[i]);
}

#undef SB_AES_RK

SB_GCM_TARGET static inline __m128i sb_aes128_block(const __m128i *rk, __m128i x)
{
    x = _mm_xor_si128(x, rk[0]);
    for (int r = 1; r < 10; r++)
        x = _mm_aesenc_si128(x, rk[r]);
    return _mm_aesenclast_si128(x, rk[10]);
}

/* ---------------------------------------------------------------- GHASH */

SB_GCM_TARGET static inline __m128i sb_rev128(__m128i x)
{
    const __m128i m = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return _mm_shuffle_epi8(x, m);
}

/* Unreduced carry-less product a*b, accumulated into (*hi, *lo). */
SB_GCM_TARGET static inline void sb_clmul_acc(__m128i a, __m128i b, __m128i *hi, __m128i *lo)
{
    __m128i ll = _mm_clmulepi64_si128(a, b, 0x00);
    __m128i hh = _mm_clmulepi64_si128(a, b, 0x11);
    __m128i mid = _mm_xor_si128(_mm_clmulepi64_si128(a, b, 0x01), _mm_clmulepi64_si128(a, b, 0x10));
    *lo = _mm_xor_si128(*lo, _mm_xor_si128(ll, _mm_slli_si128(mid, 8)));
    *hi = _mm_xor_si128(*hi, _mm_xor_si128(hh, _mm_srli_si128(mid, 8)));
}

/* 128-bit logical right shift by 0 < j < 64 */
#define SB_SHR128(x, j) \
    _mm_or_si128(_mm_srli_epi64((x), (j)), _mm_srli_si128(_mm_slli_epi64((x), 64 - (j)), 8))

/* Reflected 256-bit product (hi:lo, still to be shifted left by one) -> the
 * reflected field element. After the shift, hi holds the coefficients of
 * x^0..x^127 and lo those of x^128..x^255 (call that polynomial L). Fold:
 * L*x^128 = L*(1 + x + x^2 + x^7); multiplying by x^j shifts right by j, and
 * the bits shifted out of the bottom (degree >= 128) are folded once more.
 * Those are the low 1, 2 and 7 bits of L, which move to the top of the
 * register (L << 127, << 126, << 121: only L's low 64-bit lane matters). */
SB_GCM_TARGET static inline __m128i sb_ghash_reduce(__m128i hi, __m128i lo)
{
    /* shift the 256-bit value left by one */
    __m128i carry_lo = _mm_srli_epi64(lo, 63);          /* top bit of each lane of lo */
    __m128i carry_hi = _mm_srli_epi64(hi, 63);
    __m128i u = _mm_or_si128(_mm_slli_epi64(hi, 1), _mm_slli_si128(carry_hi, 8));
    u = _mm_or_si128(u, _mm_srli_si128(carry_lo, 8));  /* lo's top bit into hi's bottom */
    __m128i l = _mm_or_si128(_mm_slli_epi64(lo, 1), _mm_slli_si128(carry_lo, 8));
    /* overflow of L*(x + x^2 + x^7): low bits of L's low lane to the top */
    __m128i e = _mm_xor_si128(_mm_xor_si128(_mm_slli_epi64(l, 63), _mm_slli_epi64(l, 62)),
                              _mm_slli_epi64(l, 57));
    e = _mm_slli_si128(e, 8);
    /* E stays within the top lane when multiplied by (1 + x + x^2 + x^7) */
    __m128i t = _mm_xor_si128(l, e);
    __m128i r = _mm_xor_si128(t, SB_SHR128(l, 1));
    r = _mm_xor_si128(r, SB_SHR128(l, 2));
    r = _mm_xor_si128(r, SB_SHR128(l, 7));
    r = _mm_xor_si128(r, _mm_srli_epi64(e, 1));
    r = _mm_xor_si128(r, _mm_srli_epi64(e, 2));
    r = _mm_xor_si128(r, _mm_srli_epi64(e, 7));
    return _mm_xor_si128(u, r);
}

SB_GCM_TARGET static inline __m128i sb_gmul(__m128i a, __m128i b)
{
    __m128i hi = _mm_setzero_si128(), lo = _mm_setzero_si128();
    sb_clmul_acc(a, b, &hi, &lo);
    return sb_ghash_reduce(hi, lo);
}

/* GHASH update with `len` bytes (zero-padded to whole blocks). */
SB_GCM_TARGET static inline __m128i sb_ghash_bytes(const __m128i *h, __m128i y, const uint8_t *p, int len)
{
    uint8_t tail[16];
    while (len >= 64) {
        __m128i hi = _mm_setzero_si128(), lo = _mm_setzero_si128();
        sb_clmul_acc(_mm_xor_si128(y, sb_rev128(_mm_loadu_si128((const __m128i *)p))), h[3], &hi, &lo);
        sb_clmul_acc(sb_rev128(_mm_loadu_si128((const __m128i *)(p + 16))), h[2], &hi, &lo);
        sb_clmul_acc(sb_rev128(_mm_loadu_si128((const __m128i *)(p + 32))), h[1], &hi, &lo);
        sb_clmul_acc(sb_rev128(_mm_loadu_si128((const __m128i *)(p + 48))), h[0], &hi, &lo);
        y = sb_ghash_reduce(hi, lo);
        p += 64;
        len -= 64;
    }
    while (len >= 16) {
        y = sb_gmul(_mm_xor_si128(y, sb_rev128(_mm_loadu_si128((const __m128i *)p))), h[0]);
        p += 16;
        len -= 16;
    }
    if (len > 0) {
        memset(tail, 0, 16);
        memcpy(tail, p, (size_t)len);
        y = sb_gmul(_mm_xor_si128(y, sb_rev128(_mm_loadu_si128((const __m128i *)tail))), h[0]);
    }
    return y;
}

/* ---------------------------------------------------------------- GCM */

SB_GCM_TARGET static inline __m128i sb_ctr_block(__m128i j, uint32_t ctr)
{
    return _mm_insert_epi32(j, (int)__builtin_bswap32(ctr), 3);
}

/* GCTR over `len` bytes in place, counters from 2 (J0 + 1). */
SB_GCM_TARGET static inline void sb_gctr(const __m128i *rk, __m128i j, uint8_t *p, int len)
{
    uint32_t ctr = 2;
    while (len >= 64) {
        __m128i b0 = _mm_xor_si128(sb_ctr_block(j, ctr), rk[0]);
        __m128i b1 = _mm_xor_si128(sb_ctr_block(j, ctr + 1), rk[0]);
        __m128i b2 = _mm_xor_si128(sb_ctr_block(j, ctr + 2), rk[0]);
        __m128i b3 = _mm_xor_si128(sb_ctr_block(j, ctr + 3), rk[0]);
        for (int r = 1; r < 10; r++) {
            b0 = _mm_aesenc_si128(b0, rk[r]);
            b1 = _mm_aesenc_si128(b1, rk[r]);
            b2 = _mm_aesenc_si128(b2, rk[r]);
            b3 = _mm_aesenc_si128(b3, rk[r]);
        }
        b0 = _mm_aesenclast_si128(b0, rk[10]);
        b1 = _mm_aesenclast_si128(b1, rk[10]);
        b2 = _mm_aesenclast_si128(b2, rk[10]);
        b3 = _mm_aesenclast_si128(b3, rk[10]);
        _mm_storeu_si128((__m128i *)p, _mm_xor_si128(b0, _mm_loadu_si128((const __m128i *)p)));
        _mm_storeu_si128((__m128i *)(p + 16), _mm_xor_si128(b1, _mm_loadu_si128((const __m128i *)(p + 16))));
        _mm_storeu_si128((__m128i *)(p + 32), _mm_xor_si128(b2, _mm_loadu_si128((const __m128i *)(p + 32))));
        _mm_storeu_si128((__m128i *)(p + 48), _mm_xor_si128(b3, _mm_loadu_si128((const __m128i *)(p + 48))));
        ctr += 4;
        p += 64;
        len -= 64;
    }
    while (len > 0) {
        __m128i ks = sb_aes128_block(rk, sb_ctr_block(j, ctr++));
        if (len >= 16) {
            _mm_storeu_si128((__m128i *)p, _mm_xor_si128(ks, _mm_loadu_si128((const __m128i *)p)));
            p += 16;
            len -= 16;
        } else {
            uint8_t tail[16];
            memset(tail, 0, 16);
            memcpy(tail, p, (size_t)len);
            _mm_storeu_si128((__m128i *)tail, _mm_xor_si128(ks, _mm_loadu_si128((const __m128i *)tail)));
            memcpy(p, tail, (size_t)len);
            len = 0;
        }
    }
}

/* The tag's GHASH input ends with the bit lengths of A and C (64 bits each, big endian). */
SB_GCM_TARGET static inline __m128i sb_gcm_tag(const sb_gcm_key *k, __m128i j, __m128i y, int aad_len, int len)
{
    const __m128i *rk = (const __m128i *)k->rk;
    const __m128i *h = (const __m128i *)k->h;
    /* reflected length block: byte-reversed [8*aad_len]64 || [8*len]64 */
    __m128i lens = _mm_set_epi64x((long long)aad_len * 8, (long long)len * 8);
    y = sb_gmul(_mm_xor_si128(y, lens), h[0]);
    return _mm_xor_si128(sb_rev128(y), sb_aes128_block(rk, sb_ctr_block(j, 1)));
}

/* Seal: encrypt p[0:len] in place, authenticate aad too, write the tag. */
SB_GCM_TARGET static inline void sb_gcm_seal(const sb_gcm_key *k, const uint8_t iv[12], const uint8_t *aad,
                                             int aad_len, uint8_t *p, int len, uint8_t tag[16])
{
    uint8_t jb[16];
    memcpy(jb, iv, 12);
    memset(jb + 12, 0, 4);
    __m128i j = _mm_loadu_si128((const __m128i *)jb);
    const __m128i *h = (const __m128i *)k->h;
    sb_gctr((const __m128i *)k->rk, j, p, len);
    __m128i y = sb_ghash_bytes(h, _mm_setzero_si128(), aad, aad_len);
    y = sb_ghash_bytes(h, y, p, len);
    _mm_storeu_si128((__m128i *)tag, sb_gcm_tag(k, j, y, aad_len, len));
}

/* Open: check the tag over aad and p[0:len] (constant time), then decrypt in
 * place. Returns 0, or -1 (and leaves p untouched) when the tag is wrong. */
SB_GCM_TARGET static inline int sb_gcm_open(const sb_gcm_key *k, const uint8_t iv[12], const uint8_t *aad,
                                            int aad_len, uint8_t *p, int len, const uint8_t tag[16])
{
    uint8_t jb[16];
    memcpy(jb, iv, 12);
    memset(jb + 12, 0, 4);
    __m128i j = _mm_loadu_si128((const __m128i *)jb);
    const __m128i *h = (const __m128i *)k->h;
    __m128i y = sb_ghash_bytes(h, _mm_setzero_si128(), aad, aad_len);
    y = sb_ghash_bytes(h, y, p, len);
    __m128i diff = _mm_xor_si128(sb_gcm_tag(k, j, y, aad_len, len), _mm_loadu_si128((const __m128i *)tag));
    if (!_mm_testz_si128(diff, diff))
        return -1;
    sb_gctr((const __m128i *)k->rk, j, p, len);
    return 0;
}

/* Raw AES-GCM keys (tests): round keys and powers of H from a 16-byte key. */
SB_GCM_TARGET static inline void sb_gcm_set_key(sb_gcm_key *k, const uint8_t key[16])
{
    sb_aes128_expand(key, k->rk);
    const __m128i *rk = (const __m128i *)k->rk;
    __m128i h1 = sb_rev128(sb_aes128_block(rk, _mm_setzero_si128()));
    __m128i h2 = sb_gmul(h1, h1);
    __m128i h3 = sb_gmul(h2, h1);
    __m128i h4 = sb_gmul(h3, h1);
    _mm_store_si128((__m128i *)k->h[0], h1);
    _mm_store_si128((__m128i *)k->h[1], h2);
    _mm_store_si128((__m128i *)k->h[2], h3);
    _mm_store_si128((__m128i *)k->h[3], h4);
    k->ready = 1;
}

/* RFC 3711 4.3.1 AES-CM PRF with r = 0 (key derivation rate 0): x = label at
 * byte 7 XOR the master salt (RFC 7714 11: a 96-bit salt is zero-padded to
 * 112 bits on the right), keystream = AES_K(x || 0x0000), AES_K(x || 0x0001). */
SB_GCM_TARGET static inline void sb_srtp_kdf(const uint8_t *master_key, const uint8_t *master_salt,
                                             int salt_len, uint8_t label, uint8_t *out, int out_len)
{
    uint8_t rkb[11][16];
    uint8_t x[16], ks[16];
    sb_aes128_expand(master_key, rkb);
    memset(x, 0, 16);
    memcpy(x, master_salt, (size_t)(salt_len > 14 ? 14 : salt_len));
    x[7] ^= label;
    for (int i = 0, blk = 0; i < out_len; blk++) {
        x[14] = (uint8_t)(blk >> 8);
        x[15] = (uint8_t)blk;
        _mm_storeu_si128((__m128i *)ks, sb_aes128_block((const __m128i *)rkb, _mm_loadu_si128((const __m128i *)x)));
        for (int b = 0; b < 16 && i < out_len; b++)
            out[i++] = ks[b];
    }
    memset(rkb, 0, sizeof rkb);
}

/* SRTP session keys for AEAD_AES_128_GCM from the DTLS-exported master key
 * (16 bytes) and salt (12 bytes). `rtcp` picks the SRTCP labels (3, 5)
 * instead of SRTP's (0, 2). */
SB_GCM_TARGET static inline void sb_gcm_srtp_init(sb_gcm_key *k, const uint8_t *master_key,
                                                  const uint8_t *master_salt, int rtcp)
{
    uint8_t key[16];
    sb_srtp_kdf(master_key, master_salt, 12, rtcp ? 3 : 0, key, 16);
    sb_srtp_kdf(master_key, master_salt, 12, rtcp ? 5 : 2, k->salt, 12);
    sb_gcm_set_key(k, key);
    memset(key, 0, sizeof key);
}

/* RFC 7714 8.1: IV = (0x0000 || SSRC || ROC || SEQ) XOR salt. */
static inline void sb_srtp_gcm_iv(const sb_gcm_key *k, const uint8_t *pkt, uint32_t roc, uint8_t iv[12])
{
    iv[0] = k->salt[0];
    iv[1] = k->salt[1];
    for (int i = 0; i < 4; i++)
        iv[2 + i] = k->salt[2 + i] ^ pkt[8 + i];
    iv[6] = k->salt[6] ^ (uint8_t)(roc >> 24);
    iv[7] = k->salt[7] ^ (uint8_t)(roc >> 16);
    iv[8] = k->salt[8] ^ (uint8_t)(roc >> 8);
    iv[9] = k->salt[9] ^ (uint8_t)roc;
    iv[10] = k->salt[10] ^ pkt[2];
    iv[11] = k->salt[11] ^ pkt[3];
}

/* Protect one RTP packet in place (RFC 7714 8.1/8.2): the first hdr_len
 * bytes (fixed header, CSRCs, extension block) are the AAD, the payload is
 * encrypted, the 16-byte tag follows it. Returns the protected length. */
SB_GCM_TARGET static inline int sb_gcm_srtp_protect(const sb_gcm_key *k, uint8_t *pkt, int hdr_len, int len,
                                                    uint32_t roc)
{
    uint8_t iv[12];
    sb_srtp_gcm_iv(k, pkt, roc, iv);
    sb_gcm_seal(k, iv, pkt, hdr_len, pkt + hdr_len, len - hdr_len, pkt + len);
    return len + SB_GCM_TAG_LEN;
}

/* Unprotect one RTP packet in place; returns the plain length or -1 when
 * authentication fails (the packet is then left as it was). */
SB_GCM_TARGET static inline int sb_gcm_srtp_unprotect(const sb_gcm_key *k, uint8_t *pkt, int hdr_len, int len,
                                                      uint32_t roc)
{
    uint8_t iv[12];
    if (len < hdr_len + SB_GCM_TAG_LEN)
        return -1;
    sb_srtp_gcm_iv(k, pkt, roc, iv);
    len -= SB_GCM_TAG_LEN;
    if (sb_gcm_open(k, iv, pkt, hdr_len, pkt + hdr_len, len - hdr_len, pkt + len) != 0)
        return -1;
    return len;
}

#undef SB_SHR128

#else  /* no AES-NI build: the router keeps libsrtp for everything */

static inline int sb_gcm_available(void) { return 0; }
static inline void sb_gcm_set_key(sb_gcm_key *k, const uint8_t key[16]) { (void)key; k->ready = 0; }
static inline void sb_gcm_srtp_init(sb_gcm_key *k, const uint8_t *mk, const uint8_t *ms, int rtcp)
{ (void)mk; (void)ms; (void)rtcp; k->ready = 0; }
static inline void sb_gcm_seal(const sb_gcm_key *k, const uint8_t iv[12], const uint8_t *aad, int aad_len,
                               uint8_t *p, int len, uint8_t tag[16])
{ (void)k; (void)iv; (void)aad; (void)aad_len; (void)p; (void)len; memset(tag, 0, 16); }
static inline int sb_gcm_open(const sb_gcm_key *k, const uint8_t iv[12], const uint8_t *aad, int aad_len,
                              uint8_t *p, int len, const uint8_t tag[16])
{ (void)k; (void)iv; (void)aad; (void)aad_len; (void)p; (void)len; (void)tag; return -1; }
static inline int sb_gcm_srtp_protect(const sb_gcm_key *k, uint8_t *pkt, int hdr_len, int len, uint32_t roc)
{ (void)k; (void)pkt; (void)hdr_len; (void)len; (void)roc; return -1; }
static inline int sb_gcm_srtp_unprotect(const sb_gcm_key *k, uint8_t *pkt, int hdr_len, int len, uint32_t roc)
{ (void)k; (void)pkt; (void)hdr_len; (void)len; (void)roc; return -1; }

#endif
#endif /* SB_AESGCM_H */
