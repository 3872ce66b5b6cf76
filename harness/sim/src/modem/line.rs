//! Splits the byte stream the harness writes into command lines, the way a
//! modem's command-line buffer does (ITU-T V.250 §5.2.1): a line ends at CR
//! (S3) or LF, backspace (S5) deletes the previous character, an empty line
//! is nothing, and a line longer than the buffer is thrown away whole.

/// Longest command line the virtual modem buffers, in bytes.
pub const MAX_LINE: usize = 512;

const BACKSPACE: u8 = 0x08;

/// One framed input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line without its terminator (non-UTF-8 bytes replaced).
    Line(String),
    /// A line that overflowed the buffer; its content is discarded.
    Overlong,
}

/// Accumulates bytes into lines; never panics and never grows past [`MAX_LINE`].
#[derive(Debug, Default)]
pub struct LineFramer {
    buf: Vec<u8>,
    overflowed: bool,
}

impl LineFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes, returning the lines they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        for &b in bytes {
            match b {
                b'\r' | b'\n' => {
                    if self.overflowed {
                        frames.push(Frame::Overlong);
                    } else if !self.buf.is_empty() {
                        frames.push(Frame::Line(String::from_utf8_lossy(&self.buf).into_owned()));
                    }
                    self.buf.clear();
                    self.overflowed = false;
                }
                BACKSPACE => {
                    self.buf.pop();
                }
                _ if self.overflowed => {}
                _ if self.buf.len() >= MAX_LINE => {
                    self.overflowed = true;
                    self.buf.clear();
                }
                _ => self.buf.push(b),
            }
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(s: &str) -> Frame {
        Frame::Line(s.to_owned())
    }

    #[test]
    fn cr_crlf_and_lf_each_end_one_line() {
        let mut f = LineFramer::new();
        assert_eq!(
            f.push(b"AT\rATI\r\nAT+CSQ\n"),
            vec![line("AT"), line("ATI"), line("AT+CSQ")]
        );
    }

    #[test]
    fn lines_may_arrive_in_pieces() {
        let mut f = LineFramer::new();
        assert!(f.push(b"AT+CG").is_empty());
        assert!(f.push(b"MI").is_empty());
        assert_eq!(f.push(b"\r"), vec![line("AT+CGMI")]);
    }

    #[test]
    fn backspace_edits_the_line() {
        let mut f = LineFramer::new();
        assert_eq!(f.push(b"ATX\x08I\r"), vec![line("ATI")]);
        assert_eq!(f.push(b"\x08\x08AT\r"), vec![line("AT")]);
    }

    #[test]
    fn overlong_line_is_reported_once_and_the_next_line_is_clean() {
        let mut f = LineFramer::new();
        let mut input = vec![b'A'; MAX_LINE + 100];
        input.extend_from_slice(b"\rAT\r");
        assert_eq!(f.push(&input), vec![Frame::Overlong, line("AT")]);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let mut f = LineFramer::new();
        assert_eq!(f.push(b"AT\xff\r"), vec![line("AT\u{fffd}")]);
    }

    proptest! {
        #[test]
        fn any_bytes_frame_without_panic_and_within_bounds(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..700), 0..8)) {
            let mut f = LineFramer::new();
            for c in &chunks {
                for frame in f.push(c) {
                    if let Frame::Line(l) = frame {
                        prop_assert!(!l.is_empty());
                        prop_assert!(!l.contains('\r') && !l.contains('\n'));
                        // lossy replacement may grow bytes to 3 per input byte
                        prop_assert!(l.len() <= MAX_LINE * 3);
                    }
                }
                prop_assert!(f.buf.len() <= MAX_LINE);
            }
        }
    }
}
