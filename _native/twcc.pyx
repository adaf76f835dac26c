# Transport-wide congestion control feedback to publishers
# (draft-holmer-rmcat-transport-wide-cc-extensions-01, section 3.1).
#
# Browsers estimate their send bandwidth from this feedback; without it
# Chrome keeps a screen share at its start rate. For each session whose
# client negotiated the transport-cc extension, the router records the
# arrival time of every transport-wide sequence number it sees, and about
# every 100 ms sends one feedback packet:
#
#   base seq | status count | reference time (24 bits, 64 ms units) | fb count
#   packet status chunks: two-bit status vectors (7 packets each):
#       0 = not received, 1 = received with a small delta (1 byte, 0..63.75 ms),
#       2 = received with a large or negative delta (2 bytes, signed)
#   receive deltas in 250 us units, each relative to the previous received
#   packet (the first relative to the reference time).
#
# Example: packets 100, 101, 103 arrive at 64.000, 64.001 and 64.003 s.
# base 100, count 4, reference 1 (x 64 ms), statuses [1, 1, 0, 1]: one
# chunk, bits 1 1 | 01 01 00 01 00 00 00 = 0xD440; deltas 0, 4, 8 (x 250 us).

from cpython.mem cimport PyMem_Malloc, PyMem_Free

cdef enum:
    TWCC_SLOTS = 1024           # sequence numbers tracked between two feedback packets
    TWCC_INTERVAL_US = 100000   # feedback cadence


cdef struct TwccState:
    int64_t arrival[TWCC_SLOTS] # microseconds, -1 = not received
    uint16_t base               # first sequence number of the pending window
    int32_t count               # slots in use (highest index + 1)
    uint8_t started
    uint8_t fb_count


cdef inline void twcc_reset(TwccState *w, uint16_t base) noexcept nogil:
    cdef int i
    for i in range(TWCC_SLOTS):
        w.arrival[i] = -1
    w.base = base
    w.count = 0
    w.started = 1


cdef int twcc_build(TwccState *w, uint8_t *p, int cap, uint32_t sender, uint32_t media) noexcept nogil:
    """Write one feedback packet for the pending window into p; returns its
    length, 0 if nothing is pending or it does not fit."""
    cdef int n = w.count, i, k, off, sym, first = -1, dlen = 0
    cdef int64_t ref_us, prev, d
    cdef uint16_t chunk
    if n == 0:
        return 0
    for i in range(n):
        if w.arrival[i] >= 0:
            first = i
            break
    if first < 0:
        return 0
    # header (12) + base/count/ref/fbcount (8) + chunks + deltas, padded
    if 20 + ((n + 6) // 7) * 2 + n * 2 + 3 > cap:
        n = (cap - 23) // 4
        if n <= 0:
            return 0
    ref_us = w.arrival[first] - (w.arrival[first] % 64000)
    off = 20
    for i in range(0, n, 7):
        chunk = 0xC000                      # status vector, two-bit symbols
        for k in range(7):
            if i + k < n and w.arrival[i + k] >= 0:
                sym = 1
            else:
                sym = 0
            chunk |= <uint16_t>(sym << (12 - 2 * k))
        wr16(p + off, chunk)
        off += 2
    prev = ref_us
    # second pass: deltas; a large or negative delta flips its symbol to 2
    for i in range(n):
        if w.arrival[i] < 0:
            continue
        d = (w.arrival[i] - prev) // 250
        prev = prev + d * 250
        if 0 <= d <= 255:
            p[off] = <uint8_t>d
            off += 1
        else:
            if d > 32767:
                d = 32767
            elif d < -32768:
                d = -32768
            wr16(p + off, <uint16_t><int16_t>d)
            off += 2
            k = i % 7
            chunk = rd16(p + 20 + (i // 7) * 2)
            chunk = (chunk & ~(<uint16_t>(3 << (12 - 2 * k)))) | <uint16_t>(2 << (12 - 2 * k))
            wr16(p + 20 + (i // 7) * 2, chunk)
    while off % 4:
        p[off] = 0
        off += 1
    wr32(p + 4, sender)
    wr32(p + 8, media)
    wr16(p + 12, w.base)
    wr16(p + 14, <uint16_t>n)
    d = ref_us // 64000
    p[16] = <uint8_t>(d >> 16)
    p[17] = <uint8_t>(d >> 8)
    p[18] = <uint8_t>d
    p[19] = w.fb_count
    rtcp_write_header(p, 15, RTCP_RTPFB, off)
    w.fb_count += 1
    # the next window starts after what this packet reported
    w.base = <uint16_t>(w.base + n)
    for i in range(n, w.count):
        w.arrival[i - n] = w.arrival[i]
    for i in range(w.count - n, TWCC_SLOTS):
        w.arrival[i] = -1
    w.count = w.count - n
    return off
