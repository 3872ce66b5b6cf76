//! One DTLS association over OpenSSL: an `SslStream` on a [`DatagramPipe`],
//! the flight retransmission of [`crate::flight`], and the bookkeeping that
//! turns OpenSSL's return codes into datagrams, plaintexts and outcomes.

use std::time::Instant;

use foreign_types::ForeignTypeRef;
use openssl::ssl::{ErrorCode, ShutdownResult, Ssl, SslStream};

use super::ffi;
use super::pipe::DatagramPipe;
use crate::config::RetransmitPolicy;
use crate::error::Error;
use crate::event::{CloseReason, HandshakeFailure};
use crate::flight::{Expiry, Flight};
use crate::record::{self, alert, ContentType, RecordHeader};
use crate::suite::CipherSuite;

/// Largest DTLS plaintext (RFC 6347 §4.1 via RFC 5246 §6.2.1).
pub(crate) const MAX_PLAINTEXT: usize = 16384;

/// Where the association is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Handshaking,
    Established,
    /// Failed or closed; nothing more is processed.
    Done,
}

/// What one input produced.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) transmits: Vec<Vec<u8>>,
    pub(crate) received: Vec<Vec<u8>>,
    pub(crate) completed: bool,
    pub(crate) failed: Option<HandshakeFailure>,
    pub(crate) closed: Option<CloseReason>,
    /// Application-data records the record layer discarded.
    pub(crate) rejected: usize,
}

pub(crate) struct Connection {
    stream: SslStream<DatagramPipe>,
    phase: Phase,
    flight: Flight,
    policy: RetransmitPolicy,
    is_server: bool,
    /// Next free epoch-0 record sequence number on our side, for the
    /// plaintext alert sent when a Finished does not verify.
    next_epoch0_seq: u64,
    pub(crate) last_activity: Instant,
    pub(crate) created: Instant,
}

impl Connection {
    fn new(
        mut ssl: Ssl,
        mtu: u16,
        policy: RetransmitPolicy,
        is_server: bool,
        now: Instant,
    ) -> Result<Self, Error> {
        ssl.set_mtu(u32::from(mtu))
            .map_err(|e| Error::openssl("setting the MTU", e))?;
        if is_server {
            ssl.set_accept_state();
        } else {
            ssl.set_connect_state();
        }
        // SAFETY: the pointer is a live SSL owned by `ssl`; the callback is a
        // plain function that touches nothing.
        unsafe { ffi::DTLS_set_timer_cb(ssl.as_ptr(), Some(ffi::park_timer)) };
        let stream = SslStream::new(ssl, DatagramPipe::default())
            .map_err(|e| Error::openssl("attaching the datagram BIO", e))?;
        Ok(Self {
            stream,
            phase: Phase::Handshaking,
            flight: Flight::default(),
            policy,
            is_server,
            next_epoch0_seq: 0,
            last_activity: now,
            created: now,
        })
    }

    /// Client: creates the association and writes the first ClientHello.
    pub(crate) fn connect(
        ssl: Ssl,
        mtu: u16,
        policy: RetransmitPolicy,
        now: Instant,
    ) -> Result<(Self, Outcome), Error> {
        let mut conn = Self::new(ssl, mtu, policy, false, now)?;
        let mut out = Outcome::default();
        conn.drive_handshake(now, &[], &mut out);
        Ok((conn, out))
    }

