# RTCP compound packets (RFC 3550 section 6, rtcp-rsize RFC 5506): a walker
# over the compound, and builders for what the router sends itself.
#
# Types handled: SR 200, RR 201, SDES 202, BYE 203, APP 204,
# RTPFB 205 (FMT 1 generic NACK RFC 4585 6.2.1, FMT 15 transport-cc feedback
# draft-holmer-rmcat-transport-wide-cc-extensions-01), PSFB 206 (FMT 1 PLI
# RFC 4585 6.3.1, FMT 4 FIR RFC 5104 4.3.1, FMT 15 REMB
# draft-alvestrand-rmcat-remb).
#
# NACK worked example: FCI (PID=1000, BLP=0b0000000000000101) asks for
# sequence numbers 1000, 1001 (bit 0) and 1003 (bit 2).

cdef enum:
    RTCP_SR = 200
    RTCP_RR = 201
    RTCP_SDES = 202
    RTCP_BYE = 203
    RTCP_APP = 204
    RTCP_RTPFB = 205
    RTCP_PSFB = 206


cdef struct RtcpItem:
    int off         # offset of this packet within the compound
    int len         # bytes of this packet, header included
    int blen        # bytes before any padding (RFC 3550 6.4.1: P bit, count in the last octet)
    uint8_t pt
    uint8_t count   # RC, SC or FMT


cdef inline int rtcp_next(const uint8_t *p, int n, int off, RtcpItem *it) noexcept nogil:
    """Read the packet at ``off``: 1 when read, 0 at the end, -1 when malformed."""
    cdef int ln
    if off >= n:
        return 0
    if off + 4 > n or (p[off] >> 6) != 2:
        return -1
    ln = 4 * <int>rd16(p + off + 2) + 4
    if off + ln > n:
        return -1
    it.off = off
    it.len = ln
    it.blen = ln
    if p[off] & 0x20:
        if p[off + ln - 1] == 0 or p[off + ln - 1] > ln - 4:
            return -1
        it.blen = ln - p[off + ln - 1]
    it.pt = p[off + 1]
    it.count = p[off] & 0x1F
    return 1


cdef inline int rtcp_is_rtcp(const uint8_t *p, int n) noexcept nogil:
    """RTP and RTCP share the port (rtcp-mux, RFC 5761 4): RTCP packet types
    200-206 (and the 192-223 range) sit where an RTP marker+PT byte would be."""
    return n >= 2 and 192 <= p[1] <= 223


