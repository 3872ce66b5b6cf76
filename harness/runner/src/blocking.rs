//! Bench drivers block: a serial read waits for the modem, an SCPI query for
//! the supply, a relay command for its process. Steps call them from async
//! code that shares the runtime's few worker threads with the embedded
//! servers, so a driver call made in place would stop the servers answering
//! the device (a registration refused, a retransmission missed) for as long
//! as the driver waits. Every driver call from async code goes through
//! [`off_runtime`].

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs the blocking driver call `f` so that the runtime's other tasks keep
/// running meanwhile: on a multi-thread runtime the worker hands its tasks to
/// another thread first (`block_in_place`, so `f` may keep borrowing the
/// session). Outside a runtime, or on a current-thread one (where no other
/// thread could take the tasks over, and `block_in_place` would panic), `f`
/// simply runs.
pub fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, UdpSocket};
    use std::sync::mpsc;
    use std::time::Duration;

    use lwm2m::server::ServerConfig;
    use lwm2m::{ContentFormat, Registry};
    use rig::{Power, RigError};
    use server::LwM2mServer;

    use super::*;

    /// A power switch whose `on` returns only once the server has answered
    /// someone (or after a bound): the longest a real relay or supply may
    /// keep a step waiting.
    struct WaitsForTheServer {
        answered: mpsc::Receiver<Vec<u8>>,
    }

    impl Power for WaitsForTheServer {
        fn on(&mut self) -> Result<(), RigError> {
            let failed = |message: String| RigError::Driver {
                driver: "test".into(),
                message,
            };
            match self.answered.recv_timeout(Duration::from_secs(3)) {
                Ok(reply) if reply == RESET => Ok(()),
                Ok(reply) => Err(failed(format!("the ping was answered with {reply:02x?}"))),
                Err(e) => Err(failed(format!("no answer while switching: {e}"))),
            }
        }
        fn off(&mut self) -> Result<(), RigError> {
            Ok(())
        }
        fn is_on(&mut self) -> bool {
            false
        }
        fn describe(&self) -> String {
            "power that waits for the server".into()
        }
    }

    /// CoAP ping (RFC 7252 §4.3): CON, Empty, message id 0x1234.
    const PING: [u8; 4] = [0x40, 0x00, 0x12, 0x34];
    /// Its answer: RST with the same message id.
    const RESET: [u8; 4] = [0x70, 0x00, 0x12, 0x34];

    /// Pings `server` from a plain thread; sends what came back (or
    /// nothing) to `answered`.
    fn ping(server: SocketAddr, answered: mpsc::Sender<Vec<u8>>) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            socket.send_to(&PING, server).unwrap();
            let mut buf = [0u8; 64];
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                let _ = answered.send(buf[..n].to_vec());
            }
        })
    }

    /// An LwM2M server on loopback, run by `rt`.
    fn loopback_server(rt: &tokio::runtime::Runtime) -> server::ServerHandle {
        rt.block_on(LwM2mServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            ServerConfig {
                registry: Registry::core(),
                default_format: ContentFormat::Tlv,
                seed: 7,
            },
        ))
        .unwrap()
    }

    #[test]
    fn the_server_answers_while_a_power_switch_blocks() {
        // One worker: a driver call made in place would hold the only
        // thread the server's loop can run on.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = loopback_server(&rt);
        let (tx, rx) = mpsc::channel();
        let power = rig::bench::share(Box::new(WaitsForTheServer { answered: rx }));
        let switching = rt.spawn(async move { crate::session::switch_power(&power, true) });
        let pinger = ping(server.local_addr(), tx);
        let switched = rt.block_on(switching).unwrap();
        pinger.join().unwrap();
        switched.expect("the server answered the ping while power switched on");
        rt.block_on(server.shutdown());
    }

    #[test]
    fn the_reset_answers_the_ping() {
        // The ping above only counts if the server really answers pings.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let server = loopback_server(&rt);
        let (tx, rx) = mpsc::channel();
        let pinger = ping(server.local_addr(), tx);
        let reply = rt.block_on(async {
            tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(3)))
                .await
                .unwrap()
        });
        pinger.join().unwrap();
        assert_eq!(reply.unwrap(), RESET);
        rt.block_on(server.shutdown());
    }

    #[test]
    fn a_call_outside_a_runtime_or_on_a_current_thread_one_just_runs() {
        assert_eq!(off_runtime(|| 1 + 1), 2);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(async { off_runtime(|| "ran") }), "ran");
    }
}
