//! One run of the LwM2M client: the sans-IO [`Client`] plus the UDP socket
//! that carries its datagrams. The socket's receive side runs on a thread
//! that forwards each datagram to the meter's inbox; everything else (the
//! client, timers, sends) happens on the meter's loop.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lwm2m::client::{Client, ClientConfig, ClientEvent, ObjectStore, RegistrationState};

use crate::error::SimError;
use crate::meter::Input;

/// How often the receive thread looks at its stop flag.
const RECV_POLL: Duration = Duration::from_millis(100);
/// Largest datagram accepted (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;

/// The settings a session was started with, to tell whether `AT+LWM2MSTART`
/// asks for anything new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    pub server_uri: String,
    pub endpoint: String,
    pub lifetime_s: u32,
}

pub struct Session {
    pub id: u64,
    pub settings: SessionSettings,
    client: Client,
    socket: Arc<UdpSocket>,
    stop: Arc<AtomicBool>,
    receiver: Option<JoinHandle<()>>,
}

impl Session {
    /// Binds a UDP socket on the loopback of the server's family, starts the
    /// receive thread and sends Register.
    pub fn start(
        id: u64,
        settings: SessionSettings,
        config: ClientConfig,
        store: ObjectStore,
        inbox: Sender<Input>,
        now: Instant,
    ) -> Result<Self, SimError> {
        let bind: SocketAddr = if config.server.is_ipv6() {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        }
        .parse()
        .expect("literal address");
        let socket = UdpSocket::bind(bind).map_err(SimError::Udp)?;
        socket
            .set_read_timeout(Some(RECV_POLL))
            .map_err(SimError::Udp)?;
        let socket = Arc::new(socket);
        let stop = Arc::new(AtomicBool::new(false));
        let receiver = {
            let socket = Arc::clone(&socket);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("udp-recv-{id}"))
                .spawn(move || receive(id, &socket, &stop, &inbox))
                .map_err(SimError::Udp)?
        };
        tracing::info!(
            session = id,
            local = %socket.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            server = %config.server,
            endpoint = %config.endpoint,
            lifetime_s = config.lifetime.as_secs(),
            "LwM2M client starting"
        );
        let mut client = Client::new(config, store);
        client.start(now);
        let mut session = Session {
            id,
            settings,
            client,
            socket,
            stop,
            receiver: Some(receiver),
        };
        session.flush();
        Ok(session)
    }

    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    pub fn state(&self) -> &RegistrationState {
        self.client.state()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.client.poll_timeout()
    }

    pub fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, data: &[u8]) {
        self.client.handle_datagram(now, peer, data);
    }

    /// Runs the client's timers if one is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
    }

    /// Sends every datagram the client has queued. A failed send is logged
    /// and dropped, as a radio would lose it; CoAP retransmission recovers.
    pub fn flush(&mut self) {
        while let Some(t) = self.client.poll_transmit() {
            if let Err(e) = self.socket.send_to(&t.payload, t.destination) {
                tracing::warn!(session = self.id, destination = %t.destination, error = %e, "UDP send failed; datagram lost");
            } else {
                tracing::trace!(session = self.id, destination = %t.destination, bytes = t.payload.len(), "sent");
            }
        }
    }

    pub fn take_events(&mut self) -> Vec<ClientEvent> {
        std::iter::from_fn(|| self.client.poll_event()).collect()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.receiver.take() {
            let _ = t.join();
        }
    }
}

fn receive(id: u64, socket: &UdpSocket, stop: &AtomicBool, inbox: &Sender<Input>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, peer)) => {
                if inbox
                    .send(Input::Datagram {
                        session: id,
                        peer,
                        data: buf[..n].to_vec(),
                    })
                    .is_err()
                {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                // ICMP errors surface here on some systems; keep listening.
                tracing::debug!(session = id, error = %e, "UDP receive error");
                std::thread::sleep(RECV_POLL);
            }
        }
    }
}