    /// Server: hands a cookie-verified ClientHello to `DTLSv1_listen`, which
    /// sets the handshake up as if it had done the cookie exchange itself
    /// (message_seq 1, record sequence continued), then answers it.
    pub(crate) fn accept(
        ssl: Ssl,
        hello: &[u8],
        mtu: u16,
        policy: RetransmitPolicy,
        now: Instant,
    ) -> Result<(Self, Outcome), Error> {
        let mut conn = Self::new(ssl, mtu, policy, true, now)?;
        conn.stream.get_mut().inbound.push_back(hello.to_vec());
        // SAFETY: BIO_ADDR_new returns an owned address or null; listen
        // accepts it and we free it right after. The SSL is live.
        let listened = unsafe {
            let addr = ffi::BIO_ADDR_new();
            if addr.is_null() {
                return Err(Error::openssl(
                    "allocating a BIO_ADDR",
                    openssl::error::ErrorStack::get(),
                ));
            }
            let r = ffi::DTLSv1_listen(conn.stream.ssl().as_ptr(), addr);
            ffi::BIO_ADDR_free(addr);
            r
        };
        if listened != 1 {
            return Err(Error::openssl(
                "DTLSv1_listen on a verified ClientHello",
                openssl::error::ErrorStack::get(),
            ));
        }
        conn.stream.get_mut().inbound.clear();
        let mut out = Outcome::default();
        conn.drive_handshake(now, &[], &mut out);
        Ok((conn, out))
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    pub(crate) fn ssl(&self) -> &openssl::ssl::SslRef {
        self.stream.ssl()
    }

    /// The negotiated suite, once known.
    pub(crate) fn suite(&self) -> Option<CipherSuite> {
        self.stream
            .ssl()
            .current_cipher()
            .and_then(|c| CipherSuite::from_name(c.name()))
    }

    /// When the flight timer fires.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.flight.deadline()
    }

