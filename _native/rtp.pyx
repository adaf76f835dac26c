# RTP header parsed as a view over the packet buffer (RFC 3550 section 5.1),
# with header extensions in the one-byte and two-byte forms (RFC 8285) and
# the audio level extension (RFC 6464).
#
# Nothing here allocates: a parse fills an RtpView struct of offsets and the
# values the router needs; rewrites happen in place on a copy in a send slot.
#
#   0                   1                   2                   3
#   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
#  |V=2|P|X|  CC   |M|     PT      |       sequence number         |
#  |                           timestamp                           |
#  |           synchronization source (SSRC) identifier            |
#  |            contributing source (CSRC) identifiers (CC x 32)   |
#  |  0xBEDE (one-byte) or 0x100x (two-byte) |  length in words    |
#  |                     extension elements ...                    |

cdef struct RtpView:
    int hdr_len             # bytes before the payload (fixed + CSRC + extension block)
    int ext_off             # offset of the first extension element, 0 when there is none
    int ext_len             # bytes of extension elements
    uint16_t ext_profile    # 0xBEDE or 0x100x
    int payload_off
    int payload_len
    int pad_len
    uint8_t pt
    uint8_t marker
    uint16_t seq
    uint32_t ts
    uint32_t ssrc


cdef inline uint16_t rd16(const uint8_t *p) noexcept nogil:
    return <uint16_t>((<uint16_t>p[0] << 8) | p[1])


