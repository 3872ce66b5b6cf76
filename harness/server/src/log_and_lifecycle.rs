//! The message-log and lifecycle half of the public API, which the LwM2M
//! server's handle and the bootstrap server's handle offer alike: both keep
//! the same `Shared` state, local address and task, and a caller (the runner
//! collecting a case's artifacts, a test) treats the two servers the same.
//!
//! A macro rather than a wrapper type so the methods stay inherent on each
//! handle, and callers need no trait in scope.

/// Expands, inside `impl` of a handle with fields `shared: Arc<Shared<_>>`,
/// `local_addr`, `commands` and `task`, to `log_len`, `log_since`,
/// `capture`, `write_pcap`, `stats` and `shutdown`; `$shutdown` is the handle's
/// shutdown command and `$server` names the server in a join failure.
macro_rules! log_and_lifecycle_methods {
    ($shutdown:expr, $server:literal) => {
        // ----- message log -----

        /// How many datagrams have been logged so far (the next entry's index).
        pub fn log_len(&self) -> usize {
            self.shared.state().log.len()
        }

        /// Logged datagrams (decrypted under DTLS, secrets redacted) and
        /// notes with `index >= from` (those still held).
        pub fn log_since(&self, from: usize) -> Vec<$crate::LogEntry> {
            self.shared.state().log.since(from)
        }

        /// What this server put on and took off the wire (DTLS records under
        /// coaps) and the CoAP it handled, for the case captures; a handle
        /// to record more into (the firmware file servers').
        pub fn capture(&self) -> $crate::Capture {
            self.shared.capture.clone()
        }

        /// Writes the held capture's `view` as a pcap file (see [`crate::write_pcap`]).
        pub fn write_pcap(
            &self,
            view: $crate::PcapView,
            out: impl std::io::Write,
        ) -> std::io::Result<()> {
            $crate::pcap::write_pcap(&self.shared.capture.since(0), view, out).map(|_| ())
        }

        /// Counters over the whole run, not bounded by the log's capacity.
        pub fn stats(&self) -> $crate::Stats {
            let mut stats = self.shared.state().log.stats();
            stats.receive_buffer_drops = self.shared.receive_drops();
            stats
        }

        // ----- lifecycle -----

        /// Stops the server (close_notify to DTLS sessions) and waits until
        /// the socket is closed. Idempotent.
        pub async fn shutdown(&self) {
            let _ = self.commands.send($shutdown);
            $crate::shared::join_task(&self.task, $server).await;
        }
    };
}

pub(crate) use log_and_lifecycle_methods;
