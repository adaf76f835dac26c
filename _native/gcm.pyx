# Python entry points to our AES-128-GCM (includes/sb_aesgcm.h) for the tests
# and tools. The router calls the C functions directly; nothing here is on
# the packet path.

GCM_NATIVE = bool(sb_gcm_available())


cdef sb_gcm_key *_gcm_key_from(const unsigned char[::1] key) except NULL:
    if not sb_gcm_available():
        raise SrtpError("this CPU (or build) has no AES-NI/PCLMULQDQ: our AES-GCM is unavailable")
    if key.shape[0] != 16:
        raise SrtpError(f"AES-128-GCM needs a 16-byte key, got {key.shape[0]}")
    cdef sb_gcm_key *k = sb_gcm_keys_new(1)
    if k == NULL:
        raise MemoryError()
    sb_gcm_set_key(k, &key[0])
    return k


def aes_gcm_seal(key, iv, aad, plaintext):
    """AES-128-GCM with a 12-byte IV: ciphertext followed by the 16-byte tag."""
    cdef const unsigned char[::1] iv_v = iv
    cdef const unsigned char[::1] aad_v = aad
    cdef bytearray out = bytearray(plaintext)
    cdef int n = len(out)
    if iv_v.shape[0] != 12:
        raise SrtpError("the IV must be 12 bytes")
    out.extend(b"\x00" * 16)
    cdef unsigned char *p = out
    cdef sb_gcm_key *k = _gcm_key_from(key)
    sb_gcm_seal(k, &iv_v[0], &aad_v[0] if aad_v.shape[0] else NULL, aad_v.shape[0], p, n, p + n)
    sb_gcm_keys_free(k)
    return bytes(out)


def aes_gcm_open(key, iv, aad, sealed):
    """Inverse of aes_gcm_seal; raises SrtpError when the tag does not match."""
    cdef const unsigned char[::1] iv_v = iv
    cdef const unsigned char[::1] aad_v = aad
    cdef bytearray buf = bytearray(sealed)
    cdef int n = len(buf) - 16
    if iv_v.shape[0] != 12:
        raise SrtpError("the IV must be 12 bytes")
    if n < 0:
        raise SrtpError("sealed data shorter than the tag")
    cdef unsigned char *p = buf
    cdef sb_gcm_key *k = _gcm_key_from(key)
    cdef int r = sb_gcm_open(k, &iv_v[0], &aad_v[0] if aad_v.shape[0] else NULL, aad_v.shape[0], p, n, p + n)
    sb_gcm_keys_free(k)
    if r != 0:
        raise SrtpError("AES-GCM authentication failed")
    return bytes(buf[:n])


def srtp_gcm_protect(key_salt, packet, unsigned int roc=0, bint unprotect=False):
    """Protect (or unprotect) one RTP packet with AEAD_AES_128_GCM session
    keys derived from the DTLS-exported master key and salt (28 bytes), the
    way the router does for outbound copies."""
    cdef const unsigned char[::1] ks = key_salt
    cdef RtpView v
    cdef bytearray buf = bytearray(packet)
    cdef int n = len(buf)
    cdef int r
    if ks.shape[0] != 28:
        raise SrtpError(f"AEAD_AES_128_GCM needs 28 bytes of key and salt, got {ks.shape[0]}")
    if not sb_gcm_available():
        raise SrtpError("this CPU (or build) has no AES-NI/PCLMULQDQ: our AES-GCM is unavailable")
    buf.extend(b"\x00" * SRTP_MAX_TRAILER)
    cdef unsigned char *p = buf
    if n < 12 or rtp_parse(p, n - (16 if unprotect else 0), &v) != 0:
        raise SrtpError("not an RTP packet")
    cdef sb_gcm_key *k = sb_gcm_keys_new(1)
    if k == NULL:
        raise MemoryError()
    sb_gcm_srtp_init(k, &ks[0], &ks[16], 0)
    if unprotect:
        r = sb_gcm_srtp_unprotect(k, p, v.hdr_len, n, roc)
    else:
        r = sb_gcm_srtp_protect(k, p, v.hdr_len, n, roc)
    sb_gcm_keys_free(k)
    if r < 0:
        raise SrtpError("SRTP AES-GCM authentication failed")
    return bytes(buf[:r])
