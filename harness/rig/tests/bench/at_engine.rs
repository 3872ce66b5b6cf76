//! The AT engine over an in-memory stream that hands out bytes in the
//! chunks a test chooses: partial reads, odd framing, overlong lines.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use rig::at::engine::DEFAULT_MAX_LINE;
use rig::{AtEngine, Dialect, Direction, FinalResult, RigError};

type Script = Box<dyn FnMut(&str) -> Vec<Vec<u8>>>;

/// A stream whose reads return queued chunks one per read (split further to
/// fit the caller's buffer) and `TimedOut` when nothing is queued.
struct ChunkedStream {
    script: Script,
    chunks: VecDeque<Vec<u8>>,
    written: Vec<u8>,
}

impl ChunkedStream {
    fn new(script: Script) -> Self {
        ChunkedStream {
            script,
            chunks: VecDeque::new(),
            written: Vec::new(),
        }
    }
}

impl Read for ChunkedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(mut chunk) = self.chunks.pop_front() else {
            std::thread::sleep(Duration::from_millis(1));
            return Err(io::ErrorKind::TimedOut.into());
        };
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        if n < chunk.len() {
            self.chunks.push_front(chunk.split_off(n));
        }
        Ok(n)
    }
}

impl Write for ChunkedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            if b == b'\r' {
                let line = String::from_utf8_lossy(&self.written).into_owned();
                self.written.clear();
                let answer = (self.script)(&line);
                self.chunks.extend(answer);
            } else {
                self.written.push(b);
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn dialect() -> Dialect {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    Dialect::find("meterbench-virtual", &fixtures).unwrap()
}

fn bytewise(s: &[u8]) -> Vec<Vec<u8>> {
    s.iter().map(|b| vec![*b]).collect()
}

const T: Duration = Duration::from_secs(1);

#[test]
fn response_split_across_single_byte_reads() {
    let stream = ChunkedStream::new(Box::new(|line| {
        assert_eq!(line, "AT+CGSN");
        bytewise(b"AT+CGSN\r\r\n356938035643809\r\n\r\nOK\r\n")
    }));
    let mut e = AtEngine::new(stream, "fake", dialect());
    let r = e.command("AT+CGSN", T).unwrap();
    assert_eq!(r.lines, vec!["356938035643809"]);
    assert_eq!(r.result, FinalResult::Ok);
}

#[test]
fn lf_only_and_cr_only_framing_both_work() {
    let stream = ChunkedStream::new(Box::new(|line| match line {
        "AT+A" => vec![b"one\ntwo\nOK\n".to_vec()],
        _ => vec![b"three\rOK\r".to_vec()],
    }));
    let mut e = AtEngine::new(stream, "fake", dialect());
    assert_eq!(e.command("AT+A", T).unwrap().lines, vec!["one", "two"]);
    assert_eq!(e.command("AT+B", T).unwrap().lines, vec!["three"]);
}

#[test]
fn lines_after_the_final_result_are_urcs() {
    let stream = ChunkedStream::new(Box::new(|_| vec![b"\r\nOK\r\n\r\n+LWM2M: 1\r\n".to_vec()]));
    let mut e = AtEngine::new(stream, "fake", dialect());
    assert!(e.command("AT", T).unwrap().lines.is_empty());
    assert_eq!(e.take_urcs(), vec!["+LWM2M: 1"]);
}

#[test]
fn lines_waiting_before_a_command_are_urcs_not_its_response() {
    let mut stream =
        ChunkedStream::new(Box::new(|_| vec![b"\r\nmeterbench\r\n\r\nOK\r\n".to_vec()]));
    stream.chunks.push_back(b"\r\nNO CARRIER\r\n".to_vec());
    let mut e = AtEngine::new(stream, "fake", dialect());
    let r = e.command("AT+CGMI", T).unwrap();
    assert_eq!(r.lines, vec!["meterbench"]);
    assert_eq!(e.take_urcs(), vec!["NO CARRIER"]);
}

#[test]
fn overlong_line_is_cut_and_the_stream_recovers() {
    let stream = ChunkedStream::new(Box::new(|_| {
        let mut v = vec![b'x'; 10_000];
        v.extend_from_slice(b"\r\n\r\nOK\r\n");
        vec![v]
    }));
    let mut e = AtEngine::new(stream, "fake", dialect());
    let log = rig::wrap::TranscriptLog::default();
    e.add_tap(std::sync::Arc::new(log.clone()));
    let r = e.command("AT+DUMP", T).unwrap();
    assert!(r.is_ok());
    assert_eq!(r.lines.len(), 1);
    assert_eq!(r.lines[0].len(), DEFAULT_MAX_LINE);
    // The cut is published as a note.
    assert!(log
        .transcript()
        .entries()
        .iter()
        .any(|t| t.direction == Direction::Note && t.text.contains("cut")));
}

#[test]
fn verbose_cme_error_is_a_result() {
    let stream = ChunkedStream::new(Box::new(|_| {
        vec![b"\r\n+CME ERROR: SIM not inserted\r\n".to_vec()]
    }));
    let mut e = AtEngine::new(stream, "fake", dialect());
    assert_eq!(
        e.command("AT+CCID", T).unwrap().result,
        FinalResult::CmeErrorText("SIM not inserted".into())
    );
}

#[test]
fn a_command_with_a_line_break_is_refused_unsent() {
    let stream = ChunkedStream::new(Box::new(|l| panic!("sent {l:?}")));
    let mut e = AtEngine::new(stream, "fake", dialect());
    let err = e.command("AT+CFUN=0\rAT", T).unwrap_err();
    assert!(matches!(err, RigError::BadCommand { .. }), "{err:?}");
    assert!(matches!(
        e.command("  ", T),
        Err(RigError::BadCommand { .. })
    ));
}

#[test]
fn wait_for_line_finds_earlier_urcs_and_times_out_with_context() {
    let stream = ChunkedStream::new(Box::new(|_| framed_chunks(&["+CEREG: 1", "OK"])));
    let mut e = AtEngine::new(stream, "fake", dialect());
    e.command("AT+CFUN=1", T).unwrap();
    assert_eq!(e.wait_for_line("+CEREG:", T).unwrap(), "+CEREG: 1");
    let err = e
        .wait_for_line("+LWM2M:", Duration::from_millis(50))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`+LWM2M:`") && text.contains("\"OK\""),
        "{text}"
    );
}

#[test]
fn failing_stream_is_a_serial_error_naming_the_command() {
    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("device unplugged"))
        }
    }
    impl Write for Broken {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut e = AtEngine::new(Broken, "/dev/ttyUSB9", dialect());
    let err = e.command("AT", T).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("/dev/ttyUSB9") && text.contains("device unplugged"),
        "{text}"
    );
}

fn framed_chunks(lines: &[&str]) -> Vec<Vec<u8>> {
    lines
        .iter()
        .map(|l| format!("\r\n{l}\r\n").into_bytes())
        .collect()
}

mod garbage {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever arrives before the answer, the engine neither panics
        /// nor loses the final result that follows a line end.
        #[test]
        fn any_bytes_then_ok_end_the_command(noise in proptest::collection::vec(any::<u8>(), 0..600)) {
            let stream = ChunkedStream::new(Box::new(move |_| {
                let mut v = noise.clone();
                v.extend_from_slice(b"\r\nOK\r\n");
                vec![v]
            }));
            let mut e = AtEngine::new(stream, "fake", dialect());
            let r = e.command("AT+X", Duration::from_millis(500));
            // Noise may itself contain a final result line; either way a result comes.
            prop_assert!(r.is_ok(), "{:?}", r);
        }
    }
}