    /// Feeds one datagram whose record framing was already checked.
    pub(crate) fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
        records: &[RecordHeader],
    ) -> Outcome {
        let mut out = Outcome::default();
        if self.phase == Phase::Done {
            return out;
        }
        if self.phase == Phase::Established {
            if let Err(e) = self.unpark_buffers() {
                tracing::warn!(error = %e, "record buffers unavailable, datagram dropped");
                out.rejected = records
                    .iter()
                    .filter(|r| r.content_type == ContentType::ApplicationData)
                    .count();
                return out;
            }
        }
        self.stream.get_mut().inbound.push_back(datagram.to_vec());
        match self.phase {
            Phase::Handshaking => self.drive_handshake(now, records, &mut out),
            Phase::Established => self.read_application(now, records, &mut out),
            Phase::Done => {}
        }
        self.stream.get_mut().inbound.clear();
        self.park_buffers();
        out
    }

    /// Gives the record layer's read and write buffers back while the
    /// association is idle.
    ///
    /// OpenSSL keeps both (16.5 KiB each, sized for a 16 KiB record) for the
    /// life of an `SSL`, `SSL_MODE_RELEASE_BUFFERS` set or not (measured
    /// with OpenSSL 3.0), so an idle session held 33 KiB of heap that it
    /// uses only during a read or write (docs/perf/figures.md, "DTLS
    /// session memory"). A meter talks a few times a lifetime, so both
    /// endpoints free them after every operation and
    /// [`Self::unpark_buffers`] takes them again before the next (a
    /// malloc and free of each per datagram; the handshake rate did not
    /// move). Only once established: a handshake's flights span several
    /// inputs. `SSL_free_buffers` refuses (and frees nothing) while a
    /// record is partly read or written; between our calls none is, since
    /// each input is read until OpenSSL wants more.
    fn park_buffers(&mut self) {
        if self.phase == Phase::Established {
            // SAFETY: the SSL is live and owned by `self.stream`; no
            // OpenSSL call on it is in progress.
            unsafe { ffi::SSL_free_buffers(self.stream.ssl().as_ptr()) };
        }
    }

    /// Takes the read and write buffers back before OpenSSL reads or writes
    /// a record. OpenSSL's DTLS write path does not allocate a missing
    /// write buffer itself, so this is required before any write (an
    /// answer, a retransmitted flight, an alert), not an optimisation.
    fn unpark_buffers(&mut self) -> Result<(), Error> {
        // SAFETY: the SSL is live and owned by `self.stream`; allocating
        // buffers that exist already does nothing.
        if unsafe { ffi::SSL_alloc_buffers(self.stream.ssl().as_ptr()) } == 1 {
            Ok(())
        } else {
            Err(Error::openssl(
                "allocating the record buffers",
                openssl::error::ErrorStack::get(),
            ))
        }
    }

    /// Fires the flight timer if due.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Outcome {
        let mut out = Outcome::default();
        match self.flight.on_timeout(now, &self.policy) {
            Some(Expiry::Resend(datagrams)) => {
                tracing::debug!(count = datagrams.len(), "retransmitting handshake flight");
                out.transmits = datagrams;
            }
            Some(Expiry::Exhausted(retransmissions)) => {
                if self.phase == Phase::Handshaking {
                    self.phase = Phase::Done;
                    out.failed = Some(HandshakeFailure::Timeout { retransmissions });
                }
                self.flight.clear();
            }
            None => {}
        }
        out
    }

    /// Encrypts one application datagram.
    pub(crate) fn send(&mut self, payload: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        if payload.len() > MAX_PLAINTEXT {
            return Err(Error::TooLarge {
                len: payload.len(),
                max: MAX_PLAINTEXT,
            });
        }
        self.unpark_buffers()?;
        let written = self
            .stream
            .ssl_write(payload)
            .map_err(|e| Error::openssl("encrypting application data", e));
        self.park_buffers();
        written?;
        Ok(self.take_outbound())
    }

    /// Sends close_notify (if established) and ends the association.
    pub(crate) fn close(&mut self) -> Vec<Vec<u8>> {
        if self.phase == Phase::Established && self.unpark_buffers().is_ok() {
            match self.stream.shutdown() {
                Ok(ShutdownResult::Sent | ShutdownResult::Received) => {}
                Err(e) if e.code() == ErrorCode::WANT_READ => {}
                Err(e) => tracing::debug!(error = %e, "close_notify not sent"),
            }
        }
        self.phase = Phase::Done;
        self.flight.clear();
        self.take_outbound()
    }

    fn take_outbound(&mut self) -> Vec<Vec<u8>> {
        let written = std::mem::take(&mut self.stream.get_mut().outbound);
        for datagram in &written {
            if let Ok(records) = record::parse_records(datagram) {
                for r in records.iter().filter(|r| r.epoch == 0) {
                    self.next_epoch0_seq = self.next_epoch0_seq.max(r.sequence + 1);
                }
            }
        }
        written
    }

    fn drive_handshake(&mut self, now: Instant, records: &[RecordHeader], out: &mut Outcome) {
        let state_before = self.stream.ssl().state_string();
        let result = self.stream.do_handshake();
        let written = self.take_outbound();
        match result {
            Ok(()) => {
                self.phase = Phase::Established;
                self.last_activity = now;
                out.completed = true;
                if self.is_server {
                    // Our final flight: no timer, but kept to answer a
                    // client that repeats its flight (RFC 6347 §4.2.4).
                    self.flight.begin(written.clone(), now, &self.policy, false);
                } else {
                    self.flight.clear();
                }
                out.transmits = written;
                // The same datagram may carry application data after Finished.
                self.read_application(now, &[], out);
            }
            Err(e) if e.code() == ErrorCode::WANT_READ => {
                let state_after = self.stream.ssl().state_string();
                tracing::trace!(
                    state_before,
                    state_after,
                    written = written.len(),
                    "handshake step"
                );
                if !written.is_empty() {
                    self.flight.begin(written.clone(), now, &self.policy, true);
                    self.last_activity = now;
                    out.transmits = written;
                } else if self.is_server
                    && state_after == state_before
                    && finished_unverified(state_after, records)
                {
                    self.fail_finished(out);
                } else if carries_handshake(records) && self.flight.is_stored() {
                    // The peer repeated its flight: ours was probably lost.
                    out.transmits = self.flight.datagrams();
                }
            }
            Err(e) => {
                self.phase = Phase::Done;
                self.flight.clear();
                let verify = self.stream.ssl().verify_result();
                let failure = if verify == openssl::x509::X509VerifyResult::OK {
                    failure_from(&e)
                } else {
                    // The peer's certificate did not verify against our
                    // trust anchors (OpenSSL sends it a fatal alert).
                    HandshakeFailure::Protocol(format!(
                        "peer certificate rejected: {}",
                        verify.error_string()
                    ))
                };
                // With CBC suites OpenSSL does not drop the client's
                // undecryptable Finished silently but fails the handshake
                // with bad_record_mac: the same key mismatch.
                out.failed = Some(
                    if self.is_server && has_reason(&e, SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC) {
                        HandshakeFailure::FinishedNotVerified
                    } else {
                        failure
                    },
                );
                out.transmits = written;
            }
        }
    }

    /// The client's Finished (epoch 1) arrived after its ChangeCipherSpec was
    /// processed but did not authenticate: OpenSSL drops it silently
    /// (RFC 6347 §4.1.2.7), so we end the handshake and tell the client with
    /// a plaintext decrypt_error alert (RFC 5246 §7.4.9, §7.2.2).
    fn fail_finished(&mut self, out: &mut Outcome) {
        self.phase = Phase::Done;
        self.flight.clear();
        out.failed = Some(HandshakeFailure::FinishedNotVerified);
        out.transmits = vec![record::plaintext_fatal_alert(
            self.next_epoch0_seq,
            alert::DECRYPT_ERROR,
        )];
        self.next_epoch0_seq += 1;
    }

    fn read_application(&mut self, now: Instant, records: &[RecordHeader], out: &mut Outcome) {
        let offered = records
            .iter()
            .filter(|r| r.content_type == ContentType::ApplicationData)
            .count();
        let mut delivered = 0;
        let mut buf = vec![0u8; MAX_PLAINTEXT + 1024];
        loop {
            match self.stream.ssl_read(&mut buf) {
                Ok(n) => {
                    out.received.push(buf[..n].to_vec());
                    delivered += 1;
                    self.last_activity = now;
                }
                Err(e) if e.code() == ErrorCode::WANT_READ => break,
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                    self.phase = Phase::Done;
                    out.closed = Some(CloseReason::PeerClosed);
                    break;
                }
                Err(e) => {
                    self.phase = Phase::Done;
                    out.closed = Some(match failure_from(&e) {
                        HandshakeFailure::AlertReceived { description } => {
                            CloseReason::Alert { description }
                        }
                        other => CloseReason::Error(other.to_string()),
                    });
                    break;
                }
            }
        }
        if delivered > 0 {
            // The peer sends application data only after our final flight
            // reached it.
            self.flight.clear();
        }
        let written = self.take_outbound();
        if !written.is_empty() {
            out.transmits.extend(written);
        } else if self.phase == Phase::Established
            && carries_handshake(records)
            && self.flight.is_stored()
        {
            out.transmits.extend(self.flight.datagrams());
        }
        if self.phase == Phase::Established {
            out.rejected = offered.saturating_sub(delivered);
        }
    }
}

