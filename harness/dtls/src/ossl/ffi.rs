//! OpenSSL entry points the `openssl-sys` crate does not declare (all exist
//! in libssl 1.1.1 and 3.x, which `openssl-sys` already links).

use std::os::raw::{c_int, c_uint};

use openssl_sys::SSL;

/// OpenSSL's opaque `BIO_ADDR` (not declared by `openssl-sys` for OpenSSL 3).
#[repr(C)]
pub(crate) struct BIO_ADDR {
    _private: [u8; 0],
}

/// `DTLS_timer_cb`: returns the next DTLS timeout in microseconds.
pub(crate) type DtlsTimerCb = unsafe extern "C" fn(s: *mut SSL, timer_us: c_uint) -> c_uint;

extern "C" {
    /// Stateless ClientHello processing; returns 1 once a ClientHello with a
    /// verified cookie is buffered in the SSL for the handshake to continue.
    pub(crate) fn DTLSv1_listen(s: *mut SSL, client: *mut BIO_ADDR) -> c_int;
    pub(crate) fn BIO_ADDR_new() -> *mut BIO_ADDR;
    pub(crate) fn BIO_ADDR_free(addr: *mut BIO_ADDR);
    pub(crate) fn DTLS_set_timer_cb(s: *mut SSL, cb: Option<DtlsTimerCb>);
    /// Frees the record layer's read and write buffers (about 16.5 KiB
    /// each); returns 0, freeing nothing, while a record is partly read or
    /// written.
    pub(crate) fn SSL_free_buffers(s: *mut SSL) -> c_int;
    /// Allocates the read and write buffers if they are not there; returns
    /// 0 when out of memory.
    pub(crate) fn SSL_alloc_buffers(s: *mut SSL) -> c_int;
}

/// Keeps OpenSSL's wall-clock DTLS timer an hour away so OpenSSL never
/// retransmits on its own; `crate::flight` retransmits on the caller's clock.
pub(crate) unsafe extern "C" fn park_timer(_s: *mut SSL, _timer_us: c_uint) -> c_uint {
    3_600_000_000
}
