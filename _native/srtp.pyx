# SRTP and SRTCP (RFC 3711; AES-GCM RFC 7714) through the libsrtp 2.x that
# pylibsrtp's wheel bundles (with OpenSSL 3.5). The four entry points are
# taken once, as raw C addresses, from its cffi module; the hot path calls
# them with no Python in between (about 0.25 us per GCM packet, 0.5 us CM-80).
#
# Sessions (srtp_t) are created here through the same cffi module, so no
# crypto headers or system libraries are needed to build us. The cffi objects
# own the memory: an SrtpContext keeps them alive for as long as the router
# may use its pointer.

import pylibsrtp._binding as _srtp_binding

_ffi = _srtp_binding.ffi
_lib = _srtp_binding.lib

_EXPECTED_SIGNATURE = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"
if _ffi.getctype(_ffi.typeof(_lib.srtp_protect)) != _EXPECTED_SIGNATURE:  # libsrtp 3 changed the ABI
    raise ImportError(
        "pylibsrtp is built on a libsrtp whose srtp_protect signature is "
        f"{_ffi.getctype(_ffi.typeof(_lib.srtp_protect))!r}; switchboard needs libsrtp 2.x "
        "(pip install 'pylibsrtp>=1.0,<2')"
    )

cdef srtp_fn srtp_protect_fn = <srtp_fn><uintptr_t>int(_ffi.cast("uintptr_t", _lib.srtp_protect))
cdef srtp_fn srtp_unprotect_fn = <srtp_fn><uintptr_t>int(_ffi.cast("uintptr_t", _lib.srtp_unprotect))
cdef srtp_fn srtp_protect_rtcp_fn = <srtp_fn><uintptr_t>int(_ffi.cast("uintptr_t", _lib.srtp_protect_rtcp))
cdef srtp_fn srtp_unprotect_rtcp_fn = <srtp_fn><uintptr_t>int(_ffi.cast("uintptr_t", _lib.srtp_unprotect_rtcp))

# Profile names as DTLS-SRTP negotiates them (RFC 5764, RFC 7714), mapped to
# libsrtp's profile numbers, with (key, salt) lengths.
SRTP_PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": (_lib.srtp_profile_aes128_cm_sha1_80, 16, 14),
    "AEAD_AES_128_GCM": (_lib.srtp_profile_aead_aes_128_gcm, 16, 12),
}


class SrtpError(Exception):
    """Creating an SRTP context failed (bad key length, unknown profile)."""


cdef class SrtpContext:
    """One libsrtp session: ``outbound`` protects, inbound unprotects.

    ``key_salt`` is the master key followed by the master salt, as DTLS-SRTP
    exports them. Outbound contexts allow repeated sequence numbers so the
    router can retransmit from its NACK ring.
    """

    cdef object _policy
    cdef object _key
    cdef object _session
    cdef bytes _key_salt
    cdef readonly str profile
    cdef readonly bint outbound

    def __init__(self, str profile, bytes key_salt, bint outbound, int window_size=128):
        try:
            number, key_len, salt_len = SRTP_PROFILES[profile]
        except KeyError:
            raise SrtpError(f"unknown SRTP profile {profile!r}; expected one of "
                            f"{', '.join(SRTP_PROFILES)}") from None
        if len(key_salt) != key_len + salt_len:
            raise SrtpError(f"{profile} needs {key_len + salt_len} bytes of key and salt, "
                            f"got {len(key_salt)}")
        policy = _ffi.new("srtp_policy_t *")
        _lib.srtp_crypto_policy_set_from_profile_for_rtp(_ffi.addressof(policy.rtp), number)
        _lib.srtp_crypto_policy_set_from_profile_for_rtcp(_ffi.addressof(policy.rtcp), number)
        policy.ssrc.type = _lib.ssrc_any_outbound if outbound else _lib.ssrc_any_inbound
        policy.ssrc.value = 0
        # libsrtp keeps the pointer only during srtp_create, but keep it anyway.
        self._key = _ffi.new("unsigned char[]", key_salt + b"\x00" * 32)
        policy.key = self._key
        policy.window_size = window_size
        policy.allow_repeat_tx = 1 if outbound else 0
        session = _ffi.new("srtp_t *")
        err = _lib.srtp_create(session, policy)
        if err != 0:
            raise SrtpError(f"srtp_create failed with libsrtp status {err}")
        self._policy = policy
        self._session = _ffi.gc(session, lambda s: _lib.srtp_dealloc(s[0]))
        self.profile = profile
        self.outbound = outbound
        self._key_salt = bytes(key_salt)

    cdef bint gcm_keys(self, sb_gcm_key *out):
        """Derive this context's SRTP (not SRTCP) session keys into `out` for
        our AES-GCM path; False (and `out` untouched) unless the profile is
        AEAD_AES_128_GCM and the CPU has AES-NI and PCLMULQDQ."""
        cdef const unsigned char *ks
        if self.profile != "AEAD_AES_128_GCM" or not sb_gcm_available():
            return False
        ks = self._key_salt
        sb_gcm_srtp_init(out, ks, ks + 16, 0)
        return True

    @property
    def pointer(self):
        """The srtp_t as an integer, for the router's session table."""
        return int(_ffi.cast("uintptr_t", self._session[0]))

    cdef inline void *ptr(self):
        return <void *><uintptr_t>int(_ffi.cast("uintptr_t", self._session[0]))

    def protect(self, data, bint rtcp=False):
        """Protect one packet (tests and the control plane; the router never
        calls Python per packet)."""
        return self._run(data, srtp_protect_rtcp_fn if rtcp else srtp_protect_fn, "protect")

    def unprotect(self, data, bint rtcp=False):
        return self._run(data, srtp_unprotect_rtcp_fn if rtcp else srtp_unprotect_fn, "unprotect")

    cdef _run(self, data, srtp_fn fn, str what):
        cdef bytearray buf = bytearray(data)
        cdef int n = len(buf)
        buf.extend(b"\x00" * SRTP_MAX_TRAILER)
        cdef unsigned char *p = buf
        cdef int err = fn(self.ptr(), p, &n)
        if err != 0:
            raise SrtpError(f"srtp {what} failed with libsrtp status {err}")
        return bytes(buf[:n])