cdef inline int rtcp_write_header(uint8_t *p, uint8_t count, uint8_t pt, int total_len) noexcept nogil:
    p[0] = <uint8_t>(0x80 | (count & 0x1F))
    p[1] = pt
    wr16(p + 2, <uint16_t>(total_len // 4 - 1))
    return total_len


cdef inline int rtcp_write_pli(uint8_t *p, uint32_t sender, uint32_t media) noexcept nogil:
    rtcp_write_header(p, 1, RTCP_PSFB, 12)
    wr32(p + 4, sender)
    wr32(p + 8, media)
    return 12


cdef inline int rtcp_write_nack(uint8_t *p, uint32_t sender, uint32_t media,
                                const uint16_t *pids, const uint16_t *blps, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        wr16(p + 12 + 4 * i, pids[i])
        wr16(p + 14 + 4 * i, blps[i])
    rtcp_write_header(p, 1, RTCP_RTPFB, 12 + 4 * n)
    wr32(p + 4, sender)
    wr32(p + 8, media)
    return 12 + 4 * n


# ---------------------------------------------------------------- test hook

cdef _rtcp_fail(str what):
    raise ValueError(what)


def parse_rtcp(data):
    """Parse a compound RTCP packet into a list of dicts (test and diagnostics
    hook; the router walks packets in C). Raises ValueError when malformed."""
    cdef const uint8_t[::1] buf = data
    cdef int n = buf.shape[0]
    cdef RtcpItem it
    cdef int off = 0, r, i, k, body
    cdef const uint8_t *q
    cdef const uint8_t *b
    cdef int base
    if n == 0:
        raise ValueError("empty RTCP packet")
    cdef const uint8_t *p = &buf[0]
    out = []
    while True:
        r = rtcp_next(p, n, off, &it)
        if r == 0:
            break
        if r < 0:
            raise ValueError(f"malformed RTCP header at offset {off}")
        q = p + it.off
        body = it.blen
        if it.pt == RTCP_SR or it.pt == RTCP_RR:
            base = 28 if it.pt == RTCP_SR else 8
            if body < base + 24 * it.count:
                raise ValueError("RTCP SR/RR shorter than its report count")
            item = {"type": "sr" if it.pt == RTCP_SR else "rr", "ssrc": rd32(q + 4)}
            if it.pt == RTCP_SR:
                item.update(ntp=(<uint64_t>rd32(q + 8) << 32) | rd32(q + 12), rtp_timestamp=rd32(q + 16),
                            packets=rd32(q + 20), octets=rd32(q + 24))
            reports = []
            for k in range(it.count):
                b = q + base + 24 * k
                lost = (<int>b[5] << 16) | (<int>b[6] << 8) | b[7]
                if lost & 0x800000:
                    lost -= 0x1000000
                reports.append({"ssrc": rd32(b), "fraction_lost": b[4], "cumulative_lost": lost,
                                "highest_seq": rd32(b + 8), "jitter": rd32(b + 12),
                                "lsr": rd32(b + 16), "dlsr": rd32(b + 20)})
            item["reports"] = reports
        elif it.pt == RTCP_SDES:
            chunks = []
            i = 4
            for k in range(it.count):
                if i + 4 > body:
                    raise ValueError("RTCP SDES chunk overruns the packet")
                ssrc = rd32(q + i)
                i += 4
                items = []
                while True:
                    if i >= body:
                        raise ValueError("RTCP SDES chunk is not terminated")
                    if q[i] == 0:
                        i = (i + 4) & ~3
                        break
                    if i + 2 > body or i + 2 + q[i + 1] > body:
                        raise ValueError("RTCP SDES item overruns the packet")
                    items.append((q[i], bytes(buf[it.off + i + 2:it.off + i + 2 + q[i + 1]])))
                    i += 2 + q[i + 1]
                chunks.append({"ssrc": ssrc, "items": items})
            item = {"type": "sdes", "chunks": chunks}
        elif it.pt == RTCP_BYE:
            if body < 4 + 4 * it.count:
                raise ValueError("RTCP BYE shorter than its source count")
            item = {"type": "bye", "ssrcs": [rd32(q + 4 + 4 * k) for k in range(it.count)]}
            i = 4 + 4 * it.count
            if i < body:
                if i + 1 + q[i] > body:
                    raise ValueError("RTCP BYE reason overruns the packet")
                item["reason"] = bytes(buf[it.off + i + 1:it.off + i + 1 + q[i]])
        elif it.pt == RTCP_RTPFB or it.pt == RTCP_PSFB:
            if body < 12:
                raise ValueError("RTCP feedback packet shorter than 12 bytes")
            sender = rd32(q + 4)
            media = rd32(q + 8)
            if it.pt == RTCP_RTPFB and it.count == 1:
                lost = []
                for i in range(12, body - 3, 4):
                    pid = rd16(q + i)
                    blp = rd16(q + i + 2)
                    lost.append(pid)
                    for k in range(16):
                        if blp & (1 << k):
                            lost.append((pid + k + 1) & 0xFFFF)
                item = {"type": "nack", "sender_ssrc": sender, "media_ssrc": media, "lost": lost}
            elif it.pt == RTCP_RTPFB and it.count == 15:
                item = _parse_twcc(buf[it.off:it.off + body])
                item.update(sender_ssrc=sender, media_ssrc=media)
            elif it.pt == RTCP_PSFB and it.count == 1:
                item = {"type": "pli", "sender_ssrc": sender, "media_ssrc": media}
            elif it.pt == RTCP_PSFB and it.count == 4:
                entries = [(rd32(q + i), q[i + 4]) for i in range(12, body - 7, 8)]
                item = {"type": "fir", "sender_ssrc": sender, "entries": entries}
            elif it.pt == RTCP_PSFB and it.count == 15 and body >= 20 and memcmp(q + 12, b"REMB", 4) == 0:
                num = q[16]
                if body < 20 + 4 * num:
                    raise ValueError("RTCP REMB shorter than its SSRC count")
                exp = q[17] >> 2
                mantissa = ((q[17] & 3) << 16) | (q[18] << 8) | q[19]
                item = {"type": "remb", "sender_ssrc": sender, "bitrate": mantissa << exp,
                        "ssrcs": [rd32(q + 20 + 4 * k) for k in range(num)]}
            else:
                item = {"type": "feedback", "pt": it.pt, "fmt": it.count,
                        "sender_ssrc": sender, "media_ssrc": media}
        elif it.pt == RTCP_APP:
            if body < 12:
                raise ValueError("RTCP APP shorter than 12 bytes")
            item = {"type": "app", "subtype": it.count, "ssrc": rd32(q + 4),
                    "name": bytes(buf[it.off + 8:it.off + 12]), "data": bytes(buf[it.off + 12:it.off + body])}
        else:
            item = {"type": "unknown", "pt": it.pt}
        out.append(item)
        off += it.len
    return out


def _parse_twcc(const uint8_t[::1] q):
    """transport-cc feedback: base seq, packet status chunks (run length and
    status vector), then receive deltas (1 byte for 'small', 2 for 'large')."""
    cdef int n = q.shape[0]
    cdef int i, k, count, sym
    if n < 20:
        raise ValueError("RTCP transport-cc feedback shorter than 20 bytes")
    base = rd16(&q[12])
    count = rd16(&q[14])
    ref = (q[16] << 16) | (q[17] << 8) | q[18]
    fb_count = q[19]
    statuses = []
    i = 20
    while len(statuses) < count:
        if i + 2 > n:
            raise ValueError("RTCP transport-cc status chunks overrun the packet")
        chunk = rd16(&q[i])
        i += 2
        if chunk & 0x8000 == 0:                     # run length chunk
            sym = (chunk >> 13) & 3
            statuses.extend([sym] * min(chunk & 0x1FFF, count - len(statuses)))
        elif chunk & 0x4000 == 0:                   # 14 one-bit symbols
            for k in range(14):
                if len(statuses) < count:
                    statuses.append((chunk >> (13 - k)) & 1)
        else:                                       # 7 two-bit symbols
            for k in range(7):
                if len(statuses) < count:
                    statuses.append((chunk >> (12 - 2 * k)) & 3)
    deltas = []
    for sym in statuses:
        if sym == 1:
            if i + 1 > n:
                raise ValueError("RTCP transport-cc deltas overrun the packet")
            deltas.append(q[i])
            i += 1
        elif sym == 2:
            if i + 2 > n:
                raise ValueError("RTCP transport-cc deltas overrun the packet")
            d = rd16(&q[i])
            deltas.append(d - 0x10000 if d & 0x8000 else d)
            i += 2
    return {"type": "twcc", "base_seq": base, "status_count": count, "reference_time": ref,
            "fb_count": fb_count, "statuses": statuses, "deltas": deltas}
