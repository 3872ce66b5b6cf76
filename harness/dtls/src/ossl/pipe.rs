//! The in-memory "socket" under OpenSSL: a queue of whole datagrams in each
//! direction. OpenSSL's DTLS record layer reads one datagram per BIO read and
//! writes one datagram per BIO write, so datagram boundaries survive.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

/// Datagrams in and out of one `SslStream`.
#[derive(Debug, Default)]
pub(crate) struct DatagramPipe {
    pub(crate) inbound: VecDeque<Vec<u8>>,
    pub(crate) outbound: Vec<Vec<u8>>,
}

impl Read for DatagramPipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inbound.pop_front() {
            Some(datagram) => {
                // A datagram longer than the buffer is truncated, as recv(2) does.
                let n = datagram.len().min(buf.len());
                buf[..n].copy_from_slice(&datagram[..n]);
                Ok(n)
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for DatagramPipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outbound.push(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
