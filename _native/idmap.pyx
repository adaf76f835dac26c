# A C-integer hash table: uint64 key -> int32 id (open addressing, linear
# probing, backward-shift deletion, so there are no tombstones). Used for
# 5-tuple -> session, (session, SSRC) -> track/consumer and
# (session, MID/RID) -> track. Key 0 marks an empty slot; callers build keys
# with a tag bit so 0 never occurs.

from cpython.mem cimport PyMem_Calloc, PyMem_Free

cdef struct IdMapEntry:
    uint64_t key
    int32_t val

cdef struct IdMap:
    IdMapEntry *slots
    uint32_t mask
    uint32_t used


cdef inline uint64_t mix64(uint64_t x) noexcept nogil:
    # splitmix64 finaliser: spreads nearby keys (ports, SSRCs) over the table
    x ^= x >> 30
    x *= <uint64_t>0xbf58476d1ce4e5b9
    x ^= x >> 27
    x *= <uint64_t>0x94d049bb133111eb
    x ^= x >> 31
    return x


cdef int idmap_init(IdMap *m, uint32_t capacity) except -1:
    cdef uint32_t size = 16
    while size < capacity * 2:
        size <<= 1
    m.slots = <IdMapEntry *>PyMem_Calloc(size, sizeof(IdMapEntry))
    if m.slots == NULL:
        raise MemoryError()
    m.mask = size - 1
    m.used = 0
    return 0


cdef void idmap_free(IdMap *m) noexcept:
    PyMem_Free(m.slots)
    m.slots = NULL


cdef inline int32_t idmap_get(const IdMap *m, uint64_t key) noexcept nogil:
    cdef uint32_t i = <uint32_t>mix64(key) & m.mask
    while m.slots[i].key != 0:
        if m.slots[i].key == key:
            return m.slots[i].val
        i = (i + 1) & m.mask
    return -1


cdef int idmap_put(IdMap *m, uint64_t key, int32_t val) noexcept nogil:
    """Insert or replace; -1 when the table is full (callers size it at twice
    the object limit, so that means a bug)."""
    cdef uint32_t i = <uint32_t>mix64(key) & m.mask
    while m.slots[i].key != 0:
        if m.slots[i].key == key:
            m.slots[i].val = val
            return 0
        i = (i + 1) & m.mask
    if (m.used + 1) * 4 > (m.mask + 1) * 3:
        return -1
    m.slots[i].key = key
    m.slots[i].val = val
    m.used += 1
    return 0


cdef int idmap_del(IdMap *m, uint64_t key) noexcept nogil:
    cdef uint32_t i = <uint32_t>mix64(key) & m.mask
    cdef uint32_t j, home
    while m.slots[i].key != key:
        if m.slots[i].key == 0:
            return -1
        i = (i + 1) & m.mask
    # backward-shift: pull later entries of the probe run into the hole
    j = i
    while True:
        j = (j + 1) & m.mask
        if m.slots[j].key == 0:
            break
        home = <uint32_t>mix64(m.slots[j].key) & m.mask
        # move j into i unless its home lies cyclically in (i, j]
        if (i <= j and (home <= i or home > j)) or (i > j and (home <= i and home > j)):
            m.slots[i] = m.slots[j]
            i = j
    m.slots[i].key = 0
    m.slots[i].val = 0
    m.used -= 1
    return 0


cdef inline uint64_t key_session_u32(int32_t session, uint32_t value) noexcept nogil:
    return (<uint64_t>(session + 1) << 32) | value


cdef inline uint64_t key_session_name(int32_t session, const uint8_t *name, int n,
                                      const uint8_t *name2, int n2) noexcept nogil:
    # FNV-1a over "name\0name2", then tagged with the session in the high bits
    cdef uint64_t h = <uint64_t>0xcbf29ce484222325
    cdef int i
    for i in range(n):
        h = (h ^ name[i]) * <uint64_t>0x100000001b3
    h = (h ^ 0) * <uint64_t>0x100000001b3
    for i in range(n2):
        h = (h ^ name2[i]) * <uint64_t>0x100000001b3
    return (mix64(h ^ (<uint64_t>(session + 1) << 40)) | (<uint64_t>1 << 63))
