//! A simulated SCPI bench supply on loopback: the stand-in the SCPI driver
//! is tested against, and that later runner tests and the rig doctor's
//! tests can start too. It is a test stand-in, not a lab tool.
//!
//! It serves raw SCPI on an ephemeral 127.0.0.1 port the way LAN supplies
//! serve port 5025: newline-terminated program messages, one connection
//! per client, answers as the supply family chosen ([`AnswerStyle`]). It
//! records every line it receives (so tests can check the driver's bytes)
//! and can misbehave on demand ([`Fault`]): stop answering, answer late,
//! drop the connection.

mod instrument;
mod program;

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use instrument::{AnswerStyle, Instrument, Load, Output};

/// How often a connection thread looks at the stop flag while idle.
const POLL: Duration = Duration::from_millis(20);

/// How the simulated supply misbehaves, from the next line it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// Reads and records lines but neither executes nor answers them: a
    /// hung supply (or one whose LAN stack is alive and firmware is not).
    Silent,
    /// Executes each line but answers only after this long.
    Slow(Duration),
    /// Closes the connection on receiving a line, without executing it.
    DropConnection,
}

struct Shared {
    instrument: Mutex<Instrument>,
    fault: Mutex<Fault>,
    received: Mutex<Vec<String>>,
    connections: Mutex<usize>,
    stop: AtomicBool,
}

/// A running simulated supply; stops (and joins its threads) on drop.
pub struct ScpiSupplySim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl ScpiSupplySim {
    /// A one-output Keysight-style supply.
    pub fn start() -> std::io::Result<Self> {
        Self::with(Instrument::new(
            "Keysight Technologies,E36311A,MY00000001,1.0.4-1.12",
            1,
            AnswerStyle::Keysight,
        ))
    }

    /// Serves `instrument` on an ephemeral loopback port.
    pub fn with(instrument: Instrument) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            instrument: Mutex::new(instrument),
            fault: Mutex::new(Fault::None),
            received: Mutex::new(Vec::new()),
            connections: Mutex::new(0),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("scpi-sim {addr}"))
            .spawn(move || accept_loop(listener, s))?;
        Ok(ScpiSupplySim {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set_fault(&self, fault: Fault) {
        *lock(&self.shared.fault) = fault;
    }

    /// Every line received so far, as sent (terminator removed), oldest first.
    pub fn received(&self) -> Vec<String> {
        lock(&self.shared.received).clone()
    }

    /// Forgets the lines received so far.
    pub fn clear_received(&self) {
        lock(&self.shared.received).clear();
    }

    /// How many connections clients have opened.
    pub fn connections(&self) -> usize {
        *lock(&self.shared.connections)
    }

    /// The instrument's state, to read or change (load, limits, errors).
    pub fn instrument(&self) -> MutexGuard<'_, Instrument> {
        lock(&self.shared.instrument)
    }

    /// Output `n` (1-based) as it is now.
    pub fn output(&self, n: usize) -> Output {
        self.instrument().outputs[n - 1].clone()
    }

    /// Sets what output `n` (1-based) draws.
    pub fn set_load(&self, n: usize, load: Load) {
        self.instrument().outputs[n - 1].load = load;
    }
}

impl Drop for ScpiSupplySim {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            if let Ok(connections) = acceptor.join() {
                for c in connections {
                    let _ = c.join();
                }
            }
        }
    }
}

/// A poisoned lock only means a test thread panicked; the state is still
/// what the test wants to look at.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) -> Vec<JoinHandle<()>> {
    let mut handles = Vec::new();
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        *lock(&shared.connections) += 1;
        let s = shared.clone();
        if let Ok(h) = std::thread::Builder::new()
            .name("scpi-sim connection".into())
            .spawn(move || serve(stream, s))
        {
            handles.push(h);
        }
    }
    handles
}

fn serve(stream: TcpStream, shared: Arc<Shared>) {
    if stream.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) if line.ends_with(b"\n") => {}
            // A partial line so far: keep it and read on.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        }
        let text = String::from_utf8_lossy(&line)
            .trim_end_matches(['\n', '\r'])
            .to_owned();
        line.clear();
        lock(&shared.received).push(text.clone());
        let fault = *lock(&shared.fault);
        let answer = match fault {
            Fault::Silent => continue,
            Fault::DropConnection => {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            Fault::None | Fault::Slow(_) => lock(&shared.instrument).execute(&text),
        };
        if let Fault::Slow(delay) = fault {
            let until = Instant::now() + delay;
            while Instant::now() < until {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
            }
        }
        if let Some(answer) = answer {
            if writer.write_all(format!("{answer}\n").as_bytes()).is_err() {
                return;
            }
        }
    }
}