/// Whether a datagram carries handshake or ChangeCipherSpec records.
fn carries_handshake(records: &[RecordHeader]) -> bool {
    records.iter().any(|r| {
        matches!(
            r.content_type,
            ContentType::Handshake | ContentType::ChangeCipherSpec
        )
    })
}

/// Server state after reading the client's ChangeCipherSpec and an epoch-1
/// handshake record (the Finished) in the datagram.
fn finished_unverified(state: &str, records: &[RecordHeader]) -> bool {
    // SSL_state_string for TLS_ST_SR_CHANGE ("read change cipher spec").
    let after_ccs = state == "TRCCS";
    after_ccs
        && records
            .iter()
            .any(|r| r.content_type == ContentType::Handshake && r.epoch >= 1)
}

/// `SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC` from OpenSSL's sslerr.h.
const SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC: i32 = 281;

fn has_reason(err: &openssl::ssl::Error, reason: i32) -> bool {
    err.ssl_error()
        .is_some_and(|stack| stack.errors().iter().any(|e| e.reason_code() == reason))
}

/// Turns an OpenSSL failure into a reason; alerts show up in the error
/// stack as reason codes 1000 + description (`SSL_AD_REASON_OFFSET`).
fn failure_from(err: &openssl::ssl::Error) -> HandshakeFailure {
    if let Some(stack) = err.ssl_error() {
        for e in stack.errors() {
            let code = e.reason_code();
            if (1000..1256).contains(&code) {
                return HandshakeFailure::AlertReceived {
                    description: (code - 1000) as u8,
                };
            }
        }
        let reasons: Vec<&str> = stack.errors().iter().filter_map(|e| e.reason()).collect();
        if !reasons.is_empty() {
            return HandshakeFailure::Protocol(reasons.join("; "));
        }
    }
    HandshakeFailure::Protocol(err.to_string())
}
