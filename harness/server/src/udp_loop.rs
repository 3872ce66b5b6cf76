//! The one tokio task that owns the UDP socket and the sans-IO server core,
//! in the manner of quinn's endpoint driver: wait for a datagram, the core's
//! next deadline or a command; feed it in with the current time; then drain
//! what the core wants sent and what it has to report.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use lwm2m::coap::summarize;
use lwm2m::server::{Server, ServerEvent};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::message_log::Direction;
use crate::shared::{Command, Shared};

/// Largest UDP payload; a datagram is never truncated on receive.
const MAX_DATAGRAM: usize = 65_535;

/// Marks the server closed however the task ends (return or panic), so that
/// waiters get `ServerError::Shutdown` instead of waiting for their timeout.
struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The core's clock. tokio's, so a test that pauses time drives the core too.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

pub(crate) async fn run(
    socket: UdpSocket,
    mut core: Server,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let _close = CloseOnDrop(shared.clone());
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let deadline = core.poll_timeout().map(Instant::from_std);
        // A disabled branch's future is still built, so give it some instant.
        let wake_at = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, peer)) => receive(&mut core, &shared, peer, &buf[..n]),
                Err(e) => {
                    // e.g. an ICMP port-unreachable reported on some platforms; the
                    // socket stays usable.
                    tracing::warn!(error = %e, "UDP receive failed");
                }
            },
            () = sleep_until(wake_at), if deadline.is_some() => core.handle_timeout(now()),
            command = commands.recv() => match command {
                Some(Command::Request { endpoint, request, reply }) => {
                    let result = core.request(now(), &endpoint, request);
                    // The asker may have given up already; nothing to do then.
                    let _ = reply.send(result);
                }
                Some(Command::Shutdown) | None => break,
            },
        }
        flush(&socket, &mut core, &shared).await;
    }
    tracing::info!(local = ?socket.local_addr().ok(), "LwM2M server stopped");
}

/// Logs the datagram, then hands it to the core. A panic in the core on some
/// input is a bug there, but it must not take the harness down mid-run: it is
/// reported as a malformed datagram and the server carries on.
fn receive(core: &mut Server, shared: &Shared, peer: SocketAddr, datagram: &[u8]) {
    let summary = summarize(datagram);
    tracing::debug!(%peer, len = datagram.len(), %summary, "datagram in");
    shared.log(Direction::In, peer, datagram, summary, None);
    let at = now();
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| {
        core.handle_datagram(at, peer, datagram)
    })) {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        tracing::error!(%peer, datagram = %hex::encode(datagram), %what, "LwM2M server core panicked on a datagram");
        shared.publish(ServerEvent::Malformed {
            peer,
            reason: format!("server core panicked: {what}"),
        });
    }
}

async fn flush(socket: &UdpSocket, core: &mut Server, shared: &Shared) {
    while let Some(transmit) = core.poll_transmit() {
        let summary = summarize(&transmit.payload);
        let error = match socket
            .send_to(&transmit.payload, transmit.destination)
            .await
        {
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(peer = %transmit.destination, error = %e, %summary, "UDP send failed");
                Some(e.to_string())
            }
        };
        tracing::debug!(peer = %transmit.destination, len = transmit.payload.len(), %summary, "datagram out");
        shared.log(
            Direction::Out,
            transmit.destination,
            &transmit.payload,
            summary,
            error,
        );
    }
    let events: Vec<ServerEvent> = std::iter::from_fn(|| core.poll_event()).collect();
    // The snapshot must be current before a waiter sees the event.
    if events.iter().any(changes_registrations) {
        shared.set_registrations(core.registrations().into_iter().cloned());
    }
    for event in events {
        tracing::info!(event = %crate::describe::describe_event(&event), "LwM2M event");
        shared.publish(event);
    }
}

fn changes_registrations(event: &ServerEvent) -> bool {
    matches!(
        event,
        ServerEvent::Registered(_)
            | ServerEvent::Updated(_)
            | ServerEvent::Deregistered { .. }
            | ServerEvent::Expired { .. }
    )
}
