//! One connection to an SCPI supply: newline-terminated program messages
//! out, response lines in, every read bounded by a deadline. Over TCP this
//! is the raw-socket protocol LAN supplies serve on port 5025; over a
//! serial line the same bytes.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serialport::SerialPort;

use crate::power::scpi_spec::ScpiAddress;
use crate::power::supply::SupplyProblem;

/// A response longer than this is not a supply's answer to our queries.
const MAX_LINE: usize = 64 * 1024;

enum Conn {
    Tcp(TcpStream),
    Serial(Box<dyn SerialPort>),
}

pub(crate) struct ScpiLink {
    conn: Conn,
    /// Bytes received after the last line end.
    pending: Vec<u8>,
}

impl ScpiLink {
    /// Connects within `timeout` (each resolved address of a host gets it).
    pub(crate) fn open(address: &ScpiAddress, timeout: Duration) -> Result<Self, SupplyProblem> {
        let conn = match address {
            ScpiAddress::Tcp { host, port } => {
                let connect = |message: String| SupplyProblem::Connect { message };
                let addrs: Vec<_> = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(|e| connect(format!("cannot resolve `{host}`: {e}")))?
                    .collect();
                let mut last = None;
                let mut stream = None;
                for a in &addrs {
                    match TcpStream::connect_timeout(a, timeout) {
                        Ok(s) => {
                            stream = Some(s);
                            break;
                        }
                        Err(e) => last = Some(format!("{a}: {e}")),
                    }
                }
                let stream = stream.ok_or_else(|| {
                    connect(last.unwrap_or_else(|| format!("`{host}` has no address")))
                })?;
                // Small request/response lines: do not let Nagle hold them.
                let _ = stream.set_nodelay(true);
                stream
                    .set_write_timeout(Some(timeout))
                    .map_err(|e| connect(e.to_string()))?;
                Conn::Tcp(stream)
            }
            ScpiAddress::Serial { path, baud } => {
                let port = serialport::new(path.to_string_lossy(), *baud)
                    .timeout(timeout)
                    .open()
                    .map_err(|e| SupplyProblem::Connect {
                        message: e.to_string(),
                    })?;
                Conn::Serial(port)
            }
        };
        Ok(ScpiLink {
            conn,
            pending: Vec::new(),
        })
    }

    /// Sends one program message, terminated by a newline (IEEE 488.2
    /// §7.5: `<PROGRAM MESSAGE TERMINATOR>` is NL).
    pub(crate) fn send(&mut self, line: &str) -> Result<(), SupplyProblem> {
        let io = |source| SupplyProblem::Io {
            command: line.to_owned(),
            source,
        };
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        let result = match &mut self.conn {
            Conn::Tcp(s) => s.write_all(&bytes).and_then(|()| s.flush()),
            Conn::Serial(p) => p.write_all(&bytes).and_then(|()| p.flush()),
        };
        result.map_err(|e| match e.kind() {
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                SupplyProblem::Closed {
                    command: line.to_owned(),
                }
            }
            _ => io(e),
        })
    }

    /// The next response line (without CR LF), or the problem once
    /// `timeout` has passed without one. `command` names the query in errors.
    pub(crate) fn read_line(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<String, SupplyProblem> {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 512];
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line);
                return Ok(text.trim_end_matches(['\r', '\n']).to_owned());
            }
            if self.pending.len() > MAX_LINE {
                return Err(SupplyProblem::BadAnswer {
                    command: command.to_owned(),
                    answer: String::from_utf8_lossy(&self.pending[..80]).into_owned() + "...",
                    expected: format!("a line shorter than {MAX_LINE} bytes"),
                });
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(SupplyProblem::NoAnswer {
                    command: command.to_owned(),
                    waited: timeout,
                    partial: String::from_utf8_lossy(&self.pending).into_owned(),
                });
            }
            let read = match &mut self.conn {
                Conn::Tcp(s) => s
                    .set_read_timeout(Some(remaining))
                    .and_then(|()| s.read(&mut chunk)),
                Conn::Serial(p) => p
                    .set_timeout(remaining)
                    .map_err(std::io::Error::from)
                    .and_then(|()| p.read(&mut chunk)),
            };
            match read {
                Ok(0) => {
                    return Err(SupplyProblem::Closed {
                        command: command.to_owned(),
                    })
                }
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                    return Err(SupplyProblem::Closed {
                        command: command.to_owned(),
                    })
                }
                Err(source) => {
                    return Err(SupplyProblem::Io {
                        command: command.to_owned(),
                        source,
                    })
                }
            }
        }
    }
}