cdef inline uint32_t rd32(const uint8_t *p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline void wr16(uint8_t *p, uint16_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 8)
    p[1] = <uint8_t>v


cdef inline void wr32(uint8_t *p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 24)
    p[1] = <uint8_t>(v >> 16)
    p[2] = <uint8_t>(v >> 8)
    p[3] = <uint8_t>v


cdef inline int rtp_parse(const uint8_t *p, int n, RtpView *v) noexcept nogil:
    """Fill ``v`` from the packet; 0 on success, -1 when malformed."""
    cdef int off, elen, pad = 0
    if n < 12 or (p[0] >> 6) != 2:
        return -1
    off = 12 + 4 * (p[0] & 0x0F)
    if off > n:
        return -1
    v.ext_off = 0
    v.ext_len = 0
    v.ext_profile = 0
    if p[0] & 0x10:
        if off + 4 > n:
            return -1
        v.ext_profile = rd16(p + off)
        elen = 4 * <int>rd16(p + off + 2)
        off += 4
        if off + elen > n:
            return -1
        v.ext_off = off
        v.ext_len = elen
        off += elen
    if p[0] & 0x20:
        pad = p[n - 1]
        if pad == 0 or off + pad > n:
            return -1
    v.hdr_len = off
    v.payload_off = off
    v.payload_len = n - off - pad
    v.pad_len = pad
    v.marker = p[1] >> 7
    v.pt = p[1] & 0x7F
    v.seq = rd16(p + 2)
    v.ts = rd32(p + 4)
    v.ssrc = rd32(p + 8)
    return 0


cdef inline int rtp_header_len(const uint8_t *p, int n) noexcept nogil:
    """Bytes of fixed header, CSRCs and extension block, or -1 when they do
    not fit in ``n`` (the checks of libsrtp's srtp_validate_rtp_header).
    Header only: nothing of an encrypted payload is read (rtp_parse looks at
    the padding count in the last byte)."""
    cdef int off
    if n < 12:
        return -1
    off = 12 + 4 * (p[0] & 0x0F)
    if p[0] & 0x10:
        if off + 4 > n:
            return -1
        off += 4 + 4 * <int>rd16(p + off + 2)
    return off if off <= n else -1


cdef struct ExtIter:
    int pos                 # next byte to read
    int end                 # end of the extension elements
    int two_byte            # 0x100x profile (RFC 8285 4.3), else one-byte 0xBEDE (4.2)


cdef inline int ext_iter_init(ExtIter *it, const RtpView *v) noexcept nogil:
    """Start walking the header extension elements; 0 when there are none
    in a form we understand (then ext_iter_next ends at once)."""
    it.pos = v.ext_off
    it.end = v.ext_off + v.ext_len
    it.two_byte = (v.ext_profile & 0xFFF0) == 0x1000
    if v.ext_len == 0 or (v.ext_profile != 0xBEDE and not it.two_byte):
        it.end = it.pos
        return 0
    return 1


cdef inline int ext_iter_next(const uint8_t *p, ExtIter *it, int *eid, int *hdr, int *ln) noexcept nogil:
    """The next element: 1 with its id, header offset and data length (data
    starts at hdr + 1 or hdr + 2), 0 at the end, -1 when an element overruns
    the block. Padding bytes (0) are skipped; id 15 in the one-byte form
    stops the walk (RFC 8285 4.2)."""
    cdef int i = it.pos
    while i < it.end and p[i] == 0:
        i += 1
    if i >= it.end:
        it.pos = i
        return 0
    if it.two_byte:
        if i + 2 > it.end:
            return -1
        eid[0] = p[i]
        ln[0] = p[i + 1]
        if i + 2 + ln[0] > it.end:
            return -1
        it.pos = i + 2 + ln[0]
    else:
        eid[0] = p[i] >> 4
        if eid[0] == 15:
            it.pos = it.end
            return 0
        ln[0] = (p[i] & 0x0F) + 1
        if i + 1 + ln[0] > it.end:
            return -1
        it.pos = i + 1 + ln[0]
    hdr[0] = i
    return 1


cdef inline int rtp_ext_find(const uint8_t *p, const RtpView *v, int ext_id,
                             int *out_len) noexcept nogil:
    """Offset of the data of extension ``ext_id`` (its length in out_len), or -1."""
    cdef ExtIter it
    cdef int eid, hdr, ln
    if ext_id <= 0 or not ext_iter_init(&it, v):
        return -1
    while ext_iter_next(p, &it, &eid, &hdr, &ln) == 1:
        if eid == ext_id:
            out_len[0] = ln
            return hdr + (2 if it.two_byte else 1)
    return -1


cdef inline void rtp_ext_remap(uint8_t *p, const RtpView *v, const uint8_t *idmap) noexcept nogil:
    """Rewrite extension ids in place: idmap[old] is the new id, 0 removes the
    element by turning all its bytes into padding (zero bytes are padding in
    both forms, so the block keeps its length and no byte moves)."""
    cdef ExtIter it
    cdef int eid, hdr, ln, hlen
    cdef uint8_t nid
    if not ext_iter_init(&it, v):
        return
    hlen = 2 if it.two_byte else 1
    while ext_iter_next(p, &it, &eid, &hdr, &ln) == 1:
        nid = idmap[eid]
        if nid == 0:
            memset(p + hdr, 0, hlen + ln)
        elif nid != eid:
            p[hdr] = nid if it.two_byte else <uint8_t>((nid << 4) | (ln - 1))


def parse_rtp(data):
    """Parse an RTP header (test and diagnostics hook; the router never calls it).

    Returns a dict; raises ValueError for a malformed header.
    """
    cdef const uint8_t[::1] buf = data
    cdef RtpView v
    cdef int n = buf.shape[0]
    cdef int i, eid, ln
    if n == 0 or rtp_parse(&buf[0], n, &v) != 0:
        raise ValueError("malformed RTP header")
    cdef const uint8_t *p = &buf[0]
    exts = {}
    cdef ExtIter it
    cdef int hdr, r
    if ext_iter_init(&it, &v):
        while True:
            r = ext_iter_next(p, &it, &eid, &hdr, &ln)
            if r == 0:
                break
            if r < 0:
                raise ValueError("RTP header extension element overruns its block")
            i = hdr + (2 if it.two_byte else 1)
            exts[eid] = bytes(buf[i:i + ln])
    csrcs = [rd32(p + 12 + 4 * k) for k in range(p[0] & 0x0F)]
    return {
        "marker": bool(v.marker), "payload_type": v.pt, "sequence_number": v.seq,
        "timestamp": v.ts, "ssrc": v.ssrc, "csrc": csrcs, "extension_profile": v.ext_profile,
        "extensions": exts, "payload": bytes(buf[v.payload_off:v.payload_off + v.payload_len]),
        "padding": v.pad_len,
    }
